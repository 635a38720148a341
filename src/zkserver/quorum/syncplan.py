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
5. the learner is behind the committed log: the leader's txn log on disk may still hold what it
   misses (Apache's getProposalsFromTxnLog, zookeeper.snapshotSizeFactor). `disk_zxids` are the
   zxids of those entries, from the first of the oldest log file read up to the committed log's
   first txn included (empty when the leader does not read its disk: disabled, or past the
   size limit). They are walked as in rule 4, followed by the committed log, only when
   - the first of them is at or before the learner's zxid (else the log does not reach back),
   - they end with the committed log's first txn (a torn or short log leaves a gap: Apache's
     "gap between end of txnlog and start of committedLog"),
   - they are gapless: each the next counter of the same epoch, or counter 1 of a later epoch
     (a missing log file would otherwise go unseen; Apache does not check this; a history
     numbered from zookeeper.testingonly.initialZxid thus falls back to SNAP at an epoch
     boundary);
   otherwise, or when the walk finds no DIFF/TRUNC: SNAP.

Only the leader's history up to the committed log comes from disk: the disk part stops at the
committed log's first txn, so a proposal the leader logged but has not committed is never read
from there.

`forward_from` is the zxid after which the leader's in-flight proposals are queued for the
learner (Apache's startForwarding): the last txn the plan covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from itertools import pairwise

from . import bugs


class SyncKind(Enum):
    DIFF = "DIFF"
    TRUNC = "TRUNC"
    SNAP = "SNAP"


@dataclass(frozen=True)
class SyncPlan:
    kind: SyncKind
    zxid: int  # the DIFF/TRUNC packet's zxid; for SNAP the leader's tree zxid
    txns: list[int] = field(default_factory=list)  # zxids to send as PROPOSAL + COMMIT (disk, then committed log)
    forward_from: int = 0


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def plan_sync(peer_zxid: int, log_zxids: Sequence[int], tree_zxid: int, force_snap: bool = False,
              disk_zxids: Sequence[int] = ()) -> SyncPlan:
    """The plan for a learner whose last logged zxid is `peer_zxid`, given the zxids of the
    committed log (ascending), the zxid of the leader's tree and those the leader read from its
    txn log on disk for a learner behind the committed log (rule 5)."""
    plan = _plan(peer_zxid, log_zxids, tree_zxid, force_snap, disk_zxids)
    if plan.kind == SyncKind.TRUNC and bugs.ACTIVE and "diff-not-trunc" in bugs.ACTIVE:
        return SyncPlan(SyncKind.DIFF, plan.zxid, plan.txns, plan.forward_from)
    return plan


def _plan(peer_zxid: int, log_zxids: Sequence[int], tree_zxid: int, force_snap: bool,
          disk_zxids: Sequence[int]) -> SyncPlan:
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
    if peer_zxid < low and _disk_usable(peer_zxid, disk_zxids, low):
        return _walk(peer_zxid, [*disk_zxids, *(z for z in log_zxids if z > low)], high) or snap
    return snap


def needs_disk(peer_zxid: int, log_zxids: Sequence[int], tree_zxid: int) -> int | None:
    """The zxid the disk part must reach (the committed log's first txn) when rule 5 applies to
    this learner, else None: the leader reads its txn log only then."""
    low = log_zxids[0] if log_zxids else tree_zxid
    return low if peer_zxid < low and peer_zxid != tree_zxid else None


def _disk_usable(peer_zxid: int, disk_zxids: Sequence[int], low: int) -> bool:
    """Rule 5's conditions on the disk part: it reaches back to the learner, ends at the
    committed log and has no hole."""
    if not disk_zxids or disk_zxids[0] > peer_zxid or disk_zxids[-1] != low:
        return False
    return all(_follows(a, b) for a, b in pairwise(disk_zxids))


def _follows(a: int, b: int) -> bool:
    """True when txn `b` comes right after txn `a` in a history: the next counter of the same
    epoch, or the first txn of a later epoch."""
    return b == a + 1 if epoch_of(a) == epoch_of(b) else epoch_of(b) > epoch_of(a) and b & 0xFFFFFFFF == 1


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
