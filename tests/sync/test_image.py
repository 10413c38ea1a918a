"""The agent installs every document with its compiled image (issue 9: "who
compiles: the agent right after it validated one"; "an agent SIGKILLed while
compiling leaves the old image and document serving").

The layout is docs/deploying.md's: the configuration directory belongs to the
agent's user (here root) with the web server's group (www-data), 0750; the
app runs as www-data, as plain CGI, so it trusts the image (another user's
file in a directory it cannot write) only if the agent gave it the right mode
and group. Whether the app used the image is read from its stderr: a document
of 100 APIs or more without a usable image makes it warn that it compiles in
memory; with the image it says nothing.
"""
import json
import os
import pathlib
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from sync_helpers import ROOT, Agent, agent_binary, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the app as www-data: needs root")

HEALTH = "/status-0123456789abcdef"      # config-v1.md's default health_path
IMAGE_WARNINGS = ("compiling the configuration in memory", "older than its document",
                  "has no image", "not using", "serving '")


def fcgi_binary():
    return os.environ.get("HOSTGATE_FCGI", str(ROOT / "build" / "hostgate-fcgi"))


def gen_doc(generation, apis=100, out=None):
    """bench/gen-doc's document: enough APIs that the app warns without an image."""
    argv = [str(ROOT / "bench" / "gen-doc"), "--apis", str(apis), "--generation",
            str(generation)]
    if out:
        subprocess.run(argv + ["-o", str(out)], check=True, timeout=120)
        return None
    return subprocess.run(argv, check=True, capture_output=True, timeout=60).stdout


@pytest.fixture
def layout(mgmt):
    """An agent whose configuration directory the app (www-data) can read but
    not write, under a base directory www-data can traverse."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="hostgate-image-"))
    os.chmod(base, 0o755)
    a = Agent(base, mgmt.url, report="false")
    shutil.chown(a.conf_dir, "root", "www-data")
    shutil.chown(a.state, "www-data", "www-data")
    yield a
    shutil.rmtree(base, ignore_errors=True)


def cgi(a, path=HEALTH):
    """One plain CGI request to hostgate-fcgi as www-data. Returns (status,
    parsed JSON body or None, stderr)."""
    env = ["REQUEST_METHOD=GET", "REQUEST_URI=/api" + path, "SCRIPT_NAME=/api",
           "PATH_INFO=" + path, "SERVER_PROTOCOL=HTTP/1.1", "REMOTE_ADDR=127.0.0.1",
           "HOSTGATE_CONFIG=" + str(a.config), "HOSTGATE_STATE_DIR=" + str(a.state)]
    p = subprocess.run(["setpriv", "--reuid=www-data", "--regid=www-data", "--clear-groups",
                        "env", "-i"] + env + [fcgi_binary()],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    if not _:
        head, _, body = p.stdout.partition(b"\n\n")
    status = int(head.split(b"\n")[0].split()[1])
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return status, parsed, p.stderr.decode(errors="replace")


def served_from_image(a, generation):
    """The app answers generation from the image: no in-memory compile."""
    status, body, err = cgi(a)
    assert status == 200, (status, body, err)
    assert body["generation"] == generation, body
    for w in IMAGE_WARNINGS:
        assert w not in err, "the app did not use the image: " + err
    return err


def snapshot(a):
    """Bytes and identity of the installed document and image."""
    out = {}
    for name in ("config.json", "config.json.image"):
        p = a.conf_dir / name
        st = p.stat()
        out[name] = (p.read_bytes(), st.st_ino, st.st_mtime_ns)
    return out


def leftovers(a):
    return sorted(n for n in os.listdir(a.conf_dir) if ".tmp." in n)


def test_sync_installs_the_image_the_app_uses(layout, mgmt):
    a = layout
    body = gen_doc(5)
    mgmt.serve(body, etag='"g5"')
    rc, out = a.run()
    assert rc == 0 and out == "", out           # silent on success, as before
    assert a.installed() == body
    image = a.conf_dir / "config.json.image"
    st, doc_st = image.stat(), a.config.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_gid == a.conf_dir.stat().st_gid == doc_st.st_gid
    assert st.st_uid == 0
    assert stat.S_IMODE(doc_st.st_mode) == 0o640
    assert leftovers(a) == []
    served_from_image(a, 5)

    # the control: the same check sees a missing image
    image.unlink()
    status, got, err = cgi(a)
    assert status == 200 and got["generation"] == 5
    assert "has no image" in err, err

    # the next sync finds the document current and writes the image again
    rc, out = a.run()
    assert rc == 0 and out == "", out
    assert image.is_file()
    served_from_image(a, 5)
    assert a.status()["result"] == "ok"


def test_a_stale_image_is_rewritten_by_the_next_sync(layout, mgmt):
    """An image compiled from another document (a hand copy, an older agent)
    is replaced as soon as the agent finds the document current."""
    a = layout
    mgmt.serve(gen_doc(5), etag='"g5"')
    assert a.run()[0] == 0
    image = a.conf_dir / "config.json.image"
    old = image.read_bytes()
    os.utime(a.config, ns=(1, 1))               # the document's identity moves on
    status, got, err = cgi(a)
    assert "older than its document" in err, err
    rc, out = a.run()
    assert rc == 0, out
    assert image.read_bytes() != old
    served_from_image(a, 5)


@pytest.mark.parametrize("offered, message", [
    (lambda: gen_doc(6)[:-40], "does not validate"),
    (lambda: json.dumps({"format": 1, "generation": 6, "apis": [
        {"id": "a", "path": "a", "backend": "nope"}]}).encode(), "does not validate"),
    (lambda: gen_doc(4), "lower than the installed generation 5"),
    (lambda: gen_doc(5, apis=101), "the installed generation 5 but different content"),
], ids=["torn", "invalid", "rollback", "same-generation"])
def test_refused_document_leaves_document_and_image(layout, mgmt, offered, message):
    """The image is compiled before the generation rules are checked: a
    refused document must not have replaced it."""
    a = layout
    mgmt.serve(gen_doc(5), etag='"g5"')
    assert a.run()[0] == 0
    before = snapshot(a)
    mgmt.serve(offered(), etag='"bad"')
    rc, out = a.run()
    assert rc == 1, out
    assert message in out, out
    assert snapshot(a) == before
    assert leftovers(a) == []
    assert a.status()["result"] == "error"
    served_from_image(a, 5)


@pytest.mark.parametrize("blocker", ["config.json.image.tmp.new", "config.json.image"],
                         ids=["compile-fails", "rename-fails"])
def test_image_that_cannot_be_written(layout, mgmt, blocker):
    """The image cannot be written (here: its name is taken by a directory):
    the document is installed anyway (correct, compiled in memory), the sync
    says why and exits 1; once the cause is gone the next sync writes it."""
    a = layout
    mgmt.serve(gen_doc(5), etag='"g5"')
    assert a.run()[0] == 0
    if blocker == "config.json.image":
        (a.conf_dir / blocker).unlink()
    (a.conf_dir / blocker).mkdir()
    new = gen_doc(6)
    mgmt.serve(new, etag='"g6"')
    rc, out = a.run()
    assert rc == 1, out
    assert "installed generation 6" in out and "without its image" in out, out
    assert a.installed() == new
    st = a.status()
    assert st["result"] == "error" and st["generation"] == 6
    assert "without its image" in st["error"]
    status, got, err = cgi(a)
    assert status == 200 and got["generation"] == 6, (got, err)
    assert "compiling the configuration in memory" in err, err

    if blocker == "config.json.image":
        # still blocked: every sync says so
        rc, out = a.run()
        assert rc == 1 and "has no usable image" in out, out
        assert a.status()["result"] == "error"
        (a.conf_dir / blocker).rmdir()
    # (a blocked staging name does not stop the image of a current document,
    # which is written in place)
    rc, out = a.run()
    assert rc == 0, out
    assert a.status()["result"] == "ok"
    served_from_image(a, 6)


def test_new_image_beside_old_document_serves_the_old_document(layout, mgmt):
    """The image is renamed into place before the document. When the
    document's rename then fails (here: .prev cannot be replaced), the new
    image stands beside the old document: the app must find it stale and
    serve the old document, compiled in memory, never the new image."""
    a = layout
    mgmt.serve(gen_doc(5), etag='"g5"')
    assert a.run()[0] == 0
    old_doc = a.installed()
    old_image = (a.conf_dir / "config.json.image").read_bytes()
    prev = a.conf_dir / "config.json.prev"
    (prev / "x").parent.mkdir()
    (prev / "x").write_text("blocks the rename")
    mgmt.serve(gen_doc(6), etag='"g6"')
    rc, out = a.run()
    assert rc == 1 and "cannot install" in out, out
    assert a.installed() == old_doc
    assert (a.conf_dir / "config.json.image").read_bytes() != old_image
    status, got, err = cgi(a)
    assert status == 200 and got["generation"] == 5, (got, err)
    assert "older than its document" in err, err

    shutil.rmtree(prev)
    rc, out = a.run()
    assert rc == 0, out
    served_from_image(a, 6)


def test_daemon_installs_with_the_image(layout, mgmt):
    a = layout
    mgmt.serve(gen_doc(7), etag='"g7"')
    p = a.start()
    try:
        wait_for(lambda: (a.conf_dir / "sync-status.json").exists(), timeout=30,
                 what="the first sync")
        assert a.status()["result"] == "ok", a.daemon_log()
        served_from_image(a, 7)
        mgmt.serve(gen_doc(8), etag='"g8"')
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: a.status()["generation"] == 8, timeout=30, what="generation 8")
        served_from_image(a, 8)
    finally:
        p.terminate()
        p.wait(10)
    assert "with its image" in a.daemon_log()


@pytest.fixture(scope="module")
def big_doc(tmp_path_factory):
    """bench/gen-doc --apis 100000: about 37 MB, seconds to compile."""
    path = tmp_path_factory.mktemp("big") / "big.json"
    gen_doc(2, apis=100000, out=path)
    return path.read_bytes()


def test_sigkill_while_compiling_keeps_old_document_and_image(layout, mgmt, big_doc):
    a = layout
    mgmt.serve(gen_doc(1), etag='"g1"')
    assert a.run()[0] == 0
    before = snapshot(a)
    mgmt.serve(big_doc, etag='"g2"')

    p = subprocess.Popen([agent_binary(), "-c", str(a.conf_path), "--once"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = None
    deadline = time.monotonic() + 120
    try:
        while seen is None and time.monotonic() < deadline and p.poll() is None:
            tmp = [n for n in os.listdir(a.conf_dir) if n.startswith("config.json.image.tmp.")]
            if tmp:
                p.send_signal(signal.SIGKILL)
                seen = tmp
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(10)
    assert seen, "the image's temporary never appeared (the agent exited %s)" % p.returncode
    assert p.returncode == -signal.SIGKILL
    # the kill landed before the image was renamed into place
    assert [n for n in os.listdir(a.conf_dir) if n.startswith("config.json.image.tmp.")], \
        "the image was complete when the kill landed: not a kill while compiling"
    assert snapshot(a) == before
    served_from_image(a, 1)

    # the next run cleans up and installs the new document with its image
    rc, out = a.run(timeout=120)
    assert rc == 0, out
    assert a.installed() == big_doc
    assert leftovers(a) == []
    served_from_image(a, 2)
    # and routes from it: an API deep in the image is found (its backend,
    # port 9, refuses), a path that is none is not
    status, got, err = cgi(a, "/svc99999/items")
    assert status == 502, (status, got, err)
    assert cgi(a, "/nope/items")[0] == 404
