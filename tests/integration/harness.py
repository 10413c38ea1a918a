"""Plumbing for the integration tests: processes, polling, a raw HTTP client,
the gateway's configuration file, and peak-RSS sampling.

Every server is a child process of the test run, started on a free
127.0.0.1 port inside a temporary directory, stopped by PID at teardown. Every
wait polls with a timeout; nothing sleeps to synchronise. Logs are registered
with LOGS so that a failing test prints what each server wrote meanwhile.
"""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class WaitTimeout(AssertionError):
    pass


class ProcessDied(AssertionError):
    """A server we wait for exited: no use waiting any longer."""


def wait_until(fn, timeout, what, interval=0.02):
    """Polls fn() until it returns a true value (returned), or fails after
    timeout seconds naming what it waited for and the last exception."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except ProcessDied:
            raise
        except Exception as e:  # noqa: BLE001 - reported below
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise WaitTimeout(msg)
        time.sleep(interval)


def free_port():
    """A port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# ---- logs ---------------------------------------------------------------

class LogRegistry:
    """Files whose new content a failing test prints."""

    def __init__(self):
        self.paths = []
        self.marks = {}

    def add(self, path):
        if path not in self.paths:
            self.paths.append(path)

    def mark(self):
        self.marks = {p: _size(p) for p in self.paths}

    def since_mark(self, max_lines=60):
        out = []
        for p in self.paths:
            start = self.marks.get(p, 0)
            if _size(p) <= start:
                continue
            with open(p, "rb") as f:
                f.seek(start)
                lines = f.read().decode("utf-8", "replace").splitlines()
            if len(lines) > max_lines:
                lines = ["... (%d lines omitted)" % (len(lines) - max_lines)] + lines[-max_lines:]
            out.append((p, "\n".join(lines)))
        return out


def _size(p):
    try:
        return os.path.getsize(p)
    except OSError:
        return 0


LOGS = LogRegistry()


# ---- processes ----------------------------------------------------------

class Proc:
    """One server process, its output in a log file, stopped by PID."""

    def __init__(self, name, argv, log_path, env=None, cwd=None, user=None, group=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        LOGS.add(log_path)
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                     user=user, group=group, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise ProcessDied("%s exited with status %s; log %s:\n%s" % (
                self.name, self.proc.returncode, self.log_path, tail(self.log_path)))

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.alive():
            try:
                os.kill(self.pid, sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        self.log.close()


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return "(cannot read: %s)" % e
    return "\n".join(lines[-n:])


def pids_of_exe(exe):
    """PIDs of the processes running the binary exe (an absolute path)."""
    exe = os.path.realpath(exe)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/exe" % d) == exe:
                pids.append(int(d))
        except OSError:
            pass
    return pids


def vm_hwm_kib(pid):
    """Peak resident set size of pid in KiB, or None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRssSampler:
    """Samples VmHWM of every process running exe, in a thread, so that
    short-lived CGI processes are seen too. peaks: pid -> KiB."""

    def __init__(self, exe, interval=0.02):
        self.exe = exe
        self.interval = interval
        self.peaks = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        for pid in pids_of_exe(self.exe):
            kib = vm_hwm_kib(pid)
            if kib is not None and kib > self.peaks.get(pid, 0):
                self.peaks[pid] = kib

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self._sample()


def kill_leftovers(exe):
    """Stops the processes still running exe: only ever our own copy of the
    binary in a temporary directory, which nobody else runs."""
    for pid in pids_of_exe(exe):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def sanitized_build(binary):
    """True when the binary was built with SANITIZE=1 (env or ASan symbols)."""
    if os.environ.get("HOSTGATE_SANITIZE") == "1":
        return True
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


SANITIZER_ENV = "HOSTGATE_SANITIZER_DIR"


def sanitizer_env(name=None):
    """{HOSTGATE_SANITIZER_DIR: dir} when the runner set one, else {}. A
    SANITIZE=1 build writes its sanitizer reports into that directory, and
    tests/run-integration fails on any (tests/sanitizer.sh); without it they
    land in a fallback directory shared by every run on the machine. So every
    way a hostgate process is started passes this on: the process
    environment, FcgidInitialEnv, SetEnv for CGI (servers.py). name: a
    subdirectory (made here, writable by the web servers' user), so that a
    report says which gateway set-up it came from."""
    d = os.environ.get(SANITIZER_ENV)
    if not d:
        return {}
    if name:
        d = os.path.join(d, name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o1777)
    return {SANITIZER_ENV: d}


# ---- raw HTTP client ----------------------------------------------------

class Response:
    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)], as received
        self.body = body                # bytes (None when streamed to a sink)
        self.elapsed = elapsed

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_values(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        b = self.body if self.body is None or len(self.body) < 400 else self.body[:400] + b"..."
        return "<Response %d %r headers=%r body=%r>" % (self.status, self.reason, self.headers, b)


def http(port, method, target, headers=None, body=None, timeout=30, sink=None,
         raw=None, host=None, close=True):
    """Sends one HTTP/1.1 request exactly as given and reads the answer.

    target goes on the request line unchanged (no normalisation, no
    re-encoding). headers: list of (name, value), sent in order; Host is
    added unless given (host= overrides its value). body: bytes, or an
    iterable of bytes, sent with the Content-Length header given in headers,
    or chunked when there is none. raw: bytes sent instead of building a
    request. sink: called with each body chunk instead of keeping the body.
    """
    headers = list(headers or [])
    names = {k.lower() for k, _ in headers}
    if raw is None:
        if "host" not in names:
            headers.insert(0, ("Host", host or "127.0.0.1:%d" % port))
        if close and "connection" not in names:
            headers.append(("Connection", "close"))
        chunked = False
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            if isinstance(body, (bytes, bytearray)):
                headers.append(("Content-Length", str(len(body))))
            else:
                headers.append(("Transfer-Encoding", "chunked"))
                chunked = True
        head = "%s %s HTTP/1.1\r\n" % (method, target)
        head += "".join("%s: %s\r\n" % (k, v) for k, v in headers) + "\r\n"
        raw_head = head.encode("latin-1")
    else:
        raw_head = raw
        chunked = False
    t0 = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            sock.sendall(raw_head)
            if body is not None:
                if isinstance(body, (bytes, bytearray)):
                    sock.sendall(body)
                else:
                    for piece in body:
                        if chunked:
                            if piece:
                                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                        else:
                            sock.sendall(piece)
                    if chunked:
                        sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413...): read what it said
        f = sock.makefile("rb", buffering=1 << 16)
        try:
            return _read_response(f, method, sink, t0)
        finally:
            f.close()
    finally:
        sock.close()


def _read_response(f, method, sink, t0):
    while True:
        line = f.readline(65537)
        if not line:
            raise ConnectionError("connection closed before the status line")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectionError("bad status line %r" % line)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            h = f.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        if 100 <= status < 200:
            continue
        break
    resp = Response(status, reason, headers, None, 0.0)
    chunks = []
    out = sink or chunks.append
    if method == "HEAD" or status in (204, 304):
        pass
    elif (resp.header("Transfer-Encoding") or "").lower() == "chunked":
        while True:
            size_line = f.readline(1024)
            if not size_line:
                raise ConnectionError("chunked body cut short")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                break
            left = size
            while left:
                piece = f.read(min(left, 1 << 20))
                if not piece:
                    raise ConnectionError("chunked body cut short")
                out(piece)
                left -= len(piece)
            f.readline(3)
    elif resp.header("Content-Length") is not None:
        left = int(resp.header("Content-Length"))
        while left:
            piece = f.read(min(left, 1 << 20))
            if not piece:
                raise ConnectionError("body cut short: %d bytes missing" % left)
            out(piece)
            left -= len(piece)
    else:
        while True:
            piece = f.read1(1 << 20)
            if not piece:
                break
            out(piece)
    resp.body = None if sink else b"".join(chunks)
    resp.elapsed = time.monotonic() - t0
    return resp


# ---- the gateway's configuration document --------------------------------

class ConfigFile:
    """The configuration document one gateway reads (HOSTGATE_CONFIG), in a
    directory only root writes. Installed as hostgate-sync installs it
    (commands-and-files.md): a temporary file in the same directory, fsync,
    the old document hard-linked to "{path}.prev", rename; mode 0640 with the
    directory's group (the web server's)."""

    def __init__(self, path, compiler=None):
        self.path = path
        self.image = path + ".image"
        # with a compiler (hostgate-fcgi), every document gets its image as
        # the agent writes it: compiled from the temporary file, renamed into
        # place before the document (docs/scale.md); HOSTGATE_TEST_IMAGES=0
        # runs the suite on documents compiled in memory instead
        self.compiler = compiler if os.environ.get("HOSTGATE_TEST_IMAGES", "1") != "0" else None
        self.generation = 0
        self.written_at = 0.0

    def write_bytes(self, data, mode=0o640, image=True, tamper=None):
        """Installs data as the document. tamper: called as tamper(tmp, image)
        once the image is compiled (image: its temporary path, None when there
        is none) and before anything is renamed into place, so that a test can
        change either file before any process sees it (test_image.py)."""
        d = os.path.dirname(self.path)
        tmp = os.path.join(d, ".%s.tmp-%d" % (os.path.basename(self.path), os.getpid()))
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chown(tmp, -1, os.stat(d).st_gid)
        os.chmod(tmp, mode)
        compiled = False
        if self.compiler and image:
            # a document that does not compile gets no image: the old one
            # stays, stale, as the agent leaves it
            r = subprocess.run([self.compiler, "--compile", tmp], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=120)
            compiled = r.returncode == 0 and os.path.exists(tmp + ".image")
            if not compiled and os.path.lexists(tmp + ".image"):
                os.unlink(tmp + ".image")
        if tamper:
            tamper(tmp, tmp + ".image" if compiled else None)
        if os.path.lexists(self.path):
            prev_tmp = tmp + ".prev"
            os.link(self.path, prev_tmp, follow_symlinks=False)
            os.rename(prev_tmp, self.path + ".prev")
        if compiled:
            os.rename(tmp + ".image", self.image)
        os.rename(tmp, self.path)
        self.written_at = time.monotonic()

    def write(self, doc):
        """Writes doc with the next generation; returns that generation."""
        self.generation += 1
        doc = dict(doc, generation=self.generation)
        self.write_bytes(json.dumps(doc, indent=1).encode("utf-8"))
        return self.generation

    def remove(self):
        """No configuration at all: the document and the previous one."""
        for p in (self.path, self.path + ".prev", self.image):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


# A hostgate process checks its file at most once a second, on the request
# path: one second after a rename, every process serves the new file from
# its next request on (commands-and-files.md).
RELOAD_INTERVAL_S = 1.0


# ---- upload/download data ------------------------------------------------

def generated_blocks(total, block=1 << 20, seed=b"hostgate"):
    """Deterministic pseudo-random data in blocks (no two blocks alike)."""
    base = hashlib.shake_256(seed).digest(block)
    sent = 0
    i = 0
    while sent < total:
        n = min(block, total - sent)
        b = i.to_bytes(8, "big") + base[8:n] if n > 8 else base[:n]
        yield b
        sent += n
        i += 1


def sha256_of_blocks(blocks):
    h = hashlib.sha256()
    for b in blocks:
        h.update(b)
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 22)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


TOKEN_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def assert_gateway_error(r, status, request_id=None):
    """r is one of the gateway's own errors: status, JSON body
    {"statusCode", "message", "requestId"}, X-Request-Id matching it."""
    assert r.status == status, r
    assert (r.header("Content-Type") or "").split(";")[0].strip() == "application/json", r
    try:
        doc = r.json()
    except ValueError:
        raise AssertionError("error body is not JSON: %r" % (r,))
    assert set(doc) == {"statusCode", "message", "requestId"}, doc
    assert doc["statusCode"] == status, doc
    assert isinstance(doc["message"], str) and doc["message"], doc
    rid = r.header("X-Request-Id")
    assert rid and TOKEN_RE.match(rid), r
    assert doc["requestId"] == rid, (doc, rid)
    if request_id is not None:
        assert rid == request_id, (rid, request_id)
    return doc
