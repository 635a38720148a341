"""lazyfs: a FUSE mount whose unsynced writes a power cut loses, as a page cache's are."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.lazyfs import PAGE, LazyMount, require_fuse


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[LazyMount]:
    require_fuse()
    m = LazyMount(tmp_path / "disk", tmp_path / "mnt", tmp_path / "lazyfs.log")
    m.start()
    try:
        yield m
    finally:
        m.stop()


def test_what_was_fsynced_survives_a_power_cut_and_nothing_else(mount):
    path = mount.mountpoint / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(fd, b"A" * 5000, 0)
    os.fdatasync(fd)
    os.pwrite(fd, b"B" * 5000, 5000)
    os.posix_fallocate(fd, 10000, 3 * PAGE)
    os.close(fd)
    assert path.read_bytes()[:10000] == b"A" * 5000 + b"B" * 5000  # the "page cache" reads
    assert os.path.getsize(path) == 10000 + 3 * PAGE
    assert (mount.backing / "log").read_bytes() == b"A" * 5000  # the disk holds the synced part
    assert mount.crash(keep=0.0, seed=1) > 0
    assert path.read_bytes() == b"A" * 5000


def test_a_torn_power_cut_keeps_whole_pages_of_the_unsynced_tail(mount):
    path = mount.mountpoint / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.fsync(fd)
    os.pwrite(fd, b"".join(bytes([65 + i]) * PAGE for i in range(16)), 0)
    os.close(fd)
    assert mount.crash(keep=0.5, seed=3) == 16
    data = path.read_bytes()
    kept = [i for i in range(len(data) // PAGE) if data[i * PAGE:(i + 1) * PAGE] == bytes([65 + i]) * PAGE]
    assert 0 < len(kept) < 16
    assert all(data[i * PAGE:(i + 1) * PAGE] in (bytes([65 + i]) * PAGE, bytes(PAGE)) for i in range(len(data) // PAGE))


def test_names_are_durable_at_once_and_follow_their_unsynced_data(mount):
    src, dst = mount.mountpoint / "tmp", mount.mountpoint / "snapshot.1"
    fd = os.open(src, os.O_WRONLY | os.O_CREAT, 0o644)
    os.pwrite(fd, b"snap", 0)
    os.fsync(fd)
    os.pwrite(fd, b"more", 4)
    os.close(fd)
    os.rename(src, dst)
    assert dst.read_bytes() == b"snapmore"
    mount.crash(keep=0.0, seed=1)
    assert sorted(os.listdir(mount.mountpoint)) == ["snapshot.1"] and dst.read_bytes() == b"snap"
