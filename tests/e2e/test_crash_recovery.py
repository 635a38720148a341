"""kill -9 during a pipelined write load, restart, and every acknowledged write is there.

Several kazoo sessions keep many creates in flight; the server is SIGKILLed mid-load (with a
small snapCount, so snapshots and log rolls happen during the load as well). After restart
every create whose reply arrived must exist with its data, and the zxid must move on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from kazoo.client import KazooClient
from tests.support.servers import RunningServer, start_zkserver

SESSIONS = 3
IN_FLIGHT = 64
CYCLES = 3
LOAD_SECONDS = 1.2


def _load(hosts: str, prefix: str, stop: threading.Event, acked: set[str]) -> list[KazooClient]:
    """Start SESSIONS clients that keep IN_FLIGHT creates outstanding until `stop` is set."""
    clients = []
    for s in range(SESSIONS):
        zk = KazooClient(hosts=hosts, timeout=10.0, connection_retry={"max_tries": 0})
        zk.start(timeout=10)
        clients.append(zk)
        zk.ensure_path(f"/{prefix}")
        threading.Thread(target=_pump, args=(zk, f"/{prefix}/s{s}-", stop, acked), daemon=True).start()
    return clients


def _pump(zk: KazooClient, base: str, stop: threading.Event, acked: set[str]) -> None:
    slots = threading.Semaphore(IN_FLIGHT)
    i = 0
    while not stop.is_set():
        if not slots.acquire(timeout=0.2):
            continue
        path = f"{base}{i:06d}"
        i += 1

        def done(result, path=path) -> None:
            if result.exception is None:
                acked.add(path)  # the server replied OK: it promised durability
            slots.release()

        try:
            zk.create_async(path, path.encode()).rawlink(done)
        except Exception:
            slots.release()
            return


def _stop(clients: list[KazooClient]) -> None:
    for zk in clients:
        with contextlib.suppress(Exception):
            zk.stop()
        with contextlib.suppress(Exception):
            zk.close()


def _check(server: RunningServer, acked: set[str]):
    zk = KazooClient(hosts=server.hosts, timeout=10.0)
    zk.start(timeout=10)
    try:
        missing = [p for p in sorted(acked) if zk.exists(p) is None]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        for p in sorted(acked)[:: max(1, len(acked) // 50)]:
            assert zk.get(p)[0] == p.encode()
        return zk.exists(zk.create("/after-restart-", sequence=True))
    finally:
        zk.stop()
        zk.close()


def test_kill9_during_pipelined_writes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    server = start_zkserver(tmp_path / "zk", {"snapCount": "400", "preAllocSize": "256"})
    acked_all: set[str] = set()
    last_zxid = 0
    try:
        for cycle in range(CYCLES):
            stop = threading.Event()
            acked: set[str] = set()
            clients = _load(server.hosts, f"c{cycle}", stop, acked)
            time.sleep(LOAD_SECONDS)
            server.kill()  # SIGKILL while writes are in flight
            stop.set()
            snapshot_of_acked = set(acked)
            _stop(clients)
            assert snapshot_of_acked, "the load made no progress"
            acked_all |= snapshot_of_acked
            server.launch()
            server.wait_ready()
            stat = _check(server, acked_all)
            assert stat.czxid > last_zxid  # the zxid continues after the restart
            last_zxid = stat.czxid
    finally:
        server.stop()
    logs = list((tmp_path / "zk" / "data" / "version-2").glob("snapshot.*"))
    assert len(logs) > 1, "the load should have taken snapshots along the way"


def test_sessions_survive_a_restart_and_expire_if_clients_do_not_return(tmp_path: Path) -> None:
    server = start_zkserver(tmp_path / "zk")
    try:
        stays = KazooClient(hosts=server.hosts, timeout=6.0)
        stays.start(timeout=10)
        leaves = KazooClient(hosts=server.hosts, timeout=2.0)
        leaves.start(timeout=10)
        stays.create("/mine", b"", ephemeral=True)
        leaves.create("/gone", b"", ephemeral=True)
        sid = stays.client_id[0]
        states: list[str] = []
        stays.add_listener(states.append)
        server.kill()
        leaves.stop()  # this client never comes back
        server.launch()
        server.wait_ready()
        deadline = time.monotonic() + 10
        # Until the client has seen the old connection close, it still reports itself connected.
        while "SUSPENDED" not in states or not stays.connected:
            assert time.monotonic() < deadline, "the client did not reconnect"
            time.sleep(0.05)
        assert stays.client_id[0] == sid  # same session, restored from disk
        assert stays.exists("/mine") is not None
        while stays.exists("/gone") is not None:
            assert time.monotonic() < deadline, "the abandoned session never expired"
            time.sleep(0.1)
        stays.stop()
        stays.close()
        leaves.close()
    finally:
        server.stop()
