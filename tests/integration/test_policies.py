"""The policy engine through the real web servers: subscriptions, every
request-changing policy, scopes and base, limits exact under concurrency,
limit-concurrency with a worker killed mid-request, validate-jwt, cors, pools
and circuit breakers. Each party asserts: the client its status, headers and
body; the upstream (httpbin's /anything, nginx's echo and its log) what it
received, or that it received nothing.

The document is conftest's base plus policy_docs.policy_doc; it is applied
once per set-up (and again if another module's test installed another one).
The heavy concurrency tests run on one lighttpd and one Apache set-up with
several hostgate processes (HEAVY).
"""

import base64
import os
import re
import signal
import threading
import time
import uuid

import pytest

import policy_docs as pd
from harness import assert_gateway_error, wait_until
from servers import ModuleDocument, parse_echo

HEAVY = ("lighttpd-binpath", "apache-proxy-fcgi")
BURST_N = 200


def tok():
    return uuid.uuid4().hex[:12]


# ---- the document ------------------------------------------------------------


@pytest.fixture(scope="module")
def _pmodule(gw, base, httpbin, nginx, dead_port):
    with ModuleDocument(gw, base, pd.policy_doc(base, httpbin, nginx, dead_port)) as m:
        yield m


@pytest.fixture
def pgw(gw, _pmodule):
    return _pmodule.gateway()


# ---- helpers -----------------------------------------------------------------------

def anything(r):
    assert r.status == 200, r
    return r.json()


def sub_header(key):
    return [("Ocp-Apim-Subscription-Key", key)]


def nothing_upstream(nginx, token):
    """nginx (main server and canary) received no request holding token."""
    nginx.settle()
    assert nginx.requests_with(token, expect=False) == [], "%s reached nginx" % token
    assert not [c for c in nginx.canary_hits() if token in c["request"]]


def httpbin_lines(httpbin, token):
    return [line for line in httpbin.log_lines() if token in line]


def httpbin_settle(httpbin, token=None, expect=0):
    httpbin.settle(token, expect)


def fire(n, fn):
    """Runs fn(i) in n threads released together; returns the results (an
    exception counts as a result)."""
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
    return out


def statuses(results):
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def heavy_only(gw):
    if gw.setup not in HEAVY:
        pytest.skip("concurrency bursts run on %s" % ", ".join(HEAVY))


RATE_MSG = re.compile(r"^Rate limit is exceeded\. Try again in (\d+) seconds\.$")
QUOTA_MSG = re.compile(r"^Out of call volume quota\. Quota will be replenished in "
                       r"\d\d:\d\d:\d\d\.$")


def assert_rate_limited(r, period=600):
    doc = assert_gateway_error(r, 429)
    m = RATE_MSG.match(doc["message"])
    assert m, doc
    ra = r.header("Retry-After")
    assert ra and ra.isdigit() and 1 <= int(ra) <= period, r
    assert abs(int(m.group(1)) - int(ra)) <= 1, (doc, ra)


def assert_quota_exceeded(r, period=3600):
    doc = assert_gateway_error(r, 403)
    assert QUOTA_MSG.match(doc["message"]), doc
    ra = r.header("Retry-After")
    assert ra and ra.isdigit() and 1 <= int(ra) <= period, r


# ---- subscriptions ----------------------------------------------------------------

def test_key_in_header_is_removed_upstream(pgw):
    t = tok()
    r = pgw.get("/api/pt-sub/h-%s?x=1" % t, headers=sub_header(pd.KEY_PRIMARY))
    got = anything(r)
    assert "Ocp-Apim-Subscription-Key" not in got["headers"]
    assert got["args"] == {"x": "1"}
    assert got["headers"]["X-Sub"] == "pt-acme"
    assert got["headers"]["X-Product"] == "pt-gold"


def test_key_in_query_is_removed_upstream(pgw, httpbin):
    t = tok()
    r = pgw.get("/api/pt-sub/q-%s?a=1&subscription-key=%s&b=2" % (t, pd.KEY_PRIMARY))
    got = anything(r)
    assert got["args"] == {"a": "1", "b": "2"}, got
    assert pd.KEY_PRIMARY not in got["url"]
    assert got["headers"]["X-Sub"] == "pt-acme"
    httpbin_settle(httpbin)
    assert not [line for line in httpbin.log_lines() if pd.KEY_PRIMARY in line]


def test_header_key_wins_and_both_are_removed(pgw):
    r = pgw.get("/api/pt-sub/both?subscription-key=%s&z=9" % pd.KEY_UNKNOWN,
                headers=sub_header(pd.KEY_SECONDARY))
    got = anything(r)
    assert got["args"] == {"z": "9"}
    assert "Ocp-Apim-Subscription-Key" not in got["headers"]


def test_secondary_key(pgw):
    got = anything(pgw.get("/api/pt-sub/second", headers=sub_header(pd.KEY_SECONDARY)))
    assert got["headers"]["X-Sub"] == "pt-acme"


def test_missing_key(pgw, nginx):
    t = tok()
    r = pgw.get("/api/pt-subn/m-%s" % t)
    doc = assert_gateway_error(r, 401)
    assert doc["message"] == pd.MSG_MISSING_KEY
    nothing_upstream(nginx, t)


@pytest.mark.parametrize("how,key", [
    ("unknown", pd.KEY_UNKNOWN), ("suspended", pd.KEY_SUSPENDED),
    ("expired", pd.KEY_EXPIRED), ("other-product", pd.KEY_SILVER),
    ("other-api", pd.KEY_API_SCOPE), ("empty", ""),
    ("primary-with-space", pd.KEY_PRIMARY + "x")])
@pytest.mark.parametrize("where", ["header", "query"])
def test_invalid_key_never_reaches_backend(pgw, nginx, how, key, where):
    t = tok()
    if where == "header":
        r = pgw.get("/api/pt-subn/%s-%s" % (how, t), headers=sub_header(key))
    else:
        r = pgw.get("/api/pt-subn/%s-%s?subscription-key=%s" % (how, t, key))
    doc = assert_gateway_error(r, 401)
    if key == "" and where == "header":
        # an empty header is no key at all (APIM: missing) or an invalid one
        assert doc["message"] in (pd.MSG_MISSING_KEY, pd.MSG_INVALID_KEY), doc
    elif key == "":
        assert doc["message"] in (pd.MSG_MISSING_KEY, pd.MSG_INVALID_KEY), doc
    else:
        assert doc["message"] == pd.MSG_INVALID_KEY, doc
    nothing_upstream(nginx, t)


def test_product_scope(pgw):
    # silver's key on silver's API; gold's on silver's is refused
    got = anything(pgw.get("/api/pt-sub2/s", headers=sub_header(pd.KEY_SILVER)))
    assert got["headers"]["X-Sub"] == "pt-silver-sub"
    assert "X-Product" not in got["headers"]     # pt-silver has no policies
    r = pgw.get("/api/pt-sub2/s", headers=sub_header(pd.KEY_PRIMARY))
    assert assert_gateway_error(r, 401)["message"] == pd.MSG_INVALID_KEY
    # scope "all" works everywhere, without a product scope
    for path in ("/api/pt-sub/a", "/api/pt-sub2/a"):
        got = anything(pgw.get(path, headers=sub_header(pd.KEY_ALL)))
        assert got["headers"]["X-Sub"] == "pt-allsub"
        assert "X-Product" not in got["headers"]


def test_custom_key_names(pgw):
    got = anything(pgw.get("/api/pt-subkey/c", headers=[("X-Pt-Key", pd.KEY_PRIMARY)]))
    assert "X-Pt-Key" not in got["headers"]
    got = anything(pgw.get("/api/pt-subkey/c?pt-key=%s&k=v" % pd.KEY_PRIMARY))
    assert got["args"] == {"k": "v"}
    # the default names mean nothing on this API
    r = pgw.get("/api/pt-subkey/c", headers=sub_header(pd.KEY_PRIMARY))
    assert assert_gateway_error(r, 401)["message"] == pd.MSG_MISSING_KEY


def test_api_without_required_key_refuses_a_bad_one(pgw, nginx):
    t = tok()
    r = pgw.get("/api/pt-poln/allow?t=%s" % t, headers=sub_header(pd.KEY_UNKNOWN))
    assert assert_gateway_error(r, 401)["message"] == pd.MSG_INVALID_KEY
    nothing_upstream(nginx, t)


# ---- scopes and base ----------------------------------------------------------------

@pytest.mark.parametrize("path,key,client,want,product", [
    ("trail", pd.KEY_PRIMARY, None, ">O>A1>P>G>A2", "pt-gold"),
    ("trail", pd.KEY_PRIMARY, "C", "C>O>A1>P>G>A2", "pt-gold"),
    ("trail", pd.KEY_API_SCOPE, None, ">O>A1>G>A2", None),
    ("nobase", pd.KEY_PRIMARY, None, ">O2", None),
    ("plain", pd.KEY_PRIMARY, None, ">A1>P>G>A2", "pt-gold"),
])
def test_scope_order(pgw, path, key, client, want, product):
    headers = sub_header(key) + ([("X-Trail", client)] if client else [])
    got = anything(pgw.get("/api/pt-scope/%s" % path, headers=headers))
    assert got["headers"].get("X-Trail") == want, got["headers"]
    assert got["headers"].get("X-Product") == product, got["headers"]


def test_global_scope_runs_on_base_apis(pgw):
    got = anything(pgw.get("/api/any/g"))
    assert got["headers"].get("X-Trail") == ">G"


# ---- request-changing policies ---------------------------------------------------------

def test_set_header_and_query(pgw):
    r = pgw.get("/api/pt-pol/hdr?q=a%26b%3Dc&gone=1&keep=2",
                headers=[("X-In", "copy me"), ("X-Drop", "x"), ("X-Keep", "client")])
    got = anything(r)
    h = got["headers"]
    assert h["X-Ip"] == "127.0.0.1"
    assert h["X-Named"] == "named-value-42"
    assert h["X-Copy"] == "copy me"
    assert h["X-Meta"] == "pt-pol/hdr/GET$"
    assert "X-Drop" not in h
    assert h["X-Keep"] == "client"
    assert [v.strip() for v in h["X-Multi"].split(",")] == ["m1", "m2"]
    assert got["args"] == {"q": "a&b=c", "added": "a&b=c", "keep": "2"}, got["args"]
    assert r.header("X-Out") == "out-named-value-42"


def test_rewrite_uri(pgw, httpbin):
    t = tok()
    got = anything(pgw.get("/api/pt-pol/items/it-%s?q=x%%26y%%3Dz&other=1" % t))
    # the value is encoded again: it cannot add a parameter; unmatched ones dropped
    assert got["args"] == {"from": "x&y=z"}, got
    assert got["url"].split("?")[0] == httpbin.url("/anything/base/rewritten/it-%s/v2" % t)


def test_set_method(pgw):
    got = anything(pgw.get("/api/pt-pol/method"))
    assert got["method"] == "POST"


def gateway_logs(gw):
    """What the set-up's hostgate processes logged (the web server's error
    log, and the --listen process's own)."""
    out = []
    for name in sorted(os.listdir(gw.log_dir)):
        p = os.path.join(gw.log_dir, name)
        if os.path.isfile(p) and "access" not in name:
            with open(p, "rb") as f:
                out.append(f.read().decode("utf-8", "replace"))
    # Apache writes a backslash of a FastCGI process's stderr doubled
    return "\n".join(out).replace("\\\\", "\\")


def test_trace(pgw):
    """trace writes one line with the request id; a value the client sent
    cannot start a line of its own (%0a in the query decodes to LF; lighttpd
    refuses that request itself, so there a tab in a header stands in)."""
    t = tok()
    r = pgw.get("/api/pt-pol/trace?t=%s%%0aforged-%s" % (t, t), headers=[("X-Note", "n\\x\tz")])
    if r.status == 400 and r.header("Content-Type") == "text/html":
        assert pgw.setup.startswith("lighttpd"), r
        r = pgw.get("/api/pt-pol/trace?t=%s" % t, headers=[("X-Note", "n\\x\tz")])
        want = "token %s from n\\x5cx\\x09z" % t
    else:
        want = "token %s\\x0aforged-%s from n\\x5cx\\x09z" % (t, t)
    assert r.status == 200, r
    line = "trace: request %s api 'pt-pol' inbound: pt-trace: %s" % (r.header("X-Request-Id"), want)
    wait_until(lambda: line in gateway_logs(pgw), 10, "the trace line in the log")
    assert not [ln for ln in gateway_logs(pgw).splitlines()
                if "forged-%s" % t in ln and "trace:" not in ln]


def test_set_status(pgw):
    r = pgw.get("/api/pt-pol/status")
    assert r.status == 203, r
    assert r.json()["url"].endswith("/anything/base/status")


def test_authentication_basic(pgw):
    got = anything(pgw.get("/api/pt-pol/basic", headers=[("Authorization", "Bearer client")]))
    want = "Basic " + base64.b64encode(b"pt-user:s3cret-pass").decode()
    assert got["headers"]["Authorization"] == want


def test_set_backend_service(pgw, nginx):
    t = tok()
    r = pgw.get("/api/pt-pol/setbe?t=%s" % t)
    assert r.status == 200, r
    assert parse_echo(r.body)["uri"] == "/echo/base/setbe?t=%s" % t
    (rec,) = nginx.requests_with(t)
    assert rec["uri"] == "/echo/base/setbe?t=%s" % t


def test_return_response(pgw, nginx):
    t = tok()
    r = pgw.get("/api/pt-poln/return?name=bob%%20x&t=%s" % t, headers=[("X-In", "hdr-" + t)])
    assert r.status == 418, r
    assert r.body == b"hello bob x from pt-poln"
    assert r.header("X-R") == "hdr-" + t
    assert (r.header("Content-Type") or "").startswith("text/plain")
    nothing_upstream(nginx, t)


def test_mock_response(pgw, nginx):
    t = tok()
    r = pgw.get("/api/pt-poln/mock?t=%s" % t)
    assert r.status == 201, r
    assert (r.header("Content-Type") or "").startswith("application/json")
    assert r.json() == {"mock": True}
    nothing_upstream(nginx, t)


def test_check_header(pgw, nginx):
    bad = tok()
    for hv in (None, "3", "v22"):
        hs = [("X-Version", hv)] if hv else []
        r = pgw.get("/api/pt-poln/check?t=%s" % bad, headers=hs)
        assert assert_gateway_error(r, 400)["message"] == "bad version"
    good = tok()
    r = pgw.get("/api/pt-poln/check?t=%s" % good, headers=[("X-Version", "V2")])
    assert r.status == 200, r
    assert nginx.requests_with(good)
    nothing_upstream(nginx, bad)


def test_ip_filter(pgw, nginx):
    bad = tok()
    for path in ("forbid", "allow-other"):
        r = pgw.get("/api/pt-poln/%s?t=%s" % (path, bad))
        assert_gateway_error(r, 403)
    good = tok()
    r = pgw.get("/api/pt-poln/allow?t=%s" % good)
    assert r.status == 200, r
    assert nginx.requests_with(good)
    nothing_upstream(nginx, bad)


def test_header_injection_from_query_is_400(pgw, nginx):
    t = tok()
    for v in ("a%0d%0aX-Injected:%20evil", "a%0aX-Injected:%20evil", "a%0dx", "a%00b"):
        r = pgw.get("/api/pt-poln/inject-q?t=%s&v=%s" % (t, v))
        assert r.status == 400, r
        # lighttpd refuses encoded control characters in the target itself
        # (server.http-parseopts url-ctrls-reject); Apache hands them on and
        # the gateway refuses the substituted header
        if not pgw.setup.startswith("lighttpd"):
            assert_gateway_error(r, 400)
    nothing_upstream(nginx, t)
    assert not [rec for rec in nginx._log(nginx.access_log) if "evil" in rec["x_injected"]]
    ok = tok()
    r = pgw.get("/api/pt-poln/inject-q?t=%s&v=plain%%20value" % ok)
    assert r.status == 200, r
    assert parse_echo(r.body)["x_injected"] == "plain value"


def test_header_injection_from_header_never_goes_upstream(pgw, nginx):
    t = tok()
    # a bare CR inside the client's header: the web server or the gateway
    # refuses it; either way a 400 and nothing upstream
    r = pgw.get("/api/pt-poln/inject-h?t=%s" % t, headers=[("X-In", "a\rX-Injected: evil")])
    assert r.status == 400, r
    nothing_upstream(nginx, t)
    ok = tok()
    r = pgw.get("/api/pt-poln/inject-h?t=%s" % ok, headers=[("X-In", "fine")])
    assert parse_echo(r.body)["x_injected"] == "fine"


# ---- backend section: retry, forward-request ----------------------------------------

def test_retry_attempts_on_the_upstream(pgw, httpbin):
    t = tok()
    r = pgw.get("/api/pt-hb/status/503?t=%s" % t)
    assert r.status == 503, r
    httpbin_settle(httpbin, t, 3)
    lines = httpbin_lines(httpbin, t)
    assert lines == ["GET /status/503?t=%s 503" % t] * 3, lines
    # a success is sent once; an API without retry sends a 5xx once
    t2 = tok()
    assert pgw.get("/api/pt-hb/status/200?t=%s" % t2).status == 200
    t3 = tok()
    assert pgw.get("/api/hb/status/503?t=%s" % t3).status == 503
    httpbin_settle(httpbin, t2, 1)
    httpbin_settle(httpbin, t3, 1)
    assert len(httpbin_lines(httpbin, t2)) == 1
    assert len(httpbin_lines(httpbin, t3)) == 1


def test_forward_request_timeout(pgw):
    r = pgw.get("/api/pt-hb/delay/4")
    assert_gateway_error(r, 504)
    assert r.elapsed < 3.5, r.elapsed


# ---- limits (light, every set-up) ------------------------------------------------------

def test_rate_limit_sequential(pgw, nginx):
    for i in range(pd.RL_SMALL):
        r = pgw.get("/api/pt-lim/rl?i=%d" % i)
        assert r.status == 200, r
        assert r.header("X-Remaining") == str(pd.RL_SMALL - 1 - i), r
        assert r.header("X-Total") == str(pd.RL_SMALL), r
    t = tok()
    assert_rate_limited(pgw.get("/api/pt-lim/rl?t=%s" % t))
    nothing_upstream(nginx, t)


def test_rate_limit_by_key_sequential(pgw):
    for client in ("alpha", "beta"):
        for _ in range(pd.RL_SMALL):
            r = pgw.get("/api/pt-lim/rlk", headers=[("X-Client", client)])
            assert r.status == 200, r
        assert_rate_limited(pgw.get("/api/pt-lim/rlk", headers=[("X-Client", client)]))


def test_quota_sequential(pgw, nginx):
    for _ in range(pd.RL_SMALL):
        assert pgw.get("/api/pt-lim/quota").status == 200
    t = tok()
    assert_quota_exceeded(pgw.get("/api/pt-lim/quota?t=%s" % t))
    nothing_upstream(nginx, t)


# ---- limits under concurrency (HEAVY set-ups) ----------------------------------------

def test_rate_limit_exact_under_concurrency(pgw, nginx):
    heavy_only(pgw)
    t = tok()
    res = fire(BURST_N, lambda i: pgw.get("/api/pt-lim/rl-big?t=%s&i=%d" % (t, i), timeout=60))
    assert statuses(res) == {200: pd.RL_BIG, 429: BURST_N - pd.RL_BIG}
    ok = [r for r in res if r.status == 200]
    assert sorted(int(r.header("X-Remaining")) for r in ok) == list(range(pd.RL_BIG))
    assert {r.header("X-Total") for r in ok} == {str(pd.RL_BIG)}
    for r in res:
        if r.status == 429:
            assert_rate_limited(r)
    nginx.settle()
    assert len(nginx.requests_with(t, expect=False)) == pd.RL_BIG


def test_rate_limit_by_key_exact_under_concurrency(pgw):
    heavy_only(pgw)
    clients = ["k1-" + tok(), "k2-" + tok()]
    res = fire(BURST_N, lambda i: pgw.get("/api/pt-lim/rlk-big",
                                          headers=[("X-Client", clients[i % 2])], timeout=60))
    for c in range(2):
        mine = [r for i, r in enumerate(res) if i % 2 == c]
        assert statuses(mine) == {200: pd.RL_BIG, 429: BURST_N // 2 - pd.RL_BIG}


def test_quota_exact_under_concurrency(pgw, nginx):
    heavy_only(pgw)
    t = tok()
    res = fire(BURST_N, lambda i: pgw.get("/api/pt-lim/quota-big?t=%s" % t, timeout=60))
    assert statuses(res) == {200: pd.RL_BIG, 403: BURST_N - pd.RL_BIG}
    for r in res:
        if r.status == 403:
            assert_quota_exceeded(r)
    nginx.settle()
    assert len(nginx.requests_with(t, expect=False)) == pd.RL_BIG


# ---- limit-concurrency ---------------------------------------------------------------

def test_limit_concurrency(pgw, httpbin):
    t = tok()
    res = fire(5, lambda i: pgw.get("/api/pt-conc/delay/2?t=%s&i=%d" % (t, i), timeout=30))
    counts = statuses(res)
    assert set(counts) <= {200, 429}, res
    for r in res:
        if r.status == 429:
            assert_gateway_error(r, 429)
            assert r.elapsed < 1.5, r.elapsed
    # exactly two at a time: a web server with 4 processes may queue the
    # fifth request behind a seat holder; it then starts once that seat is
    # back (after the 2 s delay) and may pass, but only a delay later than
    # the two that held the seats
    ok = sorted(r.elapsed for r in res if r.status == 200)
    assert len(ok) >= pd.CONC_MAX, ok
    assert all(e >= ok[pd.CONC_MAX - 1] + 1.5 for e in ok[pd.CONC_MAX:]), ok
    assert counts.get(429, 0) >= 5 - pd.CONC_MAX - 1, counts
    httpbin_settle(httpbin, t, len(ok))
    assert len(httpbin_lines(httpbin, t)) == len(ok)
    # deterministic: two seats held (a probe is refused), then three callers
    # one after the other are refused too
    # (a seat is given back once the response is complete, which may be just
    # after the client has read it)
    wait_until(lambda: _seats_free(pgw), 20, "the seats to be free", interval=0.2)
    t2 = tok()
    holders = [threading.Thread(target=lambda i=i: _hold_seat(
        pgw, "/api/pt-conc/delay/4?t=%s&i=%d" % (t2, i))) for i in range(pd.CONC_MAX)]
    for th in holders:
        th.start()
    wait_until(lambda: _seats_held(pgw), 10, "both seats to be held")
    for _ in range(3):
        r = pgw.get("/api/pt-conc/delay/0?t=%s" % t2)
        assert_gateway_error(r, 429)
    for th in holders:
        th.join(30)
    httpbin_settle(httpbin, t2, pd.CONC_MAX)
    assert len([x for x in httpbin_lines(httpbin, t2) if " 200" in x]) == pd.CONC_MAX
    # the seats are given back
    res = fire(pd.CONC_MAX, lambda i: pgw.get("/api/pt-conc/delay/0?i=%d" % i, timeout=30))
    assert statuses(res) == {200: pd.CONC_MAX}


def _hold_seat(gw, path):
    """A request that holds a seat: sent again while refused (a probe or a
    seat not yet given back by an earlier call may be in the way)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            r = gw.get(path, timeout=30)
        except Exception as e:  # noqa: BLE001 - a killed worker's client
            return e
        if r.status != 429 or time.monotonic() > deadline:
            return r


def _seats_free(gw):
    res = fire(pd.CONC_MAX, lambda i: gw.get("/api/pt-conc/delay/0?free=%d" % i, timeout=30))
    return statuses(res) == {200: pd.CONC_MAX}


def _seats_held(gw):
    r = gw.get("/api/pt-conc/delay/0?probe=1")
    return r.status == 429


def _socket_inodes_to(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if int(cols[2].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                        inodes.add(cols[9])
        except OSError:
            pass
    return inodes


def _pids_connected_to(pids, port):
    want = {"socket:[%s]" % i for i in _socket_inodes_to(port)}
    found = []
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in want:
                    found.append(pid)
                    break
            except OSError:
                pass
    return found


def test_killed_worker_does_not_leak_its_seat(pgw, httpbin):
    if pgw.setup not in HEAVY + ("apache-fcgid",):
        pytest.skip("the kill test runs on the set-ups with long-lived workers")
    wait_until(lambda: _seats_free(pgw), 20, "the seats to be free", interval=0.2)
    t = tok()
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        _hold_seat(pgw, "/api/pt-conc/delay/4?t=%s&i=%d" % (t, i))))
        for i in range(pd.CONC_MAX)]
    for th in threads:
        th.start()
    # both seats held: a probe is refused
    wait_until(lambda: _seats_held(pgw), 10, "both seats to be held")
    # every worker talking to httpbin now: the two seat holders among them
    # (an idle one with a kept-alive connection may be killed too; harmless)
    busy = _pids_connected_to(pgw.hostgate_pids(), httpbin.port)
    assert busy
    for pid in busy:
        os.kill(pid, signal.SIGKILL)
    for th in threads:
        th.join(30)
    # the holders were killed mid-request: neither client got the answer
    assert not [r for r in results if not isinstance(r, Exception) and r.status == 200], results

    wait_until(lambda: _seats_free(pgw), 30, "the killed workers' seats to come back", interval=0.5)


# ---- validate-jwt ---------------------------------------------------------------------

def _bearer(token):
    return [("Authorization", "Bearer " + token)]


@pytest.mark.parametrize("api,make", [
    ("pt-jwt-rs", lambda c: pd.token_rs256(c)),
    ("pt-jwt-hs", lambda c: pd.token_hs256(c)),
    ("pt-jwt-es", lambda c: pd.token_es256(c)),
])
def test_jwt_valid(pgw, nginx, api, make):
    t = tok()
    sub = "user-" + t
    r = pgw.get("/api/%s/v-%s" % (api, t), headers=_bearer(make(pd.claims(sub=sub))))
    assert r.status == 200, r
    echo = parse_echo(r.body)
    assert echo["x_keep"] == sub
    (rec,) = nginx.requests_with(t)
    assert rec["x_keep"] == sub


JWT_BAD = {
    "expired": lambda: pd.token_rs256(pd.claims(exp_in=-600)),
    "no-exp": lambda: pd.token_rs256(pd.claims(exp_in=None)),
    "wrong-audience": lambda: pd.token_rs256(pd.claims(aud="someone-else")),
    "wrong-issuer": lambda: pd.token_rs256(pd.claims(iss="https://evil.test")),
    "alg-none": lambda: pd.token_alg_none(pd.claims()),
    "tampered": lambda: pd.tampered(pd.token_rs256(pd.claims(sub="bob")), sub="admin"),
    "other-rsa-key": lambda: pd.token_rs256(pd.claims(), key=pd.OTHER_RSA_KEY),
    "hs256-with-rsa-public-key": lambda: pd.token_hs256_raw(pd.claims(), pd.RSA_PUB_PEM),
    "garbage": lambda: "not.a.jwt",
}


@pytest.mark.parametrize("case", sorted(JWT_BAD))
def test_jwt_invalid_never_reaches_backend(pgw, nginx, case):
    t = tok()
    r = pgw.get("/api/pt-jwt-rs/bad-%s" % t, headers=_bearer(JWT_BAD[case]()))
    assert_gateway_error(r, 401)
    nothing_upstream(nginx, t)


def test_jwt_missing_or_wrong_scheme(pgw, nginx):
    t = tok()
    good = pd.token_rs256(pd.claims())
    for hs in ([], [("Authorization", "Basic " + good)], [("Authorization", good)]):
        assert_gateway_error(pgw.get("/api/pt-jwt-rs/ms-%s" % t, headers=hs), 401)
    # an HS256 token is not accepted by the ES256 API, nor an ES256 one by the HS API
    assert_gateway_error(pgw.get("/api/pt-jwt-es/ms-%s" % t,
                                 headers=_bearer(pd.token_hs256(pd.claims()))), 401)
    assert_gateway_error(pgw.get("/api/pt-jwt-hs/ms-%s" % t,
                                 headers=_bearer(pd.token_es256(pd.claims()))), 401)
    nothing_upstream(nginx, t)


# ---- cors --------------------------------------------------------------------------------

def test_cors_preflight_allowed(pgw, nginx):
    t = tok()
    r = pgw.request("OPTIONS", "/api/pt-cors/p-%s" % t, headers=[
        ("Origin", pd.CORS_ORIGIN), ("Access-Control-Request-Method", "PUT"),
        ("Access-Control-Request-Headers", "x-custom")])
    assert r.status in (200, 204), r
    assert r.header("Access-Control-Allow-Origin") == pd.CORS_ORIGIN
    assert "PUT" in [m.strip() for m in r.header("Access-Control-Allow-Methods").split(",")]
    assert "x-custom" in r.header("Access-Control-Allow-Headers").lower()
    assert r.header("Access-Control-Max-Age") == "300"
    nothing_upstream(nginx, t)


@pytest.mark.parametrize("origin,method,hdrs", [
    ("http://evil.hostgate.test", "PUT", None),
    (pd.CORS_ORIGIN, "DELETE", None),
    (pd.CORS_ORIGIN, "PUT", "X-Other"),
])
def test_cors_preflight_refused(pgw, nginx, origin, method, hdrs):
    t = tok()
    headers = [("Origin", origin), ("Access-Control-Request-Method", method)]
    if hdrs:
        headers.append(("Access-Control-Request-Headers", hdrs))
    r = pgw.request("OPTIONS", "/api/pt-cors/p-%s" % t, headers=headers)
    assert r.header("Access-Control-Allow-Origin") is None, r
    assert r.header("Access-Control-Allow-Methods") is None, r
    nothing_upstream(nginx, t)


def test_cors_simple_request(pgw, nginx):
    t = tok()
    r = pgw.get("/api/pt-cors/s-%s" % t, headers=[("Origin", pd.CORS_ORIGIN)])
    assert r.status == 200, r
    assert r.header("Access-Control-Allow-Origin") == pd.CORS_ORIGIN
    assert r.header("Access-Control-Expose-Headers") == "X-Exposed"
    assert parse_echo(r.body)["uri"] == "/echo/base/s-%s" % t
    assert nginx.requests_with(t)
    bad = tok()
    r = pgw.get("/api/pt-cors/s-%s" % bad, headers=[("Origin", "http://evil.hostgate.test")])
    assert r.header("Access-Control-Allow-Origin") is None, r
    nothing_upstream(nginx, bad)   # terminate-unmatched-request (default true)


# ---- pools and circuit breakers -------------------------------------------------------

def _rid(i):
    return [("X-Request-Id", "pt-%s-%d" % (tok(), i))]


def test_breaker_trips_and_traffic_goes_to_the_healthy_member(pgw):
    got = []
    for i in range(40):
        r = pgw.get("/api/pt-pool/b?i=%d" % i, headers=_rid(i))
        got.append(r)
    codes = [r.status for r in got]
    assert codes.count(502) == pd.CB_FAILURES, codes
    assert codes.count(200) == 40 - pd.CB_FAILURES, codes
    for r in got:
        if r.status == 200:
            assert parse_echo(r.body)["uri"].startswith("/echo/pool-live/b?")
    # open now: the last ones all went to the live member
    assert all(c == 200 for c in codes[-10:]), codes


def test_pool_priority(pgw):
    for i in range(10):
        r = pgw.get("/api/pt-prio/x", headers=_rid(i))
        assert r.status == 200, r
        assert parse_echo(r.body)["uri"] == "/echo/prio-1/x"


def test_pool_weights(pgw):
    seen = {"w-light": 0, "w-heavy": 0}
    for i in range(60):
        r = pgw.get("/api/pt-weight/x", headers=_rid(i))
        assert r.status == 200, r
        seen[parse_echo(r.body)["uri"].split("/")[2]] += 1
    # 1:99, 60 calls: the heavy member gets nearly all of them
    assert seen["w-heavy"] >= 50, seen


def test_all_circuits_open_is_503(pgw):
    codes = []
    for i in range(6):
        r = pgw.get("/api/pt-alldead/x", headers=_rid(i))
        codes.append(r.status)
        if r.status == 503:
            assert_gateway_error(r, 503)
    assert codes[:2] == [502, 502], codes
    assert codes[2:] == [503] * 4, codes
