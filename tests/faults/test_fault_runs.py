"""Real zkserver ensembles under a seeded nemesis, judged by the simulator's checkers.

CI runs each for ZKSERVER_FAULT_SECONDS of nemesis (default 30) with a fixed seed; set
ZKSERVER_FAULT_SEED to run another schedule and ZKSERVER_FAULT_SECONDS=600 for the long run
(docs/testing.md, "Real-process fault tests"). A failure prints the seed, the schedule as it
was carried out, the History's numbers and the violations.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support.faultcluster import ProxiedCluster
from tests.support.faultproxy import FaultNetwork
from tests.support.faultrun import FaultRunConfig, run_fault_test
from tests.support.lazyfs import require_fuse
from tests.support.nemesis import Fault

SECONDS = float(os.environ.get("ZKSERVER_FAULT_SECONDS", "30"))
SEED = os.environ.get("ZKSERVER_FAULT_SEED")


@pytest.mark.timeout(int(2 * SECONDS) + 300)
@pytest.mark.parametrize(("members", "seed"), [(3, 1), (5, 2)], ids=["3-members", "5-members"])
def test_nemesis_against_a_real_ensemble(tmp_path, members, seed):
    cfg = FaultRunConfig(members, int(SEED) if SEED else seed, SECONDS)
    result = run_fault_test(tmp_path, cfg)
    print(result.report())
    assert not result.failed, result.report()
    # Not vacuous: faults happened and writes were acknowledged through them.
    assert len(result.steps) >= 3 and result.counts.get("ok_writes", 0) > 100, result.report()


@pytest.mark.timeout(int(2 * SECONDS) + 300)
def test_nemesis_with_power_loss_against_a_real_ensemble(tmp_path):
    # Data dirs on lazyfs: the nemesis also cuts power to the leader, a follower or a majority,
    # losing whatever the members wrote and did not fsync.
    require_fuse()
    cfg = FaultRunConfig(3, int(SEED) if SEED else 3, SECONDS, power_loss=True)
    result = run_fault_test(tmp_path, cfg)
    print(result.report())
    assert not result.failed, result.report()
    assert any(s.fault.kind == "power-loss" for s in result.steps), result.report()


@pytest.mark.timeout(300)
def test_a_power_cut_of_the_whole_ensemble_loses_no_acknowledged_write(tmp_path):
    # Every member loses power at once, twice, under load, on a slow disk (each fsync takes
    # 30 ms: more is unsynced at any moment); every member restarts from what its disk kept.
    # No acknowledged write may be missing and the members must agree. (A write that one
    # member kept survives through the election, so this catches only losses on every member:
    # with replies and ACKs sent before fsync it still passed, see docs/testing.md.)
    require_fuse()
    cut = Fault("power-loss", "every", hold_s=1.0, gap_s=0.5, params=(("keep", 0.0),))
    cfg = FaultRunConfig(3, 0, seconds=6, power_loss=True, fsync_delay_ms=30, script=(cut, cut))
    result = run_fault_test(tmp_path, cfg)
    print(result.report())
    assert not result.failed, result.report()
    lost = [s.note for s in result.steps]
    assert len(lost) == 2 and all("unsynced pages lost" in n for n in lost), result.report()
    assert result.counts.get("ok_writes", 0) > 20, result.report()


def test_a_member_cut_off_from_the_start_joins_only_after_heal(tmp_path):
    # Proof that no peer byte bypasses the proxy (the election dial-back included): member 3
    # is partitioned before anything starts; 1 and 2 form a quorum and commit a write without
    # it; its election bytes are held by the proxy; after heal it follows and catches up.
    with FaultNetwork(seed=0) as net, ProxiedCluster(tmp_path, ["zkserver"] * 3, net) as cluster:
        net.partition([[3], [1, 2]])
        cluster.start(wait=False)
        cluster.wait_for_quorum(sids=[1, 2])
        zk = KazooClient(hosts=cluster.hosts([1, 2]), timeout=10)
        zk.start(timeout=10)
        try:
            zk.create("/written-without-3", b"x")
        finally:
            zk.stop()
            zk.close()
        assert cluster.mode_and_zxid(3) == (None, None)  # electing: srvr says it is not serving
        assert not list((cluster.data_dir(3) / "version-2").glob("log.*"))  # no txn ever reached it
        assert net.stats()[(3, 1)].queued > 0  # it did dial 1, through the proxy
        net.heal()
        cluster.wait_for_quorum(sids=[1, 2, 3])
        deadline = time.monotonic() + 30
        while cluster.zxid(3) != cluster.zxid(1):
            assert time.monotonic() < deadline, (cluster.zxid(3), cluster.zxid(1))
            time.sleep(0.1)


def test_no_member_connects_to_another_members_real_peer_ports(tmp_path):
    # Every peer connection goes through the proxy, the election port's dial-backs included
    # (the proxy rewrites the address in the initial message): no member process holds a TCP
    # connection to another member's own quorum or election port.
    with FaultNetwork(seed=0) as net, ProxiedCluster(tmp_path, ["zkserver"] * 3, net) as cluster:
        cluster.start()
        zk = KazooClient(hosts=cluster.hosts(), timeout=10)
        zk.start(timeout=10)
        zk.create("/x", b"x")
        zk.stop()
        zk.close()
        real = {port: sid for sid, seat in cluster.seats.items() for port in (seat.quorum_port, seat.election_port)}
        bypass = [(sid, real[remote]) for sid, server in cluster.members.items()
                  for remote in remote_ports(server.pid) if real.get(remote, sid) != sid]
        assert bypass == [], f"(member, peer) connected directly: {bypass}"
        assert all(net.stats()[(a, b)].connections for a in (1, 2, 3) for b in (1, 2, 3) if a < b)


def remote_ports(pid: int) -> list[int]:
    """Remote ports of the established IPv4 TCP connections of process `pid` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
            ports.append(int(fields[2].split(":")[1], 16))
    return ports
