"""Where hostgate-sync keeps its files, and that it follows no link a hostile
co-tenant could plant (issue 8, docs/security-notes/layout.md): every file of
the agent's own lives beside config_path in the configuration directory, the
app's state directory is only read (the metrics), and the metrics outbox is
never followed through a symbolic link."""
import json
import os
import subprocess

from sync_helpers import doc

SECRET = b"root-only secret the agent must never ship\n"


def test_agent_files_live_beside_the_configuration(make_agent, mgmt):
    mgmt.serve(doc(4), etag='"e4"')
    a = make_agent(mgmt.url)
    rc, out = a.run()
    assert rc == 0, out
    for name in ("config.json", "config.json.image", "sync-status.json", "sync-state.json",
                 "instance-id", "sync.lock"):
        assert (a.conf_dir / name).is_file(), name
    # the web server's user writes the state directory: nothing the agent or
    # the app trusts may come from there
    assert sorted(os.listdir(a.state)) == []


def outbox_entry(seq, body):
    return "%016d-1-0.json" % seq, body


def test_outbox_entry_link_is_not_followed(make_agent, mgmt, tmp_path):
    """A link planted in the outbox would have the agent read any file it
    can (and POST it to the endpoint), then unlink it: the link is skipped,
    its target neither sent nor removed, the real entries still shipped."""
    mgmt.serve(doc(1))
    a = make_agent(mgmt.url)
    assert a.run()[0] == 0
    outbox = a.conf_dir / "metrics-outbox"
    assert outbox.is_dir()
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    link_name, _ = outbox_entry(1, None)
    os.symlink(secret, outbox / link_name)
    real_name, real = outbox_entry(2, b'{"instance": "x", "windows": []}')
    (outbox / real_name).write_bytes(real)
    rc, out = a.run()
    assert rc == 0, out
    sent = [r["body"] for r in mgmt.got("POST", "metrics")]
    assert real in sent, sent
    assert all(SECRET not in b for b in sent), "the link's target was shipped"
    assert secret.read_bytes() == SECRET
    assert not (outbox / real_name).exists(), "the real entry was not acknowledged"
    assert (outbox / link_name).is_symlink()


def test_outbox_directory_link_is_refused(make_agent, mgmt, tmp_path):
    """metrics-outbox itself a link to somewhere else: the agent neither
    reads, writes nor removes anything there, and says why."""
    mgmt.serve(doc(1))
    a = make_agent(mgmt.url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim_name, victim = outbox_entry(1, b'{"not": "the agent\'s"}')
    (elsewhere / victim_name).write_bytes(victim)
    os.symlink(elsewhere, a.conf_dir / "metrics-outbox")
    rc, out = a.run()
    assert rc == 0, out     # metrics are never fatal
    assert "refusing the metrics outbox" in out, out
    assert mgmt.got("POST", "metrics") == []
    assert sorted(os.listdir(elsewhere)) == [victim_name]
    assert (elsewhere / victim_name).read_bytes() == victim


def test_fifo_as_installed_configuration_does_not_hang(make_agent, mgmt):
    """A FIFO where the installed document should be: reading it must not
    wait for a writer; the agent installs the offered document over it."""
    mgmt.serve(doc(3))
    a = make_agent(mgmt.url)
    os.mkfifo(a.config)
    try:
        rc, out = a.run(timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError("the agent hung opening a FIFO as its configuration")
    assert rc == 0, out
    assert a.installed() == doc(3)
    assert json.loads(a.installed())["generation"] == 3
