"""Real-world configurations (entries.py), each run on Apache ZooKeeper 3.8 and on zkserver with the
same files and the same `java` command line: both serve, or both refuse for the same reason.

"Serves" means the client port answers `srvr` with a Mode line and a kazoo client can write and
read; for kazoo's own harness also a TLS client with kazoo's certificates on the secure port.
For an ensemble, every member's Mode is a role (one leader, followers, the observers named) and
what a client writes through the first member another client reads through the last, after a
sync.
"Refuses" means the process exits before serving, and its output (console and log files) matches
the reason's pattern for that server. Each process is started here (or by kazoo's harness) and
stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.corpus.entries import APACHE_MAIN, ENTRIES, KAZOO_ENTRIES, REASONS, Entry, Installed, KazooEntry
from tests.support.kazoo_cluster import SHIM_DIR, kazoo_environment, kazoo_kdc
from tests.support.ports import free_port
from tests.support.servers import APACHE_CLASSPATH, skip_if_no_apache

pytestmark = pytest.mark.apache
TARGETS = ("apache", "zkserver")
SERVE_TIMEOUT = 40.0  # a JVM start on a busy 2-core machine; zkserver takes ~1 s
STOP_TIMEOUT = 15.0
REFUSED_WORDS = "is not executed because it is not in the whitelist"


@pytest.fixture(autouse=True)
def _apache_installed() -> None:
    skip_if_no_apache()


def _env(target: str) -> dict[str, str]:
    env = dict(os.environ)
    if target == "zkserver":
        env["PATH"] = f"{SHIM_DIR}{os.pathsep}{env.get('PATH', '')}"
        env["ZKSERVER_SHIM_PYTHON"] = sys.executable
    return env


@dataclass
class Outcome:
    served: bool
    output: str
    four_letter: dict[str, bool]  # word -> enabled
    roles: list[str] | None = None  # each member's Mode, in member order


def _roles(ports: list[int]) -> list[str]:
    """Each member's srvr Mode, once a standalone server has one or an ensemble has one leader
    and a role on every member."""
    deadline = time.monotonic() + SERVE_TIMEOUT
    roles: list[str] = []
    while time.monotonic() < deadline:
        roles = [_mode(port) for port in ports]
        settled = roles == ["standalone"] or roles.count("leader") == 1
        if settled and all(r in ("leader", "follower", "observer", "standalone") for r in roles):
            return roles
        time.sleep(0.1)
    raise AssertionError(f"no settled quorum after {SERVE_TIMEOUT:.0f} s: modes {roles}")


def _mode(port: int) -> str:
    with contextlib.suppress(OSError):
        for line in _four_letter(port, "srvr").splitlines():
            if line.startswith("Mode: "):
                return line[len("Mode: "):]
    return ""


def _expected_roles(count: int, observer_start_id: int = -1) -> set[tuple[str, ...]]:
    """The role lists a healthy ensemble of `count` members may show (any voter may lead)."""
    if count == 1:
        return {("standalone",)}
    voter = ["observer" if observer_start_id != -1 and sid >= observer_start_id else "follower"
             for sid in range(1, count + 1)]
    return {tuple("leader" if sid == lead else role for sid, role in enumerate(voter)) for lead in range(count)
            if voter[lead] == "follower"}


# --------------------------------------------------------------------------- one node


@dataclass
class Node:
    index: int
    dir: Path
    values: dict[str, str]
    proc: subprocess.Popen | None = None

    @property
    def port(self) -> int:
        return int(self.values["port"])


def _nodes(entry: Entry, root: Path) -> list[Node]:
    shared: dict[str, str] = {"classpath": APACHE_CLASSPATH}
    for i in range(1, entry.nodes + 1):
        shared.update({f"port{i}": str(free_port()), f"quorum{i}": str(free_port()),
                       f"election{i}": str(free_port())})
    nodes = []
    for i in range(1, entry.nodes + 1):
        values = {**shared, "dir": str(root / f"node{i}"), "myid": str(i), "port": shared[f"port{i}"],
                  "secure_port": str(free_port()), "admin_port": str(free_port())}
        nodes.append(Node(i, root / f"node{i}", values))
    return nodes


def _write_files(entry: Entry, node: Node) -> None:
    node.dir.mkdir(parents=True)
    for sub in entry.mkdirs:
        (node.dir / sub).mkdir(parents=True, exist_ok=True)
    for rel, source in entry.files.items():
        if isinstance(source, Installed):
            text = Path(source.path).read_text()
            for old, new in source.replace:
                assert old in text, f"{source.path} no longer holds {old!r}"
                text = text.replace(old, new)
        else:
            text = source
        path = node.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(**node.values))


def _launch(entry: Entry, node: Node, target: str) -> None:
    argv = ["java", *(a.format(**node.values) for a in entry.jvm), APACHE_MAIN,
            *(a.format(**node.values) for a in entry.args)]
    with (node.dir / "console.out").open("wb") as out:
        node.proc = subprocess.Popen(argv, cwd=node.dir, env=_env(target), stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _four_letter(port: int, word: str) -> str:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(word.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _wait_serving(port: int, proc: subprocess.Popen | None) -> bool:
    """True once `srvr` answers with a Mode line; False if the process exits first."""
    deadline = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            if "Mode: " in _four_letter(port, "srvr"):
                return True
        time.sleep(0.1)
    raise AssertionError(f"neither serving on port {port} nor exited after {SERVE_TIMEOUT:.0f} s")


def _client_round_trip(hosts: list[str], **kwargs: object) -> None:
    """A write through the first member; the same value read back through the last one."""
    writer = KazooClient(hosts=hosts[0], timeout=15, **kwargs)
    reader = KazooClient(hosts=hosts[-1], timeout=15, **kwargs)
    try:
        writer.start(timeout=15)
        writer.ensure_path("/corpus")
        writer.set("/corpus", b"probe")
        reader.start(timeout=15)
        reader.sync("/corpus")
        assert reader.get("/corpus")[0] == b"probe"
    finally:
        for client in (writer, reader):
            client.stop()
            client.close()


def _output(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file()
                     and (p.suffix in (".out", ".log") or p.name.startswith("zookeeper")))


def run_entry(entry: Entry, target: str, root: Path) -> Outcome:
    nodes = _nodes(entry, root)
    try:
        for node in nodes:
            _write_files(entry, node)
            _launch(entry, node, target)
        served = all(_wait_serving(node.port, node.proc) for node in nodes)
        words: dict[str, bool] = {}
        roles = None
        if served:
            roles = _roles([n.port for n in nodes])
            _client_round_trip([f"127.0.0.1:{n.port}" for n in nodes])
            words = {w: REFUSED_WORDS not in _four_letter(nodes[0].port, w) for w in entry.same_4lw}
        else:
            for node in nodes:
                _stop(node.proc)  # the others of an ensemble whose member refused
        return Outcome(served, _output(root), words, roles)
    finally:
        for node in nodes:
            _stop(node.proc)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_entry_starts_or_refuses_as_on_apache(entry: Entry, tmp_path: Path) -> None:
    outcomes = {target: run_entry(entry, target, tmp_path / target) for target in TARGETS}
    for target, outcome in outcomes.items():
        tail = outcome.output[-3000:]
        if entry.expect == "serves":
            assert outcome.served, f"{target} did not serve {entry.name} ({entry.origin}):\n{tail}"
            assert tuple(outcome.roles or ()) in _expected_roles(entry.nodes), (target, outcome.roles)
        else:
            assert not outcome.served, f"{target} served {entry.name}, expected refusal ({entry.expect})"
            pattern = REASONS[entry.expect][TARGETS.index(target)]
            assert re.search(pattern, outcome.output), f"{target} refused {entry.name} without /{pattern}/:\n{tail}"
    assert outcomes["apache"].four_letter == outcomes["zkserver"].four_letter


# --------------------------------------------------------------------------- kazoo's harness


@pytest.fixture(scope="module")
def kdc_env() -> Iterator[dict[str, str]]:
    from tests.support.kdc import skip_if_no_kdc

    skip_if_no_kdc()
    with tempfile.TemporaryDirectory(prefix="corpus-kdc-") as workdir, kazoo_kdc(Path(workdir)) as env:
        yield env


def run_kazoo_entry(entry: KazooEntry, target: str, extra: dict[str, str]) -> Outcome:
    from kazoo.testing.harness import get_global_cluster

    with kazoo_environment(target, entry.size, entry.observer_start_id, {**extra, **entry.env}):
        cluster = get_global_cluster()
        for server in cluster:
            server.run()  # ManagedZooKeeper writes its files and runs `java` from PATH
        served = all(_wait_serving(s.client_port, s.process) for s in cluster)
        roles = None
        if served:
            roles = _roles([s.client_port for s in cluster])
            _client_round_trip([s.address for s in cluster])
            _tls_round_trip(cluster)
        return Outcome(served, "\n".join(_output(Path(s.working_path)) for s in cluster), {}, roles)


def _tls_round_trip(cluster: object) -> None:
    """A TLS client with the certificates kazoo's harness made, on the secure port of its stores."""
    config = cluster.get_ssl_client_configuration()  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix="corpus-tls-") as workdir:
        paths = {}
        for key in ("client_key", "client_cert", "ca_cert"):
            paths[key] = Path(workdir) / f"{key}.pem"
            paths[key].write_bytes(config[key])
        hosts = [s.secure_address for s in cluster]  # type: ignore[attr-defined]
        _client_round_trip(hosts, use_ssl=True, verify_certs=False, keyfile=str(paths["client_key"]),
                           certfile=str(paths["client_cert"]), ca=str(paths["ca_cert"]))


@pytest.mark.parametrize("entry", KAZOO_ENTRIES, ids=lambda e: e.name)
def test_kazoo_harness_entry_serves_as_on_apache(entry: KazooEntry, request: pytest.FixtureRequest) -> None:
    extra = request.getfixturevalue("kdc_env") if entry.needs_kdc else {}
    for target in TARGETS:
        outcome = run_kazoo_entry(entry, target, extra)
        assert outcome.served, f"{target} did not serve {entry.name} ({entry.origin}):\n{outcome.output[-3000:]}"
        assert tuple(outcome.roles or ()) in _expected_roles(entry.size, entry.observer_start_id), (
            target, outcome.roles)
