"""hostgate-sync against a test management server: exit codes, agent.conf,
token, lock, ETag, signatures, rollback, validation, install, status, heartbeat."""
import fcntl
import gzip
import json
import os
import re
import signal
import stat
import subprocess
import time

import pytest

from sync_helpers import GATEWAY, TOKEN, agent_binary, doc, version, wait_for

STATUS_KEYS = {"time", "result", "error", "generation", "etag", "interval_s", "last_success"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ---- command line and agent.conf ------------------------------------------

def test_version():
    p = subprocess.run([agent_binary(), "--version"], capture_output=True, timeout=10)
    assert p.returncode == 0
    assert p.stdout.decode().strip() == "hostgate-sync " + version()


def test_bad_option_is_exit_2():
    p = subprocess.run([agent_binary(), "--frobnicate"], capture_output=True, timeout=10)
    assert p.returncode == 2
    assert b"usage" in p.stderr


def test_missing_conf_is_exit_2(tmp_path):
    p = subprocess.run([agent_binary(), "-c", str(tmp_path / "nope.conf"), "--once"],
                       capture_output=True, timeout=10)
    assert p.returncode == 2
    assert b"nope.conf" in p.stderr


def test_unknown_key_names_the_line(make_agent, mgmt):
    a = make_agent(mgmt.url)
    a.write_conf("intervall_s = 5\n")
    rc, out = a.run()
    assert rc == 2
    line = len(a.conf_path.read_text().splitlines())
    assert "line %d: unknown key 'intervall_s'" % line in out
    assert mgmt.requests == []


@pytest.mark.parametrize("line, message", [
    ("report = yes", "'report' must be true or false"),
    ("interval_s = 0", "'interval_s' must be an integer from 1 to 86400"),
    ("interval_s = 10s", "'interval_s' must be an integer"),
    ("heartbeat_s = 99999999999999999999", "'heartbeat_s' must be an integer"),
    ("log = journal", "'log' must be stderr or syslog"),
    ("gateway_id = x", "'gateway_id' is given twice"),
    ("just words", "expected 'key = value'"),
])
def test_bad_conf_lines(make_agent, mgmt, line, message):
    a = make_agent(mgmt.url)
    a.write_conf(line + "\n")
    rc, out = a.run()
    assert rc == 2, out
    assert message in out


def test_missing_required_key(make_agent, mgmt):
    a = make_agent(mgmt.url, gateway_id=None)
    rc, out = a.run()
    assert rc == 2
    assert "'gateway_id' is required" in out


def test_plain_http_needs_allow_insecure(make_agent, mgmt):
    a = make_agent(mgmt.url, allow_insecure="false")
    rc, out = a.run()
    assert rc == 2
    assert "allow_insecure" in out
    assert mgmt.requests == []


def test_endpoint_with_query_refused(make_agent, mgmt):
    a = make_agent(mgmt.url + "/?v=1")
    rc, out = a.run()
    assert rc == 2
    assert "'endpoint' must not contain" in out


def test_unknown_scheme_refused(make_agent):
    a = make_agent("ftp://127.0.0.1/x")
    rc, out = a.run()
    assert rc == 2
    assert "must start with https://" in out


def test_report_with_file_endpoint_refused(make_agent, tmp_path):
    a = make_agent("file://" + str(tmp_path), report="true")
    rc, out = a.run()
    assert rc == 2
    assert "'report = true' needs an http or https endpoint" in out


def test_log_syslog_keeps_stderr_quiet(make_agent, mgmt):
    mgmt.serve(b"x", status=500)
    a = make_agent(mgmt.url, log="syslog", report="false")
    rc, out = a.run()
    assert rc == 1
    assert out == "", "with log = syslog nothing goes to stderr"
    assert "answered HTTP 500" in a.status()["error"]


def test_allow_rollback_needs_once(make_agent, mgmt):
    a = make_agent(mgmt.url)
    rc, out = a.run("--allow-rollback", once=False)
    assert rc == 2
    assert "'--allow-rollback' needs '--once'" in out


# ---- token file ------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_token_readable_by_others_is_exit_2(make_agent, mgmt, mode):
    mgmt.serve(doc(1))
    a = make_agent(mgmt.url)
    a.token_file.chmod(mode)
    rc, out = a.run()
    assert rc == 2
    assert "readable by its group or others" in out
    assert mgmt.requests == []


def test_token_empty_is_exit_2(make_agent, mgmt):
    a = make_agent(mgmt.url)
    a.token_file.write_text("\n")
    rc, out = a.run()
    assert rc == 2
    assert "holds no token" in out


def test_token_sent_without_newline(make_agent, mgmt):
    mgmt.serve(doc(1))
    a = make_agent(mgmt.url)
    rc, out = a.run()
    assert rc == 0, out
    hdrs = mgmt.got("GET", "configuration")[0]["headers"]
    assert hdrs["Authorization"] == "GatewayKey " + TOKEN
    assert hdrs["User-Agent"] == "hostgate-sync/" + version()


def test_token_not_in_argv_or_environment(make_agent, mgmt):
    mgmt.serve(doc(1), mode="stall")
    a = make_agent(mgmt.url, report="false")
    p = a.start()
    try:
        wait_for(lambda: mgmt.got("GET"), what="the agent's request")
        cmdline = open("/proc/%d/cmdline" % p.pid, "rb").read()
        environ = open("/proc/%d/environ" % p.pid, "rb").read()
        assert TOKEN.encode() not in cmdline
        assert TOKEN.encode() not in environ
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    assert TOKEN not in a.daemon_log()


# ---- lock --------------------------------------------------------------------

def test_lock_held_is_exit_2(make_agent, mgmt):
    mgmt.serve(doc(1))
    a = make_agent(mgmt.url)
    lock = a.conf_dir / "sync.lock"
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        rc, out = a.run()
        assert rc == 2
        assert "another agent holds '%s'" % lock in out
        assert mgmt.requests == []
    rc, out = a.run()
    assert rc == 0, out


def test_second_daemon_refused_while_first_runs(make_agent, mgmt):
    mgmt.serve(doc(1))
    a = make_agent(mgmt.url, report="false")
    p = a.start()
    try:
        wait_for(lambda: (a.conf_dir / "sync-status.json").exists(), what="first sync")
        rc, out = a.run()
        assert rc == 2
        assert "another agent holds" in out
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0


# ---- install, status, ETag -----------------------------------------------------

def test_install_status_and_silence(make_agent, mgmt):
    body = doc(7, pad=100)
    mgmt.serve(body, etag='"v7"')
    a = make_agent(mgmt.url, interval_s="17")
    rc, out = a.run()
    assert rc == 0
    assert out == "", "--once must be silent on success"
    assert a.installed() == body
    assert stat.S_IMODE(a.config.stat().st_mode) == 0o640
    assert a.config.stat().st_gid == a.conf_dir.stat().st_gid
    st = a.status()
    assert set(st) == STATUS_KEYS
    assert st["result"] == "ok" and st["error"] is None
    assert st["generation"] == 7 and st["etag"] == '"v7"' and st["interval_s"] == 17
    assert RFC3339.match(st["time"]) and RFC3339.match(st["last_success"])
    assert abs(time.time() - time.mktime(time.strptime(st["time"], "%Y-%m-%dT%H:%M:%SZ"))
               + time.timezone) < 120
    assert stat.S_IMODE((a.conf_dir / "sync-status.json").stat().st_mode) == 0o640
    iid = (a.conf_dir / "instance-id").read_text()
    assert re.fullmatch(r"[0-9a-f]{32}\n", iid)
    assert not list(a.conf_dir.glob("*.tmp.*"))


def test_etag_and_304(make_agent, mgmt):
    mgmt.serve(doc(1), etag='"one"')
    a = make_agent(mgmt.url)
    assert a.run()[0] == 0
    first = mgmt.got("GET", "configuration")[0]["headers"]
    assert "If-None-Match" not in first
    mtime = a.config.stat().st_mtime_ns
    rc, out = a.run()
    assert rc == 0, out
    second = mgmt.got("GET", "configuration")[1]["headers"]
    assert second["If-None-Match"] == '"one"'
    assert a.config.stat().st_mtime_ns == mtime
    assert not (a.conf_dir / "config.json.prev").exists()
    assert a.status()["result"] == "ok"


def test_same_bytes_without_etag_is_unchanged(make_agent, mgmt):
    mgmt.serve(doc(3))
    a = make_agent(mgmt.url)
    assert a.run()[0] == 0
    ino = a.config.stat().st_ino
    rc, out = a.run()
    assert rc == 0, out
    assert a.config.stat().st_ino == ino, "the same bytes must not be re-installed"
    assert not (a.conf_dir / "config.json.prev").exists()


def test_prev_is_kept(make_agent, mgmt):
    one, two, three = doc(1), doc(2, pad=10), doc(3, pad=20)
    a = make_agent(mgmt.url)
    for d in (one, two, three):
        mgmt.serve(d)
        assert a.run()[0] == 0
    assert a.installed() == three
    assert (a.conf_dir / "config.json.prev").read_bytes() == two
    assert a.status()["generation"] == 3


def test_hand_edited_config_is_not_trusted_by_etag(make_agent, mgmt):
    mgmt.serve(doc(2), etag='"two"')
    a = make_agent(mgmt.url)
    assert a.run()[0] == 0
    a.config.write_bytes(doc(1))      # someone edits the file by hand
    rc, out = a.run()
    assert rc == 0, out
    req = mgmt.got("GET", "configuration")[-1]["headers"]
    assert "If-None-Match" not in req
    assert a.installed() == doc(2)


def test_stale_temporaries_removed(make_agent, mgmt):
    mgmt.serve(doc(1))
    a = make_agent(mgmt.url)
    junk = [a.conf_dir / n for n in ("config.json.tmp.AbC123", "config.json.tmp.p0011223344556677",
                                  "sync-status.json.tmp.Zz9Zz9", "instance-id.tmp.q1w2e3")]
    for j in junk:
        j.write_text("torn")
    keep = a.conf_dir / "config.json.tmpfoo"
    keep.write_text("not ours")
    assert a.run()[0] == 0
    assert not [j for j in junk if j.exists()]
    assert keep.exists()


def test_gzip_content_encoding(make_agent, mgmt, mgmt_key):
    body = doc(4, pad=5000)
    mgmt.serve(body, mode="gzip", signature=mgmt_key.sign(body))
    a = make_agent(mgmt.url, public_key_file=str(mgmt_key.pub))
    rc, out = a.run()
    assert rc == 0, out
    assert a.installed() == body
    assert "gzip" in mgmt.got("GET", "configuration")[0]["headers"].get("Accept-Encoding", "")


def test_slow_but_steady_answer_is_fine(make_agent, mgmt):
    body = doc(5, pad=2000)
    mgmt.serve(body, mode="slow")
    a = make_agent(mgmt.url)
    rc, out = a.run()
    assert rc == 0, out
    assert a.installed() == body


# ---- failures keep the installed configuration ------------------------------------

def installed_one(make_agent, mgmt, **conf):
    mgmt.serve(doc(5))
    a = make_agent(mgmt.url, **conf)
    rc, out = a.run()
    assert rc == 0, out
    return a


def assert_failed(a, rc, out, fragment):
    assert rc == 1, out
    assert fragment in out
    st = a.status()
    assert st["result"] == "error"
    assert fragment in st["error"]
    assert st["generation"] == 5
    assert a.installed() == doc(5)
    assert st["last_success"] is not None


def test_http_500(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(b"oops", status=500)
    rc, out = a.run()
    assert_failed(a, rc, out, "answered HTTP 500")


def test_redirect_not_followed(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(b"", status=302, headers={"Location": mgmt.url + "/elsewhere"})
    from sync_helpers import Served
    mgmt.routes["/elsewhere"] = Served(doc(9))
    rc, out = a.run()
    assert_failed(a, rc, out, "answered HTTP 302")
    assert not [r for r in mgmt.requests if r["path"] == "/elsewhere"]


@pytest.mark.parametrize("code", [401, 403])
def test_token_refused(make_agent, mgmt, code):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(b"no", status=code)
    rc, out = a.run()
    assert_failed(a, rc, out, "the management endpoint refused the gateway token "
                  "(HTTP %d): check 'token_file'" % code)


def test_truncated_body(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(doc(6), mode="truncated")
    rc, out = a.run()
    assert_failed(a, rc, out, "cannot fetch")


def test_huge_body_aborted(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(b"", mode="huge")
    t0 = time.monotonic()
    rc, out = a.run(timeout=60)
    assert_failed(a, rc, out, "larger than 67108864 bytes")
    assert time.monotonic() - t0 < 30


def test_huge_content_length_refused_up_front(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(b"x" * 1000, mode="biglength")
    rc, out = a.run()
    assert_failed(a, rc, out, "larger than 67108864 bytes")


def test_gzip_bomb_capped_after_decoding(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    # ~70 KB on the wire, 65 MiB decoded: the cap applies to the decoded bytes
    mgmt.serve(b'{"format": 1, "generation": 6, "x-pad": "' + b" " * (65 << 20) + b'"}',
               mode="gzip")
    rc, out = a.run(timeout=60)
    assert_failed(a, rc, out, "larger than 67108864 bytes")


def test_invalid_document_names_the_json_path(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(json.dumps({"format": 1, "generation": 6, "bogus_member": 1}).encode())
    rc, out = a.run()
    assert_failed(a, rc, out, "does not validate: bogus_member")


def test_invalid_document_nested_path_in_log_and_status(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(json.dumps({"format": 1, "generation": 6, "x-note": "fine",
                           "apis": [{"id": "a", "path": "a", "backend": "nope"}]}).encode())
    rc, out = a.run()
    assert_failed(a, rc, out, "does not validate: apis[0].backend")


def test_every_validation_error_is_logged(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(json.dumps({"format": 1, "generation": 6, "bogus_one": 1,
                           "apis": [{"id": "a", "path": "a", "backend": "nope"}]}).encode())
    rc, out = a.run()
    assert rc == 1
    assert "bogus_one" in out and "apis[0].backend" in out
    assert "(and 1 more)" in a.status()["error"]


def test_invalid_format_refused(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(json.dumps({"format": 2, "generation": 6}).encode())
    rc, out = a.run()
    assert_failed(a, rc, out, "does not validate: format")


def test_not_json_refused(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(b"<html>maintenance</html>")
    rc, out = a.run()
    assert_failed(a, rc, out, "does not validate")


def test_rollback_refused_then_allowed(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(doc(4))
    rc, out = a.run()
    assert_failed(a, rc, out, "refusing generation 4: lower than the installed generation 5")
    rc, out = a.run("--allow-rollback")
    assert rc == 0, out
    assert a.installed() == doc(4)
    assert a.status()["generation"] == 4
    assert (a.conf_dir / "config.json.prev").read_bytes() == doc(5)


def test_same_generation_other_bytes_refused(make_agent, mgmt):
    a = installed_one(make_agent, mgmt)
    mgmt.serve(doc(5, pad=3))
    rc, out = a.run()
    assert_failed(a, rc, out, "has the installed generation 5 but different content")


def test_unexpected_304_without_etag(make_agent, mgmt):
    mgmt.serve(b"", status=304)
    a = make_agent(mgmt.url)
    rc, out = a.run()
    assert rc == 1
    assert "304" in out
    assert not a.config.exists()
    st = a.status()
    assert st["result"] == "error" and st["generation"] is None and st["last_success"] is None


def test_unreachable_endpoint(make_agent):
    from sync_helpers import free_port
    a = make_agent("http://127.0.0.1:%d" % free_port())
    rc, out = a.run()
    assert rc == 1
    assert "cannot fetch" in out
    assert a.status()["result"] == "error"


# ---- signatures --------------------------------------------------------------------

def test_signature_header_good(make_agent, mgmt, mgmt_key):
    body = doc(2)
    mgmt.serve(body, signature=mgmt_key.sign(body))
    a = make_agent(mgmt.url, public_key_file=str(mgmt_key.pub))
    rc, out = a.run()
    assert rc == 0, out
    assert a.installed() == body
    assert not mgmt.got("GET", "configuration.sig")


def test_signature_header_wrong_key(make_agent, mgmt, mgmt_key, other_key):
    body = doc(2)
    mgmt.serve(body, signature=other_key.sign(body))
    a = make_agent(mgmt.url, public_key_file=str(mgmt_key.pub))
    rc, out = a.run()
    assert rc == 1
    assert "signature does not match" in out
    assert not a.config.exists()
    assert "signature" in a.status()["error"]


def test_signature_over_other_bytes(make_agent, mgmt, mgmt_key):
    body = doc(2)
    mgmt.serve(body, signature=mgmt_key.sign(doc(2, pad=1)))
    a = make_agent(mgmt.url, public_key_file=str(mgmt_key.pub))
    rc, out = a.run()
    assert rc == 1
    assert not a.config.exists()


@pytest.mark.parametrize("line", ["ed25519=", "rsa=AAAA", "ed25519=!!!!", "ed25519=" + "A" * 88])
def test_signature_malformed(make_agent, mgmt, mgmt_key, line):
    mgmt.serve(doc(2), signature=line)
    a = make_agent(mgmt.url, public_key_file=str(mgmt_key.pub))
    rc, out = a.run()
    assert rc == 1, out
    assert not a.config.exists()


def test_signature_missing(make_agent, mgmt, mgmt_key):
    mgmt.serve(doc(2))
    a = make_agent(mgmt.url, public_key_file=str(mgmt_key.pub))
    rc, out = a.run()
    assert rc == 1
    assert "not signed" in out
    assert mgmt.got("GET", "configuration.sig"), "the agent must look for the .sig file"
    assert not a.config.exists()


def test_signature_from_sig_file(make_agent, mgmt, mgmt_key, other_key):
    body = doc(2)
    mgmt.serve(body)
    mgmt.serve_sig(other_key.sign(body) + "\n")
    a = make_agent(mgmt.url, public_key_file=str(mgmt_key.pub))
    rc, out = a.run()
    assert rc == 1
    assert not a.config.exists()
    mgmt.serve_sig(mgmt_key.sign(body) + "\n")
    rc, out = a.run()
    assert rc == 0, out
    assert a.installed() == body
    sig_req = mgmt.got("GET", "configuration.sig")[-1]["headers"]
    assert sig_req["Authorization"] == "GatewayKey " + TOKEN


def test_unsigned_accepted_without_key(make_agent, mgmt, other_key):
    body = doc(2)
    mgmt.serve(body, signature=other_key.sign(doc(9)))
    a = make_agent(mgmt.url)
    assert a.run()[0] == 0


def test_public_key_not_ed25519_is_exit_2(make_agent, mgmt, tmp_path):
    rsa = tmp_path / "rsa.key"
    pub = tmp_path / "rsa.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024",
                    "-out", str(rsa)], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(rsa), "-pubout", "-out", str(pub)],
                   check=True, capture_output=True)
    a = make_agent(mgmt.url, public_key_file=str(pub))
    rc, out = a.run()
    assert rc == 2
    assert "not an Ed25519 public key" in out


def file_endpoint(tmp_path):
    root = tmp_path / "mgmt"
    d = root / "gateways" / GATEWAY
    d.mkdir(parents=True)
    return root, d


def test_file_endpoint_signed(make_agent, tmp_path, mgmt_key, other_key):
    root, d = file_endpoint(tmp_path)
    body = doc(3)
    (d / "configuration").write_bytes(body)
    a = make_agent("file://" + str(root), public_key_file=str(mgmt_key.pub))
    rc, out = a.run()
    assert rc == 1 and "not signed" in out
    (d / "configuration.sig").write_text(other_key.sign(body) + "\n")
    rc, out = a.run()
    assert rc == 1 and "signature does not match" in out
    assert not a.config.exists()
    (d / "configuration.sig").write_text(mgmt_key.sign(body) + "\n")
    rc, out = a.run()
    assert rc == 0, out
    assert a.installed() == body
    st = a.status()
    assert st["generation"] == 3 and st["etag"] is None


def test_file_endpoint_missing_document(make_agent, tmp_path):
    root, d = file_endpoint(tmp_path)
    a = make_agent("file://" + str(root))
    rc, out = a.run()
    assert rc == 1
    assert "HTTP 404" in out or "404" in out


# ---- heartbeat ------------------------------------------------------------------------

def test_heartbeat_body(make_agent, mgmt):
    mgmt.serve(doc(8), etag='"e8"')
    a = make_agent(mgmt.url)
    rc, out = a.run()
    assert rc == 0, out
    beats = mgmt.got("POST", "heartbeat")
    assert len(beats) == 1
    hb = beats[0]
    assert hb["headers"]["Content-Type"] == "application/json"
    assert hb["headers"]["Authorization"] == "GatewayKey " + TOKEN
    body = json.loads(hb["body"])
    assert set(body) == {"instance", "hostname", "version", "config_generation", "config_etag",
                         "last_sync", "last_error", "uptime_s"}
    assert body["instance"] == (a.conf_dir / "instance-id").read_text().strip()
    assert body["hostname"] == os.uname().nodename
    assert body["version"] == version()
    assert body["config_generation"] == 8 and body["config_etag"] == '"e8"'
    assert RFC3339.match(body["last_sync"]) and body["last_error"] is None
    assert isinstance(body["uptime_s"], int) and body["uptime_s"] >= 0
    # the instance id stays the same across runs
    a.run()
    again = json.loads(mgmt.got("POST", "heartbeat")[1]["body"])
    assert again["instance"] == body["instance"]


def test_heartbeat_reports_error_before_first_sync(make_agent, mgmt):
    mgmt.serve(b"x", status=503)
    a = make_agent(mgmt.url)
    rc, out = a.run()
    assert rc == 1
    body = json.loads(mgmt.got("POST", "heartbeat")[0]["body"])
    assert body["config_generation"] is None and body["last_sync"] is None
    assert "503" in body["last_error"]


def test_heartbeat_failure_is_not_fatal(make_agent, mgmt):
    mgmt.serve(doc(1))
    from sync_helpers import Served
    mgmt.routes[mgmt.path("heartbeat")] = Served(b"", status=500)
    a = make_agent(mgmt.url)
    rc, out = a.run()
    assert rc == 0
    assert "heartbeat" in out and "500" in out


def test_report_false_sends_no_heartbeat(make_agent, mgmt):
    mgmt.serve(doc(1))
    a = make_agent(mgmt.url, report="false")
    assert a.run()[0] == 0
    assert not mgmt.got("POST")


# ---- daemon mode -------------------------------------------------------------------------

def test_daemon_follows_changes_and_stops_on_sigterm(make_agent, mgmt):
    mgmt.serve(doc(1))
    a = make_agent(mgmt.url, interval_s="1", heartbeat_s="1")
    p = a.start()
    try:
        wait_for(lambda: a.config.exists() and a.installed() == doc(1), what="generation 1")
        mgmt.serve(doc(2))
        wait_for(lambda: a.installed() == doc(2), what="generation 2")
        wait_for(lambda: len(mgmt.got("POST", "heartbeat")) >= 2, what="two heartbeats")
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(10)
    assert rc == 0
    assert "installed generation 2" in a.daemon_log()


def test_daemon_sigterm_interrupts_a_stalled_transfer(make_agent, mgmt):
    mgmt.serve(doc(1), mode="stall")
    a = make_agent(mgmt.url, report="false")
    p = a.start()
    try:
        wait_for(lambda: mgmt.got("GET"), what="the agent's request")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(10)
        assert time.monotonic() - t0 < 5
    finally:
        if p.poll() is None:
            p.kill()
    assert rc == 0
    assert not a.config.exists()


def test_daemon_backs_off_on_failure(make_agent, mgmt):
    mgmt.serve(b"x", status=500)
    a = make_agent(mgmt.url, interval_s="1", report="false")
    p = a.start()

    def delays():
        return [int(x) for x in re.findall(r"next attempt in (\d+)s", a.daemon_log())]
    try:
        wait_for(lambda: len(delays()) >= 3, timeout=20, what="three failures")
        # full jitter: the k-th consecutive failure waits 1 s .. interval * 2^(k-1)
        for k, d in enumerate(delays()[:3], start=1):
            assert 1 <= d <= 2 ** (k - 1), delays()
        mgmt.serve(doc(1))
        wait_for(lambda: a.config.exists(), timeout=20, what="recovery")
        n = len(mgmt.got("GET"))
        # after a success the normal interval applies again: no "next attempt" lines
        wait_for(lambda: len(mgmt.got("GET")) >= n + 2, timeout=10, what="regular syncs")
        assert a.status()["result"] == "ok"
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)


def test_daemon_sighup_syncs_now(make_agent, mgmt):
    mgmt.serve(doc(1))
    a = make_agent(mgmt.url, interval_s="3600", report="false")
    p = a.start()
    try:
        wait_for(lambda: a.config.exists(), what="first sync")
        mgmt.serve(doc(2))
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: a.installed() == doc(2), what="sync after SIGHUP")
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
