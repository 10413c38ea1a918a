"""CGI with resident workers (HOSTGATE_CGI_WORKERS, fcgi-app/resident.h): a CGI
process hands its request to workers that stay up, started by the first
request that finds none, and serves the request itself whenever they cannot.

Most tests run the program straight from the test with a CGI environment (no
web server), each against its own copy of the binary and its own state
directory, so each gets workers of its own. The relay's FastCGI is checked on
a raw socket: a mock worker bound where the workers would be records every
byte the relay sends and answers with records cut into single bytes. The
whole integration suite also runs through Apache with resident workers (the
apache-cgi-resident set-up, examples/apache/hostgate-cgi.conf); the last test
here checks that there the workers, not the CGI processes, serve.
"""

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import threading
import uuid

import pytest

from harness import pids_of_exe, sanitizer_env, wait_until
from rawupstream import RawUpstream
from servers import ModuleDocument, RESIDENT_WORKERS
from test_fcgi_records import BEGIN_REQUEST, END_REQUEST, PARAMS, STDERR, STDIN, STDOUT, nv, record

GET_VALUES, GET_VALUES_RESULT = 9, 10


def token():
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def raw():
    s = RawUpstream()
    yield s
    s.stop()


def keep_alive(status, body):
    """An answer that leaves the connection open for the next request."""
    return b"HTTP/1.1 %d Whatever\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s" % (
        status, len(body), body)


class Resident:
    """A copy of the binary, a document and a state directory of its own."""

    def __init__(self, root, binary, raw, name):
        self.dir = os.path.join(root, "resident-" + name)
        os.makedirs(os.path.join(self.dir, "state"))
        self.bin = os.path.join(self.dir, "hostgate-fcgi")
        shutil.copy2(binary, self.bin)
        self.state = os.path.join(self.dir, "state")
        self.workers_dir = os.path.join(self.state, "cgi-workers")
        self.config = os.path.join(self.dir, "config.json")
        with open(self.config, "w") as f:
            json.dump({"format": 1, "generation": 1,
                       "backends": {"raw": {"url": raw.url("/res")}},
                       "apis": [{"id": "res", "path": "res", "backend": "raw",
                                 "subscription_required": False}]}, f)

    def env(self, path, workers=1, extra=None, method="GET", body=None):
        e = dict({
            "PATH": "/usr/bin:/bin", "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": method, "SCRIPT_NAME": "/api",
            "PATH_INFO": path, "REQUEST_URI": "/api" + path, "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "HOSTGATE_CONFIG": self.config, "HOSTGATE_STATE_DIR": self.state,
            "HOSTGATE_CGI_WORKERS": str(workers),
        }, **sanitizer_env("resident"))
        if body is not None:
            e["CONTENT_LENGTH"] = str(len(body))
            e["CONTENT_TYPE"] = "application/octet-stream"
        e.update(extra or {})
        return e

    def run(self, path, body=None, **kw):
        """One CGI execution: (stdout, stderr, exit status)."""
        p = subprocess.run([self.bin], env=self.env(path, body=body, **kw),
                           input=body or b"", capture_output=True, timeout=60)
        return p.stdout, p.stderr.decode("utf-8", "replace"), p.returncode

    def pids(self):
        return pids_of_exe(self.bin)

    def sockets(self):
        return glob.glob(os.path.join(self.workers_dir, "*.sock"))

    def start_workers(self, workers=1, **kw):
        """The first request starts them; returns the socket once they listen."""
        out, err, rc = self.run("/res/start-" + token(), workers=workers, **kw)
        assert rc == 0 and out.startswith(b"Status: 200"), (out, err)
        wait_until(lambda: len(self.pids()) == 1 + workers and self.sockets(), 10,
                   "the resident workers to listen")
        return self.sockets()[0]

    def stop_workers(self):
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        wait_until(lambda: not self.pids(), 10, "the resident workers to stop")


@pytest.fixture
def res(workroot, binary, raw):
    raw.script("/res", keep_alive(200, b"from the backend\n"))
    r = Resident(workroot, binary, raw, token())
    yield r
    r.stop_workers()


def status(out):
    return out.split(b"\r\n", 1)[0]


# ---- the workers serve, and keep the backend connection ------------------------

def test_requests_after_the_first_are_served_by_the_resident_workers(res, raw):
    """The first request starts the workers and is served by its own process
    (a connection of its own upstream); the next ones come from one worker,
    all on one kept backend connection, which no CGI process could keep."""
    t = token()
    res.start_workers(workers=1)
    for i in range(4):
        out, err, rc = res.run("/res/%s-%d" % (t, i))
        assert (status(out), rc) == (b"Status: 200 Whatever", 0), (out, err)
        assert out.endswith(b"\r\n\r\nfrom the backend\n"), out
    peers = {raw.received("/res/%s-%d" % (t, i))[0].peer for i in range(4)}
    assert len(peers) == 1, peers


def test_a_posted_body_and_a_large_answer_stream_through(res, raw):
    """Both directions, larger than a record and than a pipe: the backend
    gets the body byte-exact and the client the answer byte-exact."""
    t = token()
    body = os.urandom(300 * 1024)
    answer = os.urandom(700 * 1024)
    raw.script("/res/big-" + t, lambda req, _up: keep_alive(200, answer))
    res.start_workers()
    out, err, rc = res.run("/res/big-" + t, body=body, method="POST")
    assert rc == 0 and status(out) == b"Status: 200 Whatever", (out[:200], err)
    assert out.split(b"\r\n\r\n", 1)[1] == answer
    assert raw.received("/res/big-" + t)[0].body == body


def test_workers_stop_when_idle_and_start_again(res):
    sock = res.start_workers(extra={"HOSTGATE_CGI_IDLE_S": "1"})
    wait_until(lambda: not res.pids() and not os.path.exists(sock), 15,
               "the idle workers to stop and remove their socket")
    with open(sock[:-len(".sock")] + ".log") as f:
        assert "no request for 1 s: stopping" in f.read()
    res.start_workers(extra={"HOSTGATE_CGI_IDLE_S": "1"})


def test_another_environment_or_binary_gets_workers_of_its_own(res, workroot):
    """The socket's name is a hash of the binary and the workers'
    environment: a changed HOSTGATE_* variable, or a new binary at the same
    path, never reaches workers started for the old one."""
    first = res.start_workers()
    log = os.path.join(res.dir, "access.log")
    out, err, rc = res.run("/res/x", extra={"HOSTGATE_ACCESS_LOG": log})
    assert rc == 0, err
    wait_until(lambda: len(res.sockets()) == 2, 10, "workers for the second environment")
    other = (set(res.sockets()) - {first}).pop()
    res.stop_workers()
    # a new binary (another mtime) at the same path
    os.utime(res.bin, ns=(1, 1))
    res.run("/res/y")
    wait_until(lambda: len(res.sockets()) == 1 and res.sockets()[0] not in (first, other), 10,
               "workers for the new binary")


def test_busy_workers_let_the_cgi_process_serve(res, raw):
    """One worker held by a slow backend, and a queue of one more: the other
    requests are served by their own CGI processes meanwhile, instead of
    waiting behind it."""
    t = token()
    release = threading.Event()

    def slow(req, _up):
        release.wait(30)
        yield keep_alive(200, b"slow\n")
    raw.script("/res/slow-" + t, slow)
    res.start_workers(workers=1)
    held = threading.Thread(target=res.run, args=("/res/slow-" + t,))
    held.start()
    try:
        raw.wait_received("/res/slow-" + t)
        done = []
        lock = threading.Lock()

        def one(i):
            out, _, _ = res.run("/res/fast-%s-%d" % (t, i))
            with lock:
                done.append(status(out))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
        for th in threads:
            th.start()
        # the listen queue holds at most two (backlog = workers): at least
        # three are served while the worker is still held
        wait_until(lambda: len(done) >= 3, 30, "requests served beside the busy worker")
        assert not release.is_set()
        assert set(done) == {b"Status: 200 Whatever"}, done
    finally:
        release.set()
        held.join(30)
    for th in threads:
        th.join(30)
    assert len(done) == 5 and set(done) == {b"Status: 200 Whatever"}, done


# ---- the relay's FastCGI, on a raw socket --------------------------------------

def read_records(conn):
    """Records from conn up to the empty STDIN record: [(type, id, content)]."""
    buf, recs = b"", []
    while True:
        while len(buf) >= 8:
            version, rtype, rid, clen, plen, _ = struct.unpack(">BBHHBB", buf[:8])
            assert version == 1, buf[:8]
            if len(buf) < 8 + clen + plen:
                break
            recs.append((rtype, rid, buf[8:8 + clen]))
            buf = buf[8 + clen + plen:]
            if rtype == STDIN and clen == 0:
                assert not buf, "bytes after the empty STDIN record: %r" % buf[:100]
                return recs
        chunk = conn.recv(65536)
        assert chunk, "the relay closed before the end of stdin"
        buf += chunk


def params_of(recs):
    data = b"".join(c for t, _, c in recs if t == PARAMS)
    out, i = {}, 0

    def length():
        nonlocal i
        if data[i] < 128:
            i += 1
            return data[i - 1]
        i += 4
        return struct.unpack(">I", data[i - 4:i])[0] & 0x7fffffff
    while i < len(data):
        nl = length()
        vl = length()
        out[data[i:i + nl].decode()] = data[i + nl:i + nl + vl].decode()
        i += nl + vl
    return out


def padded(rtype, rid, content, pad):
    return (struct.pack(">BBHHBB", 1, rtype, rid, len(content), pad, 0) + content +
            b"\xee" * pad)


ACK = padded(GET_VALUES_RESULT, 0, nv("FCGI_MPXS_CONNS", "0"), 6)


class MockWorker:
    """Listens on the workers' socket in their place: takes one connection,
    answers the relay's FCGI_GET_VALUES at once (as libfcgi does when it reads
    it), records what the relay sent up to the end of stdin, then sends
    answer one byte per send() and closes. answer None: closes at once."""

    def __init__(self, path, answer):
        self.path, self.answer, self.records, self.error = path, answer, None, None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(30)
                if self.answer is None:
                    return
                for b in ACK:
                    conn.sendall(bytes([b]))
                self.records = read_records(conn)
                for b in self.answer:
                    conn.sendall(bytes([b]))
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def close(self):
        self.thread.join(30)
        self.sock.close()
        os.unlink(self.path)


def through_mock(res, path, answer, target="/res/mock", **kw):
    """One CGI execution against a MockWorker at path: (mock, stdout, stderr, status)."""
    mock = MockWorker(path, answer)
    try:
        out, err, rc = res.run(target, **kw)
    finally:
        mock.close()
    return mock, out, err, rc


@pytest.fixture
def mock_path(res):
    """Where the workers listen, found by starting them once; then they are
    stopped, so that a mock can take their place."""
    path = res.start_workers()
    res.stop_workers()
    return path


ANSWER = (padded(STDOUT, 1, b"Status: 201 Created\r\nContent-Type: text/plain\r\n", 7) +
          record(STDERR, 1, b"a line for the error log\n") +
          padded(STDOUT, 1, b"\r\nhello, ", 0) + padded(STDOUT, 1, b"client\n", 1) +
          record(STDOUT, 1) + record(END_REQUEST, 1, struct.pack(">IB3x", 0, 0)))


def test_relay_sends_the_request_exactly_and_takes_records_cut_anywhere(res, mock_path):
    body = os.urandom(150 * 1024)          # three STDIN records
    long_value = "v" * 300                 # a four-byte length
    mock, out, err, rc = through_mock(res, mock_path, ANSWER, body=body, method="POST",
                                      extra={"HTTP_X_LONG": long_value})
    assert mock.error is None, mock.error
    recs = mock.records
    assert recs[0] == (GET_VALUES, 0, nv("FCGI_MPXS_CONNS", "")), recs[0]
    assert recs[1] == (BEGIN_REQUEST, 1, struct.pack(">HB5x", 1, 0)), recs[1]
    env = res.env("/res/mock", body=body, method="POST", extra={"HTTP_X_LONG": long_value})
    assert params_of(recs) == env
    kinds = [t for t, _, _ in recs]
    assert kinds == [GET_VALUES, BEGIN_REQUEST] + [PARAMS] * (kinds.count(PARAMS)) + \
        [STDIN] * kinds.count(STDIN), kinds
    assert [c for t, _, c in recs if t == PARAMS][-1] == b""
    stdin = [c for t, _, c in recs if t == STDIN]
    assert b"".join(stdin) == body and stdin[-1] == b"" and all(len(c) <= 65535 for c in stdin)
    assert all(rid == 1 for t, rid, _ in recs if t != GET_VALUES)
    assert rc == 0, err
    assert out == b"Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nhello, client\n"
    assert "a line for the error log" in err


def test_nph_relay_frames_the_answer_and_shows_a_cut(res, mock_path):
    """Under an nph- name the relay frames the worker's answer itself
    (fcgi-app/nph.h): chunked with its last chunk when the worker ended the
    request, without it when the worker went away mid-answer."""
    nph = {"SCRIPT_FILENAME": "/cgi-bin/nph-hostgate-fcgi"}
    _, out, err, rc = through_mock(res, mock_path, ANSWER, extra=nph)
    head, _, chunks = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created\r\n"), out
    assert b"Transfer-Encoding: chunked" in head and rc == 0, (out, err)
    assert dechunk(chunks) == (b"hello, client\n", True), out
    cut = ANSWER[:ANSWER.index(record(STDOUT, 1))]        # no end of stdout, no END_REQUEST
    _, out, err, rc = through_mock(res, mock_path, cut, extra=nph)
    head, _, chunks = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created\r\n") and rc == 1, (out, err)
    # every byte of the body in whole chunks, and no last chunk
    assert dechunk(chunks) == (b"hello, client\n", False), out


def test_nph_one_shot_logs_a_client_gone_before_the_last_chunk(res, raw):
    """Without resident workers too, the NPH answer's last chunk is written as
    the answer's end (io->end), before the request is logged: a client gone by
    then is logged as gone. The backend sends its head and a chunk, and waits
    until the test has read that chunk and closed the pipe (an event) before it
    sends its last chunk. A build that wrote the last chunk after logging logs
    a 200 without an error."""
    t = token()
    closed = threading.Event()

    def answer(_req, _up):
        yield (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               b"5\r\nhello\r\n")
        closed.wait(15)
        yield b"0\r\n\r\n"
    raw.script("/res/nph-" + t, answer)
    log = os.path.join(res.dir, "access-%s.log" % t)
    env = res.env("/res/nph-" + t, workers=0, extra={
        "SCRIPT_FILENAME": "/cgi-bin/nph-hostgate-fcgi", "HOSTGATE_ACCESS_LOG": log})
    with open(os.path.join(res.dir, "stderr-" + t), "wb") as err:
        p = subprocess.Popen([res.bin], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=err)
    try:
        got = b""
        # the whole chunk: its size line, data and line end are three writes
        while not got.endswith(b"5\r\nhello\r\n"):
            piece = p.stdout.read1(65536)
            assert piece, got
            got += piece
        assert got.startswith(b"HTTP/1.1 200 OK\r\n"), got
        p.stdout.close()
    finally:
        closed.set()
    assert p.wait(30) == 0
    with open(log) as f:
        rec, = [json.loads(line) for line in f]
    assert rec["status"] == 200, rec
    assert rec.get("error") == "client went away", rec


def dechunk(data):
    """(body, ended) of a chunked body: ended when its last chunk came.
    Fails on a chunk cut short or bytes after the last chunk."""
    body = b""
    while data:
        size_line, sep, data = data.partition(b"\r\n")
        assert sep, "a chunk size without its line end: %r" % size_line
        size = int(size_line, 16)
        assert data[size:size + 2] == b"\r\n", "a chunk cut short: %r" % data[:size + 2]
        body, data = body + data[:size], data[size + 2:]
        if size == 0:
            assert not data, "bytes after the last chunk: %r" % data
            return body, True
    return body, False


@pytest.mark.parametrize("answer,why", [
    (b"\x02" + b"\x06" * 7, "another version"),
    (record(STDOUT, 2, b"x"), "another request"),
])
def test_broken_records_end_the_answer(res, mock_path, answer, why):
    _, out, err, rc = through_mock(res, mock_path, answer)
    assert rc == 1, (why, out, err)
    assert "the resident worker sent a broken FastCGI record" in err, (why, err)


def test_workers_gone_before_taking_the_request_means_the_cgi_process_serves(res, raw,
                                                                            mock_path):
    """A worker that closes before it sent anything (one stopping, killed)
    has not read the body: the CGI process serves the request itself, body
    and all."""
    t = token()
    body = b"a body that must not be lost\n" * 1000
    _, out, err, rc = through_mock(res, mock_path, None, "/res/gone-" + t, body=body,
                                   method="POST")
    assert rc == 0 and status(out) == b"Status: 200 Whatever", (out, err)
    assert raw.received("/res/gone-" + t)[0].body == body


def test_a_process_of_another_user_is_not_used(res, raw, mock_path):
    """The peer's credentials (SO_PEERCRED) must be the CGI process's own:
    a socket listened on by another user gets nothing, and the CGI process
    serves the request itself."""
    t = token()
    nobody = pwd.getpwnam("nobody").pw_uid
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(mock_path)
            os.setuid(nobody)
            s.listen(4)
            os.write(wfd, b"L")
            conn, _ = s.accept()
            conn.settimeout(10)
            got = conn.recv(65536)
            os.write(wfd, b"%d" % len(got))
        finally:
            os._exit(0)
    os.close(wfd)
    try:
        assert os.read(rfd, 1) == b"L"
        out, err, rc = res.run("/res/other-" + t)
        assert rc == 0 and status(out) == b"Status: 200 Whatever", (out, err)
        assert "is not this user's" in err, err
        assert os.read(rfd, 16) == b"0"     # not one byte reached it
        assert raw.received("/res/other-" + t)
    finally:
        os.close(rfd)
        os.waitpid(pid, 0)
        os.unlink(mock_path)


def test_a_workers_directory_of_another_user_is_not_used(res, raw):
    t = token()
    os.makedirs(res.workers_dir, mode=0o700)
    os.chown(res.workers_dir, pwd.getpwnam("nobody").pw_uid, -1)
    out, err, rc = res.run("/res/dir-" + t)
    assert rc == 0 and status(out) == b"Status: 200 Whatever", (out, err)
    assert "is not a directory of this user that only it can write" in err, err
    assert not res.pids() and not os.listdir(res.workers_dir)


# ---- through Apache ------------------------------------------------------------

@pytest.fixture(scope="module")
def _rmodule(gw, base, raw):
    if gw.setup != "apache-cgi-resident":
        pytest.skip("resident workers under Apache: apache-cgi-resident")
    doc = json.loads(json.dumps(base))
    doc["backends"]["res-raw"] = {"url": raw.url("/through")}
    doc["apis"].append({"id": "resapache", "path": "resapache", "backend": "res-raw",
                        "subscription_required": False})
    with ModuleDocument(gw, base, doc) as m:
        yield m


def test_under_apache_the_workers_serve(_rmodule, raw):
    """Through Apache's mod_cgid and the example's configuration: the
    requests reach the backend from the resident workers' kept
    connections (at most one per worker), not one per CGI process."""
    gw = _rmodule.gateway()
    t = token()
    raw.script("/through", keep_alive(200, b"through\n"))
    assert len(gw.resident_pids()) == 1 + RESIDENT_WORKERS
    for i in range(12):
        r = gw.get("/api/resapache/%s-%d" % (t, i))
        assert r.status == 200 and r.body == b"through\n", r
    peers = {raw.received("/through/%s-%d" % (t, i))[0].peer for i in range(12)}
    assert len(peers) <= RESIDENT_WORKERS, peers
