"""hostgate-fcgi embeds a minimal libcurl (scripts/build-curl: Debian's curl
source, HTTP and HTTPS over OpenSSL only, linked statically), so a CGI process
never maps Debian's libcurl.so and the 33 libraries it drags in (GnuTLS
through librtmp and libldap, Kerberos, libssh2...), not even for a request
that goes to a backend; and curl_global_init runs only for such a request:
answers decided without a backend (404, 401, return-response, the health
path) never pay it (docs/performance.md, "CGI with an embedded minimal
libcurl").

The program runs straight from the test with a CGI environment (no web
server), once per answer. What it maps is read from the dynamic loader's
LD_DEBUG=files trace. Whether libcurl was set up is seen through OpenSSL:
curl_global_init initialises OpenSSL, which reads its configuration
(OPENSSL_CONF); the test's configuration activates OpenSSL's legacy
provider, a module OpenSSL dlopen()s, so "legacy.so" in the trace says that
curl_global_init ran."""

import json
import os
import re
import subprocess
import uuid

import pytest

from harness import wait_until
from servers import closed_port

HEALTH = "/status-lazy-curl"

# what Debian's libcurl.so.4 maps that the app must not
FOREIGN = ("libcurl.so", "libcurl-gnutls", "libgnutls", "libldap", "liblber", "libssh2",
           "libgssapi_krb5", "libkrb5", "librtmp", "libnghttp2", "libpsl", "libidn2",
           "libbrotli", "libzstd", "libsasl2", "libnettle", "libhogweed")

OPENSSL_CNF = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
"""


@pytest.fixture(scope="module")
def doc(workroot, httpbin, tls_upstream):
    d = os.path.join(workroot, "lazy-curl")
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    cfg = {
        "format": 1,
        "generation": 1,
        "gateway": {"health_path": HEALTH},
        "backends": {
            "dead": {"url": "http://127.0.0.1:%d/" % closed_port()},
            "plain": {"url": httpbin.url("/anything/lazy")},
            "tls": {"url": tls_upstream.url("/echo/lazy"),
                    "tls": {"ca_file": os.path.join(tls_upstream.dir, "ca.pem")}},
            "tlssys": {"url": tls_upstream.url("/echo/sys")},
        },
        "apis": [
            {"id": "open", "path": "open", "backend": "dead", "subscription_required": False},
            {"id": "plain", "path": "plain", "backend": "plain", "subscription_required": False},
            {"id": "tls", "path": "tls", "backend": "tls", "subscription_required": False},
            {"id": "tlssys", "path": "tlssys", "backend": "tlssys",
             "subscription_required": False},
            {"id": "keyed", "path": "keyed", "backend": "dead"},
            {"id": "mock", "path": "mock", "backend": "dead", "subscription_required": False,
             "policies": {"inbound": [{"return-response": {
                 "status-code": 200, "headers": {"Content-Type": "text/plain"},
                 "body": "mocked"}}]}},
        ],
    }
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(d, "openssl.cnf"), "w") as f:
        f.write(OPENSSL_CNF)
    return d


def own_link_set(binary):
    """The libraries the binary itself needs (ldd), by file name."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return {os.path.basename(m.group(1)) for m in re.finditer(r"=>\s*(\S+)", out)}


def run_cgi(binary, doc, path, wrap=()):
    env = {
        "PATH": "/usr/bin:/bin", "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET", "SCRIPT_NAME": "/api",
        "PATH_INFO": path, "REQUEST_URI": "/api" + path, "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1", "SERVER_NAME": "127.0.0.1",
        "HOSTGATE_CONFIG": os.path.join(doc, "config.json"),
        "HOSTGATE_STATE_DIR": os.path.join(doc, "state"),
        "OPENSSL_CONF": os.path.join(doc, "openssl.cnf"),
        "LD_DEBUG": "files",
    }
    p = subprocess.run(list(wrap) + [binary], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    status = p.stdout.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    # "file=libssl.so.3 [0];  needed by ..." / "file=/usr/lib/.../legacy.so [0];  dynamically loaded by ..."
    paths = re.findall(r"file=(\S+) \[\d+\];\s+(?:needed|dynamically)", p.stderr.decode("latin-1"))
    mapped = {os.path.basename(m) for m in paths}
    # the marker's own module and what it needs (libcrypto.so.3, which a
    # STATIC_LIBS=1 build does not link) are not the app's doing
    for m in paths:
        if os.path.basename(m) == "legacy.so":
            mapped -= {"legacy.so"} | own_link_set(m)
            mapped.add("legacy.so")
    return status, mapped, p


def body(p):
    return p.stdout.split(b"\r\n\r\n", 1)[-1]


def foreign(mapped):
    return sorted(m for m in mapped if any(m.startswith(f) for f in FOREIGN))


@pytest.mark.parametrize("path,status", [
    ("/nope", "Status: 404"),
    ("/keyed/x", "Status: 401"),
    ("/mock/x", "Status: 200"),
    (HEALTH, "Status: 200"),
])
def test_answer_without_backend_maps_only_the_apps_libraries(binary, doc, path, status):
    got, mapped, p = run_cgi(binary, doc, path)
    assert got.startswith(status), p.stdout[:300]
    assert mapped, "no LD_DEBUG trace: %r" % p.stderr[:300]
    # libcurl never set up, and nothing mapped beyond the binary's own link set
    assert "legacy.so" not in mapped, "curl_global_init ran for %s" % path
    assert mapped <= own_link_set(binary), sorted(mapped - own_link_set(binary))


def test_marker_sees_curl_global_init(binary, doc):
    # the backend's port is closed: libcurl is set up, tries, the answer is 502
    got, mapped, p = run_cgi(binary, doc, "/open/x")
    assert got.startswith("Status: 502"), p.stdout[:300]
    assert "legacy.so" in mapped, sorted(mapped)
    # libcurl's reason reaches the log (a libcurl built without its verbose
    # strings says only "Error")
    assert b"Couldn't connect to server" in p.stderr, p.stderr[-2000:]
    assert not foreign(mapped), foreign(mapped)


def test_forwarded_plain_http_maps_no_libcurl_so(binary, doc, httpbin):
    t = uuid.uuid4().hex[:12]
    got, mapped, p = run_cgi(binary, doc, "/plain/x-" + t)
    assert got.startswith("Status: 200"), p.stdout[:300]
    assert json.loads(body(p))["url"].endswith("/anything/lazy/x-" + t), body(p)[:300]
    wait_until(lambda: httpbin.lines_with(t), 5, "httpbin to log the request")
    assert not foreign(mapped), foreign(mapped)
    assert mapped - {"legacy.so"} <= own_link_set(binary), sorted(mapped - own_link_set(binary))


def test_forwarded_https_maps_no_libcurl_so(binary, doc, tls_upstream):
    t = uuid.uuid4().hex[:12]
    got, mapped, p = run_cgi(binary, doc, "/tls/x-" + t)
    assert got.startswith("Status: 200"), p.stdout[:300]
    assert body(p) == ("tls-ok /echo/lazy/x-%s" % t).encode(), body(p)[:300]
    assert not foreign(mapped), foreign(mapped)
    assert mapped - {"legacy.so"} <= own_link_set(binary), sorted(mapped - own_link_set(binary))


def test_system_cas_are_the_hashed_directory(binary, doc, tls_upstream):
    """A backend without tls.ca_file trusts the CAs of /etc/ssl/certs, looked
    up by their hash links, not the bundle ca-certificates.crt (which OpenSSL
    3.0 parses whole, ~140 certificates, on every new connection: 20-37 ms).
    In a private mount namespace /etc/ssl/certs is a directory holding only
    the test CA and its hash link, no bundle: the request reaches nginx. A
    libcurl built with Debian's CA bundle answers 502 there ("problem with the
    SSL CA cert"), and outside it the test CA is not trusted (502)."""
    certs = os.path.join(doc, "certs")
    os.makedirs(certs, exist_ok=True)
    ca = os.path.join(certs, "ca.pem")
    with open(os.path.join(tls_upstream.dir, "ca.pem"), "rb") as src, open(ca, "wb") as dst:
        dst.write(src.read())
    h = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", ca], capture_output=True,
                       text=True, check=True).stdout.strip()
    if not os.path.lexists(os.path.join(certs, h + ".0")):
        os.symlink("ca.pem", os.path.join(certs, h + ".0"))
    t = uuid.uuid4().hex[:12]
    got, _, p = run_cgi(binary, doc, "/tlssys/x-" + t, wrap=(
        "unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/ssl/certs && exec "$@"', certs))
    assert got.startswith("Status: 200"), (p.stdout[:300], p.stderr[-1500:])
    assert body(p) == ("tls-ok /echo/sys/x-%s" % t).encode(), body(p)[:300]
    got, _, p = run_cgi(binary, doc, "/tlssys/y-" + t)
    assert got.startswith("Status: 502"), p.stdout[:300]


def test_version_names_the_embedded_libcurl(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libcurl4"],
                               capture_output=True, text=True, check=True).stdout
    upstream = installed.split(":")[-1].split("-")[0]
    assert re.search(r"^libcurl/%s OpenSSL/\S+ \(embedded, Debian curl %s\)$"
                     % (re.escape(upstream), re.escape(installed)), out, re.M), out
    # and the binary does not need a shared libcurl at all
    assert not any(n.startswith("libcurl") for n in own_link_set(binary)), own_link_set(binary)


def test_version_names_the_static_libraries(binary):
    """The default build (make STATIC_LIBS=1) links OpenSSL, json-c, libfcgi and
    hiredis statically: the binary maps none of them, and --version names the
    Debian packages they came from, at the installed versions (so that an
    administrator can tell when `apt upgrade` calls for `make`)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("linked statically from Debian's ")]
    assert line, out
    for pkg, lib in (("libssl-dev", "libssl"), ("libjson-c-dev", "libjson-c"),
                     ("libfcgi-dev", "libfcgi"), ("libhiredis-dev", "libhiredis")):
        installed = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                                   capture_output=True, text=True, check=True).stdout
        assert "%s %s" % (pkg, installed) in line[0], (pkg, installed, line[0])
        assert not any(n.startswith(lib + ".so") for n in own_link_set(binary)), \
            (lib, own_link_set(binary))

