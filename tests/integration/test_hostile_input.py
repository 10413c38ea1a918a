"""Hostile input through every web-server set-up, on raw sockets (no client
library normalises anything): request smuggling (CL+TE, TE+CL, double and
malformed Content-Length, obfuscated Transfer-Encoding, bare LF, a request in
the body), oversized and duplicated headers, and invalid percent-encoding and
UTF-8 in every part of the URL and in header values.

Whatever the web server or hostgate make of it, every case asserts:
  - the client gets exactly ONE well-formed HTTP response (status line,
    headers, a body framed by Content-Length, complete chunks or the close),
    nothing after it, and a 4xx where the request is bad;
  - no 5xx (the web servers' 501 for a transfer coding they do not know
    aside): a crashed hostgate shows as a 500/502/503 or as no answer;
  - the hostgate processes that were running are still running, no log
    shows a crash or a sanitizer report, and a normal request still works;
  - for the smuggling cases, the request hidden in the body never reached
    an upstream: it names /api/smug/, whose backend is the nginx canary.
"""

import json
import re
import socket
import time
import uuid

import pytest

from servers import ModuleDocument, parse_echo

SOCK_TIMEOUT = 10.0   # any one socket operation
READ_DEADLINE = 15.0  # the whole answer
# After one complete response on a kept-alive connection: how long a second
# (smuggled) response gets to show up before we call it one response. On
# loopback a second answer comes within milliseconds; this is a bound, not a
# synchronisation.
GRACE = 0.75

# process kinds whose hostgate processes live across requests; mod_fcgid
# reaps idle ones on its own schedule and CGI starts one per request, so
# there the logs and the follow-up request are the crash evidence
PERSISTENT = ("lighttpd-binpath", "lighttpd-socket", "apache-proxy-fcgi")
CRASH_SIGNS = re.compile(
    r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
    r"SIGSEGV|SIGABRT|SIGBUS|segmentation fault|signal 11|signal 6\b|"
    r"core dumped|child signaled|terminated by signal", re.I)


def tok():
    return uuid.uuid4().hex[:12]


# ---- the document: base + a canary API a smuggled request would take ---------


def hostile_doc(base, nginx):
    doc = dict(base)
    doc["backends"] = dict(base["backends"],
                           canary={"url": "http://127.0.0.1:%d/smug" % nginx.canary_port})
    doc["apis"] = list(base["apis"]) + [
        {"id": "smug", "path": "smug", "backend": "canary", "subscription_required": False},
        # no subscriptions at all: every call is a 401, after hostgate has
        # looked for (and decoded) the key in the header and the query
        {"id": "keyed", "path": "keyed", "backend": "echo", "subscription_required": True},
    ]
    return doc


@pytest.fixture(scope="module")
def _hmodule(gw, base, nginx):
    with ModuleDocument(gw, base, hostile_doc(base, nginx)) as m:
        yield m


def _log_paths(gw):
    import glob
    return sorted(set(glob.glob(gw.log_dir + "/*.log") + glob.glob(gw.log_dir + "/*.out")) -
                  {gw.access_log})


def _size(p):
    try:
        with open(p, "rb") as f:
            f.seek(0, 2)
            return f.tell()
    except OSError:
        return 0


@pytest.fixture
def hgw(gw, _hmodule, nginx):
    """gw serving hostile_doc; afterwards checks it survived the test."""
    _hmodule.gateway()
    pids = set(gw.hostgate_pids()) if gw.setup in PERSISTENT else set()
    logs = {p: _size(p) for p in _log_paths(gw)}
    yield gw
    gw.check_alive()
    if pids:
        gone = pids - set(gw.hostgate_pids())
        assert not gone, "hostgate processes %s died during the test" % sorted(gone)
    for p in _log_paths(gw):
        with open(p, "rb") as f:
            f.seek(logs.get(p, 0))
            new = f.read().decode("utf-8", "replace")
        m = CRASH_SIGNS.search(new)
        assert not m, "crash sign %r in %s:\n%s" % (m.group(0), p, new[-3000:])
    t = tok()
    r = gw.get("/api/echo/after-%s" % t, timeout=SOCK_TIMEOUT)
    assert r.status == 200, ("a normal request after the hostile one", r)
    assert parse_echo(r.body)["uri"] == "/echo/base/after-%s" % t, r


# ---- a strict reader of raw responses ----------------------------------------

class Malformed(AssertionError):
    pass


TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
STATUS_LINE = re.compile(rb"^HTTP/1\.[01] ([1-5][0-9][0-9])(?: ([^\r\n]*))?$")


class Raw:
    def __init__(self, status, headers, body, close_framed):
        self.status = status
        self.headers = headers
        self.body = body
        self.close_framed = close_framed

    def header(self, name):
        v = [val for k, val in self.headers if k.lower() == name.lower()]
        return v[0] if v else None

    def __repr__(self):
        return "<Raw %d %r body=%r>" % (self.status, self.headers, self.body[:300])


def _line(buf, pos):
    """(line without CRLF, next pos) or None when incomplete; a bare LF or a
    lone CR in a response is malformed."""
    i = buf.find(b"\r\n", pos)
    if i < 0:
        if b"\n" in buf[pos:]:
            raise Malformed("bare LF in the response head: %r" % buf[pos:pos + 200])
        return None
    line = buf[pos:i]
    if b"\n" in line or b"\r" in line:
        raise Malformed("bare CR/LF in the response: %r" % line)
    return line, i + 2


def parse_response(buf, closed, head_only=False):
    """One response from the front of buf: (Raw, bytes consumed), or None
    when more bytes are needed (and can still come: not closed)."""
    pos = 0
    got = _line(buf, pos)
    if got is None:
        if closed and buf:
            raise Malformed("status line cut short: %r" % buf[:200])
        return None
    line, pos = got
    m = STATUS_LINE.match(line)
    if not m:
        raise Malformed("bad status line %r" % line)
    status = int(m.group(1))
    headers = []
    while True:
        got = _line(buf, pos)
        if got is None:
            if closed:
                raise Malformed("headers cut short")
            return None
        line, pos = got
        if line == b"":
            break
        name, sep, value = line.partition(b":")
        if not sep or not TOKEN.match(name):
            raise Malformed("bad header line %r" % line)
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    resp = Raw(status, headers, b"", False)
    cls = [v for k, v in headers if k.lower() == "content-length"]
    tes = [v for k, v in headers if k.lower() == "transfer-encoding"]
    if cls and tes:
        raise Malformed("response with both Content-Length and Transfer-Encoding")
    if len(set(cls)) > 1 or any(not re.match(r"^[0-9]+$", v) for v in cls):
        raise Malformed("bad Content-Length %r" % cls)
    if head_only or 100 <= status < 200 or status in (204, 304):
        return resp, pos
    if tes:
        if tes[-1].split(",")[-1].strip().lower() != "chunked":
            raise Malformed("response transfer coding %r" % tes)
        body = []
        while True:
            got = _line(buf, pos)
            if got is None:
                if closed:
                    raise Malformed("chunked body cut short")
                return None
            size_line, p2 = got
            size_txt = size_line.split(b";")[0].strip()
            if not re.match(rb"^[0-9A-Fa-f]{1,16}$", size_txt):
                raise Malformed("bad chunk size %r" % size_line)
            size = int(size_txt, 16)
            if size == 0:
                pos = p2
                while True:     # trailers, then the empty line
                    got = _line(buf, pos)
                    if got is None:
                        if closed:
                            raise Malformed("chunked trailer cut short")
                        return None
                    tl, pos = got
                    if tl == b"":
                        break
                break
            if len(buf) < p2 + size + 2:
                if closed:
                    raise Malformed("chunk cut short")
                return None
            if buf[p2 + size:p2 + size + 2] != b"\r\n":
                raise Malformed("chunk not followed by CRLF")
            body.append(buf[p2:p2 + size])
            pos = p2 + size + 2
        resp.body = b"".join(body)
        return resp, pos
    if cls:
        n = int(cls[0])
        if len(buf) < pos + n:
            if closed:
                raise Malformed("body cut short: %d of %d bytes" % (len(buf) - pos, n))
            return None
        resp.body = buf[pos:pos + n]
        return resp, pos + n
    # framed by the close
    if not closed:
        return None
    resp.body = buf[pos:]
    resp.close_framed = True
    return resp, len(buf)


def exchange(port, data, head_only=False):
    """Sends data on a fresh connection and reads every response the server
    sends until it closes, or GRACE passes after a complete one. Returns
    (responses, trailing bytes, closed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=SOCK_TIMEOUT)
    buf = b""
    closed = False
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass    # answered and closed early (431, 413...): read what it said
        deadline = time.monotonic() + READ_DEADLINE
        last_complete = None
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            wait = deadline - now
            if last_complete is not None:
                wait = min(wait, last_complete + GRACE - now)
                if wait <= 0:
                    break
            sock.settimeout(wait)
            try:
                piece = sock.recv(1 << 16)
            except socket.timeout:
                continue
            except ConnectionResetError:
                closed = True
                break
            if not piece:
                closed = True
                break
            buf += piece
            resps, _ = _parse_all(buf, False, head_only)
            if resps:
                last_complete = time.monotonic()
    finally:
        sock.close()
    resps, rest = _parse_all(buf, closed, head_only)
    return resps, rest, closed


def _parse_all(buf, closed, head_only):
    out = []
    while buf:
        got = parse_response(buf, closed, head_only)
        if got is None:
            break
        r, n = got
        out.append(r)
        buf = buf[n:]
        if r.close_framed:
            break
    return out, buf


def one_response(port, data, head_only=False):
    resps, rest, closed = exchange(port, data, head_only)
    assert resps, "no complete response (closed=%s): %r" % (closed, rest[:500])
    assert len(resps) == 1, "%d responses to one request: %r" % (len(resps), resps)
    assert rest == b"", "bytes after the response: %r" % rest[:500]
    r = resps[0]
    assert 200 <= r.status, r
    return r


def assert_status(r, allowed):
    """allowed: '4xx' (the request is bad) or 'any' (2xx or 4xx). Either way
    the web servers' 501 for a transfer coding they do not implement passes:
    a crashed hostgate shows as 500, 502 or 503, never as 501."""
    if allowed == "4xx":
        assert 400 <= r.status < 500 or r.status == 501, r
    else:
        assert 200 <= r.status < 300 or 400 <= r.status < 500 or r.status == 501, r


def assert_no_smuggle(nginx, t):
    nginx.settle()
    hits = [c for c in nginx.canary_hits() if t in c["request"]]
    assert hits == [], "the smuggled request reached an upstream: %r" % hits
    assert nginx.requests_with("smug-" + t, expect=False) == []


# ---- request smuggling ----------------------------------------------------------

def smuggled(t):
    """The request hidden in the body: it would reach the canary."""
    return (b"GET /api/smug/smug-%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Smuggled: 1\r\n\r\n" % t.encode())


def _head(t, lines, eol=b"\r\n"):
    out = b"POST /api/any/hostile-%s HTTP/1.1" % t.encode() + eol
    out += b"Host: 127.0.0.1" + eol
    out += b"Content-Type: text/plain" + eol
    for ln in lines:
        out += ln + eol
    return out + eol


def te_body(s):
    """A chunked body whose terminating chunk comes first: a reader that
    honours chunked sees an empty body and s as the next request."""
    return b"0\r\n\r\n" + s


def cl_body(s):
    """A chunked body carrying s: a reader that trusts a Content-Length of 4
    (the size line) sees s as the next request."""
    return b"%x\r\n" % len(s) + s + b"\r\n0\r\n\r\n"


def _cl4(s):
    n = b"%x\r\n" % len(s)
    assert len(n) == 4
    return b"%d" % len(n)


SMUGGLING = {
    # name: (builder(t, s) -> bytes, allowed statuses)
    "cl-te": (lambda t, s: _head(t, [b"Content-Length: %d" % len(te_body(s)),
                                     b"Transfer-Encoding: chunked"]) + te_body(s), "any"),
    "te-cl": (lambda t, s: _head(t, [b"Transfer-Encoding: chunked",
                                     b"Content-Length: " + _cl4(s)]) + cl_body(s), "any"),
    "cl-te-cl-wins": (lambda t, s: _head(t, [b"Content-Length: " + _cl4(s),
                                             b"Transfer-Encoding: chunked"]) + cl_body(s), "any"),
    "te-cl-te-wins": (lambda t, s: _head(t, [b"Transfer-Encoding: chunked",
                                             b"Content-Length: %d" % len(te_body(s))])
                      + te_body(s), "any"),
    "double-cl-same": (lambda t, s: _head(t, [b"Content-Length: %d" % len(s)] * 2) + s, "any"),
    "double-cl-differ": (lambda t, s: _head(t, [b"Content-Length: 0",
                                                b"Content-Length: %d" % len(s)]) + s, "4xx"),
    "double-cl-differ-rev": (lambda t, s: _head(t, [b"Content-Length: %d" % len(s),
                                                    b"Content-Length: 0"]) + s, "4xx"),
    "cl-list": (lambda t, s: _head(t, [b"Content-Length: 0, %d" % len(s)]) + s, "4xx"),
    "cl-plus": (lambda t, s: _head(t, [b"Content-Length: +0"]) + s, "4xx"),
    "cl-minus": (lambda t, s: _head(t, [b"Content-Length: -%d" % len(s)]) + s, "4xx"),
    "cl-inner-space": (lambda t, s: _head(t, [b"Content-Length: 0 %d" % len(s)]) + s, "4xx"),
    "cl-hex": (lambda t, s: _head(t, [b"Content-Length: 0x0"]) + s, "4xx"),
    "cl-space-before-colon": (lambda t, s: _head(t, [b"Content-Length : 0"]) + s, "4xx"),
    # leading zeros are valid (1*DIGIT) and decimal: 0NN is NN, never octal
    "cl-leading-zeros": (lambda t, s: _head(t, [b"Content-Length: 000%d" % len(s)]) + s, "any"),
    "te-xchunked": (lambda t, s: _head(t, [b"Transfer-Encoding: xchunked",
                                           b"Content-Length: %d" % len(te_body(s))])
                    + te_body(s), "4xx"),
    "te-space-before-colon": (lambda t, s: _head(t, [b"Transfer-Encoding : chunked",
                                                     b"Content-Length: %d" % len(te_body(s))])
                              + te_body(s), "4xx"),
    # RFC 9112 5.2: a server either refuses obs-fold or unfolds it (Apache
    # does, and then honours chunked and closes): either way, nothing smuggled
    "te-obs-fold": (lambda t, s: _head(t, [b"Transfer-Encoding:", b" chunked",
                                           b"Content-Length: %d" % len(te_body(s))])
                    + te_body(s), "any"),
    # valid framings (OWS, any case): the request travels as chunked data
    "te-leading-space-no-cl": (lambda t, s: _head(t, [b"Transfer-Encoding:  chunked"])
                               + cl_body(s), "any"),
    "te-tab": (lambda t, s: _head(t, [b"Transfer-Encoding:\tchunked",
                                      b"Content-Length: %d" % len(te_body(s))])
               + te_body(s), "any"),
    "te-vtab": (lambda t, s: _head(t, [b"Transfer-Encoding:\x0bchunked",
                                       b"Content-Length: %d" % len(te_body(s))])
                + te_body(s), "4xx"),
    "te-chunked-identity": (lambda t, s: _head(t, [b"Transfer-Encoding: chunked, identity",
                                                   b"Content-Length: %d" % len(te_body(s))])
                            + te_body(s), "4xx"),
    "te-two-headers": (lambda t, s: _head(t, [b"Transfer-Encoding: chunked",
                                              b"Transfer-Encoding: identity",
                                              b"Content-Length: %d" % len(te_body(s))])
                       + te_body(s), "4xx"),
    "te-two-headers-rev": (lambda t, s: _head(t, [b"Transfer-Encoding: identity",
                                                  b"Transfer-Encoding: chunked",
                                                  b"Content-Length: %d" % len(te_body(s))])
                           + te_body(s), "any"),
    "te-case": (lambda t, s: _head(t, [b"Transfer-Encoding: CHUNKED"]) + cl_body(s), "any"),
    # bare LF line ends: the whole head, and one hiding a header in a value
    "bare-lf": (lambda t, s: _head(t, [b"Content-Length: %d" % len(s)], eol=b"\n") + s, "any"),
    "bare-lf-hidden-te": (lambda t, s: _head(t, [b"X-Keep: a\nTransfer-Encoding: chunked",
                                                 b"Content-Length: %d" % len(te_body(s))])
                          + te_body(s), "any"),
    # a well-framed request whose body happens to be a request
    "request-in-body-cl": (lambda t, s: _head(t, [b"Content-Length: %d" % len(s)]) + s, "any"),
    "request-in-body-chunked": (lambda t, s: _head(t, [b"Transfer-Encoding: chunked"])
                                + cl_body(s), "any"),
}


# valid framings whose body is the request: it must arrive upstream as data
CARRIED = ("request-in-body-cl", "request-in-body-chunked", "te-case", "te-leading-space-no-cl",
           "cl-leading-zeros", "double-cl-same", "bare-lf")


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling(hgw, nginx, name):
    t = tok()
    s = smuggled(t)
    build, allowed = SMUGGLING[name]
    r = one_response(hgw.port, build(t, s))
    assert_status(r, allowed)
    if 200 <= r.status < 300 and name in CARRIED:
        # the body arrived upstream as data, byte for byte
        assert json.loads(r.body)["data"] == s.decode(), r
    assert_no_smuggle(nginx, t)


# ---- oversized and duplicated headers -------------------------------------------

def _get(target, lines, close=True):
    out = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for ln in lines:
        out += ln + b"\r\n"
    if close:
        out += b"Connection: close\r\n"
    return out + b"\r\n"


def test_one_64k_header(hgw):
    t = tok().encode()
    r = one_response(hgw.port, _get(b"/api/echo/" + t, [b"X-Keep: " + b"a" * 65536]))
    assert_status(r, "4xx")


def test_many_headers(hgw):
    t = tok().encode()
    lines = [b"X-H%d: v%d" % (i, i) for i in range(2000)]
    r = one_response(hgw.port, _get(b"/api/echo/" + t, lines))
    assert_status(r, "4xx")


def test_many_headers_under_the_limits(hgw):
    # 90: under Apache's LimitRequestFields (100) and lighttpd's 8 KiB head
    t = tok()
    lines = [b"X-H%d: v%d" % (i, i) for i in range(90)]
    r = one_response(hgw.port, _get(b"/api/any/" + t.encode(), lines))
    assert r.status == 200, r
    got = r.body.decode()
    assert "X-H89" in got and "v89" in got, r


def test_two_host_headers(hgw, nginx):
    t = tok()
    r = one_response(hgw.port, b"GET /api/echo/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Host: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                     % (t.encode(), nginx.canary_port))
    assert_status(r, "4xx")
    nginx.settle()
    assert nginx.canary_hits() == []


def test_two_content_types(hgw, nginx):
    t = tok()
    body = b'{"a":1}'
    r = one_response(hgw.port, b"POST /api/echo/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Type: text/xml\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (t.encode(), len(body), body))
    assert_status(r, "any")
    if r.status == 200:
        ct = parse_echo(r.body)["content_type"]
        # one value, or the two joined: never a second Content-Type line
        assert ct in ("application/json", "text/xml", "application/json, text/xml",
                      "application/json,text/xml"), ct
        recs = nginx.requests_with(t)
        assert len(recs) == 1, recs


def test_two_authorization_headers(hgw, nginx):
    t = tok()
    r = one_response(hgw.port, b"GET /api/echo/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Authorization: Bearer aaa\r\nAuthorization: Basic Ym9iOnNlY3JldA==\r\n"
                     b"Connection: close\r\n\r\n" % t.encode())
    assert_status(r, "any")
    if r.status == 200:
        auth = parse_echo(r.body)["authorization"]
        assert "\r" not in auth and "\n" not in auth, auth


def test_two_request_ids(hgw):
    t = tok()
    r = one_response(hgw.port, b"GET /api/nothing-%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"X-Request-Id: first-id\r\nX-Request-Id: second-id\r\n"
                     b"Connection: close\r\n\r\n" % t.encode())
    assert_status(r, "4xx")
    ids = [v for k, v in r.headers if k.lower() == "x-request-id"]
    assert len(ids) == 1, r
    # one id: either value alone, or one hostgate made; never the joined list
    assert re.match(r"^[A-Za-z0-9._-]{1,128}$", ids[0]), ids
    assert b'"requestId":"%s"' % ids[0].encode() in r.body.replace(b" ", b""), r


# lighttpd's fastcgi.server "/api" matches "/apix", "/api;x"... as a string
# prefix and fills in PATH_INFO as if they were under /api: hostgate routes on
# the raw REQUEST_URI, and one not below the mount point is a 404 (before the
# fix it fell back to PATH_INFO and served /apix/echo/T as /api/echo/T).


@pytest.mark.parametrize("prefix", ["/apix", "/api.", "/api;x", "/api%20", "/ap%69"])
def test_mount_is_a_whole_segment(hgw, nginx, prefix):
    """Only the mount point itself, as a whole path segment, leads to the APIs
    (/ap%69 is /api spelt with an escape: either answer is right, but it must
    be one response and reach the echo API at most under its base path)."""
    t = tok()
    r = one_response(hgw.port, _get(("%s/echo/%s" % (prefix, t)).encode(), []))
    if prefix == "/ap%69":
        assert_status(r, "any")
    else:
        assert_status(r, "4xx")
        nginx.settle()
        assert nginx.requests_with(t, expect=False) == [], "reached the upstream"


# ---- invalid percent-encoding and UTF-8, everywhere ---------------------------

BAD = {
    "pct-zz": b"%zz",
    "pct-alone": b"%",
    "pct-short": b"%0",
    "pct-nul": b"%00",
    "pct-slash": b"%2f",
    "overlong-dot": b"%c0%ae",
    "overlong-slash": b"%c0%af",
    "overlong-dot-3": b"%e0%80%ae",
    "pct-ff": b"%ff",
    "raw-80": b"\x80",
    "raw-c0ae": b"\xc0\xae",
    "raw-ff": b"\xff",
}
MALFORMED = ("pct-zz", "pct-alone", "pct-short", "pct-nul")

# where: (target template or header builder, what the answer must be for a
# malformed escape, for anything else)
WHERE = {
    "path": ("/api/echo/{t}/x{b}y", "4xx", "any"),
    "template": ("/api/ops/items/{t}x{b}y", "4xx", "any"),
    "api-name": ("/api/ec{b}ho/{t}", "4xx", "4xx"),
    "mount": ("/api{b}/echo/{t}", "4xx", "4xx"),
    "query-name": ("/api/echo/{t}?a{b}b=1", "any", "any"),
    "query-value": ("/api/echo/{t}?a=x{b}y", "any", "any"),
    "key-query": ("/api/keyed/{t}?subscription-key=k{b}k", "4xx", "4xx"),
    "header": ("HDR X-Keep", "any", "any"),
    "key-header": ("HDR Ocp-Apim-Subscription-Key", "4xx", "4xx"),
}


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize("where", sorted(WHERE))
def test_bad_encoding(hgw, nginx, where, bad):
    t = tok()
    frag = BAD[bad]
    tmpl, if_malformed, otherwise = WHERE[where]
    if tmpl.startswith("HDR "):
        name = tmpl[4:].encode()
        # to httpbin, not nginx: nginx logs raw bytes of a header unescaped,
        # and the tests read its log as UTF-8 JSON
        target = b"/api/%s/%s" % (b"keyed" if b"Subscription" in name else b"any", t.encode())
        data = _get(target, [name + b": v" + frag + b"v"])
    else:
        target = tmpl.replace("{t}", t).encode().replace(b"{b}", frag)
        data = _get(target, [])
    r = one_response(hgw.port, data)
    assert_status(r, if_malformed if bad in MALFORMED else otherwise)
    if 200 <= r.status < 300 and where == "template":
        assert "/anything/base/items/" in json.loads(r.body)["url"], r
    elif 200 <= r.status < 300 and where == "header":
        assert json.loads(r.body)["headers"].get("X-Keep"), r
    elif 200 <= r.status < 300:
        echo = parse_echo(r.body)
        uri = echo["uri"]
        # forwarded under the backend's base path, never normalised into a
        # dot segment or a new path segment
        assert uri.startswith("/echo/base/"), echo
        assert "/../" not in uri and "/./" not in uri and not uri.endswith("/.."), echo
        recs = nginx.requests_with(t)
        assert len(recs) == 1, recs
