"""Configuration and state files a co-tenant on the host cannot swap (issue 8,
docs/security-notes/layout.md), through every web-server set-up.

The layout (docs/deploying.md): the configuration directory is root:www-data
0750 with documents 0640 (only the agent or an admin writes it); the state
directory belongs to www-data, the web server's user, which anything on the
same web server (a PHP script) runs as. So:
  - nothing www-data puts in the state directory changes what is served or
    what the health path says (there is no last-good copy there any more);
  - a configuration that is a symbolic link to /dev/zero or a FIFO is refused
    at once: requests keep being answered by the last good configuration;
  - a group- or world-writable configuration (file or directory) is refused
    with a log line naming it, and served once its mode is fixed;
  - `hostgate-fcgi --check` warns about those modes and still exits 0.
"""

import copy
import errno
import json
import os
import pathlib
import stat
import subprocess
import tempfile
import time

import pytest

from harness import RELOAD_INTERVAL_S, wait_until
from servers import www_ids

FORGED_GENERATION = 999999
REQUEST_TIMEOUT = 5         # seconds: a hung worker fails the request, not the run


def with_api(base, name, backend_url):
    doc = copy.deepcopy(base)
    doc["backends"][name] = {"url": backend_url}
    doc["apis"].append({"id": name, "path": name, "backend": name,
                        "subscription_required": False})
    return doc


def as_www(path, data, mode=0o640):
    """What the web server's user can do in its own state directory: put a
    file there (written as root, then handed to www-data)."""
    with open(path, "wb") as f:
        f.write(data)
    uid, gid = www_ids()
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def logs_text(gw):
    """Everything the set-up's hostgate processes logged (Gateway.log_files)."""
    out = []
    for p in gw.log_files():
        with open(p, "rb") as f:
            out.append(f.read().decode("utf-8", "replace"))
    return "\n".join(out)


def replace_config_with(gw, make):
    """Atomically puts what make(tmp_path) creates in place of config.json,
    keeping the good one as config.json.prev as an install does (a process
    the harness's bursts missed then still reaches the good generation)."""
    tmp = gw.config.path + ".swap"
    make(tmp)
    os.link(gw.config.path, tmp + ".prev", follow_symlinks=False)
    os.rename(tmp + ".prev", gw.config.path + ".prev")
    os.rename(tmp, gw.config.path)
    gw.config.written_at = time.monotonic()


def watch_served(gw, gen, hb_status=200, seconds=RELOAD_INTERVAL_S + 0.6):
    """For longer than a re-check interval: every answer comes back within
    REQUEST_TIMEOUT, from the good generation gen or an earlier good one (a
    process the harness's bursts never reached may still hold that: never
    anything newer, which only the refused document has), or with gen None
    from no configuration at all (503)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        r = gw.get("/api/hb/get", timeout=REQUEST_TIMEOUT)
        assert r.status == hb_status, r
        seen = gw.burst_generations(4)
        if gen is None:
            assert seen == {None}, "served %r, expected no configuration" % (seen,)
        else:
            assert all(isinstance(g, int) and g <= gen for g in seen), \
                "served %r, expected generation %d or an earlier good one" % (seen, gen)


def test_state_dir_files_cannot_change_what_is_served(gw, base, nginx):
    """www-data plants a 'last good' configuration (a newer generation with
    a route of its own) and a sync status in the state directory, then a bad
    configuration lands: the forged document is never served, the forged
    status never shown."""
    gen = gw.apply(base)
    forged = with_api(base, "forged", nginx.url("/echo/forged"))
    forged["generation"] = FORGED_GENERATION
    forged_bytes = json.dumps(forged).encode()
    planted = [os.path.join(gw.state_dir, n) for n in
               ("config.last-good.json", "config.json", "config.json.prev")]
    status = os.path.join(gw.state_dir, "sync-status.json")
    try:
        for p in planted:
            as_www(p, forged_bytes)
        as_www(status, json.dumps({"time": "2000-01-01T00:00:00Z", "result": "error",
                                   "error": "forged by www-data", "interval_s": 1}).encode())
        gw.config.write_bytes(b'{"format": 1, "generation": 5, "apis": [')
        watch_served(gw, gen)
        r = gw.get("/api/forged/x", timeout=REQUEST_TIMEOUT)
        assert r.status == 404, r
        h = gw.health().json()
        # the forged status says "error": read, it would make this "stale"
        assert h["status"] == "ok", h
        assert "forged" not in json.dumps(h), h
    finally:
        for p in planted + [status]:
            if os.path.exists(p):
                os.unlink(p)
        gw.apply(base)


def test_symlink_to_dev_zero_as_config(gw, base):
    gen = gw.apply(base)
    try:
        replace_config_with(gw, lambda p: os.symlink("/dev/zero", p))
        watch_served(gw, gen)
        gw.check_alive()
        assert "a symbolic link" in logs_text(gw)
    finally:
        gw.apply(base)
        gw.apply(base)      # and config.json.prev is a document again


def unblock_fifo_readers(path):
    """On a broken build a worker waits in open() for a writer: be that
    writer once, so the worker gets EOF and the run goes on."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError as e:
        if e.errno not in (errno.ENXIO, errno.ENOENT):     # no reader, or gone
            raise


def test_fifo_as_config(gw, base):
    gen = gw.apply(base)
    fifo = gw.config.path + ".swap"

    def make(p):
        os.mkfifo(p, 0o640)
        os.chown(p, 0, www_ids()[1])        # readable by www-data: open() would wait
    try:
        replace_config_with(gw, make)
        watch_served(gw, gen)
        gw.check_alive()
    finally:
        unblock_fifo_readers(gw.config.path)
        unblock_fifo_readers(fifo)
        gw.apply(base)
        gw.apply(base)


def test_group_writable_config_refused_then_served_when_fixed(gw, base, nginx):
    gen = gw.apply(base)
    doc = with_api(base, "writable", nginx.url("/echo/writable"))
    try:
        gw.config.generation += 1
        doc["generation"] = new_gen = gw.config.generation
        gw.config.write_bytes(json.dumps(doc).encode(), mode=0o660)
        watch_served(gw, gen)
        assert gw.get("/api/writable/x", timeout=REQUEST_TIMEOUT).status == 404
        wait_until(lambda: "refusing '%s': group- or world-writable (mode 0660)" % gw.config.path
                   in logs_text(gw), 5, "the refusal in the log")
        # fixing the mode is enough: no new document needed
        os.chmod(gw.config.path, 0o640)
        gw.wait_generation(new_gen)
        assert gw.get("/api/writable/x", timeout=REQUEST_TIMEOUT).status == 200
    finally:
        gw.apply(base)


def test_group_writable_config_directory_refused(gw, base, nginx):
    gen = gw.apply(base)
    doc = with_api(base, "writabledir", nginx.url("/echo/writabledir"))
    mode = stat.S_IMODE(os.stat(gw.conf_dir).st_mode)
    try:
        os.chmod(gw.conf_dir, 0o770)
        new_gen = gw.config.write(doc)
        if gw.setup == "apache-cgi":
            # nothing in memory, and config.json.prev is in the same unsafe
            # directory: refused too, so no configuration at all
            watch_served(gw, None, hb_status=503)
        else:
            watch_served(gw, gen)
        r = gw.get("/api/writabledir/x", timeout=REQUEST_TIMEOUT)
        assert r.status == (503 if gw.setup == "apache-cgi" else 404), r
        wait_until(lambda: "its directory '%s' is group- or world-writable (mode 0770)"
                   % gw.conf_dir in logs_text(gw), 5, "the refusal in the log")
        os.chmod(gw.conf_dir, mode)
        gw.wait_generation(new_gen)
    finally:
        os.chmod(gw.conf_dir, mode)
        gw.apply(base)


def check(binary, path, user=None):
    argv = [binary, "--check", path]
    if user:
        argv = ["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups"] + argv
    p = subprocess.run(argv, capture_output=True, timeout=20)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_check_warns_about_unsafe_modes(gw, binary, base, workroot):
    if gw.setup != "lighttpd-binpath":
        pytest.skip("--check is the same binary whatever serves it")
    # under workroot (0755): www-data must reach it
    d = pathlib.Path(tempfile.mkdtemp(prefix="check-conf-", dir=workroot))
    d.chmod(0o750)
    path = d / "config.json"
    path.write_text(json.dumps(dict(base, generation=1)))
    path.chmod(0o640)
    rc, out, err = check(binary, str(path))
    assert rc == 0 and "ok: generation 1" in out, (out, err)
    assert "warning" not in err, err
    path.chmod(0o664)
    rc, out, err = check(binary, str(path))
    assert rc == 0 and "ok: generation 1" in out, (out, err)
    assert "group- or world-writable (mode 0664)" in err and "refuses it" in err, err
    path.chmod(0o640)
    d.chmod(0o777)
    rc, out, err = check(binary, str(path))
    assert rc == 0, (out, err)
    assert "its directory '%s' is group- or world-writable (mode 0777)" % d in err, err
    d.chmod(0o750)
    link = d / "link.json"
    link.symlink_to(path)
    rc, out, err = check(binary, str(link))
    assert rc == 0, (out, err)
    assert "a symbolic link" in err, err
    # the web server's own user owning it: loaded, with a warning
    uid, gid = www_ids()
    os.chown(path, uid, gid)
    os.chown(d, 0, gid)
    rc, out, err = check(binary, str(path), user="www-data")
    assert rc == 0 and "ok: generation 1" in out, (out, err)
    assert "belongs to this process's own user" in err, err
