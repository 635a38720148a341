"""The quorum port's packet stream: every packet back whatever the chunks, bad bytes refused."""

from __future__ import annotations

import struct

import pytest

from zkserver.proto.peer_codec import PacketType, PeerProtocolError, QuorumPacket, QuorumStreamDecoder, encode_packet

PACKETS = [
    QuorumPacket(PacketType.PROPOSAL, (1 << 32) + 1, b"p" * 190),
    QuorumPacket(PacketType.COMMIT, (1 << 32) + 1),
    QuorumPacket(PacketType.REQUEST, -1, b"r" * 30, (("digest", "bob:x"), ("ip", "127.0.0.1"))),
    QuorumPacket(PacketType.PING, 7, b""),
    QuorumPacket(PacketType.REQUEST, -1, b"q", ()),
    QuorumPacket(PacketType.ACK, (1 << 32) + 1),
]
STREAM = b"".join(encode_packet(p) for p in PACKETS)


def test_every_packet_comes_back_as_it_was_sent_whatever_the_split() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = QuorumStreamDecoder()
        got = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
        assert got == PACKETS, cut
        assert [type(p.data) for p in got] == [type(p.data) for p in PACKETS]  # b"" is not None


def test_a_byte_at_a_time() -> None:
    decoder = QuorumStreamDecoder()
    got = []
    for i in range(len(STREAM)):
        got += decoder.feed(STREAM[i:i + 1])
    assert got == PACKETS


@pytest.mark.parametrize("bad", [
    struct.pack(">iqi", 2, 1, -2),  # a data length below -1
    struct.pack(">iqi", 2, 1, 1 << 30),  # over the limit
    struct.pack(">iqii", 4, 1, -1, -2),  # an authinfo count below -1
    struct.pack(">iqii", 4, 1, -1, 5000),  # too many ids
    struct.pack(">iqiii", 1, -1, -1, 1, -5),  # an id's string of negative length
    struct.pack(">iqiii", 1, -1, -1, 1, 2) + b"\xff\xfe" + struct.pack(">i", 0),  # not UTF-8
])
def test_bytes_that_are_not_a_packet_are_refused(bad: bytes) -> None:
    with pytest.raises(PeerProtocolError):
        QuorumStreamDecoder().feed(encode_packet(PACKETS[0]) + bad)
