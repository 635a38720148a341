"""Read-only mode (readonlymode.enabled): a member cut off from its quorum serves read-only
clients, as Apache's ReadOnlyZooKeeperServer, until the election decides again."""

from __future__ import annotations

from kazoo.protocol.serialization import Close, Connect, Create, GetChildren, GetData, Ping, SetData, Sync

from tests.interaction.test_zab_scenarios import OPEN, connected, session
from tests.interaction.zabworld import ZabWorld
from zkserver.core import Role
from zkserver.jute.codes import Err, Op

EPHEMERAL = 1
GRACE_MS = 2000  # max(2000 ms, tickTime): the world's tick is 100 ms


def cut_off(local_sessions: bool = True, read_only: bool = True):
    """Member 1 with data and a global session (its ephemeral made it one), then alone: its
    leader (3) and the other follower (2) are gone."""
    w = ZabWorld(3, read_only=read_only, local_sessions=local_sessions, local_sessions_upgrading=local_sessions)
    w.start()
    w.elect(3)
    writer = connected(w, 1)
    assert writer.call(Create("/data", b"kept", OPEN, 0)).err == 0
    assert writer.call(Create("/eph", b"", OPEN, EPHEMERAL)).err == 0
    w.crash(3)
    w.crash(2)
    w.advance(100)
    assert w[1].core.role == Role.LOOKING and not writer.closed  # held: the election may end soon
    return w, writer


def ro_session(w: ZabWorld, sid: int, session_id: int = 0, passwd: bytes = b"\0" * 16):
    client = w[sid].open()
    client.send_raw(bytes(Connect(0, 0, 4000, session_id, passwd, True).serialize()))
    return client


def test_a_member_without_quorum_serves_read_only_clients_after_the_grace_period():
    w, _ = cut_off()
    early = ro_session(w, 1)
    assert early.closed and not early.take()  # still LOOKING: nobody is served
    w.advance(GRACE_MS)
    assert w[1].core.role == Role.READ_ONLY
    c = ro_session(w, 1)
    resp = c.take()[0].connect
    assert resp.read_only is True and resp.session_id >> 56 == 1
    assert w[1].core.sessions.sessions[resp.session_id].local
    assert c.call(GetData("/data", False)).err == 0
    assert c.call(GetChildren("/", False)).err == 0
    assert c.call(Ping(), xid=-2).err == 0
    for request in (Create("/new", b"", OPEN, 0), SetData("/data", b"x", -1), Sync("/")):
        reply = c.call(request)
        assert reply.err == Err.NOT_READ_ONLY and reply.zxid == w[1].core.tree.last_processed_zxid, request
    assert w[1].core.tree.get("/new") is None and w[1].core.tree.get("/data").data == b"kept"
    assert c.call(Close()).err == 0 and c.closed  # a local session ends without a txn
    assert all(h.type != Op.CLOSE_SESSION for h, _ in w[1].storage.entries)


def test_read_only_mode_refuses_clients_that_cannot_take_it_and_global_sessions():
    w, writer = cut_off()
    assert not w[1].core.sessions.sessions[writer.session_id].local
    w.advance(GRACE_MS)
    assert writer.closed  # held until then; a read-only member serves no global session
    rw = session(w, 1)  # no readOnly flag: Apache refuses "not-read-only client"
    assert rw.closed and not rw.take()
    back = ro_session(w, 1, session_id=writer.session_id, passwd=writer.passwd)
    assert back.closed and not back.take()  # "Refusing global session reconnection in RO mode"


def test_without_local_sessions_a_new_read_only_session_gets_apaches_not_read_only_reply():
    w, _ = cut_off(local_sessions=False)
    w.advance(GRACE_MS)
    client = w[1].open()
    client.got_connect = True  # decode what comes back as a reply header, as Apache sends one
    client.send_raw(bytes(Connect(0, 0, 4000, 0, b"\0" * 16, True).serialize()))
    (frame,) = client.take()
    assert (frame.xid, frame.err) == (0, Err.NOT_READ_ONLY) and client.closed
    assert all(not s.local for s in w[1].core.sessions.sessions.values())


def test_read_only_sessions_expire_locally_and_end_with_the_election():
    w, _ = cut_off()
    w.advance(GRACE_MS)
    idle = ro_session(w, 1)
    idle_id = idle.take()[0].connect.session_id
    w[1].core.connection_lost(idle.cid)
    w.advance(5000)  # its 4 s timeout passes with no ping
    assert idle_id not in w[1].core.sessions.sessions
    c = ro_session(w, 1)
    kept_id = c.take()[0].connect.session_id
    w.restart(2)
    w.elect(2, sids=[1, 2])
    assert w[1].core.role == Role.FOLLOWER and w.leader_of() == 2
    assert c.closed  # the read-only server's clients go, and its local sessions with it
    assert kept_id not in w[1].core.sessions.sessions
    assert not w[1].peer.read_only_at


def test_without_readonlymode_a_member_without_quorum_serves_nobody():
    w, _ = cut_off(read_only=False)
    w.advance(10 * GRACE_MS)
    assert w[1].core.role == Role.LOOKING
    assert ro_session(w, 1).closed
