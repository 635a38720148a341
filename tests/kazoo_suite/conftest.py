"""kazoo's own test suite, run through kazoo's own harness, unchanged.

Each test module here re-exports one module of ``kazoo.tests``. kazoo's harness starts its
cluster with `java ... QuorumPeerMain zoo.cfg` from PATH; for the default target, zkserver,
tests/support/java-shim/java comes first on PATH and turns that command into
`python -m zkserver start <kazoo's -D flags> <kazoo's zoo.cfg>` (tests/support/kazoo_cluster.py).
Nothing of kazoo is patched: its zoo.cfg, jaas.conf, JKS stores and flags reach zkserver as they
reach Java. A KDC for kazoo's GSSAPI tests is started when the MIT tools are installed.

    python -m pytest tests/kazoo_suite                                   # zkserver, one server, ~2.5 min
    ZKSERVER_KAZOO_TARGET=apache python -m pytest tests/kazoo_suite      # the same on Apache 3.8
    ZOOKEEPER_CLUSTER_SIZE=3 python -m pytest tests/kazoo_suite          # 3 members (kazoo's default), ~3 min
    ZOOKEEPER_CLUSTER_SIZE=3 ZOOKEEPER_OBSERVER_START_ID=3 ...           # 2 voters and an observer

The default size here is 1; CI (.ci/test) runs the suite at size 1 and again at size 3. The
tests in NEEDS_ENSEMBLE fail against one Apache server too; they are not run at size 1, nor those
in NEEDS_THREE_VOTERS with fewer than three voters. Every other test passes against Apache 3.8
through this same harness, at the same size, and must pass against zkserver; ENSEMBLE_GAPS
lists the exceptions zkserver's ensemble still has, each with its reason. kazoo's gevent and
eventlet handler tests skip on both unless those packages are installed (they are not in the
test extra).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import pytest

from tests.support.kazoo_cluster import TARGETS, kazoo_environment, kazoo_kdc, server_logs

log = logging.getLogger(__name__)

TEST_TIMEOUT = 120  # per kazoo test; the slowest (session expiry, restarts) take ~15 s
DEFAULT_SIZE = 1

ENSEMBLE = "needs an ensemble: fails against one Apache 3.8 server through the same harness too"
RECONFIG = ("reconfig needs an ensemble: one Apache 3.8 server through the same harness answers"
            " UNIMPLEMENTED too")
# node id below tests/kazoo_suite/ -> why it cannot pass with one server
NEEDS_ENSEMBLE: dict[str, str] = {
    "test_kazoo_client.py::TestClient::test_update_host_list": ENSEMBLE,
    "test_kazoo_connection.py::TestReadOnlyMode::test_read_only": ENSEMBLE,
    "test_kazoo_client.py::TestReconfig::test_add_remove_observer": RECONFIG,
    "test_kazoo_client.py::TestReconfig::test_bad_input": RECONFIG,
    "test_kazoo_client.py::TestReconfig::test_no_super_auth": RECONFIG,
}


# Stops member 1 and expects the others to serve on: with two voters and an observer the rest
# have no quorum (Apache's ensemble fails it the same way).
NEEDS_THREE_VOTERS: dict[str, str] = {
    "test_kazoo_client.py::TestClient::test_update_host_list": "stopping a voter leaves the others without"
                                                                " a quorum when there are fewer than three voters",
}
# node id -> why zkserver's ensemble fails a test that passes against Apache's ensemble of the
# same size through the same harness. strict: a fix turns the XPASS into a failure to remove it here.
ENSEMBLE_GAPS: dict[str, str] = {}


def target() -> str:
    name = os.environ.get("ZKSERVER_KAZOO_TARGET", "zkserver")
    if name not in TARGETS:
        raise pytest.UsageError(f"ZKSERVER_KAZOO_TARGET={name!r}: expected one of {', '.join(TARGETS)}")
    return name


def cluster_size() -> int:
    return int(os.environ.get("ZOOKEEPER_CLUSTER_SIZE", DEFAULT_SIZE))


def observer_start_id() -> int:
    """kazoo's ZOOKEEPER_OBSERVER_START_ID: members from this id on are observers (-1: none)."""
    return int(os.environ.get("ZOOKEEPER_OBSERVER_START_ID", -1))


def voters() -> int:
    first_observer = observer_start_id()
    return cluster_size() if first_observer == -1 else min(cluster_size(), first_observer - 1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kazoo: one of kazoo's own tests, through kazoo's own harness")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "kazoo_suite/" not in item.nodeid:
            continue
        item.add_marker(pytest.mark.kazoo)
        item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))
        item.add_marker(pytest.mark.apache)  # the apache target, and the classpath, need the package
        test_id = item.nodeid.split("kazoo_suite/", 1)[-1]
        why = NEEDS_ENSEMBLE.get(test_id)
        if why is not None and cluster_size() == 1:
            item.add_marker(pytest.mark.xfail(reason=why, run=False, strict=True))
        why = NEEDS_THREE_VOTERS.get(test_id)
        if why is not None and cluster_size() > 1 and voters() < 3:
            item.add_marker(pytest.mark.xfail(reason=why, run=False, strict=True))
        gap = ENSEMBLE_GAPS.get(test_id)
        if gap is not None and cluster_size() > 1 and target() == "zkserver":
            item.add_marker(pytest.mark.xfail(reason=gap, strict=True))


@pytest.fixture(scope="package", autouse=True)
def _kazoo_harness_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """kazoo's variables for the whole package; kazoo's cluster is terminated at its end."""
    from tests.support.kdc import kdc_available
    from tests.support.servers import skip_if_no_apache

    skip_if_no_apache()  # the JVM target, and the Apache classpath kazoo passes in both
    # Without the MIT tools KRB5_TEST_ENV stays unset and kazoo skips its GSSAPI tests itself
    # (in CI .ci/test installs them).
    kdc = kazoo_kdc(tmp_path_factory.mktemp("kazoo-kdc")) if kdc_available() else contextlib.nullcontext({})
    with kdc as kdc_env, kazoo_environment(target(), size=cluster_size(), observer_start_id=observer_start_id(),
                                           extra=kdc_env):
        yield


def pytest_exception_interact(node: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
    # As kazoo's own conftest: show the servers' logs when a test fails.
    if "kazoo_suite/" not in getattr(node, "nodeid", ""):
        return
    from kazoo.testing import harness

    if harness.CLUSTER is not None:
        for line in server_logs(harness.CLUSTER):
            log.error("%s", line)
