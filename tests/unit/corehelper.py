"""Drive a ServerCore in-process, speaking the client protocol through kazoo's own codec.

Requests are encoded with `kazoo.protocol.serialization` (a real client's serializers, not
ours); the few requests kazoo 2.11 has no class for (addWatch, setWatches2, checkWatches,
removeWatches, getEphemerals, getAllChildrenNumber, whoAmI, multiRead, createTTL,
createContainer) are built here from kazoo's own primitives, in its style, following
zookeeper.jute. Replies are decoded with kazoo's deserializers where it has them.

`CoreDriver` plays the shell: it takes the core's effects, hands appended txns back through
`persisted()` (at once with `auto_persist`, or when a test calls `persist()`), routes frames to
`Client`s and turns close effects into `connection_lost`, as the asyncio shell does.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field

from kazoo.protocol.serialization import (
    Connect,
    Create,
    Create2,
    MultiHeader,
    ReplyHeader,
    Watch,
    int_int_struct,
    int_struct,
    long_struct,
    multiheader_struct,
    read_buffer,
    read_string,
    stat_struct,
    write_string,
)
from kazoo.protocol.states import ZnodeStat

from zkserver.core import CoreSettings, ServerCore
from zkserver.jute.records import TxnHeader

XID_NOTIFICATION = -1
XID_PING = -2
XID_AUTH = -4
XID_SET_WATCHES = -8


class FakeClock:
    """Wall and monotonic milliseconds, set by the test."""

    def __init__(self, wall_ms: int = 1_700_000_000_000, mono_ms: int = 5_000_000):
        self.wall = wall_ms
        self.mono = mono_ms

    def wall_ms(self) -> int:
        return self.wall

    def mono_ms(self) -> int:
        return self.mono

    def advance(self, ms: int) -> None:
        self.wall += ms
        self.mono += ms


# ---------------------------------------------------------------- requests kazoo lacks


def _path_int(path: str, value: int) -> bytes:
    return write_string(path) + int_struct.pack(value)


class CreateContainer(Create):
    type = 19


class DeleteContainer(namedtuple("DeleteContainer", "path")):
    """DeleteContainerRequest: just the path."""

    type = 20

    def serialize(self):
        return write_string(self.path)


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    """CreateTTLRequest: CreateRequest's fields, then the TTL as a long."""

    type = 21

    def serialize(self):
        return Create2(self.path, self.data, self.acl, self.flags).serialize() + long_struct.pack(self.ttl)


class AddWatch(namedtuple("AddWatch", "path mode")):
    type = 106

    def serialize(self):
        return _path_int(self.path, self.mode)


class CheckWatches(namedtuple("CheckWatches", "path watcher_type")):
    type = 17

    def serialize(self):
        return _path_int(self.path, self.watcher_type)


class RemoveWatches(namedtuple("RemoveWatches", "path watcher_type")):
    type = 18

    def serialize(self):
        return _path_int(self.path, self.watcher_type)


def _string_vector(items) -> bytes:
    out = int_struct.pack(len(items))
    for s in items:
        out += write_string(s)
    return out


class SetWatches(namedtuple("SetWatches", "relative_zxid data exist child")):
    type = 101

    def serialize(self):
        return (long_struct.pack(self.relative_zxid) + _string_vector(self.data)
                + _string_vector(self.exist) + _string_vector(self.child))


class SetWatches2(namedtuple("SetWatches2", "relative_zxid data exist child persistent recursive")):
    type = 105

    def serialize(self):
        return (long_struct.pack(self.relative_zxid) + _string_vector(self.data) + _string_vector(self.exist)
                + _string_vector(self.child) + _string_vector(self.persistent) + _string_vector(self.recursive))


class GetEphemerals(namedtuple("GetEphemerals", "prefix")):
    type = 103

    def serialize(self):
        return write_string(self.prefix)


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = 104

    def serialize(self):
        return write_string(self.path)


class WhoAmI(namedtuple("WhoAmI", "")):
    type = 107

    def serialize(self):
        return b""


class MultiRead(namedtuple("MultiRead", "operations")):
    """MultiOperationRecord under the multiRead opcode; ops are kazoo GetData/GetChildren."""

    type = 22

    def serialize(self):
        b = bytearray()
        for op in self.operations:
            b.extend(MultiHeader(op.type, False, -1).serialize() + op.serialize())
        return b + multiheader_struct.pack(-1, True, -1)


class Raw(namedtuple("Raw", "type body")):
    """Any opcode with a hand-made body."""

    def serialize(self):
        return self.body


# ---------------------------------------------------------------- replies


@dataclass
class Frame:
    """One frame the core sent: a ConnectResponse, a notification or a reply."""

    kind: str  # "connect" | "event" | "reply"
    xid: int = 0
    zxid: int = 0
    err: int = 0
    body: bytes = b""
    connect: Connect | None = None
    event: Watch | None = None


def decode_frame(frame: bytes, expect_connect: bool) -> Frame:
    n = int_struct.unpack_from(frame, 0)[0]
    assert n == len(frame) - 4, f"length prefix {n} != payload {len(frame) - 4}"
    payload = frame[4:]
    if expect_connect:
        resp, _ = Connect.deserialize(payload, 0)
        return Frame("connect", connect=resp)
    hdr, offset = ReplyHeader.deserialize(payload, 0)
    if hdr.xid == XID_NOTIFICATION:
        ev, _ = Watch.deserialize(payload, offset)
        return Frame("event", hdr.xid, hdr.zxid, hdr.err, payload[offset:], event=ev)
    return Frame("reply", hdr.xid, hdr.zxid, hdr.err, payload[offset:])


def read_stat(buf: bytes, offset: int = 0) -> ZnodeStat:
    return ZnodeStat._make(stat_struct.unpack_from(buf, offset))


def decode_multi(body: bytes) -> list[tuple[int, int, object]]:
    """A MultiResponse as (type, err, payload) per op; payload: path, (path, stat), stat or None.
    Kazoo's Transaction.deserialize turns codes into exception objects and drops create2 stats,
    so this keeps the raw codes."""
    out: list[tuple[int, int, object]] = []
    hdr, offset = MultiHeader.deserialize(body, 0)
    while not hdr.done:
        payload: object = None
        if hdr.type == 1:
            payload, offset = read_string(body, offset)
        elif hdr.type in (15, 19, 21):
            path, offset = read_string(body, offset)
            payload = (path, read_stat(body, offset))
            offset += stat_struct.size
        elif hdr.type == 5:
            payload = read_stat(body, offset)
            offset += stat_struct.size
        elif hdr.type == 4:
            data, offset = read_buffer(body, offset)
            payload = (data, read_stat(body, offset))
            offset += stat_struct.size
        elif hdr.type == 8:
            count = int_struct.unpack_from(body, offset)[0]
            offset += 4
            children = []
            for _ in range(count):
                child, offset = read_string(body, offset)
                children.append(child)
            payload = children
        elif hdr.type == -1:
            payload = int_struct.unpack_from(body, offset)[0]
            offset += 4
        out.append((hdr.type, hdr.err, payload))
        hdr, offset = MultiHeader.deserialize(body, offset)
    assert offset == len(body), "trailing bytes after the MultiResponse"
    return out


# ---------------------------------------------------------------- the driver


@dataclass
class Client:
    driver: CoreDriver
    cid: int
    ip: str
    frames: list[Frame] = field(default_factory=list)
    session_id: int = 0
    passwd: bytes = b""
    timeout: int = 0
    next_xid: int = 1
    got_connect: bool = False

    @property
    def closed(self) -> bool:
        return self.cid in self.driver.closed

    def send_raw(self, payload: bytes) -> None:
        """One frame: the payload after the length prefix."""
        self.driver.core.frame_received(self.cid, payload)
        self.driver.pump()

    def send(self, request, xid: int | None = None) -> int:
        if xid is None:
            xid = self.next_xid
            self.next_xid += 1
        payload = int_int_struct.pack(xid, request.type) + bytes(request.serialize())
        self.send_raw(payload)
        return xid

    def take(self) -> list[Frame]:
        out, self.frames = self.frames, []
        return out

    def replies(self) -> list[Frame]:
        return [f for f in self.take() if f.kind == "reply"]

    def events(self) -> list[tuple[int, str]]:
        """(type, path) of every notification received so far (and drops all frames)."""
        return [(f.event.type, f.event.path) for f in self.take() if f.kind == "event"]

    def call(self, request, xid: int | None = None) -> Frame:
        """Send, and return the reply to it; notifications stay queued in `frames`."""
        xid = self.send(request, xid)
        for i, f in enumerate(self.frames):
            if f.kind == "reply" and f.xid == xid:
                del self.frames[i]
                return f
        raise AssertionError(f"no reply to xid {xid}; frames: {self.frames}, closed={self.closed}")

    def ok(self, request, xid: int | None = None) -> bytes:
        f = self.call(request, xid)
        assert f.err == 0, f"{request!r} failed with {f.err}"
        return f.body

    def err(self, request) -> int:
        return self.call(request).err


class CoreDriver:
    def __init__(self, settings: CoreSettings | None = None, clock: FakeClock | None = None,
                 secret: bytes = b"k" * 32, auto_persist: bool = True):
        self.clock = clock or FakeClock()
        self.settings = settings or CoreSettings()
        self.core = ServerCore(self.settings, self.clock, secret)
        self.auto_persist = auto_persist
        self.appended: list[tuple[TxnHeader, object]] = []
        self.unpersisted: list[tuple[TxnHeader, object]] = []
        self.clients: dict[int, Client] = {}
        self.closed: set[int] = set()
        self.refused: set[int] = set()
        self._next_cid = 1

    # --------------------------------------------------------- effects

    def pump(self) -> None:
        while True:
            fx = self.core.take_effects()
            if not (fx.out or fx.close or fx.appends):
                return
            self.appended.extend(fx.appends)
            self.unpersisted.extend(fx.appends)
            for cid, frames in fx.out.items():
                client = self.clients[cid]
                for raw in frames:
                    client.frames.append(decode_frame(raw, expect_connect=not client.got_connect))
                    if not client.got_connect:
                        client.got_connect = True
                        self._note_connect(client, client.frames[-1])
            for cid in fx.close:
                if cid not in self.closed:
                    self.closed.add(cid)
                    self.core.connection_lost(cid)
            if self.auto_persist and self.unpersisted:
                self.persist()

    def persist(self, upto: int | None = None) -> None:
        """Tell the core the log is durable up to `upto` (default: all appended so far)."""
        if not self.unpersisted:
            return
        zxid = self.unpersisted[-1][0].zxid if upto is None else upto
        self.unpersisted = [a for a in self.unpersisted if a[0].zxid > zxid]
        self.core.persisted(zxid)
        self.pump()

    @staticmethod
    def _note_connect(client: Client, frame: Frame) -> None:
        resp = frame.connect
        assert resp is not None
        client.timeout = resp.time_out
        if resp.session_id:
            client.session_id = resp.session_id
            client.passwd = resp.passwd

    def txn_types(self) -> list[int]:
        return [hdr.type for hdr, _ in self.appended]

    # --------------------------------------------------------- connections

    def open(self, ip: str = "127.0.0.1") -> Client | None:
        """A new TCP connection; None when the core refuses it (maxClientCnxns)."""
        cid = self._next_cid
        self._next_cid += 1
        if not self.core.connection_made(cid, ip):
            self.refused.add(cid)
            return None
        client = Client(self, cid, ip)
        self.clients[cid] = client
        return client

    def connect(self, timeout: int = 10000, session_id: int = 0, passwd: bytes = b"\0" * 16,
                last_zxid: int = 0, ip: str = "127.0.0.1", read_only: bool = False) -> Client:
        client = self.open(ip)
        assert client is not None, "connection refused"
        client.send_raw(bytes(Connect(0, last_zxid, timeout, session_id, passwd, read_only).serialize()))
        return client

    def session(self, timeout: int = 10000, ip: str = "127.0.0.1") -> Client:
        """A connected client with a live session (needs the create-session txn persisted)."""
        client = self.connect(timeout=timeout, ip=ip)
        if not self.auto_persist:
            self.persist()
        frames = client.take()
        assert frames and frames[0].kind == "connect" and client.session_id != 0, frames
        return client

    def drop(self, client: Client) -> None:
        """The client's TCP connection goes away."""
        self.closed.add(client.cid)
        self.core.connection_lost(client.cid)
        self.pump()
