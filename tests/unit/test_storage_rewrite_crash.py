"""Power loss at every disk operation of the ensemble storage actions (truncate, install a
snapshot, snapshot now, write an epoch file), in the style of test_storage_power_loss.py.

For each action: count the mutating operations it performs on a SimDisk, then for every k, run
it again on a fresh copy of the same member with the power cut at its k-th operation (a write
cut short in it), reboot in each of SimDisk's modes (what survived of the unsynced bytes and
names: nothing, everything, a torn prefix, random pages, a flipped bit), and recover, cutting
the power again during recovery at its 1st, 2nd, ... operation until one recovery completes.
Every recovery must give the old state or the new one, never anything else; once one gave the
new state, every later one must; and when the action returned before the cut, or its intent file
survived the reboot (the rewrite was decided), only the new.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from tests.unit.test_storage import hdr
from tests.unit.test_storage_ensemble import (
    E1,
    E2,
    HISTORY,
    Member,
    diverged_member,
    in_epoch,
    leader_state,
    options,
    recovered_state,
    replay_state,
)

from zkserver.jute.codes import Op
from zkserver.jute.records import SetDataTxn
from zkserver.storage import epochs
from zkserver.storage.database import StorageOptions, recover, truncate_history
from zkserver.storage.rewrite import INTENT
from zkserver.storage.simdisk import PowerLoss, SimDisk

MODES = ("drop", "keep", "torn", "pages", "flip", "random")


@dataclass
class Case:
    opts: StorageOptions
    setup: Callable[[SimDisk], Member]  # a running member whose state is durable
    action: Callable[[Member], None]
    old: list[tuple]  # the states recovery may give while the action had not taken effect
    new: tuple
    # When the action completed: go on (append, sync, lose power); return the state expected.
    after: Callable[[Member], tuple] | None = None


def recover_until_done(case: Case, disk: SimDisk, rng: random.Random) -> list[tuple]:
    """Recover, losing power at the 1st, 2nd, ... disk operation of recovery until one
    completes; then once more. The states of the completed recoveries."""
    got = []
    j = 1
    while True:
        disk.crash_after(j)
        try:
            rec = recover(case.opts, disk=disk)
        except PowerLoss:
            disk.reboot(rng.choice(MODES))
            j += 1
            continue
        disk.crash_after(None)
        got.append(recovered_state(rec))
        break
    got.append(recovered_state(recover(case.opts, disk=disk)))
    return got


def run_matrix(case: Case) -> int:
    """Crash the action at each of its operations; return how many there were."""
    disk = SimDisk(random.Random(0))
    member = case.setup(disk)
    start = disk.mutations
    case.action(member)
    ops = disk.mutations - start
    assert ops > 0
    outcomes = set()
    for k in range(1, ops + 2):
        for i, mode in enumerate(MODES):
            seed = k * 100 + i
            disk = SimDisk(random.Random(seed))
            member = case.setup(disk)
            disk.crash_after(k)
            try:
                case.action(member)
                done = True
            except PowerLoss:
                done = False
            if done and case.after is not None:
                disk.crash_after(None)
                expected_after = case.after(member)
            disk.power_fail()
            disk.reboot(mode)
            decided = done or f"{case.opts.snap_dir}/{INTENT}" in disk.files()
            where = f"power cut at operation {k} of {ops} (seed {seed}, reboot {mode}: {disk.history[-1]})"
            states = recover_until_done(case, disk, random.Random(seed))
            if done and case.after is not None:
                assert states == [expected_after] * len(states), f"{where}: the appends after the action are lost"
                continue
            for n, got in enumerate(states):
                assert got == case.new or (not decided and got in case.old), \
                    f"{where}: recovery {n + 1} gave neither the old state nor the new one (decided: {decided})"
                if n and states[n - 1] == case.new:
                    assert got == case.new, f"{where}: recovery {n + 1} went back to the old state"
            outcomes.add(states[0] == case.new)
    assert outcomes == ({False, True} if case.old else {True}), "the cuts should leave both outcomes"
    return ops


# ---------------------------------------------------------------- the cases


NEXT = in_epoch([(hdr(i, Op.SET_DATA), SetDataTxn("/", b"next-%d" % i, i)) for i in (1, 2)], E2)


def _append_then_lose_power(member: Member, base: list) -> tuple:
    """The new leader's txns after the action, synced; then what recovery must give."""
    member.write(NEXT)
    member.disk.power_fail()  # type: ignore[attr-defined]
    member.disk.reboot("drop")  # type: ignore[attr-defined]
    return replay_state(base + NEXT)


@pytest.mark.parametrize("separate_log_dir", [False, True])
def test_truncate_at_every_operation(separate_log_dir: bool) -> None:
    opts = options("/m", separate_log_dir)
    cut = E1 + 30  # inside the second of three log files, below the newest snapshot
    ops = run_matrix(Case(opts, lambda d: diverged_member(opts, d), lambda m: _truncate(m, cut),
                          [replay_state(HISTORY)], replay_state(HISTORY[:30]),
                          lambda m: _append_then_lose_power(m, HISTORY[:30])))
    assert ops >= 10


def _truncate(m: Member, zxid: int) -> None:
    rec = m.storage.truncate(zxid)
    m.adopt(rec.tree, rec.sessions)


def test_truncate_with_unsynced_entries_makes_what_stays_durable_first() -> None:
    """Entries up to the cut that were written but not yet synced stay: the truncation syncs
    them before it decides. Before that point a power cut may lose some of them, as any
    unsynced entries (the old state is then a prefix of the history)."""
    opts = options("/m")

    def setup(disk: SimDisk) -> Member:
        m = diverged_member(opts, disk)
        m.storage.append(in_epoch([(hdr(i, Op.SET_DATA), SetDataTxn("/", b"u%d" % i, i)) for i in range(61, 66)], E1))
        return m

    unsynced = in_epoch([(hdr(i, Op.SET_DATA), SetDataTxn("/", b"u%d" % i, i)) for i in range(61, 66)], E1)
    full = HISTORY + unsynced
    run_matrix(Case(opts, setup, lambda m: _truncate(m, E1 + 63),
                    [replay_state(full[:k]) for k in range(60, 66)], replay_state(full[:63])))


def test_truncate_history_of_a_closed_data_dir_at_every_operation() -> None:
    opts = options("/m")

    def setup(disk: SimDisk) -> Member:
        m = diverged_member(opts, disk)
        m.storage.close()
        return m

    run_matrix(Case(opts, setup, lambda m: truncate_history(opts, E1 + 10, disk=m.disk),
                    [replay_state(HISTORY)], replay_state(HISTORY[:10])))


def test_truncate_history_after_a_process_crash_syncs_what_stays_first() -> None:
    """A server died (its page cache survived) with entries written but not synced; the
    truncation of its data dir must make the entries it keeps durable before it decides."""
    opts = options("/m")
    unsynced = in_epoch([(hdr(i, Op.SET_DATA), SetDataTxn("/", b"u%d" % i, i)) for i in range(61, 66)], E1)

    def setup(disk: SimDisk) -> Member:
        m = diverged_member(opts, disk)
        m.storage.append(unsynced)
        disk.restart()
        return m

    full = HISTORY + unsynced
    run_matrix(Case(opts, setup, lambda m: truncate_history(opts, E1 + 63, disk=m.disk),
                    [replay_state(full[:k]) for k in range(60, 66)], replay_state(full[:63])))


@pytest.mark.parametrize("separate_log_dir", [False, True])
def test_install_snapshot_at_every_operation(separate_log_dir: bool) -> None:
    opts = options("/m", separate_log_dir)
    _, sessions, txns = leader_state(25)  # below the member's newest snapshot and last txn

    def action(m: Member) -> None:
        m.storage.install_snapshot(leader_state(25)[0], sessions, E1 + 25)  # a fresh tree each run

    def after(m: Member) -> tuple:
        m.adopt(m.storage.tree, sessions)
        return _append_then_lose_power(m, txns)

    ops = run_matrix(Case(opts, lambda d: diverged_member(opts, d), action, [replay_state(HISTORY)],
                          replay_state(txns), after))
    assert ops >= 10


def test_install_snapshot_over_a_snapshot_of_the_same_name_at_every_operation() -> None:
    opts = options("/m")
    _, sessions, txns = leader_state(20)  # the member has its own snapshot.100000014

    def action(m: Member) -> None:
        m.storage.install_snapshot(leader_state(20)[0], sessions, E1 + 20)

    run_matrix(Case(opts, lambda d: diverged_member(opts, d), action, [replay_state(HISTORY)],
                    replay_state(txns)))


def test_snapshot_now_at_every_operation_changes_nothing() -> None:
    opts = options("/m")
    run_matrix(Case(opts, lambda d: diverged_member(opts, d), lambda m: m.storage.snapshot_now(),
                    [], replay_state(HISTORY)))


def test_epoch_write_at_every_operation() -> None:
    d = "/m/data/version-2"
    for k in range(1, 7):
        for i, mode in enumerate(MODES):
            disk = SimDisk(random.Random(k * 10 + i))
            disk.makedirs(d)
            epochs.write_long(d, epochs.CURRENT_EPOCH, 4, disk)
            epochs.write_long(d, epochs.ACCEPTED_EPOCH, 5, disk)
            disk.crash_after(k)
            try:
                epochs.write_long(d, epochs.CURRENT_EPOCH, 5, disk)
                done = True
            except PowerLoss:
                done = False
            disk.power_fail()
            disk.reboot(mode)
            value = epochs.read_long(d, epochs.CURRENT_EPOCH, disk)
            assert value == 5 or (not done and value == 4), (k, mode, value)
            # Whatever a cut left in currentEpoch.tmp, start-up does not trip on it while the
            # log's epoch is not ahead of currentEpoch.
            assert epochs.load_epochs(d, (4 << 32) + 7, disk) == epochs.Epochs(value, 5)
