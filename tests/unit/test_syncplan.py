"""The sync plan (quorum/syncplan.py): DIFF, TRUNC or SNAP for a learner, from the committed log
and, for a learner behind it, the leader's txn log on disk (rule 5)."""

from __future__ import annotations

import pytest

from zkserver.quorum import bugs
from zkserver.quorum.syncplan import SyncKind, SyncPlan, needs_disk, plan_sync


def z(epoch: int, counter: int) -> int:
    return epoch << 32 | counter


def run(epoch: int, first: int, last: int) -> list[int]:
    return [z(epoch, c) for c in range(first, last + 1)]


COMMITTED = run(2, 11, 20)  # the committed log: 2:11..2:20
TREE = z(2, 20)
DISK = run(1, 1, 9) + run(2, 1, 11)  # the txn log: 1:1..1:9, then epoch 2 up to the committed log's first


def test_inside_the_committed_log_the_disk_is_not_needed() -> None:
    assert needs_disk(z(2, 15), COMMITTED, TREE) is None
    assert needs_disk(TREE, COMMITTED, TREE) is None
    assert needs_disk(z(2, 25), COMMITTED, TREE) is None
    assert needs_disk(z(2, 5), COMMITTED, TREE) == z(2, 11)
    assert needs_disk(z(2, 5), [], z(2, 8)) == z(2, 8)  # an empty committed log: the tree's zxid
    plan = plan_sync(z(2, 15), COMMITTED, TREE, disk_zxids=DISK)
    assert plan == SyncPlan(SyncKind.DIFF, TREE, run(2, 16, 20), TREE)


def test_behind_the_committed_log_without_the_disk_is_a_snapshot() -> None:
    assert plan_sync(z(2, 5), COMMITTED, TREE) == SyncPlan(SyncKind.SNAP, TREE, forward_from=TREE)


def test_diff_from_the_disk_then_the_committed_log() -> None:
    plan = plan_sync(z(2, 5), COMMITTED, TREE, disk_zxids=DISK)
    assert plan == SyncPlan(SyncKind.DIFF, TREE, run(2, 6, 20), TREE)  # 2:11 once, from wherever


def test_diff_from_the_disk_across_an_epoch_the_learner_finished() -> None:
    plan = plan_sync(z(1, 7), COMMITTED, TREE, disk_zxids=DISK)
    assert plan.kind == SyncKind.DIFF and plan.txns == run(1, 8, 9) + run(2, 1, 20)


def test_a_learner_at_a_new_epoch_zxid_gets_a_diff_from_the_disk() -> None:
    # It took a snapshot at 2:0 (nothing of epoch 2): the txn log has no 2:0, it gets all of epoch 2.
    plan = plan_sync(z(2, 0), COMMITTED, TREE, disk_zxids=DISK)
    assert plan == SyncPlan(SyncKind.DIFF, TREE, run(2, 1, 20), TREE)


def test_an_epoch_boundary_inside_the_disk_part_is_never_truncated_across() -> None:
    # The learner logged 1:12 as leader of epoch 1 and nobody else got it: the leader's history
    # goes 1:9 -> 2:1. A TRUNC to 1:9 would cross the epoch: SNAP.
    assert plan_sync(z(1, 12), COMMITTED, TREE, disk_zxids=DISK).kind == SyncKind.SNAP
    # Inside the committed log the same rule holds (rule 4), and below it the same walk runs.
    assert plan_sync(z(1, 12), run(1, 1, 9) + run(2, 1, 5), z(2, 5)).kind == SyncKind.SNAP


def test_a_hole_in_the_disk_part_is_a_snapshot_even_where_a_trunc_would_fit() -> None:
    # 1:5 is missing from the leader's log: it cannot tell a lost file from a learner's
    # uncommitted txn, so it does not TRUNC to 1:4 and skip what the hole held.
    holed = run(1, 1, 4) + run(1, 6, 9) + run(2, 1, 11)
    assert plan_sync(z(1, 5), COMMITTED, TREE, disk_zxids=holed).kind == SyncKind.SNAP
    assert plan_sync(z(1, 2), COMMITTED, TREE, disk_zxids=holed).kind == SyncKind.SNAP
    # the same walk over a committed log with that hole TRUNCs (rule 4, Apache's)
    plan = plan_sync(z(1, 5), holed + run(2, 12, 20), TREE)
    assert (plan.kind, plan.zxid, plan.txns[0]) == (SyncKind.TRUNC, z(1, 4), z(1, 6))


def test_a_disk_part_that_does_not_reach_the_committed_log_is_a_snapshot() -> None:
    torn = DISK[:-3]  # a torn or short file: the entries stop at 2:8
    assert plan_sync(z(2, 5), COMMITTED, TREE, disk_zxids=torn).kind == SyncKind.SNAP


def test_a_disk_part_that_starts_after_the_learner_is_a_snapshot() -> None:
    # the oldest file read starts at 1:5 (older files purged): 1:4 onwards is not all there
    assert plan_sync(z(1, 3), COMMITTED, TREE, disk_zxids=DISK[4:]).kind == SyncKind.SNAP
    assert plan_sync(z(1, 5), COMMITTED, TREE, disk_zxids=DISK[4:]).kind == SyncKind.DIFF


def test_a_missing_file_across_an_epoch_boundary_is_a_snapshot() -> None:
    # the file holding 1:8..2:4 is gone: 1:7 -> 2:5 is no history
    gone = run(1, 1, 7) + run(2, 5, 11)
    assert plan_sync(z(1, 2), COMMITTED, TREE, disk_zxids=gone).kind == SyncKind.SNAP


def test_forced_snapshot_ignores_the_disk() -> None:
    assert plan_sync(z(2, 5), COMMITTED, TREE, force_snap=True, disk_zxids=DISK).kind == SyncKind.SNAP


def test_an_empty_committed_log_syncs_from_the_disk_up_to_the_tree() -> None:
    plan = plan_sync(z(2, 5), [], z(2, 8), disk_zxids=run(2, 1, 8))
    assert plan == SyncPlan(SyncKind.DIFF, z(2, 8), run(2, 6, 8), z(2, 8))
    # a tree at a new epoch's zxid (no txn of it yet) is not in the log: SNAP, as Apache
    assert plan_sync(z(2, 5), [], z(3, 0), disk_zxids=run(2, 1, 8)).kind == SyncKind.SNAP


@pytest.fixture
def diff_not_trunc():
    bugs.enable("diff-not-trunc")
    yield
    bugs.disable_all()


def test_the_diff_not_trunc_switch_still_turns_a_trunc_into_a_diff(diff_not_trunc: None) -> None:
    assert plan_sync(z(2, 25), COMMITTED, TREE, disk_zxids=DISK) == SyncPlan(SyncKind.DIFF, TREE, [], TREE)
