"""Read-only mode (-Dreadonlymode.enabled=true) as real processes, on zkserver and on Apache 3.8
with the same config: a member left without its quorum answers the same four-letter words and
serves a read-only kazoo client the same way."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KeeperState
from tests.support.cluster import Cluster

pytestmark = pytest.mark.apache  # the Apache parametrization needs the package
READ_ONLY_WITHIN = 30.0  # leaving the quorum, then Apache's 2 s grace, on a busy machine


def wait_read_only(cluster: Cluster, sid: int) -> str:
    deadline = time.monotonic() + READ_ONLY_WITHIN
    while time.monotonic() < deadline:
        try:
            srvr = cluster.four_letter(sid, "srvr", timeout=2.0)
        except OSError:
            srvr = ""
        if "Mode: read-only" in srvr:
            return srvr
        time.sleep(0.1)
    raise AssertionError(f"member {sid} not read-only within {READ_ONLY_WITHIN}s:\n{cluster.members[sid].log_tail(40)}")


@pytest.mark.parametrize("kind", ["zkserver", "apache"])
def test_a_member_without_quorum_serves_read_only_clients(kind: str, tmp_path: Path) -> None:
    cfg = {"localSessionsEnabled": "true", "localSessionsUpgradingEnabled": "true"}
    with Cluster(tmp_path, [kind] * 3, cfg=cfg, props={"readonlymode.enabled": "true"}) as cluster:
        cluster.start()
        zk = KazooClient(hosts=cluster.hosts(), timeout=10.0)
        zk.start(timeout=15)
        zk.create("/ro", b"before")
        zk.sync("/ro")
        zk.stop()
        zk.close()
        cluster.stop(2)
        cluster.stop(3)

        srvr = wait_read_only(cluster, 1)
        assert srvr.splitlines()[1] == "READ-ONLY mode; serving only read-only clients"
        assert cluster.four_letter(1, "isro") == "ro"
        assert cluster.mntr(1)["zk_server_state"] == "read-only"

        ro = KazooClient(hosts=cluster.hosts([1]), read_only=True, timeout=10.0)
        ro.start(timeout=15)
        try:
            assert ro.client_state == KeeperState.CONNECTED_RO
            assert ro.get("/ro")[0] == b"before"
            with pytest.raises(NotReadOnlyCallError):
                ro.create("/nope")
            with pytest.raises(NotReadOnlyCallError):
                ro.set("/ro", b"after")
            assert cluster.mntr(1)["zk_local_sessions"] == "1"
        finally:
            ro.stop()
            ro.close()

        rw = KazooClient(hosts=cluster.hosts([1]), timeout=10.0, connection_retry={"max_tries": 0})
        with pytest.raises(KazooTimeoutError):  # "Refusing session request for not-read-only client"
            rw.start(timeout=4)
        rw.stop()
        rw.close()
