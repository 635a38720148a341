"""Scripted dynamic reconfiguration (reconfigEnabled): the leader's checks, the commit that
needs a quorum of both configs, activation on every member, and a leader crash mid-reconfig.

Each rule is Apache 3.8's (PrepRequestProcessor's reconfig case, Leader.propose/tryToCommit,
Learner/Follower/Observer on COMMITANDACTIVATE and INFORMANDACTIVATE); quorum/reconfig.py
and leader.py's docstring say where each lives here.
"""

from __future__ import annotations

from kazoo.protocol.serialization import Auth, Create, Reconfig

from tests.interaction.test_zab_basic import OPEN_ACL, session
from tests.interaction.zabworld import ZabWorld
from tests.unit.corehelper import XID_AUTH, read_stat
from zkserver.core import Role
from zkserver.jute.codes import Err
from zkserver.proto.election_codec import CURRENT_VERSION, Notification, ServerState
from zkserver.quorum.reconfig import verifier_from_string
from zkserver.tree.acl import digest_id

EPOCH1 = 1 << 32
OBSERVER_100 = "server.100=0.0.0.0:5100:6100:observer;0.0.0.0:7100"


def world(voters: int = 3, observers: int = 0, leader: int = 3) -> ZabWorld:
    w = ZabWorld(voters, observers, reconfig=True, super_digest=digest_id("super:test"))
    w.start()
    w.elect(leader=leader)
    assert w.leader_of() == leader
    return w


def super_session(w: ZabWorld, sid: int):
    c = session(w, sid)
    assert c.call(Auth(0, "digest", "super:test"), xid=XID_AUTH).err == 0
    return c


def reconfig(client, joining=None, leaving=None, new_members=None, version=-1):
    return client.call(Reconfig(joining, leaving, new_members, version))


def config_of(frame) -> tuple[str, object]:
    n = int.from_bytes(frame.body[:4], "big")
    return frame.body[4:4 + n].decode(), read_stat(frame.body, 4 + n)


def release(w: ZabWorld, sid: int) -> None:
    """Member `sid`'s log makes what it held durable, and holds nothing from now on."""
    w[sid].storage.hold = False
    w[sid].storage.release()


def versions(w: ZabWorld) -> dict[int, int]:
    return {sid: n.peer.verifier.version for sid, n in w.nodes.items() if n.alive}


# ---------------------------------------------------------------- the first leader's numbering


def test_the_first_leader_numbers_a_version_0_config_with_its_epoch_and_every_member_activates_it():
    w = world()
    assert versions(w) == {1: EPOCH1, 2: EPOCH1, 3: EPOCH1}
    for sid in (1, 2, 3):
        node = w[sid]
        assert node.files.activated_versions == [EPOCH1], sid  # zoo.cfg.dynamic.100000000
        config = node.core.tree.get("/zookeeper/config")
        assert config.data == str(node.peer.verifier).encode()
        assert config.data.endswith(b"\nversion=100000000")
        # Apache's initConfigInZKDatabase: version -1, mzxid the config's version
        assert (config.version, config.mzxid) == (-1, EPOCH1)


def test_without_reconfig_enabled_the_config_stays_version_0_and_reconfig_is_refused():
    w = ZabWorld(3, super_digest=digest_id("super:test"))
    w.start()
    w.elect(leader=3)
    assert w[1].peer.verifier.version == 0
    c = session(w, 1)
    assert c.call(Auth(0, "digest", "super:test"), xid=XID_AUTH).err == 0
    assert reconfig(c, joining=OBSERVER_100).err == Err.RECONFIG_DISABLED


# ---------------------------------------------------------------- a reconfig, end to end


def test_an_observer_joins_and_leaves_through_a_follower_and_every_member_activates_each_config():
    w = world()
    c = super_session(w, 1)  # a follower: the request is forwarded to the leader
    reply = reconfig(c, joining=OBSERVER_100)
    assert reply.err == 0
    text, stat = config_of(reply)
    assert OBSERVER_100 in text
    zxid = stat.mzxid
    assert text.endswith(f"version={zxid:x}") and stat.version == -1
    for sid in (1, 2, 3):
        peer = w[sid].peer
        assert peer.verifier.version == zxid and 100 in peer.verifier.observers, sid
        assert peer.last_seen is peer.verifier
        assert w[sid].files.activated_versions == [EPOCH1, zxid]
        assert w[sid].files.proposed_versions[-1] == zxid  # .next, while it was in flight
        assert w[sid].core.tree.get("/zookeeper/config").data.decode() == text
        assert w[sid].election.configs[-1][:2] == (zxid, zxid)  # the election carries it from now on
    reply = reconfig(c, leaving="100", version=zxid)
    assert reply.err == 0
    text, stat = config_of(reply)
    assert "server.100" not in text
    assert versions(w) == {1: stat.mzxid, 2: stat.mzxid, 3: stat.mzxid}


def test_an_observer_member_activates_through_informandactivate():
    w = world(voters=3, observers=1)
    c = super_session(w, 4)  # the observer forwards it too
    reply = reconfig(c, joining=OBSERVER_100)
    assert reply.err == 0
    zxid = config_of(reply)[1].mzxid
    assert versions(w) == {1: zxid, 2: zxid, 3: zxid, 4: zxid}
    assert w[4].core.role == Role.OBSERVER  # no change of role or leader: it goes on observing


def test_a_non_incremental_reconfig_replaces_the_member_list():
    w = world()
    c = super_session(w, 3)
    members = ",".join(line for line in str(w[3].peer.verifier).split("\n") if line.startswith("server."))
    reply = reconfig(c, new_members=members + "," + OBSERVER_100)
    assert reply.err == 0
    assert 100 in w[2].peer.verifier.observers


# ---------------------------------------------------------------- the leader's checks


def test_without_write_on_zookeeper_config_a_valid_reconfig_is_noauth():
    w = world()
    c = session(w, 1)
    assert reconfig(c, joining=OBSERVER_100).err == Err.NO_AUTH
    assert versions(w) == {1: EPOCH1, 2: EPOCH1, 3: EPOCH1}


def test_bad_input_is_badarguments_before_any_acl_check():
    w = world()
    c = session(w, 1)
    assert reconfig(c, joining="some thing").err == Err.BAD_ARGUMENTS
    assert reconfig(c, joining="server.9=127.0.0.1:1:2:participant").err == Err.BAD_ARGUMENTS  # no client port
    assert reconfig(c, leaving="abc").err == Err.MARSHALLING_ERROR  # Apache's NumberFormatException
    s = super_session(w, 1)
    assert reconfig(s, leaving="2,3").err == Err.BAD_ARGUMENTS  # fewer than 2 voters left
    assert reconfig(s, new_members="server.1=127.0.0.1:2001:3001:participant").err == Err.BAD_ARGUMENTS


def test_a_version_other_than_the_current_one_is_badversion():
    w = world()
    c = super_session(w, 2)
    assert reconfig(c, joining=OBSERVER_100, version=EPOCH1 + 1).err == Err.BAD_VERSION
    assert reconfig(c, joining=OBSERVER_100, version=EPOCH1).err == 0


def test_a_second_reconfig_while_one_is_in_flight_is_reconfig_in_progress():
    w = world()
    c = super_session(w, 3)
    w[1].storage.hold = w[2].storage.hold = True  # nothing commits
    first = c.send(Reconfig(OBSERVER_100, None, None, -1))
    second = c.send(Reconfig(None, "2", None, -1))
    assert not c.replies()
    assert w[3].peer.last_seen.version > w[3].peer.verifier.version  # in progress
    release(w, 1)
    release(w, 2)
    w.pump()
    replies = {f.xid: f.err for f in c.replies()}
    assert replies == {first: 0, second: Err.RECONFIG_IN_PROGRESS}


def test_a_new_config_without_a_synced_quorum_is_refused():
    w = world()
    c = super_session(w, 3)
    w.crash(2)
    # {1,2,3,4} needs three synced voters; only 3 and 1 are
    assert reconfig(c, joining="server.4=127.0.0.1:2004:3004:participant;4004").err == Err.NEW_CONFIG_NO_QUORUM
    # an observer changes no quorum
    assert reconfig(c, joining=OBSERVER_100).err == 0


def test_removing_the_leader_hands_over_to_a_designated_voter_and_the_old_leader_follows_without_a_vote():
    w = world()
    c = super_session(w, 1)
    reply = reconfig(c, leaving="3")
    assert reply.err == 0  # answered by 1, which applied it before leaving its role
    zxid = config_of(reply)[1].mzxid
    assert versions(w) == {1: zxid, 2: zxid, 3: zxid}
    assert w[3].peer.leader is None  # not the designated leader: it commits nothing more
    for sid in (1, 2):  # told of another leader (the designated 1): they elect again
        assert w[sid].core.role == Role.LOOKING, sid
    w.elect(leader=1)
    assert w.leader_of() == 1 and w[3].core.role == Role.FOLLOWER
    w[3].storage.hold = True  # the old leader's acks count for nothing now
    c1 = session(w, 2)
    assert c1.call(Create("/after", b"", OPEN_ACL, 0)).err == 0


def designations(w: ZabWorld, sid: int) -> list[int | None]:
    """Record the designated leader each activation on member `sid` is told of."""
    told: list[int | None] = []
    activate = w[sid].peer.activate

    def recording(verifier, designated):
        told.append(designated)
        return activate(verifier, designated)

    w[sid].peer.activate = recording  # type: ignore[method-assign]
    return told


def test_the_designated_leader_is_the_voter_that_acked_the_most_of_what_followed():
    w = world(voters=4, leader=4)
    c = super_session(w, 4)
    told = designations(w, 1)
    w[3].storage.hold = w[4].storage.hold = True  # the old config's quorum (3 of 4) waits for 4's own log
    c.send(Reconfig(None, "4", None, -1))  # 1 and 2 ack it: a quorum of {1,2,3}, not of {1,2,3,4}
    w[1].storage.hold = True
    c.send(Create("/next", b"", OPEN_ACL, 0))  # only 2 acks what follows
    leader = w[4].peer.leader
    assert not c.replies()
    release(w, 4)  # the leader's log: now the reconfig commits, and 2 is the most up to date of 1 and 2
    w.pump()
    assert told == [2]
    assert not leader.allowed_to_commit and w[4].peer.leader is None
    assert w[1].core.role == Role.LOOKING
    release(w, 1)
    release(w, 3)
    w.elect(leader=2)
    assert w.leader_of() == 2
    assert w[1].core.tree.get("/next") is not None  # in the new leader's history, committed by it


def test_making_the_leader_an_observer_hands_over_too():
    w = world()
    c = super_session(w, 1)
    assert reconfig(c, joining="server.3=127.0.0.1:2003:3003:observer;4003").err == 0
    assert w[3].peer.settings.observer is True and w[3].core.role == Role.LOOKING
    w.elect(leader=2)
    assert w[3].core.role == Role.OBSERVER


# ---------------------------------------------------------------- commit rules


def test_a_reconfig_commits_only_with_a_quorum_of_the_old_and_of_the_new_config():
    w = world()
    c = super_session(w, 3)
    w[1].storage.hold = True  # acks: 3 and 2 - a quorum of {1,2,3}, not of {1,3}
    xid = c.send(Reconfig(None, "2", None, -1))
    assert not c.replies()
    assert w[3].peer.verifier.version == EPOCH1
    release(w, 1)
    w.pump()
    [reply] = c.replies()
    assert reply.xid == xid and reply.err == 0
    assert w[3].peer.verifier.voting == {1, 3}


def test_a_removed_follower_follows_on_without_a_vote_and_the_new_quorum_commits_without_it():
    w = world()
    c = super_session(w, 3)
    assert reconfig(c, leaving="2").err == 0
    assert w[2].core.role == Role.FOLLOWER  # Apache's "non-voting participant" goes on following
    w[2].storage.hold = True  # its acks do not count any more
    assert c.call(Create("/after", b"", OPEN_ACL, 0)).err == 0
    w[1].storage.hold = True
    xid = c.send(Create("/needs-1", b"", OPEN_ACL, 0))
    release(w, 2)
    w.pump()
    assert not [f for f in c.replies() if f.xid == xid]  # 2 acked; {1,3} still needs 1
    release(w, 1)
    w.pump()
    assert w[3].core.tree.get("/needs-1") is not None


def test_an_observer_made_a_participant_elects_again_and_then_follows():
    w = world(voters=3, observers=1)
    c = super_session(w, 3)
    assert reconfig(c, joining="server.4=127.0.0.1:2004:3004:participant;4004").err == 0
    node = w[4]
    assert node.peer.settings.observer is False
    assert node.core.role == Role.LOOKING  # "changes proposed in reconfig"
    w.elect(leader=3, sids=[4])
    assert node.core.role == Role.FOLLOWER
    assert node.peer.verifier.version == w[3].peer.verifier.version


# ---------------------------------------------------------------- a leader crash mid-reconfig


def test_a_reconfig_logged_by_a_quorum_survives_a_leader_crash_and_the_next_leader_activates_it():
    w = world()
    c = super_session(w, 3)
    w[2].storage.hold = True  # the new config {2,3} lacks 2's ack: the reconfig stays pending
    c.send(Reconfig(None, "1", None, -1))
    pending = w[3].peer.last_seen
    assert pending.version > w[3].peer.verifier.version
    assert w[2].peer.last_seen.version == pending.version  # 2 logged the proposal: last seen config
    assert w[2].files.proposed_versions[-1] == pending.version  # its .next
    w.crash(3)
    release(w, 2)
    w.pump()
    w.restart(3)
    assert w[3].peer.last_seen.version == pending.version  # read back from .next
    w.elect(leader=2)
    assert w.leader_of() == 2
    # the new leader needed a quorum of both configs for NEWLEADER, then activated it
    assert versions(w) == {1: pending.version, 2: pending.version, 3: pending.version}
    assert w[2].peer.verifier.voting == {2, 3}
    text = w[1].core.tree.get("/zookeeper/config").data.decode()
    assert verifier_from_string(text).version == pending.version
    # the new config commits writes on its own quorum
    c2 = session(w, 3)
    assert c2.call(Create("/x", b"", OPEN_ACL, 0)).err == 0


def test_a_new_leader_without_a_quorum_of_the_pending_config_does_not_establish():
    w = world()
    c = super_session(w, 3)
    w[2].storage.hold = True
    c.send(Reconfig(None, "1", None, -1))
    w.crash(3)
    release(w, 2)
    w.pump()
    w.elect(leader=2, sids=[1, 2])  # {1,2} is a quorum of {1,2,3} but not of {2,3}
    w.advance(w.tick_ms * w.init_limit + 100)
    assert w.leader_of() is None
    assert w[2].peer.verifier.version == EPOCH1  # nothing activated


def test_a_next_leader_that_the_pending_reconfig_removes_activates_it_and_leaves_the_lead():
    w = world()
    c = super_session(w, 3)
    w[2].storage.hold = True  # {2,3} needs 2: the reconfig removing 1 stays in flight
    c.send(Reconfig(None, "1", None, -1))
    pending = w[3].peer.last_seen
    w.crash(3)
    release(w, 2)
    w.pump()
    w.restart(3)
    w.elect(leader=1)  # 1 has the longest history too; it gets a quorum of both configs
    assert w[1].peer.verifier.version == pending.version  # activated at establishment...
    assert w[1].peer.leader is None  # ...and it stepped down: it is no voter of that config
    w.advance(w.tick_ms * w.init_limit + 100)  # its learners give up waiting for UPTODATE
    # 1's notifications carry the config it activated; a LOOKING member takes it (Apache's FLE
    # with reconfigEnabled), or 1 - ahead of it - could not follow it.
    tell = Notification(ServerState.LOOKING, 1, 0, 1, 1, CURRENT_VERSION, w[1].peer.verifier.config_bytes())
    for sid in (2, 3):
        if w[sid].peer.verifier.version < pending.version:
            before = len(w[sid].election.starts)
            w[sid].election.newer_config = tell.config  # what FLE's receiver keeps (the stub does not)
            w[sid].peer.election_message(1, tell.encode())
            assert len(w[sid].election.starts) == before + 1  # it looked again with the new config
        assert w[sid].peer.verifier.version == pending.version
    w.elect(leader=2)
    assert w.leader_of() == 2
    assert versions(w) == {1: pending.version, 2: pending.version, 3: pending.version}
    assert w[1].core.role == Role.FOLLOWER  # following without a vote
