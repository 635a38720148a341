"""No acknowledged write and no committed txn is lost, and no write answered with an error took effect.

Theory of operation. A write's reply carries its own txn's zxid. For every OK write (and OK
close), each live member must hold, at exactly that zxid, a txn of that session with that
write's effect: the created path and data, the new data and version, the deleted path, the
same ops of a multi, the session's close. A member that lacks it, holds something else there,
or stops short of it (a live member is caught up once the world is quiet) has lost it - after
whatever crashes and recoveries the run put it through.

The converse: a write answered with an error may leave an error txn (ZooKeeper logs failed
writes too), found by its session and xid, but never a txn that changed the tree.

And what the world saw committed (its journal: txns a leader or learner applied in its role, and
an established leader's history) must stay so: every live member holds each of those txns, byte
for byte, past the snapshot its history starts from - acknowledged to a client or not (a
closeSession, an expiry, a write whose reply was lost).
"""

from __future__ import annotations

from typing import Any

from ...jute.codes import CreateMode, Op
from ...jute.records import CreateTxn, DeleteTxn, MultiTxn, SetDataTxn
from ..history import History, Operation, Outcome
from .base import Committed, MemberState, Txn, Violation, decode_txn, op_specs

_EPHEMERAL = {CreateMode.EPHEMERAL, CreateMode.EPHEMERAL_SEQUENTIAL}
_CREATE_TYPES = {Op.CREATE, Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER}


def _create_type(spec: dict[str, Any]) -> set[int]:
    if spec.get("ttl") is not None:
        return {Op.CREATE_TTL}
    if spec.get("flags") == CreateMode.CONTAINER:
        return {Op.CREATE_CONTAINER}
    return {Op.CREATE, Op.CREATE2}


def _sub_mismatch(spec: dict[str, Any], kind: int, rec: object, result: Any) -> str | None:
    what = spec["kind"]
    if what == "create":
        if kind not in _create_type(spec) or not isinstance(rec, CreateTxn):
            return f"a create was acknowledged, the txn is of type {kind}"
        path = result[0] if result is not None else spec["path"]
        if rec.path != path or rec.data != spec["data"] or rec.ephemeral != (spec.get("flags") in _EPHEMERAL):
            return f"create of {path} with {spec['data']!r} acknowledged; the txn creates {rec.path} with {rec.data!r}"
        return None
    if what == "set":
        version = result.version if result is not None else None
        if kind != Op.SET_DATA or not isinstance(rec, SetDataTxn):
            return f"a setData was acknowledged, the txn is of type {kind}"
        if rec.path != spec["path"] or rec.data != spec["data"] or (version is not None and rec.version != version):
            return (f"setData of {spec['path']} to {spec['data']!r} (version {version}) acknowledged; the txn sets "
                    f"{rec.path} to {rec.data!r} (version {rec.version})")
        return None
    if what == "delete":
        if kind != Op.DELETE or not isinstance(rec, DeleteTxn) or rec.path != spec["path"]:
            return f"delete of {spec['path']} acknowledged; the txn is {kind} {getattr(rec, 'path', '')}"
        return None
    return None if kind == Op.CHECK else f"a check was acknowledged, the txn is of type {kind}"


def mismatch(o: Operation, t: Txn) -> str | None:
    """Why txn `t` is not the effect of the acknowledged write `o`, or None when it is."""
    if t.hdr.client_id != o.session_id:
        return f"the txn at that zxid is session 0x{t.hdr.client_id:x}'s, not 0x{o.session_id or 0:x}'s"
    if o.kind == "close":
        return None if t.hdr.type == Op.CLOSE_SESSION else f"a close was acknowledged, the txn is of type {t.hdr.type}"
    if o.kind != "multi":
        return _sub_mismatch(op_specs(o)[0], t.hdr.type, t.record, o.result)
    if t.hdr.type != Op.MULTI or not isinstance(t.record, MultiTxn):
        return f"a multi was acknowledged, the txn is of type {t.hdr.type}"
    specs, subs = op_specs(o), t.record.txns
    if len(specs) != len(subs):
        return f"a multi of {len(specs)} ops was acknowledged, the txn has {len(subs)}"
    for spec, (kind, rec), res in zip(specs, subs, o.result, strict=True):
        problem = _sub_mismatch(spec, kind, rec, res[2])
        if problem is not None:
            return problem
    return None


def check_acknowledged(history: History, members: list[MemberState]) -> list[Violation]:
    acked = [o for o in history.ops if o.outcome is Outcome.OK and o.zxid is not None
             and o.kind in ("create", "set", "delete", "multi", "close")]
    violations = []
    for m in members:
        if not m.live:
            continue
        held = dict(m.txns)
        for o in acked:
            if o.zxid <= m.complete_from:  # type: ignore[operator]
                continue  # covered by a snapshot: the tree comparison judges it
            data = held.get(o.zxid)  # type: ignore[arg-type]
            if data is None:
                where = "a gap in its history" if m.last_zxid > o.zxid else f"it stops at 0x{m.last_zxid:x}"  # type: ignore[operator]
                violations.append(Violation("durability", f"op {o.op_id} ({o.kind} {o.path}) was acknowledged at zxid "
                                            f"0x{o.zxid:x} by member {o.member}; this member has no txn there "
                                            f"({where})", (o.op_id,), m.member))
                continue
            problem = mismatch(o, decode_txn(o.zxid, data))  # type: ignore[arg-type]
            if problem is not None:
                violations.append(Violation("durability", f"op {o.op_id} ({o.kind} {o.path}) acknowledged at zxid "
                                            f"0x{o.zxid:x}: {problem}", (o.op_id,), m.member))
    return violations


def _changes_tree(t: Txn) -> bool:
    if isinstance(t.record, MultiTxn):
        return all(kind != Op.ERROR for kind, _ in t.record.txns)
    return t.hdr.type not in (Op.ERROR, Op.CHECK)


def check_refused(history: History, committed: Committed) -> list[Violation]:
    violations = []
    for o in history.ops:
        if o.outcome is not Outcome.ERROR or o.xid is None or o.kind not in ("create", "set", "delete", "multi"):
            continue
        t = committed.by_request.get((o.session_id or 0, o.xid))
        if t is not None and _changes_tree(t):
            violations.append(Violation("durability", f"op {o.op_id} ({o.kind} {o.path}) was answered with error "
                                        f"{o.error}, yet its txn at zxid 0x{t.zxid:x} took effect", (o.op_id,)))
    return violations


def check_committed(members: list[MemberState], journal: list[tuple[int, bytes]]) -> list[Violation]:
    """Every txn of the journal is in every live member's history past its snapshot."""
    violations = []
    for m in members:
        if not m.live:
            continue
        held = dict(m.txns)
        lost = []
        for zxid, data in journal:
            if zxid <= m.complete_from:
                continue
            mine = held.get(zxid)
            t = decode_txn(zxid, data)
            if mine is None or decode_txn(zxid, mine).body != t.body:
                what = "nothing" if mine is None else "another txn"
                lost.append(f"0x{zxid:x} (type {t.hdr.type} of session 0x{t.hdr.client_id:x}; it holds {what} there)")
        if lost:
            more = f" and {len(lost) - 3} more" if len(lost) > 3 else ""
            violations.append(Violation("durability", f"committed txns lost: {', '.join(lost[:3])}{more}",
                                        member=m.member))
    return violations
