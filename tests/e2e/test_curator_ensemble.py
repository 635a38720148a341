"""Apache Curator's LeaderLatch, unchanged, on a 3-member zkserver ensemble: the recipe users run
for leader election on ZooKeeper. When the ensemble's leader dies, the latch's members survive and
hold their clients' connections (electionClientHoldMs): Curator sees no SUSPENDED, so the latch
keeps its leader. When the latch leader's own member dies, its client is cut off, its session
expires and the other participant leads, as on Apache."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.cluster import Cluster
from tests.support.curator import Latch, require_curator

SESSION_TIMEOUT_MS = 6000  # held up to 2 s through an election (a third of it is more)


def test_a_leader_latch_keeps_its_leader_through_a_failover_and_moves_when_its_member_dies(tmp_path: Path) -> None:
    require_curator()
    with Cluster(tmp_path, ["zkserver"] * 3) as cluster:
        cluster.start()
        leader = cluster.wait_for_quorum()
        f1, f2 = (sid for sid in cluster.seats if sid != leader)
        a = Latch(cluster.hosts([f1]), "/latch", "a", SESSION_TIMEOUT_MS)
        b = None
        try:
            a.wait_for("LEADER")
            b = Latch(cluster.hosts([f2]), "/latch", "b", SESSION_TIMEOUT_MS)
            b.wait_for("STATE CONNECTED")
            a.drain()
            cluster.kill(leader)
            cluster.wait_for_quorum(sids=[f1, f2])
            time.sleep(1.0)
            assert (a.drain(), b.drain()) == ([], []), "a client saw the election"
            cluster.start([leader])
            cluster.wait_for_quorum()
            cluster.kill(f1)
            a.wait_for("NOT_LEADER")  # SUSPENDED: Curator gives the leadership up at once
            b.wait_for("LEADER", timeout=SESSION_TIMEOUT_MS / 1000 + 20)  # once a's session expired
        finally:
            a.stop()
            if b is not None:
                b.stop()
