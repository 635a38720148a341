"""Snapshots on demand (the admin `snapshot` command) and restoring one (`restore`).

take_snapshot forks the usual snapshot writer (storage.snapshot.SnapshotTaker) at the current
committed zxid, waiting first for an automatic snapshot that is already running.

restore_snapshot replaces the database with a snapshot stream, as Apache's
ZooKeeperServer.restoreFromSnapshot does, with firmer rules: it waits until no write is in
flight, closes every client connection (their watches belong to the old tree; clients whose
sessions are in the snapshot reconnect to them), keeps the zxid counter monotonic (the restored
tree takes zxid max(snapshot zxid, current zxid), so the txn log stays ordered), and persists
the restored tree as a new snapshot after rolling the log, so a restart comes back to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from typing import TYPE_CHECKING

from ..storage.database import DiskStorage
from ..storage.snapshot import read_snapshot, snapshot_name, write_snapshot
from ..storage.txnlog import StorageError

if TYPE_CHECKING:
    from ..shell.server import ServerRunner

log = logging.getLogger("zkserver.admin")


class SnapshotError(Exception):
    """The snapshot could not be taken or restored; the message says why."""


def _storage(server: ServerRunner) -> DiskStorage:
    storage = server.log
    if not isinstance(storage, DiskStorage) or storage.taker is None:
        raise SnapshotError("this server keeps no data directory (zkserver.storage=memory)")
    return storage


def record_digests(server: ServerRunner) -> None:
    """Record every 128th zxid's tree digest as the log entry carries it (the `hash` command)."""
    storage = server.log
    if isinstance(storage, DiskStorage) and storage.predictor is not None:
        storage.predictor.on_interval = server.stats.record_digest


def install_hooks(server: ServerRunner) -> None:
    """Feed snapshot times to the snapshottime summary (after the storage has started)."""
    storage = server.log
    if not isinstance(storage, DiskStorage) or storage.taker is None:
        return
    taker = storage.taker
    previous = taker.on_done
    started: dict[str, float] = {}
    original_take = taker.take

    def take(tree, sessions) -> bool:  # type: ignore[no-untyped-def]
        started["t"] = time.monotonic()
        return original_take(tree, sessions)

    def done(zxid: int, ok: bool) -> None:
        if ok and "t" in started:
            server.stats.snapshot_time.add(int((time.monotonic() - started["t"]) * 1000))
        server.stats.last_snapshot_result = (zxid, ok)  # type: ignore[attr-defined]
        if previous is not None:
            previous(zxid, ok)

    taker.take = take  # type: ignore[method-assign]
    taker.on_done = done


async def _wait_idle(storage: DiskStorage) -> None:
    assert storage.taker is not None
    while storage.taker.busy:
        await asyncio.sleep(0.005)


async def take_snapshot(server: ServerRunner) -> tuple[int, str, int]:
    """Write snapshot.<committed zxid> now; (zxid, path, size)."""
    storage = _storage(server)
    taker = storage.taker
    assert taker is not None
    await _wait_idle(storage)
    tree = server.core.tree
    zxid = tree.last_processed_zxid
    if not taker.take(tree, storage.sessions()):
        raise SnapshotError("another snapshot is being written")
    await _wait_idle(storage)
    result = getattr(server.stats, "last_snapshot_result", (zxid, True))
    path = os.path.join(storage.opts.snap_dir, snapshot_name(zxid))
    if not result[1] or not os.path.exists(path):
        raise SnapshotError(f"writing {path} failed")
    size = os.path.getsize(path)
    if size == 0:
        raise SnapshotError(f"snapshot file {path} is empty")
    return zxid, path, size


def _parse(body: bytes, snap_dir: str, extended_types: bool):  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(dir=os.path.dirname(snap_dir)) as tmp:
        path = os.path.join(tmp, snapshot_name(0))
        with open(path, "wb") as f:
            f.write(body)
        try:
            snap = read_snapshot(path, extended_types)
        except StorageError as e:
            raise SnapshotError(f"not a valid snapshot: {e}") from None
    if snap.digest is None:
        raise SnapshotError("the snapshot carries no zxid (no ZxidDigest section)")
    snap.tree.last_processed_zxid = snap.digest[0]
    return snap


async def restore_snapshot(server: ServerRunner, body: bytes) -> int:
    """Replace the database with the snapshot in `body`; return the restored tree's zxid."""
    storage = _storage(server)
    core = server.core
    started = time.monotonic()
    snap = _parse(body, storage.opts.snap_dir, core.settings.extended_types)
    while core.pipeline:  # let every write in flight finish against the old tree
        await asyncio.sleep(0.005)
    await _wait_idle(storage)
    for proto in list(server.protocols.values()):
        if proto.transport is not None:
            proto.transport.close()
    tree = snap.tree
    tree.last_processed_zxid = max(tree.last_processed_zxid, core.zxid)
    core.replace_tree(tree, snap.sessions)  # restored sessions expire unless their clients come back
    storage.use_tree(tree)
    storage.log.roll()
    path = write_snapshot(storage.opts.snap_dir, tree, dict(snap.sessions), storage.opts.digest_enabled,
                          fmt=storage.opts.snap_format)
    server.stats.restore_time.add(int((time.monotonic() - started) * 1000))
    server.schedule_pump()
    log.info(
        "Restored the database from a snapshot: zxid 0x%x, %d znodes, %d sessions; persisted as %s",
        tree.last_processed_zxid, len(tree.nodes), len(snap.sessions), path)
    return tree.last_processed_zxid
