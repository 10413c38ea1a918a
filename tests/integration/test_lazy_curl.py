"""hostgate-fcgi as a CGI program loads libcurl only for a request that goes
to a backend (fcgi-app/curlload.h): answers decided without one — 404, 401,
return-response, the health path — never map it, which is most of what a CGI
start costs (docs/performance.md, "CGI: libcurl on first use").

The program runs straight from the test with a CGI environment (no web
server: what is measured is which libraries the process maps, from the
dynamic loader's LD_DEBUG=files trace), once per answer."""

import json
import os
import subprocess

import pytest

from servers import closed_port

HEALTH = "/status-lazy-curl"


@pytest.fixture(scope="module")
def doc(workroot):
    d = os.path.join(workroot, "lazy-curl")
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    cfg = {
        "format": 1,
        "generation": 1,
        "gateway": {"health_path": HEALTH},
        "backends": {"be": {"url": "http://127.0.0.1:%d/" % closed_port()}},
        "apis": [
            {"id": "open", "path": "open", "backend": "be", "subscription_required": False},
            {"id": "keyed", "path": "keyed", "backend": "be"},
            {"id": "mock", "path": "mock", "backend": "be", "subscription_required": False,
             "policies": {"inbound": [{"return-response": {
                 "status-code": 200, "headers": {"Content-Type": "text/plain"},
                 "body": "mocked"}}]}},
        ],
    }
    path = os.path.join(d, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return d


def run_cgi(binary, doc, path):
    env = {
        "PATH": "/usr/bin:/bin", "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET", "SCRIPT_NAME": "/api",
        "PATH_INFO": path, "REQUEST_URI": "/api" + path, "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1", "SERVER_NAME": "127.0.0.1",
        "HOSTGATE_CONFIG": os.path.join(doc, "config.json"),
        "HOSTGATE_STATE_DIR": os.path.join(doc, "state"),
        "LD_DEBUG": "files",
    }
    p = subprocess.run([binary], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    status = p.stdout.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    return status, b"libcurl.so" in p.stderr, p


@pytest.mark.parametrize("path,status", [
    ("/nope", "Status: 404"),
    ("/keyed/x", "Status: 401"),
    ("/mock/x", "Status: 200"),
    (HEALTH, "Status: 200"),
])
def test_answer_without_backend_does_not_load_libcurl(binary, doc, path, status):
    got, loaded, p = run_cgi(binary, doc, path)
    assert got.startswith(status), p.stdout[:300]
    assert not loaded, "libcurl mapped for %s" % path


def test_forwarded_request_loads_libcurl(binary, doc):
    # the backend's port is closed: libcurl is loaded, tries, and the answer is 502
    got, loaded, p = run_cgi(binary, doc, "/open/x")
    assert got.startswith("Status: 502"), p.stdout[:300]
    assert loaded
