"""The cache in Redis when gateway.counters names one (config-v1.md; docs/state.md,
"Redis"; docs/deploying.md, "Several hosts"): two gateways (two lighttpd
instances, each with its own hostgate-fcgi listener, state directory and shared
memory, the same document) share one real redis-server: an answer cached by
gateway A is served by gateway B without reaching the upstream (nginx's access
log proves it), a value stored on A is read on B, removed on B is gone on A;
caching-type "internal" stays per host. Redis killed: both gateways still
answer, each from its own shared memory (a miss, then a hit, per gateway),
none waits past timeout_ms; Redis back: shared again. A Redis that accepts
and never answers costs at most timeout_ms a request, and the request is
answered.

lighttpd-socket only: what is tested is the app's (its cache store, the
worker's one Redis connection shared with the counters, its deadline and
breaker), not the web server's; the other set-ups run the same code, and
test_cache.py already runs the cache policies through them. Each gateway
runs a fixed number of workers (--workers 4), so "every worker back on Redis"
is something the health path can show.

The Redis server is Debian's redis-server, started here on a free loopback
port with its own directory and no persistence (test_redis_counters.RedisServer).
"""

import copy
import json
import os
import re
import subprocess
import time
import uuid

import pytest

from servers import Gateway
from test_redis_counters import RedisServer, SilentServer, wait_all_ok

TIMEOUT_MS = 1000        # as test_redis_counters: generous for a loaded machine
PREFIX = "hgcr:"


def tok():
    return uuid.uuid4().hex[:12]


def api(api_id, inbound, outbound=None, backend="echo"):
    pol = {"inbound": inbound}
    if outbound is not None:
        pol["outbound"] = outbound
    return {"id": api_id, "path": api_id, "backend": backend,
            "subscription_required": False, "policies": pol}


def store(duration=600):
    return {"cache-store": {"duration": duration}}


def lookup(**kw):
    return {"cache-lookup": kw}


def cr_doc(base, url, timeout_ms=TIMEOUT_MS):
    doc = copy.deepcopy(base)
    doc["gateway"]["counters"] = {"store": "redis", "url": url, "timeout_ms": timeout_ms,
                                  "prefix": PREFIX}
    doc["apis"] = doc["apis"] + [
        api("cr", [lookup(**{"vary-by-query-parameter": ["q"]})], [store()]),
        api("cr-int", [lookup(**{"caching-type": "internal"})], [store()]),
        api("cr-ext", [lookup(**{"caching-type": "external"})], [store()]),
        api("cr-vset", [{"cache-store-value": {"key": "k-${request.query.k}",
                                               "value": "${request.query.v}",
                                               "duration": 600}},
                        {"return-response": {"status-code": 200, "body": "stored"}}]),
        api("cr-vget", [{"cache-lookup-value": {"key": "k-${request.query.k}",
                                                "variable-name": "got",
                                                "default-value": "none"}},
                        {"return-response": {"status-code": 200, "body": "[${var.got}]"}}]),
        api("cr-vdel", [{"cache-remove-value": {"key": "k-${request.query.k}",
                                                "caching-type": "external"}},
                        {"return-response": {"status-code": 200, "body": "removed"}}]),
    ]
    return doc


@pytest.fixture(scope="module")
def redis(workroot):
    r = RedisServer(workroot)
    r.start()
    yield r
    r.kill()


@pytest.fixture(scope="module")
def url(redis):
    return "redis://127.0.0.1:%d/0" % redis.port


@pytest.fixture(scope="module")
def pair(workroot, binary, base, redis, url):
    gws = []
    try:
        for tag in ("-cr-a", "-cr-b"):
            g = Gateway(workroot, "lighttpd-socket", binary, tag=tag)
            gws.append(g)
            gen = g.config.write(cr_doc(base, url))
            g.start()
            g.wait_generation(gen, timeout=20)
        yield gws
    finally:
        for g in gws:
            g.stop()


def upstream_count(nginx, token):
    nginx.settle()
    return len(nginx.requests_with(token, expect=False))


def timed_get(g, path):
    t0 = time.monotonic()
    r = g.get(path, timeout=30)
    return r, time.monotonic() - t0


def cache_keys(redis):
    return [k for k in redis.cli("--scan", "--pattern", PREFIX + "cache:*").splitlines() if k]


# ---- sharing -------------------------------------------------------------------


def test_an_answer_cached_by_a_is_served_by_b(pair, nginx, redis):
    a, b = pair
    t = tok()
    before = set(cache_keys(redis))
    path = "/api/cr/one-%s?q=1" % t
    r1 = a.get(path)
    assert r1.status == 200 and r1.header("Age") is None
    r2 = b.get(path)
    assert r2.status == 200 and r2.header("Age") is not None, r2
    assert r2.body == r1.body and r2.header("Content-Type") == r1.header("Content-Type")
    assert b.get("/api/cr/one-%s?q=2" % t).header("Age") is None   # varies by q
    assert upstream_count(nginx, t) == 2
    # one Redis string per entry: prefix, "cache:", 64 hex; Redis expires it
    new = set(cache_keys(redis)) - before
    assert len(new) == 2 and all(re.match(r"^hgcr:cache:[0-9a-f]{64}$", k) for k in new), new
    for k in new:
        assert 0 < int(redis.cli("PTTL", k)) <= 600000


def test_external_is_shared_and_internal_stays_per_host(pair, nginx):
    a, b = pair
    t = tok()
    assert a.get("/api/cr-ext/x-%s" % t).status == 200
    assert b.get("/api/cr-ext/x-%s" % t).header("Age") is not None
    assert upstream_count(nginx, "x-" + t) == 1
    # internal: each host's own shared memory, so B misses what A stored
    assert a.get("/api/cr-int/i-%s" % t).header("Age") is None
    assert b.get("/api/cr-int/i-%s" % t).header("Age") is None
    assert a.get("/api/cr-int/i-%s" % t).header("Age") is not None
    assert b.get("/api/cr-int/i-%s" % t).header("Age") is not None
    assert upstream_count(nginx, "i-" + t) == 2


def test_values_are_shared(pair):
    a, b = pair
    k = tok()
    assert a.get("/api/cr-vset/x?k=%s&v=hello" % k).body == b"stored"
    assert b.get("/api/cr-vget/x?k=%s" % k).body == b"[hello]"
    assert a.get("/api/cr-vget/x?k=%s" % k).body == b"[hello]"
    assert b.get("/api/cr-vdel/x?k=%s" % k).body == b"removed"
    assert a.get("/api/cr-vget/x?k=%s" % k).body == b"[none]"


def test_external_without_redis_is_refused_at_its_path(base, workroot, binary):
    doc = cr_doc(base, "redis://127.0.0.1:1/0")
    del doc["gateway"]["counters"]
    ids = [x["id"] for x in doc["apis"]]
    path = os.path.join(workroot, "cr-noredis.json")
    with open(path, "w") as f:
        json.dump(dict(doc, generation=1), f)
    p = subprocess.run([binary, "--check", path], capture_output=True, text=True, timeout=30)
    out = p.stderr + p.stdout
    assert p.returncode != 0, out
    for api_id, pol in (("cr-ext", "cache-lookup"), ("cr-vdel", "cache-remove-value")):
        at = 'apis[%d].policies.inbound[0]["%s"].caching-type: ' % (ids.index(api_id), pol)
        assert at in out and "gateway.counters" in out, out
    # prefer-external (the default) and internal load without Redis
    assert out.count("caching-type") == 2, out


# ---- Redis down, Redis back ------------------------------------------------------


def test_redis_killed_falls_back_to_each_hosts_memory_then_shares_again(pair, nginx,
                                                                        redis, base, url):
    a, b = pair
    for g in pair:
        g.apply(cr_doc(base, url), timeout=20)
    wait_all_ok(pair, "Redis answering every worker")
    fallbacks = a.health().json()["counters"]["cache_fallbacks"]
    redis.kill()
    try:
        t = tok()
        times = []
        for g in (a, b):
            r, dt = timed_get(g, "/api/cr/down-%s" % t)     # a miss on each host
            times.append(dt)
            assert r.status == 200 and r.header("Age") is None, r
            r, dt = timed_get(g, "/api/cr/down-%s" % t)     # its own memory: a hit
            times.append(dt)
            assert r.status == 200 and r.header("Age") is not None, r
        assert upstream_count(nginx, "down-" + t) == 2
        # values too, each host its own
        k = tok()
        r, dt = timed_get(a, "/api/cr-vset/x?k=%s&v=local" % k)
        times.append(dt)
        assert r.body == b"stored"
        r, dt = timed_get(a, "/api/cr-vget/x?k=%s" % k)
        times.append(dt)
        assert r.body == b"[local]"
        r, dt = timed_get(b, "/api/cr-vget/x?k=%s" % k)
        times.append(dt)
        assert r.body == b"[none]"
        assert max(times) < TIMEOUT_MS / 1000.0 + 1.5, times
        c = a.health().json()["counters"]
        assert c["state"] == "degraded", c
        # A's two lookups, its store and the value store and lookup fell back
        assert c["cache_fallbacks"] >= fallbacks + 5, (fallbacks, c)
    finally:
        if not redis.proc.alive():
            redis.start()
    wait_all_ok(pair, "every worker back on Redis")
    t = tok()
    assert a.get("/api/cr/up-%s" % t).header("Age") is None
    assert b.get("/api/cr/up-%s" % t).header("Age") is not None
    assert upstream_count(nginx, "up-" + t) == 1


def test_a_redis_that_never_answers_costs_at_most_timeout_ms(pair, nginx, base, url):
    silent = SilentServer()
    g = pair[0]
    timeout_ms = 300
    try:
        g.apply(cr_doc(base, "redis://127.0.0.1:%d/0" % silent.port, timeout_ms), timeout=20)
        t = tok()
        times = []
        ages = []
        for _ in range(6):
            r, dt = timed_get(g, "/api/cr/silent-%s" % t)
            assert r.status == 200, r
            times.append(dt)
            ages.append(r.header("Age"))
        assert max(times) < timeout_ms / 1000.0 + 0.7, times
        assert ages[0] is None and all(x is not None for x in ages[1:]), ages
        assert upstream_count(nginx, "silent-" + t) == 1
    finally:
        silent.stop()
        g.apply(cr_doc(base, url), timeout=20)
