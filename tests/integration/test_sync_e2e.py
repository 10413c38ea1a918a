"""The management loop end to end: hostgate-sync as a daemon (interval_s = 1,
heartbeat_s = 1) against a management endpoint, hostgate-fcgi under lighttpd
(bin-path) and under Apache (mod_proxy_fcgi), both sharing the agent's
config_path (the configuration directory, root:www-data 0750: the agent's
alone, as the Gateway lays it out) and state_dir (written by www-data),
docs/deploying.md.

  1. a configuration change under a bounded load: the new route is served
     within ~3 s, and no request of the load fails;
  2. faults at the endpoint under load (500, 401, an invalid document, a
     wrongly-signed one, an older generation, a stalled answer, the endpoint
     down): the last good configuration keeps being served, the bad one is
     never installed, the health path turns "stale" and back to "ok";
  3. metrics: what the endpoint receives sums exactly to the requests sent, per
     (api, operation, status), de-duplicated on (instance, from), also after
     a period of rejected flushes;
  4. heartbeats carry the installed generation and the last sync;
  5. a static HTTPS endpoint (nginx, a test CA made with the openssl CLI,
     ca_file, the signature in a .sig file): the agent installs a changed file.

Run as root after `make`:
    /usr/bin/python3 -m pytest -q tests/integration/test_sync_e2e.py
"""

import grp
import json
import os
import re
import stat
import time

import pytest

from harness import LOGS, free_port, wait_until
from sync_e2e_helpers import (FAULTS, HEALTH, TOKEN, AgentDaemon, CountingGateway, Key, Load,
                              MgmtEndpoint, StaticTlsEndpoint, agent_binary, share_with_www)

E2E_SETUPS = ["lighttpd-binpath", "apache-proxy-fcgi"]
FIRST_GENERATION = 10
# what the load requests: present in every document
LOAD_TARGETS = ["/api/echo/load", "/api/ops/items/7"]


def document(nginx, generation, extra_apis=()):
    apis = [
        {"id": "echo", "path": "echo", "backend": "echo", "subscription_required": False},
        {"id": "ops", "path": "ops", "backend": "echo", "subscription_required": False,
         "operations": [{"id": "get-item", "method": "GET", "url_template": "/items/{id}"}]},
        {"id": "nf", "path": "nf", "backend": "nf", "subscription_required": False},
    ]
    for name in extra_apis:
        apis.append({"id": name, "path": name, "backend": "echo", "subscription_required": False})
    # the health path shows last_sync only to metrics.allow (issue 8, item 8)
    return {"format": 1, "generation": generation,
            "gateway": {"metrics": {"path": "/prom", "allow": ["127.0.0.1/32"]}},
            "backends": {"echo": {"url": nginx.url("/echo/base")},
                         # nginx answers 404 to anything outside its upstream paths
                         "nf": {"url": nginx.url("/nothing")}},
            "apis": apis}


def classify(path, r):
    """(api, operation) the gateway should record for a request of path
    (the target minus the mount point and its slash) answered by r."""
    path = path.split("?", 1)[0]
    if path == HEALTH:
        return None, None
    if r.status == 404 and b"no API matches" in (r.body or b""):
        return None, None
    api = path.split("/", 1)[0]
    if api == "ops":
        return api, ("get-item" if re.match(r"^ops/items/[^/]+$", path) else None)
    return api, None


def ensure_agent_available():
    if not os.access(agent_binary(), os.X_OK):
        raise AssertionError("no hostgate-sync at '%s': run make first" % agent_binary())


class Stack:
    def __init__(self, gw, mgmt, agent, nginx):
        self.gw, self.mgmt, self.agent, self.nginx = gw, mgmt, agent, nginx
        self.extra = []

    def publish_next(self, extra=None):
        if extra:
            self.extra.append(extra)
        doc = document(self.nginx, self.mgmt.generation + 1, self.extra)
        return doc["generation"], self.mgmt.publish(doc)

    def health(self):
        status, doc = self.gw.health_doc()
        assert status == 200, (status, doc)
        return doc

    def wait_ok(self, timeout=30):
        """Until the health path says ok and the last sync succeeded."""
        def ok():
            h = self.health()
            return h["status"] == "ok" and (h["last_sync"] or {}).get("result") == "ok"
        wait_until(ok, timeout, "the health path to say ok", interval=0.1)

    def installed(self):
        with open(self.gw.config.path, "rb") as f:
            return f.read()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    import pathlib
    d = pathlib.Path(tmp_path_factory.mktemp("e2e-keys"))
    return Key(d, "mgmt"), Key(d, "other")


@pytest.fixture(scope="module", params=E2E_SETUPS)
def stack(request, workroot, binary, nginx, keys):
    ensure_agent_available()
    mgmt = MgmtEndpoint(*keys)
    body = mgmt.publish(document(nginx, FIRST_GENERATION))
    gw = CountingGateway(workroot, request.param, binary, tag="-sync", classify=classify)
    share_with_www(gw.state_dir)
    agent = AgentDaemon(os.path.join(gw.dir, "agent"), mgmt.url, gw.config.path, gw.state_dir,
                        public_key_file=str(keys[0].pub))
    LOGS.add(os.path.join(agent.dir, "agent.log"))
    agent.start()
    try:
        wait_until(lambda: agent.proc.check_alive() or
                   (os.path.exists(gw.config.path) and open(gw.config.path, "rb").read() == body),
                   15, "the agent to install generation %d" % FIRST_GENERATION)
        gw.start()
        gw.wait_served(FIRST_GENERATION, timeout=20)
        s = Stack(gw, mgmt, agent, nginx)
        s.wait_ok()
    except BaseException:
        agent.stop()
        gw.stop()
        mgmt.close()
        raise
    yield s
    agent.stop()
    gw.stop()
    mgmt.close()


# ---- 1. a change under load ---------------------------------------------------------

def test_installed_document_is_shared_with_the_web_server(stack):
    st = os.stat(stack.gw.config.path)
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    assert st.st_gid == grp.getgrnam("www-data").gr_gid
    assert stack.installed() == stack.mgmt.body
    h = stack.health()
    assert h["generation"] == stack.mgmt.generation
    assert h["last_sync"]["result"] == "ok" and h["last_sync"]["error"] is None


def test_change_is_served_within_3s_and_no_request_fails(stack):
    gw = stack.gw
    stack.wait_ok()
    r = gw.get("/api/fresh/x")
    assert r.status == 404, r
    with Load(gw, LOAD_TARGETS, threads=4) as load:
        time.sleep(1.0)     # the load runs on the old document for a while
        gen, body = stack.publish_next(extra="fresh")
        t0 = time.monotonic()
        wait_until(lambda: gw.get("/api/fresh/x").status == 200, 6,
                   "the new route /api/fresh/x", interval=0.05)
        took = time.monotonic() - t0
        gw.wait_served(gen)
        time.sleep(1.0)     # and on the new one
    assert took <= 3.5, "the new route took %.2fs" % took
    assert load.count() > 50, load.count()
    assert not load.failures(), load.failures()[:10]
    assert stack.installed() == body
    assert stack.health()["generation"] == gen


# ---- 2. faults ----------------------------------------------------------------------

FAULT_ERRORS = {
    "500": r"500",
    "401": r"refused the gateway token \(HTTP 401\)",
    "invalid": r"does not validate",
    "badsig": r"signature",
    "older": r"lower than the installed generation",
    "stall": r".",
    "down": r".",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_keeps_last_good_configuration(stack, fault):
    gw, mgmt = stack.gw, stack.mgmt
    stack.wait_ok()
    good_gen, good_body = mgmt.generation, mgmt.body
    bad = None
    if fault in ("invalid", "badsig"):
        bad = document(stack.nginx, good_gen + 1, stack.extra + ["bad"])
        if fault == "invalid":
            bad["apis"][-1]["backend"] = "no-such-backend"
    elif fault == "older":
        bad = document(stack.nginx, good_gen - 1, stack.extra + ["bad"])
    with Load(gw, LOAD_TARGETS, threads=3) as load:
        t0 = time.monotonic()
        mgmt.set_fault(fault, bad)
        try:
            if fault == "stall":
                # the agent hangs in the download: its status ages, so the
                # health path says stale after 3 intervals...
                wait_until(lambda: stack.health()["status"] == "stale", 8,
                           "stale while the endpoint stalls", interval=0.1)
                # ...and the download is abandoned (20 s below 1 KiB/s)
                timeout = 30
            else:
                timeout = 8
            wait_until(lambda: stack.health()["status"] == "stale" and
                       stack.health()["last_sync"]["result"] == "error", timeout,
                       "the health path to say stale with result error", interval=0.1)
            h = stack.health()
            assert h["generation"] == good_gen, h
            assert re.search(FAULT_ERRORS[fault], h["last_sync"]["error"] or ""), h
            assert stack.installed() == good_body
            assert gw.get("/api/bad/x").status == 404
            if fault not in ("stall", "down"):
                # the next heartbeat tells the management side
                wait_until(lambda: any(hb["last_error"] and
                                       hb["config_generation"] == good_gen
                                       for hb in mgmt.heartbeats(since=t0)), 10,
                           "a heartbeat with last_error", interval=0.1)
        finally:
            mgmt.set_fault(None)
        stack.wait_ok(timeout=40)
        assert stack.health()["generation"] == good_gen
    assert load.count() > 20, load.count()
    assert not load.failures(), load.failures()[:10]
    assert stack.installed() == good_body
    st = stack.agent.status()
    assert st["result"] == "ok" and st["generation"] == good_gen, st


def test_change_after_faults_is_installed(stack):
    stack.wait_ok()
    gen, body = stack.publish_next()
    stack.gw.wait_served(gen, timeout=15)
    assert stack.installed() == body


# ---- 4. heartbeat -------------------------------------------------------------------

def test_heartbeat_has_generation_and_last_sync(stack):
    stack.wait_ok()
    t0 = time.monotonic()
    hbs = wait_until(lambda: stack.mgmt.heartbeats(since=t0), 10, "a heartbeat")
    hb = hbs[-1]
    st = stack.agent.status()
    assert hb["config_generation"] == stack.mgmt.generation, hb
    assert hb["config_etag"] == stack.mgmt.etag, hb
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", hb["last_sync"] or ""), hb
    assert hb["last_sync"] == st["last_success"] or hb["last_sync"] <= st["last_success"], (hb, st)
    assert hb["last_error"] is None, hb
    assert re.match(r"^[0-9a-f]{32}$", hb["instance"]), hb
    with open(os.path.join(stack.gw.conf_dir, "instance-id")) as f:
        assert f.read().strip() == hb["instance"]
    req = stack.mgmt.got("POST", "heartbeat", since=t0)[-1]
    assert req["headers"].get("Authorization") == "GatewayKey " + TOKEN
    assert req["headers"].get("User-Agent", "").startswith("hostgate-sync/")


# ---- 3. metrics ---------------------------------------------------------------------

def send_known_requests(gw, n):
    """n[0] x echo 200, n[1] x ops/get-item 200, n[2] x nf 404 (the backend's),
    n[3] x no API 404 (the gateway's)."""
    for i in range(n[0]):
        assert gw.get("/api/echo/m%d" % i).status == 200
    for i in range(n[1]):
        assert gw.get("/api/ops/items/%d" % i).status == 200
    for i in range(n[2]):
        assert gw.get("/api/nf/x%d" % i).status == 404
    for i in range(n[3]):
        assert gw.get("/api/no-such-api-%d" % i).status == 404


def diff(sent, got):
    keys = set(sent) | set(got)
    return {k: (sent.get(k, 0), got.get(k, 0)) for k in keys if sent.get(k, 0) != got.get(k, 0)}


def wait_metrics_match(stack, timeout=20):
    """Until the metrics documents the endpoint acknowledged sum exactly to
    every request the test sent since the gateway started; then two more
    flush cycles must not change that (nothing counted twice). (De-duplication
    on (instance, from), as the protocol says, is checked by
    test_metrics_windows_are_told_apart_by_instance_and_from.)"""
    gw, mgmt = stack.gw, stack.mgmt
    sent, unanswered = gw.counted()
    assert not unanswered, unanswered[:5]
    last = [None]

    def match():
        got, _ = mgmt.metric_totals(key="post")
        last[0] = diff(sent, got)
        over = {k: v for k, v in last[0].items() if v[1] > v[0]}
        assert not over, "more received than sent (sent, received): %r" % over
        return not last[0]
    try:
        wait_until(match, timeout, "the metrics to add up", interval=0.2)
    except AssertionError:
        raise AssertionError("metrics (sent, received) that differ: %r" % last[0])
    # a flush follows each heartbeat (none is sent when nothing is new)
    t0 = time.monotonic()
    wait_until(lambda: len(mgmt.got("POST", "heartbeat", since=t0)) >= 2, 10,
               "two more heartbeats")
    got, _ = mgmt.metric_totals(key="post")
    assert not diff(sent, got), diff(sent, got)
    return sent


def test_metrics_sum_exactly_to_the_requests(stack):
    gw = stack.gw
    stack.wait_ok()
    send_known_requests(gw, (37, 23, 11, 7))
    sent = wait_metrics_match(stack)
    # the test's own counts are the reference: check they hold what we sent
    assert sent[("echo", None, 200)] >= 37
    assert sent[("ops", "get-item", 200)] >= 23
    assert sent[("nf", None, 404)] >= 11
    assert sent[(None, None, 404)] >= 7


def test_metrics_backlog_is_delivered_after_rejections(stack):
    gw, mgmt = stack.gw, stack.mgmt
    stack.wait_ok()
    mgmt.metrics_status = 500
    try:
        t0 = time.monotonic()
        send_known_requests(gw, (19, 5, 3, 2))
        # several flushes rejected, each holding our requests
        wait_until(lambda: len([r for r in mgmt.got("POST", "metrics", since=t0)
                                if r["status"] == 500]) >= 3, 15, "three rejected flushes")
        send_known_requests(gw, (4, 0, 0, 1))
        wait_until(lambda: len([r for r in mgmt.got("POST", "metrics", since=t0)
                                if r["status"] == 500]) >= 5, 15, "five rejected flushes")
        sent, _ = gw.counted()
        got, _ = mgmt.metric_totals(key="post")
        assert got.get(("echo", None, 200), 0) < sent[("echo", None, 200)], \
            "metrics accepted while the endpoint rejected them"
    finally:
        mgmt.metrics_status = 204
    wait_metrics_match(stack, timeout=30)


def test_metrics_windows_are_told_apart_by_instance_and_from(stack):
    """The endpoint de-duplicates on (instance, from): two different windows
    must never share them, or the endpoint drops counts. Every document
    accepted since the stack started (through faults, outages, rejections)."""
    _, conflicts = stack.mgmt.metric_totals(key="from")
    assert not conflicts, "different windows with one (instance, from): %r" % (conflicts[:3],)
    # and de-duplicated as the protocol says, the sums still match
    sent, _ = stack.gw.counted()
    got, _ = stack.mgmt.metric_totals(key="from")
    assert not diff(sent, got), diff(sent, got)


def test_metrics_flushes_within_one_second_have_distinct_from(workroot, binary, nginx, keys):
    """Deterministic form of the above: `--once` runs (one flush each), a
    request before each, the first two within one wall-clock second: three
    different windows, which must not share (instance, from)."""
    ensure_agent_available()
    mgmt = MgmtEndpoint(*keys)
    doc = document(nginx, FIRST_GENERATION)
    doc["gateway"] = {"metrics": {"path": "/prom", "allow": ["127.0.0.1/32"]}}
    mgmt.publish(doc)
    gw = CountingGateway(workroot, "lighttpd-binpath", binary, tag="-once", classify=classify)

    def echo_recorded(n):
        # the app records a request after answering it: wait until the
        # store holds it (the metrics path shows the cumulative totals)
        def seen():
            text = gw.get("/api/prom").text()
            m = re.search(r'^hostgate_requests_total\{[^}]*api="echo"[^}]*status="200"[^}]*\} '
                          r'(\d+)', text, re.M)
            return m and int(m.group(1)) >= n
        wait_until(seen, 5, "the store to hold %d echo requests" % n, interval=0.01)
    share_with_www(gw.state_dir)
    agent = AgentDaemon(os.path.join(gw.dir, "agent"), mgmt.url, gw.config.path, gw.state_dir,
                        public_key_file=str(keys[0].pub))
    try:
        rc, out = agent.run_once()
        assert rc == 0, out
        gw.start()
        gw.wait_served(FIRST_GENERATION)
        rc, out = agent.run_once()      # ships what wait_served sent
        assert rc == 0, out
        echoes = 0
        for _ in range(5):
            # two flushes committed within one second (the second window is
            # then [S, S]), then a third at any time: it starts at S as well
            wait_until(lambda: time.time() % 1.0 < 0.1, 2, "a second boundary", interval=0.005)
            t0 = time.time()
            n0 = len(mgmt.metrics)
            for i in range(2):
                assert gw.get("/api/echo/once%d" % i).status == 200
                echoes += 1
                echo_recorded(echoes)
                rc, out = agent.run_once()
                assert rc == 0, out
            if int(time.time()) == int(t0):
                break
        else:
            pytest.skip("could not run two flushes within one second")
        assert gw.get("/api/echo/once2").status == 200
        echoes += 1
        echo_recorded(echoes)
        rc, out = agent.run_once()
        assert rc == 0, out
        docs = mgmt.metrics[n0:]
        assert len(docs) == 3, docs
        froms = [(d["instance"], d["from"]) for d in docs]
        assert len(set(froms)) == 3, "different windows with one (instance, from): %r" % docs
        # ...nor be byte-for-byte the same (then no de-duplication can tell
        # a new window from a resent one)
        assert len({json.dumps(d, sort_keys=True) for d in docs}) == 3, json.dumps(docs)
    finally:
        gw.stop()
        mgmt.close()


# ---- 5. a static HTTPS endpoint: nginx, a test CA, a .sig file ----------------------

@pytest.fixture(scope="module")
def tls_endpoint(workroot):
    d = os.path.join(workroot, "mgmt-https")
    os.makedirs(d, exist_ok=True)
    ep = StaticTlsEndpoint(d, free_port())
    yield ep
    ep.stop()


@pytest.mark.parametrize("setup", E2E_SETUPS)
def test_static_https_endpoint_with_sig_file(workroot, binary, nginx, keys, tls_endpoint, setup):
    ensure_agent_available()
    key = keys[0]
    ep = tls_endpoint
    first = document(nginx, 100 + E2E_SETUPS.index(setup) * 10)
    body = ep.publish(key, first)
    gw = CountingGateway(workroot, setup, binary, tag="-https", classify=classify)
    share_with_www(gw.state_dir)
    agent = AgentDaemon(os.path.join(gw.dir, "agent"), "https://127.0.0.1:%d" % ep.port,
                        gw.config.path, gw.state_dir, public_key_file=str(key.pub),
                        ca_file=os.path.join(ep.dir, "ca.pem"), report="false")
    LOGS.add(os.path.join(agent.dir, "agent.log"))
    try:
        agent.start()
        wait_until(lambda: agent.proc.check_alive() or
                   (os.path.exists(gw.config.path) and open(gw.config.path, "rb").read() == body),
                   15, "the agent to install the document served over https")
        gw.start()
        gw.wait_served(first["generation"], timeout=20)
        assert gw.get("/api/echo/x").status == 200
        assert gw.get("/api/static/x").status == 404
        # unchanged: conditional requests answered 304 by nginx
        wait_until(lambda: any(" 304 " in line for line in ep.log_lines()), 10,
                   "a 304 from nginx to If-None-Match")
        # a changed file (document, then .sig) is picked up
        second = document(nginx, first["generation"] + 1, ["static"])
        body2 = ep.publish(key, second)
        t0 = time.monotonic()
        try:
            wait_until(lambda: gw.get("/api/static/x").status == 200, 10,
                       "the changed file's new route", interval=0.05)
        except AssertionError as e:
            raise AssertionError("%s\nagent log:\n%s\nendpoint log:\n%s\nhealth: %r" % (
                e, agent.log_text(), "\n".join(ep.log_lines()[-20:]), gw.health().json()))
        took = time.monotonic() - t0
        gw.wait_served(second["generation"])
        with open(gw.config.path, "rb") as f:
            assert f.read() == body2
        st = agent.status()
        assert st["result"] == "ok" and st["generation"] == second["generation"], st
        h = gw.health().json()
        assert h["status"] == "ok", h
        assert took <= 6, "the changed file took %.2fs" % took
        # the token is checked by the endpoint: nothing was refused
        assert not [line for line in ep.log_lines() if " 403 " in line], ep.log_lines()
    finally:
        agent.stop()
        gw.stop()
