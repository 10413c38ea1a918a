"""Attempts to use the gateway as an open proxy. Whatever the client gets,
the canary (a server no configured backend names) must receive nothing, and
the echo backend nothing outside its base path /echo/base/."""

import uuid

import pytest

from harness import http


def token():
    return uuid.uuid4().hex[:12]


def assert_contained(nginx, t):
    """After the attempt holding token t: the canary saw nothing, and every
    request the main upstream saw with t stayed under /echo/base/."""
    nginx.settle()
    assert nginx.canary_hits() == [], "the canary was reached"
    for rec in nginx.requests_with(t, expect=False):
        assert rec["uri"].startswith("/echo/base/"), rec
        assert rec["host"] == "127.0.0.1:%d" % nginx.port, rec
        assert rec["x_injected"] == "", rec


ATTEMPTS = {
    # absolute-form request targets naming the canary
    "absolute-form-root": lambda c, t: ("GET", "http://127.0.0.1:%d/%s" % (c, t), None),
    "absolute-form-api": lambda c, t: ("GET", "http://127.0.0.1:%d/api/echo/%s" % (c, t), None),
    "absolute-form-canary-host": lambda c, t: (
        "GET", "http://127.0.0.1:%d/api/echo/%s" % (c, t), "127.0.0.1:%d" % c),
    # hostile Host header
    "host-header": lambda c, t: ("GET", "/api/echo/%s" % t, "127.0.0.1:%d" % c),
    "host-header-userinfo": lambda c, t: ("GET", "/api/echo/%s" % t, "user@127.0.0.1:%d" % c),
    # authority smuggled into the path
    "double-slash": lambda c, t: ("GET", "/api/echo//127.0.0.1:%d/%s" % (c, t), None),
    "at-sign": lambda c, t: ("GET", "/api/echo@127.0.0.1:%d/%s" % (c, t), None),
    "encoded-at": lambda c, t: ("GET", "/api/echo%%40127.0.0.1:%d/%s" % (c, t), None),
    "path-userinfo": lambda c, t: ("GET", "/api/echo/@127.0.0.1:%d/%s" % (c, t), None),
    "encoded-slashes-up": lambda c, t: ("GET", "/api/echo/..%%2f..%%2f..%%2fx%s" % t, None),
    "encoded-dots-up": lambda c, t: ("GET", "/api/echo/%%2e%%2e/%%2e%%2e/%s" % t, None),
    "mixed-dots-up": lambda c, t: ("GET", "/api/echo/%s/.%%2e/.%%2e/.%%2e/x" % t, None),
    "backslash-up": lambda c, t: ("GET", "/api/echo/..%%5c..%%5c%s" % t, None),
    "scheme-in-path": lambda c, t: ("GET", "/api/echo/http:%%2f%%2f127.0.0.1:%d%%2f%s" % (c, t), None),
    # CR/LF, encoded in the path and the query
    "crlf-path": lambda c, t: ("GET", "/api/echo/%s%%0d%%0aX-Injected:%%201%%0d%%0a" % t, None),
    "crlf-query": lambda c, t: ("GET", "/api/echo/%s?a=1%%0d%%0aX-Injected:%%201" % t, None),
    "crlf-host-path": lambda c, t: (
        "GET", "/api/echo/%s%%0d%%0aHost:%%20127.0.0.1:%d%%0d%%0a%%0d%%0a" % (t, c), None),
}


@pytest.mark.parametrize("name", sorted(ATTEMPTS))
def test_open_proxy_attempt_contained(gw, nginx, name):
    t = token()
    method, target, host = ATTEMPTS[name](nginx.canary_port, t)
    r = gw.request(method, target, host=host)
    assert r.status != 502 and r.status < 500, r
    if r.status == 200:
        assert b"CANARY" not in r.body
    assert_contained(nginx, t)


@pytest.mark.parametrize("raw", [
    # raw CR / LF / NUL in the request line or a header: the web server
    # refuses these; nothing may come out at the far side
    b"GET /api/echo/{t}\rX-Injected: 1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /api/echo/{t} HTTP/1.1\r\nHost: x\r\nX-Keep: a\rX-Injected: 1\r\nConnection: close\r\n\r\n",
    b"GET /api/echo/{t}\x00/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET http://127.0.0.1:{c}/api/echo/{t} HTTP/1.1\r\nHost: 127.0.0.1:{c}\r\nConnection: close\r\n\r\n",
    b"CONNECT 127.0.0.1:{c} HTTP/1.1\r\nHost: 127.0.0.1:{c}\r\nConnection: close\r\n\r\n",
], ids=["cr-in-target", "cr-in-header", "nul-in-target", "absolute-raw", "connect"])
def test_raw_attempt_contained(gw, nginx, raw):
    t = token()
    data = raw.replace(b"{t}", t.encode()).replace(b"{c}", str(nginx.canary_port).encode())
    try:
        r = http(gw.port, "GET", "", raw=data, timeout=10)
        if r.status == 200:
            assert b"CANARY" not in r.body
    except ConnectionError:
        pass  # the server hung up: fine
    assert_contained(nginx, t)
