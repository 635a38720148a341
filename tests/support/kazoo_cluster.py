"""kazoo's own test cluster, unchanged, against zkserver or Apache ZooKeeper 3.8.

kazoo's harness (`kazoo.testing.harness.get_global_cluster`) reads its settings from the
environment (ZOOKEEPER_VERSION, ZOOKEEPER_CLASSPATH, ZOOKEEPER_CLUSTER_SIZE,
ZOOKEEPER_PORT_OFFSET, ZOOKEEPER_OBSERVER_START_ID, ZOOKEEPER_JAAS_AUTH, KRB5_*), writes
zoo.cfg, jaas.conf, JKS key stores and a log4j file per server, and starts
`java -cp ... -D... org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg` from PATH.
`kazoo_environment` sets those variables for one run and nothing else; the target only decides
which `java` comes first on PATH: the JVM (Apache) or tests/support/java-shim/java, which
execs `python -m zkserver start <the -D flags> <zoo.cfg>` in the same process. The files and
flags are kazoo's in both cases.

The cluster size is one setting (`size`): kazoo's default is 3, which needs the ensemble.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.ports import free_port_block
from tests.support.servers import APACHE_CLASSPATH, REPO_ROOT
from zkserver import ZOOKEEPER_COMPAT_VERSION

SHIM_DIR = REPO_ROOT / "tests" / "support" / "java-shim"
TARGETS = ("zkserver", "apache")
# kazoo's ZookeeperCluster gives server i the ports offset + 10*i .. + 4.
PORTS_PER_SERVER = 10
# What each target reports as its version (kazoo's test_build compares ZOOKEEPER_VERSION with
# the server's answer; its harness only asks whether it is at least 3.5).
VERSIONS = {"apache": "3.8.0", "zkserver": ZOOKEEPER_COMPAT_VERSION}


def kazoo_env(target: str, size: int = 1, observer_start_id: int = -1) -> dict[str, str]:
    """The variables kazoo's harness reads, for one run of `size` servers on free ports."""
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: expected one of {', '.join(TARGETS)}")
    env = {
        "ZOOKEEPER_VERSION": VERSIONS[target],
        # Apache needs netty-codec/netty-resolver for kazoo's NettyServerCnxnFactory line, and a
        # log binding for kazoo's log4j file; the shim ignores -cp.
        "ZOOKEEPER_CLASSPATH": APACHE_CLASSPATH,
        "ZOOKEEPER_CLUSTER_SIZE": str(size),
        "ZOOKEEPER_OBSERVER_START_ID": str(observer_start_id),
        "ZOOKEEPER_PORT_OFFSET": str(free_port_block(PORTS_PER_SERVER * size)),
    }
    if target == "zkserver":
        env["PATH"] = f"{SHIM_DIR}{os.pathsep}{os.environ.get('PATH', '')}"
        env["ZKSERVER_SHIM_PYTHON"] = sys.executable
    return env


def terminate_kazoo_cluster() -> None:
    """Stop kazoo's global cluster (its servers by PID) and forget it."""
    from kazoo.testing import harness

    if harness.CLUSTER is not None:
        harness.CLUSTER.terminate()
    harness.CLUSTER = None
    harness.CLUSTER_CONF = None


@contextlib.contextmanager
def kazoo_environment(target: str, size: int = 1, observer_start_id: int = -1,
                      extra: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """kazoo's variables set (and ZOOKEEPER_JAAS_AUTH unset) for the block; on exit kazoo's
    cluster is terminated and the environment restored."""
    env = {**kazoo_env(target, size, observer_start_id), **(extra or {})}
    terminate_kazoo_cluster()  # a cluster from another run would be reused with its old PATH
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ZOOKEEPER_JAAS_AUTH", raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        try:
            yield env
        finally:
            terminate_kazoo_cluster()


def server_logs(cluster: object, lines: int = 60) -> list[str]:
    """The tail of each server's log files under its working directory (Apache's zookeeper.log
    from kazoo's log4j file, zkserver's zkserver.log in -Dzookeeper.log.dir)."""
    out: list[str] = []
    for server in cluster:  # type: ignore[attr-defined]
        for path in sorted(Path(server.working_path).rglob("*.log")):
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out += [f"--- {path}", *tail]
    return out


# kazoo's GSSAPI set-up (its CI's Kerberos script): realm KAZOOTEST.ORG, the server's keytab
# for zookeeper/127.0.0.1 and the client's for `client`, both in $KRB5_TEST_ENV.
KAZOO_REALM = "KAZOOTEST.ORG"


@contextlib.contextmanager
def kazoo_kdc(workdir: Path) -> Iterator[dict[str, str]]:
    """A KDC for kazoo's Kerberos tests; yields the variables kazoo and its tests read."""
    from tests.support.kdc import start_kdc

    kdc = start_kdc(workdir, realm=KAZOO_REALM)
    try:
        kdc.add_principal("zookeeper/127.0.0.1", workdir / "server.keytab")
        kdc.add_principal("client", workdir / "client.keytab")
        yield {"KRB5_CONFIG": str(kdc.krb5_conf), "KRB5_TEST_ENV": str(workdir),
               "KRB5CCNAME": f"FILE:{workdir / 'ccache'}", "KRB5RCACHEDIR": str(workdir)}
    finally:
        kdc.stop()
