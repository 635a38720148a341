"""Rewriting a member's history on disk: truncation (Zab TRUNC) and installing a snapshot (SNAP).

Theory of operation. Each rewrite changes several files (log files cut or removed, snapshots
removed, a snapshot published) and no file system changes several names at once, so each is
made atomic by an intent file, `zkserver.rewrite` in the snapshot directory:
- everything the new state needs is made durable first (the log files it keeps are fsynced; an
  installed snapshot is written and fsynced under its temp name);
- the intent is written durably (temp, fsync, rename, directory fsync). Until then no file of
  the old state has changed, so a crash leaves the old state;
- once the intent is durable the rewrite is decided: its steps run, the directories are
  fsynced, and the intent is removed durably. A crash in between leaves the intent, and
  recovery (`finish_pending`, the first thing `database.recover` does) runs the steps again:
  each can run any number of times with the same result. So recovery sees the new state.

truncate <zxid>: cut the log file holding the last txns up to zxid after them, remove every
later log file and every snapshot newer than zxid (they hold txns being removed).

install <zxid> <temp> <name>: remove every log file (their entries, perhaps of a diverged
history, must never be replayed on top of the snapshot) and every other snapshot (an older one
would meet a gap in the log), then rename the temp file to its snapshot name.

Apache ignores the intent file (its name matches neither log. nor snapshot.); a directory left
in the middle of a rewrite needs our recovery to finish it.
"""

from __future__ import annotations

import logging
import os

from ..tree.datatree import DataTree
from .disk import Disk, replace_durably, truncate_durably
from .snapshot import SnapFormat, snapshot_files, snapshot_name, write_snapshot_temp
from .txnlog import LOG_PREFIX, LogFile, StorageError, sorted_files

log = logging.getLogger("zkserver.storage.rewrite")

INTENT = "zkserver.rewrite"


def finish_pending(snap_dir: str, log_dir: str, disk: Disk) -> str | None:
    """Finish a rewrite a crash interrupted after it was decided; say which, or None."""
    path = os.path.join(snap_dir, INTENT)
    try:
        text = disk.read_file(path)
    except FileNotFoundError:
        return None
    words = text.decode("ascii", "replace").split()
    if len(words) == 2 and words[0] == "truncate":
        log.warning("Finishing the truncation of the txn log to 0x%s that was interrupted", words[1])
        _truncate(snap_dir, log_dir, _zxid(words[1], path), disk)
    elif len(words) == 4 and words[0] == "install":
        log.warning("Finishing the installation of snapshot %s that was interrupted", words[3])
        _install(snap_dir, log_dir, words[2], words[3], disk)
    else:
        raise StorageError(f"{path} does not name a rewrite: {text[:80]!r}")
    _done(path, disk)
    return " ".join(words)


def truncate_files(snap_dir: str, log_dir: str, zxid: int, disk: Disk) -> None:
    """Remove every txn after `zxid` from the logs, and every snapshot newer than it."""
    for start, path in sorted_files(log_dir, LOG_PREFIX, disk):
        if start <= zxid:  # what stays must be durable before anything goes
            fd = disk.open_existing(path)
            try:
                disk.fsync(fd)
            finally:
                disk.close(fd)
    path = os.path.join(snap_dir, INTENT)
    replace_durably(disk, path, f"truncate {zxid:x}\n".encode())
    _truncate(snap_dir, log_dir, zxid, disk)
    _done(path, disk)


def install_files(snap_dir: str, log_dir: str, tree: DataTree, sessions: dict[int, int], fmt: SnapFormat,
                  disk: Disk) -> str:
    """Make snapshot.<tree zxid> the whole history; return its path."""
    tmp = write_snapshot_temp(snap_dir, tree, sessions, disk, fmt)
    name = snapshot_name(tree.last_processed_zxid) + fmt.suffix
    path = os.path.join(snap_dir, INTENT)
    replace_durably(disk, path, f"install {tree.last_processed_zxid:x} {os.path.basename(tmp)} {name}\n".encode())
    _install(snap_dir, log_dir, os.path.basename(tmp), name, disk)
    _done(path, disk)
    return os.path.join(snap_dir, name)


def _zxid(word: str, path: str) -> int:
    try:
        return int(word, 16)
    except ValueError:
        raise StorageError(f"{path} names no zxid: {word!r}") from None


def _truncate(snap_dir: str, log_dir: str, zxid: int, disk: Disk) -> None:
    logs = sorted_files(log_dir, LOG_PREFIX, disk)
    for start, path in reversed(logs):
        if start > zxid:
            log.info("Removing txn log %s: it starts after 0x%x", path, zxid)
            disk.unlink(path)
    kept = [path for start, path in logs if start <= zxid]
    if kept:
        _cut_after(kept[-1], zxid, disk)
    for snap_zxid, path in snapshot_files(snap_dir, disk):
        if snap_zxid > zxid:
            log.info("Removing snapshot %s: it holds txns after 0x%x", path, zxid)
            disk.unlink(path)
    _sync_dirs(snap_dir, log_dir, disk)


def _cut_after(path: str, zxid: int, disk: Disk) -> None:
    """Cut the log file before its first entry after `zxid` (or before a bad entry)."""
    lf = LogFile(path, disk, skip_upto=zxid)
    cut = next((entry.offset for entry in lf), None)
    if cut is None and not lf.bad_header and (lf.problem is not None or not lf.blank_after(lf.end)):
        cut = lf.end
    if cut is not None:
        log.info("Truncating txn log %s at offset %d, after 0x%x", path, cut, zxid)
        truncate_durably(disk, path, cut)


def _install(snap_dir: str, log_dir: str, tmp: str, name: str, disk: Disk) -> None:
    for _, path in sorted_files(log_dir, LOG_PREFIX, disk):
        disk.unlink(path)
    if log_dir != snap_dir:
        disk.fsync_dir(log_dir)
    for _, path in snapshot_files(snap_dir, disk):
        if os.path.basename(path) != name:
            disk.unlink(path)
    names = set(disk.listdir(snap_dir))
    if tmp in names:
        disk.rename(os.path.join(snap_dir, tmp), os.path.join(snap_dir, name))
    elif name not in names:
        raise StorageError(f"installing snapshot {name}: neither it nor its temp file {tmp} is in {snap_dir}")
    disk.fsync_dir(snap_dir)


def _sync_dirs(snap_dir: str, log_dir: str, disk: Disk) -> None:
    disk.fsync_dir(log_dir)
    if snap_dir != log_dir:
        disk.fsync_dir(snap_dir)


def _done(path: str, disk: Disk) -> None:
    disk.unlink(path)
    disk.fsync_dir(os.path.dirname(path))
