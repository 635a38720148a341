"""Scripted Zab scenarios: failover, sync modes, ordering of durability and acknowledgements."""

from __future__ import annotations

import struct

from kazoo.protocol.serialization import Connect, Create, Delete, GetData, SetData, Sync

from tests.interaction.zabworld import RawLearner, ZabWorld
from zkserver.core import Role
from zkserver.jute.records import DeleteTxn, TxnHeader
from zkserver.proto.election_codec import ServerState
from zkserver.proto.peer_codec import (
    LearnerInfo,
    PacketType,
    QuorumPacket,
    encode_int,
    encode_learner_info,
    encode_packet,
)
from zkserver.storage.txnlog import encode_proposal

OPEN = [__import__("kazoo.security", fromlist=["OPEN_ACL_UNSAFE"]).OPEN_ACL_UNSAFE[0]]
EPHEMERAL = 1


def session(world: ZabWorld, sid: int, timeout: int = 10000, session_id: int = 0, passwd: bytes = b"\0" * 16,
            last_zxid: int = 0):
    client = world[sid].open()
    client.send_raw(bytes(Connect(0, last_zxid, timeout, session_id, passwd, False).serialize()))
    return client


def connected(world, sid, **kw):
    client = session(world, sid, **kw)
    frames = client.take()
    assert frames and frames[0].kind == "connect" and frames[0].connect.session_id, (frames, client.closed)
    return client


def trees_equal(world, sids):
    ref = world[sids[0]].core.tree
    for sid in sids[1:]:
        tree = world[sid].core.tree
        assert tree.last_processed_zxid == ref.last_processed_zxid, (sid, hex(tree.last_processed_zxid))
        assert {p: (n.data, n.version, n.czxid, n.mzxid) for p, n in tree.nodes.items()} == \
            {p: (n.data, n.version, n.czxid, n.mzxid) for p, n in ref.nodes.items()}, sid


def elected(voters=3, observers=0, leader=None):
    w = ZabWorld(voters, observers)
    w.start()
    w.elect(leader or voters)
    return w


def test_observer_syncs_gets_informs_serves_and_never_votes():
    w = elected(3, 1, leader=3)
    assert w[4].core.role == Role.OBSERVER
    leader = w[3].peer.leader
    assert 4 not in leader.newleader_acked and leader.learner_sids(observers=True) == [4]
    c = connected(w, 4)
    assert c.call(Create("/o", b"1", OPEN, 0)).err == 0  # forwarded by the observer
    trees_equal(w, [1, 2, 3, 4])
    # The observer's acks would not count: with two voters down there is no quorum.
    w.crash(1)
    w.crash(2)
    w.advance(2000)
    assert w.leader_of() is None


def test_follower_persists_held_proposals_before_current_epoch_and_newleader_ack():
    w = ZabWorld(3)
    w.start()
    w.elect(3)
    c = connected(w, 3)
    # Member 1 misses three writes, then comes back and syncs by DIFF; its disk is slow.
    w.crash(1)
    for i in range(3):
        assert c.call(Create(f"/n{i}", b"", OPEN, 0)).err == 0
    w[1].storage.hold = True
    w.restart(1)
    writes = len(w[1].storage.epoch_writes)
    w[1].peer.decided(ServerState.FOLLOWING, 3, w.clock.mono)
    w.pump()
    learner = w[1].peer.learner
    assert learner.stage.name == "PERSISTING"
    assert not [e for e in w[1].storage.epoch_writes[writes:] if e[0] == "currentEpoch"], \
        "currentEpoch written before the txns were durable"
    sent_ack = [t for t in w.trace if t.startswith("1->3")]
    w[1].storage.release()
    w.pump()
    name, value, durable = w[1].storage.epoch_writes[-1]
    assert (name, value) == ("currentEpoch", 1) and durable >= w[3].core.tree.last_processed_zxid
    assert len([t for t in w.trace if t.startswith("1->3")]) > len(sent_ack)
    assert w[1].core.role == Role.FOLLOWER
    trees_equal(w, [1, 2, 3])


def test_follower_acks_a_proposal_only_once_durable():
    w = elected(3, leader=3)
    c = connected(w, 3)
    w[1].storage.hold = True
    w[2].storage.hold = True
    xid = c.send(Create("/slow", b"", OPEN, 0))
    assert not [f for f in c.frames if f.kind == "reply"], "acknowledged before any follower was durable"
    assert w[3].core.tree.get("/slow") is None
    w[2].storage.release()
    w.pump()
    assert [f.xid for f in c.take() if f.kind == "reply"] == [xid]
    assert w[1].core.tree.get("/slow") is None  # member 1 has it logged but not durable: not applied
    w[1].storage.release()
    w.pump()
    trees_equal(w, [1, 2, 3])


def test_leader_failover_keeps_every_acknowledged_write():
    w = elected(3, leader=3)
    c = connected(w, 1)
    for i in range(5):
        assert c.call(Create(f"/k{i}", str(i).encode(), OPEN, 0)).err == 0
    w.crash(3)
    for sid in (1, 2):
        assert w[sid].core.role == Role.LOOKING
    w.elect(2, [1, 2])
    assert w.leader_of() == 2
    assert w[2].storage.epochs["currentEpoch"] == 2
    for i in range(5):
        assert w[1].core.tree.get(f"/k{i}").data == str(i).encode()
    c2 = connected(w, 1)
    assert c2.call(Create("/after", b"", OPEN, 0)).zxid >> 32 == 2
    w.restart(3)
    w[3].peer.decided(ServerState.FOLLOWING, 2, w.clock.mono)
    w.pump()
    trees_equal(w, [1, 2, 3])


def test_uncommitted_suffix_is_truncated_not_kept():
    """ZOOKEEPER-1154: a member whose log holds a proposal nobody else has must lose it."""
    w = elected(3, leader=3)
    c = connected(w, 3)
    assert c.call(Create("/base", b"", OPEN, 0)).err == 0
    # Partition the leader off; its next proposal reaches only its own log.
    w.cut = {frozenset((3, 1)), frozenset((3, 2))}
    c.send(Create("/phantom", b"", OPEN, 0))
    phantom = w[3].storage.last_logged_zxid
    assert w[1].storage.last_logged_zxid < phantom
    w.crash(3)
    w.cut.clear()
    w.elect(1, [1, 2])
    c1 = connected(w, 1)
    assert c1.call(Create("/new", b"", OPEN, 0)).err == 0
    w.restart(3)
    assert w[3].storage.last_logged_zxid == phantom
    w[3].peer.decided(ServerState.FOLLOWING, 1, w.clock.mono)
    w.pump()
    assert w[3].core.role == Role.FOLLOWER
    assert w[3].core.tree.get("/phantom") is None
    assert all(h.zxid != phantom or h.zxid >> 32 == 2 for h, _ in w[3].storage.entries)
    trees_equal(w, [1, 2, 3])


def test_uncommitted_suffix_is_truncated_when_the_new_leader_has_not_written_yet():
    """The TRUNC of rule 3: the learner is past the end of the leader's committed log."""
    w = elected(3, leader=3)
    c = connected(w, 3)
    assert c.call(Create("/base", b"", OPEN, 0)).err == 0
    w.cut = {frozenset((3, 1)), frozenset((3, 2))}
    c.send(Create("/phantom", b"", OPEN, 0))
    w.crash(3)
    w.cut.clear()
    w.elect(1, [1, 2])
    w.restart(3)
    w[3].peer.decided(ServerState.FOLLOWING, 1, w.clock.mono)
    w.pump()
    assert w[3].core.tree.get("/phantom") is None
    c1 = connected(w, 2)
    assert c1.call(Create("/new", b"", OPEN, 0)).err == 0
    trees_equal(w, [1, 2, 3])


def test_sync_through_a_follower_sees_writes_made_elsewhere():
    w = elected(3, leader=3)
    writer = connected(w, 2)
    reader = connected(w, 1)
    w[1].storage.hold = True  # member 1 applies late
    assert writer.call(Create("/s", b"v", OPEN, 0)).err == 0
    xid = reader.send(Sync("/s"))
    assert not [f for f in reader.frames if f.kind == "reply"], "sync answered before /s was applied here"
    w[1].storage.release()
    w.pump()
    assert [f.xid for f in reader.take() if f.kind == "reply"] == [xid]
    assert reader.call(GetData("/s", False)).err == 0


def test_session_expiry_on_the_leader_removes_ephemerals_everywhere():
    w = elected(3, leader=3)
    c = connected(w, 1, timeout=4000)
    assert c.call(Create("/eph", b"", OPEN, EPHEMERAL)).err == 0
    w.advance(2000)  # pings from the client keep it alive through member 1's touches
    for sid in (1, 2, 3):
        assert w[sid].core.tree.get("/eph") is not None
    w[1].core.connection_lost(c.cid)  # the client goes away
    w.advance(7000)
    for sid in (1, 2, 3):
        assert w[sid].core.tree.get("/eph") is None, sid
        assert c.session_id not in w[sid].core.sessions.sessions


def test_touches_from_a_learner_keep_a_session_alive_on_the_leader():
    w = elected(3, leader=3)
    c = connected(w, 1, timeout=4000)
    assert c.call(Create("/live", b"", OPEN, EPHEMERAL)).err == 0
    for _ in range(10):
        w.advance(1000)
        c.ok(GetData("/live", False))
    assert w[3].core.tree.get("/live") is not None


def test_client_moves_to_another_member_and_keeps_its_session():
    w = elected(3, leader=3)
    c = connected(w, 1)
    assert c.call(Create("/mine", b"", OPEN, EPHEMERAL)).err == 0
    sid, passwd = c.session_id, c.passwd
    w[1].core.connection_lost(c.cid)
    c2 = session(w, 2, session_id=sid, passwd=passwd, last_zxid=w[1].core.tree.last_processed_zxid)
    frames = c2.take()
    assert frames[0].connect.session_id == sid
    assert c2.call(SetData("/mine", b"x", -1)).err == 0
    bad = session(w, 2, session_id=sid, passwd=b"x" * 16)
    assert bad.take()[0].connect.session_id == 0


def test_a_member_behind_the_clients_last_zxid_refuses_it():
    w = elected(3, leader=3)
    c = connected(w, 2)
    w[1].storage.hold = True
    zxid = c.call(Create("/z", b"", OPEN, 0)).zxid
    late = session(w, 1, session_id=c.session_id, passwd=c.passwd, last_zxid=zxid)
    assert late.closed


def test_leader_without_a_quorum_steps_down_and_clients_are_disconnected_when_the_hold_ends():
    w = elected(3, leader=3)
    c = connected(w, 3)
    w.crash(1)
    w.crash(2)
    w.advance(1500)
    assert w[3].core.role == Role.LOOKING
    assert not c.closed  # held (test_election_hold.py): an election might end soon
    w.advance(2000)
    assert c.closed


def near_the_end_of_the_epoch(w: ZabWorld, leader_sid: int = 3) -> None:
    """Jump the leader's (and its learners') zxid counter to three short of the epoch's end."""
    core, leader = w[leader_sid].core, w[leader_sid].peer.leader
    core.zxid = core.durable_zxid = leader.last_proposed = leader.last_committed = (1 << 32) | 0xFFFFFFFD
    core.tree.last_processed_zxid = core.zxid
    for sid, node in w.nodes.items():
        if sid != leader_sid:
            node.peer.learner.last_queued = core.zxid


def test_zxid_rollover_forces_a_new_epoch():
    w = elected(3, leader=3)
    c = connected(w, 3)
    near_the_end_of_the_epoch(w)
    assert c.call(Create("/last", b"", OPEN, 0)).zxid == (1 << 32) | 0xFFFFFFFE
    c.send(Create("/over", b"", OPEN, 0))
    assert c.closed
    assert w[3].core.role == Role.LOOKING


def test_a_learner_request_that_does_not_decode_becomes_an_error_txn():
    w = elected(3, leader=3)
    c = connected(w, 1)
    reply = c.call(Delete("/nothing-here", -1))
    assert reply.err == -101  # NoNode, from the leader's prep through the commit
    c.send_raw(b"\0\0\0\x07\0\0\0\x01\0\0")  # a create with a truncated body
    replies = [f for f in c.take() if f.kind == "reply"]
    assert replies and replies[0].err == -5  # MarshallingError, as Apache


def test_an_epoch_file_the_disk_refuses_sends_the_member_back_to_looking():
    """Found by the simulator: ENOSPC writing acceptedEpoch escaped the peer and stopped it."""
    w = ZabWorld(3)
    w.start()
    w[1].storage.disk_full = True
    w.elect(3)
    assert w[1].core.role == Role.LOOKING and w[1].peer.learner is None
    assert w.leader_of() == 3  # the others go on without it
    w[1].storage.disk_full = False
    w[1].peer.decided(ServerState.FOLLOWING, 3, w.clock.mono)
    w.pump()
    assert w[1].core.role == Role.FOLLOWER


def test_a_follower_that_decides_before_its_leader_tries_again():
    """Each member decides after its own finalize wait, so a follower may dial its leader before
    that one leads. zkserver's quorum port listens from start-up and a member that does not lead
    closes what it accepts, where Apache's port refuses: either way the learner tries again
    (Learner.connectToLeader: 5 tries, 100 ms apart), instead of starting a new election that
    the leader, now waiting for followers, no longer takes part in."""
    w = ZabWorld(3)
    w.quorum_port_always_open = True
    w.start()
    w.elect(2, sids=[1])  # member 1 decides first
    assert w[1].peer.learner is not None, "the follower gave up on a leader that had not started yet"
    w.elect(2, sids=[2, 3])
    w.advance(200)
    assert w.leader_of() == 2
    assert w[1].core.role == Role.FOLLOWER and w[3].core.role == Role.FOLLOWER


def test_a_proposal_ack_before_the_newleader_ack_does_not_cost_the_leader_its_quorum():
    # ZOOKEEPER-4685: an Apache 3.8.0 learner logs the txns of its sync asynchronously at NEWLEADER
    # and its sync thread may ACK one before the NEWLEADER ACK goes out. Apache's leader takes that
    # first ACK for the NEWLEADER ACK, so a leader that needs this learner for its quorum never
    # gets it and gives up after initLimit; ours counts the NEWLEADER ACK that follows.
    w = elected(3, leader=3)
    c = connected(w, 3)
    for i in range(3):
        assert c.call(Create(f"/n{i}", b"", OPEN, 0)).err == 0
    w.crash(1)
    w.crash(2)
    w.advance(1000)
    assert w.leader_of() is None
    w.elect(3, sids=[3])
    learner = RawLearner(w, 1, leader=3)
    learner.send(PacketType.FOLLOWERINFO, 1 << 32, encode_learner_info(LearnerInfo(1)))
    w.pump()
    assert [(p.type, p.zxid) for p in learner.take()] == [(PacketType.LEADERINFO, 2 << 32)]
    behind = next(iter(w[3].peer.committed_log)).zxid  # it missed everything after the first txn
    learner.send(PacketType.ACKEPOCH, behind, encode_int(1))
    w.pump()
    sync = learner.take()
    assert (sync[0].type, sync[-1].type) == (PacketType.DIFF, PacketType.NEWLEADER)
    proposals = [p.zxid for p in sync if p.type == PacketType.PROPOSAL]
    assert proposals
    learner.send(PacketType.ACK, proposals[0])
    learner.send(PacketType.ACK, 2 << 32)
    w.pump()
    assert w.leader_of() == 3
    assert [p.type for p in learner.take() if p.type != PacketType.PING] == [PacketType.UPTODATE]
    learner.send(PacketType.ACK, 2 << 32)
    w.advance(1000)
    assert w.leader_of() == 3 and not learner.closed
    client = session(w, 3)  # its createSession commits once the learner acks it: the pair broadcasts
    proposed = [p.zxid for p in learner.take() if p.type == PacketType.PROPOSAL]
    assert len(proposed) == 1 and not client.frames
    learner.send(PacketType.ACK, proposed[0])
    w.pump()
    assert client.take()[0].connect.session_id


def test_time_spent_installing_a_snapshot_does_not_count_as_the_leader_being_silent():
    # The learner's read time-out (syncLimit ticks once NEWLEADER is in) runs while it waits for
    # the leader, as Apache's socket time-out does, not while it loads what it read. With
    # NEWLEADER behind a snapshot in the same read, the time-out used to start from before the
    # snapshot was installed: one that took longer than syncLimit ticks left it already due, and
    # uvloop runs a due timer before it reads the leader's next bytes (seen with a 55k-node tree).
    w = elected(3, leader=3)
    c = connected(w, 3)
    assert c.call(Create("/before", b"", OPEN, 0)).err == 0
    w.crash(1)
    w[2].storage.hold = True
    xid = c.send(Create("/in-flight", b"", OPEN, 0))  # outstanding: the learner holds it at NEWLEADER
    w[3].peer.settings.force_snapshot_sync = True
    w.restart(1)
    w[1].storage.hold = True  # so that it waits, past NEWLEADER, for its disk
    decode = w[1].peer.decode_snapshot
    slow = w.sync_limit * w.tick_ms + 300

    def slow_decode(data: bytes):
        w.clock.advance(slow)
        return decode(data)

    w[1].peer.decode_snapshot = slow_decode
    w[1].peer.decided(ServerState.FOLLOWING, 3, w.clock.mono)
    w.pump()
    learner = w[1].peer.learner
    assert learner is not None and learner.stage.name == "PERSISTING"
    assert learner.deadline() == w.clock.mono + w.sync_limit * w.tick_ms
    w[1].storage.release()
    w.pump()
    assert w[1].core.role == Role.FOLLOWER
    w[2].storage.release()
    w.pump()
    assert [f.xid for f in c.take() if f.kind == "reply"] == [xid]
    trees_equal(w, [1, 2, 3])


def test_no_commit_reaches_a_learner_between_newleader_and_uptodate():
    # ZOOKEEPER-4394: an Apache 3.8.0 learner clears the proposals it holds when NEWLEADER comes,
    # so a COMMIT read before UPTODATE finds none and it fails with a NullPointerException, then
    # resyncs (again and again under write load). The leader holds a participant's COMMITs from
    # NEWLEADER until its UPTODATE is out, then sends them in order.
    w = elected(3, leader=3)
    c = connected(w, 3)
    assert c.call(Create("/before", b"", OPEN, 0)).err == 0
    w.crash(1)
    w[2].storage.hold = True
    xid = c.send(Create("/in-flight", b"", OPEN, 0))
    learner = RawLearner(w, 1, leader=3)
    learner.send(PacketType.FOLLOWERINFO, 1 << 32, encode_learner_info(LearnerInfo(1)))
    w.pump()
    assert [p.type for p in learner.take()] == [PacketType.LEADERINFO]
    learner.send(PacketType.ACKEPOCH, w[3].core.tree.last_processed_zxid, encode_int(-1))
    w.pump()
    sync = [p for p in learner.take() if p.type != PacketType.PING]
    assert [p.type for p in sync] == [PacketType.DIFF, PacketType.PROPOSAL, PacketType.NEWLEADER]
    in_flight = sync[1].zxid
    w[2].storage.release()  # member 2 acks: /in-flight commits while the learner has not acked NEWLEADER
    w.pump()
    assert [f.xid for f in c.take() if f.kind == "reply"] == [xid]
    assert [p.type for p in learner.take() if p.type != PacketType.PING] == []
    learner.send(PacketType.ACK, sync[2].zxid)  # the NEWLEADER ACK
    w.pump()
    after = [(p.type, p.zxid) for p in learner.take() if p.type != PacketType.PING]
    assert after == [(PacketType.UPTODATE, -1), (PacketType.COMMIT, in_flight)]
def test_a_leader_whose_log_refuses_a_write_stops_taking_part():
    """Found by the simulator (3 members, seeds 16, 34, 65: disk_full on the leader): a log that
    failed after its last report refused the next proposals, and the leader's zip of them with
    the (empty) list of logged bytes raised out of the peer."""
    w = elected(3, leader=3)
    c = connected(w, 3)
    assert c.call(Create("/before", b"", OPEN, 0)).err == 0
    w[3].storage.refuse_appends = True
    c.send(Create("/refused", b"", OPEN, 0))
    assert w[3].peer.stopped is not None and w[3].peer.leader is None
    assert w[3].core.role == Role.LOOKING and c.closed
    assert all(w[sid].core.tree.get("/refused") is None for sid in (1, 2, 3))
    w.elect(2, [1, 2])
    assert w.leader_of() == 2
def test_a_follower_logs_the_proposals_of_one_read_in_one_append():
    w = elected(3, leader=3)
    c = connected(w, 3)
    before = {sid: len(w[sid].storage.appends) for sid in (1, 2)}
    w[1].storage.hold = True  # a slow disk: member 1 acks and applies nothing until it syncs
    frames = [struct.pack(">ii", 10 + i, 1) + bytes(Create(f"/p{i}", b"", OPEN, 0).serialize()) for i in range(5)]
    w[3].core.frames_received(c.cid, frames)  # five pipelined creates: one proposal batch
    w.pump()
    for sid in (1, 2):
        assert w[sid].storage.appends[before[sid]:] == [5], sid
    assert [f.xid for f in c.take() if f.kind == "reply"] == [10, 11, 12, 13, 14]  # the leader and member 2
    assert w[1].core.tree.get("/p0") is None, "applied before its log was durable"
    w[1].storage.release()
    w.pump()
    trees_equal(w, [1, 2, 3])


def test_a_read_that_fails_midway_leaves_the_log_and_the_tree_alike():
    """Proposals ahead of a bad packet in the same read never reach the log (they are logged once
    per read); the member goes LOOKING with a tree that is exactly its log."""
    w = elected(3, leader=3)
    c = connected(w, 3)
    assert c.call(Create("/a", b"", OPEN, 0)).err == 0
    learner = w[1].peer.learner
    zxid = w[3].peer.leader.last_proposed + 1
    hdr = TxnHeader(c.session_id, 99, zxid, 0, 2)  # a delete of /a, never proposed by the leader
    proposal = encode_packet(QuorumPacket(PacketType.PROPOSAL, zxid, encode_proposal(hdr, DeleteTxn("/a"), None)))
    wrong_commit = encode_packet(QuorumPacket(PacketType.COMMIT, zxid + 5))
    logged = w[1].storage.last_logged_zxid
    w[1].peer.quorum_data(learner.cid, proposal + wrong_commit)
    assert w[1].peer.learner is not learner and w[1].core.role == Role.LOOKING
    assert w[1].storage.last_logged_zxid == logged == w[1].core.tree.last_processed_zxid
    assert w[1].core.tree.get("/a") is not None


def test_a_voter_that_accepted_a_later_epoch_is_let_back_in_by_a_new_election():
    """Found by the simulator (seed 1565): a voter accepted epoch 4 from a leader attempt that
    failed while the two others settled epoch 3. It refuses LEADERINFO 3 ("Leaders epoch, 3 is
    less than accepted epoch, 4") each time it follows their leader, for as long as that leader
    leads: Apache's leader lets it. Ours steps down, and the new election's epoch passes 4."""
    w = ZabWorld(3)
    w.start()
    w.elect(3, [2, 3])
    assert w[3].peer.leader.epoch == 1
    w[1].peer.accepted_epoch = w[1].storage.epochs["acceptedEpoch"] = 4  # the failed attempt's
    w[1].peer.decided(ServerState.FOLLOWING, 3, w.clock.mono)
    w.pump()
    assert w[3].core.role == Role.LOOKING and w[3].peer.leader is None  # stepped down
    w.elect(3)
    assert w[3].peer.leader.epoch == 5
    assert {w[sid].core.role for sid in (1, 2)} == {Role.FOLLOWER}
    c = connected(w, 1)
    assert c.call(Create("/back", b"", OPEN, 0)).zxid >> 32 == 5
    trees_equal(w, [1, 2, 3])
