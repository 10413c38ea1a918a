"""Answers of many sizes from a TLS backend, byte-exact, on kept connections.

A worker's transfers run on a multi handle of its own (fcgi-app/forward.c
S_perform: curl_multi_perform before the first wait, issue 15,
docs/performance.md "A worker's small HTTPS request"): a transfer that
stopped reading while bytes were left — in libcurl's buffer, OpenSSL's, or
the socket — would hang until the backend's timeout, or end short. The
sizes sit around TLS's 16 KiB records (nginx writes records of up to 16 KiB:
one byte over a record boundary makes a last record of one byte) and
libcurl's 16 KiB read buffer, with Content-Length and chunked (nginx's
sub_filter drops the length), each several times in an order that makes
every worker serve every size after others on the same kept connection.

Policy-independent, and no web-server framing of its own (the FastCGI side
has test_fcgi_records and test_transfers): the two set-ups with --listen
workers only (CI time).
"""

import hashlib
import os
import random
import socket
import ssl
import threading

import pytest

from harness import wait_until
from servers import ModuleDocument
from sync_e2e_helpers import TlsNginx

SETUPS_HERE = ("lighttpd-socket", "apache-proxy-fcgi")
K = 16384
SIZES = [0, 1, 103, K - 1, K, K + 1, 2 * K - 1, 2 * K + 1, 3 * K + 5, 64 * 1024, 200003]
ROUNDS = 3


class SizesUpstream(TlsNginx):
    """nginx over TLS serving www/size-N.bin with its length (/cl/) and
    chunked (/chunked/), and logging each request's connection."""

    def __init__(self, d):
        self.www = os.path.join(d, "www")
        os.makedirs(self.www, exist_ok=True)
        os.chmod(d, 0o755)
        os.chmod(self.www, 0o755)
        rnd = random.Random(15)
        self.bodies = {}
        for n in SIZES:
            # no "zzqq" in the body: sub_filter's pattern must not match
            body = bytes(rnd.randrange(256) for _ in range(n)).replace(b"zzqq", b"zzQQ")
            self.bodies[n] = body
            p = os.path.join(self.www, "size-%d.bin" % n)
            with open(p, "wb") as f:
                f.write(body)
            os.chmod(p, 0o644)
        super().__init__("tls sizes upstream", d, """    log_format sizes '$request_uri $connection $connection_requests $status $sent_http_transfer_encoding';
    access_log %s/access.log sizes;
    keepalive_requests 100000;
""" % d, """        ssl_protocols TLSv1.3;
        location /cl/ {{ alias {www}/; default_type application/octet-stream; }}
        location /chunked/ {{
            alias {www}/; default_type application/octet-stream;
            sub_filter_types *; sub_filter zzqq yy; sub_filter_once off;
        }}
""".format(www=self.www))


@pytest.fixture(scope="module")
def sizes_up(workroot):
    u = SizesUpstream(os.path.join(workroot, "tls-sizes"))
    yield u
    u.stop()


@pytest.fixture(scope="module")
def _sizesmodule(gw, base, sizes_up, tiny_up):
    if gw.setup not in SETUPS_HERE:
        pytest.skip("TLS answers of many sizes: policy-independent, on %s"
                    % ", ".join(SETUPS_HERE))
    doc = dict(base)
    doc["backends"] = dict(base["backends"], sizes={
        "url": sizes_up.url("/"), "timeout_ms": 5000,
        "tls": {"ca_file": os.path.join(sizes_up.dir, "ca.pem")}},
        # the backend's whole deadline is shorter than the stall was (25 s)
        tiny={"url": "https://127.0.0.1:%d/" % tiny_up.port, "timeout_ms": 5000,
              "tls": {"ca_file": os.path.join(sizes_up.dir, "ca.pem")}})
    doc["apis"] = list(base["apis"]) + [
        {"id": "sizes", "path": "sizes", "backend": "sizes", "subscription_required": False},
        {"id": "tiny", "path": "tiny", "backend": "tiny", "subscription_required": False}]
    with ModuleDocument(gw, base, doc) as m:
        yield m


@pytest.fixture
def sgw(_sizesmodule):
    return _sizesmodule.gateway()


@pytest.mark.parametrize("framing", ["cl", "chunked"])
def test_every_size_byte_exact_on_kept_connections(sgw, sizes_up, framing):
    token = "t%s%s" % (framing, os.urandom(4).hex())
    order = [n for r in range(ROUNDS) for n in (SIZES if r % 2 == 0 else SIZES[::-1])]
    for i, n in enumerate(order):
        r = sgw.get("/api/sizes/%s/size-%d.bin?%s=%d" % (framing, n, token, i))
        assert r.status == 200, (n, r)
        want = sizes_up.bodies[n]
        assert len(r.body) == n and hashlib.sha256(r.body).digest() == \
            hashlib.sha256(want).digest(), (n, len(r.body))
    # nginx logs a request after its last byte is sent: the client may read the
    # answer first
    def logged():
        recs = sizes_up.lines_with(token)
        return recs if len(recs) >= len(order) else None
    recs = wait_until(logged, 10, "nginx to log every request")
    assert len(recs) == len(order), recs
    if framing == "chunked":
        # the framing under test: nginx sent these without a length
        # (sub_filter drops it) — all but the empty ones, which it may
        # answer with a length of 0
        assert all(rec[4] == "chunked" for rec in recs if "/size-0.bin" not in rec[0]), recs
    else:
        assert all(rec[4] == "-" for rec in recs), recs
    # kept connections: every worker opens one and keeps it (a transfer that
    # ended badly would make libcurl close it, and the next one opens anew)
    conns = {rec[1] for rec in recs}
    assert len(conns) <= 8, (len(conns), len(recs))
    assert sum(1 for rec in recs if rec[2] != "1") >= len(recs) - 8, recs


class TinyRecords:
    """A TLS backend that writes every piece of a chunked answer as a TLS
    record of its own (the chunk's size line, its bytes, its CRLF), as a
    server that writes unbuffered does: records that give libcurl no body
    bytes. With OpenSSL's read-ahead and libcurl 7.88, such records waited in
    OpenSSL's buffer with the socket empty — up to a second each, 25 s for
    this answer (docs/performance.md, "A worker's small HTTPS request")."""

    CHUNKS = 20

    def __init__(self, d):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.body = b"".join(b"%02d-4567890" % i for i in range(self.CHUNKS))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s = self.ctx.wrap_socket(c, server_side=True)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf.split(b"\r\n\r\n", 1)[1]
                # corked: the records leave together, so that they arrive
                # together — as a busy network delivers them
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n")
                for i in range(self.CHUNKS):
                    s.sendall(b"a\r\n")
                    s.sendall(b"%02d-4567890" % i)
                    s.sendall(b"\r\n")
                s.sendall(b"0\r\n\r\n")
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


@pytest.fixture(scope="module")
def tiny_up(sizes_up):
    u = TinyRecords(sizes_up.dir)
    yield u
    u.stop()


def test_tiny_records_answer_whole(sgw, tiny_up):
    for i in range(4):  # a new connection, then kept ones
        r = sgw.get("/api/tiny/x?%d" % i)
        assert r.status == 200, r
        assert r.body == tiny_up.body, (i, r.body[:80])
