"""Removing old snapshots and txn logs (Apache's PurgeTxnLog and DatadirCleanupManager).

Keep the newest `retain` snapshots; keep every log that may hold txns after the oldest of
them, which includes the last log starting at or before its zxid (that log holds the txns
right after the snapshot). Everything older goes.
"""

from __future__ import annotations

import contextlib
import logging
import os

from .snapshot import SNAP_PREFIX, TMP_PREFIX, snapshot_files
from .txnlog import LOG_PREFIX, sorted_files

log = logging.getLogger("zkserver.storage.purge")

MIN_RETAIN = 3


def files_to_purge(snap_dir: str, log_dir: str, retain: int) -> list[str]:
    """The paths purge would delete (oldest first)."""
    if retain < MIN_RETAIN:
        raise ValueError(f"snapRetainCount must be at least {MIN_RETAIN}, not {retain}")
    snaps = snapshot_files(snap_dir)  # newest first
    if len(snaps) <= retain:
        return []
    oldest_kept = snaps[retain - 1][0]
    logs = sorted_files(log_dir, LOG_PREFIX)
    # The newest log starting at or before the oldest kept snapshot must stay.
    keep_from = max((z for z, _ in logs if z <= oldest_kept), default=0)
    doomed = [p for z, p in logs if z < keep_from]
    doomed += [p for z, p in sorted(snaps) if z < oldest_kept]
    return doomed


def purge(snap_dir: str, log_dir: str, retain: int) -> list[str]:
    """Delete what `files_to_purge` names, plus stale snapshot temp files; return the paths."""
    doomed = files_to_purge(snap_dir, log_dir, retain)
    doomed += _stale_temps(snap_dir)
    for path in doomed:
        log.info("Removing file: %s", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return doomed


def _stale_temps(snap_dir: str) -> list[str]:
    """Temp files of snapshot writers that died (their pid no longer runs)."""
    stale = []
    for name in os.listdir(snap_dir) if os.path.isdir(snap_dir) else ():
        if not name.startswith(TMP_PREFIX):
            continue
        pid = name.rsplit(".", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            stale.append(os.path.join(snap_dir, name))
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["MIN_RETAIN", "SNAP_PREFIX", "files_to_purge", "purge"]
