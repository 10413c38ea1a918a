"""A backend that breaks HTTP: before the answer started the client gets a
502; once it started, the answer is cut short so that the client can tell
(never a clean end of a truncated body)."""

import pytest

from harness import assert_gateway_error


@pytest.mark.parametrize("path", ["garbage", "hangup"])
def test_broken_backend_gets_502(gw, faulty, path):
    r = gw.get("/api/faulty/%s" % path)
    assert_gateway_error(r, 502)
    assert any(req.startswith("GET /f/%s " % path) for req in faulty.requests)


@pytest.mark.parametrize("path", ["truncate", "chunk-cut"])
def test_backend_cut_short_is_cut_short_for_the_client(gw, path):
    if gw.setup == "apache-cgi":
        pytest.skip("Apache ends a CGI program's answer cleanly whenever its output "
                    "ends: plain CGI cannot signal a truncated answer")
    if gw.setup == "apache-fcgid" and path == "chunk-cut":
        pytest.skip("mod_fcgid answers an application that breaks off by appending its "
                    "500 page and ending the answer cleanly; only an upstream "
                    "Content-Length, passed through, lets the client tell")
    try:
        r = gw.get("/api/faulty/%s" % path, timeout=20)
    except ConnectionError:
        return  # cut short, as it should be
    pytest.fail("a truncated backend answer reached the client as a complete one: %r" % (r,))


def test_gateway_serves_on_after_backend_faults(gw):
    for _ in range(4):
        r = gw.get("/api/echo/after-faults")
        assert r.status == 200, r
