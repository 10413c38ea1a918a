"""hostgate-manage runs the three ways hostgate-fcgi does: under a process
manager (the other tests: lighttpd bin-path), as its own --listen server
behind lighttpd's "socket", and as plain CGI; and its schema is migrated on
start. Each way serves the same admin API and gateway face over the same
kind of database."""
import hashlib
import json
import subprocess

import pytest
import requests

from manage_helpers import Manage, WWW_USER


@pytest.fixture(scope="module")
def listening(workroot):
    m = Manage(workroot, mode="listen", name="manage-listen")
    yield m
    m.stop()


def test_listen_mode(listening):
    a = listening.admin
    assert a.put("/backends/l-b", {"url": "http://127.0.0.1:9/l"}).status_code == 201
    assert a.put("/apis/l-api", {"path": "l", "backend": "l-b"}).status_code == 201
    assert a.put("/gateways/l-gw", {"apis": ["l-api"]}).status_code == 201
    tok = a.ok("POST", "/gateways/l-gw/tokens")["token"]
    r = requests.get(listening.url + "/gateways/l-gw/configuration", timeout=10,
                     headers={"Authorization": "GatewayKey " + tok})
    assert r.status_code == 200 and json.loads(r.content)["apis"][0]["id"] == "l-api"
    assert r.headers["Hostgate-Signature"].startswith("ed25519=")
    # a burst of concurrent writes from several workers: one transaction each
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        codes = list(ex.map(lambda i: a.put("/backends/l-c%d" % i,
                                            {"url": "http://127.0.0.1:9/%d" % i}).status_code,
                            range(24)))
    assert codes == [201] * 24
    gen = a.generation()
    assert gen == 3 + 24


def test_cgi_mode(listening):
    auth = {"Authorization": "Bearer " + listening.admin_token}
    st, h, body = listening.cgi("PUT", "/admin/v1/backends/cgi-b",
                                b'{"url": "http://127.0.0.1:9/cgi"}', auth)
    assert st == 201, body
    assert h["ETag"]
    st, h, body = listening.cgi("GET", "/admin/v1/backends/cgi-b", headers=auth)
    assert st == 200 and json.loads(body)["url"] == "http://127.0.0.1:9/cgi"
    # the server mode sees what CGI wrote: one database
    assert listening.admin.get("/backends/cgi-b").status_code == 200
    st, _, body = listening.cgi("GET", "/admin/v1/backends/cgi-b")
    assert st == 401
    st, _, body = listening.cgi("PUT", "/admin/v1/backends/cgi-b", b"{", auth)
    assert st == 400 and b"not valid JSON" in body


def test_expired_token_is_401(listening):
    """A gateway token past its expiry (written straight into the database:
    the API refuses to make one) is refused like a wrong one."""
    token = "expired-token-for-test-0123456789abcdef"
    h = hashlib.sha256(token.encode()).hexdigest()
    subprocess.run(["sqlite3", listening.db,
                    "INSERT INTO tokens VALUES ('%s', 'gateway', 'l-gw', 1)" % h],
                   check=True, user=WWW_USER, group=WWW_USER, timeout=30)
    r = requests.get(listening.url + "/gateways/l-gw/configuration", timeout=10,
                     headers={"Authorization": "GatewayKey " + token})
    assert r.status_code == 401


def test_schema_is_versioned_and_migrated(listening, workroot):
    out = subprocess.run(["sqlite3", listening.db, "PRAGMA user_version; PRAGMA journal_mode;"],
                         check=True, capture_output=True, text=True, user=WWW_USER,
                         group=WWW_USER).stdout.split()
    assert out == ["2", "wal"]
    # a version-1 database (before the sessions table) is migrated on start
    old = workroot + "/v1.db"
    subprocess.run(["sqlite3", old, "PRAGMA user_version = 1; CREATE TABLE meta (key TEXT "
                    "PRIMARY KEY, value INTEGER NOT NULL); INSERT INTO meta VALUES "
                    "('generation', 5); CREATE TABLE tokens (hash TEXT PRIMARY KEY, kind TEXT "
                    "NOT NULL, owner TEXT NOT NULL, expires INTEGER NOT NULL);"], check=True)
    p = subprocess.run([listening.bin, "admin-token", "x"], capture_output=True, text=True,
                       env={"HOSTGATE_MANAGE_DB": old})
    assert p.returncode == 0, p.stderr
    out = subprocess.run(["sqlite3", old, "PRAGMA user_version; SELECT count(*) FROM sessions"],
                         check=True, capture_output=True, text=True).stdout.split()
    assert out == ["2", "0"]
    # a database from a newer program is refused, not damaged
    subprocess.run(["sqlite3", old, "PRAGMA user_version = 99"], check=True)
    p = subprocess.run([listening.bin, "admin-token", "x"], capture_output=True, text=True,
                       env={"HOSTGATE_MANAGE_DB": old})
    assert p.returncode == 2 and "schema version 99" in p.stderr
