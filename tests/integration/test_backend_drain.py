"""A client that goes away in the middle of an HTTPS answer does not cost the
backend connection (fcgi-app/forward.c client_lost, issue 15): when at most
256 KiB of the answer are left, the worker reads the rest and drops it, and
the connection with its TLS session serves the next request; the access log
still says the client went away. Before, the transfer was aborted and every
such request cost a new TLS connection (bench/tls saw 3-29 per 64 KiB run,
all of them for requests cut when wrk stopped).

The upstream is an nginx over TLS that logs $connection and the bytes it
sent; /big/ sends 64 KiB at once and the rest at 400 KB/s, so that the
client, reading only the start, is gone while the answer still streams.
Connection reuse exists only where a worker serves many requests: the two
--listen set-ups (a CGI process or a mod_fcgid process per request has
nothing to keep).
"""

import json
import os
import socket
import struct
import time
import uuid

import pytest

from harness import wait_until
from servers import ModuleDocument
from sync_e2e_helpers import TlsNginx

SETUPS_HERE = ("lighttpd-socket", "apache-proxy-fcgi")
BIG = 192 * 1024


class DrainUpstream(TlsNginx):
    def __init__(self, d):
        www = os.path.join(d, "www", "big")
        os.makedirs(www, exist_ok=True)
        for p in (d, os.path.join(d, "www"), www):
            os.chmod(p, 0o755)
        with open(os.path.join(www, "body"), "wb") as f:
            f.write(os.urandom(BIG))
        os.chmod(os.path.join(www, "body"), 0o644)
        super().__init__("drain upstream", d, """\
    log_format drain '$connection $connection_requests $body_bytes_sent $request_uri';
    access_log {d}/access.log drain;
    keepalive_timeout 120s;
""".format(d=d), """\
        root {d}/www;
        location /big/ {{ try_files /big/body =404; limit_rate_after 64k; limit_rate 400k; }}
        location /small/ {{ default_type text/plain; return 200 "small $request_uri"; }}
""".format(d=d))

    def records(self):
        """(connection, requests on it, body bytes sent, uri) per request."""
        return [(int(c), int(n), int(b), u) for c, n, b, u in self.lines_with()]


@pytest.fixture(scope="module")
def drain_upstream(workroot):
    u = DrainUpstream(os.path.join(workroot, "drain-upstream"))
    yield u
    u.stop()


@pytest.fixture(scope="module")
def _drainmodule(gw, base, drain_upstream):
    if gw.setup not in SETUPS_HERE:
        pytest.skip("backend connections are kept on %s" % ", ".join(SETUPS_HERE))
    doc = dict(base)
    doc["backends"] = dict(base["backends"], drainup={
        "url": "https://127.0.0.1:%d" % drain_upstream.port,
        "tls": {"ca_file": os.path.join(drain_upstream.dir, "ca.pem")}})
    doc["apis"] = list(base["apis"]) + [
        {"id": "drain", "path": "drain", "backend": "drainup", "subscription_required": False}]
    with ModuleDocument(gw, base, doc) as m:
        yield m


@pytest.fixture
def dgw(_drainmodule):
    return _drainmodule.gateway()


def read_start_and_vanish(port, target):
    """Asks for target, reads the head and a little of the body, then resets
    the connection (SO_LINGER 0: the web server's next write fails)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                   % target).encode())
        got = b""
        while b"\r\n\r\n" not in got or len(got) < 8192:
            piece = s.recv(4096)
            assert piece, "the answer ended before 8 KiB: %r" % got[:200]
            got += piece
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
    finally:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def test_client_gone_mid_answer_keeps_the_backend_connection(dgw, drain_upstream):
    t = uuid.uuid4().hex[:10]
    # every worker has its connection to the upstream first
    for i in range(16):
        r = dgw.get("/api/drain/small/warm-%s-%d" % (t, i))
        assert r.status == 200, r
    big = "/big/gone-%s" % t
    t0 = time.monotonic()
    read_start_and_vanish(dgw.port, "/api/drain" + big)

    def big_record():
        return [r for r in drain_upstream.records() if r[3] == big]
    (conn, _, sent, _), = wait_until(big_record, 10, "nginx to log the abandoned request")
    # the worker read the whole answer: nginx sent every byte
    assert sent == BIG, (sent, BIG)
    assert time.monotonic() - t0 < 8
    # the gateway logs the request as the client's going away
    rec = wait_until(lambda: [json.loads(line) for line in open(dgw.access_log)
                              if "gone-%s" % t in line], 5, "the gateway's access log line")
    assert rec[0]["error"] == "client went away", rec
    # and the connection serves a later request (the worker that drained
    # it takes one of the next 16)
    for i in range(16):
        r = dgw.get("/api/drain/small/after-%s-%d" % (t, i))
        assert r.status == 200, r
    after = wait_until(lambda: [r for r in drain_upstream.records() if "after-%s" % t in r[3]
                                and r[0] == conn], 5, "a later request on the drained connection")
    assert after, drain_upstream.records()[-20:]
