"""Reads are sequentially consistent per session (ZooKeeper's ordered sequential consistency).

Theory of operation. Three checks over the History, the third against the committed history:
  - session order: the replies of a session arrive in the order its requests were sent (FIFO),
    and the zxid they carry never goes back, across reconnects to other members too (the
    single system image);
  - sync: a reply after a `sync` of the same session carries a zxid at least that of every
    write acknowledged, to any client, before the sync was invoked;
  - reads: a read answered at zxid Z shows exactly the state after the committed txns up to
    Z (the server's reply zxid is its last applied zxid). The committed history is replayed
    through the checkers' own model (model.py) in zxid order, and each read is compared when
    the replay reaches its zxid. This one check subsumes "never sees an uncommitted write"
    and "never sees an older state than its zxid claims".
"""

from __future__ import annotations

import bisect
import itertools

from ...jute.codes import Err
from ..history import History, Operation, Outcome
from .base import Committed, Violation
from .model import TreeModel, is_system

READ_KINDS = ("get", "exists", "children")
WRITE_KINDS = ("create", "set", "delete", "multi")


def _answered(history: History) -> dict[int, list[Operation]]:
    """The operations a server answered, per session, in the order they were sent."""
    out: dict[int, list[Operation]] = {}
    for o in history.ops:
        if o.session_id is not None and o.zxid is not None and o.seq is not None:
            out.setdefault(o.session_id, []).append(o)
    return out


def check_session_order(history: History) -> list[Violation]:
    violations = []
    for sid, ops in _answered(history).items():
        for a, b in itertools.pairwise(ops):
            if b.seq < a.seq:  # type: ignore[operator]
                violations.append(Violation("session-order", f"session 0x{sid:x}: the reply to op {b.op_id} ({b.kind} "
                                            f"{b.path}) arrived before the reply to op {a.op_id} ({a.kind} {a.path}), "
                                            "sent before it", (a.op_id, b.op_id)))
        by_arrival = sorted(ops, key=lambda o: o.seq)  # type: ignore[arg-type, return-value]
        high: Operation | None = None
        for o in by_arrival:
            if high is not None and o.zxid < high.zxid:  # type: ignore[operator]
                violations.append(Violation(
                    "session-order", f"session 0x{sid:x}: op {o.op_id} ({o.kind} {o.path}) was answered at zxid "
                    f"0x{o.zxid:x} by member {o.member}, after op {high.op_id} had been answered at 0x{high.zxid:x} "
                    f"by member {high.member}", (high.op_id, o.op_id)))
            if high is None or o.zxid > high.zxid:  # type: ignore[operator]
                high = o
    return violations


def check_sync(history: History) -> list[Violation]:
    acks = sorted((o.completed, o.zxid, o.op_id) for o in history.ops  # type: ignore[misc]
                  if o.kind in WRITE_KINDS and o.outcome is Outcome.OK and o.zxid is not None)
    times = [t for t, _, _ in acks]
    running, best = [], (0, -1)
    for _, zxid, op_id in acks:
        if zxid > best[0]:
            best = (zxid, op_id)
        running.append(best)
    violations = []
    for sid, ops in _answered(history).items():
        floor = (0, -1, -1)  # (zxid, write op, sync op)
        for o in ops:
            if o.kind == "sync" and o.outcome is Outcome.OK:
                i = bisect.bisect_left(times, o.invoked)  # writes acknowledged strictly before
                if i and running[i - 1][0] > floor[0]:
                    floor = (running[i - 1][0], running[i - 1][1], o.op_id)
            if floor[0] and o.zxid < floor[0]:  # type: ignore[operator]
                violations.append(Violation(
                    "reads", f"session 0x{sid:x}: op {o.op_id} ({o.kind} {o.path}), from sync op {floor[2]} on, was "
                    f"answered at zxid 0x{o.zxid:x} by member {o.member}, below write op {floor[1]} (zxid "
                    f"0x{floor[0]:x}) acknowledged before that sync was invoked", (floor[2], floor[1], o.op_id)))
    return violations


def _read_problem(model: TreeModel, o: Operation) -> str | None:
    """What `o` read that the committed state at its zxid does not hold, or None."""
    view = model.view(o.path)
    if o.outcome is Outcome.ERROR:
        return "NoNode, but the node exists" if view is not None else None
    if view is None:
        return "the node, but it does not exist"
    if o.kind == "get":
        data, stat = o.result
        if data != view.data:
            return f"data {data!r}, but it holds {view.data!r}"
        return None if stat == view.stat else f"{stat}, but it is {view.stat}"
    if o.kind == "exists":
        return None if o.result == view.stat else f"{o.result}, but it is {view.stat}"
    names, stat = o.result if o.args.get("stat") else (o.result, None)
    children = model.children(o.path)
    if names != children:
        return f"children {names}, but they are {children}"
    return None if stat is None or stat == view.stat else f"{stat}, but it is {view.stat}"


def check_reads(history: History, committed: Committed) -> list[Violation]:
    reads = sorted((o for o in history.ops if o.kind in READ_KINDS and o.zxid is not None and not is_system(o.path)
                    and (o.outcome is Outcome.OK or o.error == Err.NO_NODE)),
                   key=lambda o: (o.zxid, o.op_id))  # type: ignore[arg-type, return-value]
    if not reads:
        return []
    if not committed.complete:
        return [Violation("reads", "no live member holds the committed history from its start: reads unchecked",
                          inconclusive=True)]
    model = TreeModel()
    txns = committed.txns
    last = txns[-1].zxid if txns else 0
    i = 0
    violations = []
    for o in reads:
        while i < len(txns) and txns[i].zxid <= o.zxid:  # type: ignore[operator]
            model.apply(txns[i])
            i += 1
        if o.zxid > last:  # type: ignore[operator]
            violations.append(Violation("reads", f"op {o.op_id} ({o.kind} {o.path}) was answered by member {o.member} "
                                        f"at zxid 0x{o.zxid:x}, beyond the committed history (last 0x{last:x})",
                                        (o.op_id,)))
            continue
        problem = _read_problem(model, o)
        if problem is not None:
            violations.append(Violation("reads", f"op {o.op_id} ({o.kind} {o.path}) answered by member {o.member} at "
                                        f"zxid 0x{o.zxid:x} read {problem}", (o.op_id,)))
    return violations
