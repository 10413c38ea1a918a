"""hostgate-manage under Apache, mod_fcgid and mod_proxy_fcgi in front of
--listen, set up as docs/managing.md says (CGIPassAuth On, or Apache never
passes Authorization on; HOSTGATE_MANAGE_MOUNT for mod_proxy_fcgi): the
admin API, a real agent syncing a signed document, its heartbeat, and a
large metrics document."""
import json

import pytest
import requests

from manage_helpers import Agent, Manage


@pytest.fixture(scope="module", params=["apache-fcgid", "apache-proxy-fcgi"])
def apache(workroot, request):
    m = Manage(workroot, mode=request.param, name="manage-" + request.param)
    yield m
    m.stop()


def test_apache(apache, workroot):
    a = apache.admin
    assert a.get("/apis").status_code == 200
    r = requests.get(apache.url + "/admin/v1/apis", timeout=10)
    assert r.status_code == 401 and r.json()["statusCode"] == 401
    a.ok("PUT", "/backends/ap-b", {"url": "http://127.0.0.1:9/ap"})
    a.ok("PUT", "/apis/ap-api", {"path": "ap", "backend": "ap-b"})
    r = a.put("/apis/ap-bad", {"path": "ap2", "backend": "nope"})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "backend"
    a.ok("PUT", "/gateways/ap-gw", {"apis": ["ap-api"]})
    tok = a.ok("POST", "/gateways/ap-gw/tokens", {})["token"]
    agent = Agent(apache.dir + "/agent", apache.url, "ap-gw", tok, public_key=apache.pub)
    rc, out = agent.once()
    assert rc == 0, out
    assert [x["id"] for x in agent.installed()["apis"]] == ["ap-api"]
    assert a.get("/gateways/ap-gw").json()["status"] == "online"
    # a large metrics document (4 MiB) goes through Apache to the app
    series = [{"api": "ap-api", "operation": "op%d" % i, "subscription": None, "status": 200,
               "count": 1, "errors": 0, "bytes_in": 0, "bytes_out": 10}
              for i in range(40000)]
    body = json.dumps({"instance": "big", "from": "2026-12-02T09:00:00Z", "series": series})
    assert len(body) > 4 << 20
    r = requests.post(apache.url + "/gateways/ap-gw/metrics", data=body, timeout=60,
                      headers={"Authorization": "GatewayKey " + tok})
    assert r.status_code == 204, r.text
    m = a.get("/metrics?gateway=ap-gw&from=2026-12-02T09:00:00Z&to=2026-12-02T09:01:00Z").json()
    assert m["series"][0]["count"] == 40000
