"""Hot reload: a configuration renamed into place is served within ~2 s
while a bounded load runs, without a single failed request; a bad one is
ignored and the old one keeps serving."""

import copy
import os
import threading
import time

from harness import RELOAD_INTERVAL_S, wait_until
from servers import parse_echo

LOAD_THREADS = 4
LOAD_MAX_REQUESTS = 4000     # per thread: bounds the load on slow set-ups


class Load:
    """LOAD_THREADS clients requesting /api/echo/load-N in a loop until
    stopped; every answer that is not a 200 from the echo is a failure."""

    def __init__(self, gw):
        self.gw = gw
        self.stop_flag = threading.Event()
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(LOAD_THREADS)]

    def _run(self, i):
        for n in range(LOAD_MAX_REQUESTS):
            if self.stop_flag.is_set():
                return
            target = "/api/echo/load-%d-%d" % (i, n)
            try:
                r = self.gw.get(target, timeout=20)
                good = r.status == 200 and parse_echo(r.body).get("uri") == "/echo/base/load-%d-%d" % (i, n)
                what = r
            except Exception as e:  # noqa: BLE001 - a failure to report
                good, what = False, e
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failures.append((target, what))

    def __enter__(self):
        for t in self.threads:
            t.start()
        # the load is running before anything changes
        wait_until(lambda: self.ok >= LOAD_THREADS, 20, "the load to get going")
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)


def with_fresh_api(base, nginx):
    doc = copy.deepcopy(base)
    doc["backends"]["fresh"] = {"url": nginx.url("/echo/fresh")}
    doc["apis"].append({"id": "fresh", "path": "fresh", "backend": "fresh",
                        "subscription_required": False})
    return doc


def test_hot_reload_under_load(gw, nginx, base):
    old_gen = gw.config.generation
    try:
        with Load(gw) as load:
            r = gw.get("/api/fresh/x")
            assert r.status == 404, r
            gen = gw.config.write(with_fresh_api(base, nginx))
            t0 = time.monotonic()
            first = wait_until(lambda: gw.get("/api/fresh/x").status == 200 and time.monotonic(),
                               5, "the new route to be served")
            assert first - t0 <= 2.2, "new route served only after %.2fs" % (first - t0)
            # a re-check interval after the rename every process serves it
            wait_until(lambda: time.monotonic() > gw.config.written_at + RELOAD_INTERVAL_S + 0.1,
                       3, "one re-check interval")
            for i in range(12):
                r = gw.get("/api/fresh/y%d" % i)
                assert r.status == 200, (i, r)
                assert parse_echo(r.body)["uri"] == "/echo/fresh/y%d" % i
            assert gw.generation_served() == gen
            # the load keeps running through the whole switch
            before = load.ok
            wait_until(lambda: load.ok >= before + LOAD_THREADS, 10, "more load after the switch")
        assert load.failures == [], "%d of %d requests failed during the reload: %r" % (
            len(load.failures), load.ok + len(load.failures), load.failures[:5])
        assert load.ok > 0
    finally:
        gw.apply(base)
    assert gw.config.generation > old_gen


# a torn file, and a well-formed one that fails validation (each costs a
# re-check interval of watching; --check and the unit tests cover the rest)
BAD_DOCUMENTS = [
    b'{"format": 1, "generation": 999999, "apis": [',
    b'{"format": 1, "generation": 999999, "apis": [{"id": "x", "path": "x", "backend": "nope"}]}',
]


def watch_bad_file(gw, doc, good_gens):
    """Writes the bad doc, then watches for longer than the re-check
    interval (every process has looked at it): everything keeps being
    served by a good configuration."""
    gw.config.write_bytes(doc)
    until = gw.config.written_at + RELOAD_INTERVAL_S + 0.5
    while time.monotonic() < until:
        for g in gw.burst_generations(4):
            assert g in good_gens, "with a bad file, health said %r (good: %r)" % (g, good_gens)
        r = gw.get("/api/hb/get")
        assert r.status == 200, (doc, r)




def test_bad_config_ignored_old_one_keeps_serving(gw, base):
    try:
        with Load(gw) as load:
            for i, doc in enumerate(BAD_DOCUMENTS):
                # each bad file replaces a good one (the agent never installs a
                # bad one): config.json.prev, what a process with nothing
                # loaded falls back to (every CGI request), is that good one
                if i:
                    # the bad file goes as an admin would take it back: the
                    # good one it replaced renamed over it. Installing the
                    # next good one over the bad file would make .prev the
                    # bad file a moment before the document is good again:
                    # a CGI request then finds neither (the agent never
                    # installs over a bad file)
                    os.replace(gw.config.path + ".prev", gw.config.path)
                gen = gw.apply(base)
                watch_bad_file(gw, doc, {gen})
        assert load.failures == [], "%d requests failed with a bad file: %r" % (
            len(load.failures), load.failures[:5])
    finally:
        gw.apply(base)


def test_bad_config_after_a_good_one_a_process_never_saw(gw, base, nginx):
    """Generation N is served everywhere; N+1 is installed and served by a
    single request, so most processes have not loaded it yet (under CGI,
    none has: each request is a new process); then a bad file follows. The
    last good configuration is N+1, for every process."""
    gen = gw.config.write(with_fresh_api(base, nginx))
    try:
        wait_until(lambda: time.monotonic() > gw.config.written_at + RELOAD_INTERVAL_S + 0.1,
                   3, "one re-check interval")
        r = gw.get("/api/fresh/once")
        assert r.status == 200, r
        watch_bad_file(gw, BAD_DOCUMENTS[0], {gen})
    finally:
        gw.apply(base)
