"""What the roles report to the operator surface: Apache's quorum counters and summaries
(proposal_count, learner_commit_received_count, election_time, ...), the leader's proposal
sizes, forwarding learners and per-connection counters, on a scripted ensemble."""

from __future__ import annotations

from kazoo.protocol.serialization import Create, Sync

from tests.interaction.test_zab_basic import OPEN_ACL, session
from tests.interaction.zabworld import ZabWorld

TXNS = 3  # createSession + two creates


def _world() -> ZabWorld:
    """Members 1-3 vote, 4 observes; 3 leads after 250 ms of looking; a client on follower 1
    makes three txns."""
    w = ZabWorld(3, 1)
    w.start()
    w.advance(250)
    w.elect(leader=3)
    c = session(w, 1)
    assert c.call(Create("/a", b"x" * 10, OPEN_ACL, 0)).err == 0
    assert c.call(Create("/b", b"", OPEN_ACL, 0)).err == 0
    return w


def _summary(w: ZabWorld, sid: int, name: str) -> tuple[int, int]:
    s = w[sid].metrics.summaries.get(name)
    return (s.count, s.total) if s is not None else (0, 0)


def test_counters_follow_apaches_per_role_rules() -> None:
    w = _world()
    leader, followers, observer = w[3].metrics.counters, (w[1].metrics.counters, w[2].metrics.counters), \
        w[4].metrics.counters
    assert leader["proposal_count"] == leader["commit_count"] == TXNS
    assert leader["diff_count"] == 3 and "snap_count" not in leader  # three learners, all by DIFF
    for f in followers:
        assert f["learner_proposal_received_count"] == f["learner_commit_received_count"] == TXNS
        assert "proposal_count" not in f
    assert observer["learner_commit_received_count"] == TXNS  # INFORMs
    assert "learner_proposal_received_count" not in observer
    for sid in (1, 2, 3, 4):
        assert w[sid].metrics.counters["looking_count"] == 1


def test_summaries_time_the_election_the_sync_and_the_unavailability() -> None:
    w = _world()
    for sid in (1, 2, 3):
        assert _summary(w, sid, "election_time") == (1, 250)
    assert _summary(w, 4, "election_time") == (0, 0)  # Apache's Observer does not record it
    assert _summary(w, 1, "follower_sync_time")[0] == _summary(w, 4, "observer_sync_time")[0] == 1
    assert _summary(w, 3, "follower_sync_time") == (0, 0)
    for sid in (1, 2, 3, 4):
        assert _summary(w, sid, "unavailable_time") == (1, 250)  # the clock stands still while syncing
    assert _summary(w, 3, "leader_unavailable_time") == (1, 250)
    assert _summary(w, 1, "leader_unavailable_time") == (0, 0)
    # Each of the three syncs is in flight when it starts (1, 2, 3) and ends (2, 1, 0).
    assert _summary(w, 3, "inflight_diff_count") == (6, 9)
    # A member that loses its leader is unavailable again, once, until it serves again.
    w.crash(3)
    w.advance(1000)
    w.elect(leader=2, sids=[1, 2, 4])
    assert w[1].metrics.counters["looking_count"] == 2
    assert _summary(w, 2, "leader_unavailable_time")[0] == 1 and _summary(w, 2, "unavailable_time")[0] == 2


def test_leader_accessors_for_the_operator() -> None:
    w = _world()
    leader = w[3].peer.leader
    assert sorted(link.sid for link in leader.forwarding(observers=False)) == [1, 2]
    assert [link.sid for link in leader.forwarding(observers=True)] == [4]
    assert leader.learner_count() == 3
    assert leader.established_ms == w.clock.mono
    data = [p.data for p in w[3].peer.committed_log]
    assert len(data) == TXNS
    assert (leader.proposal_sizes.last, leader.proposal_sizes.min, leader.proposal_sizes.max) == \
        (len(data[-1]), min(map(len, data)), max(map(len, data)))
    assert str(leader.proposal_sizes) == f"{len(data[-1])}/{min(map(len, data))}/{max(map(len, data))}"
    leader.proposal_sizes.reset()
    assert str(leader.proposal_sizes) == "-1/-1/-1"


def test_link_counters_count_each_learners_traffic() -> None:
    w = _world()
    peer, leader = w[3].peer, w[3].peer.leader
    by_sid = {link.sid: peer.link_stats[link.cid] for link in leader.links.values()}
    assert by_sid[1].requests == TXNS and by_sid[2].requests == by_sid[4].requests == 0
    last = w[3].core.tree.last_processed_zxid
    assert by_sid[4].last_zxid == last  # its last INFORM
    before = (by_sid[4].sent, by_sid[4].received)
    c = session(w, 4)  # an observer's client: one more request forwarded, one more INFORM
    assert by_sid[4].requests == 1 and by_sid[4].sent == before[0] + 1 and by_sid[4].received == before[1] + 1
    assert c.call(Sync("/")).err == 0
    assert by_sid[4].requests == 2
    by_sid[4].reset()
    assert (by_sid[4].sent, by_sid[4].received, by_sid[4].requests, by_sid[4].last_zxid) == (0, 0, 0, -1)
    w.crash(4)
    assert len(peer.link_stats) == 2  # a closed connection's counters go with it
