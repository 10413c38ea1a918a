"""Expressions in policies through the real web servers (config-v1.md,
"Expressions, variables, and the policies that use them"): a document
modelled on real APIM policies — variables from headers and the query, a
choose nested three deep in inbound picking the backend (set-backend-service
to a backend only that nested policy names: the per-API image must carry it)
and headers, an outbound choose on ${response.status} rewriting the status
and the body (reading the buffered backend body), set-body JSON with hostile
values in both directions, return-response with an expression status. The upstream asserts what it received (httpbin's
/anything echo, nginx's echo and its log); the client parses what it got.

Policy logic that does not depend on the web server: lighttpd-socket and
apache-proxy-fcgi only.
"""

import copy
import json
import subprocess
import urllib.parse
import uuid

import pytest

import policy_docs as pd
from servers import ModuleDocument, parse_echo

SETUPS = ("lighttpd-socket", "apache-proxy-fcgi")

# what a client may send that breaks a naive template: quote, backslash, markup,
# CDATA end, a JSON document, ampersand and apostrophe (no control byte: lighttpd
# refuses %0A and %09 in a query itself; test_choose.c has them)
HOSTILE = '"\\</a>]]>{"x":1}&\''


def tok():
    return uuid.uuid4().hex[:12]


def q(s):
    return urllib.parse.quote(s, safe="")


def expr_doc(base, nginx):
    doc = copy.deepcopy(base)
    doc["backends"]["ex-fast"] = {"url": nginx.url("/echo/ex-fast")}
    tier = "${var.tier}"
    inbound = [
        {"set-variable": {"name": "tier",
                          "value": "$(lower(default(${request.header.X-Tier}, 'bronze')))"}},
        {"set-variable": {"name": "region", "value": "${request.query.region}"}},
        {"set-variable": {"name": "weight", "value": 7}},
        {"choose": {
            "when": [
                {"condition": "%s == 'gold'" % tier, "policies": [
                    pd.set_header("X-Route", "gold"),
                    {"choose": {
                        "when": [{"condition": "${var.region} == 'eu'", "policies": [
                            pd.set_header("X-Region", "eu"),
                            {"choose": {
                                "when": [{"condition": "startsWith(${request.path}, '/fast')",
                                          "policies": [
                                              {"set-backend-service": {"backend-id": "ex-fast"}},
                                              pd.set_header("X-Keep", "deep-$(length(${var.region}))")]}],
                                "otherwise": [pd.set_header("X-Deep", "slow")]}}]}],
                        "otherwise": [pd.set_header("X-Region", "other")]}}]},
                {"condition": "%s == 'silver' || matches(${request.query.plan}, '^s[0-9]+$')" % tier,
                 "policies": [pd.set_header("X-Route", "silver")]}],
            "otherwise": [pd.set_header("X-Route", "default")]}},
        pd.set_header("X-Vars", "${var.tier}/${var.region}/$(int(${var.weight}) + 1)"),
    ]
    outbound = [
        {"choose": {
            "when": [
                {"condition": "${response.status} == '418'", "policies": [
                    {"set-variable": {"name": "orig", "value": "${response.status}"}},
                    {"set-status": {"code": "$(int(${response.status}) + 2)", "reason": "Brewed"}},
                    pd.set_header("Content-Type", "application/json"),
                    {"set-body": {"value": '{"was": $(int(${var.orig})), "now": ${response.status}, '
                                           '"q": "${request.query.q}", "h": "${request.header.X-H}", '
                                           '"tier": "${var.tier}"}'}}]},
                {"condition": "int(${response.status}) >= 500", "policies": [
                    {"set-status": {"code": 502}},
                    pd.set_header("Content-Type", "application/xml"),
                    {"set-body": {"value": "<e q='${request.query.q}'>${request.query.q}</e>"}}]}],
            "otherwise": [pd.set_header("X-Status-Seen", "${response.status}")]}},
        # reads the backend's body: the app buffers it for the section
        pd.set_header("X-Arg", "$(json(${response.body}, 'args.t'))"),
    ]
    ret = [
        {"return-response": {
            "status-code": "$(int(default(${request.query.code}, '200')))",
            "headers": {"Content-Type": "application/json", "X-Code": "${request.query.code}"},
            "body": '{"q": "${request.query.q}", "n": $(length(${request.query.q}))}'}},
    ]
    body_in = [
        pd.set_header("Content-Type", "application/json"),
        {"set-body": {"value": '{"q": "${request.query.q}", "len": $(length(${request.body}))}'}},
    ]
    doc["apis"] = doc["apis"] + [
        pd.api("ex-route", "anything", policies={"inbound": inbound}),
        pd.api("ex-out", "httpbin", policies={"inbound": inbound, "outbound": outbound}),
        pd.api("ex-ret", "anything", policies={"inbound": ret}),
        pd.api("ex-body", "anything", policies={"inbound": body_in}),
    ]
    return doc


@pytest.fixture(scope="module")
def _emodule(gw, base, nginx):
    if gw.setup not in SETUPS:
        pytest.skip("policy logic: runs on %s" % ", ".join(SETUPS))
    with ModuleDocument(gw, base, expr_doc(base, nginx)) as m:
        yield m


@pytest.fixture
def egw(gw, _emodule):
    return _emodule.gateway()


def anything(r):
    assert r.status == 200, r
    return r.json()


@pytest.mark.parametrize("tier,region,path,want", [
    ("Gold", "eu", "/slow", {"X-Route": "gold", "X-Region": "eu", "X-Deep": "slow",
                             "X-Vars": "gold/eu/8"}),
    ("GOLD", "us", "/x", {"X-Route": "gold", "X-Region": "other", "X-Vars": "gold/us/8"}),
    ("silver", "", "/x", {"X-Route": "silver", "X-Vars": "silver//8"}),
    (None, "eu", "/x?plan=s42", {"X-Route": "silver", "X-Vars": "bronze/eu/8"}),
    (None, "eu", "/x?plan=gold", {"X-Route": "default", "X-Vars": "bronze/eu/8"}),
])
def test_nested_choose_routes(egw, tier, region, path, want):
    hs = [("X-Tier", tier)] if tier else []
    sep = "&" if "?" in path else "?"
    got = anything(egw.get("/api/ex-route%s%sregion=%s" % (path, sep, region), headers=hs))
    h = got["headers"]
    for k, v in want.items():
        assert h.get(k) == v, (k, h)
    for k in ("X-Route", "X-Region", "X-Deep", "X-Keep"):
        if k not in want:
            assert k not in h, (k, h)


def test_nested_set_backend_service(egw, nginx):
    """Three levels down, set-backend-service names a backend nothing else
    names: the request reaches it (the image carried it)."""
    t = tok()
    r = egw.get("/api/ex-route/fast/%s?region=eu" % t, headers=[("X-Tier", "gold")])
    assert r.status == 200, r
    echo = parse_echo(r.body)
    assert echo["uri"] == "/echo/ex-fast/fast/%s?region=eu" % t, echo
    assert echo["x_keep"] == "deep-2"
    (rec,) = nginx.requests_with(t)
    assert rec["uri"] == "/echo/ex-fast/fast/%s?region=eu" % t


def test_document_compiles_to_an_image(egw, base, nginx, tmp_path):
    """The per-API image block carries the backend named only inside the
    nested choose (the image holds a backend's entry only in the blocks of
    the APIs that name it). A block without it does not load, and the
    gateway then serves from the document instead, so the routing test
    above alone would not notice."""
    if not egw.config.compiler:
        pytest.skip("images are off (HOSTGATE_TEST_IMAGES=0)")
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(dict(expr_doc(base, nginx), generation=1)))
    r = subprocess.run([egw.config.compiler, "--compile", str(doc)], capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    with open(str(doc) + ".image", "rb") as f:
        assert nginx.url("/echo/ex-fast").encode() in f.read()


def test_outbound_choose_rewrites_status_and_json_body(egw):
    r = egw.get("/api/ex-out/status/418?q=%s" % q(HOSTILE),
                headers=[("X-H", HOSTILE), ("X-Tier", "Silver")])
    assert r.status == 420, r
    assert (r.header("Content-Type") or "").startswith("application/json")
    doc = json.loads(r.body)       # strict: the hostile values kept the structure
    assert doc == {"was": 418, "now": 420, "q": HOSTILE, "h": HOSTILE, "tier": "silver"}, doc


def test_outbound_choose_xml_body(egw):
    r = egw.get("/api/ex-out/status/503?q=%s" % q(HOSTILE))
    assert r.status == 502, r
    assert r.body == (b"<e q='&quot;\\&lt;/a&gt;]]&gt;{&quot;x&quot;:1}&amp;&apos;'>"
                      b"&quot;\\&lt;/a&gt;]]&gt;{&quot;x&quot;:1}&amp;&apos;</e>"), r.body


def test_outbound_otherwise_keeps_backend_body(egw):
    t = tok()
    r = egw.get("/api/ex-out/anything/t?region=eu&t=%s" % t)
    got = anything(r)
    assert got["headers"]["X-Vars"] == "bronze/eu/8"
    assert r.header("X-Arg") == t
    r = egw.get("/api/ex-out/status/204")
    assert r.status == 204, r
    assert r.header("X-Status-Seen") == "204"


@pytest.mark.parametrize("code", [201, 418])
def test_return_response_expression_status(egw, nginx, code):
    t = tok()
    r = egw.get("/api/ex-ret/%s?code=%d&q=%s" % (t, code, q(HOSTILE)))
    assert r.status == code, r
    assert r.header("X-Code") == str(code)
    assert json.loads(r.body) == {"q": HOSTILE, "n": len(HOSTILE)}
    nginx.settle()
    assert nginx.requests_with(t, expect=False) == []


def test_return_response_status_out_of_range(egw):
    r = egw.get("/api/ex-ret/x?code=700")
    assert r.status == 500, r
    assert json.loads(r.body)["message"] == "Expression failed."


def test_set_body_inbound_json(egw):
    """set-body in inbound: the upstream receives the new JSON document, with
    the hostile value as one string and the client's body length."""
    r = egw.request("POST", "/api/ex-body/p?q=%s" % q(HOSTILE),
                    headers=[("Content-Type", "text/plain"), ("Content-Length", "5")],
                    body=b"hello")
    got = anything(r)
    assert got["json"] == {"q": HOSTILE, "len": 5}, got
