"""How a leader brings one learner up to date: DIFF, TRUNC or SNAP, as a pure decision.

Theory of operation (Apache's LearnerHandler.syncFollower and queueCommittedProposals,
peer-protocol.md §3.4). The inputs are the learner's last logged zxid (from its ACKEPOCH), the
leader's committed log (the last few hundred txns it applied, oldest first) and the zxid of
the leader's tree. The learner's history is a prefix of the leader's up to the last zxid they
share; what it holds beyond that was never committed (a leader of an older epoch proposed it
and failed), so it must be cut (TRUNC) - never kept (ZOOKEEPER-1154/2832). The rules, first
match wins:

1. forced snapshot sync (zookeeper.forceSnapshotSync): SNAP;
2. the learner is exactly where the leader's tree is: an empty DIFF;
3. the learner is past the end of the committed log, and its zxid is not the first of an epoch:
   TRUNC to the end of the committed log;
4. the learner's zxid is inside the committed log: walk the log -
   the learner's zxid found: DIFF, then every later txn as PROPOSAL + COMMIT;
   the learner's zxid starts an epoch (counter 0, it has nothing of that epoch): DIFF from it;
   the first txn past it is of the same epoch as the learner's zxid: TRUNC to the txn before
   it, then the later txns; of another epoch: SNAP (a TRUNC must not cross an epoch: the txn
   before it is not the learner's);
5. otherwise (the learner is behind the committed log): SNAP.

Apache also reads the txn log on disk for a learner behind the committed log (its rule 5,
bounded by snapshotSizeFactor); we send a snapshot instead, which is always correct.

`forward_from` is the zxid after which the leader's in-flight proposals are queued for the
learner (Apache's startForwarding): the last txn the plan covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from . import bugs


class SyncKind(Enum):
    DIFF = "DIFF"
    TRUNC = "TRUNC"
    SNAP = "SNAP"


@dataclass(frozen=True)
class SyncPlan:
    kind: SyncKind
    zxid: int  # the DIFF/TRUNC packet's zxid; for SNAP the leader's tree zxid
    txns: list[int] = field(default_factory=list)  # committed-log zxids to send as PROPOSAL + COMMIT
    forward_from: int = 0


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def plan_sync(peer_zxid: int, log_zxids: Sequence[int], tree_zxid: int, force_snap: bool = False) -> SyncPlan:
    """The plan for a learner whose last logged zxid is `peer_zxid`, given the zxids of the
    committed log (ascending) and the zxid of the leader's tree."""
    plan = _plan(peer_zxid, log_zxids, tree_zxid, force_snap)
    if plan.kind == SyncKind.TRUNC and bugs.ACTIVE and "diff-not-trunc" in bugs.ACTIVE:
        return SyncPlan(SyncKind.DIFF, plan.zxid, plan.txns, plan.forward_from)
    return plan


def _plan(peer_zxid: int, log_zxids: Sequence[int], tree_zxid: int, force_snap: bool) -> SyncPlan:
    snap = SyncPlan(SyncKind.SNAP, tree_zxid, forward_from=tree_zxid)
    if force_snap:
        return snap
    low, high = (log_zxids[0], log_zxids[-1]) if log_zxids else (tree_zxid, tree_zxid)
    new_epoch = peer_zxid & 0xFFFFFFFF == 0
    if peer_zxid == tree_zxid:
        return SyncPlan(SyncKind.DIFF, peer_zxid, forward_from=peer_zxid)
    if peer_zxid > high and not new_epoch:
        return SyncPlan(SyncKind.TRUNC, high, forward_from=high)
    if low <= peer_zxid <= high:
        return _walk(peer_zxid, log_zxids, high) or snap
    return snap


def _walk(peer_zxid: int, log_zxids: Sequence[int], high: int) -> SyncPlan | None:
    """Rule 4; None when only a snapshot will do."""
    new_epoch = peer_zxid & 0xFFFFFFFF == 0
    kind: SyncKind | None = None
    at = 0
    previous = -1
    txns: list[int] = []
    for zxid in log_zxids:
        if zxid < peer_zxid:
            previous = zxid
            continue
        if kind is None:
            if zxid == peer_zxid:
                kind, at = SyncKind.DIFF, high
                continue
            if new_epoch:
                kind, at = SyncKind.DIFF, high
            elif epoch_of(zxid) != epoch_of(peer_zxid) or previous < 0:
                return None
            else:
                kind, at = SyncKind.TRUNC, previous
        txns.append(zxid)
    if kind is None:
        if not new_epoch:
            return None
        kind, at = SyncKind.DIFF, high
    return SyncPlan(kind, at, txns, forward_from=txns[-1] if txns else peer_zxid)
