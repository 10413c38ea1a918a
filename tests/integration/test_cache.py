"""The response cache (cache-lookup, cache-store) and the value cache
(cache-lookup-value, cache-store-value, cache-remove-value) through real web
servers. The upstream is nginx's /echo/: its access log proves whether a call
reached it, so a hit is "the client got the answer, nginx logged nothing".

Policy logic that does not depend on the web server: two set-ups only,
lighttpd-socket and apache-proxy-fcgi (several hostgate processes, so hits
there cross processes through the shared-memory store).
"""

import copy
import hashlib
import json
import os
import subprocess
import threading
import uuid

import pytest

from harness import wait_until
from servers import ModuleDocument

SETUPS_HERE = ("lighttpd-socket", "apache-proxy-fcgi")
KEY_A = "hc-sub-a-0123456789"
KEY_B = "hc-sub-b-0123456789"


def tok():
    return uuid.uuid4().hex[:12]


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def api(api_id, inbound, outbound=None, required=False, backend="echo"):
    pol = {"inbound": inbound}
    if outbound is not None:
        pol["outbound"] = outbound
    return {"id": api_id, "path": api_id, "backend": backend,
            "subscription_required": required, "policies": pol}


def store(duration=600, **kw):
    return {"cache-store": dict({"duration": duration}, **kw)}


def lookup(**kw):
    return {"cache-lookup": kw}


def cache_doc(base):
    doc = copy.deepcopy(base)
    doc["apis"] = doc["apis"] + [
        api("hc-basic", [lookup(**{"vary-by-query-parameter": ["q"],
                                   "vary-by-header": ["X-Var"]})], [store()]),
        api("hc-allq", [lookup()], [store()]),
        api("hc-short", [lookup(**{"downstream-caching-type": "public"})], [store(2)]),
        api("hc-status", [lookup()], [store()], backend="httpbin"),
        api("hc-anystatus", [lookup()], [store(**{"cache-response": True})],
            backend="httpbin"),
        api("hc-sub", [lookup()], [store()], required=True),
        api("hc-dev", [lookup(**{"vary-by-developer": True})], [store()], required=True),
        api("hc-private", [lookup(**{"allow-private-response-caching": True})], [store()]),
        api("hc-vset", [{"cache-store-value": {"key": "k-${request.query.k}",
                                               "value": "${request.query.v}",
                                               "duration": 600}},
                        {"return-response": {"status-code": 200, "body": "stored"}}]),
        api("hc-vget", [{"cache-lookup-value": {"key": "k-${request.query.k}",
                                                "variable-name": "got",
                                                "default-value": "none"}},
                        {"return-response": {"status-code": 200, "body": "[${var.got}]"}}]),
        api("hc-vdel", [{"cache-remove-value": {"key": "k-${request.query.k}"}},
                        {"return-response": {"status-code": 200, "body": "removed"}}]),
    ]
    doc["products"] = doc.get("products", []) + [
        {"id": "hc-prod", "apis": ["hc-sub", "hc-dev"]}]
    doc["subscriptions"] = doc.get("subscriptions", []) + [
        {"id": "hc-a", "scope": "product:hc-prod", "state": "active",
         "keys_sha256": [sha(KEY_A)]},
        {"id": "hc-b", "scope": "product:hc-prod", "state": "active",
         "keys_sha256": [sha(KEY_B)]},
    ]
    return doc


@pytest.fixture(scope="module")
def _cmodule(gw, base):
    if gw.setup not in SETUPS_HERE:
        pytest.skip("cache policy logic runs on %s" % ", ".join(SETUPS_HERE))
    with ModuleDocument(gw, base, cache_doc(base)) as m:
        yield m


@pytest.fixture
def cgw(_cmodule):
    return _cmodule.gateway()


def upstream_count(nginx, token):
    """How many requests holding token nginx received (all logged first)."""
    nginx.settle()
    return len(nginx.requests_with(token, expect=False))


def get(g, path, headers=None):
    r = g.get(path, headers=headers or [])
    assert r.status < 500, r
    return r


# ---- the response cache ---------------------------------------------------------


def test_second_get_is_a_hit_and_never_reaches_the_backend(cgw, nginx):
    t = tok()
    path = "/api/hc-basic/hit-%s?q=1" % t
    r1 = get(cgw, path)
    assert r1.status == 200 and r1.header("Age") is None
    r2 = get(cgw, path)
    assert r2.status == 200
    assert r2.body == r1.body                       # the stored answer, byte for byte
    assert r2.header("Content-Type") == r1.header("Content-Type")
    assert r2.header("Age") is not None and int(r2.header("Age")) >= 0
    assert r2.header("X-Request-Id") and r2.header("X-Request-Id") != r1.header("X-Request-Id")
    h = cgw.request("HEAD", path)                   # HEAD: the GET's entry, no body
    assert h.status == 200 and h.header("Age") is not None and h.body == b""
    assert upstream_count(nginx, t) == 1


def test_many_hits_across_processes(cgw, nginx):
    t = tok()
    path = "/api/hc-basic/many-%s" % t
    first = get(cgw, path).body
    for _ in range(20):
        r = get(cgw, path)
        assert r.status == 200 and r.body == first and r.header("Age") is not None
    assert upstream_count(nginx, t) == 1


def test_vary_by_query_parameter_and_header_separate_entries(cgw, nginx):
    t = tok()
    p = "/api/hc-basic/vary-%s" % t
    get(cgw, p + "?q=1")
    get(cgw, p + "?q=2")                                    # another q: a miss
    get(cgw, p + "?q=1&other=x")                            # unlisted parameter: a hit
    get(cgw, p + "?q=1", headers=[("X-Var", "a")])          # another header: a miss
    get(cgw, p + "?q=1", headers=[("X-Var", "a")])          # a hit
    get(cgw, p + "?q=1", headers=[("X-Var", "b")])          # a miss
    assert upstream_count(nginx, t) == 4


def test_without_a_list_the_whole_query_varies(cgw, nginx):
    t = tok()
    p = "/api/hc-allq/q-%s" % t
    get(cgw, p + "?a=1")
    get(cgw, p + "?a=1")
    get(cgw, p + "?a=2")
    get(cgw, p + "?a=1&b=1")
    assert upstream_count(nginx, t) == 3


def test_post_is_not_cached(cgw, nginx):
    t = tok()
    p = "/api/hc-basic/post-%s" % t
    for _ in range(2):
        r = cgw.request("POST", p, body=b"x", headers=[("Content-Type", "text/plain")])
        assert r.status == 200 and r.header("Age") is None
    get(cgw, p)                  # a GET of the same path was never stored by the POSTs
    assert upstream_count(nginx, t) == 3


def test_authorization_request_is_not_cached_by_default(cgw, nginx):
    t = tok()
    p = "/api/hc-basic/auth-%s" % t
    for _ in range(2):
        r = get(cgw, p, headers=[("Authorization", "Bearer abc")])
        assert r.header("Age") is None
    assert upstream_count(nginx, t) == 2
    # nor is it served from an entry that a public request stored
    get(cgw, p)
    r = get(cgw, p, headers=[("Authorization", "Bearer abc")])
    assert r.header("Age") is None
    assert upstream_count(nginx, t) == 4


def test_allow_private_response_caching(cgw, nginx):
    t = tok()
    p = "/api/hc-private/auth-%s" % t
    get(cgw, p, headers=[("Authorization", "Bearer abc")])
    r = get(cgw, p, headers=[("Authorization", "Bearer abc")])
    assert r.header("Age") is not None
    assert upstream_count(nginx, t) == 1


def test_subscription_requests_not_cached_without_vary_by_developer(cgw, nginx):
    t = tok()
    p = "/api/hc-sub/s-%s" % t
    for key in (KEY_A, KEY_A, KEY_B):
        r = get(cgw, p, headers=[("Ocp-Apim-Subscription-Key", key)])
        assert r.status == 200 and r.header("Age") is None
    assert upstream_count(nginx, t) == 3


def test_vary_by_developer_never_crosses_subscriptions(cgw, nginx):
    t = tok()
    p = "/api/hc-dev/d-%s" % t
    a1 = get(cgw, p, headers=[("Ocp-Apim-Subscription-Key", KEY_A)])
    b1 = get(cgw, p, headers=[("Ocp-Apim-Subscription-Key", KEY_B)])
    assert b1.header("Age") is None                 # B does not get A's answer
    a2 = get(cgw, p, headers=[("Ocp-Apim-Subscription-Key", KEY_A)])
    b2 = get(cgw, p, headers=[("Ocp-Apim-Subscription-Key", KEY_B)])
    assert a2.header("Age") is not None and a2.body == a1.body
    assert b2.header("Age") is not None and b2.body == b1.body
    assert upstream_count(nginx, t) == 2
    # no key: refused before any lookup
    assert get(cgw, p).status == 401


def test_expiry_and_downstream_caching(cgw, nginx):
    t = tok()
    p = "/api/hc-short/e-%s" % t
    get(cgw, p)
    r = get(cgw, p)                                 # within the 2 s: a hit
    assert r.header("Age") is not None
    cc = r.header("Cache-Control")
    assert cc.startswith("public, max-age=") and cc.endswith(", must-revalidate"), cc
    assert 0 <= int(cc.split("max-age=")[1].split(",")[0]) <= 2
    # the entry expires: a later call reaches the backend again
    wait_until(lambda: get(cgw, p).header("Age") is None, 10, "the entry to expire")
    assert upstream_count(nginx, t) == 2


def test_only_200_is_stored_unless_cache_response(cgw, httpbin):
    t = tok()
    # httpbin /status/404: not stored by default, stored with cache-response
    for _ in range(2):
        r = get(cgw, "/api/hc-status/status/404?t=%s" % t)
        assert r.status == 404 and r.header("Age") is None
    r1 = get(cgw, "/api/hc-anystatus/status/404?t=%s" % t)
    r2 = get(cgw, "/api/hc-anystatus/status/404?t=%s" % t)
    assert r1.status == 404 and r1.header("Age") is None
    assert r2.status == 404 and r2.header("Age") is not None


def test_set_cookie_answer_is_not_stored(cgw):
    t = tok()
    p = "/api/hc-anystatus/cookies/set?c=%s" % t     # 302 + Set-Cookie, any status stored
    for _ in range(2):
        r = get(cgw, p)
        assert r.header("Age") is None


def test_concurrent_fills_then_hits(cgw, nginx):
    t = tok()
    p = "/api/hc-basic/conc-%s" % t
    out = []
    barrier = threading.Barrier(8)

    def one():
        barrier.wait(30)
        out.append(get(cgw, p))
    threads = [threading.Thread(target=one) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert len(out) == 8 and all(r.status == 200 for r in out)
    filled = upstream_count(nginx, t)
    assert 1 <= filled <= 8
    r = get(cgw, p)
    assert r.header("Age") is not None
    assert r.body in [o.body for o in out]          # one of the fills, whole
    assert upstream_count(nginx, t) == filled


# ---- the value cache ----------------------------------------------------------


def test_value_round_trip_across_apis(cgw):
    k = tok()
    assert get(cgw, "/api/hc-vget/x?k=%s" % k).body == b"[none]"
    assert get(cgw, "/api/hc-vset/x?k=%s&v=hello" % k).body == b"stored"
    for _ in range(5):                              # any process, any API of the host
        assert get(cgw, "/api/hc-vget/x?k=%s" % k).body == b"[hello]"
    assert get(cgw, "/api/hc-vset/x?k=%s&v=again" % k).body == b"stored"
    assert get(cgw, "/api/hc-vget/x?k=%s" % k).body == b"[again]"
    assert get(cgw, "/api/hc-vdel/x?k=%s" % k).body == b"removed"
    assert get(cgw, "/api/hc-vget/x?k=%s" % k).body == b"[none]"


def test_external_caching_type_is_refused_at_its_path(cgw, _cmodule, base, binary, workroot):
    """No Redis client yet: "external" cannot be honoured, so the document is
    refused with the member's JSON path (docs/policies.md)."""
    doc = cache_doc(base)
    doc["apis"].append(api("hc-ext", [lookup(**{"caching-type": "external"})], [store()]))
    path = os.path.join(workroot, "hc-ext.json")
    with open(path, "w") as f:
        json.dump(dict(doc, generation=_cmodule.generation + 1000), f)
    p = subprocess.run([binary, "--check", path], capture_output=True, text=True, timeout=30)
    out = p.stderr + p.stdout
    assert p.returncode != 0, p
    assert "caching-type" in out and "gateway.counters" in out and "hc-ext" in out, out
