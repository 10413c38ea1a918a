"""What goes through the gateway, checked on both sides: the client's answer
and what the upstream (httpbin's /anything, nginx's exact echo) received."""

import base64
import json
import os
import uuid

import pytest

from harness import TOKEN_RE, http, wait_until
from servers import CGI_SETUPS, parse_echo


def token():
    return uuid.uuid4().hex[:12]


def anything(r):
    """httpbin's /anything echo of the request it got."""
    assert r.status == 200, r
    return r.json()


# ---- methods and bodies ----------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_method_and_body_reach_upstream(gw, httpbin, method):
    t = token()
    body = ('{"m": "%s", "t": "%s"}' % (method, t)).encode() if method != "GET" else None
    headers = [("Content-Type", "application/json")] if body else []
    r = gw.request(method, "/api/any/m/%s" % t, headers=headers, body=body)
    got = anything(r)
    assert got["method"] == method
    assert got["url"] == httpbin.url("/anything/base/m/%s" % t)
    if body:
        assert got["json"] == {"m": method, "t": t}
        assert got["headers"]["Content-Type"] == "application/json"
    else:
        assert got["data"] == ""
        # libcurl's invented defaults must not appear
        assert "Content-Type" not in got["headers"]
    assert "Expect" not in got["headers"]


def test_post_without_content_type_gets_none_upstream(gw):
    r = gw.request("POST", "/api/any/raw", body=b"plain bytes")
    got = anything(r)
    assert got["data"] == "plain bytes"
    assert "Content-Type" not in got["headers"], "libcurl's form content type leaked"


def test_head(gw, nginx):
    t = token()
    r = gw.request("HEAD", "/api/echo/head-%s" % t)
    assert r.status == 200, r
    assert r.body == b""
    (rec,) = nginx.requests_with(t)
    assert rec["method"] == "HEAD"
    assert rec["uri"] == "/echo/base/head-%s" % t


def test_options(gw, nginx):
    t = token()
    r = gw.request("OPTIONS", "/api/echo/opt-%s" % t)
    assert r.status == 200, r
    assert parse_echo(r.body)["method"] == "OPTIONS"
    (rec,) = nginx.requests_with(t)
    assert rec["method"] == "OPTIONS"


def test_binary_request_body(gw, nginx):
    t = token()
    data = bytes(range(256)) * 256 + os.urandom(65536) + b"\r\n\x00\xff"
    r = gw.request("PUT", "/api/upload/bin-%s.bin" % t, body=data)
    assert r.status in (201, 204), r
    with open(os.path.join(nginx.dav, "upload", "bin-%s.bin" % t), "rb") as f:
        assert f.read() == data


def test_binary_request_body_to_httpbin(gw):
    data = bytes(range(256)) * 16
    r = gw.request("POST", "/api/any/bin", headers=[("Content-Type", "application/octet-stream")],
                   body=data)
    got = anything(r)
    prefix = "data:application/octet-stream;base64,"
    assert got["data"].startswith(prefix)
    assert base64.b64decode(got["data"][len(prefix):]) == data


def test_chunked_request_body(gw, nginx):
    """A body without Content-Length (the client sends it chunked)."""
    t = token()
    pieces = [os.urandom(10000) for _ in range(30)]
    r = gw.request("PUT", "/api/upload/chunked-%s.bin" % t, body=iter(pieces))
    if gw.setup.startswith("lighttpd"):
        # lighttpd streaming request bodies (server.stream-request-body = 2)
        # to FastCGI cannot say CONTENT_LENGTH: it answers 411 itself
        assert r.status == 411 and b"statusCode" not in r.body, r
        nginx.settle()
        assert nginx.requests_with(t, expect=False) == []
        return
    assert r.status in (201, 204), r
    with open(os.path.join(nginx.dav, "upload", "chunked-%s.bin" % t), "rb") as f:
        assert f.read() == b"".join(pieces)


def test_binary_response_body(gw, nginx):
    data = os.urandom(300000) + bytes(range(256))
    name = "resp-%s.bin" % token()
    with open(os.path.join(nginx.files, name), "wb") as f:
        f.write(data)
    r = gw.get("/api/files/%s" % name)
    assert r.status == 200, r
    assert r.body == data


def test_empty_and_small_responses(gw):
    r = gw.get("/api/hb/bytes/0")
    assert r.status == 200 and r.body == b""
    r = gw.get("/api/hb/bytes/17?seed=3")
    assert r.status == 200 and len(r.body) == 17


# ---- exact paths and queries ----------------------------------------------

def test_query_string_arrives_unchanged(gw, nginx):
    t = token()
    q = "a=%20b&c=%2F%3F%26%3D&d=%E2%82%AC&e=a+b&f&g=&h=%25&i=%2e&a=2"
    r = gw.get("/api/echo/q-%s?%s" % (t, q))
    assert r.status == 200, r
    assert parse_echo(r.body)["uri"] == "/echo/base/q-%s?%s" % (t, q)
    (rec,) = nginx.requests_with(t)
    assert rec["uri"] == "/echo/base/q-%s?%s" % (t, q)


@pytest.mark.parametrize("path", [
    "group%2Fproject/files",
    "a%20b/c%2520d",
    "%41%42c/%7Euser",
    "semi;colon/co:lon/at@sign/plus+sign/comma,x",
    "dotted.name/..hidden/x..y/%2e%2eok",
], ids=["encoded-slash", "space", "unreserved-encoded", "sub-delims", "dots-in-names"])
def test_path_encoding_arrives_unchanged(gw, nginx, path):
    t = token()
    # ("..hidden", "x..y" and "%2e%2eok" are names, not dot segments)
    r = gw.get("/api/echo/p-%s/%s" % (t, path))
    assert r.status == 200, r
    assert parse_echo(r.body)["uri"] == "/echo/base/p-%s/%s" % (t, path)
    (rec,) = nginx.requests_with(t)
    assert rec["uri"] == "/echo/base/p-%s/%s" % (t, path)


def test_api_root_and_trailing_slash(gw, nginx):
    r = gw.get("/api/echo")
    assert r.status == 200, r
    assert parse_echo(r.body)["uri"] == "/echo/base"
    t = token()
    r = gw.get("/api/echo/%s/" % t)
    assert parse_echo(r.body)["uri"] == "/echo/base/%s/" % t


def test_api_path_is_case_insensitive_and_whole_segment(gw):
    r = gw.get("/api/ECHO/x")
    assert r.status == 200, r
    assert parse_echo(r.body)["uri"] == "/echo/base/x"
    r = gw.get("/api/echox/y")
    assert r.status == 404, r


# ---- status codes and response headers --------------------------------------

@pytest.mark.parametrize("code", [200, 201, 204, 301, 404, 418, 500, 503])
def test_status_passed_through(gw, httpbin, code):
    t = token()
    r = gw.get("/api/hb/status/%d?t=%s" % (code, t))
    assert r.status == code, r
    if code == 301:
        assert r.header("Location") == "/redirect/1"
    if code == 418:
        assert b"teapot" in r.body
    if code >= 400:
        # the upstream's answer, not one of the gateway's JSON errors
        assert b"statusCode" not in r.body
    seen = wait_until(lambda: [line for line in httpbin.log_lines() if t in line], 5,
                      "httpbin to log the request")
    assert seen == ["GET /status/%d?t=%s %d" % (code, t, code)]
    assert not any("/redirect/" in line for line in httpbin.log_lines()), \
        "the gateway followed a redirect"


def test_response_headers_passed_through(gw):
    r = gw.get("/api/hb/response-headers?X-A=b&X-Multi=one&X-Multi=two&Cache-Control=no-store")
    assert r.status == 200, r
    assert r.header("X-A") == "b"
    assert r.header("Cache-Control") == "no-store"
    multi = ",".join(r.header_values("X-Multi")).replace(" ", "")
    assert multi == "one,two"
    assert (r.header("Content-Type") or "").startswith("application/json")


# ---- request headers --------------------------------------------------------

def test_hop_by_hop_request_headers_not_forwarded(gw, nginx):
    t = token()
    r = gw.get("/api/echo/hop-%s" % t, headers=[
        ("Connection", "keep-alive, X-Drop"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-Trail"),
        ("Upgrade", "example/1"),
        ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Drop", "named in Connection"),
        ("X-Keep", "end-to-end"),
    ])
    assert r.status == 200, r
    echo = parse_echo(r.body)
    assert echo["x_keep"] == "end-to-end"
    dropped = ["keep_alive", "te", "trailer", "upgrade", "proxy_authorization",
               "proxy_connection"]
    if gw.setup != "apache-fcgid":
        # mod_fcgid replaces the client's Connection with "close" before the
        # gateway sees it: which headers it named is lost there
        dropped.append("x_drop")
    for field in dropped:
        assert echo[field] == "", "%s forwarded: %r" % (field, echo[field])
    assert "x-drop" not in echo["connection"].lower()
    assert "close" not in echo["connection"].lower()
    (rec,) = nginx.requests_with(t)
    assert rec["x_keep"] == "end-to-end"


def test_host_is_the_backends_and_forwarded_headers_added(gw, nginx):
    r = gw.get("/api/echo/fwd", host="client.example:8443")
    assert r.status == 200, r
    echo = parse_echo(r.body)
    assert echo["host"] == "127.0.0.1:%d" % nginx.port
    assert echo["xff"].split(",")[-1].strip() == "127.0.0.1"
    assert echo["xfp"] == "http"
    assert echo["xfh"] == "client.example:8443"


def test_forwarded_for_appends_to_client_chain(gw):
    r = gw.get("/api/echo/fwd2", headers=[("X-Forwarded-For", "203.0.113.7")])
    echo = parse_echo(r.body)
    hops = [h.strip() for h in echo["xff"].split(",")]
    # an untrusted client's claim may be kept or dropped, but the peer is last
    assert hops[-1] == "127.0.0.1", echo["xff"]


def test_authorization_reaches_upstream(gw):
    """Apache needs CGIPassAuth On for this; lighttpd passes it."""
    r = gw.get("/api/any/auth", headers=[("Authorization", "Bearer abc.def.ghi")])
    got = anything(r)
    assert got["headers"].get("Authorization") == "Bearer abc.def.ghi"


def test_backend_credentials_override_clients(gw, httpbin):
    r = gw.get("/api/creds/c?appid=client-appid&x=1", headers=[
        ("Authorization", "Basic " + base64.b64encode(b"client:pw").decode()),
        ("X-Api-Key", "client-key"),
    ])
    got = anything(r)
    assert got["url"].startswith(httpbin.url("/anything/creds/c?"))
    assert got["headers"]["Authorization"] == "Basic " + base64.b64encode(b"svc:s3cret-pass").decode()
    assert got["headers"]["X-Api-Key"] == "backend-key"
    assert got["args"]["appid"] == "backend-appid"
    assert got["args"]["x"] == "1"


def test_backend_credentials_applied_without_client_values(gw):
    got = anything(gw.get("/api/creds/d"))
    assert got["headers"]["Authorization"] == "Basic " + base64.b64encode(b"svc:s3cret-pass").decode()
    assert got["headers"]["X-Api-Key"] == "backend-key"
    assert got["args"] == {"appid": "backend-appid"}


def test_header_with_underscore(gw):
    """Apache drops X_A; lighttpd passes it as HTTP_X_A, like X-A, so there
    the two arrive as one variable that the gateway cannot tell apart
    (WEBSERVERS.md). Either way X-A's value is not lost."""
    got = anything(gw.get("/api/any/us", headers=[("X-A", "dash"), ("X_A", "underscore")]))
    if gw.setup.startswith("apache"):
        assert got["headers"].get("X-A") == "dash"
    else:
        assert "dash" in got["headers"].get("X-A", "")


# ---- request ids -----------------------------------------------------------

def test_valid_request_id_echoed(gw):
    rid = "client-Id_1.2-" + token()
    r = gw.get("/api/any/rid", headers=[("X-Request-Id", rid)])
    assert r.status == 200
    assert r.header("X-Request-Id") == rid


@pytest.mark.parametrize("rid", ["bad id!", "x" * 129, "a/b", "\u00e9t\u00e9".encode("utf-8").decode("latin-1")],
                         ids=["space", "too-long", "slash", "non-ascii"])
def test_invalid_request_id_replaced(gw, rid):
    r = gw.get("/api/any/rid", headers=[("X-Request-Id", rid)])
    assert r.status == 200
    got = r.header("X-Request-Id")
    assert got and got != rid and TOKEN_RE.match(got), got


def test_request_id_generated(gw):
    ids = set()
    for _ in range(3):
        r = gw.get("/api/any/rid")
        rid = r.header("X-Request-Id")
        assert rid and TOKEN_RE.match(rid), r
        ids.add(rid)
    assert len(ids) == 3


def test_health(gw):
    r = gw.health()
    assert r.status == 200, r
    doc = r.json()
    assert doc["status"] in ("ok", "stale")
    assert doc["generation"] == gw.config.generation
    assert isinstance(doc["config_age_s"], int)
    assert r.header("X-Request-Id")
    assert json.loads(r.body)  # well-formed


def test_keep_alive_connection_serves_several_requests(gw):
    """Two requests on one client connection (the web server keeps it).
    Under Apache CGI hostgate runs as an NPH program (examples/apache/
    hostgate-cgi.conf), and Apache closes the connection after every NPH
    answer: there the answer says "Connection: close" and the connection
    does close after it, whole."""
    import socket
    nph = gw.setup in CGI_SETUPS
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        f = s.makefile("rb")
        for i in range(1 if nph else 2):
            s.sendall(("GET /api/echo/ka%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % i).encode())
            status = f.readline()
            assert b" 200 " in status, status
            length = None
            chunked = False
            close = False
            while True:
                h = f.readline()
                if h in (b"\r\n", b""):
                    break
                k, _, v = h.decode().partition(":")
                if k.lower() == "connection" and "close" in v.lower():
                    close = True
                if k.lower() == "content-length":
                    length = int(v)
                if k.lower() == "transfer-encoding" and "chunked" in v.lower():
                    chunked = True
            if chunked:
                body = b""
                while True:
                    n = int(f.readline().split(b";")[0], 16)
                    if n == 0:
                        f.readline()
                        break
                    body += f.read(n)
                    f.readline()
            else:
                body = f.read(length)
            assert parse_echo(body)["uri"] == "/echo/base/ka%d" % i
            assert close == nph, "Connection: close %s" % ("missing" if nph else "sent")
        if nph:
            assert f.read() == b"", "bytes after the NPH answer"
    finally:
        s.close()


def test_direct_http_helper_sanity(nginx):
    """The harness's own client against nginx directly: exact request target."""
    r = http(nginx.port, "GET", "/echo/x%2Fy?q=%20")
    assert parse_echo(r.body)["uri"] == "/echo/x%2Fy?q=%20"


def test_set_cookie_headers_stay_separate(gw):
    r = gw.get("/api/hb/response-headers?Set-Cookie=a%3D1&Set-Cookie=b%3D2%3B%20Path%3D%2F")
    assert r.status == 200, r
    assert sorted(r.header_values("Set-Cookie")) == ["a=1", "b=2; Path=/"]


def test_large_request_header_passes(gw):
    value = "v" * 7000
    got = anything(gw.get("/api/any/bighdr", headers=[("X-Big", value)]))
    assert got["headers"].get("X-Big") == value


def test_expect_100_continue(gw, nginx):
    t = token()
    data = os.urandom(200000)
    r = gw.request("PUT", "/api/upload/expect-%s.bin" % t, body=data,
                   headers=[("Expect", "100-continue"), ("Content-Length", str(len(data)))])
    assert r.status in (201, 204), r
    with open(os.path.join(nginx.dav, "upload", "expect-%s.bin" % t), "rb") as f:
        assert f.read() == data


def test_access_log(gw):
    """HOSTGATE_ACCESS_LOG: one JSON object a line, never a secret."""
    rid = "alog-" + token()
    r = gw.get("/api/creds/alog?x=1", headers=[("X-Request-Id", rid),
                                                ("Authorization", "Bearer client-token-xyz")])
    assert r.status == 200, r

    def find():
        with open(gw.access_log) as f:
            return [json.loads(line) for line in f if rid in line]
    (rec,) = wait_until(find, 5, "the access log line of %s" % rid)
    for key in ("time", "request_id", "client_ip", "method", "path", "api", "operation",
                "subscription", "status", "bytes_in", "bytes_out", "duration_ms",
                "backend_ms", "error"):
        assert key in rec, (key, rec)
    assert rec["request_id"] == rid
    assert rec["method"] == "GET" and rec["status"] == 200 and rec["api"] == "creds"
    assert rec["client_ip"] == "127.0.0.1"
    with open(gw.access_log) as f:
        text = f.read()
    assert "s3cret-pass" not in text and "client-token-xyz" not in text
    assert "backend-key" not in text and "backend-appid" not in text


def test_access_log_is_utf8_whatever_the_path_holds(gw):
    """A raw 8-bit byte in the path (servers let them through) is written
    percent-encoded: every line stays valid UTF-8 JSON for whatever reads the
    log (before, json-c wrote the byte as it was)."""
    import socket
    if gw.setup.startswith("lighttpd"):
        pytest.skip("lighttpd refuses raw 8-bit bytes in the request line itself")
    rid = "alog8-" + token()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"GET /api/echo/a\x80\xff-" + rid.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"X-Request-Id: " + rid.encode() + b"\r\nConnection: close\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 "), "no answer"

    def find():
        with open(gw.access_log, "rb") as f:
            return [line for line in f if rid.encode() in line]
    (line,) = wait_until(find, 5, "the access log line of %s" % rid)
    rec = json.loads(line.decode("utf-8"))     # strict: raises on a raw 0x80
    assert rec["path"] == "/echo/a%80%FF-" + rid, rec["path"]


def test_client_abort_mid_download_leaves_gateway_serving(gw, nginx):
    """A client that hangs up in the middle of a big answer must not leave
    a hostgate process stuck: afterwards a burst reaching every process is
    still served."""
    import socket
    name = "abort-%s.bin" % token()
    with open(os.path.join(nginx.files, name), "wb") as f:
        f.truncate(64 << 20)
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        s.sendall(("GET /api/files/%s HTTP/1.1\r\nHost: x\r\n\r\n" % name).encode())
        got = 0
        while got < (1 << 20):
            b = s.recv(65536)
            assert b, "connection closed early"
            got += len(b)
        s.close()
    gens = gw.burst_generations()
    assert gens == {gw.config.generation}, gens
