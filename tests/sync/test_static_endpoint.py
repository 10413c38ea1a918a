"""examples/agent/static-endpoint-lighttpd.conf, run by a real lighttpd with
only its site-specific values changed: the agent pulls (and verifies) its
document from a plain directory, ETags give 304s, and tokens keep each gateway
to its own directory. TLS is exercised when lighttpd-mod-openssl is installed;
without it the example's TLS block is left out and the test runs over http."""
import http.client
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from sync_helpers import GATEWAY, ROOT, TOKEN, doc, free_port, have

EXAMPLE = ROOT / "examples" / "agent" / "static-endpoint-lighttpd.conf"
HAVE_TLS = os.path.exists("/usr/lib/lighttpd/mod_openssl.so")

pytestmark = pytest.mark.skipif(not have("lighttpd") or os.geteuid() != 0,
                                reason="needs lighttpd, run as root (it drops to www-data)")


def site_values(text, values):
    """Sets var.NAME = VALUE lines of the site-specific block, and nothing else."""
    head, rest = text.split("# ---- site-specific values", 1)
    block, tail = rest.split("# ---- end of site-specific values", 1)
    for name, value in values.items():
        new = 'var.%s = %s' % (name, value if isinstance(value, int) else '"%s"' % value)
        block, n = re.subn(r"^var\.%s = .*$" % name, new, block, flags=re.M)
        assert n == 1, name
    return head + "# ---- site-specific values" + block + "# ---- end of site-specific values" + tail


@pytest.fixture(scope="module")
def endpoint(mgmt_key):
    base = tempfile.mkdtemp(prefix="hostgate-static-")
    os.chmod(base, 0o755)
    try:
        www = os.path.join(base, "www")
        gw = os.path.join(www, "gateways", GATEWAY)
        os.makedirs(gw)
        os.makedirs(os.path.join(www, "gateways", "other-gw"))
        os.makedirs(os.path.join(www, ".git"))
        for d in (www, os.path.join(www, "gateways"), gw):
            os.chmod(d, 0o755)
        body = doc(21, pad=300)
        with open(os.path.join(gw, "configuration"), "wb") as f:
            f.write(body)
        with open(os.path.join(gw, "configuration.sig"), "w") as f:
            f.write(mgmt_key.sign(body) + "\n")
        with open(os.path.join(www, "gateways", "other-gw", "configuration"), "wb") as f:
            f.write(doc(1))
        with open(os.path.join(www, ".git", "config"), "w") as f:
            f.write("[core]\n")
        for root, dirs, files in os.walk(www):
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        tokens = os.path.join(base, "tokens.conf")
        with open(tokens, "w") as f:
            f.write('$HTTP["url"] =~ "^/gateways/%s/" {\n'
                    '  $REQUEST_HEADER["Authorization"] == "GatewayKey %s" {\n'
                    '    url.access-deny = ( )\n  }\n}\n' % (re.escape(GATEWAY), TOKEN))
        os.chmod(tokens, 0o600)
        state = os.path.join(base, "state")
        os.makedirs(state)
        shutil.chown(state, "www-data", "www-data")
        port = free_port()
        values = {"mgmt_root": www, "mgmt_port": port, "mgmt_bind": "127.0.0.1",
                  "mgmt_tokens": tokens, "mgmt_state": state}
        text = EXAMPLE.read_text()
        ca = None
        if HAVE_TLS:
            ca = os.path.join(base, "ca.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                            os.path.join(base, "srv.key"), "-out", ca, "-days", "2",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True)
            pem = os.path.join(base, "srv.pem")
            with open(pem, "w") as f:
                f.write(open(ca).read() + open(os.path.join(base, "srv.key")).read())
            values["mgmt_pemfile"] = pem
        else:
            text = re.sub(r"# ---- tls -+\n.*?# ---- end of tls -+\n", "", text, flags=re.S)
        conf = os.path.join(base, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(site_values(text, values))
        check = subprocess.run(["lighttpd", "-tt", "-f", conf], capture_output=True)
        assert check.returncode == 0, check.stderr
        log = open(os.path.join(base, "stderr.log"), "wb")
        p = subprocess.Popen(["lighttpd", "-D", "-f", conf], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or p.poll() is not None:
                    p.kill()
                    raise AssertionError("lighttpd did not start: " +
                                         open(os.path.join(base, "stderr.log")).read())
                time.sleep(0.05)
        scheme = "https" if HAVE_TLS else "http"
        yield {"url": "%s://127.0.0.1:%d" % (scheme, port), "port": port, "ca": ca, "body": body}
        p.terminate()
        p.wait(10)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def request(endpoint, path, method="GET", headers=None):
    if endpoint["ca"]:
        import ssl
        ctx = ssl.create_default_context(cafile=endpoint["ca"])
        c = http.client.HTTPSConnection("127.0.0.1", endpoint["port"], context=ctx, timeout=10)
    else:
        c = http.client.HTTPConnection("127.0.0.1", endpoint["port"], timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    c.close()
    return out


def agent_for(make_agent, endpoint, **conf):
    extra = {"report": "false"}
    if endpoint["ca"]:
        extra["ca_file"] = endpoint["ca"]
    extra.update(conf)
    return make_agent(endpoint["url"], **extra)


def test_agent_pulls_signed_document(make_agent, endpoint, mgmt_key):
    a = agent_for(make_agent, endpoint, public_key_file=str(mgmt_key.pub))
    rc, out = a.run()
    assert rc == 0, out
    assert a.installed() == endpoint["body"]
    st = a.status()
    assert st["generation"] == 21 and st["etag"], "lighttpd sends an ETag"
    rc, out = a.run()
    assert rc == 0, out


def test_etag_gives_304(endpoint):
    auth = {"Authorization": "GatewayKey " + TOKEN}
    status, headers, body = request(endpoint, "/gateways/%s/configuration" % GATEWAY,
                                    headers=auth)
    assert status == 200 and body == endpoint["body"]
    assert headers["Content-Type"] == "application/json"
    etag = headers["ETag"]
    status, _, body = request(endpoint, "/gateways/%s/configuration" % GATEWAY,
                              headers=dict(auth, **{"If-None-Match": etag}))
    assert status == 304 and body == b""


@pytest.mark.parametrize("path, headers", [
    ("/gateways/%s/configuration" % GATEWAY, {}),
    ("/gateways/%s/configuration" % GATEWAY, {"Authorization": "GatewayKey wrong"}),
    ("/gateways/%s/configuration" % GATEWAY, {"Authorization": "Bearer " + TOKEN}),
    ("/gateways/other-gw/configuration", {"Authorization": "GatewayKey " + TOKEN}),
    ("/.git/config", {"Authorization": "GatewayKey " + TOKEN}),
    ("/gateways/%s/" % GATEWAY, {"Authorization": "GatewayKey " + TOKEN}),
    ("/gateways/%s/../other-gw/configuration" % GATEWAY, {"Authorization": "GatewayKey " + TOKEN}),
])
def test_everything_else_is_denied(endpoint, path, headers):
    status, _, _ = request(endpoint, path, headers=headers)
    assert status == 403, (path, status)


def test_post_denied(endpoint):
    status, _, _ = request(endpoint, "/gateways/%s/configuration" % GATEWAY, method="POST",
                           headers={"Authorization": "GatewayKey " + TOKEN})
    assert status in (403, 405)


def test_agent_with_wrong_token(make_agent, endpoint):
    a = agent_for(make_agent, endpoint)
    a.token_file.write_text("not-the-token\n")
    rc, out = a.run()
    assert rc == 1
    assert "refused the gateway token (HTTP 403): check 'token_file'" in out
    assert not a.config.exists()
