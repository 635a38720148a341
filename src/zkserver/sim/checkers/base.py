"""What every checker takes and gives: the members' final state, and violations.

A member's committed history is a list of (zxid, txn bytes), the bytes being a txn-log entry's
body (TxnHeader, then the record, optionally followed by the TxnDigest Apache appends). The
checkers decode them with the jute codec only; what a txn *does* is worked out by their own
model (model.py), never by the server's DataTree or Preparer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ...jute.codec import Reader
from ...jute.records import TxnHeader, read_txn_record
from ...storage.txnlog import TXN_DIGEST
from ..history import Operation, Stat


class NodeView(NamedTuple):
    """A znode as a client would read it: its data and its Stat."""

    data: bytes | None
    stat: Stat


@dataclass
class MemberState:
    member: int
    txns: list[tuple[int, bytes]]  # committed txns in zxid order
    complete_from: int = 0  # every committed txn with a zxid above this is in `txns` (a snapshot may cover the rest)
    tree: dict[str, NodeView] | None = None  # the final tree, as observe.tree_view reads it
    digest: int | None = None  # the final tree digest
    sessions: set[int] | None = None  # the sessions it holds live at the end
    live: bool = True  # up and in the quiet ensemble at the end: must hold everything committed

    @property
    def last_zxid(self) -> int:
        return self.txns[-1][0] if self.txns else self.complete_from


def op_specs(o: Operation) -> list[dict[str, Any]]:
    """What an operation does, op by op: a multi's ops, else the operation itself, each a dict
    of its args with its kind and path."""
    if o.kind == "multi":
        return o.args["ops"]
    return [{"kind": o.kind, "path": o.path, **o.args}]


@dataclass(frozen=True)
class Violation:
    check: str  # linearizable, session-order, reads, durability, replicas, ephemerals, sequential, watches, client
    message: str
    ops: tuple[int, ...] = ()  # op ids of the History involved
    member: int | None = None
    inconclusive: bool = False  # the check ran out of budget: no verdict (CI counts it as a failure)

    def __str__(self) -> str:
        where = f" [member {self.member}]" if self.member is not None else ""
        ops = f" (ops {', '.join(map(str, self.ops))})" if self.ops else ""
        return f"{self.check}{where}: {self.message}{ops}"


@dataclass(slots=True)
class Txn:
    zxid: int
    hdr: TxnHeader
    record: object
    body: bytes  # header + record, without the digest: what replicas must agree on byte for byte
    digest: int | None = None


@functools.lru_cache(maxsize=1 << 16)  # several checkers decode the same txns; a sweep runs many worlds
def decode_txn(zxid: int, data: bytes) -> Txn:
    r = Reader(data, max_len=len(data))
    hdr = TxnHeader.read(r)
    record = read_txn_record(hdr.type, r)
    end = r.pos
    digest = None
    if r.remaining >= TXN_DIGEST.size:
        r.int()  # the digest's version
        digest = r.long()
    return Txn(zxid, hdr, record, bytes(data[:end]), digest)


@dataclass
class Committed:
    """The committed history the checkers judge against: the live members' txns merged by
    zxid. Where members disagree, the txn most of them hold wins (the replica checker reports
    the disagreement itself)."""

    txns: list[Txn] = field(default_factory=list)
    by_zxid: dict[int, Txn] = field(default_factory=dict)
    by_request: dict[tuple[int, int], Txn] = field(default_factory=dict)  # (session, cxid) -> its txn
    complete: bool = False  # holds every txn from the start (some live member has it all)

    @classmethod
    def merge(cls, members: list[MemberState], journal: list[tuple[int, bytes]] | None = None) -> Committed:
        """`journal`: every txn some member applied during the run, from the start (the
        simulator keeps it): it fills the zxids no live member's logs hold any more."""
        votes: dict[int, dict[bytes, int]] = {}
        raw: dict[tuple[int, bytes], bytes] = {}
        live = [m for m in members if m.live] or members
        for m in live:
            for zxid, data in m.txns:
                t = decode_txn(zxid, data)
                per = votes.setdefault(zxid, {})
                per[t.body] = per.get(t.body, 0) + 1
                raw.setdefault((zxid, t.body), data)
        for zxid, data in journal or ():
            if zxid not in votes:
                t = decode_txn(zxid, data)
                votes[zxid] = {t.body: 1}
                raw[(zxid, t.body)] = data
        out = cls(complete=journal is not None or any(m.complete_from == 0 for m in live))
        for zxid in sorted(votes):
            body = max(votes[zxid].items(), key=lambda kv: kv[1])[0]
            t = decode_txn(zxid, raw[(zxid, body)])
            out.txns.append(t)
            out.by_zxid[zxid] = t
            out.by_request[(t.hdr.client_id, t.hdr.cxid)] = t
        return out
