"""A member that stops serving to elect holds its idle clients' connections (electionClientHoldMs):
they wait out a short election instead of reconnecting, and lose nothing they are owed. What
must not survive the election closes as Apache closes every connection: a connection with a
request in flight, every held one when the member's tree is cut back or replaced (TRUNC, SNAP),
and every held one still waiting when the hold ends."""

from __future__ import annotations

from kazoo.protocol.serialization import Create, Exists, GetData, SetData

from tests.interaction.test_zab_scenarios import OPEN, connected, elected, near_the_end_of_the_epoch, trees_equal
from tests.interaction.zabworld import ZabWorld
from zkserver.core import Role
from zkserver.proto.election_codec import ServerState

CHANGED = 3  # EventType.NodeDataChanged
CREATED = 1


def test_an_idle_client_of_a_follower_rides_through_the_leaders_crash():
    w = elected(3, leader=3)
    writer = connected(w, 2)
    reader = connected(w, 1)
    assert writer.call(Create("/w", b"a", OPEN, 0)).err == 0
    assert reader.call(GetData("/w", True)).err == 0  # a watch, set before the election
    w.crash(3)
    assert w[1].core.role == Role.LOOKING and not reader.closed and not writer.closed
    xid = reader.send(GetData("/w", False))  # sent while its member elects: answered after
    assert not reader.replies()
    w.elect(2, [1, 2])
    assert [f.xid for f in reader.take() if f.kind == "reply"] == [xid]
    assert writer.call(SetData("/w", b"b", -1)).err == 0  # the writer's member now leads
    assert reader.events() == [(CHANGED, "/w")]
    assert not reader.closed and not writer.closed
    assert not w[1].core.held and not w[2].core.held


def test_a_client_with_a_request_in_flight_loses_its_connection_as_with_apache():
    w = elected(3, leader=3)
    busy = connected(w, 1)
    idle = connected(w, 1)
    w.cut = {frozenset((1, 3))}  # the forwarded create never reaches the leader
    busy.send(Create("/lost", b"", OPEN, 0))
    w.crash(3)
    assert busy.closed and not idle.closed
    w.cut.clear()
    w.elect(2, [1, 2])
    assert idle.call(Exists("/lost", False)).err == -101  # NoNode: the create never happened
    assert not idle.closed


def test_a_trunc_closes_the_held_connections_and_what_they_were_owed_is_never_sent():
    """The old leader applies its unacknowledged proposal when it stops leading (the history it
    votes with): the watch event it fires for that txn must never reach the client, since the
    new leader's TRUNC takes the txn back."""
    w = elected(3, leader=3)
    writer = connected(w, 3)
    watcher = connected(w, 3)
    assert writer.call(Create("/base", b"", OPEN, 0)).err == 0
    assert watcher.call(Exists("/phantom", True)).err == -101
    w.cut = {frozenset((3, 1)), frozenset((3, 2))}
    writer.send(Create("/phantom", b"", OPEN, 0))
    w.advance(2000)  # the leader loses its quorum and steps down; the others elect
    assert w[3].core.role == Role.LOOKING
    assert w[3].core.tree.get("/phantom") is not None  # applied while LOOKING, as logged
    assert writer.closed and not watcher.closed
    w.elect(1, [1, 2])
    c1 = connected(w, 1)
    assert c1.call(Create("/new", b"", OPEN, 0)).err == 0
    w.cut.clear()
    w[3].peer.decided(ServerState.FOLLOWING, 1, w.clock.mono)
    w.pump()
    assert w[3].core.role == Role.FOLLOWER and w[3].core.tree.get("/phantom") is None
    assert watcher.closed
    assert not [f for f in watcher.take() if f.kind == "event"]
    trees_equal(w, [1, 2, 3])


def test_a_member_that_stays_cut_off_closes_its_held_connections_when_the_hold_ends():
    w = elected(3, leader=3)
    client = connected(w, 1, timeout=10000)  # a third of it is longer than the 2 s hold
    w.cut = {frozenset((1, 2)), frozenset((1, 3))}
    w.advance(1000)
    assert w[1].core.role == Role.LOOKING and not client.closed
    looking_since = w[1].peer.looking_since
    w.advance(looking_since + 1900 - w.clock.mono)
    assert not client.closed
    w.advance(200)
    assert client.closed and not w[1].core.held


def test_a_short_session_is_held_a_third_of_its_timeout():
    w = elected(3, leader=3)
    client = connected(w, 1, timeout=4000)
    w.crash(3)
    w.crash(2)
    w.advance(1300)
    assert not client.closed
    w.advance(100)
    assert client.closed


def test_a_hold_of_zero_closes_every_connection_at_once_as_apache_does():
    w = ZabWorld(3, election_hold_ms=0)
    w.start()
    w.elect(3)
    client = connected(w, 1)
    w.crash(3)
    assert client.closed


def test_zxid_rollover_costs_idle_clients_nothing():
    """Apache's leader steps down when its epoch runs out of zxids and every member closes every
    client connection; here only the request that found no zxid loses its connection."""
    w = elected(3, leader=3)
    c = connected(w, 3)
    follower_client = connected(w, 1)
    leader_client = connected(w, 3)
    near_the_end_of_the_epoch(w)
    assert c.call(Create("/last", b"", OPEN, 0)).zxid == (1 << 32) | 0xFFFFFFFE
    assert follower_client.call(Exists("/next", True)).err == -101
    c.send(Create("/over", b"", OPEN, 0))
    assert c.closed and w[3].core.role == Role.LOOKING
    assert not follower_client.closed and not leader_client.closed
    w.elect(3)  # the next epoch
    reply = leader_client.call(Create("/next", b"", OPEN, 0))
    assert reply.err == 0 and reply.zxid >> 32 == 2
    assert follower_client.events() == [(CREATED, "/next")]
    assert not follower_client.closed and not leader_client.closed
