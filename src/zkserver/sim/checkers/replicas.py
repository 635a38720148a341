"""Replicas agree: the same txn at every zxid, and, once quiet, the same tree.

Theory of operation. Per member, its committed history must be well formed: zxids strictly
increasing and, within one epoch (the zxid's high 32 bits), without gaps (the ZOOKEEPER-4925
class). Across members, the txn at a zxid is byte-identical wherever two members hold it, and
so is the tree digest a log entry may carry. Once the world is quiet, every live member ends
at the same zxid with the same tree digest and the same tree, and that tree is what the
checkers' own model (model.py) builds by replaying the committed history; a committed txn that
the model cannot apply is reported here too, as a fault of the history itself.
"""

from __future__ import annotations

from .base import Committed, MemberState, NodeView, Txn, Violation, decode_txn
from .model import TreeModel, is_system, replay

_SHOWN = 5  # differences listed per comparison


def _describe(t: Txn) -> str:
    path = getattr(t.record, "path", None)
    return f"type {t.hdr.type} session 0x{t.hdr.client_id:x}" + (f" {path}" if path else "")


def check_log_shape(m: MemberState) -> list[Violation]:
    out = []
    prev = m.complete_from
    for zxid, data in m.txns:
        hdr_zxid = decode_txn(zxid, data).hdr.zxid
        if hdr_zxid != zxid:
            out.append(Violation("replicas", f"the txn listed at zxid 0x{zxid:x} says 0x{hdr_zxid:x}", member=m.member))
        if zxid <= prev and prev:
            out.append(Violation("replicas", f"zxid 0x{zxid:x} follows 0x{prev:x}: not increasing", member=m.member))
        elif prev and zxid >> 32 == prev >> 32 and zxid != prev + 1:
            out.append(Violation("replicas", f"a gap in epoch {zxid >> 32}: 0x{prev:x} then 0x{zxid:x}",
                                 member=m.member))
        prev = zxid
    return out


def check_agreement(members: list[MemberState]) -> list[Violation]:
    held: dict[int, list[tuple[int, Txn]]] = {}
    for m in members:
        for zxid, data in m.txns:
            held.setdefault(zxid, []).append((m.member, decode_txn(zxid, data)))
    out = []
    for zxid in sorted(held):
        copies = held[zxid]
        first_member, first = copies[0]
        for member, t in copies[1:]:
            if t.body != first.body:
                out.append(Violation("replicas", f"zxid 0x{zxid:x}: member {first_member} holds {_describe(first)}, "
                                     f"member {member} holds {_describe(t)}"))
            elif t.digest is not None and first.digest is not None and t.digest != first.digest:
                out.append(Violation("replicas", f"zxid 0x{zxid:x}: tree digest {first.digest:#x} on member "
                                     f"{first_member}, {t.digest:#x} on member {member}"))
    return out


def tree_differences(a: dict[str, NodeView], b: dict[str, NodeView]) -> list[str]:
    diffs = []
    for path in sorted(set(a) | set(b)):
        if is_system(path):
            continue
        x, y = a.get(path), b.get(path)
        if x != y:
            diffs.append(f"{path}: {x} vs {y}")
    return diffs


def check_quiet(members: list[MemberState], committed: Committed, model: TreeModel | None) -> list[Violation]:
    live = [m for m in members if m.live]
    out = []
    last = committed.txns[-1].zxid if committed.txns else 0
    for m in live:
        if m.last_zxid != last:
            out.append(Violation("replicas", f"quiet, yet at zxid 0x{m.last_zxid:x}, not 0x{last:x}", member=m.member))
    digests = {m.member: m.digest for m in live if m.digest is not None}
    if len(set(digests.values())) > 1:
        out.append(Violation("replicas", f"tree digests differ once quiet: {digests}"))
    if model is None:
        return out
    expected = model.views()
    for m in live:
        if m.tree is None or m.last_zxid != last:
            continue
        diffs = tree_differences(expected, m.tree)
        if diffs:
            shown = "; ".join(diffs[:_SHOWN]) + (f"; and {len(diffs) - _SHOWN} more" if len(diffs) > _SHOWN else "")
            out.append(Violation("replicas", f"its tree differs from the committed history's (expected vs held): "
                                 f"{shown}", member=m.member))
    return out


def check_replicas(members: list[MemberState], committed: Committed, quiet: bool = True) -> list[Violation]:
    out = [v for m in members for v in check_log_shape(m)]
    out += check_agreement(members)
    model = replay(committed.txns) if committed.complete else None  # a partial history cannot be replayed
    if model is not None:
        out += [Violation(check, f"zxid 0x{zxid:x}: {what}") for zxid, check, what in model.problems
                if check == "history"]
    if quiet:
        out += check_quiet(members, committed, model)
    return out
