"""Many requests in one hostgate process (fcgi-app/front.h, fiber.h): a slow
backend, a silent web-server connection or a document swap holds only the
requests it concerns, never the process.

The set-ups with a fixed pool of 4 processes (`--listen --workers 4`):
lighttpd-socket and apache-proxy-fcgi. Each test holds more requests than
there are processes, so a build whose processes take one request at a time
fails it: the request that must get through finds every process taken.

  - HELD requests wait at a backend (a scripted RawUpstream that answers when
    the test says so); a request to another API still gets its answer, then
    the held ones all get theirs;
  - HELD raw FastCGI connections send half their parameters and stop; a
    request through the web server still gets its answer, and hostgate drops
    each silent connection after its idle deadline;
  - HELD requests start under one document, which is replaced while they
    wait: each finishes with the document it started with (its outbound
    policy's header), and the next request gets the new one. Under
    AddressSanitizer this is the test of the gateway's lifetime (gw_hold);
  - the FastCGI records a web server may send besides a request, on a raw
    connection to the listener: FCGI_GET_VALUES, an unknown management
    record, a second request on a busy connection (FCGI_CANT_MPX_CONN), an
    abort before the parameters end, parameters past the limit.
"""

import struct
import threading

import pytest

from harness import wait_until
from rawupstream import RawUpstream, response
from servers import ModuleDocument
from test_fcgi_records import (BEGIN_REQUEST, END_REQUEST, KEEP_CONN, PARAMS, STDIN, Reader,
                               connect, nv, read_answer, record, request_bytes, split_http,
                               token)

POOLED = {"lighttpd-socket": 4, "apache-proxy-fcgi": 4}
ABORT_REQUEST, GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 2, 9, 10, 11
CANT_MPX_CONN = 1


@pytest.fixture(scope="module")
def raw():
    s = RawUpstream()
    yield s
    s.stop()


def held_doc(base, raw, tag):
    """base plus the API "held" on the raw backend, whose outbound section
    sets X-Doc: tag."""
    return dict(base, backends=dict(base["backends"], **{"ev-raw": {"url": raw.url("/ev")}}),
                apis=base["apis"] + [{
                    "id": "held", "path": "held", "backend": "ev-raw",
                    "subscription_required": False,
                    "policies": {"outbound": [{"set-header": {
                        "name": "X-Doc", "exists-action": "override", "value": tag}}]}}])


@pytest.fixture(scope="module")
def _emodule(gw, base, raw):
    if gw.setup not in POOLED:
        pytest.skip("a fixed pool of processes to fill: lighttpd-socket, apache-proxy-fcgi")
    with ModuleDocument(gw, base, held_doc(base, raw, "a")) as m:
        yield m


@pytest.fixture
def egw(_emodule):
    return _emodule.gateway()


class Held:
    """n requests to /held/<tag>-<k> through the web server, each answered by
    the backend only once release() is called."""

    def __init__(self, gw, raw, n):
        self.gw, self.raw, self.n, self.tag = gw, raw, n, token()
        self.go = threading.Event()
        self.results = [None] * n

        def answer(_req, _up):
            self.go.wait(60)
            yield response(200, b"held-answer")
        raw.script("/ev/" + self.tag, answer)
        self.threads = [threading.Thread(target=self._one, args=(k,), daemon=True)
                        for k in range(n)]

    def _one(self, k):
        try:
            self.results[k] = self.gw.get("%s/held/%s/%d" % (self.gw.mount, self.tag, k),
                                          timeout=90)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.results[k] = e

    def start(self):
        for t in self.threads:
            t.start()
        wait_until(lambda: len([r for r in self.raw.requests
                                if r.path.startswith("/ev/%s/" % self.tag)]) >= self.n, 30,
                   "%d held requests to reach the backend" % self.n)
        return self

    def release(self):
        self.go.set()
        for t in self.threads:
            t.join(60)
        return self.results


def test_a_slow_backend_holds_only_its_own_requests(egw, raw):
    held = Held(egw, raw, 2 * POOLED[egw.setup] + 1).start()
    try:
        # every process has requests waiting at the backend: this one is
        # served beside them
        r = egw.get(egw.mount + "/echo/beside-the-held", timeout=20)
        assert r.status == 200, r
        assert not held.go.is_set() and all(x is None for x in held.results), held.results
    finally:
        results = held.release()
    for r in results:
        assert not isinstance(r, Exception) and r.status == 200, r
        assert r.body == b"held-answer" and r.header("X-Doc") == "a", r


def test_a_document_swap_leaves_held_requests_on_their_own(egw, base, raw, _emodule):
    """The requests keep the document they started with (its outbound
    header), though every process has moved on to the next one meanwhile."""
    held = Held(egw, raw, 2 * POOLED[egw.setup] + 1).start()
    try:
        egw.apply(held_doc(base, raw, "b"), timeout=20)
        raw.script("/ev/now", response(200, b"now"))
        r = egw.get(egw.mount + "/held/now", timeout=20)
        assert r.status == 200 and r.header("X-Doc") == "b", r
    finally:
        results = held.release()
        egw.apply(_emodule.doc, timeout=20)
    for r in results:
        assert not isinstance(r, Exception) and r.status == 200, r
        assert r.header("X-Doc") == "a", r


def half_request(rid):
    """A request's FCGI_BEGIN_REQUEST and half of its parameters."""
    params = nv("REQUEST_METHOD", "GET") + nv("REQUEST_URI", "/api/echo/never")
    return (record(BEGIN_REQUEST, rid, struct.pack(">HB5x", 1, 0)) +
            record(PARAMS, rid, params))


def test_silent_fastcgi_connections_hold_nothing(egw):
    if egw.setup != "lighttpd-socket":
        pytest.skip("raw connections to the listener: lighttpd-socket's")
    silent = []
    try:
        for k in range(2 * POOLED[egw.setup] + 1):
            s = connect(egw)
            s.sendall(half_request(k + 1))
            silent.append(s)
        r = egw.get(egw.mount + "/echo/beside-the-silent", timeout=20)
        assert r.status == 200, r
        # each silent connection is dropped at its deadline (the default
        # idle timeout, 10 s, for a request's parameters): no answer, EOF
        for s in silent:
            s.settimeout(30)
            assert s.recv(1) == b"", "a silent connection got an answer"
    finally:
        for s in silent:
            s.close()


def records_until_close(s):
    reader, out = Reader(s), []
    while True:
        rec = reader.record()
        if rec is None:
            return out
        out.append(rec)


@pytest.fixture
def lgw(egw):
    if egw.setup != "lighttpd-socket":
        pytest.skip("raw FastCGI records to the listener: lighttpd-socket's")
    return egw


def test_get_values_and_unknown_management_records(lgw):
    s = connect(lgw)
    try:
        names = nv("FCGI_MAX_CONNS", "") + nv("FCGI_MPXS_CONNS", "") + nv("FCGI_NOSUCH", "")
        s.sendall(record(GET_VALUES, 0, names) + record(20, 0, b"xyz"))
        reader = Reader(s)
        rtype, rid, content = reader.record()
        assert (rtype, rid) == (GET_VALUES_RESULT, 0)
        assert content == nv("FCGI_MAX_CONNS", "64") + nv("FCGI_MPXS_CONNS", "0"), content
        rtype, rid, content = reader.record()
        assert (rtype, rid) == (UNKNOWN_TYPE, 0) and content == bytes([20]) + bytes(7), content
        # and the connection then serves a request
        s.sendall(request_bytes(1, "/api/echo/after-management"))
        raw_answer, _ = read_answer(reader, 1)
        assert split_http(raw_answer)[0].startswith("Status: 200 "), raw_answer
    finally:
        s.close()


def test_a_second_request_on_a_busy_connection_is_refused(lgw):
    params = b"".join(nv(k, v) for k, v in [
        ("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/api/echo/mpx"), ("SCRIPT_NAME", "/api"),
        ("REMOTE_ADDR", "127.0.0.1"), ("HTTP_HOST", "127.0.0.1")])
    s = connect(lgw)
    try:
        s.sendall(record(BEGIN_REQUEST, 1, struct.pack(">HB5x", 1, KEEP_CONN)) +
                  record(PARAMS, 1, params[:10]) +
                  record(BEGIN_REQUEST, 2, struct.pack(">HB5x", 1, 0)) +
                  record(PARAMS, 1, params[10:]) + record(PARAMS, 1) + record(STDIN, 1))
        reader = Reader(s)
        rtype, rid, content = reader.record()
        assert (rtype, rid) == (END_REQUEST, 2), (rtype, rid)
        assert struct.unpack(">IB3x", content) == (0, CANT_MPX_CONN), content
        raw_answer, _ = read_answer(reader, 1)
        assert split_http(raw_answer)[0].startswith("Status: 200 "), raw_answer
    finally:
        s.close()


def test_an_abort_before_the_parameters_end(lgw):
    s = connect(lgw)
    try:
        s.sendall(half_request(5) + record(ABORT_REQUEST, 5))
        reader = Reader(s)
        rtype, rid, content = reader.record()
        assert (rtype, rid) == (END_REQUEST, 5), (rtype, rid)
        s.sendall(request_bytes(6, "/api/echo/after-abort"))
        raw_answer, _ = read_answer(reader, 6)
        assert split_http(raw_answer)[0].startswith("Status: 200 "), raw_answer
    finally:
        s.close()


@pytest.mark.parametrize("junk", ["params-past-the-limit", "not-fastcgi"])
def test_a_connection_that_breaks_the_protocol_is_dropped(lgw, junk):
    s = connect(lgw)
    try:
        if junk == "not-fastcgi":
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        else:
            s.sendall(record(BEGIN_REQUEST, 1, struct.pack(">HB5x", 1, 0)))
            chunk = record(PARAMS, 1, nv("HTTP_X_BIG", "x" * 60000))
            try:
                for _ in range(20):     # 1.2 MB of parameters, past the 1 MiB limit
                    s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass    # dropped while we were still sending
        assert records_until_close(s) == [], "an answer to a broken connection"
    except ConnectionResetError:
        pass
    finally:
        s.close()
    r = lgw.get(lgw.mount + "/echo/after-" + junk, timeout=20)
    assert r.status == 200, r


def test_keep_conn_connections_that_sit_idle_hold_nothing(lgw):
    """Kept connections between requests (Apache's enablereuse pool) wait for
    their next request as long as the web server likes, each on its own: more
    of them than there are processes, and a request still gets through."""
    idle = []
    try:
        for k in range(2 * POOLED[lgw.setup] + 1):
            s = connect(lgw)
            s.sendall(request_bytes(k + 1, "/api/echo/keep-%d" % k, keep=True))
            read_answer(Reader(s), k + 1)
            idle.append(s)
        r = lgw.get(lgw.mount + "/echo/beside-the-idle", timeout=20)
        assert r.status == 200, r
        # and each kept connection takes its next request
        for k, s in enumerate(idle):
            s.sendall(request_bytes(100 + k, "/api/echo/again-%d" % k))
            raw_answer, _ = read_answer(Reader(s), 100 + k)
            assert split_http(raw_answer)[0].startswith("Status: 200 "), raw_answer
    finally:
        for s in idle:
            s.close()
