"""A LazyFS-style FUSE file system: writes stay in memory until fsync, and a crash loses them.

Why. kill -9 of a server loses nothing it wrote: the kernel's page cache outlives the process.
Power loss does lose the page cache. To give a real, unmodified zkserver process a disk that
can lose what it did not fsync, its data dir is a FUSE mount of this file system over a backing
directory that holds only what was made durable.

Theory of operation. The backing directory is the disk. A file's unsynced changes (written
pages, a new size from a write, truncate or fallocate) live in this process's memory, in 4 KB
pages; reads see them over the backing file, as a page cache does. fsync/fdatasync of a file
writes its dirty pages and size to the backing file and fsyncs it. `crash` (from the control
socket) is the power cut: each dirty page reaches the disk with the given probability (the
kernel may have written some back: a torn tail, page by page) and the rest is lost; then the
process exits at once, leaving a dead mount for the harness to unmount. Directory operations
(create, rename, unlink, mkdir) go to the backing directory at once: they are durable without
a directory fsync, which real file systems do not promise, so lost renames are not tested here.

Run: `python -m tests.support.lazyfs BACKING MOUNTPOINT CONTROL_SOCKET [FSYNC_DELAY_MS]`
(FUSE's threads share one lock; a thread serves the control socket; the delay makes a slow
disk: an fsync makes the data durable only after it, while other writes go on). `LazyMount` below does it for a test.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

PAGE = 4096
MOUNT_TIMEOUT_S = 10.0


class _Dirty:
    """A file's unsynced state: its size and the pages written since the last fsync."""

    def __init__(self, size: int):
        self.size = size
        self.pages: dict[int, bytearray] = {}


def _ops_class() -> type:
    import mfusepy as fuse  # only the FUSE process needs it

    class LazyOps(fuse.Operations):
        use_ns = True

        def __init__(self, root: str, fsync_delay_ms: float = 0.0):
            self.root = root
            self.fsync_delay_s = fsync_delay_ms / 1000  # a slow disk: every fsync takes this long
            self.dirty: dict[str, _Dirty] = {}
            self._mutex = threading.Lock()

        # ------------------------------------------------------------ helpers

        def _p(self, path: str) -> str:
            return os.path.join(self.root, path.lstrip("/"))

        def _disk_read(self, path: str, size: int, offset: int) -> bytes:
            with open(self._p(path), "rb") as f:
                f.seek(offset)
                return f.read(size)

        def _state(self, path: str) -> _Dirty:
            d = self.dirty.get(path)
            if d is None:
                d = self.dirty[path] = _Dirty(os.path.getsize(self._p(path)))
            return d

        def _page(self, path: str, d: _Dirty, index: int, dirty: bool = True) -> bytearray:
            """Page `index` as the file is now; kept among the dirty pages when `dirty`."""
            page = d.pages.get(index)
            if page is None:
                page = bytearray(self._disk_read(path, PAGE, index * PAGE).ljust(PAGE, b"\0"))
                if index * PAGE + PAGE > d.size:  # bytes past the size read as zeros
                    keep = max(0, d.size - index * PAGE)
                    page[keep:] = bytes(PAGE - keep)
                if dirty:
                    d.pages[index] = page
            return page

        def _flush(self, path: str, keep: float = 1.0, rng: random.Random | None = None) -> None:
            d = self.dirty.pop(path, None)
            if d is None or not os.path.exists(self._p(path)):
                return
            fd = os.open(self._p(path), os.O_WRONLY)
            try:
                if keep >= 1.0:
                    os.ftruncate(fd, d.size)
                for index in sorted(d.pages):
                    if keep >= 1.0 or (rng is not None and rng.random() < keep):
                        data = bytes(d.pages[index][: max(0, min(PAGE, d.size - index * PAGE))])
                        os.pwrite(fd, data, index * PAGE)
                os.fsync(fd)
            finally:
                os.close(fd)

        # ------------------------------------------------------------ files

        def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
            with self._mutex:
                st = os.lstat(self._p(path))
                out = {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size")}
                out.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
                d = self.dirty.get(path)
                if d is not None:
                    out["st_size"] = d.size
                return out

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            with self._mutex:
                os.close(os.open(self._p(path), os.O_WRONLY | os.O_CREAT, mode))
                return 0

        def open(self, path: str, flags: int) -> int:
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            with self._mutex:
                d = self.dirty.get(path)
                if d is None:
                    return self._disk_read(path, size, offset)
                end = min(offset + size, d.size)
                out = bytearray()
                pos = offset
                while pos < end:
                    index, at = divmod(pos, PAGE)
                    page = self._page(path, d, index, dirty=False)
                    take = min(PAGE - at, end - pos)
                    out += page[at:at + take]
                    pos += take
                return bytes(out)

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            with self._mutex:
                d = self._state(path)
                pos, view = offset, memoryview(data)
                while view:
                    index, at = divmod(pos, PAGE)
                    page = self._page(path, d, index)
                    take = min(PAGE - at, len(view))
                    page[at:at + take] = view[:take]
                    view, pos = view[take:], pos + take
                d.size = max(d.size, offset + len(data))
                return len(data)

        def truncate(self, path: str, length: int, fh: Any = None) -> int:
            with self._mutex:
                d = self._state(path)
                for index in [i for i in d.pages if i * PAGE >= length]:
                    del d.pages[index]
                if length % PAGE and length < d.size:
                    page = self._page(path, d, length // PAGE)
                    page[length % PAGE:] = bytes(PAGE - length % PAGE)
                d.size = length
                return 0

        def fallocate(self, path: str, mode: int, offset: int, length: int, fh: int) -> int:
            if mode:
                raise fuse.FuseOSError(errno.EOPNOTSUPP)
            with self._mutex:
                d = self._state(path)
                d.size = max(d.size, offset + length)
                return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            if self.fsync_delay_s:
                time.sleep(self.fsync_delay_s)  # a slow disk: nothing is durable until it is done
            with self._mutex:
                self._flush(path)
            return 0

        def flush(self, path: str, fh: int) -> int:
            return 0

        def release(self, path: str, fh: int) -> int:
            return 0

        # ------------------------------------------------------------ directories (durable at once)

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *os.listdir(self._p(path))]

        def mkdir(self, path: str, mode: int) -> int:
            os.mkdir(self._p(path), mode)
            return 0

        def rmdir(self, path: str) -> int:
            os.rmdir(self._p(path))
            return 0

        def unlink(self, path: str) -> int:
            with self._mutex:
                self.dirty.pop(path, None)
                os.unlink(self._p(path))
                return 0

        def rename(self, old: str, new: str) -> int:
            with self._mutex:
                os.rename(self._p(old), self._p(new))
                self.dirty.pop(new, None)
                if old in self.dirty:
                    self.dirty[new] = self.dirty.pop(old)
                return 0

        def chmod(self, path: str, mode: int) -> int:
            os.chmod(self._p(path), mode)
            return 0

        def utimens(self, path: str, times: Any = None) -> int:
            return 0

        def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            st = os.statvfs(self._p(path))
            return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                                 "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

        # ------------------------------------------------------------ the power cut

        def crash(self, keep: float, seed: int) -> int:
            """Each dirty page reaches the disk with probability `keep`; the rest is lost."""
            with self._mutex:
                rng = random.Random(seed)
                lost = 0
                for path in sorted(self.dirty):
                    lost += len(self.dirty[path].pages)
                    self._flush(path, keep, rng)
                return lost

    return LazyOps


def _serve_control(ops: Any, sock_path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    while True:
        conn, _ = server.accept()
        words = conn.recv(256).decode().split()
        if words[:1] == ["crash"]:
            pages = ops.crash(float(words[1]), int(words[2]))
            conn.sendall(f"crashed {pages}\n".encode())
            conn.close()
            os._exit(0)  # the machine is off: the mount dies with this process
        conn.sendall(f"dirty {sum(len(d.pages) for d in ops.dirty.values())}\n".encode())
        conn.close()


def main(argv: list[str]) -> None:
    import mfusepy as fuse

    backing, mountpoint, control, *rest = argv
    ops = _ops_class()(backing, float(rest[0]) if rest else 0.0)
    threading.Thread(target=_serve_control, args=(ops, control), daemon=True).start()
    fuse.FUSE(ops, mountpoint, foreground=True, nothreads=False)


def fuse_missing() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "fusermount3 missing (Debian package fuse3)"
    try:
        import mfusepy  # noqa: F401
    except ImportError:
        return "mfusepy missing (the test extra)"
    return None


def require_fuse() -> None:
    """Skip without FUSE; in CI (.ci/test installs it) a missing FUSE is a failure."""
    why = fuse_missing()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"FUSE is needed in CI: {why}")
        pytest.skip(why)


class LazyMount:
    """One mount for a test: `start()`, `crash(keep, seed)` (power cut, then mounted again
    fresh), `stop()`. The process is held by PID."""

    def __init__(self, backing: Path, mountpoint: Path, log_path: Path, fsync_delay_ms: float = 0.0):
        self.backing, self.mountpoint, self.log_path = backing, mountpoint, log_path
        self.fsync_delay_ms = fsync_delay_ms
        self.control = str(backing.parent / f".{backing.name}.control")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.control)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.lazyfs", str(self.backing),
                                          str(self.mountpoint), self.control, str(self.fsync_delay_ms)],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[2])
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not (os.path.ismount(self.mountpoint) and os.path.exists(self.control)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"lazyfs did not mount {self.mountpoint}: see {self.log_path}")
            time.sleep(0.02)

    def _command(self, text: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.control)
            s.sendall(text.encode())
            return s.recv(256).decode().strip()

    def dirty_pages(self) -> int:
        return int(self._command("dirty").split()[1])

    def crash(self, keep: float, seed: int) -> int:
        """Power cut: unsynced pages lost (each kept with probability `keep`); mounted again."""
        answer = self._command(f"crash {keep} {seed}")
        self._reap()
        self.start()
        return int(answer.split()[1])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False, capture_output=True)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False, capture_output=True)


if __name__ == "__main__":
    main(sys.argv[1:])
