"""Fixtures of the integration tests (run as root: tests/run-integration).

  binary      build/hostgate-fcgi (or $HOSTGATE_FCGI)
  workroot    one temporary directory for the run (kept when a test failed,
              or with HOSTGATE_KEEP_TMP=1)
  httpbin     Debian's httpbin under gunicorn            (session)
  nginx       static files, DAV sink, exact echo, canary (session)
  faulty      a backend that breaks HTTP on purpose       (session)
  gw          the gateway behind each of the five web-server set-ups,
              serving base_config (session, parametrized: SETUPS)
  base        the base configuration document of gw
  make_gateway  starts an extra gateway (function scope), e.g. without config

A failing test shows what every server logged while it ran.
"""

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from harness import LOGS, REPO  # noqa: E402
from servers import (SETUPS, FaultyUpstream, Gateway, Httpbin, Nginx,  # noqa: E402
                     base_config, closed_port)


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("the integration tests start Apache and lighttpd as their "
                                "www-data user: run them as root (tests/run-integration)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (tests/run-integration runs it with --dist
    loadgroup) the tests of one module on one set-up stay together, in order,
    on one worker, as in a serial run: a module's document is installed once
    per set-up there, and tests that build on each other (test_sync_e2e's
    stack) see what the earlier ones did. tryfirst: xdist's worker reads the
    mark in this same hook."""
    for item in items:
        cs = getattr(item, "callspec", None)
        params = cs.params if cs is not None else {}
        setup = params.get("gw") or params.get("stack") or params.get("setup") or "-"
        item.add_marker(pytest.mark.xdist_group("%s:%s" % (item.module.__name__, setup)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    LOGS.mark()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call"):
        for path, text in LOGS.since_mark():
            rep.sections.append(("log %s" % path, text))


@pytest.fixture
def known_bug(request):
    """known_bug(gw, setups, reason[, strict]): marks this test an expected
    failure on those set-ups ("*": all) for an open hostgate-fcgi bug. Strict:
    once the bug is fixed the test passes, which fails the run until the
    marker is removed. strict=False only where the bug shows as a race."""
    def mark(gw, setups, reason, strict=True):
        if setups == "*" or gw.setup in setups:
            request.node.add_marker(pytest.mark.xfail(reason=reason, strict=strict))
    return mark


@pytest.fixture(scope="session")
def binary():
    path = os.environ.get("HOSTGATE_FCGI", os.path.join(REPO, "build", "hostgate-fcgi"))
    if not os.access(path, os.X_OK):
        raise AssertionError("no hostgate-fcgi at '%s': run make first" % path)
    return os.path.abspath(path)


@pytest.fixture(scope="session")
def workroot(request):
    d = tempfile.mkdtemp(prefix="hostgate-it-")
    # the repository may sit under a 0700 directory: everything www-data
    # needs (binary copies, configuration, sockets, logs) lives in here
    os.chmod(d, 0o755)
    yield d
    if request.session.testsfailed or os.environ.get("HOSTGATE_KEEP_TMP") == "1":
        sys.stderr.write("\nintegration test files kept in %s\n" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def httpbin(workroot):
    s = Httpbin(workroot)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def tls_upstream(workroot):
    """One TLS nginx with a test CA for every module of a session (a fixture
    imported into several modules would be one per module, each making a
    new CA where the first still serves)."""
    from sync_e2e_helpers import TlsUpstream
    u = TlsUpstream(os.path.join(workroot, "tls-upstream"))
    yield u
    u.stop()


@pytest.fixture(scope="session")
def nginx(workroot):
    s = Nginx(workroot)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def dead_port():
    return closed_port()


@pytest.fixture(scope="session")
def faulty():
    s = FaultyUpstream()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def base(httpbin, nginx, dead_port, faulty):
    return base_config(httpbin, nginx, dead_port, faulty)


_failed_setups = {}


@pytest.fixture(scope="session", params=SETUPS)
def gw(request, workroot, binary, base):
    if request.param in _failed_setups:
        # one start-up failure is enough: report it, don't retry per test
        raise AssertionError("set-up %s did not start: %s" % (
            request.param, _failed_setups[request.param]))
    g = Gateway(workroot, request.param, binary)
    try:
        gen = g.config.write(base)
        g.start()
        g.wait_generation(gen, timeout=20)
    except BaseException as e:
        _failed_setups[request.param] = str(e).splitlines()[0] if str(e) else repr(e)
        g.stop()
        raise
    yield g
    g.stop()


@pytest.fixture
def make_gateway(workroot, binary):
    """Starts a further gateway: make_gateway(setup, tag) -> started Gateway
    whose configuration file does not exist yet. Stopped after the test."""
    made = []

    def make(setup, tag):
        g = Gateway(workroot, setup, binary, tag=tag)
        made.append(g)
        return g.start()
    yield make
    for g in made:
        g.stop()
