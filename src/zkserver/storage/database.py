"""Durable storage as the server uses it: recovery at start-up, then log + snapshots.

Recovery (Apache's FileTxnSnapLog.restore, with firmer rules): load the newest snapshot that
validates (older ones are tried when a newer one does not), then replay every log entry after
its zxid. A bad entry in the newest log file is a torn tail: the file is truncated there and
the loss logged. A bad entry anywhere else would drop acknowledged txns, so start-up stops.
Sessions come from the snapshot and the createSession/closeSession txns after it; ephemeral
nodes of sessions that no longer exist are removed, as Apache's loadData does.

Running: `DiskStorage.append` hands txns to the file log with the tree digest Apache puts in
each entry; after a randomized number of txns (snapCount/2 + rand(snapCount/2)) or bytes it
rolls the log and forks a snapshot writer.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..jute.codes import Op
from ..jute.records import CreateSessionTxn, TxnHeader
from ..tree.datatree import DataTree
from .digest import DIGEST_VERSION, DigestPredictor, tree_digest
from .disk import OS_DISK, Disk, truncate_durably
from .snapshot import SnapFormat, Snapshot, SnapshotTaker, read_snapshot, snapshot_files, write_snapshot
from .txnlog import LOG_PREFIX, FileTxnLog, LogFile, StorageError, sorted_files

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
    """Rebuild the tree and sessions from the data dirs; raise StorageError if we cannot."""
    rec = _load_snapshot(opts, extended_types, disk)
    _replay(opts, rec, disk)
    _drop_orphan_ephemerals(rec)
    rec.tree.events = []
    log.info("Recovered zxid 0x%x: snapshot 0x%x + %d txns, %d sessions, %d znodes",
             rec.tree.last_processed_zxid, rec.snapshot_zxid, rec.replayed, len(rec.sessions),
             len(rec.tree.nodes))
    return rec


def _load_snapshot(opts: StorageOptions, extended_types: bool, disk: Disk) -> Recovered:
    snaps = snapshot_files(opts.snap_dir, disk)
    for zxid, path in snaps[:MAX_SNAPSHOTS_TRIED]:
        try:
            snap = read_snapshot(path, extended_types, disk)
        except StorageError as e:
            log.warning("Skipping invalid snapshot %s: %s", path, e)
            continue
        log.info("Loaded snapshot %s (zxid 0x%x)", path, zxid)
        return Recovered(snap.tree, snap.sessions, zxid, digest=_exact_digest(snap) if opts.digest_enabled else None)
    logs = sorted_files(opts.log_dir, LOG_PREFIX, disk)
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
    tree, sessions = rec.tree, rec.sessions
    last_digest = None
    predictor = DigestPredictor(tree, rec.digest) if rec.digest is not None else None
    for i, (_, path) in enumerate(logs):
        lf = LogFile(path, disk, skip_upto=rec.snapshot_zxid)
        for entry in lf:
            hdr = entry.hdr
            if hdr.zxid <= tree.last_processed_zxid:
                continue
            if predictor is not None and predictor.after(hdr, entry.txn) != _recorded(entry.digest):
                log.info("The digest of txn 0x%x is not the one predicted from the snapshot; the tree "
                         "digest will be computed from the whole tree", hdr.zxid)
                predictor = None
            _apply(tree, sessions, hdr, entry.txn)
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
    """The storage the server runs on: file txn log, snapshots in a child, rolling by count."""

    def __init__(self, opts: StorageOptions, tree: DataTree, sessions: Callable[[], dict[int, int]],
                 on_durable: Callable[[int], None], on_failure: Callable[[BaseException], None] | None = None,
                 rng: random.Random | None = None, disk: Disk = OS_DISK, manual: bool = False,
                 digest: int | None = None):
        """`digest`: the tree's digest if already known (Recovered.digest), saving a full walk."""
        self.opts = opts
        self.disk = disk
        self.tree = tree
        self.sessions = sessions
        self.predictor = DigestPredictor(tree, digest) if opts.digest_enabled else None
        self.log = FileTxnLog(
            opts.log_dir, on_durable, pre_alloc_size=opts.pre_alloc_size_kb * 1024, force_sync=opts.force_sync,
            digest=self.predictor.after if self.predictor else None, on_failure=on_failure, disk=disk,
            manual=manual)
        self.rng = rng or random.Random()
        self.taker: SnapshotTaker | None = None
        self._count = 0
        self._bytes = 0
        self._reset_roll()
        if opts.snapshot_compression not in ("", "gz"):
            log.warning("zookeeper.snapshot.compression.method=%s is not supported; snapshots are written "
                        "uncompressed", opts.snapshot_compression)
        if not opts.force_sync:
            log.warning("forceSync=no: txns are acknowledged before they reach the disk and may be "
                        "lost in a power failure")

    def use_tree(self, tree: DataTree) -> None:
        """Log and snapshot `tree` from now on (a restore): its digest is computed afresh, and
        whoever listened to the old predictor's interval digests hears the new one's."""
        self.tree = tree
        old = self.predictor
        if old is not None:
            self.predictor = DigestPredictor(tree)
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
            path = write_snapshot(self.opts.snap_dir, self.tree, self.sessions(), self.opts.digest_enabled,
                                  disk=self.disk, fmt=self.opts.snap_format)
            log.info("Wrote initial snapshot %s", path)

    def append(self, entries: list[tuple[TxnHeader, object]]) -> None:
        self._bytes += self.log.append(entries)
        self._count += len(entries)
        if self._count > self._roll_at or 0 < self._roll_bytes < self._bytes:
            self._snapshot()

    def _snapshot(self) -> None:
        self.log.roll()
        self._reset_roll()
        if self.taker is None:
            return
        if self.taker.busy:
            log.warning("Too busy to snap, skipping")  # as Apache: the log still rolls
            return
        self.taker.take(self.tree, self.sessions())

    def close(self) -> None:
        if getattr(self, "_purge_timer", None) is not None:
            self._purge_timer.cancel()
        self.log.close()
        if self.taker is not None:
            self.taker.wait()
