"""Election-port bytes (Apache's QuorumCnxManager + FastLeaderElection wire format), without I/O.

Theory of operation. An election connection carries, from its initiator, one *initial
message* (who is calling and at which election address it listens), then in both
directions `int length` + payload frames; each payload is one FLE *notification*.

- The initial message is `long protocolVersion, long sid, int addrLen, addr bytes`, where
  the version is V1 (-65536, one `host:port`) or V2 (-65535, `h1:p1|h2:p2`, multiAddress).
  A first long >= 0 is the pre-3.5 form: that long is the sid and nothing else follows.
- A frame length <= 0 or > 524288 breaks the stream: the connection is closed.
- A notification is told apart by its length (FastLeaderElection.WorkerReceiver): 28 bytes
  (no peer epoch), 40 bytes (peer epoch, version 0), else a version int and, for version > 1,
  a config string. What Apache skips (short, truncated, bad config length) raises
  NotificationError: the message is dropped but, as in Apache, the connection stays up.

`ElectionStreamDecoder` turns one connection's inbound bytes into events. Every bad byte
raises a subclass of `ElectionCodecError` and nothing else (fuzzed in tests/fuzz/).
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass
from enum import IntEnum

from ..javastr import host_and_port, java_split

PROTOCOL_VERSION_V1 = -65536
PROTOCOL_VERSION_V2 = -65535
MAX_ADDRESS_BYTES = 2048  # QuorumCnxManager.maxBuffer
PACKET_MAX_SIZE = 512 * 1024  # QuorumCnxManager.PACKETMAXSIZE
OBSERVER_ID = (1 << 63) - 1  # QuorumPeer.OBSERVER_ID: an observer that does not say who it is
CURRENT_VERSION = 2  # FastLeaderElection.Notification.CURRENTVERSION

_LONG = struct.Struct(">q")
_INT = struct.Struct(">i")
_HEAD28 = struct.Struct(">iqqq")  # state, leader, zxid, electionEpoch
_FULL = struct.Struct(">iqqqqii")  # ... peerEpoch, version, configLength
_INITIAL = struct.Struct(">qqi")
_JAVA_INT = re.compile(r"[+-]?[0-9]+\Z")


class ServerState(IntEnum):
    """QuorumPeer.ServerState; the ordinal is what a notification carries."""

    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2
    OBSERVING = 3


class ElectionCodecError(ValueError):
    """A peer sent bytes the election port cannot accept (the peer's fault, never ours)."""


class HandshakeError(ElectionCodecError):
    """A malformed initial message: close that connection."""


class FrameError(ElectionCodecError):
    """A frame length outside 1..524288: close that connection."""


class NotificationError(ElectionCodecError):
    """A frame that is not a notification Apache would read: drop it, keep the connection."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One FLE notification. `state` is the raw int: Apache answers a non-voter before it
    looks at the state, so an out-of-range state is the election's to drop, not the codec's."""

    state: int
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    version: int = CURRENT_VERSION
    config: bytes | None = None  # the sender's QuorumVerifier.toString(); None before version 2

    def encode(self) -> bytes:
        """3.8's form (FastLeaderElection.buildMsg): 44 bytes + the config, always version 2."""
        config = self.config or b""
        head = _FULL.pack(self.state, self.leader, self.zxid, self.election_epoch, self.peer_epoch,
                          CURRENT_VERSION, len(config))
        return head + config

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Notification:
        """Read a notification as 3.8's WorkerReceiver does; NotificationError where it skips one."""
        size = len(payload)
        if size < 28:
            raise NotificationError(f"a {size}-byte notification is shorter than 28 bytes")
        state, leader, zxid, election_epoch = _HEAD28.unpack_from(payload, 0)
        if size == 28:  # before ZOOKEEPER-107: no peer epoch, derived from the zxid
            return cls(state, leader, zxid, election_epoch, zxid >> 32, 0, None)
        peer_epoch = _need_long(payload, 28, size)
        if size == 40:  # 3.4.6-: peer epoch, then an int Apache ignores
            return cls(state, leader, zxid, election_epoch, peer_epoch, 0, None)
        version = _need_int(payload, 36, size)
        if version <= 1:
            return cls(state, leader, zxid, election_epoch, peer_epoch, version, None)
        length = _need_int(payload, 40, size)
        if length < 0 or length > size:
            raise NotificationError(f"config length {length} is outside 0..{size}")
        if 44 + length > size:
            raise NotificationError(f"config length {length} runs past the {size}-byte notification")
        return cls(state, leader, zxid, election_epoch, peer_epoch, version, bytes(payload[44:44 + length]))


def _need_long(payload: bytes | bytearray | memoryview, offset: int, size: int) -> int:
    if offset + 8 > size:
        raise NotificationError(f"a {size}-byte notification ends inside a field at {offset}")
    return _LONG.unpack_from(payload, offset)[0]


def _need_int(payload: bytes | bytearray | memoryview, offset: int, size: int) -> int:
    if offset + 4 > size:
        raise NotificationError(f"a {size}-byte notification ends inside a field at {offset}")
    return _INT.unpack_from(payload, offset)[0]


def encode_frame(payload: bytes) -> bytes:
    """`int length` + payload, as SendWorker.send writes it."""
    return _INT.pack(len(payload)) + payload


# --------------------------------------------------------------------------- initial message


def format_address(host: str, port: int) -> str:
    """NetUtils.formatInetAddr for an address literal: IPv6 hosts go in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class InitialMessage:
    """Who opened an election connection. protocol_version None: the pre-3.5 form (sid only).

    `addresses` holds the election addresses the caller listens on, wildcard hosts left out
    (InitialMessage.parse); empty means "dial me back at my configured address"."""

    sid: int
    addresses: tuple[tuple[str, int], ...] = ()
    protocol_version: int | None = PROTOCOL_VERSION_V1

    def encode(self) -> bytes:
        """The bytes QuorumCnxManager.startConnection sends, meant for one write."""
        if self.protocol_version is None:
            return _LONG.pack(self.sid)
        text = "|".join(format_address(host, port) for host, port in self.addresses).encode()
        return _INITIAL.pack(self.protocol_version, self.sid, len(text)) + text


def _host_and_port(text: str) -> list[str]:
    try:
        return host_and_port(text)
    except ValueError as exc:
        raise HandshakeError(f"address {exc}") from None


def _is_wildcard(host: str) -> bool:
    # Apache resolves the name; a literal is all a wildcard can sensibly be.
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _parse_addresses(raw: bytes) -> tuple[tuple[str, int], ...]:
    out = []
    for item in java_split(raw.decode("utf-8", errors="replace"), "|"):
        parts = _host_and_port(item)
        if len(parts) != 2:
            raise HandshakeError(f"badly formed address {item!r}")
        host, port_text = parts
        if not _JAVA_INT.match(port_text):
            raise HandshakeError(f"bad port number {port_text!r}")
        port = int(port_text)
        if not 0 <= port <= 65535:  # Apache's InetSocketAddress throws here and kills its listener
            raise HandshakeError(f"port {port} is outside 0..65535")
        if not _is_wildcard(host):
            out.append((host, port))
    return tuple(out)


# --------------------------------------------------------------------------- stream decoder


class ElectionStreamDecoder:
    """One election connection's inbound bytes -> [InitialMessage once (if expected), frames...].

    `feed` returns every complete event in order: the InitialMessage first on a connection we
    accepted (handshake=True), then each frame's payload as bytes. Any error is final: the
    caller closes the connection, and the decoder refuses further input.
    """

    __slots__ = ("_broken", "_buf", "_need_handshake")

    def __init__(self, handshake: bool = True) -> None:
        self._buf = bytearray()
        self._need_handshake = handshake
        self._broken = False

    @property
    def handshake_done(self) -> bool:
        return not self._need_handshake

    def feed(self, data: bytes | bytearray | memoryview) -> list[InitialMessage | bytes]:
        if self._broken:
            raise ElectionCodecError("the connection already sent bad bytes")
        self._buf += data
        try:
            return self._drain()
        except ElectionCodecError:
            self._broken = True
            self._buf.clear()
            raise

    def _drain(self) -> list[InitialMessage | bytes]:
        events: list[InitialMessage | bytes] = []
        if self._need_handshake:
            message = self._initial()
            if message is None:
                return events
            events.append(message)
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            (length,) = _INT.unpack_from(buf, pos)
            if length <= 0 or length > PACKET_MAX_SIZE:
                raise FrameError(f"frame length {length} is outside 1..{PACKET_MAX_SIZE}")
            if len(buf) - pos - 4 < length:
                break
            events.append(bytes(buf[pos + 4:pos + 4 + length]))
            pos += 4 + length
        del buf[:pos]
        return events

    def _initial(self) -> InitialMessage | None:
        buf = self._buf
        if len(buf) < 8:
            return None
        (first,) = _LONG.unpack_from(buf, 0)
        if first >= 0:  # the pre-3.5 form: the first long is the sid
            del buf[:8]
            self._need_handshake = False
            return InitialMessage(first, (), None)
        if first not in (PROTOCOL_VERSION_V1, PROTOCOL_VERSION_V2):
            raise HandshakeError(f"unknown protocol version {first}")
        if len(buf) < 20:
            return None
        _, sid, length = _INITIAL.unpack_from(buf, 0)
        if length <= 0 or length > MAX_ADDRESS_BYTES:
            raise HandshakeError(f"address length {length} is outside 1..{MAX_ADDRESS_BYTES}")
        if len(buf) < 20 + length:
            return None
        addresses = _parse_addresses(bytes(buf[20:20 + length]))
        del buf[:20 + length]
        self._need_handshake = False
        return InitialMessage(sid, addresses, first)
