"""The whole loop through real parts: the admin API defines an API, a product
and a subscription and assigns the API to a gateway; a real hostgate-sync
installs that gateway's signed document into a real hostgate-fcgi under
lighttpd; a call with the subscription key reaches httpbin; the agent's
heartbeat and metrics come back and are read from the admin API. And the
gateway face refuses what it must (management-protocol.md)."""
import json

import pytest
import requests

from harness import wait_until
from manage_helpers import Agent

GW = "loop-gw"


@pytest.fixture(scope="module")
def loop(admin, manage, httpbin, gateway, workroot):
    """The objects of the loop, the gateway's token and its agent."""
    admin.ok("PUT", "/named-values/loop-tag", {"value": "from-manage", "secret": False})
    admin.ok("PUT", "/named-values/loop-secret", {"value": "s3cr3t-loop", "secret": True})
    admin.ok("PUT", "/backends/loop-httpbin", {
        "url": httpbin.url("/anything/loop"),
        "credentials": {"header": {"X-Backend-Secret": "{{loop-secret}}"}}})
    admin.ok("PUT", "/apis/loop", {
        "path": "loop", "backend": "loop-httpbin",
        "operations": [{"id": "get", "method": "GET", "url_template": "/{*rest}"}],
        "policies": {"inbound": [{"base": {}}, {"set-header": {
            "name": "X-Tag", "value": "{{loop-tag}}", "exists-action": "override"}}]}})
    # what another gateway serves must not reach this one
    admin.ok("PUT", "/backends/loop-other", {"url": httpbin.url("/anything/other")})
    admin.ok("PUT", "/apis/loop-other", {"path": "other", "backend": "loop-other"})
    admin.ok("PUT", "/products/loop-product", {"apis": ["loop", "loop-other"]})
    keys = admin.ok("POST", "/subscriptions", {"id": "loop-sub", "scope": "product:loop-product"})
    admin.ok("POST", "/subscriptions", {"id": "loop-other-sub", "scope": "api:loop-other"})
    admin.ok("PUT", "/gateways/" + GW, {"apis": ["loop"],
                                         "gateway": {"max_request_body_bytes": 1048576}})
    admin.ok("PUT", "/gateways/loop-gw2", {"apis": ["loop-other"]})
    token = admin.ok("POST", "/gateways/%s/tokens" % GW)["token"]
    token2 = admin.ok("POST", "/gateways/loop-gw2/tokens")["token"]
    agent = Agent(workroot + "/agent-loop", manage.url, GW, token,
                  config_path=gateway.config.path, state_dir=gateway.state_dir,
                  public_key=manage.pub)
    return {"key": keys["primary_key"], "secondary": keys["secondary_key"], "token": token,
            "token2": token2, "agent": agent}


def wait_served(gateway, gen):
    """Every process of the gateway serves generation gen: three bursts of
    concurrent health requests in a row see only it (servers.py)."""
    clean = [0]

    def three_clean_bursts():
        clean[0] = clean[0] + 1 if gateway.burst_generations() == {gen} else 0
        return clean[0] >= 3
    wait_until(three_clean_bursts, 20, "every gateway process to serve generation %d" % gen,
               interval=0.05)


def sync(admin, gateway, loop):
    rc, out = loop["agent"].once()
    assert rc == 0, out
    gen = admin.generation()
    assert loop["agent"].installed()["generation"] == gen
    wait_served(gateway, gen)


def call(gateway, key, path="/api/loop/hello"):
    return requests.get("http://127.0.0.1:%d%s" % (gateway.port, path),
                        headers={"Ocp-Apim-Subscription-Key": key}, timeout=15)


def test_agent_syncs_and_gateway_serves(admin, manage, gateway, loop):
    rc, out = loop["agent"].once()
    assert rc == 0, out
    doc = loop["agent"].installed()
    assert doc["generation"] == admin.generation()
    # only what this gateway's API needs
    assert [a["id"] for a in doc["apis"]] == ["loop"]
    assert set(doc["backends"]) == {"loop-httpbin"}
    assert set(doc["named_values"]) == {"loop-tag", "loop-secret"}
    assert [p["apis"] for p in doc["products"]] == [["loop"]]
    assert [s["id"] for s in doc["subscriptions"]] == ["loop-sub"]
    assert doc["gateway"] == {"max_request_body_bytes": 1048576}
    # a call with the key goes through; httpbin echoes what it received
    wait_served(gateway, doc["generation"])
    r = call(gateway, loop["key"], "/api/loop/hello?x=1")
    echo = r.json()
    assert echo["url"].endswith("/anything/loop/hello?x=1")
    assert echo["headers"]["X-Tag"] == "from-manage"
    assert echo["headers"]["X-Backend-Secret"] == "s3cr3t-loop"
    assert "Ocp-Apim-Subscription-Key" not in echo["headers"]
    assert call(gateway, "wrong-key").status_code == 401
    assert call(gateway, loop["secondary"]).status_code == 200


def test_admin_change_reaches_gateway(admin, gateway, loop):
    admin.ok("PATCH", "/subscriptions/loop-sub", {"state": "suspended"})
    sync(admin, gateway, loop)
    assert call(gateway, loop["key"]).status_code == 401
    admin.ok("PATCH", "/subscriptions/loop-sub", {"state": "active"})
    sync(admin, gateway, loop)
    assert call(gateway, loop["key"]).status_code == 200


def test_heartbeat_and_metrics_come_back(admin, gateway, loop):
    for i in range(5):
        assert call(gateway, loop["key"], "/api/loop/m%d" % i).status_code == 200
    rc, out = loop["agent"].once()     # sync, heartbeat, metrics flush
    assert rc == 0, out
    g = admin.get("/gateways/" + GW).json()
    assert g["status"] == "online", g
    assert g["last_heartbeat"]["config_generation"] == admin.generation()
    assert g["last_heartbeat"]["received"]
    # another gateway's state is its own
    assert admin.get("/gateways/loop-gw2").json()["status"] == "never"
    m = admin.get("/metrics?gateway=%s&api=loop&group_by=api,subscription,status" % GW).json()
    ok = [s for s in m["series"] if s["status"] == 200 and s["subscription"] == "loop-sub"]
    assert ok and ok[0]["count"] >= 5, m
    assert ok[0]["latency_ms"]["p95"] > 0
    total = admin.get("/metrics?gateway=" + GW).json()["series"][0]["count"]
    assert total >= 5


def test_a_change_makes_a_stale_gateway(admin, loop):
    admin.ok("PUT", "/named-values/loop-tag", {"value": "changed", "secret": False})
    assert admin.get("/gateways/" + GW).json()["status"] == "stale"
    rc, out = loop["agent"].once()
    assert rc == 0, out
    assert admin.get("/gateways/" + GW).json()["status"] == "online"


def face(manage, path, token, method="GET", **kw):
    return requests.request(method, manage.url + path, timeout=15,
                            headers=dict({"Authorization": "GatewayKey " + token},
                                         **kw.pop("headers", {})), **kw)


def test_gateway_face_etag_signature_and_tokens(admin, manage, loop):
    r = face(manage, "/gateways/%s/configuration" % GW, loop["token"])
    assert r.status_code == 200
    etag = r.headers["ETag"]
    assert r.headers["Hostgate-Signature"].startswith("ed25519=")
    assert json.loads(r.content)["generation"] == admin.generation()
    assert admin.get("/gateways/%s/configuration" % GW).content == r.content
    r = face(manage, "/gateways/%s/configuration" % GW, loop["token"],
             headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    # one gateway's token for another's document: 403; wrong: 401
    assert face(manage, "/gateways/loop-gw2/configuration", loop["token"]).status_code == 403
    assert face(manage, "/gateways/%s/configuration" % GW, loop["token2"]).status_code == 403
    assert face(manage, "/gateways/%s/configuration" % GW, "wrong").status_code == 401
    assert face(manage, "/gateways/%s/heartbeat" % GW, loop["token2"], "POST",
                data="{}").status_code == 403
    r = requests.get(manage.url + "/gateways/%s/configuration" % GW, timeout=10)
    assert r.status_code == 401
    assert face(manage, "/gateways/x'or'1/configuration", loop["token"]).status_code == 404
    # the admin token is not a gateway token, nor the reverse
    assert face(manage, "/gateways/%s/configuration" % GW, manage.admin_token).status_code == 401
    r = requests.get(manage.url + "/admin/v1/apis", timeout=10,
                     headers={"Authorization": "Bearer " + loop["token"]})
    assert r.status_code == 401
    # a token with a far expiry works
    exp = admin.ok("POST", "/gateways/%s/tokens" % GW,
                   {"expires": "2099-01-01T00:00:00Z"})["token"]
    assert face(manage, "/gateways/%s/configuration" % GW, exp).status_code == 200


def test_deleted_gateway_is_forgotten(admin, manage, loop):
    admin.ok("PUT", "/gateways/loop-gone", {"apis": ["loop"]})
    tok = admin.ok("POST", "/gateways/loop-gone/tokens")["token"]
    r = face(manage, "/gateways/loop-gone/heartbeat", tok, "POST",
             data=json.dumps({"instance": "x", "config_generation": 1}))
    assert r.status_code == 204
    assert admin.get("/gateways/loop-gone").json()["status"] != "never"
    assert admin.delete("/gateways/loop-gone").status_code == 204
    # its tokens went with it; made again, it starts afresh
    assert face(manage, "/gateways/loop-gone/configuration", tok).status_code == 401
    admin.ok("PUT", "/gateways/loop-gone", {"apis": ["loop"]})
    assert admin.get("/gateways/loop-gone").json()["status"] == "never"
    assert face(manage, "/gateways/loop-gone/configuration", tok).status_code == 401
    assert admin.delete("/gateways/loop-gone").status_code == 204


def test_metrics_deduplicated_and_hostile_bodies(admin, manage, loop):
    doc = {"instance": "dedupe-1", "from": "2026-12-02T10:00:00Z", "to": "2026-12-02T10:01:00Z",
           "dropped": 0, "series": [{
               "api": "loop", "operation": "get", "subscription": None, "status": 503,
               "count": 7, "errors": 7, "bytes_in": 0, "bytes_out": 70,
               "latency_ms": {"le": [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
                              "counts": [0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0]}}]}
    path = "/gateways/%s/metrics" % GW
    q = "/metrics?gateway=%s&api=loop&from=2026-12-02T10:00:00Z&to=2026-12-02T10:02:00Z" \
        "&group_by=status,minute" % GW
    for _ in range(2):      # the same window twice: acknowledged, counted once
        r = face(manage, path, loop["token"], "POST", data=json.dumps(doc))
        assert r.status_code == 204, r.text
    s = admin.get(q).json()["series"]
    assert s == [{"status": 503, "minute": "2026-12-02T10:00:00Z", "count": 7, "errors": 7,
                  "bytes_in": 0, "bytes_out": 70,
                  "latency_ms": {"p50": 1000, "p95": 1000, "p99": 1000}}], s
    # hostile: nothing is counted
    bad = [b"{", b"[]", json.dumps(dict(doc, instance="h", series=[{"status": "x"}])).encode(),
           json.dumps(dict(doc, instance="h2", **{"from": "noon"})).encode(),
           json.dumps(dict(doc, instance="h3", series=[dict(doc["series"][0], count=-1)])).encode(),
           b'{"instance": "h4", "from": "2026-12-02T10:00:00Z", "series": [' +
           b'{"status": 200, "count": 1, "errors": 0, "bytes_in": 0, "bytes_out": 0}, 5]}']
    for b in bad:
        r = face(manage, path, loop["token"], "POST", data=b)
        assert r.status_code == 400, (b[:40], r.status_code, r.text)
    assert admin.get(q).json()["series"] == s
    r = face(manage, "/gateways/%s/heartbeat" % GW, loop["token"], "POST",
             data="x" * (70 * 1024))
    assert r.status_code == 413


# ---- the dashboard, in a real browser ------------------------------------

@pytest.fixture(scope="module")
def browser(workroot):
    from cdp import Browser
    import os
    profile = os.path.join(workroot, "chromium-profile")
    os.makedirs(profile, exist_ok=True)
    b = Browser(profile, os.path.join(workroot, "chromium.log"))
    yield b
    b.close()


def test_dashboard_in_chromium(admin, manage, gateway, loop, browser, workroot):
    ui = manage.url + "/ui/"
    # not logged in: the login page
    browser.navigate(ui)
    assert browser.eval("location.pathname") == "/manage/ui/login"
    # a wrong token is refused
    browser.submit_form("document.querySelector('input[name=token]').value = 'wrong';"
                        "document.forms[0].submit()")
    assert "not a valid admin token" in browser.eval("document.body.innerText")
    browser.submit_form("document.querySelector('input[name=token]').value = %s;"
                        "document.forms[0].submit()" % json.dumps(manage.admin_token))
    assert browser.eval("location.pathname") == "/manage/ui/"
    c = [c for c in browser.cookies() if c["name"] == "hg_session"]
    assert c and c[0]["httpOnly"] and c[0]["sameSite"] == "Strict", c
    assert c[0]["path"] == "/manage/ui"
    row = "document.querySelector('tr[data-gateway=\"loop-gw2\"]').dataset.status"
    assert browser.eval(row) == "never"
    # an agent's heartbeat turns the gateway online
    agent2 = Agent(workroot + "/agent-loop2", manage.url, "loop-gw2", loop["token2"],
                   public_key=manage.pub)
    rc, out = agent2.once()
    assert rc == 0, out
    browser.navigate(ui)
    assert browser.eval(row) == "online"
    assert "loop-gw2" in browser.eval(
        "document.querySelector('tr[data-api=\"loop-other\"]').innerText")
    # the chart shows the requests just made
    fig = "document.querySelector('figure[data-api=\"loop\"]')"
    before = browser.eval("%s ? Number(%s.dataset.requests) : 0" % (fig, fig))
    for i in range(7):
        assert call(gateway, loop["key"], "/api/loop/chart%d" % i).status_code == 200
    rc, out = loop["agent"].once()
    assert rc == 0, out
    browser.navigate(ui)
    assert browser.eval("Number(%s.dataset.requests)" % fig) == before + 7
    assert browser.eval("%s.querySelectorAll('svg rect.req').length" % fig) >= 1
    assert browser.eval("document.querySelector('figure[data-gateway=\"%s\"]') !== null" % GW)
    # the day view draws too
    browser.navigate(ui + "?range=day")
    assert browser.eval("Number(%s.dataset.requests)" % fig) >= before + 7
    # logging out needs the form's CSRF token; a forged POST is refused
    r = requests.post(manage.url + "/ui/logout", data={"csrf": "forged"}, timeout=10,
                      cookies={"hg_session": c[0]["value"]})
    assert r.status_code == 403
    r = requests.post(manage.url + "/ui/logout", data={"csrf": "x"}, timeout=10,
                      cookies={"hg_session": c[0]["value"]},
                      headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    browser.submit_form("document.querySelector('form[action=logout]').submit()")
    assert browser.eval("location.pathname") == "/manage/ui/login"
    browser.navigate(ui)
    assert browser.eval("location.pathname") == "/manage/ui/login"


def test_dashboard_escapes_everything(admin, manage):
    """A value an operator wrote comes out as text, never as markup."""
    evil = "<script>alert(1)</script>"
    admin.ok("PUT", "/backends/ui-evil", {"url": "http://127.0.0.1:9/", "x-note": evil})
    admin.ok("PUT", "/apis/ui-evil", {"path": "ui-evil", "backend": "ui-evil",
                                       "x-note": evil})
    s = requests.Session()
    r = s.post(manage.url + "/ui/login", data={"token": manage.admin_token}, timeout=10,
               allow_redirects=False)
    assert r.status_code == 303
    assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
    page = s.get(manage.url + "/ui/", timeout=10)
    assert page.status_code == 200
    assert "<script" not in page.text
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    # a heartbeat body is the agent's word: escaped too
    tok = admin.ok("POST", "/gateways/loop-gw2/tokens")["token"]
    r = requests.post(manage.url + "/gateways/loop-gw2/heartbeat", timeout=10,
                      headers={"Authorization": "GatewayKey " + tok},
                      data=json.dumps({"instance": "i", "hostname": evil, "version": evil,
                                       "config_generation": 1, "last_error": evil}))
    assert r.status_code == 204
    page = s.get(manage.url + "/ui/", timeout=10)
    assert "<script" not in page.text and "&lt;script&gt;" in page.text
    admin.ok("DELETE", "/apis/ui-evil")
    admin.ok("DELETE", "/backends/ui-evil")
