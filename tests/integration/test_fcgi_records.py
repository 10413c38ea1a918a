"""The FastCGI framing of hostgate's answers, on a raw FastCGI connection to
`hostgate-fcgi --listen` (issue 15: stdout is written in records of up to
64 KiB by fcgi-app/main.c, not by libfcgi's 8 KiB stream buffer).

No web server in between (they would re-frame and hide mistakes): the tests
connect to the listener's own socket, send FCGI_BEGIN_REQUEST, the params and
stdin, and parse every record that comes back. They assert:
  - every record is version 1, carries the request's id, is STDOUT, STDERR
    or END_REQUEST, and its padding is all there; stdout ends with exactly
    one empty STDOUT record and the request with exactly one END_REQUEST
    (protocol status FCGI_REQUEST_COMPLETE), the last thing on the connection;
  - the answer (a 300 KiB file from nginx) arrives byte-exact;
  - a small answer is one STDOUT record, head and body together;
  - FCGI_KEEP_CONN: two requests with different ids on one connection;
  - a client that stops reading gets the worker back within the idle
    deadline: hostgate gives up, drops the connection with no END_REQUEST,
    and serves the next request.
  - a web server that hangs up before the answer's end (held by the worker
    until then) gets the request logged as the client's going away.

The framing does not depend on the web server: the tests run on
lighttpd-socket only (the set-ups with a listener are lighttpd-socket and
apache-proxy-fcgi; both run the same binary the same way).
"""

import hashlib
import json
import os
import socket
import struct
import threading
import time
import uuid

import pytest

from harness import wait_until
from rawupstream import RawUpstream
from servers import ModuleDocument

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
KEEP_CONN = 1
IDLE_MS = 1500


def token():
    return uuid.uuid4().hex[:12]


def record(rtype, rid, content=b""):
    return struct.pack(">BBHHBB", 1, rtype, rid, len(content), 0, 0) + content


def nv(name, value):
    def length(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    name, value = name.encode(), value.encode()
    return length(len(name)) + length(len(value)) + name + value


def request_bytes(rid, target, keep=False, extra=()):
    params = b"".join(nv(k, v) for k, v in [
        ("REQUEST_METHOD", "GET"), ("REQUEST_URI", target), ("SCRIPT_NAME", "/api"),
        ("QUERY_STRING", ""), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"), ("HTTP_HOST", "127.0.0.1"),
        ("SERVER_NAME", "127.0.0.1"), ("SERVER_PORT", "80")] + list(extra))
    begin = struct.pack(">HB5x", 1, KEEP_CONN if keep else 0)
    return (record(BEGIN_REQUEST, rid, begin) + record(PARAMS, rid, params) +
            record(PARAMS, rid) + record(STDIN, rid))


class Reader:
    """Reads whole records from a socket, each bounded by the socket's
    timeout and the whole by a deadline."""

    def __init__(self, s, deadline=30):
        self.s, self.buf, self.t_end = s, b"", time.monotonic() + deadline

    def _need(self, n):
        while len(self.buf) < n:
            if time.monotonic() > self.t_end:
                raise AssertionError("no complete record within the deadline")
            chunk = self.s.recv(1 << 20)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def record(self):
        """(type, id, content) or None at the end of the connection; a
        connection that ends inside a record fails."""
        if not self._need(8):
            assert not self.buf, "the connection ended inside a record header"
            return None
        version, rtype, rid, clen, plen, _ = struct.unpack(">BBHHBB", self.buf[:8])
        assert version == 1, self.buf[:8]
        if not self._need(8 + clen + plen):
            raise AssertionError("the connection ended inside a record")
        content = self.buf[8:8 + clen]
        self.buf = self.buf[8 + clen + plen:]
        return rtype, rid, content


def read_answer(reader, rid):
    """Reads one request's records up to its END_REQUEST. Returns the stdout
    bytes and the list of stdout record lengths."""
    out, lengths, stdout_ended = [], [], False
    while True:
        rec = reader.record()
        assert rec is not None, "the connection ended before FCGI_END_REQUEST"
        rtype, got_id, content = rec
        assert got_id == rid, (got_id, rid)
        if rtype == STDOUT:
            assert not stdout_ended, "stdout data after its empty record"
            if not content:
                stdout_ended = True
            else:
                out.append(content)
                lengths.append(len(content))
        elif rtype == STDERR:
            pass
        elif rtype == END_REQUEST:
            assert stdout_ended, "FCGI_END_REQUEST before the empty STDOUT record"
            assert len(content) == 8, content
            app_status, proto_status = struct.unpack(">IB3x", content)
            assert (app_status, proto_status) == (0, 0), content
            return b"".join(out), lengths
        else:
            raise AssertionError("unexpected record type %d" % rtype)


def split_http(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


@pytest.fixture(scope="module")
def raw():
    s = RawUpstream()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def _fmodule(gw, base, raw):
    if gw.setup != "lighttpd-socket":
        pytest.skip("FastCGI framing is the listener's: tested on lighttpd-socket")
    doc = dict(base, gateway=dict(base["gateway"], client_idle_timeout_ms=IDLE_MS),
               backends=dict(base["backends"], **{"rec-raw": {"url": raw.url("/r")}}),
               apis=base["apis"] + [{"id": "recraw", "path": "recraw", "backend": "rec-raw",
                                     "subscription_required": False}])
    with ModuleDocument(gw, base, doc) as m:
        yield m


@pytest.fixture
def fgw(_fmodule):
    return _fmodule.gateway()


@pytest.fixture(scope="module")
def files(nginx):
    """A 300 KiB random file (more than four 64 KiB records, not a multiple
    of 8) and a 64 MiB one, in nginx's /files."""
    made = {}
    for name, size in (("rec-%s.bin" % token(), 300 * 1024 + 5), ("huge-%s.bin" % token(), 64 << 20)):
        path = os.path.join(nginx.files, name)
        with open(path, "wb") as f:
            if size < (1 << 20):
                f.write(os.urandom(size))
            else:
                f.truncate(size)
        os.chmod(path, 0o644)
        made[size] = (name, path)
    yield made
    for name, path in made.values():
        os.unlink(path)


def connect(gw):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(gw.socket)
    return s


def test_large_answer_is_exact_in_records_of_up_to_64k(fgw, files):
    name, path = files[300 * 1024 + 5]
    with open(path, "rb") as f:
        want = f.read()
    s = connect(fgw)
    try:
        s.sendall(request_bytes(1, "/api/files/" + name))
        reader = Reader(s)
        raw, lengths = read_answer(reader, 1)
        # the web server closes when it is not asked to keep the connection:
        # after FCGI_END_REQUEST, nothing
        assert reader.record() is None, "records after FCGI_END_REQUEST"
    finally:
        s.close()
    head, body = split_http(raw)
    assert head.startswith("Status: 200 "), head
    assert len(body) == len(want) and hashlib.sha256(body).digest() == hashlib.sha256(want).digest(), \
        "body differs: %d bytes, want %d" % (len(body), len(want))
    assert max(lengths) <= 65535
    # written in large records, not libfcgi's 8 KiB buffers: a 300 KiB answer
    # in at most 300 KiB / 16 KiB (+ the head) records; libfcgi needs 38+
    assert len(lengths) <= 22, lengths


def test_small_answer_is_one_record(fgw, nginx):
    rid = 513     # above 255: both bytes of the id count
    s = connect(fgw)
    try:
        s.sendall(request_bytes(rid, "/api/echo/small?x=1"))
        reader = Reader(s)
        raw, lengths = read_answer(reader, rid)
        assert reader.record() is None
    finally:
        s.close()
    head, body = split_http(raw)
    assert head.startswith("Status: 200 "), head
    assert body, raw
    assert len(lengths) == 1, lengths


def test_keep_conn_two_requests_on_one_connection(fgw, files):
    name, path = files[300 * 1024 + 5]
    with open(path, "rb") as f:
        want = f.read()
    s = connect(fgw)
    try:
        reader = Reader(s)
        s.sendall(request_bytes(7, "/api/files/" + name, keep=True))
        raw, _ = read_answer(reader, 7)
        assert split_http(raw)[1] == want
        s.sendall(request_bytes(300, "/api/echo/second", keep=True))
        raw, _ = read_answer(reader, 300)
        assert split_http(raw)[1], raw
        # and the connection stays usable: a third, the last
        s.sendall(request_bytes(2, "/api/files/" + name))
        raw, _ = read_answer(reader, 2)
        assert split_http(raw)[1] == want
        assert reader.record() is None
    finally:
        s.close()


def test_client_that_stops_reading_gets_cut_off(fgw, files):
    """The answer is 64 MiB and the client reads none of it: the worker's
    write waits client_idle_timeout_ms, then hostgate drops the connection
    without FCGI_END_REQUEST and logs the request as failed."""
    name, _ = files[64 << 20]
    rid = "stall-" + token()
    s = connect(fgw)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(request_bytes(1, "/api/files/" + name, extra=[("HTTP_X_REQUEST_ID", rid)]))
        t0 = time.monotonic()

        def logged():
            with open(fgw.access_log) as f:
                return [line for line in f if '"request_id":"%s"' % rid in line]
        lines = wait_until(logged, 30, "hostgate to give up on the stalled reader")
        waited = time.monotonic() - t0
        assert '"error":null' not in lines[0], lines[0]
        # the deadline is IDLE_MS without progress (+ the time to fill the
        # socket buffers); well under the 30 s above
        assert waited < IDLE_MS / 1000.0 + 8, waited
        # reading now: the answer is cut short, with no END_REQUEST
        s.settimeout(10)
        reader = Reader(s, deadline=60)
        seen_end = False
        try:
            while True:
                rec = reader.record()
                if rec is None:
                    break
                if rec[0] == END_REQUEST:
                    seen_end = True
        except AssertionError:
            pass    # cut inside a record: what a dropped connection looks like
        assert not seen_end, "a cut-off answer ended as if complete"
    finally:
        s.close()
    # the worker is back: a normal request on a new connection
    s = connect(fgw)
    try:
        s.sendall(request_bytes(1, "/api/echo/after-stall"))
        raw, _ = read_answer(Reader(s), 1)
        assert split_http(raw)[1]
    finally:
        s.close()


def test_web_server_gone_before_the_end_is_logged_as_gone(fgw, raw):
    """The web server hangs up while the backend has not answered yet; then
    the backend's whole answer arrives at once. The worker holds an answer
    until it would wait or until the end (fcgi-app/forward.c, flush_answer),
    so here nothing goes out before the end, and that write fails. The
    access log must say "client went away", not log a 200 that nobody got: a
    build that logged the request before writing its end (tried: main before
    io->end) logs no error. The backend waits for the hang-up (an event),
    not for a time."""
    rid = "gone-" + token()
    hung_up = threading.Event()

    def answer(_req, _up):
        hung_up.wait(15)
        yield b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    raw.script("/r/" + rid, answer)
    s = connect(fgw)
    try:
        s.sendall(request_bytes(1, "/api/recraw/" + rid, extra=[("HTTP_X_REQUEST_ID", rid)]))
        wait_until(lambda: [r for r in raw.requests if rid in r.path], 10,
                   "the request to reach the backend")
    finally:
        s.close()
    hung_up.set()

    def logged():
        with open(fgw.access_log) as f:
            return [json.loads(line) for line in f if '"request_id":"%s"' % rid in line]
    rec, = wait_until(logged, 10, "the request's access log line")
    assert rec["status"] == 200, rec
    assert rec["error"] == "client went away", rec
