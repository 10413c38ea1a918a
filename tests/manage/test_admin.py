"""The admin API of hostgate-manage (shared/spec/admin-api.md) under lighttpd:
driven by a script as an operator would, every write validated by policy/,
and hostile input answered clearly with nothing changed."""
import hashlib
import json

import pytest
import requests

from manage_helpers import MOUNT


def snapshot(admin):
    """Everything the admin API lists, to compare before and after."""
    out = {}
    for c in ("backends", "apis", "products", "named-values", "subscriptions", "gateways"):
        r = admin.get("/" + c)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        for it in items:    # a gateway's state is not configuration
            for k in ("generation", "last_heartbeat", "status"):
                it.pop(k, None)
        out[c] = items
    out["policies"] = admin.get("/policies").json()
    return out


def test_backend_crud_etag_and_generation(admin):
    g0 = admin.generation()
    r = admin.put("/backends/crud-b", {"url": "http://127.0.0.1:9/crud"})
    assert r.status_code == 201, r.text
    etag = r.headers["ETag"]
    assert r.json() == {"url": "http://127.0.0.1:9/crud", "id": "crud-b"}
    assert admin.generation() == g0 + 1
    r = admin.get("/backends/crud-b")
    assert r.status_code == 200 and r.headers["ETag"] == etag
    r = admin.get("/backends/crud-b", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    # replaced: 200; an If-Match that no longer matches: 412, nothing changes
    r = admin.put("/backends/crud-b", {"url": "http://127.0.0.1:9/two"},
                  headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    r412 = admin.put("/backends/crud-b", {"url": "http://127.0.0.1:9/three"},
                     headers={"If-Match": etag})
    assert r412.status_code == 412
    assert admin.get("/backends/crud-b").json()["url"] == "http://127.0.0.1:9/two"
    assert admin.generation() == g0 + 2
    assert any(b["id"] == "crud-b" for b in admin.get("/backends").json()["items"])
    r = admin.delete("/backends/crud-b", headers={"If-Match": etag})
    assert r.status_code == 412
    r = admin.delete("/backends/crud-b", headers={"If-Match": r412.headers.get("ETag") or
                                                  admin.get("/backends/crud-b").headers["ETag"]})
    assert r.status_code == 204
    assert admin.get("/backends/crud-b").status_code == 404
    assert admin.generation() == g0 + 3


def test_validation_errors_have_paths_and_change_nothing(admin):
    admin.ok("PUT", "/backends/val-b", {"url": "http://127.0.0.1:9/v"})
    before, g0 = snapshot(admin), admin.generation()
    r = admin.put("/apis/val-api", {
        "path": "val", "backend": "val-b",
        "operations": [{"id": "a", "method": "GET", "url_template": "/a"},
                       {"id": "b", "method": 7, "url_template": "/b"}],
        "policies": {"inbound": [{"no-such-policy": {}}]}})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["statusCode"] == 400 and "requestId" in body
    paths = {e["path"] for e in body["errors"]}
    assert "operations[1].method" in paths
    assert any(p.startswith("policies.inbound[0]") for p in paths), paths
    # an unknown backend, a dangling named value, a duplicate member
    r = admin.put("/apis/val-api", {"path": "val", "backend": "nope"})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "backend"
    r = admin.put("/backends/val-c", {"url": "http://127.0.0.1:9/{{no-such-value}}"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["path"] == "url"
    assert "no-such-value" in r.json()["errors"][0]["message"]
    r = admin.put("/apis/val-api", raw='{"path": "val", "path": "x", "backend": "val-b"}')
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "path"
    # the id in the body must be the one in the path
    r = admin.put("/apis/val-api", {"id": "other", "path": "val", "backend": "val-b"})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "id"
    assert snapshot(admin) == before and admin.generation() == g0


def test_delete_referenced_is_409_with_referrers(admin):
    admin.ok("PUT", "/backends/ref-b", {"url": "http://127.0.0.1:9/r"})
    admin.ok("PUT", "/apis/ref-api", {"path": "ref", "backend": "ref-b"})
    admin.ok("PUT", "/products/ref-p", {"apis": ["ref-api"]})
    g0 = admin.generation()
    r = admin.delete("/backends/ref-b")
    assert r.status_code == 409 and r.json()["referrers"] == ["apis/ref-api"]
    r = admin.delete("/apis/ref-api")
    assert r.status_code == 409 and r.json()["referrers"] == ["products/ref-p"]
    assert admin.generation() == g0
    assert admin.delete("/products/ref-p").status_code == 204
    assert admin.delete("/apis/ref-api").status_code == 204
    assert admin.delete("/backends/ref-b").status_code == 204


def test_named_value_secret_is_never_returned(admin):
    r = admin.put("/named-values/nv-secret", {"value": "hunter2-secret", "secret": True})
    assert r.status_code == 201
    assert "hunter2" not in r.text
    assert admin.get("/named-values/nv-secret").json() == {"secret": True, "name": "nv-secret"}
    lst = admin.get("/named-values")
    assert "hunter2" not in lst.text
    assert {"secret": True, "name": "nv-secret"} in lst.json()["items"]
    admin.ok("PUT", "/named-values/nv-plain", {"value": "visible", "secret": False})
    assert admin.get("/named-values/nv-plain").json()["value"] == "visible"
    # used by a backend: 409 on delete
    admin.ok("PUT", "/backends/nv-b", {"url": "http://127.0.0.1:9/x",
                                       "credentials": {"header": {"X-K": "{{nv-secret}}"}}})
    r = admin.delete("/named-values/nv-secret")
    assert r.status_code == 409 and r.json()["referrers"] == ["backends/nv-b"]
    assert "hunter2" not in r.text
    r = admin.put("/named-values/nv-bad", {"value": "x", "secrett": True})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "secrett"


def test_subscription_keys_shown_once_stored_hashed(admin, manage):
    admin.ok("PUT", "/backends/sub-b", {"url": "http://127.0.0.1:9/s"})
    admin.ok("PUT", "/apis/sub-api", {"path": "sub", "backend": "sub-b"})
    r = admin.post("/subscriptions", {"id": "sub-1", "scope": "api:sub-api"})
    assert r.status_code == 201, r.text
    keys = r.json()
    assert keys["id"] == "sub-1" and len(keys["primary_key"]) >= 32
    assert keys["primary_key"] != keys["secondary_key"]
    got = admin.get("/subscriptions/sub-1")
    assert got.status_code == 200
    assert keys["primary_key"] not in got.text and "keys_sha256" not in got.text
    assert keys["primary_key"] not in admin.get("/subscriptions").text
    # the database holds only the hashes
    with open(manage.db, "rb") as f:
        raw = f.read()
    assert keys["primary_key"].encode() not in raw
    # a second POST of the same id: 409
    assert admin.post("/subscriptions", {"id": "sub-1", "scope": "all"}).status_code == 409
    # an unknown scope is a validation error
    r = admin.post("/subscriptions", {"id": "sub-2", "scope": "api:nope"})
    assert r.status_code == 400
    # PATCH state; keys stay
    r = admin.patch("/subscriptions/sub-1", {"state": "suspended"})
    assert r.status_code == 200 and r.json()["state"] == "suspended"
    assert admin.patch("/subscriptions/sub-1", {"keys_sha256": []}).status_code == 400
    r = admin.patch("/subscriptions/sub-1", {"state": "sleeping"})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "state"
    # regenerate the secondary key
    r = admin.post("/subscriptions/sub-1/regenerate?key=secondary")
    assert r.status_code == 200 and set(r.json()) == {"secondary_key"}
    assert r.json()["secondary_key"] != keys["secondary_key"]
    assert admin.post("/subscriptions/sub-1/regenerate?key=third").status_code == 400
    assert admin.delete("/subscriptions/sub-1").status_code == 204


def test_policies_global(admin):
    r = admin.put("/policies", {"inbound": [{"base": {}}, {"nope": {}}]})
    assert r.status_code == 400 and r.json()["errors"][0]["path"].startswith("inbound[1]")
    r = admin.put("/policies", {"inbound": [{"base": {}}]})
    assert r.status_code in (200, 201)
    assert admin.get("/policies").json() == {"inbound": [{"base": {}}]}


def test_gateways_and_tokens(admin):
    admin.ok("PUT", "/backends/gw-b", {"url": "http://127.0.0.1:9/g"})
    admin.ok("PUT", "/apis/gw-api", {"path": "gw", "backend": "gw-b"})
    r = admin.put("/gateways/gw-a", {"apis": ["gw-api", "nope"]})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "apis[1]"
    r = admin.put("/gateways/gw-a", {"apis": ["gw-api"],
                                     "gateway": {"max_request_body_bytes": "big"}})
    assert r.status_code == 400
    assert r.json()["errors"][0]["path"] == "gateway.max_request_body_bytes"
    r = admin.put("/gateways/gw-a", {"apis": ["gw-api"]})
    assert r.status_code == 201
    g = admin.get("/gateways/gw-a").json()
    assert g["status"] == "never" and g["last_heartbeat"] is None
    assert g["generation"] == admin.generation()
    r = admin.post("/gateways/gw-a/tokens", {"expires": "2099-01-01T00:00:00Z"})
    assert r.status_code == 201 and r.json()["expires"] == "2099-01-01T00:00:00Z"
    assert admin.post("/gateways/gw-a/tokens", {"expires": "2001-01-01T00:00:00Z"}).status_code == 400
    assert admin.post("/gateways/nope/tokens").status_code == 404
    assert admin.delete("/apis/gw-api").json()["referrers"] == ["gateways/gw-a"]


HOSTILE_IDS = ["a'b", "x;DROP TABLE objects;--", "a\"b", "%27%20OR%201=1", "a%00b",
               "..", "a b", "x" * 81, "%2F..%2Fetc"]


@pytest.mark.parametrize("collection", ["backends", "apis", "products", "named-values",
                                        "subscriptions", "gateways"])
def test_hostile_ids_are_refused_and_change_nothing(admin, collection):
    before, g0 = snapshot(admin), admin.generation()
    for bad in HOSTILE_IDS:
        for method, body in (("GET", None), ("PUT", {"url": "http://127.0.0.1:9/"}),
                             ("DELETE", None), ("PATCH", {"state": "active"})):
            r = admin.req(method, "/%s/%s" % (collection, bad), body)
            assert r.status_code in (400, 404, 405), (method, bad, r.status_code, r.text)
            if r.headers["Content-Type"] != "application/json":
                # lighttpd's own refusal of a NUL or a path above the root
                assert r.status_code == 400 and bad in ("a%00b", "%2F..%2Fetc"), bad
                continue
            assert r.json()["statusCode"] == r.status_code
    r = admin.post("/subscriptions", {"id": "x'; DROP TABLE objects; --", "scope": "all"})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "id"
    assert snapshot(admin) == before and admin.generation() == g0


def test_hostile_bodies_and_tokens(admin, manage):
    before, g0 = snapshot(admin), admin.generation()
    for raw in ("{", "[1,2]", "nul", '{"url": "http://x/"} trailing', "\x00", "",
                '{"a":' * 200 + "1" + "}" * 200):
        r = admin.put("/backends/hb-b", raw=raw)
        assert r.status_code == 400, (raw[:20], r.status_code, r.text)
        assert r.json()["message"]
    # oversized: 413, whether the app or the web server says it
    r = admin.put("/backends/hb-b", raw='{"url": "http://127.0.0.1:9/", "x-pad": "%s"}'
                  % ("p" * (5 << 20)))
    assert r.status_code == 413
    # tokens: none, wrong, a gateway's, another scheme
    url = manage.url + "/admin/v1/backends"
    for h in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdHM6eA=="},
              {"Authorization": "Bearer " + manage.admin_token + "x"},
              {"Authorization": "GatewayKey " + manage.admin_token}):
        r = requests.get(url, headers=h, timeout=10)
        assert r.status_code == 401, h
        assert r.json()["statusCode"] == 401
    r = requests.put(url + "/hb-b", data='{"url": "http://127.0.0.1:9/"}',
                     headers={"Authorization": "Bearer nope"}, timeout=10)
    assert r.status_code == 401
    assert admin.get("/nothing-here").status_code == 404
    assert admin.req("PATCH", "/backends/hb-b", {"url": "x"}).status_code == 405
    assert snapshot(admin) == before and admin.generation() == g0


def test_metrics_query_validation(admin):
    r = admin.get("/metrics?group_by=api,planet")
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "group_by"
    assert admin.get("/metrics?from=yesterday").status_code == 400
    r = admin.get("/metrics?api=x'%20OR%201=1")
    assert r.status_code == 200
    assert r.json()["series"][0]["count"] == 0


def test_import_and_publish(admin, manage, workroot):
    doc = {"format": 1, "generation": 999,
           "named_values": {"imp-nv": {"value": "v", "secret": False}},
           "backends": {"imp-b": {"url": "http://127.0.0.1:9/{{imp-nv}}"}},
           "apis": [{"id": "imp-api", "path": "imp", "backend": "imp-b"}],
           "products": [{"id": "imp-p", "apis": ["imp-api"]}],
           "subscriptions": [{"id": "imp-s", "scope": "product:imp-p",
                              "keys_sha256": [hashlib.sha256(b"k").hexdigest()]}]}
    g0 = admin.generation()
    p = manage.command("import", "-", input=json.dumps(doc))
    assert "imported" in p.stdout
    assert admin.generation() == g0 + 1
    assert admin.get("/apis/imp-api").json()["backend"] == "imp-b"
    assert admin.get("/named-values/imp-nv").json()["value"] == "v"
    # invalid alone: exit 1, errors with paths, nothing changed
    bad = dict(doc, apis=[{"id": "imp-api", "path": "imp", "backend": "missing"}])
    p = manage.command("import", "-", input=json.dumps(bad), check=False)
    assert p.returncode == 1 and "apis[0].backend" in p.stderr
    assert admin.generation() == g0 + 1
    assert manage.command("import", check=False).returncode == 2
    # publish: every gateway's document and signature; gone gateways removed
    admin.ok("PUT", "/gateways/pub-1", {"apis": ["imp-api"]})
    out = pathlib.Path(workroot) / "pub"
    out.mkdir()
    os.chown(str(out), *www_ids())
    stale = out / "gateways" / "gone"
    stale.mkdir(parents=True)
    (stale / "configuration").write_text("{}")
    os.chown(str(out / "gateways"), *www_ids())
    os.chown(str(stale), *www_ids())
    os.chown(str(stale / "configuration"), *www_ids())
    manage.command("publish", str(out))
    pub = json.loads((out / "gateways" / "pub-1" / "configuration").read_text())
    assert pub["generation"] == admin.generation()
    assert [a["id"] for a in pub["apis"]] == ["imp-api"]
    assert (out / "gateways" / "pub-1" / "configuration.sig").read_text().startswith("ed25519=")
    # secret named values travel in documents: not world-readable
    assert os.stat(out / "gateways" / "pub-1" / "configuration").st_mode & 0o777 == 0o640
    assert not stale.exists()
    assert admin.delete("/gateways/pub-1").status_code == 204


import os  # noqa: E402
import pathlib  # noqa: E402
from servers import www_ids  # noqa: E402
