"""The servers of the integration tests: the upstreams (httpbin under
gunicorn, nginx as static server, DAV upload sink and exact-request echo, and
a canary that must never be reached) and the gateway behind each of the five
web-server set-ups, built from the files in examples/ run unchanged: Apache
files are included after Define-ing their site values, lighttpd files get
only their `var.` lines at the top replaced.
"""

import glob
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import threading
import time
import uuid

from harness import (LOGS, REPO, ConfigFile, Proc, RELOAD_INTERVAL_S, free_port,
                     WaitTimeout, http, kill_leftovers, pids_of_exe, port_open, sanitizer_env,
                     wait_until)

WWW_USER = "www-data"
APACHE_MODULES = "/usr/lib/apache2/modules"
BIG_FILE_SIZE = 1 << 30         # the 1 GiB download
BIG_UPLOAD_SIZE = 100 << 20     # the 100 MiB upload
# what the web servers and hostgate let through in the big-transfer tests
MAX_BODY = 200 << 20
# concurrent requests that reach every hostgate process (each set-up runs
# 4 to 8 of them)
BURST = 16

SETUPS = ["lighttpd-binpath", "lighttpd-socket", "apache-fcgid", "apache-proxy-fcgi", "apache-cgi",
          "apache-cgi-resident"]
# hostgate as Apache's CGI program (examples/apache/hostgate-cgi.conf): once
# per request, or handing each request to resident workers (HOSTGATE_CGI_WORKERS)
CGI_SETUPS = ("apache-cgi", "apache-cgi-resident")
RESIDENT_WORKERS = 4


def www_ids():
    return pwd.getpwnam(WWW_USER).pw_uid, grp.getgrnam(WWW_USER).gr_gid


def mkdir(path, mode=0o755, www=False):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    if www:
        uid, gid = www_ids()
        os.chown(path, uid, gid)
    return path


def write_file(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


# ---- upstreams ------------------------------------------------------------

class Httpbin:
    """Debian's python3-httpbin under gunicorn; access log lines are
    "METHOD PATH?QUERY STATUS"."""

    def __init__(self, root):
        self.dir = mkdir(os.path.join(root, "httpbin"))
        self.port = free_port()
        self.access_log = os.path.join(self.dir, "access.log")
        open(self.access_log, "w").close()
        LOGS.add(self.access_log)
        self.proc = Proc("httpbin", [
            "/usr/bin/python3", "-m", "gunicorn", "-b", "127.0.0.1:%d" % self.port,
            "-w", "4", "-k", "gthread", "--threads", "4",
            "--access-logfile", self.access_log,
            "--access-logformat", "%(m)s %(U)s?%(q)s %(s)s",
            "httpbin:app"], os.path.join(self.dir, "gunicorn.log"), cwd=self.dir)
        wait_until(lambda: self.proc.check_alive() or port_open(self.port), 30, "httpbin to listen")

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def log_lines(self):
        with open(self.access_log) as f:
            return f.read().splitlines()

    def lines_with(self, token):
        return [line for line in self.log_lines() if token in line]

    def settle(self, token=None, expect=0):
        """Waits until `expect` lines holding token are logged, then for a
        request of its own. gunicorn's workers each write their line after
        they answer, so neither alone proves that a request the client has
        seen answered is logged: the count waits for the answers the test
        knows of, the own request gives a request that should not have come
        the time to show up."""
        if expect:
            wait_until(lambda: len(self.lines_with(token)) >= expect, 10,
                       "httpbin to log %d requests with %s" % (expect, token))
        tag = "settle-%s" % uuid.uuid4().hex[:12]
        http(self.port, "GET", "/anything/%s" % tag)
        wait_until(lambda: self.lines_with(tag), 5, "httpbin to log %s" % tag)

    def stop(self):
        self.proc.stop()


ECHO_FIELDS = [
    ("method", "$request_method"), ("uri", "$request_uri"), ("host", "$http_host"),
    ("connection", "$http_connection"), ("keep_alive", "$http_keep_alive"),
    ("te", "$http_te"), ("upgrade", "$http_upgrade"), ("trailer", "$http_trailer"),
    ("proxy_authorization", "$http_proxy_authorization"),
    ("proxy_connection", "$http_proxy_connection"), ("x_drop", "$http_x_drop"),
    ("x_keep", "$http_x_keep"), ("x_injected", "$http_x_injected"),
    ("xff", "$http_x_forwarded_for"), ("xfp", "$http_x_forwarded_proto"),
    ("xfh", "$http_x_forwarded_host"), ("authorization", "$http_authorization"),
    ("content_length", "$content_length"), ("transfer_encoding", "$http_transfer_encoding"),
    ("content_type", "$http_content_type"),
]


class Nginx:
    """nginx: /echo/ answers with what it received (one `name=value` line per
    field of ECHO_FIELDS, raw request URI included) and logs it as JSON;
    /files/ serves static files (the 1 GiB one is sparse); /upload/ stores
    PUT bodies (DAV). A second server, the canary, must receive nothing."""

    SENTINEL = "/sentinel-"

    def __init__(self, root):
        self.dir = mkdir(os.path.join(root, "nginx"))
        self.files = mkdir(os.path.join(self.dir, "files"))
        self.dav = mkdir(os.path.join(self.dir, "dav"))
        mkdir(os.path.join(self.dav, "upload"))
        mkdir(os.path.join(self.dir, "tmp"))
        self.port = free_port()
        self.canary_port = free_port()
        self.access_log = os.path.join(self.dir, "access.log")
        self.canary_log = os.path.join(self.dir, "canary.log")
        self.error_log = os.path.join(self.dir, "error.log")
        for p in (self.access_log, self.canary_log, self.error_log):
            open(p, "w").close()
            LOGS.add(p)
        echo_body = "".join("%s=%s\\n" % (k, v) for k, v in ECHO_FIELDS)
        log_json = "{" + ",".join('"%s":"%s"' % (k, v) for k, v in ECHO_FIELDS) + \
            ',"request":"$request","request_length":"$request_length","status":"$status"}'
        conf = """
daemon off;
master_process on;
worker_processes 2;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format upstream escape=json '{log_json}';
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ application/octet-stream bin; }}
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        access_log {d}/access.log upstream;
        client_max_body_size 0;
        location /echo/ {{
            default_type text/plain;
            return 200 "{echo_body}";
        }}
        location /files/ {{ alias {d}/files/; }}
        location /upload/ {{
            root {d}/dav;
            dav_methods PUT;
            create_full_put_path on;
            client_body_buffer_size 1m;
        }}
        location / {{ return 404 "not an upstream path\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{canary};
        access_log {d}/canary.log upstream;
        location / {{ return 200 "CANARY\\n"; }}
    }}
}}
""".format(d=self.dir, port=self.port, canary=self.canary_port, log_json=log_json,
           echo_body=echo_body)
        self.conf = write_file(os.path.join(self.dir, "nginx.conf"), conf)
        self.proc = Proc("nginx", ["nginx", "-c", self.conf, "-p", self.dir],
                         os.path.join(self.dir, "nginx.out"))
        wait_until(lambda: self.proc.check_alive() or
                   (port_open(self.port) and port_open(self.canary_port)), 20, "nginx to listen")
        self._sentinels = 0

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _log(self, path):
        # nginx writes bytes 0x80-0xff of a request as they came: one such
        # byte must not make every later look-up fail
        with open(path, encoding="utf-8", errors="replace") as f:
            return [json.loads(line) for line in f if line.strip()]

    def requests_with(self, token, timeout=5.0, expect=True):
        """Log records of the main server whose request line holds token;
        waits for at least one when expect."""
        def find():
            return [r for r in self._log(self.access_log) if token in r["request"]]
        if expect:
            return wait_until(find, timeout, "nginx to log a request holding %r" % token)
        return find()

    def settle(self):
        """Makes sure every request finished before now is in both logs: sends
        a sentinel to each server directly and waits until it is logged."""
        self._sentinels += 1
        tag = "%s%d-%d" % (self.SENTINEL, os.getpid(), self._sentinels)
        for port, log in ((self.port, self.access_log), (self.canary_port, self.canary_log)):
            http(port, "GET", tag)
            wait_until(lambda: any(tag in r["request"] for r in self._log(log)), 5,
                       "nginx sentinel %s in %s" % (tag, log))

    def canary_hits(self):
        """Requests the canary received, sentinels aside (call settle first)."""
        return [r for r in self._log(self.canary_log) if self.SENTINEL not in r["request"]]

    def stop(self):
        self.proc.stop(timeout=10)


def parse_echo(body):
    """The fields of an /echo/ answer as a dict."""
    out = {}
    for line in body.decode("latin-1").splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out


def make_big_file(path, size):
    """A sparse file with a marker every 64 MiB, so that a download that
    drops, repeats or reorders data does not hash the same."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off in range(0, size, 64 << 20):
            f.seek(off)
            f.write(b"hostgate-marker-%016x" % off)
    os.chmod(path, 0o644)


# ---- the gateway behind a web server ---------------------------------------

def template_lighttpd(src, values):
    """The example file with the values of its `var.NAME = ...` lines
    replaced, each exactly once, and nothing else changed."""
    with open(src) as f:
        text = f.read()
    for name, value in values.items():
        v = '"%s"' % value if isinstance(value, str) else str(value)
        text, n = re.subn(r"(?m)^var\.%s = .*$" % re.escape(name),
                          lambda m, v=v, name=name: "var.%s = %s" % (name, v), text)
        if n != 1:
            raise AssertionError("%s: expected one 'var.%s = ' line, found %d" % (src, name, n))
    return text


class Gateway:
    """hostgate-fcgi behind one web-server set-up, in its own directory:
      bin/hostgate-fcgi  a copy www-data can execute
      conf/              the configuration directory, as docs/deploying.md lays
                         it out: root:www-data 0750, written only by root (the
                         agent, the test); config.json 0640 (ConfigFile)
      etc/               web-server configuration (the example, unchanged)
      log/ run/ state/   owned by www-data (state: the app's counters, metrics)
    """

    def __init__(self, root, setup, binary, config_name="config.json", tag=""):
        self.setup = setup
        self.dir = mkdir(os.path.join(root, "gw-%s%s" % (setup, tag)))
        self.bin = os.path.join(mkdir(os.path.join(self.dir, "bin")), "hostgate-fcgi")
        shutil.copy2(binary, self.bin)
        os.chmod(self.bin, 0o755)
        self.etc = mkdir(os.path.join(self.dir, "etc"))
        self.conf_dir = mkdir(os.path.join(self.dir, "conf"), mode=0o750)
        os.chown(self.conf_dir, 0, www_ids()[1])
        self.log_dir = mkdir(os.path.join(self.dir, "log"), www=True)
        self.run_dir = mkdir(os.path.join(self.dir, "run"), www=True)
        self.state_dir = mkdir(os.path.join(self.dir, "state"), www=True)
        self.htdocs = mkdir(os.path.join(self.dir, "htdocs"))
        self.config = ConfigFile(os.path.join(self.conf_dir, config_name), compiler=self.bin)
        self.access_log = os.path.join(self.log_dir, "hostgate-access.log")
        self.error_log = os.path.join(self.log_dir, "error.log")
        self.port = free_port()
        self.mount = "/api"
        self.procs = []
        self.listener = None
        LOGS.add(self.error_log)

    # -- starting and stopping

    def start(self):
        kind = self.setup
        if kind in ("lighttpd-socket", "apache-proxy-fcgi"):
            self._start_listener()
        if kind.startswith("lighttpd"):
            self._start_lighttpd()
        else:
            self._start_apache()
        if kind == "apache-cgi-resident":
            # the first request starts the workers (and is served by its own
            # CGI process); the set-up is ready once they listen
            self.health()
            wait_until(lambda: self.server.check_alive() or (
                len(self.resident_pids()) == 1 + RESIDENT_WORKERS and
                glob.glob(os.path.join(self.state_dir, "cgi-workers", "*.sock"))), 10,
                "the resident workers of %s" % self.setup)
        return self

    def resident_pids(self):
        """The resident workers' supervisor and workers (hostgate-fcgi --cgi-workers)."""
        pids = []
        for pid in pids_of_exe(self.bin):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if b"\0--cgi-workers" in f.read():
                        pids.append(pid)
            except OSError:
                pass
        return pids

    def hostgate_env(self):
        return dict({"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                     "HOSTGATE_CONFIG": self.config.path,
                     "HOSTGATE_STATE_DIR": self.state_dir,
                     "HOSTGATE_ACCESS_LOG": self.access_log},
                    **sanitizer_env(os.path.basename(self.dir)))

    def _start_listener(self):
        # As the unit file does: its own process, the web server's user able to
        # connect. --user drops root and hands the socket to www-data.
        self.socket = os.path.join(self.run_dir, "hostgate.sock")
        self.listener = Proc("hostgate-fcgi --listen", [
            self.bin, "--listen", "unix:" + self.socket, "--workers", "4", "--user", WWW_USER],
            os.path.join(self.log_dir, "listener.log"), env=self.hostgate_env())
        self.procs.append(self.listener)
        wait_until(lambda: self.listener.check_alive() or os.path.exists(self.socket), 10,
                   "the hostgate listener socket %s" % self.socket)

    def _start_lighttpd(self):
        if self.setup == "lighttpd-binpath":
            example = "hostgate-binpath.conf"
            values = {"hostgate_mount": self.mount, "hostgate_bin": self.bin,
                      "hostgate_config": self.config.path,
                      "hostgate_state_dir": self.state_dir,
                      "hostgate_access_log": self.access_log,
                      "hostgate_socket_dir": self.run_dir, "hostgate_procs": 4,
                      "hostgate_max_request_kb": MAX_BODY // 1024}
        else:
            example = "hostgate-socket.conf"
            values = {"hostgate_mount": self.mount, "hostgate_socket": self.socket,
                      "hostgate_max_request_kb": MAX_BODY // 1024}
        snippet = write_file(os.path.join(self.etc, example), template_lighttpd(
            os.path.join(REPO, "examples", "lighttpd", example), values))
        main = write_file(os.path.join(self.etc, "lighttpd.conf"), """
# generated by tests/integration: the server around examples/lighttpd/{example}
server.document-root = "{htdocs}"
server.bind = "127.0.0.1"
server.port = {port}
server.username = "{user}"
server.groupname = "{user}"
server.errorlog = "{log}/error.log"
server.pid-file = "{run}/lighttpd.pid"
server.modules = ( "mod_accesslog" )
accesslog.filename = "{log}/access.log"
include "{snippet}"
""".format(example=example, htdocs=self.htdocs, port=self.port, user=WWW_USER,
           log=self.log_dir, run=self.run_dir, snippet=snippet))
        self._run_checked(["lighttpd", "-tt", "-f", main], "lighttpd -tt")
        # (lighttpd passes its own environment on to bin-path processes)
        self.server = Proc("lighttpd", ["lighttpd", "-D", "-f", main],
                           os.path.join(self.log_dir, "lighttpd.out"),
                           env=dict(os.environ, **sanitizer_env(os.path.basename(self.dir))))
        self.procs.append(self.server)
        self._wait_listening()

    def _start_apache(self):
        example = {"apache-fcgid": "hostgate-fcgid.conf",
                   "apache-proxy-fcgi": "hostgate-proxy-fcgi.conf",
                   "apache-cgi": "hostgate-cgi.conf",
                   "apache-cgi-resident": "hostgate-cgi.conf"}[self.setup]
        snippet = os.path.join(self.etc, example)
        shutil.copy2(os.path.join(REPO, "examples", "apache", example), snippet)
        os.chmod(snippet, 0o644)
        defines = {"HOSTGATE_MOUNT": self.mount}
        modules = ["mpm_event", "authz_core", "alias", "env", "setenvif"]
        extra = ""
        if self.setup == "apache-fcgid":
            modules.append("fcgid")
            defines.update(HOSTGATE_BIN=self.bin, HOSTGATE_CONFIG=self.config.path,
                           HOSTGATE_STATE_DIR=self.state_dir,
                           HOSTGATE_ACCESS_LOG=self.access_log,
                           HOSTGATE_MAX_REQUEST_LEN=str(MAX_BODY),
                           HOSTGATE_MAX_PROCESSES="8")
            fcgid_dir = mkdir(os.path.join(self.run_dir, "fcgid"), www=True)
            extra = ("FcgidIPCDir %s\nFcgidProcessTableFile %s/shm\n"
                     "FcgidMinProcessesPerClass 0\n" % (fcgid_dir, fcgid_dir))
        elif self.setup == "apache-proxy-fcgi":
            modules += ["proxy", "proxy_fcgi"]
            defines.update(HOSTGATE_SOCKET=self.socket)
        else:
            modules.append("cgid")
            # as the example says: the program runs under an nph- name, so
            # that it frames its answers itself (fcgi-app/nph.h)
            nph = os.path.join(os.path.dirname(self.bin), "nph-hostgate-fcgi")
            if not os.path.islink(nph):
                os.symlink(os.path.basename(self.bin), nph)
            defines.update(HOSTGATE_BIN=nph, HOSTGATE_CONFIG=self.config.path,
                           HOSTGATE_STATE_DIR=self.state_dir,
                           HOSTGATE_ACCESS_LOG=self.access_log)
            if self.setup == "apache-cgi-resident":
                defines.update(HOSTGATE_CGI_WORKERS=str(RESIDENT_WORKERS))
            extra = "ScriptSock %s/cgid.sock\n" % self.run_dir
        for k, v in sanitizer_env(os.path.basename(self.dir)).items():
            if self.setup != "apache-proxy-fcgi":
                extra += "%s %s %s\n" % ("FcgidInitialEnv" if self.setup == "apache-fcgid"
                                          else "SetEnv", k, v)
        loads = "".join("LoadModule %s_module %s/mod_%s.so\n" % (m, APACHE_MODULES, m)
                        for m in modules)
        define_lines = "".join("Define %s %s\n" % kv for kv in defines.items())
        main = write_file(os.path.join(self.etc, "apache2.conf"), """
# generated by tests/integration: the server around examples/apache/{example}
ServerRoot "{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {run}/apache2.pid
DefaultRuntimeDir {run}
Mutex file:{run} default
User {user}
Group {user}
ErrorLog {log}/error.log
LogLevel warn
LogFormat "%h \\"%r\\" %>s %b %D" short
CustomLog {log}/access.log short
Timeout 60
StartServers 1
ServerLimit 6
ThreadsPerChild 25
MaxRequestWorkers 150
DocumentRoot {htdocs}
<Directory />
    AllowOverride None
    Require all denied
</Directory>
# (an empty document root; granted, as a site's usually is, so that the
# PATH_TRANSLATED lookups Apache makes for the gateway log no denials)
<Directory {htdocs}>
    Require all granted
</Directory>
{loads}{extra}
# the site-specific values the example takes from its top block
{defines}
Include {snippet}
""".format(example=example, dir=self.dir, port=self.port, run=self.run_dir, user=WWW_USER,
           log=self.log_dir, htdocs=self.htdocs, loads=loads, extra=extra,
           defines=define_lines, snippet=snippet))
        self._run_checked(["apache2", "-f", main, "-t"], "apache2 -t")
        self.server = Proc("apache2", ["apache2", "-f", main, "-DFOREGROUND"],
                           os.path.join(self.log_dir, "apache2.out"),
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"})
        self.procs.append(self.server)
        self._wait_listening()

    def _run_checked(self, argv, what):
        import subprocess
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s" % (what, r.returncode,
                                                          r.stdout.decode("utf-8", "replace")))

    def _wait_listening(self):
        wait_until(lambda: self.server.check_alive() or port_open(self.port), 20,
                   "%s to listen on %d" % (self.setup, self.port))

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        # resident workers outlive their web server until they idle out
        for pid in self.resident_pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        # The server told its hostgate processes to stop (SIGTERM): let them
        # exit by themselves, so that a sanitizer build's leak check runs at
        # exit (killed at once, lighttpd's bin-path children never reported);
        # kill what outlives its server by more than a few seconds.
        try:
            wait_until(lambda: not pids_of_exe(self.bin), 5,
                       "hostgate processes of %s to exit" % self.setup)
        except WaitTimeout:
            wait_until(lambda: not pids_of_exe(self.bin) or kill_leftovers(self.bin), 10,
                       "hostgate processes of %s to exit" % self.setup)

    def check_alive(self):
        for p in self.procs:
            p.check_alive()

    def log_files(self):
        """The files this set-up's hostgate processes log to: the web server's
        error log (CGI and FastCGI stderr), the listener's own log (--listen),
        and the resident workers' own (cgi-workers/KEY.log: what a worker logs
        outside a request, such as its configuration check between requests)."""
        paths = [os.path.join(self.log_dir, n) for n in sorted(os.listdir(self.log_dir))
                 if "access" not in n]
        paths += sorted(glob.glob(os.path.join(self.state_dir, "cgi-workers", "*.log")))
        return [p for p in paths if os.path.isfile(p)]

    # -- requests

    def request(self, method, target, **kw):
        """target is the full request target (mount included)."""
        return http(self.port, method, target, **kw)

    def get(self, target, **kw):
        return self.request("GET", target, **kw)

    def health(self):
        return self.get(self.mount + "/status-0123456789abcdef", timeout=10)

    def generation_served(self):
        r = self.health()
        if r.status != 200:
            return None
        return r.json().get("generation")

    def apply(self, doc, timeout=10):
        """Installs doc (with the next generation) and waits until every
        hostgate process serves it: the health path reports it and one
        re-check interval has passed since the rename."""
        gen = self.config.write(doc)
        self.wait_generation(gen, timeout)
        return gen

    def wait_generation(self, gen, timeout=10):
        """Waits until every hostgate process serves generation gen.

        A process re-reads the file on its first request once a second has
        passed since its last check, so a process that gets no request keeps
        its old configuration (and if a bad file follows, keeps it for good).
        So: wait for the health path to report gen, let one re-check
        interval pass since the rename, then send bursts of concurrent
        requests, enough to reach every process, until three bursts in a
        row see only gen."""
        wait_until(lambda: self.check_alive() or self.generation_served() == gen, timeout,
                   "%s to serve generation %d" % (self.setup, gen), interval=0.05)
        ready = self.config.written_at + RELOAD_INTERVAL_S + 0.1
        wait_until(lambda: time.monotonic() >= ready and self.generation_served() == gen,
                   RELOAD_INTERVAL_S + timeout, "one re-check interval", interval=0.05)
        if self.setup == "apache-cgi":
            return      # a new process for every request: nothing to catch up
        clean = [0]

        def three_clean_bursts():
            seen = self.burst_generations()
            clean[0] = clean[0] + 1 if seen == {gen} else 0
            return clean[0] >= 3
        wait_until(three_clean_bursts, timeout,
                   "every %s process to serve generation %d" % (self.setup, gen), interval=0.01)

    def burst_generations(self, n=BURST):
        """Generations reported by n concurrent health requests."""
        seen = set()
        lock = threading.Lock()

        def one():
            try:
                g = self.generation_served()
            except Exception as e:  # noqa: BLE001 - reported as a generation
                g = repr(e)
            with lock:
                seen.add(g)
        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return seen

    def hostgate_pids(self):
        return pids_of_exe(self.bin)


class ModuleDocument:
    """The document a test module runs against, on one set-up: applied when
    the module's first test starts, applied again for a test whenever another
    module installed its own meanwhile, the base document put back after the
    module's last test.

        @pytest.fixture(scope="module")
        def _xmodule(gw, base):
            with ModuleDocument(gw, base, x_doc(base)) as m:
                yield m

        @pytest.fixture
        def xgw(_xmodule):
            return _xmodule.gateway()
    """

    def __init__(self, gw, base, doc):
        self.gw, self.base, self.doc = gw, base, doc
        self.generation = None

    def __enter__(self):
        self.generation = self.gw.apply(self.doc, timeout=20)
        return self

    def __exit__(self, *exc):
        try:
            self.gw.apply(self.base)
        except Exception:  # noqa: BLE001 - the gateway may be stopping already
            pass
        return False

    def gateway(self):
        """The gateway, serving the module's document."""
        if self.gw.config.generation != self.generation:
            self.generation = self.gw.apply(self.doc, timeout=20)
        return self.gw


class LogWatch:
    """What the set-ups log from now on (Gateway.log_files)."""

    def __init__(self, *gws):
        self.files = {}
        for g in gws:
            for p in g.log_files():
                self.files[p] = os.path.getsize(p)
            self.files.setdefault(g.error_log, 0)
        self.gws = gws

    def text(self):
        out = []
        for g in self.gws:
            for p in g.log_files():
                with open(p, "rb") as f:
                    f.seek(self.files.get(p, 0))
                    out.append(f.read().decode("utf-8", "replace"))
        return "\n".join(out)

    def wait_for(self, needle, what, timeout=10):
        return wait_until(lambda: needle in self.text(), timeout,
                          "%s in the log (%r)" % (what, needle))


_held_ports = []


def closed_port():
    """A port on which nothing listens, for as long as the test process lives.

    The socket stays bound and never listens: a connection to it is refused, and no
    server started later (nor an outgoing connection's ephemeral port) can take it. A
    port released at once was taken by another server in one CI run, and the "dead"
    pool member answered 404."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held_ports.append(s)
    return s.getsockname()[1]


def base_config(httpbin, nginx, dead_port, faulty, max_body=MAX_BODY):
    """The document most tests run against (generation set on writing)."""
    def api(api_id, backend, **kw):
        return dict({"id": api_id, "path": api_id, "backend": backend,
                     "subscription_required": False}, **kw)
    return {
        "format": 1,
        "generation": 1,
        "gateway": {"max_request_body_bytes": max_body},
        "named_values": {"svc-pass": {"value": "s3cret-pass", "secret": True}},
        "backends": {
            "httpbin": {"url": httpbin.url()},
            "anything": {"url": httpbin.url("/anything/base")},
            "creds": {"url": httpbin.url("/anything/creds"),
                      "credentials": {"basic": {"username": "svc", "password": "{{svc-pass}}"},
                                      "header": {"X-Api-Key": "backend-key"},
                                      "query": {"appid": "backend-appid"}}},
            "echo": {"url": nginx.url("/echo/base")},
            "files": {"url": nginx.url("/files")},
            "upload": {"url": nginx.url("/upload")},
            "dead": {"url": "http://127.0.0.1:%d/dead" % dead_port, "connect_timeout_ms": 2000},
            "slow": {"url": httpbin.url(), "timeout_ms": 1000},
            "faulty": {"url": faulty.url("/f"), "timeout_ms": 5000},
        },
        "apis": [
            api("hb", "httpbin"),
            api("any", "anything"),
            api("creds", "creds"),
            api("echo", "echo"),
            api("files", "files"),
            api("upload", "upload"),
            api("dead", "dead"),
            api("slow", "slow"),
            api("faulty", "faulty"),
            api("ops", "anything", operations=[
                {"id": "get-item", "method": "GET", "url_template": "/items/{id}"}]),
        ],
    }


class FaultyUpstream:
    """A deliberately broken HTTP server (a thread of the test process), for
    what the gateway does when a backend misbehaves. By path:
      /truncate   200 with Content-Length 1000000, 300000 bytes, then closes
      /truncate-tail  200 with Content-Length 300100, 300000 bytes, then closes
                  (so short that an error page a server appends would fill it)
      /chunk-cut  200 chunked, 300000 bytes, then closes without the last chunk
    (big enough that the web server has sent the headers before the cut:
    lighttpd answers a small body it got whole, cut or not, with its own
    Content-Length)
      /garbage    a line that is not HTTP
      /hangup     closes without answering
    Every request line is kept in .requests."""

    def __init__(self):
        import socketserver

        outer = self
        self.requests = []

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                f = self.request.makefile("rb")
                line = f.readline(65537).decode("latin-1").strip()
                while f.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                outer.requests.append(line)
                path = line.split(" ")[1] if " " in line else ""
                s = self.request
                if path.endswith("/truncate-tail"):
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 300100\r\n"
                              b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 300000)
                elif path.endswith("/truncate"):
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n"
                              b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 300000)
                elif path.endswith("/chunk-cut"):
                    s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                              b"".join(b"2710\r\n" + b"y" * 10000 + b"\r\n" for _ in range(30)))
                elif path.endswith("/garbage"):
                    s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
                # /hangup and anything else: close without a word

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
