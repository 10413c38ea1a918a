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
