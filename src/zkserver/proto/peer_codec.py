"""The quorum port's bytes: Zab's QuorumPacket records and the payloads they carry.

Theory of operation. The quorum port carries back-to-back jute `QuorumPacket` records
{int type, long zxid, buffer data, vector<Id> authinfo} with no length prefix of their own
(peer-protocol.md §3.1). `QuorumStreamDecoder` is sans-I/O, as the client-port framing is:
the shell (or the simulator) feeds it whatever bytes arrived and gets back every complete
packet, keeping a partial one for the next call. Each packet's length is known from its
fields before its body is copied, so a large proposal that arrives in many chunks is parsed
once, not once per chunk.

One thing on the port is not a QuorumPacket: after a SNAP packet the leader writes the
database itself (Apache's SerializeUtils.serializeSnapshot, which has no length either) and
then the ustring "BenWasHere". A decoder built with a snapshot scanner hands those bytes to
it after a SNAP and yields them as one `SnapshotPayload`, then goes back to packets.

Everything here is the peer's fault when it does not decode: `PeerProtocolError`, and the
caller closes that one connection.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple, Protocol

from ..jute.codec import DEFAULT_MAX_BUFFER

# Apache's reader allows jute.maxbuffer plus zookeeper.jute.maxbuffer.extrasize (by default
# the same again) for the data of one packet.
DEFAULT_PACKET_LIMIT = 2 * DEFAULT_MAX_BUFFER
PROTOCOL_VERSION = 0x10000  # LEADERINFO's and LearnerInfo's Zab 1.0 version
SNAP_SIGNATURE = b"BenWasHere"

_HEAD = struct.Struct(">iqi")  # type, zxid, data length
_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_REQUEST_HEAD = struct.Struct(">qii")  # session id, cxid, opcode
_TOUCH = struct.Struct(">qi")  # session id, timeout
_LEARNER_INFO = struct.Struct(">qiq")  # sid, protocol version, config version
_REVALIDATE_REPLY = struct.Struct(">q?")


class PeerProtocolError(ValueError):
    """A peer sent bytes that are not the quorum protocol: its fault; close its connection."""


class PacketType(IntEnum):
    REQUEST = 1
    PROPOSAL = 2
    ACK = 3
    COMMIT = 4
    PING = 5
    REVALIDATE = 6
    SYNC = 7
    INFORM = 8
    COMMITANDACTIVATE = 9
    NEWLEADER = 10
    FOLLOWERINFO = 11
    UPTODATE = 12
    DIFF = 13
    TRUNC = 14
    SNAP = 15
    OBSERVERINFO = 16
    LEADERINFO = 17
    ACKEPOCH = 18
    INFORMANDACTIVATE = 19


def packet_name(kind: int) -> str:
    try:
        return PacketType(kind).name
    except ValueError:
        return f"UNKNOWN{kind}"


class QuorumPacket(NamedTuple):
    """Immutable, as a frozen dataclass, and ~4x cheaper to build (0.2 against 0.9 us): a
    member builds one for every packet in and out, several per write."""

    type: int
    zxid: int
    data: bytes | None = None
    authinfo: tuple[tuple[str, str], ...] | None = None

    def __repr__(self) -> str:
        size = "null" if self.data is None else f"{len(self.data)}B"
        return f"{packet_name(self.type)}(0x{self.zxid & 0xFFFFFFFFFFFFFFFF:x}, {size})"


@dataclass(frozen=True, slots=True)
class SnapshotPayload:
    """The database a SNAP packet announced, as the leader streamed it (signature checked)."""

    data: bytes


def encode_packet(packet: QuorumPacket) -> bytes:
    data = packet.data
    parts = [_HEAD.pack(packet.type, packet.zxid, -1 if data is None else len(data))]
    if data:
        parts.append(data)
    auth = packet.authinfo
    if auth is None:
        parts.append(_INT.pack(-1))
    else:
        parts.append(_INT.pack(len(auth)))
        for scheme, ident in auth:
            parts.append(_ustring(scheme))
            parts.append(_ustring(ident))
    return b"".join(parts)


def _ustring(text: str) -> bytes:
    raw = text.encode()
    return _INT.pack(len(raw)) + raw


def encode_signature() -> bytes:
    return _ustring(SNAP_SIGNATURE.decode())


class SnapshotScanner(Protocol):
    def feed(self, data: memoryview) -> int | None:
        """Bytes of `data` that complete the snapshot, or None: all of it belongs to it, send more."""
        ...


class QuorumStreamDecoder:
    """Inbound bytes of one quorum connection -> QuorumPackets (and SNAP payloads)."""

    def __init__(self, limit: int = DEFAULT_PACKET_LIMIT,
                 snapshot_scanner: Callable[[], SnapshotScanner] | None = None):
        self.limit = limit
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already decoded; cut once per feed, not once per packet
        self._new_scanner = snapshot_scanner
        self._scanner: SnapshotScanner | None = None
        self._snapshot = bytearray()
        self._want_signature = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[QuorumPacket | SnapshotPayload]:
        self._buf += data
        out: list[QuorumPacket | SnapshotPayload] = []
        try:
            while True:
                if self._scanner is not None:
                    if not self._scan_snapshot():
                        break
                    continue
                if self._want_signature:
                    payload = self._signature()
                    if payload is None:
                        break
                    out.append(payload)
                    continue
                packet = self._packet()
                if packet is None:
                    break
                out.append(packet)
                if packet.type == PacketType.SNAP and self._new_scanner is not None:
                    self._scanner = self._new_scanner()
        finally:
            del self._buf[:self._pos]
            self._pos = 0
        return out

    def _scan_snapshot(self) -> bool:
        """Move snapshot bytes out of the buffer; True once the snapshot is complete."""
        assert self._scanner is not None
        start = self._pos
        if start == len(self._buf):
            return False
        try:
            used = self._scanner.feed(memoryview(self._buf)[start:])
        except ValueError as e:
            raise PeerProtocolError(f"bad snapshot stream after SNAP: {e}") from None
        if used is None:
            self._snapshot += memoryview(self._buf)[start:]
            self._pos = len(self._buf)
            return False
        self._snapshot += memoryview(self._buf)[start:start + used]
        self._pos = start + used
        self._scanner = None
        self._want_signature = True
        return True

    def _signature(self) -> SnapshotPayload | None:
        need = 4 + len(SNAP_SIGNATURE)
        start = self._pos
        if len(self._buf) - start < need:
            return None
        got = bytes(self._buf[start:start + need])
        if got != encode_signature():
            raise PeerProtocolError(f"missing signature after the snapshot: got {got!r}")
        self._pos = start + need
        payload = SnapshotPayload(bytes(self._snapshot))
        self._snapshot = bytearray()
        self._want_signature = False
        return payload

    def _packet(self) -> QuorumPacket | None:
        buf, start = self._buf, self._pos
        if len(buf) - start < _HEAD.size:
            return None
        kind, zxid, size = _HEAD.unpack_from(buf, start)
        if size < -1 or size > self.limit:
            raise PeerProtocolError(f"quorum packet of type {kind} claims {size} bytes of data")
        data_at = start + _HEAD.size
        auth_at = data_at + size if size > 0 else data_at
        if len(buf) >= auth_at + 4 and _INT.unpack_from(buf, auth_at)[0] == -1:
            end, authinfo = auth_at + 4, None  # no ids: every packet but a learner's REQUEST
        else:
            end = self._authinfo_end(auth_at)
            if end is None:
                return None
            authinfo = self._authinfo(auth_at)
        self._pos = end
        return QuorumPacket(kind, zxid, None if size == -1 else bytes(buf[data_at:auth_at]), authinfo)

    def _authinfo_end(self, pos: int) -> int | None:
        """Where the authinfo vector starting at `pos` ends, or None if not all here yet."""
        buf = self._buf
        if len(buf) < pos + 4:
            return None
        (count,) = _INT.unpack_from(buf, pos)
        pos += 4
        if count < -1 or count > 1024:
            raise PeerProtocolError(f"quorum packet authinfo claims {count} ids")
        for _ in range(max(count, 0) * 2):
            if len(buf) < pos + 4:
                return None
            (n,) = _INT.unpack_from(buf, pos)
            if n < -1 or n > DEFAULT_MAX_BUFFER:
                raise PeerProtocolError(f"quorum packet authinfo string of {n} bytes")
            pos += 4 + max(n, 0)
            if len(buf) < pos:
                return None
        return pos

    def _authinfo(self, pos: int) -> tuple[tuple[str, str], ...] | None:
        buf = self._buf
        (count,) = _INT.unpack_from(buf, pos)
        if count == -1:
            return None
        pos += 4
        ids: list[tuple[str, str]] = []
        for _ in range(count):
            pair = []
            for _ in range(2):
                (n,) = _INT.unpack_from(buf, pos)
                pos += 4
                raw = bytes(buf[pos:pos + max(n, 0)])
                pos += max(n, 0)
                try:
                    pair.append(raw.decode())
                except UnicodeDecodeError:
                    raise PeerProtocolError("quorum packet authinfo is not UTF-8") from None
            ids.append((pair[0], pair[1]))
        return tuple(ids)


# ---------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True)
class LearnerInfo:
    sid: int
    protocol_version: int = PROTOCOL_VERSION
    config_version: int = 0


def encode_learner_info(info: LearnerInfo) -> bytes:
    return _LEARNER_INFO.pack(info.sid, info.protocol_version, info.config_version)


def decode_learner_info(data: bytes | None, fallback_sid: int) -> LearnerInfo:
    """As LearnerHandler reads it: by length (null data: the sid the leader makes up)."""
    if data is None or len(data) < 8:
        return LearnerInfo(fallback_sid, 0, 0)
    sid = _LONG.unpack_from(data, 0)[0]
    version = _INT.unpack_from(data, 8)[0] if len(data) >= 12 else 0
    config_version = _LONG.unpack_from(data, 12)[0] if len(data) >= 20 else 0
    return LearnerInfo(sid, version, config_version)


def encode_int(value: int) -> bytes:
    return _INT.pack(value)


def decode_int(data: bytes | None, what: str) -> int:
    if data is None or len(data) < 4:
        raise PeerProtocolError(f"{what} carries no int")
    return _INT.unpack_from(data, 0)[0]


@dataclass(frozen=True, slots=True)
class ForwardedRequest:
    """A client request a learner hands to the leader (REQUEST data)."""

    session_id: int
    cxid: int
    op: int
    body: bytes  # the request record, without its RequestHeader


def encode_request(session_id: int, cxid: int, op: int, body: bytes | memoryview) -> bytes:
    return _REQUEST_HEAD.pack(session_id, cxid, op) + bytes(body)


def decode_request(data: bytes | None) -> ForwardedRequest:
    if data is None or len(data) < _REQUEST_HEAD.size:
        raise PeerProtocolError("REQUEST without session id, cxid and type")
    session_id, cxid, op = _REQUEST_HEAD.unpack_from(data, 0)
    return ForwardedRequest(session_id, cxid, op, data[_REQUEST_HEAD.size:])


def encode_touches(touches: Iterable[tuple[int, int]]) -> bytes:
    return b"".join(_TOUCH.pack(sid, timeout) for sid, timeout in touches)


def decode_touches(data: bytes | None) -> list[tuple[int, int]]:
    """A PING reply's (session id, timeout) pairs; a trailing partial pair is an error."""
    if not data:
        return []
    if len(data) % _TOUCH.size:
        raise PeerProtocolError(f"PING data of {len(data)} bytes is not whole (session, timeout) pairs")
    return [_TOUCH.unpack_from(data, i) for i in range(0, len(data), _TOUCH.size)]


def encode_revalidate(session_id: int, timeout: int) -> bytes:
    return _TOUCH.pack(session_id, timeout)


def decode_revalidate(data: bytes | None) -> tuple[int, int]:
    if data is None or len(data) < _TOUCH.size:
        raise PeerProtocolError("REVALIDATE without session id and timeout")
    return _TOUCH.unpack_from(data, 0)


def encode_revalidate_reply(session_id: int, valid: bool) -> bytes:
    return _REVALIDATE_REPLY.pack(session_id, valid)


def decode_revalidate_reply(data: bytes | None) -> tuple[int, bool]:
    if data is None or len(data) < _REVALIDATE_REPLY.size:
        raise PeerProtocolError("REVALIDATE reply without session id and validity")
    sid, valid = _REVALIDATE_REPLY.unpack_from(data, 0)
    return sid, bool(valid)


def encode_long(value: int) -> bytes:
    return _LONG.pack(value)
