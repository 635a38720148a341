"""Durable storage as the server uses it: recovery at start-up, then log + snapshots.

Recovery (Apache's FileTxnSnapLog.restore, with firmer rules): load the newest snapshot that
validates (older ones are tried when a newer one does not), then replay every log entry after
its zxid. A bad entry in the newest log file is a torn tail: the file is truncated there and
the loss logged. A bad entry anywhere else would drop acknowledged txns, so start-up stops.
Sessions come from the snapshot and the createSession/closeSession txns after it; ephemeral
nodes of sessions that no longer exist are removed, as Apache's loadData does.

Running: `DiskStorage.append` hands txns to the file log with the tree digest Apache puts in
each entry (or the one the leader sent with it); after a randomized number of txns
(snapCount/2 + rand(snapCount/2)) or bytes it rolls the log and writes a snapshot, in a forked
child or, for the simulator, on the caller's thread. An ensemble member also rewrites its
history: `truncate` (Zab TRUNC) and `install_snapshot` (SNAP), both crash-atomic (rewrite.py).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..jute.codes import Op
from ..jute.records import CreateSessionTxn, TxnHeader
from ..tree.datatree import DataTree
from .committed import COMMIT_LOG_COUNT, CommittedLog, Proposal, proposals_from_txn_log
from .digest import DIGEST_VERSION, DigestPredictor, tree_digest
from .disk import OS_DISK, Disk, truncate_durably
from .epochs import CURRENT_EPOCH, Epochs, load_epochs, read_long, read_pending_current_epoch, write_long
from .rewrite import finish_pending, install_files, truncate_files
from .snapshot import (
    SnapFormat,
    Snapshot,
    SnapshotTaker,
    read_snapshot,
    snapshot_files,
    snapshot_name,
    write_snapshot,
)
from .snapstream import encode_snapshot_stream
from .txnlog import ENTRY_OVERHEAD, LOG_PREFIX, FileTxnLog, LogFile, StorageError, sorted_files

log = logging.getLogger("zkserver.storage")

VERSION_DIR = "version-2"
MAX_SNAPSHOTS_TRIED = 100  # as Apache's FileSnap.deserialize


@dataclass
class StorageOptions:
    data_dir: str
    data_log_dir: str = ""
    snap_count: int = 100000
    snap_size_limit_kb: int = 4194304
    pre_alloc_size_kb: int = 65536
    force_sync: bool = True
    digest_enabled: bool = True
    snapshot_compression: str = ""  # zookeeper.snapshot.compression.method: "" or "gz"
    serialize_last_processed_zxid: bool = True  # zookeeper.serializeLastProcessedZxid.enabled
    autopurge_snap_retain_count: int = 3
    autopurge_purge_interval: int = 0  # hours; 0 disables
    commit_log_count: int = COMMIT_LOG_COUNT  # zookeeper.commitLogCount
    autocreate_dirs: bool = True  # zookeeper.datadir.autocreate

    @property
    def snap_dir(self) -> str:
        return os.path.join(self.data_dir, VERSION_DIR)

    @property
    def log_dir(self) -> str:
        return os.path.join(self.data_log_dir or self.data_dir, VERSION_DIR)

    @property
    def snap_format(self) -> SnapFormat:
        gz = "gz" if self.snapshot_compression == "gz" else ""
        return SnapFormat(self.digest_enabled, gz, self.serialize_last_processed_zxid)


@dataclass
class Recovered:
    tree: DataTree
    sessions: dict[int, int]
    snapshot_zxid: int
    replayed: int = 0
    truncated: list[str] = field(default_factory=list)
    digest_checked: bool | None = None  # None: no digest to compare with
    digest: int | None = None  # the recovered tree's digest, when recovery computed it
    # The zxid the snapshot and the whole log replay reach, uncommitted tail included (Apache's
    # getLastLoggedZxid: what a member votes with).
    last_logged_zxid: int = 0
    # The last commitLogCount(+1) txns replayed, as Apache's loadDataBase fills committedLog.
    committed: CommittedLog = field(default_factory=CommittedLog)


# ---------------------------------------------------------------- directories


def prepare_dirs(opts: StorageOptions) -> None:
    """Create the version-2 dirs if missing (Apache's default) and prove we can write there."""
    for d in {opts.snap_dir, opts.log_dir}:
        if not opts.autocreate_dirs and not os.path.exists(d):
            raise StorageError(f"Missing data directory {d}, automatic data directory creation is disabled"
                               " (zookeeper.datadir.autocreate is false). Please create this directory manually.")
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create data directory {d}: {e.strerror}") from None
        if not os.path.isdir(d):
            raise StorageError(f"{d} is not a directory")
        probe = os.path.join(d, f".zkserver-write-test.{os.getpid()}")
        try:
            with open(probe, "wb") as f:
                f.write(b"x")
            os.unlink(probe)
        except OSError as e:
            raise StorageError(f"data directory {d} is not writable: {e.strerror}") from None


# ---------------------------------------------------------------- recovery


def recover(opts: StorageOptions, extended_types: bool = False, disk: Disk = OS_DISK) -> Recovered:
    """Rebuild the tree and sessions from the data dirs; raise StorageError if we cannot. A
    truncation or snapshot installation a crash interrupted is finished first."""
    finish_pending(opts.snap_dir, opts.log_dir, disk)
    rec = _rebuild(opts, _load_snapshot(opts, extended_types, disk), disk)
    _make_replayed_durable(opts, rec.snapshot_zxid, disk)
    return rec


def recover_member(opts: StorageOptions, extended_types: bool = False,
                   disk: Disk = OS_DISK) -> tuple[Recovered, Epochs]:
    """Recovery for an ensemble member: `recover`, then its epoch files by Apache's start-up
    rules - after one repair. A learner logs the txns of its catch-up, waits until they are
    durable, and only then writes currentEpoch (ZOOKEEPER-4643); a crash between the two leaves
    txns of an epoch newer than currentEpoch, where Apache refuses to start ("The current
    epoch ... is older than the last zxid"). This member never acknowledged that epoch's
    NEWLEADER nor any of those txns, so no quorum counted it for them: the log is cut back to
    the last txn of an acknowledged epoch (the leader sends them again). What a SNAP installed
    is kept: a leader's snapshot holds committed txns only, and currentEpoch follows it."""
    rec = recover(opts, extended_types, disk)
    current = read_long(opts.snap_dir, CURRENT_EPOCH, disk)
    pending_write = read_pending_current_epoch(opts.snap_dir, disk) is not None
    if current is not None and not pending_write and rec.last_logged_zxid >> 32 > current:
        keep = max(_last_zxid_of_epoch(opts, current, disk), rec.snapshot_zxid)
        if keep < rec.last_logged_zxid:
            log.warning("The txn log holds txns of epoch %d up to 0x%x but currentEpoch is %d: they came with a "
                        "sync that was never acknowledged; cutting the log back to 0x%x",
                        rec.last_logged_zxid >> 32, rec.last_logged_zxid, current, keep)
            rec = truncate_history(opts, keep, extended_types, disk)
        if rec.last_logged_zxid >> 32 > current:
            write_long(opts.snap_dir, CURRENT_EPOCH, rec.last_logged_zxid >> 32, disk)
    return rec, load_epochs(opts.snap_dir, rec.last_logged_zxid, disk)


def _last_zxid_of_epoch(opts: StorageOptions, epoch: int, disk: Disk) -> int:
    """The last txn in the logs whose epoch is `epoch` or older (0: none)."""
    last = 0
    for _, path in sorted_files(opts.log_dir, LOG_PREFIX, disk):
        for zxid, _body in LogFile(path, disk).proposals():
            if zxid >> 32 <= epoch:
                last = max(last, zxid)
    return last


def _make_replayed_durable(opts: StorageOptions, snapshot_zxid: int, disk: Disk) -> None:
    """fsync the log files recovery replayed: after a process crash they may still hold
    entries only the page cache has, and what was replayed is served as committed, so a later
    power cut must not take it from under newer, durable txns. (Apache takes a snapshot after
    loading, ZooKeeperServer.loadData, to the same end.)"""
    for _, path in logs_needed(sorted_files(opts.log_dir, LOG_PREFIX, disk), snapshot_zxid):
        fd = disk.open_existing(path)
        try:
            disk.fsync(fd)
        finally:
            disk.close(fd)
    disk.fsync_dir(opts.log_dir)


def truncate_history(opts: StorageOptions, zxid: int, extended_types: bool = False,
                     disk: Disk = OS_DISK) -> Recovered:
    """Make the history in the data dirs end at `zxid` (Zab TRUNC): every txn after it leaves
    the logs and every snapshot newer than it goes, durably and crash-atomically; then rebuild
    the state from what is left, as recovery does. For a data dir no server has open; a running
    member calls DiskStorage.truncate. Raises StorageError, changing nothing, when no snapshot at
    or below `zxid` loads and the logs cannot rebuild the state from the first txn."""
    finish_pending(opts.snap_dir, opts.log_dir, disk)
    try:
        rec = _load_snapshot(opts, extended_types, disk, upto=zxid)
    except StorageError as e:
        raise StorageError(f"cannot truncate the txn log to 0x{zxid:x}: {e}") from None
    truncate_files(opts.snap_dir, opts.log_dir, zxid, disk)
    return _rebuild(opts, rec, disk)


def _rebuild(opts: StorageOptions, rec: Recovered, disk: Disk) -> Recovered:
    """Replay the log on the loaded snapshot and tidy up, as recovery does."""
    rec.committed = CommittedLog(opts.commit_log_count)
    _replay(opts, rec, disk)
    rec.last_logged_zxid = rec.tree.last_processed_zxid
    _drop_orphan_ephemerals(rec)
    rec.tree.events = []
    log.info("Recovered zxid 0x%x: snapshot 0x%x + %d txns, %d sessions, %d znodes",
             rec.tree.last_processed_zxid, rec.snapshot_zxid, rec.replayed, len(rec.sessions),
             len(rec.tree.nodes))
    return rec


def _load_snapshot(opts: StorageOptions, extended_types: bool, disk: Disk, upto: int | None = None) -> Recovered:
    """The newest snapshot that loads (of those at or below `upto`, when given: the state a
    truncation will leave), or the empty tree when the logs hold the whole history."""
    snaps = snapshot_files(opts.snap_dir, disk)
    logs = sorted_files(opts.log_dir, LOG_PREFIX, disk)
    newer = []
    if upto is not None:
        newer = [s for s in snaps if s[0] > upto]
        snaps = [s for s in snaps if s[0] <= upto]
        logs = [f for f in logs if f[0] <= upto]
    for zxid, path in snaps[:MAX_SNAPSHOTS_TRIED]:
        try:
            snap = read_snapshot(path, extended_types, disk)
        except StorageError as e:
            log.warning("Skipping invalid snapshot %s: %s", path, e)
            continue
        log.info("Loaded snapshot %s (zxid 0x%x)", path, zxid)
        return Recovered(snap.tree, snap.sessions, zxid, digest=_exact_digest(snap) if opts.digest_enabled else None)
    if newer and not logs:
        raise StorageError(f"no snapshot at or below 0x{upto:x} in {opts.snap_dir} and no txn log "
                           f"in {opts.log_dir} to rebuild the state at it from")
    if snaps and (not logs or logs[0][0] > 1):
        raise StorageError(f"no valid snapshot among {len(snaps)} in {opts.snap_dir}, and the txn logs in "
                           f"{opts.log_dir} do not start at zxid 1; cannot rebuild the data tree")
    if logs and logs[0][0] > 1:
        raise StorageError(f"no snapshot in {opts.snap_dir} but txn logs start at zxid 0x{logs[0][0]:x}: "
                           "the data directory is incomplete")
    if snaps:
        log.warning("No valid snapshot; rebuilding from the txn logs from zxid 1")
    tree = DataTree(extended_types=extended_types)
    return Recovered(tree, {}, 0, digest=tree_digest(tree) if opts.digest_enabled else None)


def _exact_digest(snap: Snapshot) -> int | None:
    """The loaded tree's digest, if the snapshot recorded it for exactly the state it holds.
    A snapshot's ZxidDigest is the digest after the last txn applied when its writer finished;
    when that zxid is the one the file is named after, no txn was applied while it was written.
    Ours always qualify: a forked child writes a tree that does not change under it."""
    recorded = snap.digest
    if recorded is not None and recorded[0] == snap.zxid > 0 and recorded[1] == DIGEST_VERSION:
        return recorded[2]
    return None


def logs_needed(logs: list[tuple[int, str]], zxid: int) -> list[tuple[int, str]]:
    """The log files that may hold txns after `zxid`: the last one starting at or before it,
    and every later one (Apache's FileTxnLog.getLogFiles)."""
    start = 0
    for i, (first, _) in enumerate(logs):
        if first <= zxid:
            start = i
    return logs[start:]


def _replay(opts: StorageOptions, rec: Recovered, disk: Disk) -> None:
    """Apply the log after the snapshot. The digest of the loaded tree (rec.digest), when known,
    is carried through the replay by predicting each txn's digest, as the running server does,
    as long as every prediction equals the digest the entry recorded. Otherwise (a fuzzy
    snapshot of Apache's, entries without digests) the tree is walked once at the end: a
    million znodes take about a second."""
    logs = logs_needed(sorted_files(opts.log_dir, LOG_PREFIX, disk), rec.snapshot_zxid)
    tree, sessions, committed = rec.tree, rec.sessions, rec.committed
    last_digest = None
    predictor = DigestPredictor(tree, rec.digest) if rec.digest is not None else None
    for i, (_, path) in enumerate(logs):
        lf = LogFile(path, disk, skip_upto=rec.snapshot_zxid)
        for entry in lf:
            hdr = entry.hdr
            last = tree.last_processed_zxid
            if hdr.zxid <= last:
                continue
            if hdr.zxid >> 32 == last >> 32 and hdr.zxid != last + 1 and last:
                raise StorageError(f"txn log {path} jumps from zxid 0x{last:x} to 0x{hdr.zxid:x} within an epoch: "
                                   "txns are missing; refusing to start. Restore the missing log file.")
            if predictor is not None and predictor.after(hdr, entry.txn) != _recorded(entry.digest):
                log.info("The digest of txn 0x%x is not the one predicted from the snapshot; the tree "
                         "digest will be computed from the whole tree", hdr.zxid)
                predictor = None
            _apply(tree, sessions, hdr, entry.txn)
            committed.add_encoded(hdr.zxid, bytes(entry.body))
            rec.replayed += 1
            last_digest = entry.digest
        if lf.problem is None and not lf.blank_after(lf.end) and not _any_entries(logs[i + 1:], disk):
            # A clean end (a zero length) with bytes after it, in the newest log: a power cut
            # kept some pages of the unsynced tail and lost others. Cut them off, so that no
            # later write can make them readable again.
            lf.problem = f"non-zero bytes after the last entry at offset {lf.end}"
        if lf.problem is not None:
            _torn(lf, logs[i + 1:], rec, disk)
            break
    if predictor is not None:
        rec.digest = predictor.digest
        rec.digest_checked = True if rec.replayed else None
        return
    rec.digest = None
    recorded = _recorded(last_digest)
    if recorded is not None and opts.digest_enabled:
        ours = rec.digest = tree_digest(tree)
        rec.digest_checked = ours == recorded
        if not rec.digest_checked:
            log.warning("Tree digest after replay is %d but the log recorded %d at zxid 0x%x",
                        ours, recorded, tree.last_processed_zxid)


def _recorded(digest: tuple[int, int] | None) -> int | None:
    """The tree digest an entry recorded, if in the version we compute."""
    return digest[1] if digest is not None and digest[0] == DIGEST_VERSION else None


def _apply(tree: DataTree, sessions: dict[int, int], hdr: TxnHeader, txn: object) -> None:
    if hdr.type == Op.CREATE_SESSION and isinstance(txn, CreateSessionTxn):
        sessions[hdr.client_id] = txn.timeout
    elif hdr.type == Op.CLOSE_SESSION:
        sessions.pop(hdr.client_id, None)
    tree.apply(hdr, txn)


def _torn(lf: LogFile, later: list[tuple[int, str]], rec: Recovered, disk: Disk) -> None:
    """A bad entry: truncate a torn tail; refuse to drop anything that follows it."""
    later_with_entries = [p for _, p in later if _has_entries(p, disk)]
    if later_with_entries:
        raise StorageError(f"txn log {lf.path} is corrupt ({lf.problem}) but later logs "
                           f"{', '.join(later_with_entries)} hold more txns; refusing to start. "
                           "Restore the file or remove the data after it with care.")
    lost = len(lf.data) - lf.end
    nonzero = not lf.blank_after(lf.end)
    if lf.bad_header:
        log.warning("Removing txn log %s: %s", lf.path, lf.problem)
        disk.unlink(lf.path)
    else:
        log.warning("Truncating torn tail of txn log %s at offset %d (%s; %d bytes dropped%s)",
                    lf.path, lf.end, lf.problem, lost, ", not all zero" if nonzero else "")
        truncate_durably(disk, lf.path, lf.end)
    for _, p in later:
        log.warning("Removing empty txn log %s after the torn tail", p)
        disk.unlink(p)
    disk.fsync_dir(os.path.dirname(lf.path))
    rec.truncated.append(lf.path)


def _has_entries(path: str, disk: Disk) -> bool:
    lf = LogFile(path, disk)
    return any(True for _ in lf)


def _any_entries(logs: list[tuple[int, str]], disk: Disk) -> bool:
    return any(_has_entries(p, disk) for _, p in logs)


def _drop_orphan_ephemerals(rec: Recovered) -> None:
    tree = rec.tree
    for sid in [s for s in tree.ephemerals if s not in rec.sessions]:
        tree.kill_session(sid, tree.last_processed_zxid, None)
        rec.digest = None


# ---------------------------------------------------------------- running


class DiskStorage:
    """The storage a member runs on: file txn log, snapshots (in a child, or inline), rolling by
    count; truncation and snapshot installation for Zab's TRUNC and SNAP."""

    def __init__(self, opts: StorageOptions, tree: DataTree, sessions: Callable[[], dict[int, int]],
                 on_durable: Callable[[int], None], on_failure: Callable[[BaseException], None] | None = None,
                 rng: random.Random | None = None, disk: Disk = OS_DISK, manual: bool = False,
                 digest: int | None = None, inline_snapshots: bool = False):
        """`digest`: the tree's digest if already known (Recovered.digest), saving a full walk.
        `inline_snapshots`: write the periodic snapshots on the caller's thread through the Disk
        (the simulator, which cannot fork) instead of in a forked child."""
        self.opts = opts
        self.disk = disk
        self.tree = tree
        self.sessions = sessions
        self.predictor = DigestPredictor(tree, digest) if opts.digest_enabled else None
        self.log = FileTxnLog(
            opts.log_dir, on_durable, pre_alloc_size=opts.pre_alloc_size_kb * 1024, force_sync=opts.force_sync,
            digest=self.predictor.after if self.predictor else None, on_failure=on_failure, disk=disk,
            manual=manual)
        self.log.last_zxid = tree.last_processed_zxid
        self.rng = rng or random.Random()
        self.taker: SnapshotTaker | None = None
        self.inline_snapshots = inline_snapshots
        self.digest_mismatches = 0  # digests a leader sent that differ from ours (digest_mismatches_count)
        self.on_digest_mismatch: Callable[[], None] | None = None  # the operator's counter
        self._count = 0
        self._bytes = 0
        self._reset_roll()
        if opts.snapshot_compression not in ("", "gz"):
            log.warning("zookeeper.snapshot.compression.method=%s is not supported; snapshots are written "
                        "uncompressed", opts.snapshot_compression)
        if not opts.force_sync:
            log.warning("forceSync=no: txns are acknowledged before they reach the disk and may be "
                        "lost in a power failure")

    @property
    def last_logged_zxid(self) -> int:
        """The zxid the log's history ends at: the last txn appended, or where a truncation or an
        installed snapshot left it (at start-up, Recovered.last_logged_zxid)."""
        return self.log.last_zxid

    def use_tree(self, tree: DataTree, digest: int | None = None) -> None:
        """Log and snapshot `tree` from now on (a restore, a rewrite): its digest is `digest` or
        computed afresh, and whoever listened to the old predictor's interval digests hears the
        new one's."""
        self.tree = tree
        old = self.predictor
        if old is not None:
            self.predictor = DigestPredictor(tree, digest)
            self.predictor.on_interval = old.on_interval
            self.log.digest = self.predictor.after

    def _reset_roll(self) -> None:
        half = max(self.opts.snap_count // 2, 1)
        self._roll_at = half + self.rng.randrange(half)
        size_half = self.opts.snap_size_limit_kb * 1024 // 2
        self._roll_bytes = size_half + self.rng.randrange(size_half) if size_half > 0 else -1
        self._count = 0
        self._bytes = 0

    def start(self, loop) -> None:  # loop: asyncio.AbstractEventLoop
        self.taker = SnapshotTaker(self.opts.snap_dir, loop.add_reader, loop.remove_reader,
                                   self.opts.digest_enabled, fmt=self.opts.snap_format)
        self.log.start(loop.call_soon, loop.add_reader, loop.remove_reader)
        self._loop = loop
        if self.opts.autopurge_purge_interval > 0:
            self._schedule_purge()

    def _schedule_purge(self) -> None:
        self._purge_timer = self._loop.call_later(self.opts.autopurge_purge_interval * 3600, self._autopurge)

    def _autopurge(self) -> None:
        # Deleting files can block on a slow disk: do it off the loop, as Apache's PurgeTask thread.
        from .purge import purge

        o = self.opts
        self._loop.run_in_executor(None, purge, o.snap_dir, o.log_dir, max(o.autopurge_snap_retain_count, 3))
        self._schedule_purge()

    def ensure_initial_snapshot(self) -> None:
        """Apache writes snapshot.0 on an empty data dir and refuses logs without a snapshot;
        so do we, so that Apache can open a data dir we started."""
        if not snapshot_files(self.opts.snap_dir, self.disk):
            log.info("Wrote initial snapshot %s", self._write_snapshot())

    def append(self, entries: list[tuple[TxnHeader, object]],
               digests: list[tuple[int, int] | None] | None = None) -> list[bytes]:
        """Log `entries` (pairs of TxnHeader and txn record, in zxid order); return each one's
        bytes as written (a leader proposes exactly those). `digests`: the (version, tree
        digest) a leader sent with each (None: none), written instead of ours, as Apache's
        follower logs them. Ours are still predicted, since they follow the writes in flight,
        and each that differs counts in `digest_mismatches`, with a warning: not fatal, as in
        Apache 3.8."""
        if digests is not None and self.predictor is not None and self.log.failed is None:
            self._compare_digests(entries, digests)
        bodies = self.log.append(entries, digests)
        self._bytes += sum(map(len, bodies)) + ENTRY_OVERHEAD * len(bodies)
        self._count += len(entries)
        if self._count > self._roll_at or 0 < self._roll_bytes < self._bytes:
            self._snapshot()
        return bodies

    def _compare_digests(self, entries: list[tuple[TxnHeader, object]],
                         digests: list[tuple[int, int] | None]) -> None:
        assert self.predictor is not None
        after = self.predictor.after
        for (hdr, txn), given in zip(entries, digests, strict=True):
            ours = after(hdr, txn)
            if given is None or ours is None or given[0] != DIGEST_VERSION or given[1] == ours:
                continue
            self.digest_mismatches += 1
            if self.on_digest_mismatch is not None:
                self.on_digest_mismatch()
            # Warn at the 1st, 2nd, 4th, 8th...: a diverged member must not flood the log.
            if self.digest_mismatches & (self.digest_mismatches - 1) == 0:
                log.warning("Digest mismatch at zxid 0x%x: the leader's tree digest is %d, ours %d (%d mismatches "
                            "so far)", hdr.zxid, given[1], ours, self.digest_mismatches)

    def snapshot_now(self) -> str:
        """Roll the log and write snapshot.<tree zxid> through the Disk on this thread (the
        simulator cannot fork); return its path."""
        self.log.roll()
        self._reset_roll()
        return self._write_snapshot()

    def _write_snapshot(self) -> str:
        return write_snapshot(self.opts.snap_dir, self.tree, self.sessions(), self.opts.digest_enabled,
                              disk=self.disk, fmt=self.opts.snap_format)

    def _snapshot(self) -> None:
        self.log.roll()
        self._reset_roll()
        if self.inline_snapshots:
            try:
                self._write_snapshot()
            except OSError as e:  # as when a forked writer fails: logged, the member goes on
                log.error("Writing snapshot %s failed: %s", snapshot_name(self.tree.last_processed_zxid), e)
            return
        if self.taker is None:
            return
        if self.taker.busy:
            log.warning("Too busy to snap, skipping")  # as Apache: the log still rolls
            return
        self.taker.take(self.tree, self.sessions())

    # ------------------------------------------------------------ what Zab asks of a member's storage

    def write_epoch(self, name: str, value: int) -> None:
        """acceptedEpoch or currentEpoch, durably before this returns (QuorumPeer.writeLongToFile)."""
        write_long(self.opts.snap_dir, name, value, self.disk)

    def snapshot_stream(self, tree: DataTree, sessions: dict[int, int]) -> bytes:
        """The database as a leader streams it after SNAP."""
        return encode_snapshot_stream(tree, sessions)

    def txn_log_from(self, zxid: int, size_factor: float) -> Iterator[Proposal]:
        """What a leader may send from its txn log to a learner at `zxid`, read lazily
        (committed.proposals_from_txn_log)."""
        return proposals_from_txn_log(self.opts.snap_dir, self.opts.log_dir, zxid, size_factor, self.disk)

    # ------------------------------------------------------------ rewriting the history

    def truncate(self, zxid: int) -> Recovered:
        """Zab TRUNC: make the history end at `zxid` (truncate_history) and go on from the state
        rebuilt from disk: this storage logs and snapshots the returned tree from now on, and the
        caller's core takes it with the returned sessions (and committed log). Its zxid is that
        of the last txn kept; Apache then sets lastProcessedZxid to `zxid` itself. The next
        append starts a new log file. StorageError when it cannot be done; an I/O error on the
        way also stops the log for good (the member must stop, as Apache exits with 13)."""
        self._quiesce()
        try:  # it fsyncs the entries that stay, those of the open file included
            rec = truncate_history(self.opts, zxid, self.tree.extended_types, self.disk)
        except OSError as e:
            self.log.fail(e)
            raise StorageError(f"truncating the txn log to 0x{zxid:x} failed: {e}") from e
        self._restart(rec.tree, rec.last_logged_zxid, rec.digest)
        return rec

    def install_snapshot(self, tree: DataTree, sessions: dict[int, int], zxid: int) -> str:
        """Zab SNAP: from now on the member's history is `tree` and `sessions` at `zxid`. The
        snapshot is durable before this returns, every old log entry and snapshot is gone (none
        may be replayed on top of it), later appends go to a new log file, and the digest
        predictor starts from this tree. Crash-atomic (rewrite.py). The caller's core takes the
        same tree and sessions. Returns the snapshot's path."""
        self._quiesce()
        tree.last_processed_zxid = zxid
        try:
            path = install_files(self.opts.snap_dir, self.opts.log_dir, tree, sessions, self.opts.snap_format,
                                 self.disk)
        except OSError as e:
            self.log.fail(e)
            raise StorageError(f"installing the snapshot at 0x{zxid:x} failed: {e}") from e
        log.info("Installed snapshot %s: %d znodes, %d sessions", path, len(tree.nodes), len(sessions))
        self._restart(tree, zxid, None)
        return path

    def _quiesce(self) -> None:
        """No snapshot of the old history may be published after a rewrite: wait for the one being
        written. A failed log stays failed."""
        if self.taker is not None:
            self.taker.wait()
        if self.log.failed is not None:
            raise StorageError(f"the txn log failed earlier ({self.log.failed}); the history cannot change")

    def _restart(self, tree: DataTree, zxid: int, digest: int | None) -> None:
        self.use_tree(tree, digest)
        self.log.restart_at(zxid)
        self._reset_roll()

    def close(self) -> None:
        if getattr(self, "_purge_timer", None) is not None:
            self._purge_timer.cancel()
        self.log.close()
        if self.taker is not None:
            self.taker.wait()
