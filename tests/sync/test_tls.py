"""hostgate-sync over real HTTPS: `openssl s_server -WWW` serving a directory,
with a test CA made at test time by the openssl CLI. Verification is always on:
a certificate from another CA, or for another name, must fail."""
import socket
import subprocess
import time

import pytest

from sync_helpers import GATEWAY, doc, free_port, have

pytestmark = pytest.mark.skipif(not have("openssl"), reason="needs the openssl CLI")


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
            "-subj", "/CN=hostgate test " + name, cwd=d)


def make_server_cert(d, ca, san):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth\n" % san)
    openssl("x509", "-req", "-in", "server.csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    make_ca(d, "ca")
    make_ca(d, "otherca")
    make_server_cert(d, "ca", "IP:127.0.0.1")
    www = d / "www"
    (www / "gateways" / GATEWAY).mkdir(parents=True)
    (www / "gateways" / GATEWAY / "configuration").write_bytes(doc(11))
    port = free_port()
    log = open(d / "s_server.log", "wb")
    p = subprocess.Popen(["openssl", "s_server", "-WWW", "-accept", "127.0.0.1:%d" % port,
                          "-cert", str(d / "server.pem"), "-key", str(d / "server.key")],
                         cwd=www, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or p.poll() is not None:
                p.kill()
                raise AssertionError("s_server did not start: " +
                                     (d / "s_server.log").read_text(errors="replace"))
            time.sleep(0.05)
    yield {"dir": d, "port": port}
    p.kill()
    p.wait(10)


def test_https_with_the_right_ca(make_agent, tls_server):
    d = tls_server["dir"]
    a = make_agent("https://127.0.0.1:%d" % tls_server["port"], ca_file=str(d / "ca.pem"),
                   report="false")
    rc, out = a.run()
    assert rc == 0, out
    assert a.installed() == doc(11)
    assert a.status()["generation"] == 11


def test_https_certificate_from_another_ca_fails(make_agent, tls_server):
    d = tls_server["dir"]
    a = make_agent("https://127.0.0.1:%d" % tls_server["port"], ca_file=str(d / "otherca.pem"),
                   report="false")
    rc, out = a.run()
    assert rc == 1
    assert "certificate" in out.lower()
    assert not a.config.exists()
    st = a.status()
    assert st["result"] == "error" and "certificate" in st["error"].lower()


def test_https_system_bundle_does_not_know_the_test_ca(make_agent, tls_server):
    a = make_agent("https://127.0.0.1:%d" % tls_server["port"], report="false")
    rc, out = a.run()
    assert rc == 1
    assert not a.config.exists()


def test_https_wrong_host_name_fails(make_agent, tls_server):
    d = tls_server["dir"]
    a = make_agent("https://localhost:%d" % tls_server["port"], ca_file=str(d / "ca.pem"),
                   report="false")
    rc, out = a.run()
    assert rc == 1, out
    assert "localhost" in out and "certificate" in out.lower()
    assert not a.config.exists()


def test_missing_ca_file_is_exit_2(make_agent, tls_server):
    a = make_agent("https://127.0.0.1:%d" % tls_server["port"],
                   ca_file=str(tls_server["dir"] / "nope.pem"), report="false")
    rc, out = a.run()
    assert rc == 2
    assert "nope.pem" in out
