"""A hostile backend, and hostile clients, against the forwarder (issue 8).

Raw sockets on both sides (rawupstream.py): the upstream records the exact
bytes it received and answers exact bytes; the client reads the exact bytes
the web server sent. Every party asserts:

  redirects      follow-redirects follows only the backend's own origin, at
                 most 5 hops; backend credentials never go elsewhere; the
                 client gets exactly one well-formed answer
  server headers a backend header the web server would act on (a local
                 Location with 200, X-Sendfile...) never reaches it
  framing        no chunked header without a body, a retry resends the
                 identical body, a backend's Content-Length never disagrees
                 with the body the client gets
  credentials    a credential query parameter reaches the backend once, with
                 its configured value, whatever the client spells
  breaker        client faults never open the backend's circuit breaker
"""

import copy
import json
import socket
import threading
import urllib.parse

import pytest

from harness import assert_gateway_error, wait_until
from servers import CGI_SETUPS, ModuleDocument
from rawupstream import (RawUpstream, parse_response, raw_exchange, raw_request,
                         response)

BODY_LIMIT = 64 * 1024          # gateway.max_request_body_bytes in this module
CB_FAILURES = 2
OWN_BODY = b"backend-own-body\n"
PASSWD = b"root:x:0:0"


@pytest.fixture(scope="module")
def raw():
    s = RawUpstream()
    yield s
    s.stop()


def hostile_doc(base, raw):
    doc = copy.deepcopy(base)
    doc["gateway"] = dict(doc["gateway"], max_request_body_bytes=BODY_LIMIT)
    doc["backends"].update({
        "hb-raw": {"url": raw.url("/r"), "timeout_ms": 10000},
        "hb-raw-creds": {"url": raw.url("/rc"), "timeout_ms": 10000,
                         "credentials": {"basic": {"username": "svc", "password": "{{svc-pass}}"},
                                         "header": {"X-Api-Key": "backend-key"},
                                         "query": {"appid": "backend-appid"}}},
        "hb-raw-cb": {"url": raw.url("/cb"), "timeout_ms": 10000,
                      "circuit_breaker": {"failures": CB_FAILURES, "interval_s": 600,
                                          "trip_duration_s": 600}},
        "hb-raw-slow": {"url": raw.url("/slow"), "timeout_ms": 500,
                        "circuit_breaker": {"failures": CB_FAILURES, "interval_s": 600,
                                            "trip_duration_s": 600}},
    })

    def api(api_id, backend, **kw):
        return dict({"id": api_id, "path": api_id, "backend": backend,
                     "subscription_required": False}, **kw)
    doc["apis"] = doc["apis"] + [
        api("hr", "hb-raw"),
        api("hrf", "hb-raw-creds",
            policies={"backend": [{"forward-request": {"follow-redirects": True}}]}),
        api("hrr", "hb-raw",
            policies={"backend": [{"retry": {"condition": ["5xx"], "count": 1,
                                             "interval": 0}}]}),
        api("hcb", "hb-raw-cb"),
        api("hslow", "hb-raw-slow"),
        api("hrcl", "hb-raw", policies={"outbound": [{"set-header": {
            "name": "Content-Length", "exists-action": "override", "value": "3"}}]}),
    ]
    return doc


@pytest.fixture(scope="module")
def _hmodule(gw, base, raw):
    with ModuleDocument(gw, base, hostile_doc(base, raw)) as m:
        yield m


@pytest.fixture
def hgw(gw, _hmodule):
    return _hmodule.gateway()


def exchange(gw, method, target, headers=(), body=None, chunked=False):
    """One request over a raw socket; the answer parsed strictly."""
    data = raw_exchange(gw.port, raw_request(gw.port, method, target, headers, body, chunked))
    return parse_response(data, method)


def query_pairs(req):
    return urllib.parse.parse_qsl(req.query, keep_blank_values=True)


def assert_framed(req):
    """req (upstream) parsed exactly: no chunked header without a body."""
    assert req.error is None, req
    if req.framing == "chunked":
        assert req.body, "Transfer-Encoding: chunked with no body: %r" % (req,)


# ---- 1. redirects ---------------------------------------------------------------

def test_same_origin_redirect_followed_once_with_credentials(hgw, raw):
    tag = hgw.setup
    raw.script("/rc/redir-%s" % tag, response(
        302, b"intermediate body\n", [("Location", "/rc/final-%s?appid=evil&APPID=evil2&y=2" % tag)]))
    raw.script("/rc/final-%s" % tag, response(200, b"final body\n", [("Content-Type", "text/plain")]))
    r = exchange(hgw, "GET", "/api/hrf/redir-%s?x=1" % tag)
    # one answer, the final one: no 3xx head, no intermediate body
    assert r.status == 200, r
    assert r.body == b"final body\n", r
    assert not r.header_values("Location"), r
    finals = raw.received("/rc/final-%s" % tag)
    assert len(finals) == 1, finals
    f = finals[0]
    assert_framed(f)
    assert f.method == "GET"
    assert f.header_values("X-Api-Key") == ["backend-key"], f
    assert len(f.header_values("Authorization")) == 1, f
    pairs = query_pairs(f)
    assert [v for k, v in pairs if k.lower().startswith("appid")] == ["backend-appid"], pairs
    assert ("y", "2") in pairs, pairs


def test_cross_origin_redirect_is_passed_on_never_followed(hgw, raw, nginx):
    tag = hgw.setup
    away = "http://127.0.0.1:%d/steal-%s?x=1" % (nginx.canary_port, tag)
    raw.script("/rc/away-%s" % tag, response(302, b"see elsewhere\n", [("Location", away)]))
    r = exchange(hgw, "GET", "/api/hrf/away-%s" % tag)
    assert r.status == 302, r
    assert r.header_values("Location") == [away], r
    assert r.body == b"see elsewhere\n", r
    nginx.settle()
    assert [h for h in nginx.canary_hits() if "steal-%s" % tag in h["request"]] == []


def test_redirect_loop_is_capped(hgw, raw):
    tag = hgw.setup
    path = "/rc/loop-%s" % tag
    raw.script(path, response(302, b"again\n", [("Location", path)]))
    r = exchange(hgw, "GET", "/api/hrf/loop-%s" % tag)
    assert r.status == 502, r
    assert_gateway_error(_as_response(r), 502)
    # the first request and 5 redirects, no more
    assert len(raw.received(path)) == 6, raw.received(path)


@pytest.mark.parametrize("status,method,keeps", [
    (303, "POST", False), (302, "POST", False), (307, "POST", True), (308, "PUT", True)])
def test_redirect_method_and_body_rules(hgw, raw, status, method, keeps):
    tag = "%s-%d" % (hgw.setup, status)
    raw.script("/rc/m-%s" % tag, response(status, b"", [("Location", "/rc/mfinal-%s" % tag)]))
    raw.script("/rc/mfinal-%s" % tag, response(200, b"done\n"))
    body = b'{"k": "' + b"v" * 3000 + b'"}'
    r = exchange(hgw, method, "/api/hrf/m-%s" % tag, [("Content-Type", "application/json")],
                 body, chunked=hgw.setup in CGI_SETUPS)
    assert r.status == 200 and r.body == b"done\n", r
    first = raw.received("/rc/m-%s" % tag)
    final = raw.received("/rc/mfinal-%s" % tag)
    assert len(first) == 1 and len(final) == 1, (first, final)
    assert_framed(first[0])
    assert first[0].body == body
    f = final[0]
    assert_framed(f)
    if keeps:
        assert f.method == method, f
        assert f.body == body, f
    else:
        assert f.method == "GET", f
        assert f.body == b"", f
        assert not f.header_values("Transfer-Encoding"), f
        assert not f.header_values("Content-Type"), f
        assert f.header_values("Content-Length") in ([], ["0"]), f


def _as_response(r):
    """A RawResponse as harness.Response-like for assert_gateway_error."""
    class R:
        status = r.status
        body = r.body

        def header(self, name):
            return r.header(name)

        def json(self):
            return json.loads(r.body.decode())
    return R()


# ---- 7. headers the web server would act on ---------------------------------------

SERVER_HEADERS = [
    ("Location", "/etc/passwd"),
    ("Location ", "/etc/passwd"),            # not a token: read as Location by some
    ("X-Sendfile", "/etc/passwd"),
    ("X-Sendfile2", "/etc/passwd 0-"),
    ("X-LIGHTTPD-send-file", "/etc/passwd"),
    ("X-LIGHTTPD-send-tempfile", "/etc/passwd"),
    ("X-Accel-Redirect", "/etc/passwd"),
    ("Status", "302 Found"),
    ("Variable-REMOTE_USER", "admin"),
]


@pytest.mark.parametrize("name,value", SERVER_HEADERS, ids=[h[0].strip() + ("-sp" if h[0].endswith(" ") else "")
                                                            for h in SERVER_HEADERS])
def test_server_headers_never_reach_the_web_server(hgw, raw, name, value):
    slug = "".join(c if c.isalnum() else "-" for c in name.strip())
    path = "/r/sh-%s-%s%s" % (hgw.setup, slug, "-sp" if name.endswith(" ") else "")
    raw.script(path, ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n%s: %s\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n" % (
                          name, value, len(OWN_BODY))).encode() + OWN_BODY)
    r = exchange(hgw, "GET", "/api/hr" + path[2:])
    assert PASSWD not in r.body, r
    assert r.status == 200, r
    assert r.body == OWN_BODY, r
    assert not r.header_values(name.strip()), r


def test_backend_control_bytes_never_reach_the_head(hgw, raw):
    path = "/r/ctl-%s" % hgw.setup
    raw.script(path, b"HTTP/1.1 200 OK\r\nX-Ctl: a\x01b\x7fc\x0bd\x1be\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(OWN_BODY) + OWN_BODY)
    data = raw_exchange(hgw.port, raw_request(hgw.port, "GET", "/api/hr" + path[2:]))
    r = parse_response(data)
    assert r.status == 200 and r.body == OWN_BODY, r
    head = data.split(b"\r\n\r\n")[0]
    assert [c for c in head if (c < 0x20 and c not in (9, 10, 13)) or c == 0x7f] == [], head


def test_location_kept_on_201_and_3xx(hgw, raw):
    path = "/r/created-%s" % hgw.setup
    raw.script(path, response(201, b"made\n", [("Location", "http://127.0.0.1/things/1")]))
    r = exchange(hgw, "POST", "/api/hr" + path[2:], body=b"{}")
    assert r.status == 201 and r.body == b"made\n", r
    assert r.header_values("Location") == ["http://127.0.0.1/things/1"], r


# ---- 6. framing ----------------------------------------------------------------------

def test_head_with_chunked_body_sends_no_chunked_header(hgw, raw):
    path = "/r/head-%s" % hgw.setup
    raw.script(path, response(200, b"", [("X-Own", "1")]))
    r = exchange(hgw, "HEAD", "/api/hr" + path[2:], body=b"x" * 100, chunked=True)
    if r.status == 400 and not r.header("X-Request-Id"):
        # lighttpd refuses a HEAD with a body itself: nothing went upstream
        assert raw.received(path) == []
        return
    assert r.status == 200, r
    got = raw.wait_received(path)
    assert len(got) == 1, got
    assert_framed(got[0])
    assert got[0].method == "HEAD"
    assert not got[0].header_values("Transfer-Encoding"), got[0]
    assert got[0].body == b""


def test_retry_resends_the_identical_body(hgw, raw):
    path = "/r/retry-%s" % hgw.setup
    seen = []

    def answer(req, _up):
        seen.append(req)
        return response(503 if len(seen) == 1 else 200, b"attempt %d\n" % len(seen))
    raw.script(path, answer)
    body = bytes(range(256)) * 40
    # apache-cgi: the body reaches hostgate without a length
    r = exchange(hgw, "POST", "/api/hrr" + path[2:], [("Content-Type", "application/octet-stream")],
                 body, chunked=True)
    assert r.status == 200 and r.body == b"attempt 2\n", r
    got = raw.received(path)
    assert len(got) == 2, got
    for g in got:
        assert_framed(g)
        assert g.body == body, (len(g.body), g)


def _chunked(*pieces):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_backend_chunked_with_length_reaches_client_framed(hgw, raw):
    path = "/r/tecl-%s" % hgw.setup
    raw.script(path, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
                     b"Connection: close\r\n\r\n" + _chunked(b"hello", b" world"))
    r = exchange(hgw, "GET", "/api/hr" + path[2:])
    assert r.status == 200, r
    assert r.body == b"hello world", r


def test_answer_streams_while_the_backend_pauses(hgw, raw):
    """A backend that sends its head and a first chunk, then waits: the
    client gets both before the backend goes on. The worker writes an answer
    only before it waits (fcgi-app/forward.c, flush_answer); one that held the
    piece back until the end would leave the client waiting with the backend.
    The backend waits for the client to have read the first piece, not for a
    time: a build without that flush (tried) shows the client nothing until
    the backend's timeout (10 s) cuts the answer short, and then only the
    first piece."""
    path = "/r/pause-%s" % hgw.setup
    seen = threading.Event()

    def answer(_req, _up):
        yield (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + b"6\r\nfirst\n\r\n")
        seen.wait(15)
        yield b"7\r\nsecond\n\r\n0\r\n\r\n"
    raw.script(path, answer)
    data = b""
    with socket.create_connection(("127.0.0.1", hgw.port), timeout=30) as s:
        s.sendall(raw_request(hgw.port, "GET", "/api/hr" + path[2:]))
        while b"first\n" not in data:
            b = s.recv(65536)
            assert b, "closed before the first piece: %r" % data
            data += b
        assert b"second" not in data, data
        seen.set()
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    r = parse_response(data, "GET")
    assert r.status == 200 and r.body == b"first\nsecond\n", r


@pytest.mark.parametrize("lengths", [["5", "7"], ["5x"], ["-5"], ["5, 7"]],
                         ids=["two", "junk", "negative", "list"])
def test_backend_bad_lengths_are_502(hgw, raw, lengths):
    path = "/r/badcl-%s-%d" % (hgw.setup, hash(tuple(lengths)) & 0xffff)
    raw.script(path, b"HTTP/1.1 200 OK\r\n" +
               b"".join(b"Content-Length: %s\r\n" % v.encode() for v in lengths) +
               b"Connection: close\r\n\r\nhello")
    r = exchange(hgw, "GET", "/api/hr" + path[2:])
    assert r.status == 502, r


def test_never_more_bytes_than_the_length_passed_on(hgw, raw):
    # an outbound policy sets a length shorter than the backend's body
    path = "/r/pcl-%s" % hgw.setup
    raw.script(path, response(200, b"hello world"))
    r = exchange(hgw, "GET", "/api/hrcl" + path[2:])
    assert r.status == 200, r
    assert r.body == b"hel", r


def test_backend_length_matches_body(hgw, raw):
    path = "/r/cl-%s" % hgw.setup
    raw.script(path, response(200, b"y" * 5000))
    r = exchange(hgw, "GET", "/api/hr" + path[2:])
    assert r.status == 200 and r.body == b"y" * 5000, r


# ---- 9. credential query parameters ------------------------------------------------

SHADOWS = ["APPID=evil", "AppId=evil", "appid%00=evil", "appid;x=evil", "appid%20=evil",
           "appid[]=evil", "%61ppid=evil", "appid=a&appid=b", "appid.x=evil", "x=1;appid=evil"]


@pytest.mark.parametrize("shadow", SHADOWS)
def test_credential_query_not_shadowed(hgw, shadow):
    r = hgw.get("/api/creds/q?keep=1&" + shadow)
    if r.status == 400 and not r.header("X-Request-Id"):
        pytest.skip("the web server itself refuses %r" % shadow)
    assert r.status == 200, r
    args = r.json()["args"]
    # once, with its value, and no look-alike beside it, not even inside
    # another parameter's value (x=1;appid=evil)
    assert args.get("appid") == "backend-appid", args
    assert [k for k in args if k != "appid" and "appid" in k.lower()] == [], args
    assert [v for k, v in args.items() if k != "appid" and "appid" in str(v).lower()] == [], args
    assert args.get("keep", "").split(";")[0] == "1", args


# ---- 5. client faults and the circuit breaker ---------------------------------------

def _access_entries(gw, path):
    try:
        with open(gw.access_log) as f:
            entries = [json.loads(ln) for ln in f if ln.strip()]
            return [e for e in entries if path in (e.get("path") or "")]
    except FileNotFoundError:
        return []


# where hostgate reads the body as the client sends it, so that a client
# leaving mid-upload reaches the forwarder (mod_fcgid reads it whole first)
STREAMS_BODY = {"lighttpd-binpath", "lighttpd-socket", "apache-proxy-fcgi"}


def test_client_faults_do_not_open_the_circuit_breaker(hgw, raw):
    tag = hgw.setup
    ok_path = "/cb/ok-%s" % tag
    raw.script("/cb", response(200, b"fine\n"))
    n = CB_FAILURES + 2
    if tag in CGI_SETUPS:
        # a chunked body over the limit: 413 from the forwarder, as it reads
        big = b"z" * (BODY_LIMIT + 4096)
        for i in range(n):
            r = exchange(hgw, "POST", "/api/hcb/big-%s-%d" % (tag, i), body=big, chunked=True)
            assert r.status == 413, r
        wait_until(lambda: len(_access_entries(hgw, "/hcb/big-%s-" % tag)) >= n, 10,
                   "the 413s in the access log")
    else:
        # clients that leave mid-upload
        for i in range(n):
            with socket.create_connection(("127.0.0.1", hgw.port), timeout=10) as s:
                s.sendall(("POST /api/hcb/gone-%s-%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Content-Length: 60000\r\nContent-Type: application/octet-stream\r\n"
                           "\r\n" % (tag, i)).encode() + b"a" * 20000)
                if tag in STREAMS_BODY:
                    raw.wait_received("/cb/gone-%s-%d" % (tag, i))
            if tag in STREAMS_BODY:
                wait_until(lambda i=i: _access_entries(hgw, "/hcb/gone-%s-%d" % (tag, i)), 10,
                           "hostgate to finish the abandoned upload %d" % i)
    r = exchange(hgw, "GET", "/api/hcb" + ok_path[3:])
    assert r.status == 200 and r.body == b"fine\n", r
    assert len(raw.received(ok_path)) == 1


def test_backend_timeouts_after_an_upload_still_open_the_breaker(hgw, raw):
    """The other side of the line: a backend that takes the whole body and
    then does not answer in its timeout is the backend's failure."""
    tag = hgw.setup
    release = threading.Event()

    def stall(req, _up):
        release.wait(15)        # past the backend's 500 ms timeout
        return response(200, b"too late\n")
    raw.script("/slow", stall)
    try:
        for i in range(CB_FAILURES):
            r = exchange(hgw, "POST", "/api/hslow/t-%s-%d" % (tag, i),
                         [("Content-Type", "application/octet-stream")], b"b" * 5000,
                         chunked=tag in CGI_SETUPS)
            assert r.status == 504, r
        r = exchange(hgw, "GET", "/api/hslow/after-%s" % tag)
        assert r.status == 503, r
        assert raw.received("/slow/after-%s" % tag) == []
    finally:
        release.set()
