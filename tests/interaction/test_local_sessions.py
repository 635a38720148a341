"""localSessionsEnabled / localSessionsUpgradingEnabled on ensemble members, as Apache."""

from __future__ import annotations

from kazoo.protocol.serialization import Close, Create, GetData

from tests.interaction.test_zab_scenarios import OPEN, connected, session
from tests.interaction.zabworld import ZabWorld
from zkserver.jute.codes import Op

EPHEMERAL = 1


def world(upgrading: bool) -> ZabWorld:
    w = ZabWorld(3, local_sessions=True, local_sessions_upgrading=upgrading)
    w.start()
    w.elect(3)
    return w


def session_txns(w: ZabWorld) -> list[int]:
    return [h.type for h, _ in w[3].storage.entries if h.type in (Op.CREATE_SESSION, Op.CLOSE_SESSION)]


def test_a_local_session_makes_no_txn_and_serves_reads_and_persistent_writes():
    w = world(upgrading=False)
    c = connected(w, 1)
    assert session_txns(w) == []
    assert c.session_id not in w[3].core.sessions.sessions  # the leader does not know it
    assert c.call(Create("/p", b"x", OPEN, 0)).err == 0
    assert c.call(GetData("/p", False)).err == 0
    assert c.call(Create("/e", b"", OPEN, EPHEMERAL)).err == -120  # EphemeralOnLocalSession
    assert c.call(Close()).err == 0
    assert c.closed and session_txns(w) == []


def test_an_ephemeral_create_upgrades_the_session_first():
    w = world(upgrading=True)
    c = connected(w, 2)
    assert c.call(Create("/e", b"", OPEN, EPHEMERAL)).err == 0
    assert session_txns(w) == [Op.CREATE_SESSION]
    leader = w[3].core.sessions.sessions[c.session_id]
    assert not leader.local
    assert w[1].core.tree.get("/e").owner == c.session_id
    assert c.call(Close()).err == 0  # a global session now: closing it is a txn
    assert session_txns(w) == [Op.CREATE_SESSION, Op.CLOSE_SESSION]
    assert w[1].core.tree.get("/e") is None


def test_a_local_session_expires_where_it_lives_and_is_unknown_elsewhere():
    w = world(upgrading=False)
    c = connected(w, 1, timeout=4000)
    sid, passwd = c.session_id, c.passwd
    other = session(w, 2, session_id=sid, passwd=passwd)
    assert other.take()[0].connect.session_id == 0  # the leader never heard of it: expired
    w[1].core.connection_lost(c.cid)
    w.advance(6000)
    assert sid not in w[1].core.sessions.sessions
    assert session_txns(w) == []
