"""Scripted Zab: an ensemble of real peers in memory, elections decided by the script."""

from __future__ import annotations

from kazoo.protocol.serialization import CheckVersion, Connect, Create, GetData, SetData, Transaction

from tests.interaction.zabworld import ZabWorld
from zkserver.core import Role

OPEN_ACL = [__import__("kazoo.security", fromlist=["OPEN_ACL_UNSAFE"]).OPEN_ACL_UNSAFE[0]]


def session(world: ZabWorld, sid: int):
    node = world[sid]
    client = node.open()
    client.send_raw(bytes(Connect(0, 0, 10000, 0, b"\0" * 16, False).serialize()))
    frames = client.take()
    assert frames and frames[0].kind == "connect" and client.session_id, frames
    return client


def test_three_members_elect_sync_and_replicate_a_write():
    w = ZabWorld(3)
    w.start()
    w.elect(leader=3)
    assert w.leader_of() == 3
    assert w[3].core.role == Role.LEADER
    assert w[1].core.role == Role.FOLLOWER and w[2].core.role == Role.FOLLOWER
    for sid in (1, 2, 3):
        assert w[sid].storage.epochs == {"acceptedEpoch": 1, "currentEpoch": 1}
    c = session(w, 1)
    reply = c.call(Create("/a", b"x", OPEN_ACL, 0))
    assert reply.err == 0
    assert reply.zxid >> 32 == 1
    for sid in (1, 2, 3):
        assert w[sid].core.tree.get("/a").data == b"x", sid
    c.ok(SetData("/a", b"y", -1))
    data = c.call(GetData("/a", False))
    assert data.err == 0
    assert w[2].core.tree.get("/a").data == b"y"


def test_a_multi_the_leader_refuses_whole_is_answered_with_its_error_on_the_follower():
    # The leader turns a forwarded request it cannot prepare into an error txn (here: its session
    # is gone there); the follower's client gets that error, a multi's included - not an empty
    # "ok" result list (found by the simulator, seed 2055: the session had expired meanwhile).
    w = ZabWorld(3)
    w.start()
    w.elect(leader=3)
    c = session(w, 1)
    c.ok(Create("/a", b"x", OPEN_ACL, 0))
    w[3].core.sessions.remove(c.session_id)  # as if it had expired at the leader
    reply = c.call(Transaction([CheckVersion("/a", 0), Create("/b", b"y", OPEN_ACL, 0)]))
    assert reply.err == -112  # SESSIONEXPIRED, as Apache's FinalRequestProcessor answers it
    assert w[1].core.tree.get("/b") is None and w[3].core.tree.get("/b") is None
