"""Sessions' ephemerals and sequential names.

Ephemerals. Replaying the committed history (model.py), a closeSession must take every
ephemeral of its session with it, and no ephemeral may be created for a session after its
close is committed: the model notes both. Once quiet, no live member may hold an ephemeral
whose owner is not one of its live sessions, or whose owner's close is committed.

Sequential names. A sequential create's name is the requested prefix and ten digits; no two
creates were ever told the same name; and in the committed history the numbers given under a
parent (for a prefix the workload used sequentially) strictly increase, so no name comes back
after its node is deleted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ...jute.codes import CreateMode, Op
from ...jute.records import CreateTxn, MultiTxn
from ..history import History, Operation, Outcome
from .base import Committed, MemberState, Violation, op_specs
from .model import TreeModel, is_system, replay

_SEQUENTIAL = {CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL,
               CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL}
_DIGITS = re.compile(r"(-\d{9}|\d{10})$")  # "%010d", a negative number once the counter wraps


def check_ephemerals(members: list[MemberState], committed: Committed, quiet: bool = True) -> list[Violation]:
    if not committed.complete:
        return []
    model: TreeModel = replay(committed.txns)
    out = [Violation(check, f"zxid 0x{zxid:x}: {what}")
           for zxid, check, what in model.problems if check == "ephemerals"]
    if not quiet:
        return out
    for m in members:
        if not m.live or m.tree is None:
            continue
        for path, view in sorted(m.tree.items()):
            owner = view.stat.ephemeral_owner
            if not owner or is_system(path):
                continue
            if owner in model.closed:
                out.append(Violation("ephemerals", f"{path} is still held for session 0x{owner:x}, whose close was "
                                     f"committed at zxid 0x{model.closed[owner]:x}", member=m.member))
            elif m.sessions is not None and owner not in m.sessions:
                out.append(Violation("ephemerals", f"{path} is owned by session 0x{owner:x}, which is not live here",
                                     member=m.member))
    return out


def _sequential_ops(history: History) -> Iterator[tuple[Operation, str, str | None]]:
    """(operation, requested prefix, name it was given or None) of every sequential create."""
    for o in history.ops:
        specs = op_specs(o)
        results = o.result if o.kind == "multi" and o.outcome is Outcome.OK else [o.result] * len(specs)
        for spec, res in zip(specs, results, strict=False):
            if spec["kind"] == "create" and spec.get("flags") in _SEQUENTIAL:
                name = None
                if o.outcome is Outcome.OK:
                    name = res[2][0] if o.kind == "multi" else res[0]
                yield o, spec["path"], name


def check_sequential(history: History, committed: Committed) -> list[Violation]:
    out = []
    given: dict[str, int] = {}
    prefixes = set()
    for o, prefix, name in _sequential_ops(history):
        prefixes.add(prefix)
        if name is None:
            continue
        if not (name.startswith(prefix) and _DIGITS.fullmatch(name[len(prefix):])):
            out.append(Violation("sequential", f"op {o.op_id} asked for {prefix}N and was given {name}", (o.op_id,)))
        if name in given:
            out.append(Violation("sequential", f"{name} was given to op {given[name]} and again to op {o.op_id}",
                                 (given[name], o.op_id)))
        given.setdefault(name, o.op_id)
    last: dict[str, tuple[int, int]] = {}  # parent -> (number, zxid)
    for t in committed.txns:
        rec = t.record
        recs = [r for _, r in rec.txns] if isinstance(rec, MultiTxn) and all(
            k != Op.ERROR for k, _ in rec.txns) else [rec]
        for r in recs:
            if not isinstance(r, CreateTxn) or not _DIGITS.search(r.path) or r.path[:-10] not in prefixes:
                continue
            parent, number = r.path[: r.path.rfind("/")], int(r.path[-10:])
            if parent in last and number <= last[parent][0]:
                out.append(Violation("sequential", f"zxid 0x{t.zxid:x} creates {r.path}, after number "
                                     f"{last[parent][0]} was given under {parent} at zxid 0x{last[parent][1]:x}"))
            last[parent] = (number, t.zxid)
    return out
