"""A stopped member's data dir, read into the checkers' MemberState with zkserver's own readers.

What a member holds is what it would recover: `storage.database.recover` (the newest snapshot
that loads, then every log entry after it) gives its tree, its live sessions and the tree
digest. It runs on a copy of the data dir, because recovery may repair (cut a torn tail,
finish an interrupted rewrite) and the original stays as the member left it, for whoever
reads a failure.

Its committed history is every entry of its txn logs (storage.txnlog.LogFile), in file
order, each zxid above the one before (recovery's own rule). The history is complete from
zxid 0 when the data dir still holds snapshot.0: a SNAP installation removes every other
snapshot and every log, and a TRUNC only cuts logs, so with snapshot.0 present the logs hold
the member's history from its first txn. Otherwise it is complete from its oldest snapshot.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from zkserver.sim.checkers import MemberState
from zkserver.sim.checkers.observe import tree_view
from zkserver.storage.database import VERSION_DIR, StorageOptions, recover
from zkserver.storage.digest import tree_digest
from zkserver.storage.snapshot import snapshot_files
from zkserver.storage.txnlog import LOG_PREFIX, LogFile, sorted_files


@dataclass
class DiskReading:
    state: MemberState
    notes: list[str] = field(default_factory=list)  # what recovery had to repair, log problems


def read_member(sid: int, data_dir: Path, *, live: bool = True) -> DiskReading:
    """Member `sid`'s MemberState from its (stopped) data dir."""
    with tempfile.TemporaryDirectory(prefix=f"m{sid}-") as scratch:
        copy = Path(scratch) / "data"
        shutil.copytree(data_dir, copy)
        rec = recover(StorageOptions(data_dir=str(copy)))
        notes = [f"recovery cut {path}" for path in rec.truncated]
        version_dir = str(copy / VERSION_DIR)
        snapshots = snapshot_files(version_dir)
        complete_from = min(zxid for zxid, _ in snapshots) if snapshots else 0
        txns, problems = _log_entries(version_dir, complete_from)
        notes += problems
        digest = rec.digest if rec.digest is not None else tree_digest(rec.tree)
        state = MemberState(sid, txns, complete_from, tree_view(rec.tree), digest, set(rec.sessions), live)
    return DiskReading(state, notes)


def _log_entries(log_dir: str, above: int) -> tuple[list[tuple[int, bytes]], list[str]]:
    txns: list[tuple[int, bytes]] = []
    problems = []
    last = above
    for _, path in sorted_files(log_dir, LOG_PREFIX):
        lf = LogFile(path)
        for entry in lf:
            if entry.hdr.zxid > last:
                txns.append((entry.hdr.zxid, bytes(entry.body)))
                last = entry.hdr.zxid
        if lf.problem is not None:
            problems.append(f"{Path(path).name}: {lf.problem}")
    return txns, problems
