"""Slow clients cannot starve the gateway (issue 8, item 2).

A client that sends its headers and then trickles the body, or reads the
answer slowly, must not hold a hostgate worker for longer than the
gateway.client_* deadlines allow: a body gets client_body_timeout_ms plus
one second per client_body_min_rate bytes, a read or write
client_idle_timeout_ms, the whole request client_request_timeout_ms.

Raw sockets throughout: the clients here misbehave on purpose. Every loop
is bounded in time and count; pacing sleeps are the misbehaviour itself,
never a way to wait for the gateway (that is wait_until or a socket
timeout).
"""

import json
import os
import random
import select
import socket
import threading
import time
import uuid

import pytest

from harness import _read_response, assert_gateway_error, wait_until
from servers import CGI_SETUPS, RESIDENT_WORKERS

# set-ups where a slow request body reaches hostgate: lighttpd streams it
# (server.stream-request-body = 2), mod_proxy_fcgi and mod_cgid pass it on
# as it comes. mod_fcgid reads the whole body before it starts the
# application, so a trickle never reaches hostgate there.
STREAMING = ("lighttpd-socket", "lighttpd-binpath", "apache-proxy-fcgi", "apache-cgi",
             "apache-cgi-resident")
# set-ups with a fixed number of hostgate workers (servers.py: --workers 4,
# hostgate_procs 4): the ones a slow-loris attack can starve
POOLED = {"lighttpd-socket": 4, "lighttpd-binpath": 4, "apache-proxy-fcgi": 4,
          "apache-cgi-resident": RESIDENT_WORKERS}


def token():
    return uuid.uuid4().hex[:12]


def open_post(gw, target, length, headers=()):
    """A connection that has sent a POST's head (Content-Length: length)
    and nothing of its body yet."""
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    head = "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n" \
           "Content-Type: application/octet-stream\r\nConnection: close\r\n" % (
               target, gw.port, length)
    head += "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n"
    s.sendall(head.encode("latin-1"))
    return s


def trickle(sock, chunks, interval, limit_s):
    """Sends chunks one at a time, interval seconds apart (a callable
    gives each pause), stopping early when the server says something or
    closes. Returns (the response or None, seconds taken); the response is
    None when the server only closed. Bounded by limit_s and len(chunks)."""
    t0 = time.monotonic()
    for piece in chunks:
        pause = interval() if callable(interval) else interval
        if time.monotonic() - t0 + pause > limit_s:
            break
        r, _, _ = select.select([sock], [], [], pause)
        if r:
            break       # an answer (or a close) before the body was all sent
        try:
            sock.sendall(piece)
        except OSError:
            break
    return read_answer(sock, t0)


def read_answer(sock, t0, timeout=15):
    sock.settimeout(timeout)
    f = sock.makefile("rb")
    try:
        return _read_response(f, "POST", None, t0)
    except (ConnectionError, OSError):
        return None
    finally:
        f.close()


# ---- a trickled body -------------------------------------------------------

def access_record(gw, rid, timeout=15):
    """hostgate's access log record of the request rid (waits for it)."""
    def find():
        with open(gw.access_log) as f:
            for line in f:
                rec = json.loads(line)
                if rec["request_id"] == rid:
                    return rec
        return None
    return wait_until(find, timeout, "hostgate to log request %s" % rid)


def test_trickled_body_gets_408(gw):
    """With the shipped defaults (1 s grace, 500 bytes/s), a body that comes
    a byte every half second runs out of time within a few seconds: hostgate
    ends the request with 408, and the client is told why (the gateway's
    JSON error) wherever the web server can pass an early answer on."""
    if gw.setup not in STREAMING:
        pytest.skip("mod_fcgid reads the whole body before hostgate sees the request")
    t = token()
    rid = "slow-" + t
    s = open_post(gw, "/api/hb/anything/slow-%s" % t, 1000, [("X-Request-Id", rid)])
    try:
        r = trickle(s, [b"x"] * 60, 0.5, limit_s=15)
    finally:
        s.close()
    rec = access_record(gw, rid)
    assert rec["status"] == 408, rec
    assert rec["duration_ms"] < 5000, rec
    if gw.setup.startswith("apache"):
        # Apache passes an answer on only once it has sent the application the
        # whole body (mod_proxy_fcgi, mod_cgid alike): hostgate is done and free
        # (logged above); the trickling client hears from Apache, on Apache's
        # terms (its Timeout, mod_reqtimeout)
        return
    assert r is not None, "the gateway closed without an answer"
    assert_gateway_error(r, 408, request_id=rid)
    assert r.elapsed < 10, r.elapsed


def test_trickle_within_the_limits_succeeds(gw, httpbin):
    """A slow but honest upload (1000 bytes/s, twice the minimum rate) goes
    through whole, for longer than the grace period."""
    if gw.setup == "apache-fcgid":
        pytest.skip("mod_fcgid reads the whole body before hostgate sees the request")
    t = token()
    body = (t * 500).encode()[:5000]
    s = open_post(gw, "/api/hb/anything/trickle-%s" % t, len(body))
    try:
        r = trickle(s, [body[i:i + 250] for i in range(0, len(body), 250)], 0.25, limit_s=30)
    finally:
        s.close()
    assert r is not None and r.status == 200, r
    assert r.elapsed > 4, r.elapsed     # it did outlast the 2 s grace period
    assert r.json()["data"] == body.decode()


def test_refused_trickle_does_not_hold_a_cgi_process(gw):
    """A request refused before its body is read (404) with a body that
    trickles on: the CGI process drains stdin only until the body's
    deadline, then ends. Before, it read for as long as the client sent."""
    if gw.setup not in CGI_SETUPS:
        pytest.skip("the CGI process's own drain of stdin")
    t = token()
    before = set(gw.hostgate_pids())
    s = open_post(gw, "/api/nope/slow-%s" % t, 100000)
    stop = threading.Event()

    def pace():
        for _ in range(200):
            if stop.wait(0.5):
                return
            try:
                s.sendall(b"x")
            except OSError:
                return
    th = threading.Thread(target=pace, daemon=True)
    th.start()
    try:
        # the process of this request shows up, then goes, while the client
        # is still sending
        wait_until(lambda: set(gw.hostgate_pids()) - before, 10, "the CGI process to start")
        mine = set(gw.hostgate_pids()) - before
        wait_until(lambda: not (mine & set(gw.hostgate_pids())), 15,
                   "the CGI process of a refused trickling request to end")
        assert th.is_alive(), "the client stopped sending before the process ended"
    finally:
        stop.set()
        th.join(5)
        s.close()


# ---- slow loris: 4x as many slow clients as workers --------------------------

class SlowLoris:
    """n clients, each sending a POST's head and then a byte every 2-3 s,
    reconnecting as soon as it is answered or cut off; half of them to an
    API (the body is read, and runs out of time), half to a path that is
    refused at once (404: the body is never read, only drained)."""

    def __init__(self, gw, n, limit_s):
        self.gw = gw
        self.n = n
        self.limit_s = limit_s
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.started = 0        # bodies that began to trickle
        self.answers = []       # statuses the slow clients got
        self.cut = 0            # closed without an answer
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(n)]

    def __enter__(self):
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for th in self.threads:
            th.join(10)

    def _run(self, i):
        rnd = random.Random(i)
        t_end = time.monotonic() + self.limit_s
        target = "/api/hb/anything/loris-%d" % i if i % 2 == 0 else "/api/nope/loris-%d" % i
        for _ in range(100):
            if self.stop.is_set() or time.monotonic() >= t_end:
                return
            try:
                s = open_post(self.gw, target, 100000)
            except OSError:
                continue
            try:
                first = True
                for _ in range(100):
                    if self.stop.is_set() or time.monotonic() >= t_end:
                        return
                    r, _, _ = select.select([s], [], [], 0 if first else rnd.uniform(2, 3))
                    if r:
                        break
                    s.sendall(b"x")
                    if first:
                        with self.lock:
                            self.started += 1
                        first = False
                resp = read_answer(s, time.monotonic(), timeout=5)
                with self.lock:
                    if resp is None:
                        self.cut += 1
                    else:
                        self.answers.append(resp.status)
            except OSError:
                with self.lock:
                    self.cut += 1
            finally:
                s.close()


def test_slow_loris_does_not_starve_the_workers(gw):
    """4x as many slow-loris clients as hostgate has workers, with the
    shipped defaults: a normal request is still answered within ~10 s, every
    time, and the slow clients that read the body are told 408."""
    if gw.setup not in POOLED:
        pytest.skip("no fixed worker pool to starve (mod_fcgid buffers bodies; CGI forks)")
    if gw.setup == "lighttpd-binpath":
        pytest.skip("lighttpd-socket covers lighttpd; one slow-loris run per web server")
    n = 4 * POOLED[gw.setup]
    with SlowLoris(gw, n, limit_s=60) as loris:
        wait_until(lambda: loris.started >= n, 20, "%d slow clients to start their bodies" % n)
        times = []
        for k in range(3):
            t0 = time.monotonic()
            r = gw.get("/api/echo/normal-%d" % k, timeout=30)
            times.append(time.monotonic() - t0)
            assert r.status == 200, r
        assert max(times) < 11, times
        # hostgate gave up on the slow bodies it read (408), rather than
        # waiting for them
        def gave_up():
            with open(gw.access_log) as f:
                recs = [json.loads(line) for line in f if "loris-" in line]
            return [r for r in recs if r["status"] == 408]
        wait_until(gave_up, 20, "hostgate to answer a slow client 408")
    if gw.setup.startswith("lighttpd"):
        # lighttpd passes an early answer on: the slow clients were told
        # (408 where the body was read, 404 where it was refused)
        assert 408 in loris.answers, loris.answers
        assert set(loris.answers) <= {404, 408}, loris.answers


# ---- a slow reader ---------------------------------------------------------

@pytest.fixture
def big_file(nginx):
    name = "slow-reader-%s.bin" % token()
    path = os.path.join(nginx.files, name)
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    os.chmod(path, 0o644)
    yield name
    os.unlink(path)


def test_slow_reader_is_cut_off(gw, base, big_file):
    """A client that asks for a large answer and stops reading: hostgate's
    write waits client_idle_timeout_ms (1.5 s here), then gives up, cuts the
    answer short and takes the next request, while the client still holds
    its connection open."""
    rid = "reader-" + token()
    doc = dict(base, gateway=dict(base["gateway"], client_idle_timeout_ms=1500))
    gw.apply(doc)
    s = None
    try:
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(("GET /api/files/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: %s\r\n"
                   "Connection: close\r\n\r\n" % (big_file, rid)).encode())
        assert s.recv(1024).startswith(b"HTTP/1.1 200"), "no answer started"

        # ... and reads nothing more: the gateway logs the request as over
        def logged():
            with open(gw.access_log) as f:
                return [line for line in f if '"request_id":"%s"' % rid in line]
        lines = wait_until(logged, 30, "hostgate to give up on the slow reader")
        assert '"error":null' not in lines[0], lines[0]
        # the answer the client gets is cut short, never a complete one
        s.settimeout(20)
        got = 0
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end:
            try:
                piece = s.recv(1 << 20)
            except (ConnectionError, socket.timeout):
                break
            if not piece:
                break
            got += len(piece)
        assert got < (64 << 20), got
        # and the gateway serves on
        r = gw.get("/api/echo/after-slow-reader", timeout=10)
        assert r.status == 200, r
    finally:
        if s:
            s.close()
        gw.apply(base)
