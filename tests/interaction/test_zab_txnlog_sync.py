"""Scripted: a learner further behind than the leader's committed log is synced by DIFF from
the leader's txn log (syncplan rule 5), not by a snapshot, and gets only committed txns from it."""

from __future__ import annotations

import logging

import pytest
from kazoo.protocol.serialization import Create

from tests.interaction.test_zab_scenarios import OPEN, connected, trees_equal
from tests.interaction.zabworld import RawLearner, ZabWorld
from zkserver.core import Role
from zkserver.proto.election_codec import ServerState
from zkserver.proto.peer_codec import LearnerInfo, PacketType, encode_int, encode_learner_info

COUNT = 5  # the committed log keeps 6 txns


def behind(writes: int) -> tuple[ZabWorld, object]:
    """Member 3 leads; member 1 misses `writes` creates; the leader's log holds all of them."""
    w = ZabWorld(3, commit_log_count=COUNT)
    w.start()
    w.elect(3)
    c = connected(w, 3)
    assert c.call(Create("/before", b"", OPEN, 0)).err == 0
    w.crash(1)
    for i in range(writes):
        assert c.call(Create(f"/n{i}", b"", OPEN, 0)).err == 0
    return w, c


def rejoin(w: ZabWorld, sid: int) -> None:
    w.restart(sid)
    w[sid].peer.decided(ServerState.FOLLOWING, 3, w.clock.mono)
    w.pump()


def test_a_learner_behind_the_committed_log_gets_a_diff_from_the_txn_log(caplog: pytest.LogCaptureFixture) -> None:
    w, _ = behind(20)
    last = w[1].storage.last_logged_zxid
    committed = [p.zxid for p in w[3].peer.committed_log]
    assert len(committed) == COUNT + 1 and last < committed[0]
    with caplog.at_level(logging.INFO, logger="zkserver.quorum.leader"):
        rejoin(w, 1)
    assert w[3].storage.disk_reads == [last]
    assert w[3].metrics.counters.get("snap_count", 0) == 0 and w[3].metrics.counters["diff_count"] >= 1
    assert w[1].storage.base == b"", "the learner installed a snapshot"
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Sending DIFF")]
    assert sent == [f"Sending DIFF 0x{committed[-1]:x} to learner 1 (its last zxid 0x{last:x}) with 20 txns, "
                    f"15 of them from the txn log"]  # 0x3..0x11: the committed log's first comes from disk
    assert w[1].core.role == Role.FOLLOWER
    trees_equal(w, [1, 2, 3])
    assert [h.zxid for h, _ in w[1].storage.entries] == [h.zxid for h, _ in w[3].storage.entries]


def test_with_a_negative_snapshot_size_factor_it_gets_a_snapshot() -> None:
    w, _ = behind(20)
    w[3].peer.settings.snapshot_size_factor = -1
    rejoin(w, 1)
    assert w[3].storage.disk_reads == []  # the log is not even opened
    assert w[3].metrics.counters["snap_count"] == 1
    assert w[1].storage.base != b""
    trees_equal(w, [1, 2, 3])


def test_a_learner_the_txn_log_does_not_reach_back_to_gets_a_snapshot() -> None:
    w, _ = behind(20)
    w[3].storage.entries = w[3].storage.entries[3:]  # as if the oldest file had been purged
    rejoin(w, 1)
    assert w[3].metrics.counters["snap_count"] == 1
    trees_equal(w, [1, 2, 3])


def test_a_txn_log_that_cannot_be_read_means_a_snapshot() -> None:
    w, _ = behind(20)

    def unreadable(zxid: int, size_factor: float):
        yield from ()
        raise OSError(5, "Input/output error")

    w[3].storage.txn_log_from = unreadable  # type: ignore[method-assign]
    rejoin(w, 1)
    assert w[3].metrics.counters["snap_count"] == 1 and w[3].peer.leader is not None
    trees_equal(w, [1, 2, 3])


def test_a_proposal_not_yet_committed_never_comes_from_the_txn_log() -> None:
    w, c = behind(20)
    w[2].storage.hold = True  # the leader logs /pending but nobody else acks it: not committed
    c.send(Create("/pending", b"", OPEN, 0))
    pending = w[3].storage.last_logged_zxid
    assert w[3].core.tree.get("/pending") is None
    last = w[1].storage.last_logged_zxid
    learner = RawLearner(w, 1, leader=3)
    learner.send(PacketType.FOLLOWERINFO, 1 << 32, encode_learner_info(LearnerInfo(1)))
    w.pump()
    learner.take()
    learner.send(PacketType.ACKEPOCH, last, encode_int(1))
    w.pump()
    sync = [(p.type, p.zxid) for p in learner.take()]
    committed = w[3].peer.committed_log.max_zxid
    pairs = [(t, z) for z in range(last + 1, committed + 1) for t in (PacketType.PROPOSAL, PacketType.COMMIT)]
    # every committed txn after the learner's as PROPOSAL + COMMIT, then /pending as a proposal
    # only (startForwarding), then NEWLEADER
    assert sync == [(PacketType.DIFF, committed), *pairs, (PacketType.PROPOSAL, pending),
                    (PacketType.NEWLEADER, 1 << 32)]
    assert pending == committed + 1
