"""Helpers and fixtures for the hostgate-sync tests: a management server that
can misbehave on demand, Ed25519 keys made with the openssl CLI, and an agent
runner. conftest.py re-exports the fixtures; the tests import helpers from
here, a module name that cannot clash with tests/integration's conftest when
both directories run in one pytest.

Run: /usr/bin/python3 -m pytest tests/sync   (after `make build/hostgate-sync`;
HOSTGATE_SYNC=/path/to/binary tests another build, e.g. a sanitizer one).
"""
import base64
import gzip
import http.server
import json
import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOKEN = "tok-3a9f1c0e5b7d4e21a8c6"
GATEWAY = "gw-test.1"


def agent_binary():
    return os.environ.get("HOSTGATE_SYNC", str(ROOT / "build" / "hostgate-sync"))


def version():
    return (ROOT / "VERSION").read_text().strip()


def doc(generation, pad=0, **extra):
    """A valid configuration document (format 1) as bytes."""
    d = {"format": 1, "generation": generation}
    if pad:
        d["x-pad"] = "p" * pad
    d.update(extra)
    return json.dumps(d, indent=1).encode()


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- keys ----------------------------------------------------------------

class Key:
    """An Ed25519 key pair made and used through the openssl CLI, exactly as
    docs/management-protocol.md tells the management side to."""

    def __init__(self, directory, name):
        self.priv = directory / (name + ".key")
        self.pub = directory / (name + ".pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(self.priv)],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", str(self.priv), "-pubout", "-out", str(self.pub)],
                       check=True, capture_output=True)

    def sign(self, body):
        tmp = self.priv.with_suffix(".body")
        tmp.write_bytes(body)
        out = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", str(self.priv), "-rawin",
                              "-in", str(tmp)], check=True, capture_output=True).stdout
        assert len(out) == 64
        return "ed25519=" + base64.b64encode(out).decode()


@pytest.fixture(scope="session")
def keydir(tmp_path_factory):
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def mgmt_key(keydir):
    return Key(keydir, "mgmt")


@pytest.fixture(scope="session")
def other_key(keydir):
    return Key(keydir, "other")


# ---- the management server ------------------------------------------------

class Served:
    """What the server answers for one path."""

    def __init__(self, body, etag=None, signature=None, status=200, mode=None, headers=None):
        self.body = body
        self.etag = etag
        self.signature = signature
        self.status = status
        self.mode = mode          # None, "slow", "stall", "truncated", "huge", "gzip"
        self.headers = headers or {}


class MgmtServer:
    """A management endpoint on 127.0.0.1: serves documents per path, records
    every request (method, path, headers, body), and misbehaves on demand."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        self.stall = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def record(self, body):
                with server.lock:
                    server.requests.append({"method": self.command, "path": self.path,
                                            "headers": dict(self.headers.items()),
                                            "body": body})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                self.record(body)
                r = server.routes.get(self.path)
                status = r.status if r else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                self.record(b"")
                r = server.routes.get(self.path)
                if r is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if r.etag and self.headers.get("If-None-Match") == r.etag:
                    self.send_response(304)
                    self.send_header("ETag", r.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = r.body
                if r.mode == "gzip":
                    body = gzip.compress(r.body)
                self.send_response(r.status)
                if r.etag:
                    self.send_header("ETag", r.etag)
                if r.signature:
                    self.send_header("Hostgate-Signature", r.signature)
                for k, v in r.headers.items():
                    self.send_header(k, v)
                if r.mode == "gzip":
                    self.send_header("Content-Encoding", "gzip")
                if r.mode == "huge":
                    # no length: the body runs until the connection closes
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b" " * (1 << 20)
                    try:
                        for _ in range(80):
                            self.wfile.write(chunk)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                if r.mode == "biglength":
                    self.send_header("Content-Length", str(70 * 1024 * 1024))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if r.mode == "truncated":
                    self.send_header("Content-Length", str(len(body) + 1000))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if r.mode == "stall":
                    server.stall.wait(30)
                    self.close_connection = True
                    return
                if r.mode == "slow":
                    step = max(1, len(body) // 20)
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                        time.sleep(0.1)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def path(self, leaf):
        return "/gateways/%s/%s" % (GATEWAY, leaf)

    def serve(self, body, **kw):
        self.routes[self.path("configuration")] = Served(body, **kw)

    def serve_sig(self, line, status=200):
        self.routes[self.path("configuration.sig")] = Served(line.encode(), status=status)

    def got(self, method=None, leaf=None):
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r["method"] == method)
                    and (leaf is None or r["path"] == self.path(leaf))]

    def close(self):
        self.stall.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mgmt():
    s = MgmtServer()
    yield s
    s.close()


# ---- the agent -------------------------------------------------------------

class Agent:
    """One agent set-up in its own directory: token, agent.conf, and the
    layout of docs/deploying.md: the configuration directory (config.json and
    every file of the agent's own, 0750) apart from the app's state dir."""

    def __init__(self, base, endpoint, **conf):
        self.base = base
        self.conf_dir = base / "config"
        self.conf_dir.mkdir()
        self.conf_dir.chmod(0o750)
        self.state = base / "state"
        self.state.mkdir()
        self.config = self.conf_dir / "config.json"
        self.token_file = base / "token"
        self.token_file.write_text(TOKEN + "\n")
        self.token_file.chmod(0o600)
        self.conf_path = base / "agent.conf"
        self.conf = {"endpoint": endpoint, "gateway_id": GATEWAY,
                     "token_file": str(self.token_file), "config_path": str(self.config),
                     "state_dir": str(self.state)}
        if endpoint.startswith("http://"):
            self.conf["allow_insecure"] = "true"
        self.conf.update(conf)
        self.write_conf()

    def write_conf(self, extra_lines=""):
        lines = ["# written by tests/sync/sync_helpers.py"]
        lines += ["%s = %s" % (k, v) for k, v in self.conf.items() if v is not None]
        self.conf_path.write_text("\n".join(lines) + "\n" + extra_lines)

    def run(self, *args, timeout=30, once=True):
        argv = [agent_binary(), "-c", str(self.conf_path)]
        if once:
            argv.append("--once")
        argv += list(args)
        p = subprocess.run(argv, capture_output=True, timeout=timeout)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        assert TOKEN not in out, "the token leaked into the output"
        return p.returncode, out

    def start(self, *args):
        argv = [agent_binary(), "-c", str(self.conf_path)] + list(args)
        self.log = open(self.base / "daemon.log", "wb")
        return subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def daemon_log(self):
        return (self.base / "daemon.log").read_text(errors="replace")

    def status(self):
        return json.loads((self.conf_dir / "sync-status.json").read_text())

    def installed(self):
        return self.config.read_bytes()


@pytest.fixture
def make_agent(tmp_path):
    n = [0]

    def make(endpoint, **conf):
        n[0] += 1
        base = tmp_path / ("agent%d" % n[0])
        base.mkdir()
        return Agent(base, endpoint, **conf)
    return make


@pytest.fixture(scope="session", autouse=True)
def binary_exists():
    if not os.access(agent_binary(), os.X_OK):
        pytest.fail("no agent binary at '%s': run `make build/hostgate-sync` or set HOSTGATE_SYNC"
                    % agent_binary())


def have(prog):
    return shutil.which(prog) is not None
