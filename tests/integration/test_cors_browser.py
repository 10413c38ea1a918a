"""cors in a real browser: headless Chromium loads a page from one origin
(Python's http.server on 127.0.0.1:PORT_A) whose script calls the API through
the gateway (lighttpd, 127.0.0.1:PORT_B) with fetch(). The page writes what it
got into the DOM and sets document.title when done; --dump-dom reads it back.

  allowed origin, GET               the data arrives; nginx saw the request
  allowed origin, PUT + X-Custom    preflighted, then the PUT arrives
  another origin (PORT_C), GET      the browser blocks it; nothing upstream

Skipped only when Chromium is not installed (scripts/install-deps).
"""

import html
import os
import re
import shutil
import subprocess
import tempfile
import uuid

import pytest

import policy_docs as pd
from harness import Proc, free_port, port_open, wait_until
from servers import mkdir, write_file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium is not installed (scripts/install-deps)")

PAGE = """<!DOCTYPE html>
<html><head><title>pending</title></head>
<body><pre id="out"></pre>
<script>
(async function () {
  const q = new URLSearchParams(location.search);
  const url = q.get("api");
  const opts = q.get("mode") === "put"
    ? {method: "PUT", headers: {"X-Custom": "yes", "Content-Type": "text/plain"},
       body: "payload-" + q.get("t")}
    : {method: "GET"};
  try {
    const r = await fetch(url, opts);
    const text = await r.text();
    document.getElementById("out").textContent = text;
    document.title = "done:ok:" + r.status + ":" + (r.headers.get("X-Request-Id") ? "rid" : "no-rid");
  } catch (e) {
    document.getElementById("out").textContent = String(e);
    document.title = "done:error";
  }
})();
</script></body></html>
"""


@pytest.fixture(scope="module")
def site(workroot):
    """The page, served on two origins: PORT_A (allowed) and PORT_C (not)."""
    d = mkdir(os.path.join(workroot, "cors-site"))
    write_file(os.path.join(d, "page.html"), PAGE)
    procs = []
    ports = []
    for name in ("allowed", "other"):
        port = free_port()
        p = Proc("http.server-%s" % name,
                 ["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                 os.path.join(d, "%s.log" % name), cwd=d)
        procs.append(p)
        ports.append(port)
    for p, port in zip(procs, ports):
        wait_until(lambda p=p, port=port: p.check_alive() or port_open(port), 10,
                   "http.server on %d" % port)
    yield ports
    for p in procs:
        p.stop()


@pytest.fixture
def cors_gw(make_gateway, site, nginx):
    g = make_gateway("lighttpd-binpath", "-cors-browser")
    g.apply(pd.cors_doc(nginx.url("/echo/cors"), "http://127.0.0.1:%d" % site[0]), timeout=20)
    return g


def browse(url):
    """Loads url in headless Chromium; returns (title, text of #out)."""
    profile = tempfile.mkdtemp(prefix="hostgate-chromium-")
    try:
        r = subprocess.run([
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--user-data-dir=" + profile, "--virtual-time-budget=5000",
            "--dump-dom", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    dom = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, (r.returncode, r.stderr.decode("utf-8", "replace")[-2000:])
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    out = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert title and out, dom
    return html.unescape(title.group(1)), html.unescape(out.group(1))


def page_url(port, gw, mode, t):
    api = "http://127.0.0.1:%d/api/data/%s-%s" % (gw.port, mode, t)
    return "http://127.0.0.1:%d/page.html?mode=%s&t=%s&api=%s" % (port, mode, t, api)


def test_allowed_origin_gets_the_data(cors_gw, site, nginx):
    t = uuid.uuid4().hex[:12]
    title, out = browse(page_url(site[0], cors_gw, "get", t))
    # the exposed X-Request-Id is readable too
    assert title == "done:ok:200:rid", (title, out)
    assert "method=GET" in out and "uri=/echo/cors/get-%s" % t in out, out
    (rec,) = nginx.requests_with(t)
    assert rec["method"] == "GET"


def test_preflighted_put_from_the_allowed_origin(cors_gw, site, nginx):
    t = uuid.uuid4().hex[:12]
    title, out = browse(page_url(site[0], cors_gw, "put", t))
    assert title.startswith("done:ok:200"), (title, out)
    assert "method=PUT" in out and "uri=/echo/cors/put-%s" % t in out, out
    recs = nginx.requests_with(t)
    # the preflight was answered by the gateway: only the PUT went upstream
    assert [r["method"] for r in recs] == ["PUT"], recs
    assert recs[0]["content_length"] == str(len("payload-" + t))


def test_other_origin_is_blocked_by_the_browser(cors_gw, site, nginx):
    t = uuid.uuid4().hex[:12]
    title, out = browse(page_url(site[1], cors_gw, "get", t))
    assert title == "done:error", (title, out)
    assert "TypeError" in out, out
    nginx.settle()
    assert nginx.requests_with(t, expect=False) == []
    # a preflighted call from there is refused before anything goes upstream
    t2 = uuid.uuid4().hex[:12]
    title, out = browse(page_url(site[1], cors_gw, "put", t2))
    assert title == "done:error", (title, out)
    nginx.settle()
    assert nginx.requests_with(t2, expect=False) == []
