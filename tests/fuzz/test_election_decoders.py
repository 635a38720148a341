"""Fuzz the election-port decoders: arbitrary bytes raise the codec's own error or nothing.

ZOOKEEPER-3769: a malformed notification killed Apache's receiver thread. Here the two
decoders (one connection's byte stream, one notification payload) must never raise
anything but ElectionCodecError, however the bytes are cut into reads.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from zkserver.proto.election_codec import (
    PROTOCOL_VERSION_V1,
    PROTOCOL_VERSION_V2,
    ElectionCodecError,
    ElectionStreamDecoder,
    InitialMessage,
    Notification,
)

EXAMPLES = settings(max_examples=1500, deadline=None)

# Bytes that start like the real thing reach deeper than uniform noise.
_prefixes = st.sampled_from([
    b"",
    struct.pack(">q", PROTOCOL_VERSION_V1),
    struct.pack(">qq", PROTOCOL_VERSION_V2, 3),
    struct.pack(">qqi", PROTOCOL_VERSION_V1, 3, 14) + b"127.0.0.1:3888",
    struct.pack(">q", 5),
])


@EXAMPLES
@given(_prefixes, st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=64), max_size=12),
       st.booleans())
def test_stream_decoder_raises_only_its_own_error(prefix: bytes, tail: bytes, cuts: list[int],
                                                  handshake: bool) -> None:
    data = prefix + tail
    decoder = ElectionStreamDecoder(handshake=handshake)
    pos = 0
    try:
        for cut in [*cuts, len(data)]:
            for event in decoder.feed(data[pos:pos + cut]):
                assert isinstance(event, InitialMessage | bytes)
            pos += cut
    except ElectionCodecError:
        pass


_notification_heads = st.sampled_from([
    b"",
    struct.pack(">iqqqq", 0, 1, 2, 3, 4),
    struct.pack(">iqqqqi", 1, 1, 2, 3, 4, 2),
    struct.pack(">iqqqqii", 2, 1, 2, 3, 4, 2, 10),
])


@EXAMPLES
@given(_notification_heads, st.binary(max_size=120))
def test_notification_decode_raises_only_its_own_error(head: bytes, tail: bytes) -> None:
    try:
        n = Notification.decode(head + tail)
    except ElectionCodecError:
        return
    assert len(head + tail) >= 28
    assert n.config is None or len(n.config) <= len(head + tail)


@EXAMPLES
@given(st.integers(-(1 << 31), (1 << 31) - 1), *[st.integers(-(1 << 63), (1 << 63) - 1)] * 4,
       st.one_of(st.none(), st.binary(max_size=200)))
def test_notification_round_trip(state: int, leader: int, zxid: int, epoch: int, peer: int,
                                 config: bytes | None) -> None:
    n = Notification(state, leader, zxid, epoch, peer, 2, config)
    assert Notification.decode(n.encode()) == Notification(state, leader, zxid, epoch, peer, 2, config or b"")
