"""An in-memory Disk that can lose power: what a power cut does to files that were not fsynced.

Theory of operation. Each file (inode) holds what reads see now (`data`: the page cache) and
what the device holds for sure (`synced`: the contents at the last fsync), plus the byte
ranges written since then. Each directory holds its durable names (as at its last fsync_dir)
and the list of name changes since (create, rename, unlink).

`power_fail()` (or a crash point armed with `crash_after(n)`: the n-th mutating operation
from now does not complete, a write in it only partly) stops the machine: every later call
raises `PowerLoss` until `reboot()`. `reboot(mode)` decides what survived:

- each directory keeps a prefix of its name changes since its last fsync (all, none, or a
  random number of them: a journaling file system commits them in order);
- each file keeps its synced bytes, and of the bytes written since its last fsync:
  "drop" none; "keep" all; "torn" a random prefix of the changed range; "pages" each changed
  4 KiB page independently, and the size either old or new (write-back in any order);
  "flip" a torn prefix with one bit flipped somewhere in what was written but not synced.
  "random" picks one of those per file.

Synced bytes are never changed: a crash here is a power cut, not a failing medium. Faults
for a working disk come from `inject(op, errno)`: the next call of `op` raises that OSError
(an fsync that reports EIO, a write that hits ENOSPC after writing part of its bytes).
`restart()` is a process crash without power loss: open files close, the page cache stays.
"""

from __future__ import annotations

import errno as errnos
import os
import random
from dataclasses import dataclass, field

PAGE = 4096
MODES = ("drop", "keep", "torn", "pages", "flip")


class PowerLoss(BaseException):
    """The simulated machine lost power: no code on it runs any further. A BaseException, so
    that no handler in the code under test mistakes it for an I/O error it may handle."""


@dataclass(eq=False)
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    synced: bytes = b""
    written: list[tuple[int, int]] = field(default_factory=list)  # ranges changed since the last sync

    def touch(self, start: int, end: int) -> None:
        if end > start:
            self.written.append((start, end))


@dataclass
class _Fault:
    err: int
    count: int
    short: bool  # a write: first write part of the bytes and return a short count
    after: int  # calls that still succeed first
    where: str  # only calls on paths that contain this


class SimDisk:
    def __init__(self, rng: random.Random | None = None):
        self.rng = rng or random.Random(0)
        self.dirs: set[str] = {"/"}
        self.names: dict[str, _Inode] = {}  # path -> inode, as reads see it now
        self.durable: dict[str, _Inode] = {}  # path -> inode, as the directories hold them on the device
        self.pending: dict[str, list[tuple[str, str, object]]] = {}  # dir -> name changes since its fsync
        self._fds: dict[int, list] = {}  # fd -> [inode, position]
        self._next_fd = 3
        self._countdown: int | None = None
        self._faults: dict[str, list[_Fault]] = {}
        self.crashed = False
        self.mutations = 0  # mutating operations performed (to aim crash points)
        self.history: list[str] = []  # what each reboot did, for failure messages

    # ------------------------------------------------------------ control

    def makedirs(self, path: str) -> None:
        path = os.path.normpath(path)
        while path not in self.dirs:
            self.dirs.add(path)
            path = os.path.dirname(path)

    def crash_after(self, n: int | None) -> None:
        """Lose power during the n-th mutating operation from now (1: the next one)."""
        self._countdown = n

    def inject(self, op: str, err: int = errnos.EIO, count: int = 1, short: bool = False, after: int = 0,
               where: str = "") -> None:
        """After `after` more successful calls, the next `count` calls of `op` ("open",
        "pwrite", "write", "allocate", "fdatasync", "fsync", "ftruncate", "rename", "unlink",
        "fsync_dir") on a path containing `where` fail with OSError(err); with `short`, a
        write first writes part of its bytes."""
        self._faults.setdefault(op, []).append(_Fault(err, count, short, after, where))

    def power_fail(self) -> None:
        self.crashed = True

    def restart(self) -> None:
        """A process crash: handles close, every byte written stays (in the page cache)."""
        self._fds.clear()
        self._countdown = None
        self._faults.clear()

    def reboot(self, mode: str = "random") -> None:
        """Power comes back: decide what the device kept (see the module doc)."""
        rng = self.rng
        names = dict(self.durable)
        notes = []
        for d, ops in sorted(self.pending.items()):
            keep = {"drop": 0, "keep": len(ops)}.get(mode, rng.randint(0, len(ops)))
            for op, path, arg in ops[:keep]:
                if op == "link":
                    names[path] = arg  # type: ignore[assignment]
                elif op == "unlink":
                    names.pop(path, None)
                elif op == "rename" and path in names:
                    names[arg] = names.pop(path)  # type: ignore[index]
            if ops:
                notes.append(f"{d}: {keep}/{len(ops)} name changes kept")
        fresh: dict[int, _Inode] = {}
        for path, ino in sorted(names.items()):
            if id(ino) not in fresh:
                m = rng.choice(MODES) if mode == "random" else mode
                content = self._survivor(ino, m)
                if ino.written:
                    notes.append(f"{os.path.basename(path)}: {m}, {len(ino.synced)} synced -> {len(content)}")
                fresh[id(ino)] = _Inode(bytearray(content), content)
        self.names = {p: fresh[id(i)] for p, i in names.items()}
        self.durable = dict(self.names)
        self.pending = {}
        self._fds.clear()
        self._countdown = None
        self._faults.clear()
        self.crashed = False
        self.history.append("; ".join(notes) or "nothing unsynced")

    def _survivor(self, ino: _Inode, mode: str) -> bytes:
        cur, syn = bytes(ino.data), ino.synced
        if not ino.written or mode == "drop":
            return syn
        if mode == "keep":
            return cur
        rng = self.rng
        if mode == "pages":
            out = bytearray(syn)
            pages = {p for s, e in ino.written for p in range(s // PAGE, (e - 1) // PAGE + 1)}
            for p in sorted(pages):
                if rng.random() < 0.5:
                    chunk = cur[p * PAGE:(p + 1) * PAGE]
                    if len(out) < p * PAGE + len(chunk):
                        out.extend(bytes(p * PAGE + len(chunk) - len(out)))
                    out[p * PAGE:p * PAGE + len(chunk)] = chunk
            size = rng.choice((len(syn), len(cur)))
            return bytes(out[:size]) + bytes(max(0, size - len(out)))
        lo = min(s for s, _ in ino.written)
        k = rng.randint(lo, max(len(cur), len(syn)))
        out = bytearray(cur if k >= len(cur) else cur[:k] + syn[k:])
        if mode == "flip":
            spots = [(s, min(e, len(out))) for s, e in ino.written if min(e, len(out)) > s]
            if spots:
                s, e = rng.choice(spots)
                out[rng.randrange(s, e)] ^= 1 << rng.randrange(8)
        return bytes(out)

    def files(self) -> dict[str, bytes]:
        return {p: bytes(i.data) for p, i in sorted(self.names.items())}

    # ------------------------------------------------------------ the Disk protocol

    def _alive(self) -> None:
        if self.crashed:
            raise PowerLoss()

    def _mutate(self, op: str, path: str, data_len: int = 0) -> int | None:
        """Count a mutating call; raise an injected fault or the armed power loss. For a
        write, return how many bytes to write before giving up (None: all of them)."""
        self._alive()
        faults = self._faults.get(op)
        if faults and faults[0].where not in path:
            pass
        elif faults and faults[0].after > 0:
            faults[0].after -= 1
        elif faults:
            f = faults[0]
            if f.short and data_len > 1:
                f.short = False
                return self.rng.randrange(1, data_len)
            f.count -= 1
            if f.count <= 0:
                faults.pop(0)
            raise OSError(f.err, f"{os.strerror(f.err)} (injected into {op})")
        self.mutations += 1
        if self._countdown is not None:
            self._countdown -= 1
            if self._countdown <= 0:
                self.crashed = True
                if data_len > 1:
                    return -self.rng.randrange(0, data_len)  # write part of it, then the lights go out
                raise PowerLoss()
        return None

    def _dir_of(self, path: str) -> str:
        d = os.path.dirname(os.path.normpath(path))
        if d not in self.dirs:
            raise FileNotFoundError(errnos.ENOENT, "No such file or directory", path)
        return d

    def _fd(self, fd: int) -> list:
        self._alive()
        try:
            return self._fds[fd]
        except KeyError:
            raise OSError(errnos.EBADF, "Bad file descriptor") from None

    def _new_fd(self, ino: _Inode, path: str) -> int:
        fd = self._next_fd
        self._next_fd += 1
        self._fds[fd] = [ino, 0, path]
        return fd

    def open_write(self, path: str) -> int:
        path = os.path.normpath(path)
        d = self._dir_of(path)
        self._mutate("open", path)
        ino = self.names.get(path)
        if ino is None:
            ino = self.names[path] = _Inode()
            self.pending.setdefault(d, []).append(("link", path, ino))
        elif ino.data:
            ino.touch(0, len(ino.data))
            del ino.data[:]
        return self._new_fd(ino, path)

    def open_existing(self, path: str) -> int:
        self._alive()
        path = os.path.normpath(path)
        ino = self.names.get(path)
        if ino is None:
            raise FileNotFoundError(errnos.ENOENT, "No such file or directory", path)
        return self._new_fd(ino, path)

    def _put(self, h: list, data: bytes | memoryview, offset: int, op: str) -> int:
        ino = h[0]
        n = len(data)
        cut = self._mutate(op, h[2], n)
        if cut is not None:
            n = abs(cut)
        if offset > len(ino.data):
            ino.touch(len(ino.data), offset)
            ino.data.extend(bytes(offset - len(ino.data)))
        ino.data[offset:offset + n] = bytes(data[:n])
        ino.touch(offset, offset + n)
        if self.crashed:
            raise PowerLoss()
        return n

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        return self._put(self._fd(fd), data, offset, "pwrite")

    def write(self, fd: int, data: bytes | memoryview) -> int:
        h = self._fd(fd)
        n = self._put(h, data, h[1], "write")
        h[1] += n
        return n

    def allocate(self, fd: int, offset: int, length: int) -> None:
        ino, _, path = self._fd(fd)
        self._mutate("allocate", path)
        end = offset + length
        if end > len(ino.data):
            ino.touch(len(ino.data), end)
            ino.data.extend(bytes(end - len(ino.data)))

    def _sync(self, fd: int, op: str) -> None:
        ino, _, path = self._fd(fd)
        self._mutate(op, path)
        ino.synced = bytes(ino.data)
        ino.written.clear()

    def fdatasync(self, fd: int) -> None:
        self._sync(fd, "fdatasync")

    def fsync(self, fd: int) -> None:
        self._sync(fd, "fsync")

    def ftruncate(self, fd: int, length: int) -> None:
        ino, _, path = self._fd(fd)
        self._mutate("ftruncate", path)
        ino.touch(min(length, len(ino.data)), max(length, len(ino.data), len(ino.synced)))
        if length < len(ino.data):
            del ino.data[length:]
        else:
            ino.data.extend(bytes(length - len(ino.data)))

    def close(self, fd: int) -> None:
        self._fd(fd)
        del self._fds[fd]

    def read_file(self, path: str) -> bytes:
        return bytes(self._inode(path).data)

    def getsize(self, path: str) -> int:
        return len(self._inode(path).data)  # without copying the file, as a leader sizes its log

    def _inode(self, path: str) -> _Inode:
        self._alive()
        ino = self.names.get(os.path.normpath(path))
        if ino is None:
            raise FileNotFoundError(errnos.ENOENT, "No such file or directory", path)
        return ino

    def listdir(self, path: str) -> list[str]:
        self._alive()
        path = os.path.normpath(path)
        if path not in self.dirs:
            raise FileNotFoundError(errnos.ENOENT, "No such file or directory", path)
        return [os.path.basename(p) for p in self.names if os.path.dirname(p) == path]

    def rename(self, src: str, dst: str) -> None:
        src, dst = os.path.normpath(src), os.path.normpath(dst)
        d = self._dir_of(src)
        if self._dir_of(dst) != d:
            raise OSError(errnos.EXDEV, "SimDisk renames within one directory only")
        if src not in self.names:
            raise FileNotFoundError(errnos.ENOENT, "No such file or directory", src)
        self._mutate("rename", src)
        self.names[dst] = self.names.pop(src)
        self.pending.setdefault(d, []).append(("rename", src, dst))

    def unlink(self, path: str) -> None:
        path = os.path.normpath(path)
        d = self._dir_of(path)
        if path not in self.names:
            raise FileNotFoundError(errnos.ENOENT, "No such file or directory", path)
        self._mutate("unlink", path)
        del self.names[path]
        self.pending.setdefault(d, []).append(("unlink", path, None))

    def fsync_dir(self, path: str) -> None:
        path = os.path.normpath(path)
        if path not in self.dirs:
            raise FileNotFoundError(errnos.ENOENT, "No such file or directory", path)
        self._mutate("fsync_dir", path)
        for p in [p for p in self.durable if os.path.dirname(p) == path]:
            del self.durable[p]
        for p, ino in self.names.items():
            if os.path.dirname(p) == path:
                self.durable[p] = ino
        self.pending.pop(path, None)
