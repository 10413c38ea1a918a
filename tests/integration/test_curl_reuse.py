"""Nothing of one request carries over to the next on a worker's libcurl
handle. fcgi-app/forward.c no longer calls curl_easy_reset() per request
(issue 15, docs/performance.md "The libcurl side of a worker"): the options
that are the same for every request are set once per handle, and every
option that can differ between two requests is set on every request — the
method, the body and its length, the header list, the timeouts, the TLS
settings, the credentials. These tests send requests of different kinds in
an order that makes each follow another kind on the same worker, and check
what the upstream received: httpbin's /anything echo, the TLS upstream's
answers and refusals.

A FastCGI worker serves many requests, so the set-ups are the two with
--listen workers (4 each, woken in turn by accept(2)): every sequence has a
period that does not divide 4 and is long enough that each worker sees every
kind after every other. The CGI and process-manager set-ups start a process
per request or few: nothing to carry over there. Policy-independent, so two
set-ups only (CI time).
"""

import itertools

import pytest

from harness import assert_gateway_error
from servers import ModuleDocument
from test_backend_tls import tls_doc

SETUPS_HERE = ("lighttpd-socket", "apache-proxy-fcgi")


def reuse_doc(base, httpbin, up):
    doc = tls_doc(base, up)
    doc["backends"] = dict(doc["backends"], **{
        # a short timeout of its own, on the same httpbin as "anything"
        "quick": {"url": httpbin.url(), "timeout_ms": 400},
        "patient": {"url": httpbin.url(), "timeout_ms": 10000},
    })
    doc["apis"] = list(doc["apis"]) + [
        {"id": i, "path": i, "backend": i, "subscription_required": False}
        for i in ("quick", "patient")]
    return doc


@pytest.fixture(scope="module")
def _reusemodule(gw, base, httpbin, tls_upstream):
    if gw.setup not in SETUPS_HERE:
        pytest.skip("a worker's handle is reused on %s" % ", ".join(SETUPS_HERE))
    with ModuleDocument(gw, base, reuse_doc(base, httpbin, tls_upstream)) as m:
        yield m


@pytest.fixture
def rgw(_reusemodule):
    return _reusemodule.gateway()


def echo(r):
    assert r.status == 200, r
    return r.json()


def headers_lc(got):
    return {k.lower(): v for k, v in got["headers"].items()}


def test_method_and_body_never_carry_over(rgw):
    """POST and PUT with a body, HEAD, DELETE and GET, in a period of
    five: a GET after a POST sends no body and announces none, a GET after a
    HEAD gets its body, each method is its own."""
    kinds = ["POST", "GET", "HEAD", "PUT", "DELETE"]
    for i, m in enumerate(itertools.islice(itertools.cycle(kinds), 20)):
        path = "/api/any/k%d" % i
        if m == "POST":
            got = echo(rgw.request("POST", path, body=b"post-body-%d" % i,
                                   headers=[("Content-Type", "text/plain")]))
            assert got["method"] == "POST" and got["data"] == "post-body-%d" % i, got
        elif m == "PUT":
            got = echo(rgw.request("PUT", path, body=b"put-body"))
            assert got["method"] == "PUT" and got["data"] == "put-body", got
        elif m == "HEAD":
            r = rgw.request("HEAD", path)
            assert r.status == 200 and r.body == b"", r
        else:
            got = echo(rgw.request(m, path))
            h = headers_lc(got)
            assert got["method"] == m, got
            assert got["data"] == "", got
            assert "content-length" not in h and "transfer-encoding" not in h, got
            assert "content-type" not in h, got


def test_credentials_never_carry_over(rgw):
    """The "creds" backend's Basic credentials, header and query parameter
    reach it, and never the backend asked next (same httpbin, so libcurl
    reuses the connection)."""
    for i in range(9):
        if i % 3 == 0:
            got = echo(rgw.get("/api/creds/c%d" % i))
            h = headers_lc(got)
            assert h.get("authorization", "").startswith("Basic "), got
            assert h.get("x-api-key") == "backend-key", got
        else:
            got = echo(rgw.get("/api/any/c%d" % i))
            h = headers_lc(got)
            assert "authorization" not in h and "x-api-key" not in h, got
            assert "appid" not in got["args"], got


def test_timeout_never_carries_over(rgw):
    """quick (400 ms) times out on a 0.7 s answer: 504; patient (10 s), asked
    next, waits for the same answer: 200 — and quick times out again after
    it."""
    for api in ["quick", "patient", "patient"] * 2 + ["quick"]:
        r = rgw.get("/api/%s/delay/0.7" % api, timeout=15)
        if api == "quick":
            assert_gateway_error(r, 504)
        else:
            assert r.status == 200, r


def test_tls_settings_never_carry_over(rgw):
    """After a backend that trusts the test CA (ca_file) or verifies nothing,
    a backend with the default CA bundle still verifies: 502, every time."""
    order = ["tls-trusted", "tls-default", "tls-unverified", "tls-default", "tls-default"]
    for i, api in enumerate(itertools.islice(itertools.cycle(order), 15)):
        r = rgw.get("/api/%s/t%d" % (api, i))
        if api == "tls-default":
            assert_gateway_error(r, 502)
        else:
            assert r.status == 200 and r.body.startswith(b"tls-ok"), r
