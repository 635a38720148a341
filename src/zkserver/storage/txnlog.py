"""The transaction log in Apache ZooKeeper's version-2 format, with group commit.

File layout (FileTxnLog, Util): FileHeader{int magic 'ZKLG', int version 2, long dbid 0}, then
per entry: long Adler32 of the entry bytes, int length, the entry (TxnHeader, txn record,
optional TxnDigest{int version, long treeDigest}), byte 0x42. Files are preallocated with
zeros in preAllocSize steps; a zero length marks the end. A file is named log.<hex zxid of
its first entry>.

Theory of operation (writing). The event loop encodes entries and queues them; a dedicated
sync thread takes everything queued, writes it with one write(), fdatasyncs once, and reports
the last zxid back to the loop (through an eventfd the loop watches). While it syncs, more entries queue
up, so one fsync covers every entry appended since the last (group commit) and the loop never
waits for the disk. A roll marker in the queue closes the current file after its entries are
durable; the next entry opens log.<its zxid>.

A failed write or fsync stops the log for good (no retry: after an fsync error the kernel may
already have dropped the pages). Before it stops, it cuts the file back to the end of the last
durable batch and syncs that, so the entries whose writers are told "failed" are not replayed
by the next start. Every file operation goes through a `Disk` (storage.disk), so the same code
runs on the simulated disk of the power-loss tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..jute.codec import JuteError, Reader
from ..jute.records import TXN_HEADER, TxnHeader, read_txn_record
from .digest import DIGEST_VERSION
from .disk import OS_DISK, Disk, write_all

log = logging.getLogger("zkserver.storage.txnlog")

LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
VERSION = 2
FILE_HEADER = struct.Struct(">iiq")
ENTRY_HEAD = struct.Struct(">qi")  # Adler32 checksum, entry length
TXN_DIGEST = struct.Struct(">iq")
_LONG = struct.Struct(">q")
_join = b"".join
EOR = 0x42
LOG_PREFIX = "log."
DEFAULT_PREALLOC = 64 * 1024 * 1024
_MAX_ENTRY = 1 << 30
FSYNC_WARN_MS = 1000  # Apache's fsync.warningthresholdms default


class StorageError(Exception):
    """The data on disk cannot be used, or the disk refuses our writes; the message says why."""


def log_name(zxid: int) -> str:
    return f"{LOG_PREFIX}{zxid:x}"


def zxid_from_name(name: str, prefix: str) -> int:
    """Apache's Util.getZxidFromName: the hex after the first dot, or -1."""
    parts = name.split(".")
    if len(parts) >= 2 and parts[0] == prefix.rstrip("."):
        try:
            return int(parts[1], 16)
        except ValueError:
            return -1
    return -1


def sorted_files(directory: str, prefix: str, disk: Disk = OS_DISK) -> list[tuple[int, str]]:
    """(zxid, path) of the files named <prefix><hex zxid>..., oldest first."""
    try:
        names = disk.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        zxid = zxid_from_name(name, prefix)
        if zxid >= 0:
            found.append((zxid, os.path.join(directory, name)))
    return sorted(found)


def encode_entry(hdr: TxnHeader, txn: object, digest: int | None) -> bytes:
    """One complete log record: checksum, length, entry bytes, 0x42. The entry is joined at once
    from the header and the record's own byte parts, with no Writer."""
    body = _join((TXN_HEADER.pack(hdr.client_id, hdr.cxid, hdr.zxid, hdr.time, hdr.type),
                  *(txn.parts() if txn is not None else ()),  # type: ignore[attr-defined]
                  b"" if digest is None else TXN_DIGEST.pack(DIGEST_VERSION, digest)))
    return _join((ENTRY_HEAD.pack(zlib.adler32(body), len(body)), body, b"B"))


def decode_entry(body: bytes | memoryview) -> tuple[TxnHeader, object, tuple[int, int] | None]:
    """Entry bytes -> (header, txn record, (digest version, tree digest) or None)."""
    r = Reader(body, max_len=_MAX_ENTRY)
    hdr = TxnHeader.read(r)
    txn = read_txn_record(hdr.type, r)
    digest = None
    if r.remaining >= TXN_DIGEST.size:
        digest = (r.int(), r.long())
    return hdr, txn, digest


def pad_size(position: int, file_size: int, prealloc: int) -> int:
    """Apache's FilePadding rule: within 4 KB of the end, grow to the next preAllocSize step."""
    if prealloc > 0 and position + 4096 >= file_size:
        if position > file_size:
            file_size = position + prealloc
            file_size -= file_size % prealloc
        else:
            file_size += prealloc
    return file_size


# ---------------------------------------------------------------- reading


@dataclass
class LogEntry:
    offset: int
    hdr: TxnHeader
    txn: object
    digest: tuple[int, int] | None


_SKIPPED = LogEntry(0, None, None, None)  # type: ignore[arg-type]
_ZXID_AT = 12  # TxnHeader: long clientId, int cxid, long zxid, ...


class LogFile:
    """One log file read start to end. After iterating, `end` is the offset just past the last
    good entry and `problem` says why reading stopped early (None: a clean end). Entries with
    zxids up to `skip_upto` are checked (length, checksum, end byte) but neither decoded nor
    yielded: recovery replays only what follows its snapshot."""

    def __init__(self, path: str, disk: Disk = OS_DISK, skip_upto: int = -1):
        self.path = path
        self.start_zxid = zxid_from_name(os.path.basename(path), LOG_PREFIX)
        self.data = disk.read_file(path)
        self.end = 0
        self.problem: str | None = None
        self.bad_header = False
        self.skip_upto = skip_upto

    def __iter__(self) -> Iterator[LogEntry]:
        data = self.data
        if len(data) < FILE_HEADER.size:
            self.bad_header = True
            self.problem = f"file is {len(data)} bytes, shorter than its header"
            return
        magic, version, _dbid = FILE_HEADER.unpack_from(data, 0)
        if magic != LOG_MAGIC or version != VERSION:
            self.bad_header = True
            self.problem = f"bad header: magic 0x{magic & 0xFFFFFFFF:x} version {version}"
            return
        pos = self.end = FILE_HEADER.size
        while True:
            entry, pos = self._next(data, pos)
            if entry is None:
                return
            self.end = pos
            if entry is not _SKIPPED:
                yield entry

    def _next(self, data: bytes, pos: int) -> tuple[LogEntry | None, int]:
        if pos + ENTRY_HEAD.size > len(data):
            if any(data[pos:]):
                self.problem = f"partial entry header at offset {pos}"
            return None, pos
        crc, length = ENTRY_HEAD.unpack_from(data, pos)
        if length == 0:
            if crc != 0:
                self.problem = f"entry of length 0 with checksum {crc} at offset {pos}"
            return None, pos
        body_at = pos + ENTRY_HEAD.size
        if length < 0 or length > _MAX_ENTRY or body_at + length + 1 > len(data):
            self.problem = f"entry at offset {pos} claims {length} bytes, past the end of the file"
            return None, pos
        body = memoryview(data)[body_at:body_at + length]
        if zlib.adler32(body) != crc:
            self.problem = f"checksum mismatch at offset {pos}"
            return None, pos
        if data[body_at + length] != EOR:
            self.problem = f"entry at offset {pos} lacks its end-of-record byte"
            return None, pos
        if length >= _ZXID_AT + 8 and _LONG.unpack_from(data, body_at + _ZXID_AT)[0] <= self.skip_upto:
            return _SKIPPED, body_at + length + 1
        try:
            hdr, txn, digest = decode_entry(body)
        except JuteError as e:
            self.problem = f"entry at offset {pos} does not decode: {e}"
            return None, pos
        return LogEntry(pos, hdr, txn, digest), body_at + length + 1

    def blank_after(self, offset: int) -> bool:
        """True when nothing but zeros follows `offset` (a clean preallocated tail)."""
        return self.data.count(0, offset) == len(self.data) - offset


def read_log_files(paths: list[str], disk: Disk = OS_DISK) -> Iterator[tuple[LogFile, LogEntry]]:
    """Every good entry of the given files in order (no truncation; for tools)."""
    for path in paths:
        lf = LogFile(path, disk)
        for entry in lf:
            yield lf, entry


# ---------------------------------------------------------------- writing


_ROLL = object()


@dataclass
class LogStats:
    fsyncs: int = 0
    entries: int = 0
    last_fsync_ms: float = 0.0
    max_fsync_ms: float = 0.0


class FileTxnLog:
    """Appends txn entries to log.<zxid> files; durability is reported through `on_durable`.

    `on_failure(exc)` is called (on the loop) when a write or fsync fails: after that nothing
    more is written and nothing more is reported durable.

    Without `start()` the log writes and syncs inline in `append`, or, with `manual=True`,
    queues until the caller runs the sync thread's work itself with `sync_queued()` (the
    power-loss tests, which need batches that are written but not yet synced).
    """

    def __init__(self, log_dir: str, on_durable: Callable[[int], None], *,
                 pre_alloc_size: int = DEFAULT_PREALLOC, force_sync: bool = True,
                 digest: Callable[[TxnHeader, object], int | None] | None = None,
                 on_failure: Callable[[BaseException], None] | None = None,
                 disk: Disk = OS_DISK, manual: bool = False):
        self.log_dir = log_dir
        self.disk = disk
        self.manual = manual
        self.on_durable = on_durable
        self.on_failure = on_failure
        self.pre_alloc_size = pre_alloc_size
        self.force_sync = force_sync
        self.digest = digest
        self.stats = LogStats()
        self.warn_threshold_ms = FSYNC_WARN_MS  # fsync.warningthresholdms
        # Called on the sync thread with each fsync's milliseconds (ops metrics; must be cheap).
        self.on_fsync: Callable[[float], None] | None = None
        self.failed: BaseException | None = None
        self.last_zxid = 0
        self._cond = threading.Condition()
        self._queue: list[object] = []
        self._closing = False
        self._thread: threading.Thread | None = None
        self._call: Callable[..., object] | None = None
        # Durability reaches the loop through an eventfd it watches (see start).
        self._loop_call: Callable[..., object] | None = None
        self._remove_reader: Callable[[int], object] | None = None
        self._wake_fd = -1
        self._wake_zxid = 0  # set by the sync thread before it signals the eventfd
        self._woken_zxid = 0  # the last zxid the loop passed to on_durable that way
        # Owned by the sync thread once started:
        self._fd = -1
        self._pos = 0
        self._size = 0
        self._durable_pos = 0  # end of the last synced batch in the open file
        self._written_zxid = 0  # last zxid written to the open file
        self._synced_zxid = 0  # last zxid known durable
        self._reported_zxid = 0  # last zxid reported through on_durable

    def start(self, call_soon_threadsafe: Callable[..., object],
              add_reader: Callable[..., object] | None = None,
              remove_reader: Callable[[int], object] | None = None) -> None:
        """Start the sync thread; durability and failures are reported via the loop's
        call_soon_threadsafe, or, given the loop's add_reader, durability through an eventfd
        the loop watches: the sync thread then only stores a zxid and bumps a counter (one
        write(2)) instead of building and queueing a callback under the GIL."""
        self._call = self._loop_call = call_soon_threadsafe
        if add_reader is not None and remove_reader is not None and hasattr(os, "eventfd"):
            self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            add_reader(self._wake_fd, self._on_wake)
            self._remove_reader = remove_reader
            self._call = self._post
        self._thread = threading.Thread(target=self._run, name="zkserver-txnlog-sync", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ loop side

    def append(self, entries: list[tuple[TxnHeader, object]]) -> int:
        """Queue entries for writing; return the bytes they take in the log."""
        if not entries or self.failed is not None:
            return 0
        digest = self.digest
        parts = [encode_entry(hdr, txn, digest(hdr, txn) if digest else None) for hdr, txn in entries]
        first, last = entries[0][0].zxid, entries[-1][0].zxid
        self.last_zxid = last
        item = (first, last, len(entries), b"".join(parts))
        if self._thread is None and not self.manual:  # no thread (tools, tests): write and sync inline
            self._write_batch([item])
            self._report(_call_now)
            return len(item[3])
        with self._cond:
            self._queue.append(item)
            self._cond.notify()
        return len(item[3])

    def roll(self) -> None:
        """Close the current file once its entries are durable; the next append starts a new one."""
        if self._thread is None and not self.manual:
            self._close_file()
            return
        with self._cond:
            self._queue.append(_ROLL)
            self._cond.notify()

    def close(self) -> None:
        """Write and sync what is queued, then stop the sync thread and close the file."""
        if self._thread is not None:
            with self._cond:
                self._closing = True
                self._cond.notify()
            self._thread.join()
            self._thread = None
        if self._wake_fd >= 0:
            assert self._remove_reader is not None and self._loop_call is not None
            self._remove_reader(self._wake_fd)
            os.close(self._wake_fd)
            self._wake_fd = -1
            self._loop_call(self._deliver_woken)  # a durability the loop has not seen yet
        elif self.manual:
            self.sync_queued()
        if self._fd >= 0:
            try:
                self._close_file()
            except OSError as e:
                log.error("closing the txn log failed: %s", e)

    # ------------------------------------------------------------ sync thread

    def _run(self) -> None:
        assert self._call is not None
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
            if not self._process(batch, self._call):
                return

    def sync_queued(self) -> bool:
        """Manual mode: write and sync everything queued now, as one round of the sync thread
        would, reporting inline. False once the log has failed."""
        batch, self._queue = self._queue, []
        if self.failed is not None:
            return False
        return self._process(batch, _call_now) if batch else True

    def _process(self, batch: list[object], call: Callable[..., object]) -> bool:
        try:
            self._write_batch(batch)
        except OSError as e:
            self._fail(e, call)
            return False
        self._report(call)
        return True

    def _post(self, fn: Callable[..., object], *args: object) -> None:
        """Sync thread -> loop. Durability sets `_wake_zxid` and signals the eventfd; anything
        else goes through call_soon_threadsafe, after the durability signalled before it."""
        if fn == self.on_durable:
            self._wake_zxid = args[0]  # type: ignore[assignment]
            os.eventfd_write(self._wake_fd, 1)
        else:
            assert self._loop_call is not None
            self._loop_call(self._after_woken, fn, *args)

    def _on_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wake_fd)
        self._deliver_woken()

    def _deliver_woken(self) -> None:
        zxid = self._wake_zxid
        if zxid > self._woken_zxid:
            self._woken_zxid = zxid
            self.on_durable(zxid)

    def _after_woken(self, fn: Callable[..., object], *args: object) -> None:
        self._deliver_woken()
        fn(*args)

    def _report(self, call: Callable[..., object]) -> None:
        if self._synced_zxid > self._reported_zxid:
            self._reported_zxid = self._synced_zxid
            call(self.on_durable, self._synced_zxid)

    def _fail(self, exc: OSError, call: Callable[..., object]) -> None:
        self.failed = exc
        log.error("txn log write failed (%s); no further writes will be accepted", exc)
        self._roll_back()
        # Entries a roll made durable before the failure stay in the log: they are durable.
        self._report(call)
        if self.on_failure is not None:
            call(self.on_failure, exc)

    def _roll_back(self) -> None:
        """Cut the open file back to its last durable batch, so that a restart does not
        replay entries whose writers were told they failed."""
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        disk = self.disk
        try:
            disk.ftruncate(fd, self._durable_pos)
            disk.fdatasync(fd)
            log.info("txn log cut back to offset %d, its last durable entry", self._durable_pos)
        except OSError as e:
            log.error("could not cut the txn log back to its last durable entry (%s): a restart "
                      "may replay txns whose clients were told they failed", e)
        finally:
            with contextlib.suppress(OSError):
                disk.close(fd)

    def _write_batch(self, batch: list[object]) -> None:
        for item in batch:
            if item is _ROLL:
                self._close_file()
                continue
            first, last, count, blob = item  # type: ignore[misc]
            if self._fd < 0:
                self._open_file(first)
            self._preallocate(len(blob))
            write_all(self.disk, self._fd, blob, self._pos)
            self._pos += len(blob)
            self._written_zxid = last
            self.stats.entries += count
        if self._fd >= 0 and self._pos > self._durable_pos:
            if self.force_sync:
                self._sync()
            self._durable_pos = self._pos
            self._synced_zxid = self._written_zxid

    def _sync(self) -> None:
        t0 = time.perf_counter()
        self.disk.fdatasync(self._fd)
        ms = (time.perf_counter() - t0) * 1000
        st = self.stats
        st.fsyncs += 1
        st.last_fsync_ms = ms
        st.max_fsync_ms = max(st.max_fsync_ms, ms)
        if self.on_fsync is not None:
            self.on_fsync(ms)
        if ms > self.warn_threshold_ms:
            log.warning("fsync-ing the write ahead log in %s took %dms which will adversely effect operation "
                        "latency. File size is %d bytes. See the ZooKeeper troubleshooting guide",
                        threading.current_thread().name, ms, self._pos)

    def _open_file(self, zxid: int) -> None:
        path = os.path.join(self.log_dir, log_name(zxid))
        log.info("Creating new log file: %s", log_name(zxid))
        fd = self.disk.open_write(path)
        self._fd = fd
        header = FILE_HEADER.pack(LOG_MAGIC, VERSION, 0)
        write_all(self.disk, fd, header, 0)
        self._pos = self._durable_pos = len(header)
        self._size = self._pos
        # The new name must survive a crash as well as the entries inside it.
        self.disk.fsync_dir(self.log_dir)

    def _preallocate(self, n: int) -> None:
        target = self._size
        while True:
            grown = pad_size(self._pos + n, target, self.pre_alloc_size)
            if grown == target:
                break
            target = grown
        if target > self._size:
            self.disk.allocate(self._fd, self._size, target - self._size)
            self._size = target

    def _close_file(self) -> None:
        if self._fd < 0:
            return
        if self.force_sync and self._pos > self._durable_pos:
            self.disk.fdatasync(self._fd)  # on failure the file stays open for _roll_back
        self._synced_zxid = max(self._synced_zxid, self._written_zxid)
        fd, self._fd = self._fd, -1
        self.disk.close(fd)


def _call_now(fn: Callable[..., object], *args: object) -> None:
    fn(*args)


def fsync_dir(path: str, disk: Disk = OS_DISK) -> None:
    disk.fsync_dir(path)
