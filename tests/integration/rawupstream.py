"""Raw sockets on both sides of the gateway, for the framing tests.

RawUpstream: an HTTP backend (a thread of the test process, 127.0.0.1) that
records the exact bytes of every request it received, parsed strictly, and
answers with exact bytes a test scripts per path. A request that does not
parse (a body with no framing, a bad chunk) is recorded with .error set, so
that a test can assert every request upstream was framed exactly.

raw_exchange / parse_response: a client that sends exact bytes to the web
server and reads every byte of the answer until the server closes, then
parses one response strictly: Content-Length must match the bytes, chunked
encoding must be well-formed and complete, and nothing may follow.
"""

import socket
import socketserver
import threading

from harness import wait_until


class RawRequest:
    def __init__(self):
        self.method = None
        self.target = None
        self.headers = []       # [(name, value)] as received
        self.raw_head = b""
        self.body = b""
        self.framing = None     # "length", "chunked" or "none"
        self.error = None       # why it did not parse, or None
        self.peer = None        # the gateway's (address, port) (RawUpstream)

    @property
    def path(self):
        return (self.target or "").split("?")[0]

    @property
    def query(self):
        t = self.target or ""
        return t.split("?", 1)[1] if "?" in t else ""

    def header_values(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "<RawRequest %s %s %r framing=%s body=%r error=%s>" % (
            self.method, self.target, self.headers, self.framing, self.body[:200], self.error)


def _read_line(f, limit=65537):
    line = f.readline(limit)
    if not line.endswith(b"\r\n"):
        raise ValueError("line not ended by CRLF: %r" % line[:200])
    return line[:-2]


def read_request(f, on_head=None):
    """One request from the file f, parsed strictly; None at a clean EOF.
    on_head(req) runs once the head is read, before the body: a test can see
    a request whose body is still coming (or never comes)."""
    req = RawRequest()
    first = f.readline(65537)
    if not first:
        return None
    try:
        if not first.endswith(b"\r\n"):
            raise ValueError("request line not ended by CRLF: %r" % first[:200])
        head = [first]
        parts = first[:-2].decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ValueError("bad request line %r" % first)
        req.method, req.target = parts[0], parts[1]
        while True:
            line = f.readline(65537)
            head.append(line)
            if line == b"\r\n":
                break
            if not line.endswith(b"\r\n"):
                raise ValueError("header line not ended by CRLF: %r" % line[:200])
            k, sep, v = line[:-2].decode("latin-1").partition(":")
            if not sep or not k or k != k.strip():
                raise ValueError("bad header line %r" % line)
            req.headers.append((k, v.strip()))
        req.raw_head = b"".join(head)
        if on_head:
            on_head(req)
            on_head = None
        te = req.header_values("Transfer-Encoding")
        cl = req.header_values("Content-Length")
        if te and cl:
            raise ValueError("both Transfer-Encoding and Content-Length")
        if te:
            if [t.lower() for t in te] != ["chunked"]:
                raise ValueError("Transfer-Encoding %r" % te)
            req.framing = "chunked"
            body = []
            while True:
                size_line = _read_line(f, 1024)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while _read_line(f) != b"":
                        pass
                    break
                piece = f.read(size)
                if len(piece) != size:
                    raise ValueError("chunk cut short")
                body.append(piece)
                if f.read(2) != b"\r\n":
                    raise ValueError("chunk not ended by CRLF")
            req.body = b"".join(body)
        elif cl:
            if len(set(cl)) != 1 or not cl[0].isdigit():
                raise ValueError("Content-Length %r" % cl)
            req.framing = "length"
            n = int(cl[0])
            req.body = f.read(n)
            if len(req.body) != n:
                raise ValueError("body cut short: %d of %d" % (len(req.body), n))
        else:
            req.framing = "none"
    except (ValueError, OSError) as e:
        req.error = str(e) or repr(e)
    if on_head:
        on_head(req)
    return req


class RawUpstream:
    """script(path, response): response is bytes, or a function(request,
    upstream) -> bytes, or a function that yields the answer's pieces (each
    written and flushed before the next is asked for: it may wait between
    them), answering every request whose path is path (the
    longest scripted prefix wins). Unscripted paths get a 404. Every answer
    closes the connection unless it says "Connection: keep-alive"; the next
    request on a kept connection is parsed as strictly as the first, so
    bytes the gateway sent beyond a request's framing show up as an error."""

    def __init__(self):
        outer = self
        self.requests = []
        self.lock = threading.Lock()
        self.routes = {}

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.request.settimeout(30)
                while True:
                    req = read_request(self.rfile,
                                       lambda r: outer._record(r, self.client_address))
                    if req is None:
                        return
                    if req.error:
                        return
                    answer = outer._answer(req)
                    pieces = [answer] if isinstance(answer, bytes) else answer
                    head = None
                    try:
                        for piece in pieces:
                            head = piece if head is None else head
                            self.wfile.write(piece)
                            self.wfile.flush()
                    except OSError:
                        return
                    if b"connection: keep-alive" not in (head or b"").split(b"\r\n\r\n")[0].lower():
                        return

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _record(self, req, peer):
        req.peer = peer
        with self.lock:
            self.requests.append(req)

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def script(self, path, response):
        self.routes[path] = response

    def _answer(self, req):
        best = None
        for p in self.routes:
            if req.path == p or req.path.startswith(p + "/") or req.path.startswith(p + "?"):
                if best is None or len(p) > len(best):
                    best = p
        if best is None:
            return response(404, b"not scripted\n")
        r = self.routes[best]
        return r(req, self) if callable(r) else r

    def received(self, path):
        """The requests whose path is path, in order."""
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_received(self, path, n=1, timeout=10):
        return wait_until(lambda: len(self.received(path)) >= n and self.received(path),
                          timeout, "%d request(s) for %s upstream" % (n, path))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def response(status, body=b"", headers=(), reason="Whatever"):
    """A well-formed answer with Content-Length and Connection: close."""
    head = "HTTP/1.1 %d %s\r\n" % (status, reason)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in headers)
    head += "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    return head.encode("latin-1") + body


# ---- the client side ------------------------------------------------------

def raw_exchange(port, data, timeout=30):
    """Sends data to 127.0.0.1:port, half-closes nothing, and returns every
    byte that comes back until the server closes (requests should carry
    Connection: close)."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


class RawResponse:
    def __init__(self, status, headers, body, framing):
        self.status = status
        self.headers = headers
        self.body = body
        self.framing = framing

    def header_values(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name):
        v = self.header_values(name)
        return v[0] if v else None

    def __repr__(self):
        return "<RawResponse %d %r framing=%s body=%r>" % (
            self.status, self.headers, self.framing, self.body[:300])


def parse_response(data, method="GET"):
    """Exactly one well-formed HTTP/1.1 response (1xx interim ones aside) in
    data, which the server ended by closing: its framing must account for
    every byte. Raises AssertionError naming what is wrong."""
    pos = 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        assert end >= 0, "no complete response head in %r" % data[:500]
        lines = data[pos:end].split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        assert parts[0].startswith("HTTP/1.") and len(parts) >= 2 and parts[1].isdigit(), \
            "bad status line %r" % status_line
        status = int(parts[1])
        headers = []
        for ln in lines[1:]:
            k, sep, v = ln.decode("latin-1").partition(":")
            assert sep and k and k == k.strip(), "bad header line %r" % ln
            headers.append((k, v.strip()))
        pos = end + 4
        if status >= 200:
            break
    rest = data[pos:]
    te = [v.lower() for k, v in headers if k.lower() == "transfer-encoding"]
    cl = [v for k, v in headers if k.lower() == "content-length"]
    if method == "HEAD" or status in (204, 304):
        assert rest == b"", "bytes after a bodiless answer: %r" % rest[:300]
        return RawResponse(status, headers, b"", "none")
    if te:
        assert not cl, "both Transfer-Encoding and Content-Length: %r" % headers
        assert te == ["chunked"], te
        body = []
        while True:
            eol = rest.find(b"\r\n")
            assert eol >= 0, "chunked body cut short"
            size = int(rest[:eol].split(b";")[0], 16)
            rest = rest[eol + 2:]
            if size == 0:
                # trailers, then the blank line
                while True:
                    eol = rest.find(b"\r\n")
                    assert eol >= 0, "chunked body without its last CRLF"
                    line, rest = rest[:eol], rest[eol + 2:]
                    if line == b"":
                        break
                break
            assert len(rest) >= size + 2, "chunk cut short"
            body.append(rest[:size])
            assert rest[size:size + 2] == b"\r\n", "chunk not ended by CRLF"
            rest = rest[size + 2:]
        assert rest == b"", "bytes after the last chunk: %r" % rest[:300]
        return RawResponse(status, headers, b"".join(body), "chunked")
    if cl:
        assert len(set(cl)) == 1 and cl[0].isdigit(), "Content-Length %r" % cl
        n = int(cl[0])
        assert len(rest) == n, "Content-Length %d but %d bytes: %r" % (n, len(rest), rest[:300])
        return RawResponse(status, headers, rest, "length")
    return RawResponse(status, headers, rest, "close")


def raw_request(port, method, target, headers=(), body=None, chunked=False):
    """Bytes of one request with Host and Connection: close; body framed by
    Content-Length, or chunked (in two chunks) when chunked."""
    h = [("Host", "127.0.0.1:%d" % port)] + list(headers) + [("Connection", "close")]
    if body is not None:
        if chunked:
            h.append(("Transfer-Encoding", "chunked"))
        else:
            h.append(("Content-Length", str(len(body))))
    data = ("%s %s HTTP/1.1\r\n" % (method, target)).encode("latin-1")
    data += "".join("%s: %s\r\n" % (k, v) for k, v in h).encode("latin-1") + b"\r\n"
    if body is not None:
        if chunked:
            half = len(body) // 2
            for piece in (body[:half], body[half:]):
                if piece:
                    data += b"%x\r\n%s\r\n" % (len(piece), piece)
            data += b"0\r\n\r\n"
        else:
            data += body
    return data
