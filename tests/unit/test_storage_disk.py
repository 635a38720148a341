"""The simulated disk itself, and a disk that fails (EIO on fsync, ENOSPC on a write) under the
server's core: the writes it fails get SystemError, later ones NotReadOnly, reads go on, and
the next start recovers exactly the acknowledged state, with or without a power cut."""

from __future__ import annotations

import errno
import random

import pytest
from kazoo.protocol.serialization import Create, GetData, SetData
from kazoo.security import OPEN_ACL_UNSAFE as KAZOO_OPEN
from tests.unit.corehelper import FakeClock
from tests.unit.test_storage import sample_txns, tree_state
from tests.unit.test_storage_power_loss import WRITE_OPS, DiskDriver, Load, World, replay

from zkserver.jute.codes import Err
from zkserver.storage.database import StorageOptions, recover
from zkserver.storage.disk import OS_DISK, truncate_durably
from zkserver.storage.simdisk import PowerLoss, SimDisk
from zkserver.storage.txnlog import FileTxnLog, LogFile

# ---------------------------------------------------------------- SimDisk semantics


def _file(disk: SimDisk, path: str, data: bytes, sync: bool = True, dir_sync: bool = True) -> int:
    fd = disk.open_write(path)
    disk.pwrite(fd, data, 0)
    if sync:
        disk.fsync(fd)
    if dir_sync:
        disk.fsync_dir("/d")
    return fd


def test_unsynced_bytes_and_names_are_lost_on_power_cut() -> None:
    disk = SimDisk()
    disk.makedirs("/d")
    fd = _file(disk, "/d/a", b"durable")
    disk.pwrite(fd, b"+more", 7)
    _file(disk, "/d/b", b"synced data, name not", dir_sync=False)
    assert disk.read_file("/d/a") == b"durable+more"
    disk.power_fail()
    with pytest.raises(PowerLoss):
        disk.read_file("/d/a")
    disk.reboot("drop")
    assert disk.files() == {"/d/a": b"durable"}


def test_reboot_modes_touch_only_unsynced_bytes() -> None:
    base = bytes(range(256)) * 40
    for seed in range(200):
        disk = SimDisk(random.Random(seed))
        disk.makedirs("/d")
        fd = _file(disk, "/d/f", base)
        disk.allocate(fd, len(base), 9000)
        disk.pwrite(fd, b"\xaa" * 6000, 5000)
        mode = ("keep", "torn", "pages", "flip")[seed % 4]
        disk.power_fail()
        disk.reboot(mode)
        got = disk.files()["/d/f"]
        cur = base[:5000] + b"\xaa" * 6000 + bytes(len(base) + 9000 - 11000)
        assert got[:5000] == base[:5000], mode  # synced and never rewritten
        if mode == "keep":
            assert got == cur
        if mode == "torn":  # a prefix of the new bytes over the old ones
            k = next((i for i in range(len(got)) if got[i] != cur[i]), len(got))
            assert got[k:] == base[k:]
        if mode == "pages":  # each byte is old or new
            assert all(g in (c, b) for g, c, b in zip(got, cur, base, strict=False))


def test_rename_needs_a_directory_fsync_and_keeps_order() -> None:
    disk = SimDisk(random.Random(3))
    disk.makedirs("/d")
    _file(disk, "/d/tmp", b"x", dir_sync=False)
    disk.rename("/d/tmp", "/d/final")
    disk.power_fail()
    disk.reboot("drop")
    assert disk.files() == {}
    _file(disk, "/d/tmp", b"x", dir_sync=False)
    disk.rename("/d/tmp", "/d/final")
    disk.power_fail()
    disk.reboot("keep")
    assert disk.files() == {"/d/final": b"x"}


def test_crash_point_stops_the_machine_mid_write() -> None:
    disk = SimDisk(random.Random(1))
    disk.makedirs("/d")
    fd = _file(disk, "/d/f", b"")
    disk.crash_after(2)
    disk.pwrite(fd, b"a" * 100, 0)
    with pytest.raises(PowerLoss):
        disk.pwrite(fd, b"b" * 100, 100)
    assert disk.crashed
    disk.reboot("keep")
    data = disk.files()["/d/f"]
    assert data.startswith(b"a" * 100) and set(data[100:]) <= {ord("b")} and len(data) < 200


def test_injected_faults_and_short_writes() -> None:
    disk = SimDisk(random.Random(2))
    disk.makedirs("/d")
    fd = _file(disk, "/d/f", b"")
    disk.inject("pwrite", errno.ENOSPC, short=True)
    n = disk.pwrite(fd, b"z" * 50, 0)
    assert 0 < n < 50
    with pytest.raises(OSError) as e:
        disk.pwrite(fd, b"z" * (50 - n), n)
    assert e.value.errno == errno.ENOSPC
    disk.inject("fdatasync", errno.EIO, after=1)
    disk.fdatasync(fd)
    with pytest.raises(OSError):
        disk.fdatasync(fd)
    disk.fdatasync(fd)


def test_the_txn_log_runs_the_same_on_both_disks(tmp_path) -> None:
    txns = sample_txns(150, seed=4)
    sim = SimDisk()
    sim.makedirs("/x")
    for disk, d in ((OS_DISK, str(tmp_path)), (sim, "/x")):
        log = FileTxnLog(d, lambda z: None, pre_alloc_size=4096, disk=disk)
        for i in range(0, len(txns), 7):
            log.append(txns[i:i + 7])
            if i == 70:
                log.roll()
        log.close()
    real = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {k.rsplit("/", 1)[1]: v for k, v in sim.files().items()} == real
    for name in real:
        assert LogFile(f"/x/{name}", sim).data == real[name]
    truncate_durably(OS_DISK, str(tmp_path / "log.1"), 100)
    assert (tmp_path / "log.1").stat().st_size == 100


# ---------------------------------------------------------------- a failing disk under the core


FAULTS = [  # (op, errno, short write, calls that succeed first); all on the txn log's files
    ("fdatasync", errno.EIO, False, 0),
    ("fdatasync", errno.EIO, False, 2),
    ("pwrite", errno.ENOSPC, True, 0),
    ("pwrite", errno.ENOSPC, False, 3),
    ("allocate", errno.ENOSPC, False, 1),
    ("open", errno.ENOSPC, False, 1),  # the next log file, after a roll
]


def _started(seed: int, rng: random.Random, disk: SimDisk, opts: StorageOptions) -> tuple[World, DiskDriver, Load]:
    """A server freshly started on an empty simulated data dir, with two sessions of load."""
    disk.makedirs(opts.snap_dir)
    w = World(seed, disk, opts, FakeClock())
    drv = DiskDriver(w.clock, recover(opts, disk=disk), opts, disk, seed)
    drv.storage.ensure_initial_snapshot()
    return w, drv, Load(drv, rng, w, 2)


def _fault_run(seed: int, op: str, err: int, short: bool, after: int, power_cut: bool) -> None:
    rng = random.Random(seed)
    disk = SimDisk(random.Random(seed + 1))
    opts = StorageOptions(data_dir="/sim/data", snap_count=rng.choice([6, 12]), pre_alloc_size_kb=1)
    _, drv, load = _started(seed, rng, disk, opts)
    drv.sync()
    for _ in range(rng.randint(0, 8)):  # some acknowledged history first
        load.send_some()
        drv.sync()
    load.collect()
    disk.inject(op, err, short=short, after=after, where="/log.")
    for _ in range(40):  # pipelined batches until the disk fails
        load.send_some()
        if rng.random() < 0.5:
            drv.sync()
        if drv.failed is not None:
            break
    drv.sync()
    assert drv.failed is not None, "the injected fault never fired"
    durable = drv.core.durable_zxid
    zxid_of = {(h.client_id, h.cxid): h.zxid for h, _ in drv.appended}
    answered = 0
    for cl in load.clients:
        for f in cl.replies():
            key = (cl.session_id, f.xid)
            if load.sent.pop(key, None) not in WRITE_OPS:
                continue
            answered += 1
            if zxid_of[key] <= durable:
                assert f.err not in (Err.SYSTEM_ERROR, Err.NOT_READ_ONLY), (key, f)
            else:
                assert f.err == Err.SYSTEM_ERROR, (key, f, zxid_of[key], durable)
    assert not [k for k, o in load.sent.items() if o in WRITE_OPS], "writes left unanswered"
    c = load.clients[0]
    c.send(SetData("/p0", b"after", -1))
    c.send(Create("/late", b"", KAZOO_OPEN, 0))
    c.send(GetData("/", False))
    assert [f.err for f in c.replies()] == [Err.NOT_READ_ONLY, Err.NOT_READ_ONLY, 0]
    history = list(drv.appended)
    if power_cut:
        disk.power_fail()
        disk.reboot()
    else:
        disk.restart()  # the process dies; the page cache keeps whatever it holds
    rec = recover(opts, disk=disk)
    assert rec.tree.last_processed_zxid == durable, (op, seed, disk.history)
    assert tree_state(rec.tree) == tree_state(replay(history, durable))


@pytest.mark.parametrize("power_cut", [False, True], ids=["restart", "power-cut"])
@pytest.mark.parametrize(("op", "err", "short", "after"), FAULTS, ids=[f"{f[0]}-{f[3]}" for f in FAULTS])
def test_failed_disk_writes_are_neither_acknowledged_nor_replayed(op, err, short, after, power_cut) -> None:
    for seed in range(25):
        _fault_run(seed, op, err, short, after, power_cut)


def test_a_disk_that_keeps_failing_still_keeps_every_acknowledged_write() -> None:
    for seed in range(25):
        rng = random.Random(seed)
        disk = SimDisk(random.Random(seed))
        opts = StorageOptions(data_dir="/sim/data", pre_alloc_size_kb=1)
        w, drv, load = _started(seed, rng, disk, opts)
        drv.sync()
        disk.inject("fdatasync", errno.EIO, count=1000, after=rng.randint(0, 5))
        for _ in range(10):
            load.send_some()
            drv.sync()
        load.collect()
        assert drv.failed is not None
        disk.power_fail()
        disk.reboot()
        rec = recover(opts, disk=disk)  # the cut-back could not be synced: more may survive
        assert rec.tree.last_processed_zxid >= max(w.acked_zxid, drv.core.durable_zxid)
        assert tree_state(rec.tree) == tree_state(replay(drv.appended, rec.tree.last_processed_zxid))
