"""The document hostgate-sync made from the fake APIM (fake_arm.py; a real
APIM cannot run here) served by a real lighttpd against httpbin: the API
policy edited "in APIM" reaches the upstream as a header, called with the
key APIM's listSecrets handed out (and, once regenerated in APIM, only the
new one works); the API whose policy cannot be carried over answers 404 and
never reaches the upstream, and the health path's details name it. Root only (the gateway runs as www-data), like
tests/import."""
import json
import os
import pathlib
import shutil
import sys
import tempfile

import pytest

from fake_arm import FakeArm, operation, product, subscription
from sync_helpers import have
from test_apim_arm import BAD_POLICY, GOOD_POLICY, apim_agent, open_api, run

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from harness import wait_until  # noqa: E402
from servers import Gateway, Httpbin  # noqa: E402

FCGI = os.environ.get("HOSTGATE_FCGI", str(ROOT / "build" / "hostgate-fcgi"))

pytestmark = pytest.mark.skipif(not have("lighttpd") or not have("openssl") or
                                os.geteuid() != 0,
                                reason="needs lighttpd and openssl, run as root")


def test_the_agents_document_served_through_lighttpd(make_agent, tmp_path):
    # pytest's directories are 0700: the gateway's www-data needs its own
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hostgate-apim-"))
    tmp.chmod(0o755)
    httpbin = Httpbin(str(tmp))
    arm = FakeArm(tmp_path)
    gw = None
    try:
        echo, xml = open_api("echo-api", "echo"), open_api("xml-api", "xml")
        echo["properties"]["subscriptionRequired"] = True
        arm.products["starter"] = (product("starter"), ["echo-api"])
        arm.subscriptions["acme"] = (subscription("acme", "/products/starter"),
                                     ["acme-key-1", "acme-key-2"])
        echo["properties"]["serviceUrl"] = httpbin.url("/anything")
        xml["properties"]["serviceUrl"] = httpbin.url("/anything")
        arm.gateway_apis["gw1"] = [echo, xml]
        arm.operations["echo-api"] = [operation("echo-api", "get-item", "GET", "/items/{id}")]
        arm.operations["xml-api"] = [operation("xml-api", "get-doc", "GET", "/doc")]
        arm.policies["/apis/echo-api/policies/policy"] = GOOD_POLICY
        arm.policies["/apis/xml-api/operations/get-doc/policies/policy"] = BAD_POLICY
        a = apim_agent(make_agent, arm, tmp_path)
        rc, out = run(a)
        assert rc == 1 and "installed without xml-api" in out, out
        doc = json.loads(a.installed())
        # the health path's details (only to metrics.allow) show the agent's
        # sync-status.json, read beside the configuration: the agent's copy
        doc["gateway"] = {"metrics": {"path": "/prom", "allow": ["127.0.0.1/32"]}}
        gw = Gateway(str(tmp), "lighttpd-socket", FCGI)
        gw.start()
        gw.apply(doc)
        status = pathlib.Path(gw.conf_dir) / "sync-status.json"
        shutil.copy(a.config.parent / "sync-status.json", status)
        os.chown(status, 0, os.stat(gw.conf_dir).st_gid)
        status.chmod(0o640)
        h = gw.health()
        assert h.status == 200, h
        last = h.json()["last_sync"]
        assert last["result"] == "error" and "installed without xml-api" in last["error"], last
        key = [("Ocp-Apim-Subscription-Key", "acme-key-1")]
        assert gw.get(gw.mount + "/echo/items/42?mark=nokey").status == 401
        r = gw.get(gw.mount + "/echo/items/42?mark=apim", headers=key)
        assert r.status == 200, r
        e = r.json()
        assert e["url"].endswith("/anything/items/42?mark=apim")
        assert e["headers"]["X-From-Apim"] == "echo"
        assert "Ocp-Apim-Subscription-Key" not in e["headers"]
        assert gw.get(gw.mount + "/echo/other", headers=key).status == 404
        assert gw.get(gw.mount + "/xml/doc?mark=xml").status == 404
        # the primary key regenerated in APIM: the next sync, and only the new one works
        arm.subscriptions["acme"][1][0] = "acme-key-3"
        rc, out = run(a)
        assert rc == 1 and "installed without xml-api" in out, out
        gw.apply(json.loads(a.installed()))
        assert gw.get(gw.mount + "/echo/items/1?mark=old", headers=key).status == 401
        new = [("Ocp-Apim-Subscription-Key", "acme-key-3")]
        assert gw.get(gw.mount + "/echo/items/1?mark=new", headers=new).status == 200
        wait_until(lambda: any("mark=new" in x for x in httpbin.log_lines()), 10,
                   "httpbin to log the served call")
        lines = httpbin.log_lines()
        assert any("mark=apim" in x for x in lines)
        assert not any(m in x for x in lines for m in ("mark=xml", "mark=old", "mark=nokey"))
    finally:
        if gw:
            gw.stop()
        httpbin.stop()
        arm.close()
        shutil.rmtree(tmp, ignore_errors=True)
