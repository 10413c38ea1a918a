"""Helpers of test_sync_e2e.py: a management endpoint that can fail on
demand (and go down and come back on its port), the agent as a daemon
(hostgate-sync, run as root) sharing config_path and state_dir with a
gateway, a gateway that counts every request it was sent by (api, operation,
status), and a bounded load.

Documents are signed with tests/sync/sync_helpers.Key (the openssl CLI, as
docs/management-protocol.md says).
"""

import grp
import hashlib
import http.server as http_server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from harness import LOGS, REPO, Proc, http, sanitizer_env, wait_until
from servers import Gateway

sys.path.insert(0, os.path.join(REPO, "tests", "sync"))
from sync_helpers import GATEWAY, TOKEN, Key  # noqa: E402,F401

HEALTH = "status-0123456789abcdef"


def agent_binary():
    return os.environ.get("HOSTGATE_SYNC", os.path.join(REPO, "build", "hostgate-sync"))


# ---- the management endpoint ------------------------------------------------

FAULTS = ("500", "401", "invalid", "badsig", "older", "stall", "down")


class MgmtEndpoint:
    """A dynamic management endpoint on a fixed 127.0.0.1 port.

    GET configuration serves the published document (signed, strong ETag,
    304 on a matching If-None-Match) unless a fault is set:
      "500", "401"   that status
      "invalid"      a signed document of a higher generation that does not validate
      "badsig"       a valid document of a higher generation signed by another key
      "older"        a validly signed document of a lower generation
      "stall"        headers and a Content-Length, then nothing (until cleared)
    down()/up() close and reopen the listening socket.
    POST heartbeat: 204, recorded. POST metrics: metrics_status (204 by
    default); documents answered 2xx are kept in .metrics."""

    def __init__(self, key, other_key):
        self.key = key
        self.other_key = other_key
        self.lock = threading.Lock()
        self.requests = []          # (monotonic time, method, leaf, headers, body, status)
        self.metrics = []           # accepted metrics documents (parsed)
        self.metrics_status = 204
        self.fault = None
        self.fault_body = None      # (bytes, signature) for the document faults
        self.release = threading.Event()
        self.body = None
        self.signature = None
        self.etag = None
        self.generation = None
        self.httpd = None
        self.conns = set()          # open connections, cut when going down
        self.port = 0
        self.up()
        self.url = "http://127.0.0.1:%d" % self.port

    def publish(self, doc_obj):
        body = json.dumps(doc_obj, indent=1).encode()
        sig = self.key.sign(body)
        with self.lock:
            self.body, self.signature = body, sig
            self.etag = '"%s"' % hashlib.sha256(body).hexdigest()[:32]
            self.generation = doc_obj["generation"]
        return body

    def set_fault(self, fault, doc_obj=None):
        """fault: one of FAULTS or None; doc_obj: the document of the
        invalid/badsig/older faults."""
        body = sig = None
        if doc_obj is not None:
            body = json.dumps(doc_obj, indent=1).encode()
            sig = (self.other_key if fault == "badsig" else self.key).sign(body)
        with self.lock:
            self.fault_body = (body, sig)
            self.fault = fault
        if fault == "stall":
            self.release.clear()
        else:
            self.release.set()
        if fault == "down":
            self.down()
        elif self.httpd is None:
            self.up()

    # -- what was received

    def got(self, method=None, leaf=None, since=0.0):
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r["method"] == method)
                    and (leaf is None or r["leaf"] == leaf) and r["t"] >= since]

    def heartbeats(self, since=0.0):
        return [json.loads(r["body"]) for r in self.got("POST", "heartbeat", since)]

    def metric_totals(self, key="from"):
        """Sums of count per (api, operation, status) over the accepted
        documents, de-duplicated on (instance, from) as the protocol says
        (key="from"), or not at all (key="post": every document this endpoint
        acknowledged, which the agent must therefore never send again).
        conflicts: ((instance, from), first, other) for accepted documents
        that share (instance, from) but are not the same window sent twice,
        i.e. not byte-for-byte equal or both acknowledged."""
        with self.lock:
            docs = list(self.metrics)
        seen = {}
        kept = []
        conflicts = []
        for d in docs:
            k = (d["instance"], d["from"])
            if k in seen:
                conflicts.append((k, seen[k], d))
                if key == "from":
                    continue
            seen[k] = d
            kept.append(d)
        totals = {}
        for d in kept:
            for s in d["series"]:
                k = (s["api"], s["operation"], s["status"])
                totals[k] = totals.get(k, 0) + s["count"]
        return totals, conflicts

    # -- the server

    def up(self):
        ep = self

        class Handler(http_server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with ep.lock:
                    ep.conns.add(self.connection)

            def finish(self):
                try:
                    super().finish()
                finally:
                    with ep.lock:
                        ep.conns.discard(self.connection)

            def leaf(self):
                prefix = "/gateways/%s/" % GATEWAY
                return self.path[len(prefix):] if self.path.startswith(prefix) else self.path

            def record(self, body, status):
                with ep.lock:
                    ep.requests.append({"t": time.monotonic(), "method": self.command,
                                        "leaf": self.leaf(), "path": self.path,
                                        "headers": dict(self.headers.items()),
                                        "body": body, "status": status})

            def answer(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                status = 204
                if self.leaf() == "metrics":
                    status = ep.metrics_status
                elif self.leaf() != "heartbeat":
                    status = 404
                self.record(body, status)
                self.answer(status)
                self.wfile.flush()
                # kept once acknowledged: the agent must not send it again
                if self.leaf() == "metrics" and 200 <= status < 300:
                    with ep.lock:
                        ep.metrics.append(json.loads(body))

            def do_GET(self):
                with ep.lock:
                    fault = ep.fault
                    body, sig, etag = ep.body, ep.signature, ep.etag
                    fbody, fsig = ep.fault_body or (None, None)
                if self.leaf() != "configuration":
                    self.record(b"", 404)
                    self.answer(404)
                    return
                if fault in ("500", "401"):
                    self.record(b"", int(fault))
                    self.answer(int(fault), b'{"error": "injected"}')
                    return
                if fault == "stall":
                    self.record(b"", 200)
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:10])
                    self.wfile.flush()
                    ep.release.wait(60)
                    self.close_connection = True
                    return
                if fault in ("invalid", "badsig", "older"):
                    body, sig = fbody, fsig
                    etag = '"%s"' % hashlib.sha256(body).hexdigest()[:32]
                elif self.headers.get("If-None-Match") == etag:
                    self.record(b"", 304)
                    self.answer(304, headers=[("ETag", etag)])
                    return
                self.record(b"", 200)
                self.answer(200, body, [("ETag", etag), ("Hostgate-Signature", sig),
                                        ("Content-Type", "application/json")])

        class Server(http_server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", self.port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def down(self):
        """Stops listening and cuts every open connection (the agent keeps
        its connection alive between requests)."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.release.set()
        self.down()


# ---- the agent --------------------------------------------------------------

class AgentDaemon:
    """hostgate-sync -c agent.conf in daemon mode, as root (its token 0600)."""

    def __init__(self, directory, endpoint, config_path, state_dir, **conf):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.state_dir = state_dir
        self.token_file = os.path.join(directory, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(self.token_file, 0o600)
        self.conf = {"endpoint": endpoint, "gateway_id": GATEWAY, "token_file": self.token_file,
                     "config_path": config_path, "state_dir": state_dir,
                     "interval_s": "1", "heartbeat_s": "1"}
        if endpoint.startswith("http://"):
            self.conf["allow_insecure"] = "true"
        self.conf.update(conf)
        self.conf_path = os.path.join(directory, "agent.conf")
        with open(self.conf_path, "w") as f:
            f.write("# written by tests/integration/sync_e2e_helpers.py\n")
            f.write("".join("%s = %s\n" % kv for kv in self.conf.items()))
        self.proc = None

    def start(self):
        self.proc = Proc("hostgate-sync", [agent_binary(), "-c", self.conf_path],
                         os.path.join(self.dir, "agent.log"),
                         env=dict({"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, **sanitizer_env()))
        return self

    def run_once(self, timeout=30):
        """hostgate-sync -c agent.conf --once: (exit status, output)."""
        p = subprocess.run([agent_binary(), "-c", self.conf_path, "--once"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           env=dict({"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, **sanitizer_env()))
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")

    def status(self):
        # beside the configuration: the agent's own directory (state.h)
        with open(os.path.join(os.path.dirname(self.conf["config_path"]),
                               "sync-status.json")) as f:
            return json.load(f)

    def log_text(self):
        with open(os.path.join(self.dir, "agent.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc:
            self.proc.stop(sig=signal.SIGTERM)


def share_with_www(path):
    """root:www-data 2770: a state directory both the app (www-data) and
    a root agent write (the agent only reads the metrics there)."""
    os.chown(path, 0, grp.getgrnam("www-data").gr_gid)
    os.chmod(path, 0o2770)


# ---- the gateway, counting what it was sent ----------------------------------

class CountingGateway(Gateway):
    """A Gateway that counts every request it answered by (api, operation,
    status) as the test sees it (classify), and every request that got no
    answer (unanswered)."""

    def __init__(self, *a, classify=None, **kw):
        super().__init__(*a, **kw)
        self.classify = classify
        self.count_lock = threading.Lock()
        self.sent = {}
        self.unanswered = []

    def request(self, method, target, **kw):
        try:
            r = super().request(method, target, **kw)
        except Exception as e:
            with self.count_lock:
                self.unanswered.append((target, repr(e)))
            raise
        api, op = self.classify(target[len(self.mount) + 1:], r)
        key = (api, op, r.status)
        with self.count_lock:
            self.sent[key] = self.sent.get(key, 0) + 1
        return r

    def counted(self):
        with self.count_lock:
            return dict(self.sent), list(self.unanswered)

    def health_doc(self):
        r = self.health()
        return r.status, r.json()

    def wait_served(self, gen, timeout=10):
        """Until the health path and three bursts in a row report gen."""
        wait_until(lambda: self.check_alive() or self.generation_served() == gen, timeout,
                   "%s to serve generation %s" % (self.setup, gen), interval=0.05)
        clean = [0]

        def three_clean():
            clean[0] = clean[0] + 1 if self.burst_generations() == {gen} else 0
            return clean[0] >= 3
        wait_until(three_clean, timeout, "every process to serve generation %s" % gen,
                   interval=0.05)


# ---- load ---------------------------------------------------------------------

class Load:
    """threads issuing GETs of targets (round robin) continuously until
    stop(); results: (target, status or error text)."""

    def __init__(self, gw, targets, threads=4):
        self.gw = gw
        self.targets = targets
        self.n = threads
        self.results = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]

    def _run(self, i):
        k = i
        while not self.stopping.is_set():
            t = self.targets[k % len(self.targets)]
            k += 1
            try:
                r = self.gw.get(t, timeout=20)
                res = r.status if r.status == 200 else "%d %s" % (r.status, r.body[:200])
            except Exception as e:  # noqa: BLE001 - a failure of the load
                res = repr(e)
            with self.lock:
                self.results.append((t, res))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)

    def failures(self):
        with self.lock:
            return [r for r in self.results if r[1] != 200]

    def count(self):
        with self.lock:
            return len(self.results)


# ---- HTTPS static endpoint: nginx with a test CA ------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_test_ca(d):
    """ca.pem (a test CA) and server.pem/server.key for IP 127.0.0.1, made
    with the openssl CLI in directory d."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=hostgate e2e test ca", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    for name in ("server.key", "server.pem", "ca.pem"):
        os.chmod(os.path.join(d, name), 0o644)


class TlsNginx:
    """nginx over TLS on 127.0.0.1, its certificate issued for 127.0.0.1 by a
    test CA made in d (make_test_ca: d/ca.pem). The caller gives the lines of
    the http block (log_format, access_log...) and of the server block, with
    the paths already filled in; the rest is the same for every TLS nginx of
    the tests."""

    def __init__(self, name, d, http_lines, server_lines, port=None):
        from harness import free_port, port_open
        self.dir = d
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        os.chmod(d, 0o755)
        make_test_ca(d)
        self.port = port or free_port()
        self.access_log = os.path.join(d, "access.log")
        head = """
daemon off;
master_process on;
worker_processes 1;
user www-data;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
""".format(d=d)
        server = """    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
""".format(d=d, port=self.port)
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(head + http_lines + server + server_lines + "    }\n}\n")
        os.chmod(self.conf, 0o600)
        LOGS.add(os.path.join(d, "error.log"))
        self.proc = Proc("nginx (%s)" % name, ["nginx", "-c", self.conf, "-p", d],
                         os.path.join(d, "nginx.out"))
        wait_until(lambda: self.proc.check_alive() or port_open(self.port), 20,
                   "the %s to listen" % name)

    def url(self, path="", host="127.0.0.1"):
        return "https://%s:%d%s" % (host, self.port, path)

    def lines_with(self, token=""):
        """The access log's lines holding token, each split on blanks
        (none before the first request)."""
        try:
            with open(self.access_log) as f:
                return [line.split() for line in f if token in line]
        except FileNotFoundError:
            return []

    def stop(self):
        self.proc.stop(timeout=10)


class TlsUpstream(TlsNginx):
    """nginx over TLS on 127.0.0.1: /echo/... answers "tls-ok URI"."""

    def __init__(self, d):
        super().__init__("tls upstream", d, """    log_format tls '$request_uri $ssl_protocol';
    access_log %s/access.log tls;
""" % d, """        ssl_protocols TLSv1.2 TLSv1.3;
        location /echo/ { default_type text/plain; return 200 "tls-ok $request_uri"; }
""")


class StaticTlsEndpoint(TlsNginx):
    """nginx serving {dir}/www/gateways/{GATEWAY}/configuration(.sig) over
    https on 127.0.0.1, only to the gateway's token (403 otherwise)."""

    def __init__(self, d, port):
        self.www = os.path.join(d, "www")
        self.gwdir = os.path.join(self.www, "gateways", GATEWAY)
        os.makedirs(self.gwdir, exist_ok=True)
        for p in (d, self.www, os.path.dirname(self.gwdir), self.gwdir):
            os.chmod(p, 0o755)
        http_lines = """    types {{ text/plain sig; }}
    default_type application/json;
    log_format e2e '$request $status "$http_if_none_match"';
    access_log {d}/access.log e2e;
""".format(d=d)
        server_lines = """        ssl_protocols TLSv1.2 TLSv1.3;
        root {www};
        location ~ ^/gateways/{gw_re}/configuration(\\.sig)?$ {{
            if ($http_authorization != "GatewayKey {token}") {{ return 403; }}
        }}
        location / {{ return 403; }}
""".format(www=self.www, gw_re=GATEWAY.replace(".", "\\."), token=TOKEN)
        super().__init__("https endpoint", d, http_lines, server_lines, port)

    def publish(self, key, doc_obj):
        """Writes the document, then its .sig, each by an atomic rename."""
        body = json.dumps(doc_obj, indent=1).encode()
        sig = key.sign(body) + "\n"
        for name, data in (("configuration", body), ("configuration.sig", sig.encode())):
            tmp = os.path.join(self.gwdir, "." + name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.rename(tmp, os.path.join(self.gwdir, name))
        return body

    def log_lines(self):
        with open(self.access_log) as f:
            return f.read().splitlines()


__all__ = ["AgentDaemon", "CountingGateway", "FAULTS", "GATEWAY", "HEALTH", "Key", "Load",
           "MgmtEndpoint", "StaticTlsEndpoint", "TlsNginx", "TlsUpstream", "TOKEN", "http", "share_with_www"]
