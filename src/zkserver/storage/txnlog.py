"""The transaction log in Apache ZooKeeper's version-2 format, with group commit.

File layout (FileTxnLog, Util): FileHeader{int magic 'ZKLG', int version 2, long dbid 0}, then
per entry: long Adler32 of the entry bytes, int length, the entry (TxnHeader, txn record,
optional TxnDigest{int version, long treeDigest}), byte 0x42. Files are preallocated with
zeros in preAllocSize steps; a zero length marks the end. A file is named log.<hex zxid of
its first entry>.

Theory of operation (writing). The event loop encodes each batch of entries and writes it to
the open file itself (a write to the page cache). A syncer process (storage/syncer.py) makes
it durable: the loop asks it to fdatasync the file up to a position and watches its socket for
the answer, with one request out at a time. While it syncs, more batches are written, so the
next fsync covers every entry written since the last (group commit) and the loop never waits
for the disk. Why a process and not a thread: see syncer.py. Until the syncer has said it is
up, the loop syncs each batch itself, so the first writes after start-up do not wait for it.

A lone write does not go to the syncer either. When the log has been idle for a few fsyncs'
time (no round out, nothing appended for LONE_GAP_FSYNCS times the recent fsync), group commit
has nothing to group, and the syncer's round costs two process wake-ups (the request, the
answer) around the fsync: on the replicated path that is a follower's ACK and the leader's
commit, each waiting. Such a batch is synced by the loop itself, in its own callback right
after the turn that wrote it, so that whatever the turn sent (a leader's PROPOSALs) is on the
wire before the loop waits for the disk. Under load appends come faster than that and every
round goes to the syncer, where the loop keeps working while the disk syncs; so does every
round while fsyncs are slow (over LONE_MAX_FSYNC_S on average: a disk without a write cache),
where a blocked loop would cost its other clients more than two wake-ups save.

A roll syncs the current file on the loop (once per roll) and closes it; the next entry opens
log.<its zxid>.

When a member's history is rewritten on disk (a truncation, an installed snapshot: rewrite.py),
`restart_at(zxid)` drops the open file unsynced and counts durability from that zxid again; the
next entry opens a new file, and a sync answer still out about an older file reports nothing.

A failed write or fsync stops the log for good (no retry: after an fsync error the kernel may
already have dropped the pages). Before it stops, it cuts the file back to the end of the last
durable batch and syncs that, so the entries whose writers are told "failed" are not replayed
by the next start. Every file operation goes through a `Disk` (storage.disk), so the same code
runs on the simulated disk of the power-loss tests.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..jute.codec import JuteError, Reader
from ..jute.records import TxnHeader, read_txn_record
from . import syncer
from .digest import DIGEST_VERSION
from .disk import OS_DISK, Disk, write_all

log = logging.getLogger("zkserver.storage.txnlog")

LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
VERSION = 2
FILE_HEADER = struct.Struct(">iiq")
ENTRY_HEAD = struct.Struct(">qi")  # Adler32 checksum, entry length
ENTRY_OVERHEAD = ENTRY_HEAD.size + 1  # a record's bytes besides the entry's: its head and 0x42
TXN_DIGEST = struct.Struct(">iq")
_LONG = struct.Struct(">q")
_join = b"".join
EOR = 0x42
LOG_PREFIX = "log."
DEFAULT_PREALLOC = 64 * 1024 * 1024
_MAX_ENTRY = 1 << 30
FSYNC_WARN_MS = 1000  # Apache's fsync.warningthresholdms default
STOP_TIMEOUT = 30.0  # seconds close() waits for the syncer's last round
LONE_GAP_FSYNCS = 2  # a batch after this many recent fsyncs' time of idleness is synced inline
LONE_GAP_MIN_S = 150e-6  # ... and never after less than this
LONE_MAX_FSYNC_S = 1e-3  # the loop waits for a lone write's fsync only while fsyncs are this quick


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


def encode_proposal(hdr: TxnHeader, txn: object, digest: int | None, version: int = DIGEST_VERSION) -> bytes:
    """TxnHeader, txn record, optional TxnDigest{version, digest}: the body of a log entry and the
    data of a PROPOSAL (Apache's Util.marshallTxnEntry). Joined at once from the header and the
    record's own byte parts, with no Writer."""
    return _join((hdr.encode(),
                  *(txn.parts() if txn is not None else ()),  # type: ignore[attr-defined]
                  b"" if digest is None else TXN_DIGEST.pack(version, digest)))


def encode_entry(hdr: TxnHeader, txn: object, digest: int | None, version: int = DIGEST_VERSION) -> bytes:
    """One complete log record: checksum, length, the proposal bytes, 0x42."""
    return frame_entry(encode_proposal(hdr, txn, digest, version))


def frame_entry(body: bytes) -> bytes:
    """A log record around an entry's bytes: checksum, length, the bytes, 0x42."""
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
    body: memoryview  # the entry's bytes as written (its PROPOSAL data), a view of the file


_SKIPPED = LogEntry(0, None, None, None, memoryview(b""))  # type: ignore[arg-type]
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
        pos = self._first_entry()
        while pos is not None:
            entry, pos = self._next(data, pos)
            if entry is None:
                return
            self.end = pos
            if entry is not _SKIPPED:
                yield entry

    def proposals(self) -> Iterator[tuple[int, memoryview]]:
        """(zxid, entry bytes) of each good entry, checked but not decoded: what a leader sends a
        lagging learner from disk."""
        data = self.data
        pos = self._first_entry()
        while pos is not None:
            body = self._frame(data, pos)
            if body is None or len(body) < _ZXID_AT + 8:
                if body is not None:
                    self.problem = f"entry at offset {pos} is too short for a txn header"
                return
            pos = self.end = pos + ENTRY_HEAD.size + len(body) + 1
            yield _LONG.unpack_from(body, _ZXID_AT)[0], body

    def _first_entry(self) -> int | None:
        """Check the file header; the offset of the first entry, or None."""
        data = self.data
        if len(data) < FILE_HEADER.size:
            self.bad_header = True
            self.problem = f"file is {len(data)} bytes, shorter than its header"
            return None
        magic, version, _dbid = FILE_HEADER.unpack_from(data, 0)
        if magic != LOG_MAGIC or version != VERSION:
            self.bad_header = True
            self.problem = f"bad header: magic 0x{magic & 0xFFFFFFFF:x} version {version}"
            return None
        self.end = FILE_HEADER.size
        return FILE_HEADER.size

    def _frame(self, data: bytes, pos: int) -> memoryview | None:
        """The body of the entry at `pos` once its length, checksum and end byte are right;
        None at the end of the entries (`problem` set if that end is not a clean one)."""
        if pos + ENTRY_HEAD.size > len(data):
            if any(data[pos:]):
                self.problem = f"partial entry header at offset {pos}"
            return None
        crc, length = ENTRY_HEAD.unpack_from(data, pos)
        if length == 0:
            if crc != 0:
                self.problem = f"entry of length 0 with checksum {crc} at offset {pos}"
            return None
        body_at = pos + ENTRY_HEAD.size
        if length < 0 or length > _MAX_ENTRY or body_at + length + 1 > len(data):
            self.problem = f"entry at offset {pos} claims {length} bytes, past the end of the file"
            return None
        body = memoryview(data)[body_at:body_at + length]
        if zlib.adler32(body) != crc:
            self.problem = f"checksum mismatch at offset {pos}"
            return None
        if data[body_at + length] != EOR:
            self.problem = f"entry at offset {pos} lacks its end-of-record byte"
            return None
        return body

    def _next(self, data: bytes, pos: int) -> tuple[LogEntry | None, int]:
        body = self._frame(data, pos)
        if body is None:
            return None, pos
        after = pos + ENTRY_HEAD.size + len(body) + 1
        if len(body) >= _ZXID_AT + 8 and _LONG.unpack_from(body, _ZXID_AT)[0] <= self.skip_upto:
            return _SKIPPED, after
        try:
            hdr, txn, digest = decode_entry(body)
        except JuteError as e:
            self.problem = f"entry at offset {pos} does not decode: {e}"
            return None, pos
        return LogEntry(pos, hdr, txn, digest, body), after

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


@dataclass
class LogStats:
    fsyncs: int = 0
    own_fsyncs: int = 0  # of which done by the server itself: lone writes, rolls, no syncer (yet)
    entries: int = 0
    last_fsync_ms: float = 0.0
    max_fsync_ms: float = 0.0


@dataclass(slots=True)
class _LogFile:
    """One log file being written: what is written, preallocated and known durable."""

    gen: int  # files are numbered in the order they are opened
    fd: int
    pos: int
    size: int
    durable_pos: int
    last_zxid: int = 0  # of the last entry written to it


class FileTxnLog:
    """Appends txn entries to log.<zxid> files; durability is reported through `on_durable`.

    `append` writes the entries to the open file at once; what makes them durable is a sync
    round (fdatasync the file), done
      - after `start()`, by the syncer process (storage/syncer.py), one round at a time:
        while it syncs, appends accumulate and the next round covers them all (group commit);
      - with `manual=True`, when the caller runs `sync_queued()` (the power-loss tests, which
        need batches that are written but not yet synced);
      - otherwise inline, in `append` (tools, tests).
    `on_failure(exc)` is called (on the loop) when a write or fsync fails: after that nothing
    more is written and nothing more is reported durable.
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
        # Called with each sync round's milliseconds (ops metrics; must be cheap).
        self.on_fsync: Callable[[float], None] | None = None
        self.failed: BaseException | None = None
        self.last_zxid = 0
        self._file: _LogFile | None = None
        self._next_gen = 0
        self._synced_zxid = 0  # last zxid known durable
        self._reported_zxid = 0  # last zxid reported through on_durable
        self._failure_reported = False
        self._call_soon: Callable[..., object] | None = None  # the loop's, once started
        # The syncer process, once started:
        self._syncer: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._remove_reader: Callable[[int], object] | None = None
        self._given_gen = -1  # the newest file the syncer has been given
        self._floor_gen = 0  # answers about files older than this (before a restart_at) are stale
        self._in_flight = False  # a sync request is out
        self._syncer_ready = False  # its READY_GEN answer has arrived
        self.lone_rounds = True  # sync lone writes on the loop (the tests of the syncer turn it off)
        self._lone_round_due = False  # a round on the loop is scheduled (a lone write)
        self._last_append = 0.0  # perf_counter() of the last append
        self._recent_fsync_s = 0.0  # a moving average of the fsyncs' durations

    def start(self, call_soon: Callable[..., object], add_reader: Callable[..., object],
              remove_reader: Callable[[int], object]) -> None:
        """From now on durability is reported on the loop: with forceSync, by the syncer's
        answers (read through `add_reader`); without it, right after each write."""
        self._call_soon = call_soon
        if not self.force_sync or self.manual:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._syncer = subprocess.Popen(
                [sys.executable, "-I", "-S", syncer.__file__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        ours.setblocking(False)
        self._sock = ours
        self._remove_reader = remove_reader
        add_reader(ours.fileno(), self._on_answers)

    # ------------------------------------------------------------ writing

    def append(self, entries: list[tuple[TxnHeader, object]],
               digests: list[tuple[int, int] | None] | None = None) -> list[bytes]:
        """Write entries to the log; return each one's bytes (a PROPOSAL's data; the log adds
        ENTRY_OVERHEAD to each). Durability is reported later (inline mode: before this
        returns). `digests`: the (version, digest) to write with each entry (None: none),
        instead of asking the `digest` callback."""
        if not entries or self.failed is not None:
            return []
        if digests is not None:
            bodies = [encode_proposal(hdr, txn, None) if d is None else encode_proposal(hdr, txn, d[1], d[0])
                      for (hdr, txn), d in zip(entries, digests, strict=True)]
        else:
            digest = self.digest
            bodies = [encode_proposal(hdr, txn, digest(hdr, txn) if digest else None) for hdr, txn in entries]
        blob = b"".join([frame_entry(body) for body in bodies])
        last = entries[-1][0].zxid
        self.last_zxid = last
        if self._call_soon is None and not self.manual:  # inline: errors go to the caller
            self._write(blob, entries[0][0].zxid, last, len(entries))
            self._sync_round()
            self._report()
            return bodies
        try:
            self._write(blob, entries[0][0].zxid, last, len(entries))
        except OSError as e:
            self.fail(e)
            return []
        if self._sock is not None:
            self._sync_written()
        elif self._call_soon is not None and not self.force_sync:
            self._synced_zxid = last
            self._call_soon(self._report)
        return bodies

    def _sync_written(self) -> None:
        """Have what was just written synced: by the round out or due (it will cover it or ask
        again), by the loop for a lone write, else by the syncer."""
        # Not the loop's clock: uvloop's loop.time() moves in whole milliseconds, coarser than the
        # gaps told apart here (a lone write comes ~0.5 ms after the last; measured, it then
        # looked like load and went to the syncer).
        now = time.perf_counter()
        idle = now - self._last_append
        self._last_append = now
        if self._in_flight or self._lone_round_due:
            return
        recent = self._recent_fsync_s
        lone_gap = max(LONE_GAP_MIN_S, LONE_GAP_FSYNCS * recent)
        if self.lone_rounds and self._syncer_ready and idle >= lone_gap and recent <= LONE_MAX_FSYNC_S:
            self._lone_round_due = True
            assert self._call_soon is not None
            self._call_soon(self._lone_round)
        else:
            self._request_sync()

    def _lone_round(self) -> None:
        if self._lone_round_due:
            self._lone_round_due = False
            if self.failed is None:
                self._try_round()
            self._report()  # now, not a loop turn later: its ACK or reply is what waits

    def _write(self, blob: bytes, first: int, last: int, count: int) -> None:
        f = self._file
        if f is None:
            f = self._file = self._open_file(first)
        self._preallocate(f, len(blob))
        write_all(self.disk, f.fd, blob, f.pos)
        f.pos += len(blob)
        f.last_zxid = last
        self.stats.entries += count

    def roll(self) -> None:
        """Close the current file once its entries are durable; the next append starts a new one.
        The sync is done here, on the caller's thread (once per roll), so that no entry of the
        next file can reach the disk before the last ones of this file: recovery must never find
        a gap between files."""
        f = self._file
        if f is None or self.failed is not None:
            return
        if f.durable_pos < f.pos and not self._round_here():
            return
        self._file = None
        self._close(f)

    def restart_at(self, zxid: int) -> None:
        """The member's history now ends at `zxid`, durably (a truncation or an installed
        snapshot did that on disk): drop the open file unsynced, let the next append start a new
        one, and count durability from `zxid` (reported as this mode reports it). A sync round
        still out for an older file reports nothing."""
        if self._file is not None:
            self._close(self._file)
            self._file = None
        self._floor_gen = self._next_gen + 1
        self.last_zxid = self._synced_zxid = zxid
        self._reported_zxid = min(self._reported_zxid, zxid)
        if self._call_soon is not None:
            self._call_soon(self._report)
        elif not self.manual:
            self._report()

    def close(self) -> None:
        """Make everything written durable, report it, stop the syncer and close the files."""
        if self._sock is not None:
            if self._lone_round_due and self.failed is None:
                self._try_round()
            self._lone_round_due = False
            self._stop_syncer()
        elif self.failed is None and (self.manual or self._call_soon is not None):
            self._try_round()
        if self._call_soon is not None:
            self._call_soon(self._report)  # what the loop has not been told yet
        elif self.manual:
            self._report()
        if self._file is not None:
            self._close(self._file)
            self._file = None

    # ------------------------------------------------------------ sync rounds

    def sync_queued(self) -> bool:
        """Manual mode: one sync round now, as the syncer would run it, reporting inline.
        False once the log has failed."""
        if self.failed is None:
            self._try_round()
        self._report()
        return self.failed is None

    def _round_here(self) -> bool:
        """A sync round in this process, reported as this mode reports durability (on the loop
        once started, at once inline, at `sync_queued` in manual mode); False when it failed."""
        if not self._try_round():
            return False
        if self._call_soon is not None:
            self._call_soon(self._report)
        elif not self.manual:
            self._report()
        return True

    def _try_round(self) -> bool:
        """A sync round in this process; False when it failed the log."""
        try:
            self._sync_round()
        except OSError as e:
            self.fail(e)
            return False
        return True

    def _sync_round(self) -> None:
        """Make the file's entries durable, in this process."""
        f = self._file
        if f is None or f.durable_pos == f.pos:
            return
        if self.force_sync:
            started = time.perf_counter()
            self.disk.fdatasync(f.fd)
            self._count_sync(time.perf_counter() - started)
            self.stats.own_fsyncs += 1
        f.durable_pos = f.pos
        self._synced_zxid = max(self._synced_zxid, f.last_zxid)

    def _request_sync(self) -> None:
        """Ask the syncer for a round covering everything written, giving it the file if new.
        Until the syncer has said it is up, the round is done here: the first writes after
        start-up need not wait ~15 ms for its interpreter."""
        f = self._file
        assert self._sock is not None and f is not None
        if not self._syncer_ready:
            self._round_here()
            return
        request = syncer.REQUEST.pack(f.gen, f.last_zxid, f.pos)
        try:
            if f.gen > self._given_gen:  # a new file: its descriptor goes along
                socket.send_fds(self._sock, [request], [f.fd])
            else:
                self._sock.send(request)
        except OSError as e:  # the syncer is gone
            self.fail(e)
            return
        self._given_gen = f.gen
        self._in_flight = True

    def _on_answers(self) -> None:
        while self._sock is not None and self.failed is None:
            try:
                msg = self._sock.recv(syncer.ANSWER.size)
            except BlockingIOError:
                return
            except OSError as e:
                self.fail(e)
                return
            if not msg:
                self.fail(OSError(errno.EPIPE, "the txn log's syncer process exited"))
                return
            answer = syncer.ANSWER.unpack(msg)
            if answer[0] == syncer.READY_GEN:
                self._syncer_ready = True  # every round so far was done here: nothing to ask
                continue
            self._answered(*answer)

    def _answered(self, gen: int, zxid: int, pos: int, micros: int, err: int, report: bool = True) -> None:
        self._in_flight = False
        if err:
            self.fail(OSError(err, f"fdatasync: {os.strerror(err)}"))
            return
        f = self._file
        if f is not None and f.gen == gen:
            f.durable_pos = max(f.durable_pos, pos)
        if gen >= self._floor_gen:
            self._synced_zxid = max(self._synced_zxid, zxid)
        self._count_sync(micros / 1e6)
        if f is not None and f.durable_pos < f.pos:
            self._request_sync()
        if report:
            self._report()

    def _stop_syncer(self) -> None:
        """Wait for the round in flight, then end the syncer (end of file on its socket)."""
        sock, proc = self._sock, self._syncer
        assert sock is not None and proc is not None and self._remove_reader is not None
        self._remove_reader(sock.fileno())
        sock.setblocking(True)
        sock.settimeout(STOP_TIMEOUT)
        try:
            while self._in_flight and self.failed is None:
                msg = sock.recv(syncer.ANSWER.size)
                if not msg:
                    raise OSError(errno.EPIPE, "the txn log's syncer process exited")
                self._answered(*syncer.ANSWER.unpack(msg), report=False)
        except OSError as e:
            self.fail(e)
        self._sock = None
        sock.close()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # ------------------------------------------------------------ reporting and failure

    def _report(self) -> None:
        if self._synced_zxid > self._reported_zxid:
            self._reported_zxid = self._synced_zxid
            self.on_durable(self._synced_zxid)
        if self.failed is not None and not self._failure_reported and self.on_failure is not None:
            self._failure_reported = True
            self.on_failure(self.failed)

    def fail(self, exc: OSError) -> None:
        """Stop the log for good: nothing more is written or reported durable."""
        if self.failed is not None:
            return
        self.failed = exc
        log.error("txn log write failed (%s); no further writes will be accepted", exc)
        if self._file is not None:
            self._roll_back(self._file)
            self._file = None
        if self._sock is not None and self._remove_reader is not None:
            # Stop listening: a syncer that exited leaves its socket readable (end of file)
            # on every loop turn. close() ends it.
            self._remove_reader(self._sock.fileno())
        if self._call_soon is not None:  # not from inside the caller's append: on the loop
            self._call_soon(self._report)

    def _roll_back(self, f: _LogFile) -> None:
        """Cut the file back to its last durable entry, so that a restart does not replay
        entries whose writers were told they failed."""
        disk = self.disk
        try:
            if f.durable_pos < f.pos:
                disk.ftruncate(f.fd, f.durable_pos)
                disk.fdatasync(f.fd)
                self.last_zxid = self._synced_zxid
                log.info("txn log cut back to offset %d, its last durable entry", f.durable_pos)
        except OSError as e:
            log.error("could not cut the txn log back to its last durable entry (%s): a restart "
                      "may replay txns whose clients were told they failed", e)
        finally:
            with contextlib.suppress(OSError):
                disk.close(f.fd)

    def _count_sync(self, seconds: float) -> None:
        ms = seconds * 1000
        self._recent_fsync_s += (seconds - self._recent_fsync_s) / 8
        st = self.stats
        st.fsyncs += 1
        st.last_fsync_ms = ms
        st.max_fsync_ms = max(st.max_fsync_ms, ms)
        if self.on_fsync is not None:
            self.on_fsync(ms)
        if ms > self.warn_threshold_ms:
            log.warning("fsync-ing the write ahead log took %dms which will adversely effect operation "
                        "latency. See the ZooKeeper troubleshooting guide", ms)

    # ------------------------------------------------------------ files

    def _open_file(self, zxid: int) -> _LogFile:
        path = os.path.join(self.log_dir, log_name(zxid))
        log.info("Creating new log file: %s", log_name(zxid))
        fd = self.disk.open_write(path)
        header = FILE_HEADER.pack(LOG_MAGIC, VERSION, 0)
        write_all(self.disk, fd, header, 0)
        # The new name must survive a crash as well as the entries inside it.
        self.disk.fsync_dir(self.log_dir)
        self._next_gen += 1
        return _LogFile(self._next_gen, fd, len(header), len(header), len(header))

    def _preallocate(self, f: _LogFile, n: int) -> None:
        target = f.size
        while True:
            grown = pad_size(f.pos + n, target, self.pre_alloc_size)
            if grown == target:
                break
            target = grown
        if target > f.size:
            self.disk.allocate(f.fd, f.size, target - f.size)
            f.size = target

    def _close(self, f: _LogFile) -> None:
        try:
            self.disk.close(f.fd)
        except OSError as e:
            log.error("closing the txn log failed: %s", e)


def fsync_dir(path: str, disk: Disk = OS_DISK) -> None:
    disk.fsync_dir(path)
