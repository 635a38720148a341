"""Records of zookeeper.jute that the server reads or writes.

Field order is the wire order of Apache ZooKeeper's jute definitions. ACLs travel as
`(perms, scheme, id)` tuples: immutable, hashable (the ACL cache keys on them) and cheap.
Requests decode to plain tuples or small slotted classes; the hot-path encoders build bytes
directly with precompiled structs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .codec import NULL_LENGTH, JuteError, Reader, Writer, encode_buffer, encode_ustring, pack_int
from .codes import Op

ACL = tuple[int, str, str]
ACLList = tuple[ACL, ...]

# Stat: czxid mzxid ctime mtime version cversion aversion ephemeralOwner dataLength numChildren pzxid
STAT = struct.Struct(">qqqqiiiqiiq")
# StatPersisted: the same without dataLength and numChildren (snapshots).
STAT_PERSISTED = struct.Struct(">qqqqiiiqq")
_REPLY_FRAME = struct.Struct(">iiqi")  # length prefix + ReplyHeader
REQUEST_HEADER = struct.Struct(">ii")
TXN_HEADER = struct.Struct(">qiqqi")
MULTI_HEADER = struct.Struct(">i?i")
_INT_LONG = struct.Struct(">iq")
_BOOL_INT = struct.Struct(">?i")
_INT_INT = struct.Struct(">ii")


# world:anyone with every permission, the ACL of nearly every create: recognised and written
# as one block of bytes instead of field by field.
_OPEN_ACL_ENTRY: ACL = (31, "world", "anyone")
_OPEN_ACL_WIRE = Writer().int(1).int(31).ustring("world").ustring("anyone").getvalue()


def read_acl_list(r: Reader) -> list[ACL] | None:
    if r.skip_if(_OPEN_ACL_WIRE):
        return [_OPEN_ACL_ENTRY]
    n = r.vector_count()
    if n == -1:
        return None
    acls = []
    for _ in range(n):
        perms = r.int()
        scheme = r.ustring()
        ident = r.ustring()
        acls.append((perms, scheme, ident))
    return acls


def encode_acl_list(acls: ACLList | list[ACL] | None) -> bytes:
    """A jute vector<ACL>, the whole of it (txn-log entries, snapshots, getACL replies)."""
    if acls is None:
        return NULL_LENGTH
    if len(acls) == 1 and acls[0] == _OPEN_ACL_ENTRY:
        return _OPEN_ACL_WIRE
    return b"".join([pack_int(len(acls)),
                     *(pack_int(perms) + encode_ustring(scheme) + encode_ustring(ident)
                       for perms, scheme, ident in acls)])


def write_acl_list(w: Writer, acls: ACLList | list[ACL] | None) -> None:
    w.raw(encode_acl_list(acls))


# ---------------------------------------------------------------- requests

@dataclass(slots=True)
class ConnectRequest:
    protocol_version: int
    last_zxid_seen: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: bool
    has_read_only_byte: bool

    @classmethod
    def read(cls, buf: bytes | memoryview) -> ConnectRequest:
        r = Reader(buf)
        pv, last, to, sid = r.int(), r.long(), r.int(), r.long()
        passwd = r.buffer() or b""
        has_ro = r.remaining >= 1
        ro = r.bool() if has_ro else False
        return cls(pv, last, to, sid, passwd, ro, has_ro)


def encode_connect_response(timeout: int, session_id: int, passwd: bytes, read_only: bool | None) -> bytes:
    w = Writer().int(0).int(timeout).long(session_id).buffer(passwd)
    if read_only is not None:
        w.bool(read_only)
    return w.getvalue()


@dataclass(slots=True)
class CreateRequest:
    path: str
    data: bytes | None
    acl: list[ACL] | None
    flags: int
    ttl: int = -1

    @classmethod
    def read(cls, r: Reader, with_ttl: bool = False) -> CreateRequest:
        path = r.path()
        data = r.buffer()
        acl = read_acl_list(r)
        flags = r.int()
        ttl = r.long() if with_ttl else -1
        return cls(path, data, acl, flags, ttl)


def read_path_watch(r: Reader) -> tuple[str, bool]:
    return r.path(), r.bool()


def read_path_version(r: Reader) -> tuple[str, int]:
    return r.path(), r.int()


def read_set_data(r: Reader) -> tuple[str, bytes | None, int]:
    return r.path(), r.buffer(), r.int()


def read_set_acl(r: Reader) -> tuple[str, list[ACL] | None, int]:
    return r.path(), read_acl_list(r), r.int()


def read_path_int(r: Reader) -> tuple[str, int]:
    return r.path(), r.int()


@dataclass(slots=True)
class SetWatches:
    relative_zxid: int
    data: list[str]
    exist: list[str]
    child: list[str]
    persistent: list[str]
    recursive: list[str]

    @classmethod
    def read(cls, r: Reader, v2: bool) -> SetWatches:
        rel = r.long()
        lists = [r.ustring_vector() or [] for _ in range(5 if v2 else 3)]
        if not v2:
            lists += [[], []]
        return cls(rel, *lists)


@dataclass(slots=True)
class ReconfigRequest:
    joining: str | None
    leaving: str | None
    new_members: str | None
    cur_config_id: int

    @classmethod
    def read(cls, r: Reader) -> ReconfigRequest:
        return cls(r.ustring(), r.ustring(), r.ustring(), r.long())


@dataclass(slots=True)
class MultiOp:
    """One operation of a multi/multiRead request: its opcode and its decoded record."""

    op: int
    record: object
    path: str


def _read_create_ttl(r: Reader) -> CreateRequest:
    return CreateRequest.read(r, with_ttl=True)


# How the body of each single write, and of each op a multi or multiRead carries, decodes.
REQUEST_DECODERS: dict[int, Callable[[Reader], Any]] = {
    Op.SET_DATA: read_set_data,
    Op.CREATE: CreateRequest.read,
    Op.CREATE2: CreateRequest.read,
    Op.CREATE_CONTAINER: CreateRequest.read,
    Op.CREATE_TTL: _read_create_ttl,
    Op.DELETE: read_path_version,
    Op.CHECK: read_path_version,
    Op.SET_ACL: read_set_acl,
    Op.GET_DATA: read_path_watch,
    Op.GET_CHILDREN: read_path_watch,
}
_MULTI_OPS = frozenset(REQUEST_DECODERS) - {Op.SET_ACL}  # Apache's multi has no setACL


def read_multi(r: Reader) -> list[MultiOp]:
    """MultiOperationRecord: MultiHeader{type, done, err} before each op, done=true ends it
    (err is always -1 from clients)."""
    ops: list[MultiOp] = []
    while True:
        op, done, _ = r.unpack(MULTI_HEADER)
        if done:
            return ops
        if op not in _MULTI_OPS:
            raise JuteError(f"invalid op type {op} in multi")
        rec = REQUEST_DECODERS[op](r)
        ops.append(MultiOp(op, rec, rec.path if rec.__class__ is CreateRequest else rec[0]))


# ---------------------------------------------------------------- replies

def encode_reply(xid: int, zxid: int, err: int, body: bytes | bytearray = b"") -> bytes:
    """A complete length-prefixed reply frame."""
    return _REPLY_FRAME.pack(16 + len(body), xid, zxid, err) + body


def encode_watcher_event(event_type: int, state: int, path: str) -> bytes:
    return Writer().int(event_type).int(state).ustring(path).getvalue()


# ---------------------------------------------------------------- transactions

@dataclass(slots=True)
class TxnHeader:
    client_id: int
    cxid: int
    zxid: int
    time: int
    type: int

    def encode(self) -> bytes:
        return TXN_HEADER.pack(self.client_id, self.cxid, self.zxid, self.time, self.type)

    @classmethod
    def read(cls, r: Reader) -> TxnHeader:
        return cls(r.long(), r.int(), r.long(), r.long(), r.int())


class _TxnRecord:
    """A txn record gives its bytes as parts (`parts()`): the log joins them into its entry
    together with the header's, without joining the record on its own first."""

    __slots__ = ()

    def parts(self) -> tuple[bytes, ...] | list[bytes]:
        raise NotImplementedError

    def encode(self) -> bytes:
        return b"".join(self.parts())


@dataclass(slots=True)
class CreateTxn(_TxnRecord):
    """CreateTxn, CreateTTLTxn and CreateContainerTxn share a shape; `kind` (the txn type)
    picks the wire layout."""

    kind: int
    path: str
    data: bytes | None
    acl: ACLList
    ephemeral: bool
    parent_cversion: int
    ttl: int = -1

    def parts(self) -> tuple[bytes, ...]:
        if self.kind == Op.CREATE_TTL:
            tail = _INT_LONG.pack(self.parent_cversion, self.ttl)
        elif self.kind == Op.CREATE_CONTAINER:
            tail = pack_int(self.parent_cversion)
        else:
            tail = _BOOL_INT.pack(self.ephemeral, self.parent_cversion)
        return encode_ustring(self.path), encode_buffer(self.data), encode_acl_list(self.acl), tail

    @classmethod
    def read(cls, r: Reader, kind: int) -> CreateTxn:
        path, data, acl = r.path(), r.buffer(), tuple(read_acl_list(r) or ())
        if kind == Op.CREATE_TTL:
            return cls(kind, path, data, acl, False, r.int(), r.long())
        if kind == Op.CREATE_CONTAINER:
            return cls(kind, path, data, acl, False, r.int())
        return cls(kind, path, data, acl, r.bool(), r.int())


@dataclass(slots=True)
class DeleteTxn(_TxnRecord):
    path: str
    kind: int = Op.DELETE

    def parts(self) -> tuple[bytes, ...]:
        return (encode_ustring(self.path),)


@dataclass(slots=True)
class SetDataTxn(_TxnRecord):
    path: str
    data: bytes | None
    version: int

    def parts(self) -> tuple[bytes, ...]:
        return encode_ustring(self.path), encode_buffer(self.data), pack_int(self.version)


@dataclass(slots=True)
class SetACLTxn(_TxnRecord):
    path: str
    acl: ACLList
    version: int

    def parts(self) -> tuple[bytes, ...]:
        return encode_ustring(self.path), encode_acl_list(self.acl), pack_int(self.version)


@dataclass(slots=True)
class CheckVersionTxn(_TxnRecord):
    path: str
    version: int

    def parts(self) -> tuple[bytes, ...]:
        return encode_ustring(self.path), pack_int(self.version)


@dataclass(slots=True)
class CreateSessionTxn(_TxnRecord):
    timeout: int

    def parts(self) -> tuple[bytes, ...]:
        return (pack_int(self.timeout),)


@dataclass(slots=True)
class CloseSessionTxn(_TxnRecord):
    paths_to_delete: list[str]

    def parts(self) -> tuple[bytes, ...]:
        return pack_int(len(self.paths_to_delete)), *map(encode_ustring, self.paths_to_delete)


@dataclass(slots=True)
class ErrorTxn(_TxnRecord):
    err: int

    def parts(self) -> tuple[bytes, ...]:
        return (pack_int(self.err),)


@dataclass(slots=True)
class MultiTxn(_TxnRecord):
    """Sub-transactions as (type, record) pairs; on the wire each is Txn{type, buffer}."""

    txns: list[tuple[int, object]]

    def parts(self) -> list[bytes]:
        out = [pack_int(len(self.txns))]
        for kind, rec in self.txns:
            sub = rec.encode()  # type: ignore[attr-defined]
            out += (_INT_INT.pack(kind, len(sub)), sub)
        return out


def read_txn_record(kind: int, r: Reader) -> object | None:
    """Decode the record that follows a TxnHeader of type `kind` (log replay, multi sub-txns)."""
    if kind in (Op.CREATE, Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER):
        return CreateTxn.read(r, kind)
    if kind in (Op.DELETE, Op.DELETE_CONTAINER):
        return DeleteTxn(r.path(), kind)
    if kind in (Op.SET_DATA, Op.RECONFIG):
        return SetDataTxn(r.path(), r.buffer(), r.int())
    if kind == Op.SET_ACL:
        path, acl, version = read_set_acl(r)
        return SetACLTxn(path, tuple(acl or ()), version)
    if kind == Op.CHECK:
        return CheckVersionTxn(*read_path_version(r))
    if kind == Op.CREATE_SESSION:
        return CreateSessionTxn(r.int())
    if kind == Op.CLOSE_SESSION:
        # Pre-3.6 logs carry an empty body here.
        return CloseSessionTxn(r.ustring_vector() or []) if r.remaining else None
    if kind == Op.ERROR:
        return ErrorTxn(r.int())
    if kind == Op.MULTI:
        n = r.vector_count()
        subs: list[tuple[int, object]] = []
        for _ in range(max(n, 0)):
            sub_kind = r.int()
            body = r.buffer() or b""
            subs.append((sub_kind, read_txn_record(sub_kind, Reader(body))))
        return MultiTxn(subs)
    raise JuteError(f"unknown txn type {kind}")
