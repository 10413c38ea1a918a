"""SIGKILL the agent at random moments while it installs documents, many
times: afterwards the installed file (and .prev, and the status file) is always
one whole document that was served, never a torn one, and the next run works."""
import json
import random
import signal
import subprocess
import threading
import time

from sync_helpers import Served, agent_binary, doc

KILLS = 200


class Changing(Served):
    """Serves a new, larger-than-a-page document (a higher generation) on every GET."""

    def __init__(self):
        super().__init__(b"")
        self.lock = threading.Lock()
        self.generation = 0
        self.served = {}

    @property
    def body(self):
        with self.lock:
            self.generation += 1
            g = self.generation
        b = doc(g, pad=random.randint(64 * 1024, 1024 * 1024))
        self.served[b] = g
        return b

    @body.setter
    def body(self, value):
        pass


def test_sigkill_never_leaves_a_torn_document(make_agent, mgmt):
    served = Changing()
    mgmt.routes[mgmt.path("configuration")] = served
    a = make_agent(mgmt.url, report="false")
    argv = [agent_binary(), "-c", str(a.conf_path), "--once"]

    # how long one whole run takes here, so that kills land all over it
    runs = []
    for _ in range(3):
        t0 = time.monotonic()
        assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
        runs.append(time.monotonic() - t0)
    window = max(runs) * 1.3

    rng = random.Random(4)
    changed = unchanged = 0
    for i in range(KILLS):
        before = a.installed()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, window))      # the random moment to kill at
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        now = a.installed()
        assert now in served.served, "kill %d left a document that was never served" % i
        json.loads(now)
        prev = a.conf_dir / "config.json.prev"
        if prev.exists():
            assert prev.read_bytes() in served.served, "kill %d tore config.json.prev" % i
        status = a.conf_dir / "sync-status.json"
        if status.exists():
            json.loads(status.read_text())
        if now == before:
            unchanged += 1
        else:
            changed += 1
            assert served.served[now] > served.served[before]
    # the kills landed both before and after the rename
    assert changed >= 5 and unchanged >= 5, (changed, unchanged)

    # and the next agent runs normally, cleaning up what the killed ones left
    p = subprocess.run(argv, capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert a.installed() in served.served
    assert served.served[a.installed()] == served.generation
    assert not list(a.conf_dir.glob("config.json.tmp.*"))
    assert not list(a.conf_dir.glob("config.json.image.tmp.*"))
    assert (a.conf_dir / "config.json.image").is_file()
