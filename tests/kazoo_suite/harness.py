"""Run kazoo's own test suite against zkserver: a stand-in for kazoo's Java test cluster.

kazoo's tests (shipped in the wheel as ``kazoo.tests``) derive from
``kazoo.testing.harness.KazooTestHarness``, whose ``cluster`` property calls the module
function ``get_global_cluster()``. That function starts a 3-node Java ensemble from
ZOOKEEPER_PATH; we replace it (conftest.py, for this directory's tests only) with one that
returns a ``StandaloneCluster``: a single server with kazoo's harness settings, started with
zkserver.embedded, or Apache ZooKeeper 3.8 for comparison. The server's API is what kazoo's
tests touch on ``ManagedZooKeeper``: run, stop, reset, destroy, running, address, ports.

ZKSERVER_KAZOO_TARGET picks the server: ``thread`` (default: zkserver in this process),
``subprocess`` (``python -m zkserver start``) or ``apache``.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import shutil
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from zkserver.embedded import ZkServer

TARGETS = ("thread", "subprocess", "apache")
# The superuser kazoo's harness configures: "super:test".
SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
# kazoo.testing.harness's zoo.cfg lines and -D flags for ZooKeeper >= 3.5.
KAZOO_CONFIG: dict[str, object] = {
    "tickTime": 2000,
    "maxClientCnxns": 0,
    "4lw.commands.whitelist": "*",
    "reconfigEnabled": "true",
    "localSessionsEnabled": "false",
    "localSessionsUpgradingEnabled": "false",
}
KAZOO_PROPERTIES: dict[str, object] = {
    "zookeeper.DigestAuthenticationProvider.superDigest": SUPER_DIGEST,
    "readonlymode.enabled": "true",
}


def target() -> str:
    name = os.environ.get("ZKSERVER_KAZOO_TARGET", "thread")
    if name not in TARGETS:
        raise pytest.UsageError(f"ZKSERVER_KAZOO_TARGET={name!r}: expected one of {', '.join(TARGETS)}")
    return name


# --------------------------------------------------------------------------- imports


def count_objects(typename: str, objects: list[object] | None = None) -> int:
    """objgraph.count: objects tracked by the GC whose type has this (qualified) name."""
    objects = gc.get_objects() if objects is None else objects
    if "." in typename:
        return sum(1 for o in objects if f"{type(o).__module__}.{type(o).__qualname__}" == typename)
    return sum(1 for o in objects if type(o).__name__ == typename)


@contextlib.contextmanager
def kazoo_imports() -> Iterator[None]:
    """Import kazoo's test modules without their optional test-only dependencies.

    kazoo.testing.common imports pyOpenSSL and pyjks at the top, but only its Java TLS cluster
    set-up (which we replace) uses them: while the import runs they are placeholders, removed
    from sys.modules afterwards so no other code mistakes them for the real ones.
    test_cache.py counts live objects with objgraph.count, which we provide when objgraph is
    not installed.
    """
    added = []
    for name in ("OpenSSL", "jks"):
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name, f"placeholder for kazoo.testing.common ({name} missing)")
            added.append(name)
    if "objgraph" not in sys.modules and importlib.util.find_spec("objgraph") is None:
        shim = types.ModuleType("objgraph", "objgraph.count only (objgraph is not installed)")
        shim.count = count_objects  # type: ignore[attr-defined]
        sys.modules["objgraph"] = shim
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


# --------------------------------------------------------------------------- one server


class ManagedServer:
    """What kazoo's tests use of kazoo.testing.common.ManagedZooKeeper, on one server."""

    host = "127.0.0.1"
    secure_client_port = None

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.zk: ZkServer | None = None
        self.apache = None  # tests.support.servers.RunningServer
        self._port = 0

    # -- kazoo's API

    @property
    def running(self) -> bool:
        if self.apache is not None:
            return self.apache.running
        return self.zk is not None and self.zk.running

    def run(self) -> None:
        """Start; after stop() start again on the same port with the same data."""
        if self.running:
            return
        if self.kind == "apache":
            self._run_apache()
        elif self.zk is None:
            # A process keeps its data over stop()/run() only on disk (as Apache's does); in
            # this process the core itself survives, so memory is enough.
            storage = "disk" if self.kind == "subprocess" else "memory"
            self.zk = ZkServer(mode=self.kind, storage=storage, config=KAZOO_CONFIG,  # type: ignore[arg-type]
                               properties=KAZOO_PROPERTIES, port=self._port).start()
            self._port = self.zk.port
        else:
            self.zk.start()

    def _run_apache(self) -> None:
        from tests.support.servers import start_apache

        if self.apache is not None:
            self.apache.launch()
            self.apache.wait_ready()
            return
        cfg = {key: str(value) for key, value in KAZOO_CONFIG.items()}
        if self._port:
            cfg["clientPort"] = str(self._port)
        self.apache = start_apache(self.workdir / "apache", cfg, KAZOO_PROPERTIES)
        self._port = self.apache.port

    def stop(self) -> None:
        if self.apache is not None:
            self.apache.stop()
        elif self.zk is not None:
            self.zk.stop()

    def reset(self) -> None:
        """Stop and forget the data; the next run() starts empty (on the same port)."""
        self.destroy()

    def destroy(self) -> None:
        if self.apache is not None:
            self.apache.stop()
            shutil.rmtree(self.workdir / "apache", ignore_errors=True)
            self.apache = None
        if self.zk is not None:
            self.zk.close()
            self.zk = None

    @property
    def client_port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"{self.host}:{self._port}"

    @property
    def secure_address(self) -> str:
        pytest.skip("TLS client connections are not part of this run (kazoo's TLS set-up needs"
                    " pyOpenSSL/pyjks and a secureClientPort)")

    def get_logs(self, num_lines: int = 100) -> list[str]:
        if self.apache is not None:
            return self.apache.log_tail(num_lines).splitlines()
        if self.zk is not None and self.zk.mode == "subprocess":
            return self.zk.log_tail(num_lines).splitlines()
        return []  # in-process servers log through `logging`, which pytest captures


class StandaloneCluster:
    """Stands in for kazoo.testing.common.ZookeeperCluster with one server."""

    def __init__(self, kind: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="kazoo-suite-"))
        self._servers = [ManagedServer(kind, self.workdir)]

    def __getitem__(self, k: int) -> ManagedServer:
        return self._servers[k]

    def __iter__(self) -> Iterator[ManagedServer]:
        return iter(self._servers)

    def __len__(self) -> int:
        return len(self._servers)

    def start(self) -> None:
        for server in self:
            server.run()

    def stop(self) -> None:
        for server in self:
            server.stop()

    def terminate(self) -> None:
        for server in self:
            server.destroy()

    def reset(self) -> None:
        for server in self:
            server.reset()

    def get_logs(self) -> list[str]:
        return [line for server in self for line in server.get_logs()]

    def get_ssl_client_configuration(self) -> dict[str, bytes]:
        pytest.skip("TLS client connections are not part of this run")

    def close(self) -> None:
        self.terminate()
        shutil.rmtree(self.workdir, ignore_errors=True)
