"""A full disk: the writes it fails get an error, later writes are refused, reads go on, and
a restart finds every acknowledged write and nothing else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError, SystemZookeeperError
from tests.support.servers import start_zkserver

SMALL_DISK = "256k"


@pytest.fixture
def small_disk(tmp_path: Path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_refuses_writes_keeps_reads_and_loses_nothing_acknowledged(tmp_path: Path, small_disk: Path):
    data = small_disk / "data"
    server = start_zkserver(tmp_path / "run", {"dataDir": str(data), "preAllocSize": "4", "snapCount": "1000000"})
    client = KazooClient(hosts=server.hosts, timeout=10)
    client.start()
    acknowledged = []
    failed = None
    try:
        client.create("/keep", b"before the disk filled")
        for i in range(2000):
            try:
                client.create(f"/n{i}", b"x" * 1000)
            except SystemZookeeperError as e:
                failed = e
                break
            acknowledged.append(f"/n{i}")
        assert failed is not None, "the disk never filled"
        assert len(acknowledged) > 50, len(acknowledged)
        with pytest.raises(NotReadOnlyCallError):
            client.set("/keep", b"after")
        assert client.get("/keep")[0] == b"before the disk filled"
        assert len(client.get_children("/")) == len(acknowledged) + 2  # + /keep, /zookeeper
    finally:
        client.stop()
        client.close()
        server.stop()

    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    again = start_zkserver(tmp_path / "again", {"dataDir": str(moved)})
    reader = KazooClient(hosts=again.hosts, timeout=10)
    reader.start()
    try:
        names = set(reader.get_children("/"))
        assert {p[1:] for p in acknowledged} <= names
        assert names == {p[1:] for p in acknowledged} | {"keep", "zookeeper"}
    finally:
        reader.stop()
        reader.close()
        again.stop()
