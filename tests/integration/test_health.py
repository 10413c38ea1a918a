"""Nothing internal on the public health path (issue 8, item 8).

The health path answers anyone: the status, the generation and the
configuration's age. The agent's last sync (its error text holds the
management URL and the gateway id) only goes to clients whose own address,
REMOTE_ADDR, is in gateway.metrics.allow; X-Forwarded-For never counts, not
even from a trusted proxy.
"""

import json
import os

import pytest

from harness import wait_until
from servers import www_ids

HEALTH = "/status-0123456789abcdef"
MGMT_URL = "https://mgmt.internal.example:8443/gateways/gw-7f3a91c2/config"
GATEWAY_ID = "gw-7f3a91c2"
ERROR = "cannot fetch '%s': HTTP 401 for gateway '%s'" % (MGMT_URL, GATEWAY_ID)
SECRETS = (MGMT_URL, GATEWAY_ID, "mgmt.internal.example", "HTTP 401")


@pytest.fixture
def sync_status(gw):
    """A failed sync, as the agent writes it: beside the configuration, in the
    directory only the agent writes (docs/deploying.md), 0640 with the web
    server's group."""
    path = os.path.join(os.path.dirname(gw.config.path), "sync-status.json")
    with open(path, "w") as f:
        json.dump({"time": "2025-03-01T12:00:10Z", "result": "error", "error": ERROR,
                   "generation": 1, "etag": "\"v1\"", "interval_s": 10,
                   "last_success": None}, f)
    os.chown(path, 0, www_ids()[1])
    os.chmod(path, 0o640)
    yield path
    os.unlink(path)


def health(gw, headers=None):
    r = gw.get(gw.mount + HEALTH, headers=headers, timeout=10)
    return r, r.json()


def assert_public(r, doc):
    assert r.status == 200, r
    assert set(doc) == {"status", "generation", "config_age_s"}, doc
    for s in SECRETS:
        assert s not in r.text(), (s, r)


def with_gateway(base, **gateway):
    return dict(base, gateway=dict(base["gateway"], **gateway))


def test_public_answer_holds_no_sync_details(gw, base, sync_status):
    """metrics.allow without the client's address: status, generation and
    age only, even when a forwarded-for header names an allowed address
    and the peer is a trusted proxy."""
    gen = gw.apply(with_gateway(base, trusted_proxies=["127.0.0.0/8"],
                                metrics={"path": "/prom", "allow": ["192.0.2.0/24"]}))
    try:
        for headers in (None, [("X-Forwarded-For", "192.0.2.5")],
                        [("X-Forwarded-For", "192.0.2.5, 127.0.0.1")]):
            r, doc = health(gw, headers)
            assert_public(r, doc)
            assert doc["status"] == "stale", doc    # the failed sync still shows as such
            assert doc["generation"] == gen, doc
            assert isinstance(doc["config_age_s"], int), doc
    finally:
        gw.apply(base)


def test_public_answer_without_metrics_allow(gw, sync_status):
    """The base document has no metrics section: nobody gets the details."""
    r, doc = health(gw)
    assert_public(r, doc)


def test_allowed_client_sees_last_sync(gw, base, sync_status):
    """A client in metrics.allow (by REMOTE_ADDR) sees the agent's last
    sync, error text included."""
    gw.apply(with_gateway(base, metrics={"path": "/prom", "allow": ["127.0.0.1/32", "::1"]}))
    try:
        r, doc = health(gw)
        assert r.status == 200, r
        assert doc["status"] == "stale", doc
        assert doc["last_sync"] == {"time": "2025-03-01T12:00:10Z", "result": "error",
                                    "error": ERROR}, doc
    finally:
        gw.apply(base)


def test_no_config_answer_holds_no_sync_details(gw, make_gateway):
    """Before any document is loaded there is no allow list: the 503 says
    no-config and nothing else."""
    g = make_gateway(gw.setup, "-health-noconf")
    path = os.path.join(g.state_dir, "sync-status.json")
    with open(path, "w") as f:
        json.dump({"time": "2025-03-01T12:00:10Z", "result": "error", "error": ERROR,
                   "interval_s": 10}, f)
    os.chmod(path, 0o644)
    r = g.get(g.mount + HEALTH, timeout=10)
    assert r.status == 503, r
    doc = r.json()
    assert doc["status"] == "no-config", doc
    assert "last_sync" not in doc, doc
    for s in SECRETS:
        assert s not in r.text(), (s, r)


def test_allowed_client_sees_where_the_configuration_comes_from(gw, base):
    """The details say what this process serves from — the image, or the
    document compiled in memory and why not the image — and the first error
    of a document that did not load (issue 9: a document that fails to
    compile keeps the old configuration, with the reason on the health
    path's detail). Each health answer comes from one process, so every
    check polls until the process that answers has looked."""
    allowed = with_gateway(base, metrics={"path": "/prom", "allow": ["127.0.0.1/32", "::1"]})
    gen = gw.apply(allowed)
    try:
        if gw.config.compiler:
            assert health(gw)[1]["config"] == {"from": "image", "error": None, "image": None}
        # the next generation without its image: served from the document
        gw.config.generation += 1
        doc = dict(allowed, generation=gw.config.generation)
        gw.config.write_bytes(json.dumps(doc).encode(), image=False)
        gw.wait_generation(gw.config.generation)
        cfg = health(gw)[1]["config"]
        assert cfg["from"] == "document" and cfg["error"] is None, cfg
        if gw.config.compiler:
            # the process that answers may not be the one that looked at
            # the image last (mod_fcgid starts and stops them): poll
            wait_until(lambda: (health(gw)[1]["config"]["image"] or "").startswith("stale: "),
                       10, "a process to say why it does not use the image")
        # then a document that does not validate: the last good one serves
        gw.config.write_bytes(json.dumps(dict(doc, generation=gen + 9, apis=[
            {"id": "x", "path": "x", "backend": "nope"}])).encode(), image=False)
        wait_until(lambda: (health(gw)[1]["config"]["error"] or "").startswith(
            "apis[0].backend: 'nope' is not a backend"), 10, "the load error in the details")
        r, d = health(gw)
        assert r.status == 200 and d["generation"] == gw.config.generation, d
    finally:
        gw.apply(base)
