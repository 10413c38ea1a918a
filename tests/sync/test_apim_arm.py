"""hostgate-sync `source = azure-apim` against a fake ARM and Azure AD token
endpoint (fake_arm.py: HTTPS on loopback with a test CA; a real APIM service
cannot run here — answers shaped as Azure's published 2022-08-01 examples).
What is built so far (docs/azure-apim.md, "Status"): the client-credentials
token; reading the gateway's assigned APIs, their operations and policies and
the global policy, with paging, throttling and token renewal; conversion with
the importer's library; install with generations; products, subscriptions
with their keys (listSecrets only for those whose etag changed), named
values (plain, secret, Key Vault); pacing (arm_reads_per_s)."""
import hashlib
import json
import re

import pytest

from fake_arm import (CLIENT_ID, CLIENT_SECRET, SERVICE, TENANT, FakeArm, gateway_api,
                      named_value, operation, product, subscription)
from sync_helpers import have

pytestmark = pytest.mark.skipif(not have("openssl"), reason="needs the openssl CLI")


def open_api(name, path):
    """An API that needs no subscription (no product or key to set up)."""
    api = gateway_api(name, path, "http://127.0.0.1:9/")
    api["properties"]["subscriptionRequired"] = False
    return api


@pytest.fixture
def arm(tmp_path_factory):
    f = FakeArm(tmp_path_factory.mktemp("arm"))
    f.gateway_apis["gw1"] = [open_api("echo-api", "echo"), open_api("orders-api", "orders")]
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
              "config_path": str(a.config), "state_dir": str(a.state),
              # unpaced unless a test says (test_reads_are_paced)
              "arm_reads_per_s": "0"}
    a.conf = {k: v for k, v in dict(a.conf, **over).items() if v is not None}
    a.write_conf()
    return a


def run(a):
    rc, out = a.run()
    assert CLIENT_SECRET not in out, "the client secret leaked"
    assert "eyJ0eXAi" not in out, "an access token leaked"
    return rc, out


def installed(a):
    return json.loads(a.installed())


def api_ids(a):
    return [x["id"] for x in installed(a)["apis"]]


# per API: its operations, each operation's policy (one each here), its policy;
# then the global policy and the lists of products, subscriptions, fragments,
# named values, backends and version sets
def reads_for(n_pages, n_apis, n_ops=1):
    return n_pages + n_apis * (2 + n_ops) + 7


def test_token_by_client_credentials_then_install(make_agent, arm, tmp_path):
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 0, out
    assert out == "", "--once is silent on success"
    assert installed(a)["generation"] == 1
    assert api_ids(a) == ["echo-api", "orders-api"]
    assert a.status()["result"] == "ok"
    (tok,) = arm.token_requests()
    assert tok["path"] == "/%s/oauth2/v2.0/token" % TENANT
    assert tok["form"] == {"grant_type": "client_credentials", "client_id": CLIENT_ID,
                           "client_secret": CLIENT_SECRET, "scope": arm.url + "/.default"}
    assert tok["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    reads = arm.reads()
    assert len(reads) == reads_for(1, 2)
    assert reads[0]["path"] == SERVICE + "/gateways/gw1/apis?api-version=2022-08-01"
    assert all(r["headers"]["Authorization"].startswith("Bearer eyJ0eXAi") for r in reads)
    assert all(CLIENT_SECRET not in r["path"] + str(r["headers"]) for r in reads)


def test_changes_in_apim_reach_the_gateway_and_nothing_else_does(make_agent, arm, tmp_path):
    a = apim_agent(make_agent, arm, tmp_path)
    assert run(a)[0] == 0
    first = a.installed()
    # nothing changed in APIM: nothing installed, the generation kept
    assert run(a) == (0, "")
    assert a.installed() == first
    # a policy edited in the portal
    arm.policies["/apis/echo-api/policies/policy"] = GOOD_POLICY
    assert run(a)[0] == 0
    doc = installed(a)
    assert doc["generation"] == 2
    echo = [x for x in doc["apis"] if x["id"] == "echo-api"][0]
    assert "X-From-Apim" in json.dumps(echo["policies"])
    # an API assigned to the gateway
    arm.gateway_apis["gw1"].append(open_api("new-api", "new"))
    assert run(a)[0] == 0
    assert installed(a)["generation"] == 3
    assert api_ids(a) == ["echo-api", "orders-api", "new-api"]


def test_one_entity_failing_mid_sync_keeps_the_installed_configuration(make_agent, arm,
                                                                        tmp_path):
    a = apim_agent(make_agent, arm, tmp_path)
    assert run(a)[0] == 0
    before = a.installed()
    arm.gateway_apis["gw1"].append(open_api("new-api", "new"))
    arm.fail_paths[SERVICE + "/apis/orders-api/policies/policy"] = 500
    rc, out = run(a)
    assert rc == 1, out
    assert "apis/orders-api/policies/policy" in out and "HTTP 500" in out
    assert a.installed() == before, "a half-read service was installed"
    st = a.status()
    assert st["result"] != "ok" and "HTTP 500" in st["error"]
    del arm.fail_paths[SERVICE + "/apis/orders-api/policies/policy"]
    assert run(a)[0] == 0
    assert installed(a)["generation"] == 2 and "new-api" in api_ids(a)


def test_next_link_paging(make_agent, arm, tmp_path):
    arm.gateway_apis["gw1"] = [open_api("api-%d" % i, "p%d" % i) for i in range(5)]
    arm.page_size = 2
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 0, out
    assert api_ids(a) == ["api-%d" % i for i in range(5)]
    assert len(arm.reads()) == reads_for(3, 5)
    assert [r["path"].split("?")[1] for r in arm.reads()[:3]] == [
        "api-version=2022-08-01", "api-version=2022-08-01&$skip=2",
        "api-version=2022-08-01&$skip=4"]


def test_throttled_read_waits_retry_after_and_retries(make_agent, arm, tmp_path):
    arm.throttle = 2
    arm.retry_after = "1"
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 0, out
    assert len(arm.reads()) == reads_for(1, 2) + 2
    assert installed(a)["generation"] == 1


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
    arm.gateway_apis["gw1"] = [open_api("api-%d" % i, "p%d" % i) for i in range(3)]
    arm.page_size = 1
    arm.expire_at_read = 2      # the token dies between page 1 and page 2
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 0, out
    assert len(arm.token_requests()) == 2
    assert len(arm.reads()) == reads_for(3, 3) + 1      # + the refused 401
    assert len(api_ids(a)) == 3


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


def test_an_api_that_cannot_be_carried_over_is_left_out_and_named(make_agent, arm,
                                                                   tmp_path):
    """The shared converter (import/convert.h) on what ARM answered: the API
    whose operation policy has no format 1 counterpart is left out (it answers
    404, never runs without its policy), named with FILE:LINE in the log, in
    the exit code (1) and in the status file; the rest is installed."""
    arm.gateway_apis["gw1"] = [open_api("echo-api", "echo"), open_api("xml-api", "xml")]
    arm.operations["echo-api"] = [operation("echo-api", "get-anything", "GET", "/anything")]
    arm.operations["xml-api"] = [operation("xml-api", "get-doc", "GET", "/doc")]
    arm.policies["/apis/echo-api/policies/policy"] = GOOD_POLICY
    arm.policies["/apis/xml-api/operations/get-doc/policies/policy"] = BAD_POLICY
    arm.policies["/policies/policy"] = GLOBAL_POLICY
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 1, out
    assert re.search(r"apis/xml-api/operations/get-doc/policies/policy:6: "
                     r"[^\n]*xml-to-json", out), out
    assert "installed without xml-api" in out
    assert api_ids(a) == ["echo-api"]
    assert "installed without xml-api" in a.status()["error"]
    assert len(arm.reads()) == reads_for(1, 2)


def sha(k):
    return hashlib.sha256(k.encode()).hexdigest()


def test_products_subscriptions_and_a_regenerated_key(make_agent, arm, tmp_path):
    """Keys come from listSecrets (POST), only for subscriptions that reach a
    served API; they are installed hashed, never in clear; a key regenerated
    in APIM reaches the gateway on the next sync; products and subscriptions
    that reach nothing served are neither read further nor installed."""
    echo = gateway_api("echo-api", "echo", "http://127.0.0.1:9/")
    arm.gateway_apis["gw1"] = [echo]
    arm.products["starter"] = (product("starter"), ["echo-api", "not-here-api"])
    arm.products["elsewhere"] = (product("elsewhere"), ["not-here-api"])
    arm.policies["/products/starter/policies/policy"] = GOOD_POLICY
    arm.subscriptions["acme"] = (subscription("acme", "/products/starter"),
                                 ["acme-primary-1", "acme-secondary-1"])
    arm.subscriptions["all"] = (subscription("all", "/apis"), ["all-1", "all-2"])
    arm.subscriptions["other"] = (subscription("other", "/products/elsewhere"), ["o1", "o2"])
    arm.subscriptions["gone"] = (subscription("gone", "/apis", state="cancelled"), ["g1", "g2"])
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 0, out
    raw = a.installed().decode()
    assert "acme-primary-1" not in raw and "all-1" not in raw, "a key installed in clear"
    doc = json.loads(raw)
    assert [p["id"] for p in doc["products"]] == ["starter"]
    assert doc["products"][0]["apis"] == ["echo-api"]
    subs = {s["id"]: s for s in doc["subscriptions"]}
    assert sorted(subs) == ["acme", "all"]
    assert subs["acme"]["scope"] == "product:starter" and subs["all"]["scope"] == "all"
    assert subs["acme"]["keys_sha256"] == [sha("acme-primary-1"), sha("acme-secondary-1")]
    posts = sorted(r["path"].split("?")[0].rsplit("/", 2)[1] for r in arm.reads()
                   if r["method"] == "POST")
    assert posts == ["acme", "all"], "listSecrets only for what reaches a served API"
    # the 2 product lists' reads, starter's policy, 2 listSecrets
    assert len(arm.reads()) == reads_for(1, 1) + 2 + 1 + 2
    # the primary key regenerated in the portal
    arm.subscriptions["acme"][1][0] = "acme-primary-2"
    assert run(a)[0] == 0
    doc = json.loads(a.installed())
    assert doc["generation"] == 2
    subs = {s["id"]: s for s in doc["subscriptions"]}
    assert subs["acme"]["keys_sha256"] == [sha("acme-primary-2"), sha("acme-secondary-1")]
    assert subs["all"]["keys_sha256"] == [sha("all-1"), sha("all-2")]


def posts(arm):
    return sorted(r["path"].split("?")[0].rsplit("/", 2)[1] for r in arm.reads()
                  if r["method"] == "POST")


def keyed_service(arm):
    arm.gateway_apis["gw1"] = [gateway_api("echo-api", "echo", "http://127.0.0.1:9/")]
    arm.products["starter"] = (product("starter"), ["echo-api"])
    arm.subscriptions["acme"] = (subscription("acme", "/products/starter"), ["a1", "a2"])
    arm.subscriptions["all"] = (subscription("all", "/apis"), ["all-1", "all-2"])


def test_listsecrets_only_for_subscriptions_whose_etag_changed(make_agent, arm, tmp_path):
    """The keys are kept with each subscription's etag (apim-keys.json beside
    config_path, 0600): a sync where nothing changed reads no key; a
    regenerated key changes the etag, so only that subscription's keys are
    read again, and the new key is installed; the unchanged ones stay."""
    keyed_service(arm)
    a = apim_agent(make_agent, arm, tmp_path)
    assert run(a)[0] == 0
    assert posts(arm) == ["acme", "all"]
    first = len(arm.reads())
    cache = a.config.parent / "apim-keys.json"
    assert cache.stat().st_mode & 0o777 == 0o600
    arm.requests.clear()
    rc, out = run(a)
    assert rc == 0, out
    assert posts(arm) == [], "listSecrets for an unchanged subscription"
    assert len(arm.reads()) == first - 2
    assert installed(a)["generation"] == 1, "nothing changed: nothing installed"
    # a key regenerated in the portal
    arm.subscriptions["all"][1][1] = "all-2-regenerated"
    arm.requests.clear()
    assert run(a)[0] == 0
    assert posts(arm) == ["all"]
    doc = installed(a)
    assert doc["generation"] == 2
    subs = {s["id"]: s for s in doc["subscriptions"]}
    assert subs["all"]["keys_sha256"] == [sha("all-1"), sha("all-2-regenerated")]
    assert subs["acme"]["keys_sha256"] == [sha("a1"), sha("a2")]


def test_without_etags_every_key_is_read_every_sync(make_agent, arm, tmp_path):
    """Where ARM's list gives no etag, nothing is trusted from the last sync."""
    keyed_service(arm)
    arm.subscription_etags = False
    a = apim_agent(make_agent, arm, tmp_path)
    assert run(a)[0] == 0
    arm.requests.clear()
    arm.subscriptions["all"][1][0] = "all-1-regenerated"
    assert run(a)[0] == 0
    assert posts(arm) == ["acme", "all"]
    subs = {s["id"]: s for s in installed(a)["subscriptions"]}
    assert subs["all"]["keys_sha256"] == [sha("all-1-regenerated"), sha("all-2")]


def test_a_corrupt_key_cache_costs_reads_not_the_sync(make_agent, arm, tmp_path):
    keyed_service(arm)
    a = apim_agent(make_agent, arm, tmp_path)
    assert run(a)[0] == 0
    cache = a.config.parent / "apim-keys.json"
    good = json.loads(cache.read_text())
    cache.write_text('{"acme": {"etag": 1, "keys": "x"')
    arm.requests.clear()
    assert run(a)[0] == 0
    assert posts(arm) == ["acme", "all"]
    # right etags, keys of the wrong form: read again
    good["acme"]["keys"] = [1, 2]
    good["all"]["keys"] = ["x", "y", "z"]
    cache.write_text(json.dumps(good))
    arm.requests.clear()
    assert run(a)[0] == 0
    assert posts(arm) == ["acme", "all"]
    subs = {s["id"]: s for s in installed(a)["subscriptions"]}
    assert subs["acme"]["keys_sha256"] == [sha("a1"), sha("a2")]


def test_reads_are_paced(make_agent, arm, tmp_path):
    """arm_reads_per_s = 20: the reads of one sync are at least 50 ms apart."""
    a = apim_agent(make_agent, arm, tmp_path, arm_reads_per_s="20")
    assert run(a)[0] == 0
    t = [r["time"] for r in arm.reads()]
    assert len(t) >= 10
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert min(gaps) >= 0.045, gaps


NV_POLICY = """<policies>
  <inbound>
    <base />
    <set-header name="X-Plain" exists-action="override"><value>{{plain-name}}</value></set-header>
    <set-header name="X-Secret" exists-action="override"><value>{{secret-name}}</value></set-header>
    <set-header name="X-Kv" exists-action="override"><value>{{kv-name}}</value></set-header>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"""


def test_named_values_plain_secret_and_key_vault(make_agent, arm, tmp_path):
    """{{name}} is a named value's displayName; a secret one's value comes
    from listValue, a Key Vault-backed one's too (APIM's cached copy); a
    secret no policy uses is never asked for."""
    arm.gateway_apis["gw1"] = [open_api("echo-api", "echo")]
    arm.policies["/apis/echo-api/policies/policy"] = NV_POLICY
    arm.named_values = {
        "nv1": (named_value("nv1", "plain-name", value="plain-value"), None),
        "nv2": (named_value("nv2", "secret-name", secret=True), "secret-value-1"),
        "nv3": (named_value("nv3", "kv-name", secret=True,
                            key_vault="https://vault1.vault.azure.net/secrets/s1"),
                "kv-cached-value"),
        "nv4": (named_value("nv4", "unused-secret", secret=True), "never-read"),
    }
    a = apim_agent(make_agent, arm, tmp_path)
    rc, out = run(a)
    assert rc == 0, out
    doc = installed(a)
    nv = doc["named_values"]
    assert nv["plain-name"]["value"] == "plain-value"
    assert nv["secret-name"] == {"value": "secret-value-1", "secret": True}
    assert nv["kv-name"]["value"] == "kv-cached-value"
    assert "unused-secret" not in nv
    posts = sorted(r["path"].split("?")[0] for r in arm.reads() if r["method"] == "POST")
    assert posts == [SERVICE + "/namedValues/nv2/listValue",
                     SERVICE + "/namedValues/nv3/listValue"]
    assert "secret-value-1" not in out and "kv-cached-value" not in out
    # rotated in Key Vault, refreshed by APIM: the next sync carries it
    arm.named_values["nv3"] = (arm.named_values["nv3"][0], "kv-rotated-value")
    assert run(a)[0] == 0
    assert installed(a)["named_values"]["kv-name"]["value"] == "kv-rotated-value"
    assert installed(a)["generation"] == 2
