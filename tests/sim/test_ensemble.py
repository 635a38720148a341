"""The ensemble member host: real QuorumPeers on the simulated network and disks, and what it
hands the checkers (the journal of committed txns)."""

from __future__ import annotations

from zkserver.jute.codes import Op
from zkserver.jute.records import CreateTxn, TxnHeader
from zkserver.proto.peer_codec import PacketType, QuorumPacket, encode_packet
from zkserver.sim.ensemble import EnsembleHost, ensemble_member
from zkserver.sim.faults import SwarmOptions
from zkserver.sim.world import World
from zkserver.storage.txnlog import encode_proposal

NEVER = 10**9
OPEN = ((31, "world", "anyone"),)


def ensemble(seed: int = 1, members: int = 3, observers: int = 0) -> World:
    """A started ensemble world without clients or scheduled faults."""
    o = SwarmOptions(members=members, observers=observers, clients=0, fault_ms=NEVER, faults={}, tick_ms=100,
                     session_timeout_ms=2000, fsync_ms=1.0, fsync_jitter_ms=1.0)
    w = World(seed, o, member_factory=ensemble_member)
    w.start()
    return w


def settled(w: World, within: int = 10_000) -> EnsembleHost:
    """Runs until a leader is established and every member serves; the leader."""
    hosts: list[EnsembleHost] = w.members  # type: ignore[assignment]

    def up() -> bool:
        return all(h.role in ("leader", "follower", "observer") for h in hosts) and all(h.quiet for h in hosts)
    w.scheduler.run_until(w.scheduler.now + within, up)
    assert up() and not w.violations, [h.role for h in hosts]
    [leader] = [h for h in hosts if h.role == "leader"]
    return leader


def test_a_txn_applied_when_leaving_a_role_is_not_journaled_as_committed():
    """Seed 15 (3 members): a follower that lost its leader applies what it logged but never saw
    committed (Apache reloads it from disk); a TRUNC may cut it later, so it is no evidence of
    the committed history, and the journal took it for one."""
    w = ensemble()
    leader = settled(w)
    follower = next(h for h in w.members if h is not leader)
    peer = follower.peer
    zxid = peer.storage.last_logged_zxid + 1
    hdr = TxnHeader(0x77, 1, zxid, 1_700_000_000_000, Op.CREATE)
    data = encode_proposal(hdr, CreateTxn(Op.CREATE, "/uncommitted", b"", OPEN, False, 1), None)
    cid = peer.learner.cid
    follower.run(peer.quorum_data, cid, encode_packet(QuorumPacket(PacketType.PROPOSAL, zxid, data)))
    follower.run(peer.quorum_closed, cid)  # the leader is gone before its COMMIT
    follower.run(follower.pump)
    assert follower.core.tree.last_processed_zxid == zxid  # applied, as the history it votes with
    assert zxid not in w.env.applied
    assert not w.env.conflicts
