"""hostgate-sync `source = azure-apim` against a fake ARM and Azure AD token
endpoint (fake_arm.py: HTTPS on loopback with a test CA; a real APIM service
cannot run here). What is built so far (docs/apim-sync.md, "Status"): the
client-credentials token, and reading the gateway's assigned APIs with
paging, throttling and token renewal; conversion and install are not, so a
good read ends with exit 2 saying so and nothing installed."""
import re

import pytest

from fake_arm import (CLIENT_ID, CLIENT_SECRET, SERVICE, TENANT, FakeArm, gateway_api,
                      operation)
from sync_helpers import have

pytestmark = pytest.mark.skipif(not have("openssl"), reason="needs the openssl CLI")


@pytest.fixture
def arm(tmp_path_factory):
    f = FakeArm(tmp_path_factory.mktemp("arm"))
    f.gateway_apis["gw1"] = [gateway_api("echo-api", "echo", "http://127.0.0.1:9/"),
                             gateway_api("orders-api", "orders", "http://127.0.0.1:9/")]
    yield f
    f.close()


def apim_agent(make_agent, arm, tmp_path, **over):
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    secret.chmod(0o600)
    a = make_agent("https://unused.invalid")
    a.conf = {"source": "azure-apim", "apim_service": SERVICE, "apim_gateway": "gw1",
              "azure_tenant": TENANT, "azure_client_id": CLIENT_ID,
              "azure_client_secret_file": str(secret), "arm_endpoint": arm.url,
              "azure_authority": arm.url, "ca_file": str(arm.ca),
              "config_path": str(a.config), "state_dir": str(a.state)}
    a.conf.update(over)
    a.write_conf()
    return a


def run(a):
    rc, out = a.run()
    assert CLIENT_SECRET not in out, "the client secret leaked"
    assert "eyJ0eXAi" not in out, "an access token leaked"
    return rc, out


def assigned(out):
    """(APIs assigned, ARM reads, token requests) from the agent's summary."""
    m = re.search(r"(\d+) APIs assigned, [a-z ]+ \((\d+) ARM reads, (\d+) token requests\)",
                  out)
    assert m, out
    return tuple(int(x) for x in m.groups())


def test_token_by_client_credentials_then_the_gateway_apis(make_agent, arm, tmp_path):
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 2, out          # read, but not converted yet
    # the gateway's list, then per API its operations and its policy, then the global policy
    assert assigned(out) == (2, 1 + 2 * 2 + 1, 1)
    assert not a.config.exists(), "nothing may be installed before conversion exists"
    (tok,) = arm.token_requests()
    assert tok["path"] == "/%s/oauth2/v2.0/token" % TENANT
    assert tok["form"] == {"grant_type": "client_credentials", "client_id": CLIENT_ID,
                           "client_secret": CLIENT_SECRET, "scope": arm.url + "/.default"}
    assert tok["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    read = arm.reads()[0]
    assert read["path"] == SERVICE + "/gateways/gw1/apis?api-version=2022-08-01"
    assert read["headers"]["Authorization"].startswith("Bearer eyJ0eXAi")
    assert CLIENT_SECRET not in read["path"] and CLIENT_SECRET not in str(read["headers"])


def test_next_link_paging(make_agent, arm, tmp_path):
    arm.gateway_apis["gw1"] = [gateway_api("api-%d" % i, "p%d" % i, "http://127.0.0.1:9/")
                               for i in range(5)]
    arm.page_size = 2
    rc, out = run(apim_agent(make_agent, arm, tmp_path))
    assert rc == 2, out
    assert assigned(out) == (5, 3 + 5 * 2 + 1, 1)
    assert [r["path"].split("?")[1] for r in arm.reads()[:3]] == [
        "api-version=2022-08-01", "api-version=2022-08-01&$skip=2",
        "api-version=2022-08-01&$skip=4"]


def test_throttled_read_waits_retry_after_and_retries(make_agent, arm, tmp_path):
    arm.throttle = 2
    arm.retry_after = "1"
    rc, out = run(apim_agent(make_agent, arm, tmp_path))
    assert rc == 2, out
    assert assigned(out) == (2, 2 + 6, 1)


def test_throttled_past_the_retries_fails_with_nothing_installed(make_agent, arm, tmp_path):
    arm.throttle = 100
    arm.retry_after = "0"
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 1, out
    assert "HTTP 429" in out
    assert len(arm.reads()) == 4        # one read and 3 retries, never more
    assert not a.config.exists()


def test_expired_token_is_renewed_once(make_agent, arm, tmp_path):
    arm.gateway_apis["gw1"] = [gateway_api("api-%d" % i, "p%d" % i, "http://127.0.0.1:9/")
                               for i in range(3)]
    arm.page_size = 1
    arm.expire_at_read = 2      # the token dies between page 1 and page 2
    rc, out = run(apim_agent(make_agent, arm, tmp_path))
    assert rc == 2, out
    n_apis, reads, tokens = assigned(out)
    assert (n_apis, tokens) == (3, 2)
    assert reads == 3 + 3 * 2 + 1 + 1     # 3 pages, per API 2, global, the refused 401


def test_client_secret_refused_is_exit_1_naming_the_error(make_agent, arm, tmp_path):
    arm.refuse_client = True
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 1, out
    assert "invalid_client" in out and CLIENT_ID in out
    assert arm.reads() == []


def test_unknown_ca_fails(make_agent, arm, tmp_path):
    rc, out = run(apim_agent(make_agent, arm, tmp_path, ca_file=None))
    assert rc == 1, out
    assert "certificate" in out.lower()
    assert arm.requests == []


def test_next_link_off_the_arm_endpoint_is_refused(make_agent, arm, tmp_path):
    arm.gateway_apis["gw1"] = [gateway_api("api-%d" % i, "p%d" % i, "http://127.0.0.1:9/")
                               for i in range(2)]
    arm.page_size = 1
    orig = arm.page

    def evil_page(h, path, q, items):
        body = {"value": items[:1], "count": 2,
                "nextLink": "https://evil.example/x?api-version=2022-08-01"}
        return h.answer(200, body)
    arm.page = evil_page
    try:
        rc, out = run(apim_agent(make_agent, arm, tmp_path))
    finally:
        arm.page = orig
    assert rc == 1, out
    assert "nextLink that is not on" in out


GOOD_POLICY = """<policies>
  <inbound>
    <base />
    <set-header name="X-From-Apim" exists-action="override"><value>echo</value></set-header>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"""

BAD_POLICY = """<policies>
  <inbound><base /></inbound>
  <backend><base /></backend>
  <outbound>
    <base />
    <xml-to-json kind="direct" apply="always" consider-accept-header="false" />
  </outbound>
  <on-error><base /></on-error>
</policies>"""

GLOBAL_POLICY = """<policies>
  <inbound></inbound>
  <backend><forward-request /></backend>
  <outbound></outbound>
  <on-error></on-error>
</policies>"""


def test_apis_converted_with_the_importers_code_and_refusals_named(make_agent, arm,
                                                                    tmp_path):
    """The shared converter (import/convert.h) on what ARM answered: an API
    whose policy cannot be carried over exactly is named with its reason, the
    other converted; still nothing installed (install is not built)."""
    arm.gateway_apis["gw1"] = [
        dict(gateway_api("echo-api", "echo", "http://127.0.0.1:9/"),
             properties=dict(gateway_api("echo-api", "echo", "http://127.0.0.1:9/")
                             ["properties"], subscriptionRequired=False)),
        dict(gateway_api("xml-api", "xml", "http://127.0.0.1:9/"),
             properties=dict(gateway_api("xml-api", "xml", "http://127.0.0.1:9/")
                             ["properties"], subscriptionRequired=False))]
    arm.operations["echo-api"] = [operation("echo-api", "get-anything", "GET", "/anything")]
    arm.operations["xml-api"] = [operation("xml-api", "get-doc", "GET", "/doc")]
    arm.policies["/apis/echo-api/policies/policy"] = GOOD_POLICY
    arm.policies["/apis/xml-api/operations/get-doc/policies/policy"] = BAD_POLICY
    arm.policies["/policies/policy"] = GLOBAL_POLICY
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 2, out
    assert "api echo-api: imported" in out, out
    assert re.search(r"apis/xml-api/operations/get-doc/policies/policy:6: "
                     r"[^\n]*xml-to-json", out), out
    assert "api xml-api: left-out, first reason: " in out
    assert "converted (" in out
    # gateway list, 2 × (operations + 1 operation policy + API policy), global
    assert assigned(out) == (2, 1 + 2 * 3 + 1, 1)
    assert not a.config.exists()
