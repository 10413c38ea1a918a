"""HTTPS backends, with verification on by default (docs/security.md): an
nginx with a certificate for IP 127.0.0.1 issued by a test CA that no system
bundle holds. The gateway reaches it only through a backend whose tls.ca_file
names that CA; a backend without it, or with verification left on against a
name the certificate does not hold, gets 502 and nothing is answered in its
place. nginx's log (with $ssl_protocol) says what reached it over TLS. On all
five set-ups: in CGI mode libcurl (built into the binary) is initialised per
process on the first forwarded request, in FastCGI at start-up.
"""

import json
import os
import uuid

import pytest

from harness import assert_gateway_error, wait_until
from servers import ModuleDocument


def tls_doc(base, up):
    doc = dict(base)
    ca = os.path.join(up.dir, "ca.pem")
    doc["backends"] = dict(base["backends"], **{
        "tls-trusted": {"url": up.url("/echo/t"), "tls": {"ca_file": ca}},
        "tls-default": {"url": up.url("/echo/d")},
        "tls-wrong-name": {"url": up.url("/echo/n", host="localhost"), "tls": {"ca_file": ca}},
        "tls-unverified": {"url": up.url("/echo/u"), "tls": {"verify": False}},
    })
    doc["apis"] = list(base["apis"]) + [
        {"id": name, "path": name, "backend": name, "subscription_required": False}
        for name in ("tls-trusted", "tls-default", "tls-wrong-name", "tls-unverified")]
    return doc


@pytest.fixture(scope="module")
def _tlsmodule(gw, base, tls_upstream):
    with ModuleDocument(gw, base, tls_doc(base, tls_upstream)) as m:
        yield m


@pytest.fixture
def tgw(_tlsmodule):
    return _tlsmodule.gateway()


def tok():
    return uuid.uuid4().hex[:12]


def test_trusted_ca_reaches_the_backend_over_tls(tgw, tls_upstream):
    t = tok()
    r = tgw.get("/api/tls-trusted/x-%s?q=1" % t)
    assert r.status == 200, r
    assert r.body == ("tls-ok /echo/t/x-%s?q=1" % t).encode(), r
    lines = wait_until(lambda: tls_upstream.lines_with(t), 5, "nginx to log the request")
    assert lines[0][1] in ("TLSv1.2", "TLSv1.3"), lines


@pytest.mark.parametrize("api", ["tls-default", "tls-wrong-name"])
def test_certificate_not_verified_is_502_and_never_answered(tgw, tls_upstream, api):
    """Without the CA (the system bundle does not hold it), or against a host
    name the certificate does not name: the handshake fails, 502; nginx logs
    no request (the handshake never completed)."""
    t = tok()
    r = tgw.get("/api/%s/x-%s" % (api, t))
    assert_gateway_error(r, 502)
    assert b"tls-ok" not in r.body
    # the operator reads a backend failure, not a policy's refusal
    rid = r.header("X-Request-Id")

    def record():
        with open(tgw.access_log) as f:
            return [json.loads(line) for line in f if rid in line]
    (rec,) = wait_until(record, 5, "the access log line of %s" % rid)
    assert rec["status"] == 502 and rec["error"] == "backend unreachable or bad answer", rec
    # the trusted API's request after it is logged: nginx has written its log
    # up to here, and the refused one is not in it
    t2 = tok()
    assert tgw.get("/api/tls-trusted/y-%s" % t2).status == 200
    wait_until(lambda: tls_upstream.lines_with(t2), 5, "nginx to log the next request")
    assert tls_upstream.lines_with(t) == []


def test_verification_off_is_only_what_the_document_says(tgw, tls_upstream):
    t = tok()
    r = tgw.get("/api/tls-unverified/x-%s" % t)
    assert r.status == 200, r
    assert r.body == ("tls-ok /echo/u/x-%s" % t).encode(), r
