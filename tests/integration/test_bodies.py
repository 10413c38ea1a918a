"""Bodies read whole for the policies (issue 10): find-and-replace on the
client's body (read on demand, sent upstream with its new Content-Length)
and on the backend's (buffered whole for the outbound section, sent with its
length recomputed), their limits, and send-request's side calls (the
token-exchange pattern, ignore-error, timeouts, refused configurations).

Raw sockets where framing matters (rawupstream.py: the upstream records the
exact bytes it got, the client parses the exact bytes it got back); httpbin's
/anything where an echo is enough. Body and framing tests run on all five
set-ups; pure policy logic (send-request's variables, load errors) on two.
"""

import copy
import json
import time
import uuid

import pytest

from harness import assert_gateway_error, http
from servers import ModuleDocument
from rawupstream import RawUpstream, parse_response, raw_exchange, raw_request, response

BODY_LIMIT = 64 * 1024          # gateway.max_request_body_bytes in this module
RESP_LIMIT = 10 << 20           # POL_MAX_RESP_BODY
LOGIC = ("lighttpd-socket", "apache-proxy-fcgi")


def tok():
    return uuid.uuid4().hex[:12]


def logic_only(gw):
    if gw.setup not in LOGIC:
        pytest.skip("policy logic runs on %s" % ", ".join(LOGIC))


@pytest.fixture(scope="module")
def raw():
    s = RawUpstream()
    yield s
    s.stop()


def api(api_id, backend, **kw):
    return dict({"id": api_id, "path": api_id, "backend": backend,
                 "subscription_required": False}, **kw)


def far(frm, to):
    return {"find-and-replace": {"from": frm, "to": to}}


def bodies_doc(base, raw, httpbin, dead_port):
    doc = copy.deepcopy(base)
    doc["gateway"] = dict(doc["gateway"], max_request_body_bytes=BODY_LIMIT)
    doc["backends"].update({
        "b-raw": {"url": raw.url("/b"), "timeout_ms": 10000},
        "b-any": {"url": httpbin.url("/anything/b")},
        "b-hb": {"url": httpbin.url()},
        "b-auth-hb": {"url": httpbin.url()},
        "b-auth-raw": {"url": raw.url("/auth"),
                       "credentials": {"header": {"X-Idp-Key": "idp-key"}}},
        "b-dead": {"url": "http://127.0.0.1:%d/dead" % dead_port, "connect_timeout_ms": 2000},
        "b-hang": {"url": raw.url("/hang")},
    })
    bearer = {"set-header": {"name": "Authorization", "exists-action": "override",
                             "value": "Bearer $(json(${var.tok.body}, 'access_token'))"}}

    def send(**kw):
        return {"send-request": dict({"mode": "new", "response-variable-name": "tok"}, **kw)}
    status_hdr = {"set-header": {"name": "X-Tok-Status", "value": "${var.tok.status}"}}
    doc["apis"] = doc["apis"] + [
        api("bfr", "b-raw", policies={"inbound": [far("cat", "dog")]}),
        api("bfh", "b-any", policies={"inbound": [far("cat", "dog")]}),
        api("bfg", "b-raw", policies={"backend": [far("a", "aa")]}),
        api("bfrr", "b-raw", policies={"inbound": [far("cat", "dog")], "backend": [
            {"retry": {"condition": ["5xx"], "count": 1, "interval": 0}}]}),
        api("bfo", "b-raw", policies={"outbound": [far("secret", "[redacted]")]}),
        api("bfoh", "b-hb", policies={"outbound": [far("zebra", "giraffe")]}),
        api("srg", "b-any", policies={"inbound": [
            send(**{"backend-id": "b-auth-hb",
                    "set-url": "/response-headers?access_token=${request.header.X-Want}"}),
            bearer, status_hdr]}),
        api("srp", "b-raw", policies={"inbound": [
            send(**{"backend-id": "b-auth-raw", "set-url": "/token", "set-method": "POST",
                    "set-header": [{"name": "Content-Type",
                                    "value": "application/x-www-form-urlencoded"}],
                    "set-body": "grant_type=client_credentials&client_id=${request.header.X-Client}"}),
            bearer]}),
        api("sro", "b-hb", policies={"outbound": [
            send(**{"backend-id": "b-auth-hb",
                    "set-url": "/response-headers?access_token=${request.header.X-Want}"}),
            {"set-header": {"name": "X-Token",
                            "value": "$(json(${var.tok.body}, 'access_token'))/${var.tok.status}"}}]}),
        api("sri", "b-any", policies={"inbound": [
            send(**{"backend-id": "b-dead", "set-url": "/token", "ignore-error": True}),
            status_hdr]}),
        api("sre", "b-any", policies={"inbound": [
            send(**{"backend-id": "b-dead", "set-url": "/token"})]}),
        api("srt", "b-any", policies={"inbound": [
            send(**{"backend-id": "b-hang", "set-url": "/never", "timeout": 1})]}),
    ]
    return doc


@pytest.fixture(scope="module")
def _bmodule(gw, base, raw, httpbin, dead_port):
    with ModuleDocument(gw, base, bodies_doc(base, raw, httpbin, dead_port)) as m:
        yield m


@pytest.fixture
def bgw(gw, _bmodule):
    return _bmodule.gateway()


def exchange(gw, method, target, headers=(), body=None, chunked=False):
    """One request over a raw socket; the answer parsed strictly."""
    data = raw_exchange(gw.port, raw_request(gw.port, method, target, headers, body, chunked))
    return parse_response(data, method)


KEEPS_LENGTH = ("lighttpd-binpath", "lighttpd-socket", "apache-fcgid")


def assert_answer_length(gw, r):
    """The answer's framing matches its body: a Content-Length where the web
    server keeps the app's (mod_proxy_fcgi and mod_cgi send chunked)."""
    if gw.setup in KEEPS_LENGTH:
        assert r.header_values("Content-Length") == [str(len(r.body))], r
    else:
        assert r.header_values("Content-Length") in ([], [str(len(r.body))]), r


def assert_length_framed(req, body):
    """The upstream got exactly body, framed by a matching Content-Length."""
    assert req.error is None, req
    assert req.framing == "length", req
    assert req.header_values("Content-Length") == [str(len(body))], req
    assert req.body == body, req


# ---- find-and-replace on the request body --------------------------------------

@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_request_body_replaced_and_reframed(bgw, raw, chunked):
    t = tok()
    path = "/b/req-%s" % t
    raw.script(path, response(200, b"ok\n"))
    r = exchange(bgw, "POST", "/api/bfr/req-%s" % t, [("Content-Type", "text/plain")],
                 b"a cat, another cat and a catalogue", chunked=chunked)
    assert r.status == 200 and r.body == b"ok\n", r
    (req,) = raw.wait_received(path)
    assert_length_framed(req, b"a dog, another dog and a dogalogue")
    assert req.header_values("Content-Type") == ["text/plain"], req


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_retry_resends_the_replaced_body(bgw, raw, chunked):
    t = tok()
    path = "/b/retry-%s" % t
    seen = []

    def first_fails(req, up):
        seen.append(req)
        return response(503 if len(seen) == 1 else 200, b"attempt %d\n" % len(seen))
    raw.script(path, first_fails)
    body = b"cat" * 20000          # held whole: every attempt sends what the policies left
    r = exchange(bgw, "PUT", "/api/bfrr/retry-%s" % t, body=body, chunked=chunked)
    if r.status == 411 and bgw.setup.startswith("lighttpd") and chunked:
        return      # lighttpd's own refusal of a streamed chunked body (test_forwarding)
    assert r.status == 200 and r.body == b"attempt 2\n", r
    assert len(seen) == 2, seen
    for req in seen:
        assert_length_framed(req, b"dog" * 20000)


def test_trickled_body_read_for_a_policy_gets_408(bgw, raw):
    """read_body holds the client to the same body deadline as streaming
    does (test_slow_clients): 408, the upstream never reached."""
    from test_slow_clients import STREAMING, access_record, open_post, trickle
    if bgw.setup not in STREAMING:
        pytest.skip("mod_fcgid reads the whole body before hostgate sees the request")
    t = tok()
    rid = "slow-" + t
    path = "/b/slow-%s" % t
    raw.script(path, response(200, b"ok\n"))
    s = open_post(bgw, "/api/bfr/slow-%s" % t, 1000, [("X-Request-Id", rid)])
    try:
        r = trickle(s, [b"x"] * 60, 0.5, limit_s=15)
    finally:
        s.close()
    rec = access_record(bgw, rid)
    assert rec["status"] == 408, rec
    assert rec["duration_ms"] < 5000, rec
    assert raw.received(path) == []
    if bgw.setup.startswith("lighttpd"):
        assert r is not None, "the gateway closed without an answer"
        assert_gateway_error(r, 408, request_id=rid)


def test_request_body_replaced_seen_by_httpbin(bgw):
    t = tok()
    r = http(bgw.port, "PUT", "/api/bfh/x-%s" % t, headers=[("Content-Type", "text/plain")],
             body=b"cat" * 1000)
    assert r.status == 200, r
    got = r.json()
    assert got["method"] == "PUT", got
    assert got["data"] == "dog" * 1000, got["data"][:100]
    assert got["headers"]["Content-Length"] == "3000", got["headers"]


def test_request_body_grown_past_limit_is_413_and_never_sent(bgw, raw):
    t = tok()
    path = "/b/grow-%s" % t
    raw.script(path, response(200, b"ok\n"))
    body = b"a" * (BODY_LIMIT // 2 + 1)     # doubles past the limit
    r = http(bgw.port, "POST", "/api/bfg/grow-%s" % t, body=body)
    assert_gateway_error(r, 413)
    # the same request under the limit does go, doubled
    small = b"ab" * 100
    r = http(bgw.port, "POST", "/api/bfg/grow-%s" % t, body=small)
    assert r.status == 200, r
    (req,) = raw.wait_received(path)
    assert_length_framed(req, small.replace(b"a", b"aa"))


def test_chunked_request_body_over_limit_is_413_and_never_sent(bgw, raw):
    t = tok()
    path = "/b/big-%s" % t
    raw.script(path, response(200, b"ok\n"))
    pieces = [b"c" * 8192] * (BODY_LIMIT // 8192 + 4)
    r = http(bgw.port, "POST", "/api/bfr/big-%s" % t, body=iter(pieces))
    if bgw.setup.startswith("lighttpd") and r.status == 411:
        # lighttpd streaming a chunked body to FastCGI cannot say its length
        # and refuses it itself (test_forwarding)
        assert b"statusCode" not in r.body, r
    else:
        assert_gateway_error(r, 413)
    # a request after it reaches the upstream: nothing of the first one did
    r = exchange(bgw, "POST", "/api/bfr/big-%s" % t, body=b"cat")
    assert r.status == 200, r
    (req,) = raw.wait_received(path)
    assert req.body == b"dog", req


# ---- find-and-replace on the response body ---------------------------------------

def chunked_answer(pieces, headers=()):
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
    head += "".join("%s: %s\r\n" % (k, v) for k, v in headers)
    head += "Connection: close\r\n\r\n"
    data = head.encode("latin-1")
    for p in pieces:
        data += b"%x\r\n%s\r\n" % (len(p), p)
    return data + b"0\r\n\r\n"


def test_response_body_replaced_with_length_recomputed(bgw, raw):
    t = tok()
    path = "/b/resp-%s" % t
    # the word split across chunks: the policy sees the whole body
    pieces = [b"top secret: 1, sec", b"ret: 2, " * 1000, b"end"]
    raw.script(path, chunked_answer(pieces, [("X-Backend", "kept")]))
    r = exchange(bgw, "GET", "/api/bfo/resp-%s" % t, [("Accept-Encoding", "gzip, br")])
    want = b"".join(pieces).replace(b"secret", b"[redacted]")
    assert want.count(b"[redacted]") == 2
    assert r.status == 200, r
    assert r.body == want, r
    assert_answer_length(bgw, r)
    assert r.header_values("X-Backend") == ["kept"], r
    (req,) = raw.wait_received(path)
    # a body the policies search must come uncompressed
    assert req.header_values("Accept-Encoding") == [], req


def test_response_over_policy_limit_is_502(bgw, raw):
    t = tok()
    path = "/b/huge-%s" % t
    raw.script(path, response(200, b"s" * (RESP_LIMIT + 1)))
    r = http(bgw.port, "GET", "/api/bfo/huge-%s" % t)
    doc = assert_gateway_error(r, 502)
    assert "too large" in doc["message"], doc
    # exactly the limit passes whole
    path2 = "/b/limit-%s" % t
    raw.script(path2, response(200, b"s" * RESP_LIMIT))
    r = http(bgw.port, "GET", "/api/bfo/limit-%s" % t)
    assert r.status == 200, r
    assert r.body == b"s" * RESP_LIMIT, len(r.body)
    # a replacement that grows it past the limit: 502 too, never a partial answer
    path3 = "/b/grow-%s" % t
    raw.script(path3, response(200, b"s" * (RESP_LIMIT - 6) + b"secret"))
    r = http(bgw.port, "GET", "/api/bfo/grow-%s" % t)
    doc = assert_gateway_error(r, 502)
    assert "too large" in doc["message"], doc


def test_response_replaced_through_httpbin(bgw):
    t = tok()
    r = http(bgw.port, "GET", "/api/bfoh/anything/zebra-%s?animal=zebra" % t)
    assert r.status == 200, r
    got = r.json()
    assert got["args"] == {"animal": "giraffe"}, got
    assert got["url"].endswith("/anything/giraffe-%s?animal=giraffe" % t), got
    assert_answer_length(bgw, r)


def test_head_on_buffering_api_has_no_body(bgw, raw):
    t = tok()
    path = "/b/head-%s" % t
    raw.script(path, response(200, b"secret\n"))
    r = exchange(bgw, "HEAD", "/api/bfo/head-%s" % t)
    assert r.status == 200 and r.body == b"", r


# ---- send-request -------------------------------------------------------------------

def test_token_exchange_get_through_httpbin(bgw):
    logic_only(bgw)
    want = "tok-%s" % tok()
    r = http(bgw.port, "GET", "/api/srg/x", headers=[("X-Want", want),
                                                     ("Authorization", "client-own")])
    assert r.status == 200, r
    got = r.json()
    assert got["headers"]["Authorization"] == "Bearer %s" % want, got["headers"]
    assert got["headers"]["X-Tok-Status"] == "200", got["headers"]


def test_token_exchange_post(bgw, raw):
    logic_only(bgw)
    t = tok()
    raw.script("/auth/token", lambda req, up: response(
        200, json.dumps({"access_token": "T-" + req.body.decode().rsplit("=", 1)[1],
                         "token_type": "Bearer"}).encode(),
        [("Content-Type", "application/json")]))
    raw.script("/b/main-%s" % t, response(200, b"main\n"))
    r = exchange(bgw, "POST", "/api/srp/main-%s" % t,
                 [("X-Client", t), ("Cookie", "session=client"), ("Authorization", "client-own")],
                 b"client body")
    assert r.status == 200 and r.body == b"main\n", r
    side = [q for q in raw.received("/auth/token") if t.encode() in q.body]
    assert len(side) == 1, raw.received("/auth/token")
    (s,) = side
    assert s.method == "POST", s
    assert_length_framed(s, b"grant_type=client_credentials&client_id=" + t.encode())
    assert s.header_values("Content-Type") == ["application/x-www-form-urlencoded"], s
    assert s.header_values("X-Idp-Key") == ["idp-key"], s      # the backend's credentials
    # mode "new": nothing of the client's request went to the side backend
    assert s.header_values("Cookie") == [] and s.header_values("Authorization") == [], s
    (m,) = raw.wait_received("/b/main-%s" % t)
    assert m.header_values("Authorization") == ["Bearer T-%s" % t], m
    assert m.body == b"client body", m


def test_side_call_from_outbound(bgw):
    """A side call made while the backend's answer is being handled (its own
    handle, inside the backend call's): the answer's header carries it."""
    logic_only(bgw)
    want = "out-%s" % tok()
    r = http(bgw.port, "GET", "/api/sro/anything/o", headers=[("X-Want", want)])
    assert r.status == 200, r
    assert r.header("X-Token") == "%s/200" % want, r
    assert r.json()["url"].endswith("/anything/o"), r


def test_ignore_error_continues_with_status_0(bgw):
    logic_only(bgw)
    r = http(bgw.port, "GET", "/api/sri/x")
    assert r.status == 200, r
    assert r.json()["headers"]["X-Tok-Status"] == "0", r


def test_side_call_failure_is_502(bgw):
    logic_only(bgw)
    t = tok()
    r = http(bgw.port, "GET", "/api/sre/x-%s" % t)
    assert_gateway_error(r, 502)


@pytest.fixture(scope="module")
def hang(raw):
    import threading
    release = threading.Event()

    def never(req, up):
        release.wait(30)
        return response(200, b"late\n")
    raw.script("/hang/never", never)
    yield
    release.set()


def test_side_call_timeout_is_504_in_time(bgw, hang):
    t0 = time.monotonic()
    r = http(bgw.port, "GET", "/api/srt/x")
    elapsed = time.monotonic() - t0
    assert_gateway_error(r, 504)
    assert 0.9 <= elapsed < 5, elapsed
