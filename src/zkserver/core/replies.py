"""What a write's reply carries: the new path, its Stat, or every result of a multi."""

from __future__ import annotations

import struct

from ..jute.codec import encode_ustring
from ..jute.codes import Op
from ..jute.records import MULTI_HEADER
from ..tree.datatree import TxnResult

# Multi results: each one's MultiHeader{type, done, err}, then its body; an error result's body
# is its code again.
_MULTI_ERROR = struct.Struct(">i?ii")
_MULTI_CREATE = MULTI_HEADER.pack(Op.CREATE, False, 0)
_MULTI_CREATE2 = MULTI_HEADER.pack(Op.CREATE2, False, 0)
_MULTI_SET_DATA = MULTI_HEADER.pack(Op.SET_DATA, False, 0)
_MULTI_DELETE = MULTI_HEADER.pack(Op.DELETE, False, 0)
_MULTI_DONE = MULTI_HEADER.pack(-1, True, -1)
_STAT_CREATES = frozenset({Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER})


def write_reply_body(op: int, rc: TxnResult) -> bytes:
    """The body of a successful write's reply."""
    if op == Op.SET_DATA or op == Op.SET_ACL or op == Op.CHECK:
        return rc.stat or b""
    if op == Op.CREATE:
        return encode_ustring(rc.path)  # type: ignore[arg-type]
    if op in _STAT_CREATES:
        return encode_ustring(rc.path) + rc.stat  # type: ignore[operator]
    if op == Op.MULTI:
        return _multi_reply(rc)
    return b""

def _multi_reply(rc: TxnResult) -> bytes:
    parts: list[bytes] = []
    for sub in rc.multi or ():
        kind = sub.type
        if kind == Op.ERROR:
            parts.append(_MULTI_ERROR.pack(Op.ERROR, False, sub.err, sub.err))
        elif kind == Op.SET_DATA:
            parts += (_MULTI_SET_DATA, sub.stat)  # type: ignore[arg-type]
        elif kind == Op.CREATE:
            parts += (_MULTI_CREATE, encode_ustring(sub.path))  # type: ignore[arg-type]
        elif kind in _STAT_CREATES:
            # A result with a Stat is a create2 result on the wire, whatever the request's opcode.
            parts += (_MULTI_CREATE2, encode_ustring(sub.path), sub.stat)  # type: ignore[arg-type]
        elif kind == Op.DELETE or kind == Op.DELETE_CONTAINER:
            parts.append(_MULTI_DELETE)
        else:
            parts.append(MULTI_HEADER.pack(kind, False, 0))
    parts.append(_MULTI_DONE)
    return b"".join(parts)
