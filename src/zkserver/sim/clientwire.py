"""The client's side of the client protocol: requests encoded, replies decoded (zookeeper.jute).

The server's codec reads requests and writes replies; a client does the opposite, so these are
the other halves, written from the jute definitions. Every request frame is a 4-byte length,
RequestHeader{xid, type} and the body; every reply is ReplyHeader{xid, zxid, err} and a body
(none when err != 0). The handshake frames (ConnectRequest/ConnectResponse) have no header.
"""

from __future__ import annotations

from typing import Any

from ..jute.codec import JuteError, Reader, Writer
from ..jute.codes import Err, Op
from ..jute.records import MULTI_HEADER, REQUEST_HEADER, STAT
from .history import Stat

OPEN_ACL = ((31, "world", "anyone"),)
CREATE_OPS = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL})
STAT_CREATES = frozenset({Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL})


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def connect_request(last_zxid: int, timeout: int, session_id: int, passwd: bytes) -> bytes:
    """ConnectRequest{protocolVersion 0, lastZxidSeen, timeOut, sessionId, passwd, readOnly false}."""
    return frame(Writer().int(0).long(last_zxid).int(timeout).long(session_id).buffer(passwd).bool(False).getvalue())


def request(xid: int, op: int, body: bytes = b"") -> bytes:
    return frame(REQUEST_HEADER.pack(xid, op) + body)


# ---------------------------------------------------------------- request bodies


def create_body(path: str, data: bytes, flags: int, ttl: int | None = None) -> bytes:
    w = Writer().ustring(path).buffer(data).int(len(OPEN_ACL))
    for perms, scheme, ident in OPEN_ACL:
        w.int(perms).ustring(scheme).ustring(ident)
    w.int(flags)
    if ttl is not None:
        w.long(ttl)
    return w.getvalue()


def path_int_body(path: str, value: int) -> bytes:
    """DeleteRequest, CheckVersionRequest, AddWatchRequest: a path and an int."""
    return Writer().ustring(path).int(value).getvalue()


def set_data_body(path: str, data: bytes, version: int) -> bytes:
    return Writer().ustring(path).buffer(data).int(version).getvalue()


def path_watch_body(path: str, watch: bool) -> bytes:
    return Writer().ustring(path).bool(watch).getvalue()


def path_body(path: str) -> bytes:
    return Writer().ustring(path).getvalue()


def multi_body(ops: list[tuple[int, bytes]]) -> bytes:
    """MultiOperationRecord: MultiHeader{type, done=false, err=-1} and the body of each op, then
    the terminating header."""
    parts = [MULTI_HEADER.pack(op, False, -1) + body for op, body in ops]
    parts.append(MULTI_HEADER.pack(-1, True, -1))
    return b"".join(parts)


def set_watches_body(relative_zxid: int, lists: list[list[str]]) -> bytes:
    """SetWatches (three lists: data, exist, child) or SetWatches2 (and persistent, recursive)."""
    w = Writer().long(relative_zxid)
    for paths in lists:
        w.ustring_vector(paths)
    return w.getvalue()


# ---------------------------------------------------------------- replies


def connect_response(payload: bytes) -> tuple[int, int, bytes]:
    """(negotiated timeout, session id, password); a timeout <= 0 means the session is gone."""
    r = Reader(payload)
    r.int()  # protocolVersion
    timeout, session_id = r.int(), r.long()
    return timeout, session_id, r.buffer() or b""


def reply_header(payload: bytes) -> tuple[int, int, int, Reader]:
    r = Reader(payload, max_len=len(payload))
    return r.int(), r.long(), r.int(), r


def read_stat(r: Reader) -> Stat:
    return Stat(*r.unpack(STAT))


def _children(r: Reader) -> list[str]:
    names = r.ustring_vector()
    if names is None:
        raise JuteError("null child list")
    return sorted(names)


def decode_result(kind: str, op: int, args: dict[str, Any], r: Reader) -> Any:
    """The body of an OK reply to a request of `kind` sent as opcode `op` (History's result forms)."""
    if kind == "get":
        data = r.buffer()
        return data, read_stat(r)
    if kind in ("exists", "set"):
        return read_stat(r)
    if kind == "children":
        names = _children(r)
        return (names, read_stat(r)) if args.get("stat") else names
    if kind == "create":
        path = r.path()
        return path, (read_stat(r) if op in STAT_CREATES else None)
    if kind == "sync":
        return r.path()
    if kind == "multi":
        return read_multi_results(r)
    return None  # delete, close, add_watch: nothing the history needs


def read_multi_results(r: Reader) -> list[tuple[int, int, Any]]:
    out: list[tuple[int, int, Any]] = []
    while True:
        op, done, err = r.unpack(MULTI_HEADER)
        if done:
            return out
        payload: Any = None
        if op == Op.ERROR:
            err = r.int()
        elif op == Op.CREATE:
            payload = (r.path(), None)
        elif op in STAT_CREATES:
            payload = (r.path(), read_stat(r))
        elif op == Op.SET_DATA:
            payload = read_stat(r)
        elif op not in (Op.DELETE, Op.CHECK):
            raise JuteError(f"unexpected result type {op} in a multi reply")
        out.append((op, err, payload))


def multi_error(results: list[tuple[int, int, Any]]) -> int:
    """A failed multi's error: the code of the op that failed (the others say OK before it and
    RuntimeInconsistency after it); 0 when every op succeeded."""
    for _, err, _ in results:
        if err not in (0, Err.RUNTIME_INCONSISTENCY):
            return err
    return 0


def watcher_event(r: Reader) -> tuple[int, int, str]:
    """WatcherEvent{type, state, path}."""
    return r.int(), r.int(), r.path()
