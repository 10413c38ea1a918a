"""The gateway's own answers: 404, 400, 413, 502, 503, 504, each a JSON
error with the request id, and nothing sent upstream where nothing should
be."""

import os
import time
import uuid

import pytest

from harness import assert_gateway_error


def token():
    return uuid.uuid4().hex[:12]




@pytest.mark.parametrize("target", ["/api/nope/x", "/api/", "/api/nope", "/api/ech/x"])
def test_404_no_api(gw, target):
    assert_gateway_error(gw.get(target), 404)


@pytest.mark.parametrize("method,target", [
    ("GET", "/api/ops/other/1"),
    ("POST", "/api/ops/items/1"),
    ("GET", "/api/ops/items/1/extra"),
    ("GET", "/api/ops"),
])
def test_404_no_operation(gw, method, target):
    assert_gateway_error(gw.request(method, target, body=b"x" if method == "POST" else None), 404)


def test_operation_matched(gw, httpbin):
    r = gw.get("/api/ops/ITEMS/42")
    assert r.status == 200, r
    assert r.json()["url"] == httpbin.url("/anything/base/ITEMS/42")


def test_error_keeps_valid_client_request_id(gw):
    rid = "err-" + token()
    assert_gateway_error(gw.get("/api/nope", headers=[("X-Request-Id", rid)]), 404, request_id=rid)


def test_error_replaces_invalid_request_id(gw):
    doc = assert_gateway_error(gw.get("/api/nope", headers=[("X-Request-Id", "no good")]), 404)
    assert doc["requestId"] != "no good"


# Targets that the web servers still hand to the gateway (whatever they make
# of the dots, they stay under /api/echo/), each holding a token so that the
# upstream's log shows whether it was forwarded.
DOT_TARGETS = [
    "/api/echo/{t}/../x",
    "/api/echo/{t}/%2e%2e/x",
    "/api/echo/{t}/%2E%2E/x",
    "/api/echo/{t}/.%2e/x",
    "/api/echo/{t}/..%2fx",
    "/api/echo/{t}/..%2Fx",
    "/api/echo/{t}/a..%2f..%2fx",
    "/api/echo/{t}/..%5cx",
    "/api/echo/{t}/./x",
    "/api/echo/{t}/%2e/x",
    "/api/echo/{t}/x/..",
    "/api/echo/{t}/x/%2e%2e?q=1",
]


@pytest.mark.parametrize("target", DOT_TARGETS)
def test_400_dot_segments_never_forwarded(gw, nginx, target):
    t = token()
    assert_gateway_error(gw.get(target.format(t=t)), 400)
    nginx.settle()
    assert nginx.requests_with(t, expect=False) == []


def test_502_backend_port_closed(gw):
    r = gw.get("/api/dead/x")
    assert_gateway_error(r, 502)
    assert r.elapsed < 5


def test_504_backend_timeout(gw):
    t0 = time.monotonic()
    r = gw.get("/api/slow/delay/3")
    elapsed = time.monotonic() - t0
    assert_gateway_error(r, 504)
    assert 0.9 <= elapsed < 2.9, "timeout_ms 1000 but the answer took %.2fs" % elapsed


def test_413_body_over_limit_never_reaches_upstream(gw, nginx, base):
    limit = 1 << 20
    gw.apply(dict(base, gateway=dict(base["gateway"], max_request_body_bytes=limit)))
    try:
        t = token()
        r = gw.request("PUT", "/api/upload/big413-%s.bin" % t, body=os.urandom(2 * limit))
        assert_gateway_error(r, 413)
        # exactly at the limit still passes
        r = gw.request("PUT", "/api/upload/ok413-%s.bin" % t, body=os.urandom(limit))
        assert r.status in (201, 204), r
        nginx.settle()
        assert nginx.requests_with("big413-" + t, expect=False) == []
        assert not os.path.exists(os.path.join(nginx.dav, "upload", "big413-%s.bin" % t))
    finally:
        gw.apply(base)


def test_503_without_configuration(gw, make_gateway, base):
    """A gateway whose configuration file does not exist answers 503 (never
    an empty 200), and serves the file once it appears."""
    g = make_gateway(gw.setup, "-noconf")
    r = g.health()
    assert r.status == 503, r
    assert r.json()["status"] == "no-config"
    assert r.header("X-Request-Id")
    assert_gateway_error(g.get("/api/hb/get"), 503)
    gen = g.config.write(base)
    g.wait_generation(gen, timeout=10)
    r = g.get("/api/hb/get")
    assert r.status == 200, r
