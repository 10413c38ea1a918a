"""A backend that breaks HTTP: before the answer started the client gets a
502; once it started, the answer is cut short so that the client can tell
(never a clean end of a truncated body)."""

import pytest

from harness import assert_gateway_error

# what FaultyUpstream sends before it breaks off, by path: (byte, count)
CUT_SHORT = {"truncate": (b"x", 300000), "truncate-tail": (b"x", 300000),
             "chunk-cut": (b"y", 300000)}

# Set-ups that cannot show the client a cut-short answer the backend sent
# without a length (chunked), and why (docs/security.md). Apache CGI can, since
# hostgate runs there in NPH mode and frames its answers itself
# (fcgi-app/nph.h): before that, Apache ended the answer cleanly whenever the
# program's output ended.
NO_CHUNKED_CUT = {
    "apache-fcgid":
        "mod_fcgid answers any failure reading an application's answer (EOF, "
        "reset, timeout) with HTTP_INTERNAL_SERVER_ERROR after the headers went "
        "out; Apache then appends its 500 page and ends the chunked answer "
        "cleanly (fcgid_bridge.c handle_request)",
}


@pytest.mark.parametrize("path", ["garbage", "hangup"])
def test_broken_backend_gets_502(gw, faulty, path):
    r = gw.get("/api/faulty/%s" % path)
    assert_gateway_error(r, 502)
    assert any(req.startswith("GET /f/%s " % path) for req in faulty.requests)


@pytest.mark.parametrize("path", ["truncate", "truncate-tail", "chunk-cut"])
def test_backend_cut_short_is_cut_short_for_the_client(gw, faulty, path, known_bug):
    if path == "chunk-cut" and gw.setup in NO_CHUNKED_CUT:
        known_bug(gw, [gw.setup], NO_CHUNKED_CUT[gw.setup])
    byte, count = CUT_SHORT[path]
    got = []
    # the answer started (status line and headers read: only then does the
    # client say "cut short"), and its body ended before it was whole
    with pytest.raises(ConnectionError, match="cut short"):
        gw.get("/api/faulty/%s" % path, timeout=20, sink=got.append)
    body = b"".join(got)
    assert any(req.startswith("GET /f/%s " % path) for req in faulty.requests)
    # what the client got is what the backend sent, as far as it went
    assert body[:count] == byte * min(len(body), count), body[:200]
    # nothing filled the missing tail (mod_fcgid appended Apache's 500 page
    # there: a corrupted body, whole to the client)
    assert len(body) == count, (len(body), body[count:count + 200])


def test_gateway_serves_on_after_backend_faults(gw):
    for _ in range(4):
        r = gw.get("/api/echo/after-faults")
        assert r.status == 200, r
