"""A simulated member's data directory: its SimDisk, its log's sync rounds, its disk faults.

Theory of operation. Every member owns a `MachineDisk` (storage.simdisk.SimDisk, which loses
unsynced bytes and names on a power cut, plus a "full" switch for ENOSPC). `DataDir` runs the
storage code the real server runs on it: `recover()` at every start, then a `DiskStorage`
whose `FileTxnLog` is in manual mode, so that this module decides when the log is synced.

Group commit on virtual time. After an append, if no sync round is in flight, one starts: an
fdatasync that takes a drawn fsync latency. The bytes are durable when it returns, not before
(`FileTxnLog.sync_queued` runs then): a power cut while it runs keeps of them what the reboot
mode keeps of unsynced bytes, as on a real disk. Its completion - the durability report, or
the failure - reaches the member at that moment. Appends made meanwhile are written to the page
cache; the returning fdatasync may cover them (it syncs the file), else the next round does. A
slow disk multiplies the latency; an injected EIO on fdatasync fails the log for good (the core
then refuses writes); a full disk fails the next write with ENOSPC.

Snapshots are written inline on the member's thread through the same disk (DiskStorage's
`inline_snapshots`: the simulator cannot fork), when its randomized snapCount says so.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..jute.records import TxnHeader
from ..storage.database import DiskStorage, Recovered, StorageOptions, recover, recover_member
from ..storage.epochs import Epochs
from ..storage.simdisk import SimDisk
from ..storage.snapshot import snapshot_files
from ..storage.txnlog import ENTRY_HEAD, LOG_PREFIX, LogFile, sorted_files
from .scheduler import Timer

MAX_FSYNC_MS = 2000  # even the slowest disk answers within this


@dataclass
class DiskProfile:
    fsync_base_ms: float = 1.0
    fsync_jitter_ms: float = 1.0  # mean of the exponential part
    fsync_tail_p: float = 0.0  # probability of a much slower fsync
    fsync_tail_ms: float = 100.0


class MachineDisk(SimDisk):
    """A SimDisk that can also be full (every write, allocation and create fails with ENOSPC
    until it is freed; what was written before stays) or fail its next fdatasync with EIO."""

    full = False
    eio_next = False

    def fdatasync(self, fd: int) -> None:
        if self.eio_next:
            self.eio_next = False
            raise OSError(errno.EIO, f"{os.strerror(errno.EIO)} (injected)")
        super().fdatasync(fd)

    def _space(self) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def open_write(self, path: str) -> int:
        self._space()
        return super().open_write(path)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        self._space()
        return super().pwrite(fd, data, offset)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        self._space()
        return super().write(fd, data)

    def allocate(self, fd: int, offset: int, length: int) -> None:
        self._space()
        super().allocate(fd, offset, length)


class DataDir:
    """One member's data dir on its disk: recovery, the running log, its sync rounds."""

    def __init__(self, opts: StorageOptions, profile: DiskProfile, rng: random.Random, disk_rng: random.Random,
                 call_later: Callable[..., Timer], note: Callable[[str], None]):
        """`rng` draws fsync latencies and the storage's snapCount; `disk_rng` what a power cut keeps."""
        self.opts = opts
        self.profile = profile
        self.rng = rng
        self.disk = MachineDisk(disk_rng)
        self.disk.makedirs(opts.snap_dir)
        self.disk.makedirs(opts.log_dir)
        self.slow = 1.0
        self.max_fsync_ms = MAX_FSYNC_MS
        self._call_later = call_later  # the host's: callbacks run in its process, as it lives
        self.note = note
        self.storage: DiskStorage | None = None
        self._on_durable: Callable[[int], None] = _ignore
        self._on_failure: Callable[[BaseException], None] = _ignore
        self._in_flight = False
        self._dirty = False
        self._held: list[tuple[Callable, object]] = []
        self._round_timer: Timer | None = None
        self.rounds = 0

    def recover(self, extended_types: bool = False) -> Recovered:
        """What the real server does at start-up, on this disk (raises StorageError)."""
        rec = recover(self.opts, extended_types, disk=self.disk)
        self.note(f"recovered 0x{rec.tree.last_processed_zxid:x} (snapshot 0x{rec.snapshot_zxid:x} + "
                  f"{rec.replayed} txns{', truncated a torn tail' if rec.truncated else ''})")
        return rec

    def recover_member(self, extended_types: bool = False) -> tuple[Recovered, Epochs]:
        """An ensemble member's start-up recovery (storage.database.recover_member)."""
        rec, epochs = recover_member(self.opts, extended_types, disk=self.disk)
        self.note(f"recovered 0x{rec.last_logged_zxid:x} (snapshot 0x{rec.snapshot_zxid:x} + {rec.replayed} txns), "
                  f"epochs {epochs.accepted}/{epochs.current}")
        return rec, epochs

    def open(self, rec: Recovered, sessions: Callable[[], dict[int, int]], on_durable: Callable[[int], None],
             on_failure: Callable[[BaseException], None]) -> DiskStorage:
        """The running storage over the recovered tree; `on_durable`/`on_failure` are called
        when a sync round completes."""
        self._on_durable, self._on_failure = on_durable, on_failure
        self._in_flight = self._dirty = False
        self._held = []
        storage = self.storage = DiskStorage(
            self.opts, rec.tree, sessions, self._hold_durable, self._hold_failure,
            rng=random.Random(self.rng.getrandbits(64)), disk=self.disk, manual=True, digest=rec.digest,
            inline_snapshots=True)
        storage.ensure_initial_snapshot()
        return storage

    def calm(self, max_fsync_ms: int = MAX_FSYNC_MS) -> None:
        """A healed disk: no slow-down, no heavy tail, no fsync slower than `max_fsync_ms`, room
        to write, no fsync error or power cut armed; an fsync still in flight on the slow disk
        completes as on the healed one."""
        self.slow = 1.0
        self.max_fsync_ms = max_fsync_ms
        self.profile = replace(self.profile, fsync_tail_p=0.0)
        self.disk.full = False
        self.disk.eio_next = False
        self.disk.crash_after(None)
        if self._round_timer is not None and self._in_flight:
            self._round_timer.cancel()
            self._round_timer = self._call_later(self.fsync_latency(), self._round_done)

    def close(self) -> None:
        """The process is gone: its storage object with it (the disk stays)."""
        self.storage = None
        self._held = []
        self._in_flight = self._dirty = False
        self._round_timer = None

    def append(self, entries: list[tuple[TxnHeader, object]],
               digests: list[tuple[int, int] | None] | None = None) -> list[bytes]:
        """Log entries (DiskStorage.append); a sync round covers them. Each entry's bytes."""
        assert self.storage is not None
        bodies = self.storage.append(entries, digests)
        self._dirty = True
        if not self._in_flight:
            self._start_round()
        return bodies

    @property
    def log_failed(self) -> bool:
        return self.storage is not None and self.storage.log.failed is not None

    @property
    def quiet(self) -> bool:
        """No sync round in flight and nothing written that a round has not covered."""
        return not self._in_flight and not self._dirty

    def fsync_latency(self) -> int:
        p, r = self.profile, self.rng
        ms = p.fsync_base_ms + (r.expovariate(1.0 / p.fsync_jitter_ms) if p.fsync_jitter_ms > 0 else 0.0)
        if p.fsync_tail_p and r.random() < p.fsync_tail_p:
            ms += min(p.fsync_tail_ms * r.paretovariate(1.5), 20 * p.fsync_tail_ms)
        return max(0, min(int(ms * self.slow), self.max_fsync_ms))

    def _start_round(self) -> None:
        assert self.storage is not None
        self._in_flight = True
        self._dirty = False
        self.rounds += 1
        self._round_timer = self._call_later(self.fsync_latency(), self._round_done)

    def _round_done(self) -> None:
        """The fdatasync returns: the bytes written so far are durable from now on."""
        self._in_flight = False
        self._round_timer = None
        if self.storage is not None:
            self._dirty = False
            self.storage.log.sync_queued()  # reports into _held, released below
        held, self._held = self._held, []
        for callback, arg in held:
            callback(arg)
        if self._dirty and self.storage is not None:
            self._start_round()  # on a failed log, a round only reports the failure

    def _hold_durable(self, zxid: int) -> None:
        self._held.append((self._on_durable, zxid))

    def _hold_failure(self, exc: BaseException) -> None:
        self._held.append((self._on_failure, exc))

    # ------------------------------------------------------------ what the disk holds

    def history_start(self) -> int:
        """The zxid after which the logs hold every txn: the oldest snapshot on the disk (the
        simulator purges nothing; an installed SNAP leaves its own snapshot and the logs after
        it) - or, past a hole in the logs within an epoch, the oldest snapshot that covers the
        hole. A log that failed is cut back to its last durable entry, which can be below a
        snapshot of txns applied from its page cache: the snapshot holds them, the logs do not."""
        snaps = sorted(z for z, _ in snapshot_files(self.opts.snap_dir, self.disk))
        if not snaps:
            return 0
        zxids = sorted({z for z, _ in self.logged_txns() if z > snaps[0]})
        holes = [b for a, b in itertools.pairwise(zxids) if a >> 32 == b >> 32 and b != a + 1]
        covering = [z for z in snaps if holes and z >= holes[-1] - 1]
        return covering[0] if covering else snaps[0]

    def logged_txns(self) -> list[tuple[int, bytes]]:
        """(zxid, entry bytes: TxnHeader + txn + optional TxnDigest) of every good entry in
        the log files, in file order; what a checker compares across members."""
        out: list[tuple[int, bytes]] = []
        for _, path in sorted_files(self.opts.log_dir, LOG_PREFIX, self.disk):
            lf = LogFile(path, self.disk)
            for entry in lf:
                at = entry.offset + ENTRY_HEAD.size
                length = ENTRY_HEAD.unpack_from(lf.data, entry.offset)[1]
                out.append((entry.hdr.zxid, bytes(lf.data[at:at + length])))
        return out


def _ignore(_: object) -> None:
    pass
