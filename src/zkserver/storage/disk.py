"""The Disk: every file operation the txn log, the snapshot writer and recovery perform.

Storage code never calls `os` for its data files directly; it calls a `Disk`. `OsDisk` is the
real one (thin wrappers over os calls on file descriptors). `storage.simdisk.SimDisk` keeps
files in memory, knows which bytes were fsynced, and can lose power: the power-loss tests run
the same txn log, snapshot writer and recovery code on it.

Handles are ints (file descriptors for OsDisk). Only what storage needs is here: files are
written by offset (`pwrite`, the log) or in sequence (`write`, snapshots), grown with
`allocate`, made durable with `fdatasync`/`fsync`, cut with `ftruncate`; names change with
`rename`/`unlink` and become durable with `fsync_dir`.
"""

from __future__ import annotations

import errno
import os
from typing import Protocol


class Disk(Protocol):
    def open_write(self, path: str) -> int:
        """Create `path` (or truncate it) for writing; a new name is durable after fsync_dir."""
        ...

    def open_existing(self, path: str) -> int:
        """Open an existing file for writing, keeping its contents."""
        ...

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int: ...

    def write(self, fd: int, data: bytes | memoryview) -> int:
        """Write at the handle's position and advance it (may write fewer bytes than given)."""
        ...

    def allocate(self, fd: int, offset: int, length: int) -> None:
        """Grow the file with zeros so that [offset, offset+length) exists (preallocation)."""
        ...

    def fdatasync(self, fd: int) -> None: ...

    def fsync(self, fd: int) -> None: ...

    def ftruncate(self, fd: int, length: int) -> None: ...

    def close(self, fd: int) -> None: ...

    def read_file(self, path: str) -> bytes: ...

    def getsize(self, path: str) -> int: ...

    def listdir(self, path: str) -> list[str]:
        """Names in the directory; FileNotFoundError when it does not exist."""
        ...

    def rename(self, src: str, dst: str) -> None: ...

    def unlink(self, path: str) -> None: ...

    def fsync_dir(self, path: str) -> None: ...


def write_all(disk: Disk, fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = disk.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def write_seq(disk: Disk, fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[disk.write(fd, view):]


def truncate_durably(disk: Disk, path: str, length: int) -> None:
    """Cut a file to `length` bytes and make the cut durable (recovery's torn-tail repair)."""
    fd = disk.open_existing(path)
    try:
        disk.ftruncate(fd, length)
        disk.fsync(fd)
    finally:
        disk.close(fd)


def replace_durably(disk: Disk, path: str, data: bytes) -> None:
    """Give `path` the contents `data` atomically: write `<path>.tmp`, fsync it, rename it over
    `path`, fsync the directory. A crash leaves the old contents or the new, never a mix (Apache's
    AtomicFileOutputStream, which leaves out the directory fsync)."""
    tmp = path + ".tmp"
    fd = disk.open_write(tmp)
    try:
        write_seq(disk, fd, data)
        disk.fsync(fd)
    finally:
        disk.close(fd)
    disk.rename(tmp, path)
    disk.fsync_dir(os.path.dirname(path))


class OsDisk:
    """The real disk."""

    def open_write(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def open_existing(self, path: str) -> int:
        return os.open(path, os.O_WRONLY)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def allocate(self, fd: int, offset: int, length: int) -> None:
        try:
            os.posix_fallocate(fd, offset, length)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.pwrite(fd, b"\0", offset + length - 1)  # a sparse tail, as Apache's FilePadding

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def close(self, fd: int) -> None:
        os.close(fd)

    def read_file(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def getsize(self, path: str) -> int:
        return os.path.getsize(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


OS_DISK = OsDisk()
