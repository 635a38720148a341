"""The ensemble member host: real QuorumPeers on the simulated network and disks, and what it
hands the checkers (the journal of committed txns)."""

from __future__ import annotations

import pytest

from zkserver.jute.codes import Op
from zkserver.jute.records import CreateTxn, TxnHeader
from zkserver.proto.peer_codec import PacketType, QuorumPacket, encode_packet
from zkserver.quorum.learner import Stage
from zkserver.sim import __main__ as cli
from zkserver.sim import defaults, runner
from zkserver.sim.ensemble import EnsembleHost, ensemble_member
from zkserver.sim.faults import FaultEvent, FaultInjector, SwarmOptions
from zkserver.sim.world import World, members_up
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


def _uncommitted_proposal(follower: EnsembleHost) -> tuple[int, bytes]:
    """The follower logs a proposal and loses its leader before the COMMIT: it leaves its role
    and applies it (Apache reloads it from disk). Its zxid and bytes."""
    peer = follower.peer
    zxid = peer.storage.last_logged_zxid + 1
    hdr = TxnHeader(0x77, 1, zxid, 1_700_000_000_000, Op.CREATE)
    data = encode_proposal(hdr, CreateTxn(Op.CREATE, "/uncommitted", b"", OPEN, False, 1), None)
    cid = peer.learner.cid
    follower.run(peer.quorum_data, cid, encode_packet(QuorumPacket(PacketType.PROPOSAL, zxid, data)))
    follower.run(peer.quorum_closed, cid)
    follower.run(follower.pump)
    assert follower.core.tree.last_processed_zxid == zxid
    return zxid, data


def test_a_txn_applied_when_leaving_a_role_is_journaled_only_once_its_member_leads():
    """Seeds 15 and 5 (3 members). A suffix applied when leaving a role may be cut by a TRUNC
    later: the journal took it for committed (seed 15: two closeSessions of one session). But
    once its member is an established leader, its whole history is committed, though no one
    applied that suffix in a role (seed 5: the checkers' history lacked it)."""
    w = ensemble()
    leader = settled(w)
    follower = next(h for h in w.members if h is not leader)
    zxid, data = _uncommitted_proposal(follower)
    assert zxid not in w.env.applied
    leader.crash()  # the follower's history is now the longest: it wins the election
    w.scheduler.run_until(w.scheduler.now + 10_000, lambda: follower.role == "leader" and follower.quiet)
    assert follower.role == "leader"
    assert w.env.applied[zxid] == (follower.name, data) and not w.env.conflicts


def test_a_looking_member_notifies_within_the_drawn_interval_and_liveness_waits_for_it():
    """Seed 76 (3 members): a member LOOKING through the fault phase had backed off to 12.8 s
    between notification rounds; Apache's cap is a minute. The world draws the cap
    (zookeeper.fastleader.maxNotificationInterval) and judges liveness only once an ensemble
    had time to settle: seed 1062 (3 voters + 1 observer) took two rounds and a leader's
    initLimit without a quorum."""
    w = ensemble()
    o = w.options
    assert {h.peer.election.settings.max_notification_interval_ms for h in w.members} == {o.fle_max_ms}
    assert w.live_from >= w.heal_at + 3 * o.fle_max_ms + o.init_limit * o.tick_ms


def test_a_member_is_not_quiet_while_a_quorum_packet_is_on_its_way():
    """Seeds 45 and 67 (with an observer): the world ended while the INFORM of the last txn was
    on its way to the observer, which holds nothing that says one is coming."""
    w = ensemble(observers=1)
    leader = settled(w)
    observer = w.members[-1]
    assert leader.quiet and observer.quiet
    link = next(iter(leader.links.values()))  # to a learner
    link.stream.send(encode_packet(QuorumPacket(PacketType.PING, 0)))
    assert not leader.quiet
    w.scheduler.run_until(w.scheduler.now + 100, lambda: leader.quiet)
    assert leader.quiet


def _busy_ensemble(seed: int = 2) -> World:
    o = SwarmOptions(members=3, clients=2, fault_ms=NEVER, faults={}, tick_ms=100, session_timeout_ms=2000,
                     fsync_ms=5.0, fsync_jitter_ms=5.0)
    w = World(seed, o, defaults.workload, member_factory=ensemble_member)
    w.start()
    return w


@pytest.mark.parametrize(("point", "stage", "power"), [("persisting", Stage.PERSISTING, True),
                                                       ("acked", Stage.AWAIT_UPTODATE, False)])
def test_a_sync_cut_strikes_a_learner_at_its_point_of_a_sync_into_a_new_epoch(point: str, stage: Stage,
                                                                             power: bool):
    w = _busy_ensemble()
    leader = settled(w)
    follower = next(h for h in w.members if h is not leader)
    w.scheduler.run_until(w.scheduler.now + 500)
    follower.crash()
    w.scheduler.run_until(w.scheduler.now + 500)  # it misses writes: its sync is a DIFF with txns
    seen = []

    def cut() -> None:
        seen.append((follower.peer.learner.stage, follower.peer.learner.new_epoch, follower.peer.current_epoch))
        follower.crash(power=power)
    follower.arm_sync_cut(point, cut)
    follower.start()  # rejoins the leader of its own epoch: no cut
    w.scheduler.run_until(w.scheduler.now + 1000, lambda: follower.role == "follower" and follower.quiet)
    assert follower.role == "follower" and not seen
    epoch = follower.peer.current_epoch
    follower.crash()
    w.scheduler.run_until(w.scheduler.now + 500)
    leader.crash()
    follower.start()  # the third member leads a new epoch and sends it a DIFF with the writes it missed
    w.scheduler.run_until(w.scheduler.now + 5000, lambda: bool(seen))
    assert seen and seen[0][:2] == (stage, epoch + 1) and follower.state == "down"


def test_garbage_reaches_the_election_and_is_dropped():
    w = ensemble()
    leader = settled(w)
    follower = next(h for h in w.members if h is not leader)
    injector = FaultInjector(w, [])
    ev = FaultEvent(w.scheduler.now, "garbage", follower.name, "", None, {"src": leader.name, "sizes": [0, 5, 27]})
    injector.garbage(ev)
    w.scheduler.run_until(w.scheduler.now + 100)
    assert w.network.stats["dropped"] == 0
    assert not follower.peer.election_dead  # dropped with a warning; only the bug switch dies of it
    leader.crash()  # and the election still works
    w.scheduler.run_until(w.scheduler.now + 10_000, lambda: any(h.role == "leader" for h in w.members))
    assert any(h.role == "leader" for h in w.members)


def test_a_member_still_looking_at_the_end_is_a_violation():
    """A member that never rejoined the ensemble (Apache's ZOOKEEPER-3769: its election receiver
    died) fails "members up", even while the others serve."""
    w = ensemble()
    leader = settled(w)
    follower = next(h for h in w.members if h is not leader)
    assert not members_up(w)
    others = [h.name for h in w.members if h is not follower]
    w.network.block([(follower.name, o) for o in others] + [(o, follower.name) for o in others])
    follower.crash()
    follower.start()
    w.scheduler.run_until(w.scheduler.now + 3000)
    assert follower.role == "looking" and leader.role == "leader"
    assert [v.check for v in members_up(w)] == ["members up"] and "LOOKING" in members_up(w)[0].detail


def test_a_log_cut_back_below_a_snapshot_leaves_no_hole_in_the_history():
    """Seed 367 (5 voters): a follower on a slow disk left its role and applied its logged,
    not yet durable suffix; a snapshot took it; then a full disk failed the log, which was cut
    back to its last durable entry, below the snapshot. The snapshot holds those txns, the logs
    do not: the checkers saw a hole and committed txns lost."""
    result = runner.build(367, cli.parse_args(["--seed", "367"])).run()
    assert result.ok, [(v.check, v.detail[:200]) for v in result.violations]


def test_a_voter_that_accepted_a_later_epoch_is_not_stranded():
    """Seed 1565 (3 voters + 1 observer, storm): a voter accepted epoch 4 from a leader attempt
    that failed while the two others settled epoch 3; it refused their leader's LEADERINFO and
    stayed LOOKING for good (Apache's members do the same). The leader now steps down for it."""
    result = runner.build(1565, cli.parse_args(["--seed", "1565"])).run()
    assert result.ok, [(v.check, v.detail[:200]) for v in result.violations]
