"""hostgate-import on a corpus made like the APIOps extractor's output
(tests/import/apiops: several APIs, a revision, a fragment, both product
layouts, named values with overrides, a gateway assignment, expressions that
are not strict XML, one unconvertible policy), then the imported document
served through a real lighttpd against httpbin, the upstream asserting what
it received. Run by tests/run-import (root: the gateway runs as www-data).
"""
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from harness import LOGS, wait_until  # noqa: E402
from servers import Gateway, Httpbin  # noqa: E402

IMPORT = os.environ.get("HOSTGATE_IMPORT", str(ROOT / "build" / "hostgate-import"))
FCGI = os.environ.get("HOSTGATE_FCGI", str(ROOT / "build" / "hostgate-fcgi"))
CORPUS = HERE / "apiops"
OVERRIDES = CORPUS / "configuration.test.yaml"


def run(*args):
    return subprocess.run([IMPORT] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def tmp():
    d = tempfile.mkdtemp(prefix="hostgate-import-")
    os.chmod(d, 0o755)   # the web server (www-data) reaches its directories below
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def keys(tmp):
    p = tmp / "keys.json"
    p.write_text(json.dumps({"acme": ["acme-key-1"], "nokey": ["all-key-1"]}))
    return p


def corpus_copy(tmp, name):
    d = tmp / name
    shutil.copytree(CORPUS, d)
    return d


# ---- refusals: FILE:LINE, exit 1, nothing written ----------------------------

def test_unconvertible_policy_refused_with_file_and_line(tmp):
    out = tmp / "refused.json"
    r = run("apiops", CORPUS, "--overrides", OVERRIDES, "-o", out)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    assert not out.exists()
    assert ("apis/legacy-api/policy.xml:4: set-variable value: a multi-statement expression"
            in r.stderr), r.stderr
    assert "api legacy-api: refused, first reason: apis/legacy-api/policy.xml:4:" in r.stderr


def test_exclude_unconvertible_leaves_the_whole_api_out(tmp, keys):
    r = run("apiops", CORPUS, "--overrides", OVERRIDES, "--keys", keys,
            "--exclude-unconvertible")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [a["id"] for a in doc["apis"]] == ["echo-api", "orders-api"]
    assert "api-legacy-api" not in doc["backends"]
    assert ("api legacy-api: left-out, first reason: apis/legacy-api/policy.xml:4: set-variable"
            in r.stderr), r.stderr


def structural(doc):
    doc = dict(doc)
    doc.pop("generation")
    return doc


def test_golden_document(tmp, keys):
    """The whole document, compared as JSON with tests/import/expected.json."""
    r = run("apiops", CORPUS, "--overrides", OVERRIDES, "--keys", keys,
            "--exclude-unconvertible")
    assert r.returncode == 0, r.stderr
    got = structural(json.loads(r.stdout))
    want = json.loads((HERE / "expected.json").read_text())
    assert got == want
    # the revision that is not current is not taken; the version set's
    # Segment scheme appends the version; the secret came from the overrides
    assert got["apis"][0]["path"] == "echo"
    assert got["apis"][1]["path"] == "orders/v1"
    assert got["named_values"]["orders-key"] == {"value": "s3cret-orders", "secret": True}
    sub = {s["id"]: s for s in got["subscriptions"]}
    assert sub["acme"]["keys_sha256"] == [hashlib.sha256(b"acme-key-1").hexdigest()]
    assert sub["acme"]["scope"] == "product:starter"
    assert sub["nokey"]["scope"] == "all"


def test_gateway_keeps_only_its_apis():
    r = run("apiops", CORPUS, "--overrides", OVERRIDES, "--gateway", "edge")
    assert r.returncode == 0, r.stderr    # legacy-api is not on the gateway
    doc = json.loads(r.stdout)
    assert [a["id"] for a in doc["apis"]] == ["echo-api", "orders-api"]
    assert "api legacy-api: not-on-gateway" in r.stderr
    r = run("apiops", CORPUS, "--gateway", "nosuch")
    assert r.returncode == 1
    assert "no gateway 'nosuch'" in r.stderr


def test_older_layouts_and_spec_refusals(tmp):
    d = corpus_copy(tmp, "older")
    # gateways/NAME/apis.json, as the extractor wrote it before apis/API/ folders
    (d / "gateways/old").mkdir()
    (d / "gateways/old/gatewayInformation.json").write_text('{"properties": {}}')
    (d / "gateways/old/apis.json").write_text('[{"name": "orders-api"}]')
    r = run("apiops", d, "--overrides", OVERRIDES, "--gateway", "old")
    assert r.returncode == 0, r.stderr
    assert [a["id"] for a in json.loads(r.stdout)["apis"]] == ["orders-api"]
    # a URL template format 1 cannot route is refused at the specification
    spec = d / "apis/orders-api/specification.json"
    spec.write_text(spec.read_text().replace('"/orders/{orderId}"', '"/orders/{orderId}.json"'))
    r = run("apiops", d, "--overrides", OVERRIDES, "--gateway", "old")
    assert r.returncode == 1
    assert "apis/orders-api/specification.json:6: format 1 refuses it: apis[0].operations[0]" in r.stderr, r.stderr
    # WSDL
    (d / "apis/orders-api/specification.wsdl").write_text("<definitions/>")
    spec.unlink()
    r = run("apiops", d, "--overrides", OVERRIDES, "--gateway", "old")
    assert r.returncode == 1
    assert "apis/orders-api/specification.wsdl:1: API 'orders-api': the specification is not OpenAPI" in r.stderr


def test_report_as_json(keys):
    r = run("apiops", CORPUS, "--overrides", OVERRIDES, "--exclude-unconvertible",
            "--format", "json", "--keys", keys)
    assert r.returncode == 0
    rep = json.loads(r.stderr)
    assert rep["notes"] == ["apis/echo-api/policy.xml:23: return-response: the reason phrase"
                            " 'Forbidden' is not carried over (the web server writes its own)"]
    assert {a["name"]: a["status"] for a in rep["apis"]} == {
        "echo-api": "imported", "legacy-api": "left-out", "orders-api": "imported"}
    why = [a for a in rep["apis"] if a["name"] == "legacy-api"][0]["why"]
    assert len(why) == 1 and why[0].startswith("apis/legacy-api/policy.xml:4: set-variable value:")
    assert rep["secrets"] == [{"name": "orders-key",
                               "file": "named values/orders-key/namedValueInformation.json",
                               "supplied": True}]
    assert rep["subscriptions_without_keys"] == []
    assert rep["errors"][0].startswith("apis/legacy-api/policy.xml:4: ")


def test_secret_without_override_and_subscriptions_without_keys():
    r = run("apiops", CORPUS, "--gateway", "edge")
    assert r.returncode == 1
    assert ("named values/orders-key/namedValueInformation.json:1: named value 'orders-key'"
            " has no value" in r.stderr), r.stderr
    r = run("apiops", CORPUS, "--gateway", "edge", "--overrides", OVERRIDES)
    assert r.returncode == 0
    assert "subscription acme: left out, no keys" in r.stderr
    assert "subscription nokey: left out, no keys" in r.stderr
    assert json.loads(r.stdout)["subscriptions"] == []


def test_subscription_scope_never_widened(tmp, keys):
    d = corpus_copy(tmp, "scope")
    (d / "subscriptions/nokey/subscriptionInformation.json").write_text(
        '{"properties": {"scope": "/users/1", "state": "active"}}')
    r = run("apiops", d, "--overrides", OVERRIDES, "--keys", keys, "--gateway", "edge")
    assert r.returncode == 1
    assert ("subscriptions/nokey/subscriptionInformation.json:1: subscription 'nokey': the scope"
            " '/users/1' is not importable" in r.stderr), r.stderr
    (d / "subscriptions/nokey/subscriptionInformation.json").write_text(
        '{"properties": {"scope": "/subscriptions/x/resourceGroups/y/providers/'
        'Microsoft.ApiManagement/service/contoso", "state": "suspended"}}')
    r = run("apiops", d, "--overrides", OVERRIDES, "--keys", keys, "--gateway", "edge")
    assert r.returncode == 0, r.stderr
    sub = {s["id"]: s for s in json.loads(r.stdout)["subscriptions"]}
    assert sub["nokey"]["scope"] == "all" and sub["nokey"]["state"] == "suspended"


def test_base_url_gets_a_backend(tmp):
    d = corpus_copy(tmp, "baseurl")
    pol = d / "apis/orders-api/policy.xml"
    pol.write_text(pol.read_text().replace('<set-backend-service backend-id="orders-backend" />',
                                           '<set-backend-service base-url="http://elsewhere.invalid/v2" />'))
    r = run("apiops", d, "--overrides", OVERRIDES, "--gateway", "edge")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["backends"]["url-1"] == {"url": "http://elsewhere.invalid/v2"}
    assert doc["apis"][1]["policies"]["inbound"][1] == {
        "set-backend-service": {"base-url": "http://elsewhere.invalid/v2"}}


def test_attribute_format1_lacks_refused_at_its_line(tmp):
    d = corpus_copy(tmp, "attr")
    (d / "apis/orders-api/policy.xml").write_text(
        "<policies>\n"
        "\t<inbound>\n"
        "\t\t<base />\n"
        "\t\t<rate-limit-by-key calls=\"3\" renewal-period=\"60\"\n"
        "\t\t\tcounter-key=\"@(context.Subscription.Id)\" increment-condition=\"@(context.Response.StatusCode == 200)\" />\n"
        "\t</inbound>\n"
        "\t<backend>\n"
        "\t\t<forward-request buffer-request-body=\"true\" />\n"
        "\t</backend>\n"
        "\t<outbound>\n"
        "\t\t<base />\n"
        "\t\t<xml-to-json kind=\"direct\" apply=\"always\" consider-accept-header=\"false\" />\n"
        "\t</outbound>\n"
        "</policies>\n")
    r = run("apiops", d, "--overrides", OVERRIDES, "--gateway", "edge")
    assert r.returncode == 1
    err = r.stderr
    assert "apis/orders-api/policy.xml:12: the policy 'xml-to-json' is not importable" in err
    assert "apis/orders-api/policy.xml:4: " in err and "increment-condition" in err, err
    assert "apis/orders-api/policy.xml:8: " in err and "buffer-request-body" in err, err


def test_nested_refusals_each_once_at_their_line(tmp):
    d = corpus_copy(tmp, "nested")
    (d / "apis/echo-api/operations/get-item/policy.xml").write_text(
        "<policies>\n"
        "\t<inbound>\n"
        "\t\t<base />\n"
        "\t\t<choose>\n"
        "\t\t\t<when condition=\"@(context.Request.Method == \"GET\")\">\n"
        "\t\t\t\t<set-header name=\"X-A\" exists-action=\"override\">\n"
        "\t\t\t\t\t<value>{{missing}}</value>\n"
        "\t\t\t\t</set-header>\n"
        "\t\t\t</when>\n"
        "\t\t</choose>\n"
        "\t\t<validate-content unspecified-content-type-action=\"prevent\" max-size=\"102400\" />\n"
        "\t\t<set-header name=\"X-B\" exists-action=\"override\">\n"
        "\t\t\t<value>@(context.Request.Headers[\"X\"])</value>\n"
        "\t\t</set-header>\n"
        "\t\t<rate-limit calls=\"5\" renewal-period=\"60\">\n"
        "\t\t\t<api name=\"x\" calls=\"1\" renewal-period=\"1\" />\n"
        "\t\t</rate-limit>\n"
        "\t</inbound>\n"
        "</policies>\n")
    r = run("apiops", d, "--overrides", OVERRIDES, "--gateway", "edge")
    assert r.returncode == 1
    f = "apis/echo-api/operations/get-item/policy.xml:"
    errs = [x for x in r.stderr.splitlines() if x.startswith(f)]
    assert [x.split(":")[1] for x in errs] == ["11", "13", "16", "6"], r.stderr
    assert "'validate-content' is not importable" in errs[0]
    assert "this use of 'context' is not in the table" in errs[1]
    assert "<api> is not importable" in errs[2]
    assert "unknown named value 'missing'" in errs[3]


def test_not_xml_refused_at_its_line(tmp):
    d = corpus_copy(tmp, "notxml")
    (d / "apis/echo-api/operations/get-item/policy.xml").write_text(
        "<policies>\n\t<inbound>\n\t\t<base />\n\t\t<set-header name=\"a\">\n\t</inbound>\n</policies>\n")
    r = run("apiops", d, "--overrides", OVERRIDES, "--gateway", "edge")
    assert r.returncode == 1
    assert "apis/echo-api/operations/get-item/policy.xml:5: not well-formed XML" in r.stderr, r.stderr


def test_expression_outside_the_table_refused(tmp):
    d = corpus_copy(tmp, "expr")
    (d / "policy fragments/stamp/policy.xml").write_text(
        "<fragment>\n\t<set-header name=\"X-When\" exists-action=\"override\">\n"
        "\t\t<value>@(DateTime.UtcNow.ToString())</value>\n\t</set-header>\n</fragment>\n")
    r = run("apiops", d, "--overrides", OVERRIDES, "--gateway", "edge")
    assert r.returncode == 1
    assert ("policy fragments/stamp/policy.xml:3: value: the expression cannot be carried over,"
            " 'DateTime' is not in the table" in r.stderr), r.stderr


def test_openapi_single_file(tmp):
    spec = CORPUS / "apis/orders-api/specification.json"
    r = run("openapi", spec, "--api-id", "orders", "--path", "orders", "--backend",
            "http://127.0.0.1:9/x")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    ops = [(o["id"], o["method"], o["url_template"]) for o in doc["apis"][0]["operations"]]
    assert ops == [("get-orders-orderid", "GET", "/orders/{orderId}"),
                   ("delete-order", "DELETE", "/orders/{orderId}"),
                   ("createorder", "POST", "/orders")]
    r = run("openapi", spec, "--api-id", "orders")
    assert r.returncode == 2


# ---- served through lighttpd --------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp, keys):
    if os.geteuid() != 0:
        pytest.skip("the gateway runs as www-data: run as root (tests/run-import)")
    httpbin = Httpbin(str(tmp))
    ov = tmp / "configuration.e2e.yaml"
    ov.write_text(OVERRIDES.read_text()
                  .replace("http://orders.test.invalid", httpbin.url())
                  .replace("http://echo.test.invalid", httpbin.url()))
    r = run("apiops", CORPUS, "--overrides", ov, "--keys", keys, "--exclude-unconvertible")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    gw = Gateway(str(tmp), "lighttpd-socket", FCGI)
    gw.httpbin = httpbin
    gw.start()
    gw.apply(doc)
    yield gw
    gw.stop()
    httpbin.stop()


def served_httpbin_lines(gw):
    return gw.httpbin.log_lines()


def echoed(resp):
    assert resp.status == 200, resp
    return resp.json()


def test_served_policies_behave(served):
    gw = served
    key = [("Ocp-Apim-Subscription-Key", "acme-key-1")]
    r = gw.get(gw.mount + "/echo/items/42", headers=key)
    e = echoed(r)
    h = e["headers"]
    assert e["url"].endswith("/anything/items/42?item=42")
    assert h["X-Global"] == "global-contoso"          # root policy, named value
    assert h["X-Product"] == "starter"                # product policy
    assert h["X-Caller"] == "anon"                    # GetValueOrDefault with a default
    assert h["X-Mode-Seen"] == "no"                   # choose: otherwise
    assert h["X-Op"] == "get-item/echo-api"           # operation policy, "+" concatenation
    assert h["X-Request-Stamp"] == r.header("X-Request-Id")   # the fragment, inlined
    # send-request to {{orders-url}}/token became the orders-backend backend + /token
    assert h["X-Token-Status"] == "200"
    wait_until(lambda: any(x.startswith("GET /anything/orders-backend/token")
                           for x in served_httpbin_lines(gw)), 10, "the side call in httpbin's log")
    assert "Ocp-Apim-Subscription-Key" not in h
    assert r.header("X-Served-By") == "hostgate-import"       # outbound
    # the non-strict-XML condition: POST && X-Mode == "a<b"
    r = gw.request("POST", gw.mount + "/echo/items",
                   headers=key + [("X-Mode", "a<b"), ("X-User", "bob"), ("Content-Length", "0")])
    h = echoed(r)["headers"]
    assert h["X-Mode-Seen"] == "yes" and h["X-Caller"] == "bob"
    # return-response inside a choose: the upstream is never reached
    r = gw.get(gw.mount + "/echo/items/42?mark=denied", headers=key + [("X-Deny", "1")])
    assert r.status == 403 and r.json() == {"denied": True}
    assert r.header("Content-Type") == "application/json"
    echoed(gw.get(gw.mount + "/echo/items/43?mark=after", headers=key))
    wait_until(lambda: any("mark=after" in x for x in served_httpbin_lines(gw)), 10,
               "httpbin to log the request after the denied one")
    assert not any("mark=denied" in x for x in served_httpbin_lines(gw))
    # operations from the specification: anything else is 404; no key is 401
    assert gw.get(gw.mount + "/echo/nothing-here", headers=key).status == 404
    assert gw.get(gw.mount + "/echo/items/42").status == 401
    # the starter product does not reach orders-api
    assert gw.get(gw.mount + "/orders/v1/orders/7", headers=key).status == 401


def test_served_backend_credentials_and_rate_limit(served):
    gw = served
    key = [("Ocp-Apim-Subscription-Key", "all-key-1")]
    seen = []
    for _ in range(3):
        r = gw.get(gw.mount + "/orders/v1/orders/7", headers=key)
        e = echoed(r)
        seen.append(e)
    # set-backend-service to the named backend, whose credentials header
    # holds the secret named value the overrides supplied
    assert seen[0]["url"].endswith("/anything/orders-backend/orders/7")
    assert seen[0]["headers"]["X-Orders-Key"] == "s3cret-orders"
    # rate-limit-by-key calls="3": the fourth is refused, the upstream never sees it
    r = gw.get(gw.mount + "/orders/v1/orders/7", headers=key)
    assert r.status == 429
    LOGS  # noqa: B018 - logs shown on failure by the harness
