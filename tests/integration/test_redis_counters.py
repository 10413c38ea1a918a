"""gateway.counters with store redis (config-v1.md; docs/deploying.md,
"Several hosts"): two gateways (two lighttpd instances, each with its own
hostgate-fcgi listener, state directory and shared memory, the same document)
share rate limits and quotas through one real redis-server, exactly, under
concurrent load; Redis killed and restarted mid-run under each on_failure; a
Redis that accepts connections and never answers; requests waiting on a paused
Redis holding up no other; the connection count read from Redis itself.

These run on lighttpd-socket only: what they test is the app's (its counter
store, its kept connections, at most REDIS_CONN_MAX per FastCGI worker, its
timeouts), not the web server's, and the socket set-up has a fixed number of
workers (--workers 4), which is what makes the connection counts numbers
Redis can check.
The other set-ups run the same code (apache-cgi connects per request, as
docs/deploying.md says); running this module on them would only repeat it.

The Redis server is Debian's redis-server, started here on a free loopback
port with its own directory and no persistence; the system's is never used.
"""

import copy
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import re
import shutil

import pytest

import policy_docs as pd
from harness import Proc, free_port, port_open, wait_until
from servers import Gateway, LogWatch, mkdir

WORKERS = 4             # servers.Gateway._start_listener: --workers 4
REDIS_CONN_MAX = 8      # common/redisconn.h
# generous: on a loaded machine a reply later than timeout_ms sends that
# worker to on_failure for a second, and the exact-sharing checks would see
# it; the tests of the timeout itself set their own
TIMEOUT_MS = 1000
METRICS = "/metrics-rd"


def tok():
    return uuid.uuid4().hex[:12]


class RedisServer:
    def __init__(self, root):
        self.dir = mkdir(os.path.join(root, "redis"))
        self.port = free_port()
        self.proc = None

    def start(self):
        assert shutil.which("redis-server") and shutil.which("redis-cli"), \
            "redis-server and redis-cli are missing: scripts/install-deps installs them"
        self.proc = Proc("redis-server", [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", self.dir, "--save", "", "--appendonly", "no",
            "--protected-mode", "no", "--daemonize", "no"],
            os.path.join(self.dir, "redis.log"))
        wait_until(lambda: self.proc.check_alive() or port_open(self.port), 10,
                   "redis-server on port %d" % self.port)

    def kill(self):
        self.proc.stop(sig=signal.SIGKILL)

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def info(self, section):
        out = {}
        for line in self.cli("INFO", section).splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                out[k] = v.strip()
        return out

    def clients(self):
        """Client connections other than redis-cli's own."""
        return [c for c in self.cli("CLIENT", "LIST").splitlines() if "cmd=client" not in c]


class SilentServer:
    """Accepts connections and never answers (nor closes)."""
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def stop(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()


def rd_doc(base, url, on_failure="local", timeout_ms=TIMEOUT_MS):
    doc = copy.deepcopy(base)
    doc["gateway"]["counters"] = {"store": "redis", "url": url, "on_failure": on_failure,
                                  "timeout_ms": timeout_ms, "prefix": "hgtest:"}
    doc["gateway"]["metrics"] = {"path": METRICS, "allow": ["127.0.0.1/32"]}
    key = "${request.query.k}"
    doc["apis"].append(pd.api("rd", "echo", ops=[
        pd.op("rl", "GET", "/rl", inbound=[{"rate-limit-by-key": {
            "calls": 5, "renewal-period": 600, "counter-key": key}}]),
        pd.op("rl-big", "GET", "/rl-big", inbound=[{"rate-limit-by-key": {
            "calls": 50, "renewal-period": 600, "counter-key": key}}]),
        pd.op("quota", "GET", "/quota", inbound=[{"quota-by-key": {
            "calls": 30, "renewal-period": 3600, "counter-key": key}}]),
        pd.op("free", "GET", "/free", inbound=[{"rate-limit-by-key": {
            "calls": 1000000, "renewal-period": 600, "counter-key": key}}]),
    ]))
    doc["apis"].append(pd.api("rdb", "httpbin", ops=[
        pd.op("bw", "GET", "/bytes/{n}", inbound=[{"quota-by-key": {
            "bandwidth": 64, "renewal-period": 3600, "counter-key": key}}]),
    ]))
    return doc


@pytest.fixture(scope="module")
def redis(workroot):
    r = RedisServer(workroot)
    r.start()
    yield r
    r.kill()


@pytest.fixture(scope="module")
def pair(workroot, binary, base, redis):
    gws = []
    try:
        for tag in ("-rd-a", "-rd-b"):
            g = Gateway(workroot, "lighttpd-socket", binary, tag=tag)
            gws.append(g)
            gen = g.config.write(rd_doc(base, "redis://127.0.0.1:%d/0" % redis.port))
            g.start()
            g.wait_generation(gen, timeout=20)
        yield gws
    finally:
        for g in gws:
            g.stop()


def apply_both(pair, doc):
    for g in pair:
        g.apply(doc, timeout=20)


def fire(n, fn):
    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        try:
            barrier.wait(30)
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - returned to the test
            out[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in out if isinstance(r, Exception)]
    assert not errors, errors[:3]
    return out


def statuses(results):
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def counters_states(g, n=16):
    """The counters member of n concurrent health answers (several workers)."""
    return fire(n, lambda i: g.health().json().get("counters"))


def all_ok(pair):
    return all(c and c["state"] == "ok" for g in pair for c in counters_states(g))


def wait_all_ok(pair, what):
    """Three bursts in a row in which every answering worker of both
    gateways reaches Redis (a burst may miss a worker)."""
    clean = [0]

    def three():
        clean[0] = clean[0] + 1 if all_ok(pair) else 0
        return clean[0] >= 3
    wait_until(three, 30, what, interval=0.05)


def shared_exactly(pair, path, limit, n, refused):
    k = tok()
    res = fire(n, lambda i: pair[i % 2].get("/api/rd/%s?k=%s&i=%d" % (path, k, i), timeout=60))
    assert statuses(res) == {200: limit, refused: n - limit}, statuses(res)
    return k


# ---- sharing -------------------------------------------------------------------


def test_two_gateways_share_a_rate_limit_exactly(pair, redis):
    k = shared_exactly(pair, "rl-big", 50, 160, 429)
    # the count is Redis's, under a key naming the policy's scope
    keys = [x for x in redis.cli("--scan", "--pattern", "hgtest:*").splitlines() if x.endswith(k)]
    assert len(keys) == 1, keys
    assert re.match(r"^hgtest:rk:.*rl-big.*:inbound#0:k:%s$" % k, keys[0]), keys
    assert redis.cli("GET", keys[0]) == "50"
    ttl = int(redis.cli("PTTL", keys[0]))
    assert 0 < ttl <= 600000
    # each gateway alone would have let 50 through: neither counted locally
    r = pair[0].get("/api/rd/rl-big?k=%s" % k)
    assert r.status == 429 and 1 <= int(r.header("Retry-After")) <= 600


def test_two_gateways_share_a_quota_exactly(pair):
    k = shared_exactly(pair, "quota", 30, 90, 403)
    r = pair[1].get("/api/rd/quota?k=%s" % k)
    assert r.status == 403 and int(r.header("Retry-After")) > 600


def test_two_gateways_share_a_bandwidth_quota(pair):
    # 64 KiB a key, answers of 40000 bytes: the first two pass (39 KiB
    # counted after the first), the third is refused whichever gateway it
    # reaches: 78 KiB were counted, half by each gateway, in Redis
    k = tok()
    got = [pair[i % 2].get("/api/rdb/bytes/40000?k=%s" % k).status for i in range(4)]
    assert got[:2] == [200, 200] and got[2:] == [403, 403], got


def test_policies_never_share_a_counter(pair, redis):
    k = tok()
    for i in range(5):
        assert pair[i % 2].get("/api/rd/rl?k=%s" % k).status == 200
    assert pair[0].get("/api/rd/rl?k=%s" % k).status == 429
    # same key value, another policy: its own counter
    assert pair[1].get("/api/rd/rl-big?k=%s" % k).status == 200


def test_long_keys_are_hashed(pair, redis):
    k = "x" * 1000 + tok()
    for i in range(5):
        assert pair[i % 2].get("/api/rd/rl?k=%s" % k).status == 200
    assert pair[1].get("/api/rd/rl?k=%s" % k).status == 429
    assert not [x for x in redis.cli("--scan", "--pattern", "hgtest:*").splitlines()
                if len(x) > 200]


def test_connections_are_kept_and_bounded(pair, redis):
    # every worker of both gateways connected (and the script loaded); a
    # worker opens a connection per call in flight, REDIS_CONN_MAX at most
    for _ in range(3):
        fire(32, lambda i: pair[i % 2].get("/api/rd/free?k=%s" % tok()))
    clients = redis.clients()
    assert 1 <= len(clients) <= 2 * WORKERS * REDIS_CONN_MAX, clients
    before = int(redis.info("stats")["total_connections_received"])
    res = [pair[i % 2].get("/api/rd/free?k=%s" % tok()) for i in range(100)]
    assert statuses(res) == {200: 100}
    after = int(redis.info("stats")["total_connections_received"])
    # kept: redis-cli's own INFO connection is the only new one
    assert after - before <= 1, (before, after)
    assert redis.info("memory").get("number_of_cached_scripts", "1") == "1"


def test_health_and_metrics_report_the_store(pair):
    c = pair[0].health().json()["counters"]
    assert c["store"] == "redis" and c["state"] == "ok" and c["error"] is None, c
    m = pair[0].get("/api" + METRICS).text()
    assert "hostgate_counter_store_up 1" in m, m[-600:]
    assert "hostgate_counter_store_errors_total " in m


# ---- Redis down, Redis back --------------------------------------------------


class Load:
    """Requests from threads against both gateways until stopped, noting each
    answer's status and how long it took."""
    def __init__(self, pair, threads=4):
        self.pair, self.results, self.stopped = pair, [], False
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, i):
        while not self.stopped:
            t0 = time.monotonic()
            try:
                s = self.pair[i % 2].get("/api/rd/free?k=%s" % tok(), timeout=30).status
            except Exception as e:  # noqa: BLE001 - reported by the test
                s = repr(e)
            with self.lock:
                self.results.append((s, time.monotonic() - t0))

    def stop(self):
        self.stopped = True
        for t in self.threads:
            t.join(60)
        return self.results


@pytest.mark.parametrize("on_failure", ["local", "allow", "deny"])
def test_redis_killed_and_restarted_mid_run(pair, redis, base, on_failure):
    apply_both(pair, rd_doc(base, "redis://127.0.0.1:%d/0" % redis.port, on_failure))
    wait_all_ok(pair, "Redis answering every worker")
    watch = LogWatch(*pair)
    load = Load(pair)
    try:
        wait_until(lambda: len(load.results) >= 20, 20, "load running")
        redis.kill()
        k = tok()
        res = [pair[0].get("/api/rd/rl?k=%s" % k) for _ in range(8)]
        got = [r.status for r in res]
        if on_failure == "local":
            # counted in this host's shared memory, as without Redis
            assert got == [200] * 5 + [429] * 3, got
        elif on_failure == "allow":
            assert got == [200] * 8, got
        else:
            assert got == [503] * 8, got
            assert res[0].json()["message"] == "Service unavailable."
        c = pair[0].health().json()["counters"]
        assert c["state"] == "degraded" and c["error"], c
        m = pair[0].get("/api" + METRICS).text()
        assert "hostgate_counter_store_up 0" in m
        errs = int(re.search(r"(?m)^hostgate_counter_store_errors_total (\d+)$", m).group(1))
        assert errs >= 8
        # every worker finds Redis gone by itself (its ticker pings it each second)
        wait_until(lambda: all(d >= 1 for d, _ in redis_transitions(pair, watch).values()),
                   10, "every worker noticing that Redis is gone")
    finally:
        if not redis.proc.alive():
            redis.start()
        # back to shared counting by itself (each worker's breaker: within 10 s); a
        # burst of requests may miss a worker, its log does not
        try:
            wait_until(lambda: all(u >= d for d, u in redis_transitions(pair, watch).values()),
                       20, "every worker back on Redis")
        finally:
            results = load.stop()
    expected = {"local": {200}, "allow": {200}, "deny": {200, 503}}[on_failure]
    assert {s for s, _ in results} <= expected, statuses_of(results)
    # nobody waited on the dead Redis longer than timeout_ms (plus the trip
    # through lighttpd and a loaded machine)
    assert max(t for _, t in results) < TIMEOUT_MS / 1000.0 + 1.5
    shared_exactly(pair, "rl-big", 50, 120, 429)   # the script was loaded again


def redis_transitions(pair, watch):
    """{worker pid: (times it logged Redis lost, times it logged Redis back)}
    for every worker of both listeners. A worker logs each change once
    (common/redisconn.c), lost and back in turn, to the listener's log or, from
    a request, to the web server's: counting is order-free across the files."""
    out = {}
    for g in pair:
        with open("/proc/%d/task/%d/children" % (g.listener.pid, g.listener.pid)) as f:
            out.update((int(pid), [0, 0]) for pid in f.read().split())
    for pid, what in re.findall(r"\[(\d+)\]: \w+: redis: (answering again|[^\n]*; retrying in)",
                                watch.text()):
        if int(pid) in out:
            out[int(pid)][what == "answering again"] += 1
    return out


def statuses_of(results):
    counts = {}
    for s, _ in results:
        counts[s] = counts.get(s, 0) + 1
    return counts


def test_a_redis_that_never_answers(pair, base, redis):
    silent = SilentServer()
    try:
        timeout_ms = 300
        g = pair[0]
        g.apply(rd_doc(base, "redis://127.0.0.1:%d/0" % silent.port, "deny", timeout_ms),
                timeout=20)
        # applying the document already tried Redis from every worker (the
        # health path pings it): each breaker is open; for 3.5 s, as each
        # breaker lets one attempt through (1 s, then 2 s after a failure),
        # that request waits timeout_ms, the others answer at once
        times = []
        end = time.monotonic() + 3.5
        while time.monotonic() < end:
            t0 = time.monotonic()
            r = g.get("/api/rd/rl?k=%s" % tok())
            times.append(time.monotonic() - t0)
            assert r.status == 503, r
        assert max(times) < timeout_ms / 1000.0 + 0.7, max(times)
        assert max(times) >= timeout_ms / 1000.0 * 0.9, max(times)
        slow = [t for t in times if t >= timeout_ms / 1000.0 * 0.9]
        assert len(slow) <= 3 * WORKERS, (len(slow), len(times))
        assert len(times) > 10 * len(slow), (len(slow), len(times))
        c = g.health().json()["counters"]
        assert c["state"] == "degraded" and "timed out" in c["error"], c
    finally:
        silent.stop()
        pair[0].apply(rd_doc(base, "redis://127.0.0.1:%d/0" % redis.port), timeout=20)


def test_requests_waiting_on_redis_hold_up_no_other(pair, base, redis):
    """Redis paused for writes (CLIENT PAUSE WRITE: EVALSHA waits, PING
    answers): twice as many counted requests wait in Redis at once as the
    gateway has processes, and meanwhile requests that count nothing answer.
    A process that waited for Redis with its one blocking connection would
    have at most one request in Redis, and none of its other requests would
    answer until that one's reply. A reload that changes gateway.counters
    meanwhile leaves the waiting requests their connections."""
    g = pair[0]
    n = 2 * WORKERS
    k = tok()
    url = "redis://127.0.0.1:%d/0" % redis.port
    g.apply(rd_doc(base, url, "deny", 10000), timeout=20)
    threads = []
    try:
        assert g.get("/api/rd/rl-big?k=%s" % k).status == 200     # the script loaded
        assert redis.cli("CLIENT", "PAUSE", "30000", "WRITE") == "OK"
        counted = [None] * n

        def count(i):
            counted[i] = g.get("/api/rd/rl-big?k=%s&i=%d" % (k, i), timeout=60)

        def blocked():
            return int(redis.info("clients")["blocked_clients"])
        try:
            threads = [threading.Thread(target=count, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            wait_until(lambda: blocked() >= n, 20,
                       "%d counted requests waiting in Redis" % n)
            others = fire(2 * n, lambda i: g.get("/api/echo/meanwhile-%d" % i, timeout=60))
            assert statuses(others) == {200: 2 * n}
            assert counted == [None] * n and blocked() >= n
            # a reload that changes gateway.counters while they wait: their
            # store is retired, not freed under them
            g.apply(rd_doc(base, url, "deny", 9000), timeout=20)
            assert counted == [None] * n
        finally:
            redis.cli("CLIENT", "UNPAUSE")
            for t in threads:
                t.join(60)
        assert statuses(counted) == {200: n}
        # each counted once: 1 + n of the 50
        key = redis.cli("--scan", "--pattern", "hgtest:*" + k).splitlines()[0]
        assert redis.cli("GET", key) == str(1 + n)
    finally:
        g.apply(rd_doc(base, url), timeout=20)


def test_unix_socket_and_password(pair, base, workroot, redis):
    d = mkdir(os.path.join(workroot, "redis-unix"))
    sock = os.path.join(d, "redis.sock")
    proc = Proc("redis-server unix", [
        "redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "777",
        "--requirepass", "rd-s3cret", "--dir", d, "--save", "", "--appendonly", "no"],
        os.path.join(d, "redis.log"))
    try:
        wait_until(lambda: proc.check_alive() or os.path.exists(sock), 10, "the unix socket")
        doc = rd_doc(base, "unix:" + sock, "deny")
        doc["named_values"]["redis-password"] = {"value": "rd-s3cret", "secret": True}
        doc["gateway"]["counters"]["password"] = "{{redis-password}}"
        apply_both(pair, doc)
        k = tok()
        got = [pair[i % 2].get("/api/rd/rl?k=%s" % k).status for i in range(7)]
        assert got == [200] * 5 + [429] * 2, got
        out = subprocess.run(["redis-cli", "-s", sock, "--scan", "--pattern", "hgtest:*" + k],
                             env=dict(os.environ, REDISCLI_AUTH="rd-s3cret"),
                             capture_output=True, text=True, timeout=10).stdout.split()
        assert len(out) == 1, out
        # a wrong password: degraded, Redis's reason shown, no password
        doc["named_values"]["redis-password"]["value"] = "wrong-pass"
        pair[0].apply(doc, timeout=20)
        assert pair[0].get("/api/rd/rl?k=%s" % tok()).status == 503
        r = pair[0].health()
        c = r.json()["counters"]
        assert c["state"] == "degraded" and c["error"].startswith("AUTH"), c
        assert "wrong-pass" not in r.text() and "rd-s3cret" not in r.text()
    finally:
        proc.stop()
        apply_both(pair, rd_doc(base, "redis://127.0.0.1:%d/0" % redis.port))
