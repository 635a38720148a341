"""The election-port codec: notification forms by length, the initial message, framing."""

from __future__ import annotations

import struct

import pytest

from zkserver.proto.election_codec import (
    MAX_ADDRESS_BYTES,
    PACKET_MAX_SIZE,
    PROTOCOL_VERSION_V1,
    PROTOCOL_VERSION_V2,
    ElectionCodecError,
    ElectionStreamDecoder,
    FrameError,
    HandshakeError,
    InitialMessage,
    Notification,
    NotificationError,
    ServerState,
    encode_frame,
)

MIN = -(1 << 63)
CONFIG = b"server.1=127.0.0.1:2888:3888:participant\nversion=0"


def test_encode_is_apaches_44_byte_form_plus_config() -> None:
    n = Notification(ServerState.FOLLOWING, 3, 0x100000005, 7, 1, 2, CONFIG)
    data = n.encode()
    assert len(data) == 44 + len(CONFIG)
    assert struct.unpack(">iqqqqii", data[:44]) == (1, 3, 0x100000005, 7, 1, 2, len(CONFIG))
    assert data[44:] == CONFIG
    assert Notification.decode(data) == n


def test_encode_always_writes_version_2_and_empty_config_when_none() -> None:
    data = Notification(0, 1, 2, 3, 4, version=0, config=None).encode()
    assert len(data) == 44
    assert struct.unpack(">ii", data[36:44]) == (2, 0)
    assert Notification.decode(data) == Notification(0, 1, 2, 3, 4, 2, b"")


def test_min_value_votes_round_trip() -> None:
    n = Notification(0, MIN, MIN, 1, MIN, 2, b"")
    assert Notification.decode(n.encode()) == n


def test_28_byte_form_derives_the_peer_epoch_from_the_zxid() -> None:
    data = struct.pack(">iqqq", 0, 2, 0x500000003, 9)
    assert Notification.decode(data) == Notification(0, 2, 0x500000003, 9, 5, 0, None)
    negative = struct.pack(">iqqq", 0, 2, -1, 9)
    assert Notification.decode(negative).peer_epoch == -1  # an arithmetic shift, as Java's >>


def test_40_byte_form_reads_the_peer_epoch_and_ignores_the_trailing_int() -> None:
    data = struct.pack(">iqqqqi", 1, 2, 3, 4, 5, 1)
    assert Notification.decode(data) == Notification(1, 2, 3, 4, 5, 0, None)


def test_36_byte_form_of_3_4_0_is_dropped() -> None:
    with pytest.raises(NotificationError):
        Notification.decode(struct.pack(">iqqqq", 0, 1, 2, 3, 4))


@pytest.mark.parametrize("size", [0, 1, 27, 29, 35, 37, 39])
def test_short_and_truncated_notifications_are_dropped(size: int) -> None:
    with pytest.raises(NotificationError):
        Notification.decode(bytes(size))


def test_version_1_or_less_reads_no_config_even_with_bytes_after() -> None:
    data = struct.pack(">iqqqqi", 0, 1, 2, 3, 4, 1) + b"trailing"
    assert Notification.decode(data) == Notification(0, 1, 2, 3, 4, 1, None)
    short = struct.pack(">iqqqqi", 0, 1, 2, 3, 4, 0) + b"x"  # 41 bytes
    assert Notification.decode(short).version == 0


@pytest.mark.parametrize("length", [-1, 100, 1 << 30])
def test_bad_config_length_is_dropped(length: int) -> None:
    data = struct.pack(">iqqqqii", 0, 1, 2, 3, 4, 2, length) + b"abc"
    with pytest.raises(NotificationError):
        Notification.decode(data)


def test_version_2_without_room_for_the_config_length_is_dropped() -> None:
    with pytest.raises(NotificationError):
        Notification.decode(struct.pack(">iqqqqi", 0, 1, 2, 3, 4, 2) + b"xx")  # 42 bytes


def test_bytes_after_the_config_are_ignored() -> None:
    data = struct.pack(">iqqqqii", 0, 1, 2, 3, 4, 2, 3) + b"abcXYZ"
    assert Notification.decode(data).config == b"abc"


def test_out_of_range_state_decodes_and_is_left_to_the_election() -> None:
    data = Notification(7, 1, 2, 3, 4, 2, b"").encode()
    assert Notification.decode(data).state == 7


# -- initial message


def test_initial_message_v1_bytes() -> None:
    data = InitialMessage(5, (("127.0.0.1", 3888),)).encode()
    text = b"127.0.0.1:3888"
    assert data == struct.pack(">qqi", PROTOCOL_VERSION_V1, 5, len(text)) + text


def test_initial_message_v2_and_ipv6_brackets() -> None:
    message = InitialMessage(5, (("::1", 3888), ("10.0.0.1", 3889)), PROTOCOL_VERSION_V2)
    data = message.encode()
    assert data.endswith(b"[::1]:3888|10.0.0.1:3889")
    (event,) = ElectionStreamDecoder().feed(data)
    assert event == message


def test_decoder_reads_initial_message_then_frames_in_pieces() -> None:
    n = Notification(0, 1, 2, 3, 4, 2, CONFIG)
    stream = InitialMessage(9, (("host.example", 3890),)).encode() + encode_frame(n.encode()) * 2
    decoder = ElectionStreamDecoder()
    events: list[object] = []
    for i in range(len(stream)):  # one byte at a time
        events += decoder.feed(stream[i:i + 1])
    assert events[0] == InitialMessage(9, (("host.example", 3890),))
    assert [Notification.decode(e) for e in events[1:]] == [n, n]  # type: ignore[arg-type]


def test_old_style_first_long_is_the_sid_and_nothing_else() -> None:
    frame = encode_frame(b"x" * 30)
    events = ElectionStreamDecoder().feed(struct.pack(">q", 4) + frame)
    assert events == [InitialMessage(4, (), None), b"x" * 30]
    assert InitialMessage(4, (), None).encode() == struct.pack(">q", 4)


def test_wildcard_addresses_are_left_out() -> None:
    data = InitialMessage(5, (("0.0.0.0", 3888), ("::", 3889), ("10.1.1.1", 3890)), PROTOCOL_VERSION_V2).encode()
    (event,) = ElectionStreamDecoder().feed(data)
    assert event.addresses == (("10.1.1.1", 3890),)  # type: ignore[union-attr]


def _raw_initial(text: bytes, version: int = PROTOCOL_VERSION_V1, length: int | None = None) -> bytes:
    return struct.pack(">qqi", version, 5, len(text) if length is None else length) + text


@pytest.mark.parametrize("data", [
    struct.pack(">q", -7) + bytes(20),  # unknown protocol version
    _raw_initial(b"", length=0),
    _raw_initial(b"x", length=-1),
    _raw_initial(b"x", length=MAX_ADDRESS_BYTES + 1),
    _raw_initial(b"justahost"),
    _raw_initial(b"a:1:2"),
    _raw_initial(b"host:port"),
    _raw_initial(b"host:70000"),
    _raw_initial(b"host:-1"),
    _raw_initial(b"[::1"),
    _raw_initial(b"[::1]:"),
    _raw_initial(b"[::1]"),
    _raw_initial(b"|a:1"),
])
def test_malformed_handshakes_raise_handshake_error(data: bytes) -> None:
    decoder = ElectionStreamDecoder()
    with pytest.raises(HandshakeError):
        decoder.feed(data)
    with pytest.raises(ElectionCodecError):  # and the connection stays broken
        decoder.feed(b"")


def test_java_split_leniencies_are_kept() -> None:
    # A trailing '|' adds nothing; "[v6]x5" skips the character after ']' as Apache does.
    (event,) = ElectionStreamDecoder().feed(_raw_initial(b"a:1|", PROTOCOL_VERSION_V2))
    assert event.addresses == (("a", 1),)  # type: ignore[union-attr]
    (event,) = ElectionStreamDecoder().feed(_raw_initial(b"[::1]x5"))
    assert event.addresses == (("::1", 5),)  # type: ignore[union-attr]
    (event,) = ElectionStreamDecoder().feed(_raw_initial(b"|"))
    assert event.addresses == ()  # type: ignore[union-attr]


@pytest.mark.parametrize("length", [0, -1, PACKET_MAX_SIZE + 1])
def test_bad_frame_lengths_raise_frame_error(length: int) -> None:
    decoder = ElectionStreamDecoder(handshake=False)
    with pytest.raises(FrameError):
        decoder.feed(struct.pack(">i", length))


def test_largest_frame_is_accepted() -> None:
    decoder = ElectionStreamDecoder(handshake=False)
    payload = bytes(PACKET_MAX_SIZE)
    assert decoder.feed(encode_frame(payload)) == [payload]


def test_incomplete_input_yields_nothing_yet() -> None:
    decoder = ElectionStreamDecoder()
    assert decoder.feed(struct.pack(">qq", PROTOCOL_VERSION_V1, 5)) == []
    assert not decoder.handshake_done
    assert decoder.feed(struct.pack(">i", 3) + b"a:1") == [InitialMessage(5, (("a", 1),))]
    assert decoder.handshake_done
    assert decoder.feed(struct.pack(">i", 2) + b"x") == []
    assert decoder.feed(b"y") == [b"xy"]
