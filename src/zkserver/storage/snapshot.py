"""Snapshots in Apache ZooKeeper's version-2 format (FileSnap, SerializeUtils, DataTree).

Layout: FileHeader{'ZKSN', 2, dbid -1}, then the body: int session count, {long id, int
timeout}...; the ACL cache (int count, {long index, vector<ACL>}...); nodes, every parent before
its children, from the root, whose path is "": {ustring path, buffer data, long acl index,
StatPersisted}; ustring "/" ends the tree. Then a seal (long Adler32 of every byte so far,
ustring "/"); ZxidDigest{long zxid, int version, long digest} and a second seal. Snapshots that
3.9 writes add lastProcessedZxid and a third seal, which we accept and ignore. ACL index -1 means
OPEN_ACL_UNSAFE. The body alone is what a leader streams after SNAP (storage/snapstream.py).

Writing goes to a temp name that Apache's file scanner does not match (tmp.snapshot.<zxid>),
is fsynced, renamed to snapshot.<zxid>, and the directory is fsynced: a crash leaves either no
snapshot or a complete one. `SnapshotTaker` writes in a forked child so the server keeps
serving: the child sees the tree exactly as it was at fork time.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import signal
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..jute.codec import JuteError, Reader, encode_ustring
from ..jute.records import STAT_PERSISTED, ACLList, encode_acl_list, read_acl_list
from ..tree.acl import OPEN_ACL_UNSAFE, shared_acl
from ..tree.datatree import DataTree, ZNode
from .digest import DIGEST_STAT, DIGEST_VERSION, EXCLUDED_PREFIX, signed64
from .disk import OS_DISK, Disk, write_seq
from .txnlog import FILE_HEADER, StorageError, sorted_files, zxid_from_name

log = logging.getLogger("zkserver.storage.snapshot")

SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
SNAP_PREFIX = "snapshot."
TMP_PREFIX = "tmp.snapshot."
_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_SESSION = struct.Struct(">qi")
_ZXID_DIGEST = struct.Struct(">qiq")
_SEAL_TAIL = b"\x00\x00\x00\x01/"  # ustring "/" that ends every seal
_SEAL_SIZE = 8 + len(_SEAL_TAIL)
_FLUSH_AT = 1 << 20


def snapshot_name(zxid: int) -> str:
    return f"{SNAP_PREFIX}{zxid:x}"


class _SealedOut:
    """Buffered writes to a file descriptor with a running Adler32 (Apache's CheckedOutputStream),
    through gzip when asked (the checksum covers the uncompressed bytes, as in Apache)."""

    def __init__(self, fd: int, disk: Disk = OS_DISK, gz: bool = False):
        self.fd = fd
        self.disk = disk
        self.buf = bytearray()
        self.adler = 1
        # GZIPOutputStream's default level (Deflater.DEFAULT_COMPRESSION is zlib's 6); wbits 31:
        # a gzip header and trailer around the deflate stream.
        self.z = zlib.compressobj(6, zlib.DEFLATED, 31) if gz else None

    def write(self, b: bytes | bytearray) -> None:
        self.buf += b
        if len(self.buf) >= _FLUSH_AT:
            self.flush()

    def _emit(self, data: bytes | bytearray) -> None:
        if self.z is not None:
            data = self.z.compress(data)
        if data:
            write_seq(self.disk, self.fd, data)

    def flush(self) -> None:
        if self.buf:
            self.adler = zlib.adler32(self.buf, self.adler)
            self._emit(self.buf)
            self.buf = bytearray()

    def seal(self) -> None:
        self.adler = zlib.adler32(self.buf, self.adler)
        self.buf += _LONG.pack(self.adler) + _SEAL_TAIL
        # The seal's own bytes count towards the next seal's checksum.
        self.adler = zlib.adler32(self.buf[-13:], self.adler)
        self._emit(self.buf)
        self.buf = bytearray()

    def finish(self) -> None:
        self.flush()
        if self.z is not None:
            write_seq(self.disk, self.fd, self.z.flush())


@dataclass(frozen=True)
class SnapFormat:
    """How snapshots are written: `zookeeper.digest.enabled` (the ZxidDigest section),
    `zookeeper.snapshot.compression.method` ("" or "gz"; snappy is read by neither us nor
    this writer) and `zookeeper.serializeLastProcessedZxid.enabled` (3.9's lastProcessedZxid
    section, which 3.8 readers skip)."""

    digest: bool = True
    compression: str = ""
    last_zxid: bool = False

    @property
    def suffix(self) -> str:
        return ".gz" if self.compression == "gz" else ""


class _Sink(Protocol):
    def write(self, b: bytes | bytearray) -> None: ...


def write_body(out: _Sink, tree: DataTree, sessions: dict[int, int]) -> int:
    """Sessions, the ACL map, the nodes and the "/" that ends them (SerializeUtils.serializeSnapshot);
    return the tree digest, computed on the way."""
    out.write(_INT.pack(len(sessions)))
    for sid, timeout in sessions.items():
        out.write(_SESSION.pack(sid, timeout))
    index = {acl: i for i, acl in enumerate(dict.fromkeys(n.acl for n in tree.nodes.values()), 1)}
    out.write(_INT.pack(len(index)))
    for acl, i in index.items():
        out.write(_LONG.pack(i) + encode_acl_list(acl))
    digest = _write_nodes(out, tree, index)
    out.write(encode_ustring("/"))
    return digest


def write_snapshot_fd(fd: int, tree: DataTree, sessions: dict[int, int], digest_enabled: bool = True,
                      disk: Disk = OS_DISK, fmt: SnapFormat | None = None) -> None:
    """Serialize the tree and sessions to an open file."""
    fmt = fmt or SnapFormat(digest=digest_enabled)
    out = _SealedOut(fd, disk, gz=fmt.compression == "gz")
    out.write(FILE_HEADER.pack(SNAP_MAGIC, 2, -1))
    digest = write_body(out, tree, sessions)
    out.seal()
    zxid = tree.last_processed_zxid
    if fmt.digest:
        out.write(_ZXID_DIGEST.pack(zxid, DIGEST_VERSION, digest if zxid else 0))
        out.seal()
    if fmt.last_zxid:  # the tree is exact at its zxid (a forked copy), so this is the name's zxid
        out.write(_LONG.pack(zxid))
        out.seal()
    out.finish()


_NULL_DATA = b"\xff\xff\xff\xff"  # a node created with null data keeps it null, as Apache writes it


def _write_nodes(out: _Sink, tree: DataTree, index: dict[ACLList, int]) -> int:
    """Write every node and return the tree digest (computed on the way, as digest.tree_digest
    does). The nodes go in the tree's dict order, which puts every parent before its children:
    a node enters the dict only while its parent exists, and a parent cannot leave it while it
    has children. Readers (ours and Apache's) need exactly that, not depth-first order."""
    pack_int, pack_tail, pack_dig = _INT.pack, _NODE_TAIL.pack, DIGEST_STAT.pack
    crc32, excluded = zlib.crc32, EXCLUDED_PREFIX
    acl_of: dict[int, int] = {}  # id(acl) -> index: ACL tuples are shared, hashing them is not cheap
    parts: list[bytes] = []
    total = 0
    for path, n in tree.nodes.items():
        key = b"" if path == "/" else path.encode("utf-8")
        data, acl = n.data, n.acl
        i = acl_of.get(id(acl))
        if i is None:
            i = acl_of[id(acl)] = index[acl]
        parts += (pack_int(len(key)), key, _NULL_DATA if data is None else pack_int(len(data)), data or b"",
                  pack_tail(i, n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.cversion, n.aversion, n.owner,
                            n.pzxid))
        if not path.startswith(excluded):
            crc = crc32(data, crc32(key)) if data else crc32(key)
            total += crc32(pack_dig(n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version, n.cversion,
                                    n.aversion, n.owner), crc)
        if len(parts) >= 20000:
            out.write(b"".join(parts))
            parts.clear()
    out.write(b"".join(parts))
    return signed64(total)


def write_snapshot(snap_dir: str, tree: DataTree, sessions: dict[int, int], digest_enabled: bool = True,
                   disk: Disk = OS_DISK, fmt: SnapFormat | None = None) -> str:
    """Write snapshot.<tree zxid>[.gz] atomically (temp, fsync, rename, fsync dir); return its path."""
    fmt = fmt or SnapFormat(digest=digest_enabled)
    tmp = write_snapshot_temp(snap_dir, tree, sessions, disk, fmt)
    final = os.path.join(snap_dir, snapshot_name(tree.last_processed_zxid) + fmt.suffix)
    disk.rename(tmp, final)
    disk.fsync_dir(snap_dir)
    return final


def write_snapshot_temp(snap_dir: str, tree: DataTree, sessions: dict[int, int], disk: Disk,
                        fmt: SnapFormat) -> str:
    """Write the snapshot under a temp name no reader takes for a snapshot and fsync it; return
    that path. Renaming it to snapshot_name(zxid) + fmt.suffix publishes it."""
    tmp = os.path.join(snap_dir, f"{TMP_PREFIX}{tree.last_processed_zxid:x}.{os.getpid()}")
    fd = disk.open_write(tmp)
    try:
        write_snapshot_fd(fd, tree, sessions, fmt.digest, disk, fmt)
        disk.fsync(fd)
    except BaseException:
        disk.close(fd)
        disk.unlink(tmp)
        raise
    disk.close(fd)
    return tmp


# ---------------------------------------------------------------- reading


@dataclass
class Snapshot:
    zxid: int
    tree: DataTree
    sessions: dict[int, int]
    digest: tuple[int, int, int] | None = None  # (zxid, version, digest) when present
    path: str = ""
    acl_count: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class _SealedIn:
    """A Reader over the whole file plus seal checks (Apache's CheckedInputStream)."""

    def __init__(self, data: bytes):
        self.data = data
        self.r = Reader(data, max_len=len(data))

    def check_seal(self) -> None:
        at = self.r.pos
        expect = zlib.adler32(memoryview(self.data)[:at])
        val = self.r.long()
        if self.r.ustring() != "/":
            raise StorageError(f"no seal marker at offset {at}")
        if (val & 0xFFFFFFFF) != expect or val < 0:
            raise StorageError(f"checksum mismatch at offset {at}")


def _open_data(path: str, disk: Disk = OS_DISK) -> bytes:
    data = disk.read_file(path)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".snappy"):
        raise StorageError("snappy-compressed snapshots are not supported")
    return data


def looks_complete(path: str) -> bool:
    """Apache's isValidSnapshot for plain files: ends with the seal's ustring "/"."""
    if path.endswith((".gz", ".snappy")):
        return True
    try:
        size = os.path.getsize(path)
        if size < 10:
            return False
        with open(path, "rb") as f:
            f.seek(size - 5)
            return f.read(5) == _SEAL_TAIL
    except OSError:
        return False


def read_snapshot(path: str, extended_types: bool = False, disk: Disk = OS_DISK) -> Snapshot:
    """Load one snapshot file; raise StorageError if it is not a complete, valid snapshot."""
    zxid = zxid_from_name(os.path.basename(path), SNAP_PREFIX)
    try:
        inp = _SealedIn(_open_data(path, disk))
        r = inp.r
        magic, version, _dbid = r.int(), r.int(), r.long()
        if magic != SNAP_MAGIC or version != 2:
            raise StorageError(f"bad header: magic 0x{magic & 0xFFFFFFFF:x} version {version}")
        tree, sessions, acl_count = read_body(r, extended_types)
        inp.check_seal()
        snap = Snapshot(zxid, tree, sessions, path=path, acl_count=acl_count)
        # What follows the tree is told apart by its size: ZxidDigest + seal (33 bytes),
        # lastProcessedZxid + seal (21), or both (54), as Apache's writer leaves them.
        if r.remaining >= _ZXID_DIGEST.size + _SEAL_SIZE and r.remaining != _LONG.size + _SEAL_SIZE:
            dz, dv, d = r.long(), r.int(), r.long()
            inp.check_seal()
            snap.digest = (dz, dv, d)
        if r.remaining >= _LONG.size + _SEAL_SIZE:
            snap.extra["last_processed_zxid"] = r.long()
            inp.check_seal()
    except (JuteError, UnicodeDecodeError, OSError, EOFError, zlib.error) as e:
        raise StorageError(str(e)) from None
    tree.last_processed_zxid = zxid
    return snap


def read_body(r: Reader, extended_types: bool) -> tuple[DataTree, dict[int, int], int]:
    """What write_body wrote: (tree, sessions, ACLs known, OPEN_ACL_UNSAFE's -1 included). Raises
    StorageError or JuteError (UnicodeDecodeError for a path that is not UTF-8) on other bytes."""
    sessions = {}
    for _ in range(_count(r)):
        sid = r.long()
        sessions[sid] = r.int()
    acls = _read_acls(r)
    return _read_nodes(r, acls, extended_types), sessions, len(acls)


def _count(r: Reader) -> int:
    n = r.int()
    if n < 0 or n > r.remaining:
        raise StorageError(f"impossible count {n}")
    return n


def _read_acls(r: Reader) -> dict[int, ACLList]:
    acls: dict[int, ACLList] = {-1: OPEN_ACL_UNSAFE}
    for _ in range(_count(r)):
        i = r.long()
        acls[i] = shared_acl(tuple(read_acl_list(r) or ()))
    return acls


_NODE_TAIL = struct.Struct(">q" + STAT_PERSISTED.format.lstrip(">"))  # ACL index, then StatPersisted


def _read_nodes(r: Reader, acls: dict[int, ACLList], extended_types: bool) -> DataTree:
    """The node list, parsed straight off the buffer: start-up time is mostly this loop (a
    million znodes), so it unpacks one struct per node and calls no Reader method."""
    tree = DataTree(extended_types=extended_types)
    nodes = tree.nodes
    nodes.clear()
    buf, pos, end = r._buf, r.pos, r.remaining + r.pos  # the buffer is ours (see _SealedIn)
    unpack_int, unpack_tail, tail_size = _INT.unpack_from, _NODE_TAIL.unpack_from, _NODE_TAIL.size
    try:
        while True:
            (n,) = unpack_int(buf, pos)
            pos += 4
            if n < 0 or pos + n > end:
                raise StorageError(f"bad path length {n} at offset {pos - 4}")
            spath = str(buf[pos:pos + n], "utf-8")
            pos += n
            if spath == "/":
                break
            (n,) = unpack_int(buf, pos)
            pos += 4
            if n < -1 or pos + n > end:
                raise StorageError(f"bad data length {n} for node {spath!r}")
            data = None if n == -1 else bytes(buf[pos:pos + n])  # null data stays null, as in Apache
            pos += max(n, 0)
            acl_index, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid = unpack_tail(buf, pos)
            pos += tail_size
            acl = acls.get(acl_index)
            if acl is None:
                raise StorageError(f"node {spath!r} refers to unknown ACL index {acl_index}")
            node = ZNode(data, acl, czxid, ctime, owner)
            node.mzxid, node.mtime, node.pzxid = mzxid, mtime, pzxid
            node.version, node.cversion, node.aversion = version, cversion, aversion
            if spath:
                cut = spath.rfind("/")
                parent = nodes.get(spath[:cut] or "/")
                if parent is None:
                    raise StorageError(f"Invalid Datatree, unable to find parent of path {spath}")
                parent.children[spath[cut + 1:]] = None
                if owner:
                    tree.index_owned(spath, owner)
                nodes[spath] = node
            else:
                nodes["/"] = node
    except struct.error:
        raise StorageError(f"truncated node list at offset {pos}") from None
    r.pos = pos
    if "/" not in nodes:
        raise StorageError("the snapshot has no root node")
    return tree


def snapshot_files(snap_dir: str, disk: Disk = OS_DISK) -> list[tuple[int, str]]:
    """(zxid, path) of snapshot files, newest first."""
    return sorted(sorted_files(snap_dir, SNAP_PREFIX, disk), reverse=True)


# ---------------------------------------------------------------- taking snapshots


class SnapshotTaker:
    """Writes snapshots in a forked child; the parent learns of the result via a pidfd.

    `add_reader(fd, cb)` / `remove_reader(fd)` are the event loop's. At most one snapshot runs
    at a time; `busy` says whether one does.
    """

    def __init__(self, snap_dir: str, add_reader: Callable, remove_reader: Callable,
                 digest_enabled: bool = True, on_done: Callable[[int, bool], None] | None = None,
                 fmt: SnapFormat | None = None):
        self.snap_dir = snap_dir
        self.add_reader = add_reader
        self.remove_reader = remove_reader
        self.digest_enabled = digest_enabled
        self.fmt = fmt or SnapFormat(digest=digest_enabled)
        self.on_done = on_done
        self.pid = 0
        self.zxid = 0
        self._pidfd = -1

    @property
    def busy(self) -> bool:
        return self.pid != 0

    def take(self, tree: DataTree, sessions: dict[int, int]) -> bool:
        """Fork a child that writes snapshot.<tree zxid>; False if one is already running."""
        if self.busy:
            return False
        self.zxid = tree.last_processed_zxid
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # child: no loop, no logging, no locks; just the file, then _exit
            os._exit(_child_write(self.snap_dir, tree, sessions, self.fmt))
        fork_ms = (time.perf_counter() - t0) * 1000  # the only pause the server sees: page tables copied
        self.pid = pid
        self._pidfd = os.pidfd_open(pid)
        self.add_reader(self._pidfd, self._reap)
        log.info("Creating snapshot %s in child process %d (fork took %.1f ms)", snapshot_name(self.zxid), pid,
                 fork_ms)
        return True

    def _reap(self) -> None:
        self.remove_reader(self._pidfd)
        os.close(self._pidfd)
        _, status = os.waitpid(self.pid, 0)
        ok = os.waitstatus_to_exitcode(status) == 0
        self.pid, self._pidfd = 0, -1
        if ok:
            log.info("Snapshot %s written", snapshot_name(self.zxid))
        else:
            log.error("Writing snapshot %s failed (child exit status %d)", snapshot_name(self.zxid),
                      os.waitstatus_to_exitcode(status))
        if self.on_done is not None:
            self.on_done(self.zxid, ok)

    def wait(self) -> None:
        """Block until a running snapshot finishes (shutdown)."""
        if self.busy:
            self._reap()


def _child_write(snap_dir: str, tree: DataTree, sessions: dict[int, int], fmt: SnapFormat) -> int:
    # A signal meant for the server must not run the parent's handlers in this copy.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    import gc
    gc.disable()  # collecting would only touch (and so copy) the parent's pages
    try:
        write_snapshot(snap_dir, tree, sessions, fmt.digest, fmt=fmt)
        return 0
    except BaseException:
        return 1
