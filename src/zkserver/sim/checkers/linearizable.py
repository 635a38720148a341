"""Writes are linearizable: a Wing & Gong search per partition of znodes, as porcupine does it.

Theory of operation. Every write a client invoked (create, setData, delete, multi) becomes an
operation with a closed interval [invoked, completed] and an observed output: OK with its
result, a definite error, or unknown (UNKNOWN outcome: return time infinity, any output).
Linearizability is local (P-compositionality, Horn & Kroening), so the writes are split by
znode and checked one partition at a time; a multi joins the partitions of the paths it
touches (union-find). The model is a register per znode: absent, or (data, version, kind,
owner). Reads are not linearizable in ZooKeeper and are checked elsewhere (consistency.py).

Effects no client invoked come from the committed history: each path a closeSession deleted
becomes an "expire" operation, each deleteContainer a "sweep". Their interval is bounded by
the zxid order the members agree on: they took effect after every definite write of a lower
zxid was invoked, and before any reply carrying a zxid at or above theirs was received.

UNKNOWN writes are resolved against the committed history, as etcd's patch_history does: a
write's txn carries its session and xid (cxid). One with no txn in a complete history never
happened and is dropped; one with a txn happened, before any reply carrying a zxid at or above
its txn's was received, which bounds its return time. The txn also says how it ended: an
ErrorTxn (or a multi with one) is a failure with that code, which changed nothing and must be
what the state then allowed; any other txn is a success. Without that, each unknown write stays
concurrent with everything after it, and the search grows with their number.

What the register model cannot see, it does not judge: a create may fail NoNode only while
its parent is not yet known to exist (parents the workload never deletes are permanent once
an OK/NodeExists create of them returned); NotEmpty only on a path some create went under;
Unimplemented on a TTL create (a server without extended types). Errors that concern the
request rather than the node (SessionExpired, SessionMoved, ...) are accepted as no-ops.

First, a cheap witness: the members' zxid order is a candidate linearization, and checking a
given order (each op placed within its interval, the model giving what was observed) takes
linear time. A witness that holds proves the partition linearizable, wherever it came from;
only a partition whose witness fails goes to the search, which alone decides a violation.

The search (porcupine's checkSingle): entries in time order (calls before returns at equal
times: intervals are closed), a doubly linked list, a stack of linearized calls, and a cache
of (linearized bitset, state) to prune. Each partition gets a budget of search steps; past it
the verdict is "inconclusive".
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ...jute.codes import CreateMode, Err, Op
from ...jute.records import CloseSessionTxn, CreateTxn, DeleteTxn, ErrorTxn, MultiTxn
from ..history import History, Operation, Outcome
from .base import Committed, Txn, Violation, op_specs

INF = math.inf
DEFAULT_BUDGET = 2_000_000  # steps per partition (~2 s); only a partition the witness fails runs it
WRITE_KINDS = ("create", "set", "delete", "multi")
_SEQUENTIAL = {CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL,
               CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL}
# Errors about the request or the session, not the node: no effect, nothing to predict.
REQUEST_ERRORS = frozenset({Err.SESSION_EXPIRED, Err.SESSION_MOVED, Err.NOT_READ_ONLY, Err.SYSTEM_ERROR,
                            Err.MARSHALLING_ERROR, Err.THROTTLED_OP, Err.NO_AUTH, Err.QUOTA_EXCEEDED,
                            Err.AUTH_FAILED, Err.UNKNOWN_SESSION})

Value = tuple[bytes | None, int, str, int] | None  # (data, version, kind, owner) or absent


class Sub(NamedTuple):
    """One step on one znode: a single write, or one op of a multi."""

    kind: str  # create | set | delete | check | expire | sweep
    path: str
    data: bytes | None = None
    version: int = -1
    node_kind: str = "persistent"
    owner: int = 0
    extra_errors: frozenset[int] = frozenset()  # errors the model cannot rule out for this step


@dataclass(slots=True)
class LinOp:
    ident: int  # History op id; negative for an effect taken from the committed history
    call: float
    ret: float
    subs: list[Sub]
    outcome: Outcome | None  # None: unknown
    error: int = 0
    err_index: int = -1  # a failed multi: which op failed
    results: list[Any] = field(default_factory=list)  # per sub, what an OK reply said
    zxid: int | None = None  # its txn's, where the committed history tells: a place to try it in the witness
    by_txn: bool = False  # an unknown write whose outcome its committed txn told

    @property
    def paths(self) -> list[str]:
        return [s.path for s in self.subs]


# ---------------------------------------------------------------- the model


def step_sub(sub: Sub, cur: Value) -> tuple[int, Value, Any]:
    """(error, new value, result) of one step from `cur`; error -1 means impossible."""
    kind = sub.kind
    if kind == "create":
        if cur is not None:
            return Err.NODE_EXISTS, cur, None
        return 0, (sub.data, 0, sub.node_kind, sub.owner), sub.path
    if kind in ("expire", "sweep"):
        alive = cur is not None and (cur[3] == sub.owner if kind == "expire" else cur[2] in ("container", "ttl"))
        return (0, None, None) if alive else (-1, cur, None)
    if cur is None:
        return Err.NO_NODE, cur, None
    if sub.version != -1 and sub.version != cur[1]:
        return Err.BAD_VERSION, cur, None
    if kind == "set":
        return 0, (sub.data, cur[1] + 1, cur[2], cur[3]), cur[1] + 1
    if kind == "delete":
        return 0, None, None
    return 0, cur, None  # check


def _result_matches(sub: Sub, result: Any, observed: Any) -> bool:
    if sub.kind == "create":
        return observed is None or observed[0] == result
    if sub.kind == "set":
        return observed is None or observed.version == result
    return True


class Partition:
    """The paths of one partition and the step function over their tuple of values."""

    def __init__(self, paths: list[str]):
        self.paths = paths
        self.index = {p: i for i, p in enumerate(paths)}

    def initial(self) -> tuple[Value, ...]:
        return (None,) * len(self.paths)

    def step(self, op: LinOp, state: tuple[Value, ...]) -> tuple[bool, tuple[Value, ...]]:
        values = list(state)
        fail_at = op.err_index if op.outcome is Outcome.ERROR else -1
        if op.outcome is Outcome.ERROR and fail_at < 0:
            fail_at = 0
        for i, sub in enumerate(op.subs):
            at = self.index[sub.path]
            err, new, result = step_sub(sub, values[at])
            if err == -1:
                return False, state
            if i == fail_at:
                return err == op.error or op.error in sub.extra_errors, state
            if err:
                # An unknown op that fails changes nothing; an observed one had to fail here.
                return op.outcome is None, state
            if op.outcome is Outcome.OK and not _result_matches(sub, result, op.results[i]):
                return False, state
            values[at] = new
        if fail_at >= 0:
            return False, state  # it failed, yet every step here succeeds
        return True, tuple(values)


# ---------------------------------------------------------------- the search


class _Entry:
    __slots__ = ("call", "match", "next", "op", "prev")

    def __init__(self, op: int, call: bool):
        self.op = op
        self.call = call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _entries(ops: list[LinOp]) -> _Entry:
    events = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        events.append((op.ret, 1, i))
    events.sort()
    head = _Entry(-1, False)
    calls: dict[int, _Entry] = {}
    prev = head
    for _, is_ret, i in events:
        e = _Entry(i, not is_ret)
        if is_ret:
            calls[i].match = e
        else:
            calls[i] = e
        prev.next, e.prev = e, prev
        prev = e
    return head


def _lift(e: _Entry) -> None:
    e.prev.next = e.next  # type: ignore[union-attr]
    if e.next is not None:
        e.next.prev = e.prev
    m = e.match
    assert m is not None
    m.prev.next = m.next  # type: ignore[union-attr]
    if m.next is not None:
        m.next.prev = m.prev


def _unlift(e: _Entry) -> None:
    m = e.match
    assert m is not None
    m.prev.next = m  # type: ignore[union-attr]
    if m.next is not None:
        m.next.prev = m
    e.prev.next = e  # type: ignore[union-attr]
    if e.next is not None:
        e.next.prev = e


def witness(part: Partition, ops: list[LinOp]) -> str | None:
    """None when the committed zxid order linearizes `ops` - each op fits at or after the
    previous one's point within its own interval, and the model gives what was observed - else
    where that order breaks. A valid witness proves the partition linearizable, however it was
    found; an invalid one proves nothing (only the search decides)."""
    unplaced = [op for op in ops if op.zxid is None and op.outcome is not None]
    if unplaced:
        return f"the committed history does not place {_describe(unplaced[0])}"
    state, t = part.initial(), -INF
    for op in sorted((op for op in ops if op.zxid is not None), key=lambda op: op.zxid):  # type: ignore[arg-type, return-value]
        t = max(t, op.call)
        if t > op.ret:
            return f"at zxid 0x{op.zxid:x}, {_describe(op)} ended before an op of a lower zxid began"
        ok, state = part.step(op, state)
        if not ok:
            return f"at zxid 0x{op.zxid:x}, {_describe(op)} is not what the state then allows"
    return None  # unknown ops the log does not place did not happen (or come last, to no effect)


@dataclass
class SearchResult:
    ok: bool | None  # None: out of budget
    steps: int
    best: list[int]  # the longest sequence of ops linearized (indices)
    stuck: int | None = None  # an op that could not be placed in that best attempt


def search(part: Partition, ops: list[LinOp], budget: int = DEFAULT_BUDGET) -> SearchResult:
    head = _entries(ops)
    state = part.initial()
    linearized = 0
    cache: set[tuple[int, tuple[Value, ...]]] = set()
    stack: list[tuple[_Entry, tuple[Value, ...]]] = []
    best: list[int] = []
    stuck: int | None = None
    entry = head.next
    steps = 0
    while head.next is not None:
        steps += 1
        if steps > budget:
            return SearchResult(None, steps, best, stuck)
        assert entry is not None
        if entry.call:
            ok, new_state = part.step(ops[entry.op], state)
            if ok:
                bits = linearized | (1 << entry.op)
                key = (bits, new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state, linearized = new_state, bits
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if len(stack) >= len(best):
                best, stuck = [e.op for e, _ in stack], entry.op
            if not stack:
                return SearchResult(False, steps, best, stuck)
            top, state = stack.pop()
            linearized &= ~(1 << top.op)
            _unlift(top)
            entry = top.next
    return SearchResult(True, steps, [e.op for e, _ in stack])


# ---------------------------------------------------------------- from the history


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, paths: list[str]) -> None:
        roots = [self.find(p) for p in paths]
        for r in roots[1:]:
            self.parent[r] = roots[0]


def txn_outcome(t: Txn) -> tuple[Outcome, int, int]:
    """(outcome, error, index of the failed op) of the request a committed txn records: an
    ErrorTxn is a failure with its code; a multi failed at its first ErrorTxn (Apache's layout:
    the ops before it keep their txns, the ones after say RuntimeInconsistency)."""
    rec = t.record
    if t.hdr.type == Op.ERROR and isinstance(rec, ErrorTxn):
        return Outcome.ERROR, rec.err, -1
    if isinstance(rec, MultiTxn):
        for i, (kind, sub) in enumerate(rec.txns):
            if kind == Op.ERROR and isinstance(sub, ErrorTxn):
                return Outcome.ERROR, sub.err, i
    return Outcome.OK, 0, -1


def _created_paths(t: Txn) -> list[str | None]:
    """The path each op of a txn created (None for ops that create nothing)."""
    subs = [r for _, r in t.record.txns] if isinstance(t.record, MultiTxn) else [t.record]
    return [r.path if isinstance(r, CreateTxn) else None for r in subs]


class _Builder:
    """Turns History operations and committed effects into LinOps."""

    def __init__(self, history: History, committed: Committed):
        self.committed = committed
        writes = [o for o in history.ops if o.kind in WRITE_KINDS]
        self.parents_known = self._permanent_parents(writes)
        self.with_children = {p[: p.rfind("/")] for o in writes for p in self._touched(o)}
        self.ephemeral_paths = {p for o in writes for p in self._touched(o, ephemeral_only=True)}
        self._zxid_bounds(history)

    def _zxid_bounds(self, history: History) -> None:
        """Sorted by reply zxid: the latest invocation of an OK write below each zxid, and the
        earliest reply at or above it (OK writes only for the first: their reply zxid is their
        own txn's, which an error reply's need not be)."""
        answered = sorted((o.zxid, o.completed) for o in history.ops if o.zxid is not None and o.completed is not None)
        self._answered_zxids = [z for z, _ in answered]
        self._earliest_from = list(itertools.accumulate(reversed([t for _, t in answered]), min))[::-1]
        writes = sorted((o.zxid, o.invoked) for o in history.ops
                        if o.kind in WRITE_KINDS and o.outcome is Outcome.OK and o.zxid is not None)
        self._write_zxids = [z for z, _ in writes]
        self._latest_below = list(itertools.accumulate((t for _, t in writes), max))

    def _invoked_below(self, zxid: int) -> float:
        i = bisect.bisect_left(self._write_zxids, zxid)
        return float(self._latest_below[i - 1]) if i else 0.0

    def _answered_from(self, zxid: int) -> float:
        i = bisect.bisect_left(self._answered_zxids, zxid)
        return float(self._earliest_from[i]) if i < len(self._earliest_from) else INF

    @staticmethod
    def _touched(o: Operation, ephemeral_only: bool = False) -> Iterator[str]:
        for s in op_specs(o):
            if s["kind"] == "create" and (not ephemeral_only or s.get("flags") in (1, 3)):
                yield s["path"]

    @staticmethod
    def _permanent_parents(writes: list[Operation]) -> dict[str, float]:
        """Paths no write ever deletes and every create makes persistent, with the time they are
        known to exist from (an OK or NodeExists create of them returned)."""
        deletable: set[str] = set()
        known: dict[str, float] = {}
        for o in writes:
            for s in op_specs(o):
                if s["kind"] == "delete" or (s["kind"] == "create" and s.get("flags", 0) != 0):
                    deletable.add(s["path"])
            if o.kind == "create" and o.completed is not None and (
                    o.outcome is Outcome.OK or o.error == Err.NODE_EXISTS):
                known[o.path] = min(known.get(o.path, INF), o.completed)
        return {p: t for p, t in known.items() if p not in deletable}

    def _sub(self, spec: dict[str, Any], session: int, result: Any, landed: str | None, call: float) -> Sub | None:
        kind, path = spec["kind"], spec["path"]
        if kind != "create":
            extra = frozenset({Err.NOT_EMPTY}) if kind == "delete" and path in self.with_children else frozenset()
            return Sub(kind, path, spec.get("data"), spec.get("version", -1), extra_errors=extra)
        flags = spec.get("flags", 0)
        if flags in _SEQUENTIAL:
            path = result[0] if result is not None else landed
            if path is None:
                return None  # a sequential create that names no node
        node_kind = "ttl" if spec.get("ttl") is not None else {1: "ephemeral", 3: "ephemeral", 4: "container"}.get(
            flags, "persistent")
        parent = path[: path.rfind("/")] or "/"
        extra = set()
        if self.parents_known.get(parent, INF) >= call:
            extra.add(Err.NO_NODE)
        if parent in self.ephemeral_paths:
            extra.add(Err.NO_CHILDREN_FOR_EPHEMERALS)
        if node_kind == "ttl":
            extra.add(Err.UNIMPLEMENTED)
        return Sub("create", path, spec["data"], -1, node_kind, session if node_kind == "ephemeral" else 0,
                   frozenset(extra))

    def client_op(self, o: Operation) -> LinOp | None:
        if o.outcome is Outcome.ERROR and (o.error in REQUEST_ERRORS or (o.kind == "multi" and o.result is None)):
            return None  # refused as a request: no effect on any node
        call, ret = float(o.invoked), (INF if o.completed is None else float(o.completed))
        txn = self.committed.by_request.get((o.session_id or 0, o.xid)) if o.xid is not None else None
        outcome, error, err_index = o.outcome, o.error, -1
        if o.outcome is Outcome.UNKNOWN:
            if txn is None:
                if self.committed.complete and o.xid is not None:
                    return None  # no txn of it anywhere: it never happened
                outcome = None
            else:
                ret = self._answered_from(txn.zxid)  # it happened: before anyone saw a later zxid
                outcome, error, err_index = txn_outcome(txn)  # and ended as its txn says
                if outcome is Outcome.ERROR and (error in REQUEST_ERRORS or (o.kind == "multi" and err_index < 0)):
                    return None
        multi = o.kind == "multi"
        specs = op_specs(o)
        results = list(o.result) if multi and o.result is not None else [o.result]
        landed = _created_paths(txn) if txn is not None else []
        subs = []
        for i, spec in enumerate(specs):
            observed = results[i] if i < len(results) else None
            res = observed[2] if multi and observed is not None else observed
            sub = self._sub(spec, o.session_id or 0, res if o.outcome is Outcome.OK else None,
                            landed[i] if i < len(landed) else None, call)
            if sub is None:
                return None
            subs.append(sub)
        lin = LinOp(o.op_id, call, ret, subs, outcome, error, zxid=txn.zxid if txn is not None else o.zxid)
        if o.outcome is Outcome.OK:
            lin.results = [r[2] for r in results] if multi else results
        elif o.outcome is Outcome.ERROR:
            if multi:
                lin.err_index = next(i for i, r in enumerate(results) if r[1] not in (0, Err.RUNTIME_INCONSISTENCY))
        else:  # unknown, or ended as its txn says: no reply to compare results with
            lin.results = [None] * len(subs)
            lin.err_index = err_index
            lin.by_txn = outcome is not None
        return lin

    def committed_effects(self) -> list[LinOp]:
        """expire/sweep operations for what closeSession and deleteContainer txns deleted."""
        out: list[LinOp] = []
        for t in self.committed.txns:
            subs: list[Sub] = []
            if t.hdr.type == Op.CLOSE_SESSION and isinstance(t.record, CloseSessionTxn):
                subs = [Sub("expire", p, owner=t.hdr.client_id) for p in t.record.paths_to_delete]
            elif t.hdr.type == Op.DELETE_CONTAINER and isinstance(t.record, DeleteTxn):
                subs = [Sub("sweep", t.record.path)]
            if subs:
                call, ret = self._invoked_below(t.zxid), self._answered_from(t.zxid)
                out += [LinOp(-1 - len(out) - i, call, ret, [s], None, zxid=t.zxid) for i, s in enumerate(subs)]
        return out


def partitions(ops: list[LinOp]) -> list[tuple[Partition, list[LinOp]]]:
    uf = _UnionFind()
    for op in ops:
        uf.union(op.paths)
    groups: dict[str, list[LinOp]] = {}
    for op in ops:
        groups.setdefault(uf.find(op.paths[0]), []).append(op)
    out = []
    for group in groups.values():
        paths = sorted({p for op in group for p in op.paths})
        out.append((Partition(paths), group))
    out.sort(key=lambda pg: pg[0].paths)
    return out


def check_linearizable(history: History, committed: Committed, budget: int = DEFAULT_BUDGET) -> list[Violation]:
    builder = _Builder(history, committed)
    ops = [lin for o in history.ops if o.kind in WRITE_KINDS and o.outcome is not None
           for lin in [builder.client_op(o)] if lin is not None]
    ops += builder.committed_effects()
    violations = []
    for part, group in partitions(ops):
        broken = witness(part, group)
        if broken is None:
            continue
        result = search(part, group, budget)
        if result.ok:
            continue
        ids = tuple(sorted(op.ident for op in group if op.ident >= 0))
        where = ", ".join(part.paths[:6]) + (" ..." if len(part.paths) > 6 else "")
        hint = f"\n  the committed order breaks {broken}"
        if result.ok is None:
            violations.append(Violation("linearizable", f"{where}: no verdict within {budget} search steps "
                                        f"({len(group)} operations){hint}", ids, inconclusive=True))
            continue
        violations.append(Violation("linearizable", _explain(where, group, result) + hint, ids))
    return violations


def _describe(op: LinOp) -> str:
    name = f"op {op.ident}" if op.ident >= 0 else "committed effect"
    subs = "; ".join(f"{s.kind} {s.path}" + (f" v{s.version}" if s.version != -1 else "") for s in op.subs)
    out = "unknown" if op.outcome is None else ("ok" if op.outcome is Outcome.OK else f"error {op.error}")
    return f"{name} [{op.call:g}, {op.ret:g}] {subs} -> {out}" + (" (by its txn)" if op.by_txn else "")


def _explain(where: str, group: list[LinOp], result: SearchResult) -> str:
    lines = [f"{where}: no linearization of {len(group)} writes; the longest linearizable prefix has "
             f"{len(result.best)}:"]
    lines += ["  " + _describe(group[i]) for i in result.best[-5:]]
    if result.stuck is not None:
        lines.append("  then this one could not be placed: " + _describe(group[result.stuck]))
    return "\n".join(lines)
