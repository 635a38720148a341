"""The fault proxy on loopback, against plain sockets standing in for two members.

Member 1 dials member 2 through the listener in front of 2 (route (1, 2)); what arrives at 2's
"real" port is what the proxy delivered. Held bytes are asserted absent only once the proxy's
own counters say it has read and queued them, so no assertion depends on timing.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.faultproxy import FaultNetwork
from zkserver.proto.election_codec import PROTOCOL_VERSION_V1, ElectionStreamDecoder, InitialMessage, encode_frame

WAIT = 10.0


class FakeMember:
    """A listening socket standing in for one member's quorum and election ports."""

    def __init__(self) -> None:
        self.quorum = _listener()
        self.election = _listener()

    @property
    def ports(self) -> tuple[int, int]:
        return self.quorum.getsockname()[1], self.election.getsockname()[1]

    def close(self) -> None:
        self.quorum.close()
        self.election.close()


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    s.settimeout(WAIT)
    return s


def wait_until(cond: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.01)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise AssertionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def ended(sock: socket.socket) -> bool:
    """The peer closed or reset the connection (and sent nothing more)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
        sock.settimeout(WAIT)
    return False


@pytest.fixture
def net() -> Iterator[tuple[FaultNetwork, dict[int, FakeMember]]]:
    members = {1: FakeMember(), 2: FakeMember()}
    network = FaultNetwork(seed=7, rto_ms=10)
    network.route({sid: m.ports for sid, m in members.items()})
    try:
        yield network, members
    finally:
        network.close()
        for m in members.values():
            m.close()


def dial(network: FaultNetwork, src: int, dst: int, kind: str = "quorum") -> socket.socket:
    """src's connection to dst, through the listener src was given for dst."""
    route = network.routes[(src, dst)]
    port = route.quorum_port if kind == "quorum" else route.election_port
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def accept(member: FakeMember, kind: str = "quorum") -> socket.socket:
    conn, _ = (member.quorum if kind == "quorum" else member.election).accept()
    conn.settimeout(WAIT)
    return conn


def test_bytes_and_the_end_of_stream_pass_both_ways(net):
    network, members = net
    client = dial(network, 1, 2)
    server = accept(members[2])
    client.sendall(b"hello")
    assert recv_exactly(server, 5) == b"hello"
    server.sendall(b"world!")
    assert recv_exactly(client, 6) == b"world!"
    client.shutdown(socket.SHUT_WR)
    assert server.recv(1) == b""  # the close arrives after the bytes
    server.sendall(b"late")  # the other way still flows after a half-close
    assert recv_exactly(client, 4) == b"late"
    assert network.stats()[(1, 2)].bytes == 5


def test_one_way_blackhole_holds_bytes_until_heal_and_keeps_their_order(net):
    network, members = net
    client = dial(network, 1, 2)
    server = accept(members[2])
    network.blackhole(1, 2)
    client.sendall(b"one")
    client.sendall(b"two")
    wait_until(lambda: network.stats()[(1, 2)].queued == 6, "the proxy holds 1's six bytes")
    assert nothing_waiting(server)
    server.sendall(b"back")  # 2 -> 1 is not blackholed: an asymmetric partition
    assert recv_exactly(client, 4) == b"back"
    assert network.rules() == {(1, 2): "blackhole"}
    network.heal()
    assert recv_exactly(server, 6) == b"onetwo"
    assert network.rules() == {}


def test_a_connection_opened_across_a_partition_reaches_the_target_only_after_heal(net):
    network, members = net
    network.partition([[1], [2]])
    client = dial(network, 1, 2)
    client.sendall(b"syn+data")
    wait_until(lambda: network.stats()[(1, 2)].queued == 8, "the proxy holds the dialler's bytes")
    members[2].quorum.setblocking(False)
    with pytest.raises(BlockingIOError):
        members[2].quorum.accept()  # no connection was opened to the target
    members[2].quorum.setblocking(True)
    members[2].quorum.settimeout(WAIT)
    network.heal()
    server = accept(members[2])
    assert recv_exactly(server, 8) == b"syn+data"


def test_the_initial_message_names_the_listener_the_dialled_member_must_dial_back(net):
    network, members = net
    client = dial(network, 1, 2, kind="election")
    real_address = ("127.0.0.1", members[1].ports[1])
    hello = InitialMessage(1, (real_address,), PROTOCOL_VERSION_V1).encode()
    client.sendall(hello + encode_frame(b"notification"))
    server = accept(members[2], kind="election")
    decoder = ElectionStreamDecoder(handshake=True)
    events: list = []
    while len(events) < 2:
        events += decoder.feed(server.recv(65536))
    back_port = network.routes[(2, 1)].election_port
    assert events[0] == InitialMessage(1, (("127.0.0.1", back_port),), PROTOCOL_VERSION_V1)
    assert events[1] == b"notification"
    # Dialling that address reaches member 1's real election port, through (2, 1)'s rules.
    back = socket.create_connection(("127.0.0.1", back_port), timeout=WAIT)
    back.sendall(InitialMessage(2, (("127.0.0.1", members[2].ports[1]),), PROTOCOL_VERSION_V1).encode())
    decoder = ElectionStreamDecoder(handshake=True)
    at_1 = accept(members[1], kind="election")
    events = []
    while not events:
        events += decoder.feed(at_1.recv(65536))
    assert events[0].addresses == (("127.0.0.1", network.routes[(1, 2)].election_port),)


def test_the_pre_3_5_initial_message_passes_unchanged(net):
    network, members = net
    client = dial(network, 1, 2, kind="election")
    old = struct.pack(">q", 1)  # protocol version absent: the first long is the sid
    client.sendall(old + b"rest")
    server = accept(members[2], kind="election")
    assert recv_exactly(server, 12) == old + b"rest"


def test_reset_breaks_both_ends(net):
    network, members = net
    client = dial(network, 1, 2)
    server = accept(members[2])
    client.sendall(b"x")
    assert recv_exactly(server, 1) == b"x"
    assert network.reset([(1, 2)]) == 1
    assert ended(client) and ended(server)
    assert network.stats()[(1, 2)].resets == 1


def test_a_dial_to_a_member_that_is_down_is_reset(net):
    network, members = net
    members[2].quorum.close()  # member 2 is down
    try:
        client = dial(network, 1, 2)
    except ConnectionResetError:
        return  # reset before connect() even returned (its timeout makes it poll, then read SO_ERROR)
    assert ended(client)


def test_delay_holds_each_chunk_at_least_that_long(net):
    network, members = net
    client = dial(network, 1, 2)
    server = accept(members[2])
    network.slow([(1, 2)], delay_ms=300)
    start = time.monotonic()
    client.sendall(b"slow")
    assert recv_exactly(server, 4) == b"slow"
    assert time.monotonic() - start >= 0.3


def test_loss_is_retransmission_delay_never_lost_or_reordered_bytes(net):
    network, members = net
    client = dial(network, 1, 2)
    server = accept(members[2])
    network.lossy([(1, 2)], 0.5)
    for i in range(12):  # one chunk each: every message is its own "segment"
        client.sendall(f"m{i:02d}".encode())
        assert recv_exactly(server, 3) == f"m{i:02d}".encode()
    assert network.stats()[(1, 2)].retransmits > 0
