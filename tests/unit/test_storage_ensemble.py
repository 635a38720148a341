"""Storage operations of an ensemble member: truncation (TRUNC), the SNAP stream and installing
it, epoch files through the Disk, the last logged zxid, the committed log, leader-given digests,
inline snapshots and Apache's session password. Crash safety of each action at every disk
operation is in test_storage_rewrite_crash.py; Apache's own tools read our files in
tests/e2e/test_storage_ensemble_interop.py."""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.unit.test_storage import hdr, replayed_tree, sample_txns, tree_state

from zkserver.jute.codes import Op
from zkserver.jute.records import CreateTxn, SetDataTxn, TxnHeader
from zkserver.session import apache_session_password
from zkserver.storage import epochs
from zkserver.storage.committed import CommittedLog, Proposal, txn_log_from, txn_log_size_limit
from zkserver.storage.database import DiskStorage, Recovered, StorageOptions, recover, recover_member, truncate_history
from zkserver.storage.digest import DIGEST_VERSION, DigestPredictor
from zkserver.storage.disk import OS_DISK, Disk
from zkserver.storage.rewrite import INTENT
from zkserver.storage.simdisk import SimDisk
from zkserver.storage.snapshot import read_snapshot, snapshot_files, write_snapshot
from zkserver.storage.snapstream import (
    SnapshotStreamError,
    SnapshotStreamScanner,
    decode_snapshot_stream,
    encode_snapshot_stream,
)
from zkserver.storage.txnlog import (
    FILE_HEADER,
    LOG_PREFIX,
    LogFile,
    StorageError,
    encode_proposal,
    read_log_files,
    sorted_files,
)
from zkserver.tree.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from zkserver.tree.datatree import DataTree

SID = 0x1234
E1, E2 = 1 << 32, 2 << 32  # the first zxid of epochs 1 and 2, minus one


# ---------------------------------------------------------------- a member on a disk


def in_epoch(txns: list[tuple[TxnHeader, object]], base: int) -> list[tuple[TxnHeader, object]]:
    """The same txns with zxid z renumbered base + z (base: an epoch's first zxid minus one)."""
    return [(TxnHeader(h.client_id, h.cxid, base + h.zxid, h.time, h.type), t) for h, t in txns]


def options(root: str, separate_log_dir: bool = False, **kw) -> StorageOptions:
    kw.setdefault("pre_alloc_size_kb", 16)  # SimDisk holds preallocated zeros in memory
    return StorageOptions(data_dir=f"{root}/data", data_log_dir=f"{root}/log" if separate_log_dir else "", **kw)


@dataclass
class Member:
    """A DiskStorage with the tree and sessions a core would keep over it: appended txns are
    synced at once (manual sync rounds) and then applied, as the core applies durable txns."""

    opts: StorageOptions
    disk: Disk
    inline_snapshots: bool = False
    storage: DiskStorage = field(init=False)
    tree: DataTree = field(init=False)
    sessions: dict[int, int] = field(init=False)
    durable: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.disk, SimDisk):
            self.disk.makedirs(self.opts.snap_dir)
            self.disk.makedirs(self.opts.log_dir)
        else:
            os.makedirs(self.opts.snap_dir, exist_ok=True)
            os.makedirs(self.opts.log_dir, exist_ok=True)
        rec = recover(self.opts, disk=self.disk)
        self.tree, self.sessions = rec.tree, rec.sessions
        self.storage = DiskStorage(self.opts, self.tree, lambda: dict(self.sessions), self.durable.append,
                                   rng=random.Random(0), disk=self.disk, manual=True,
                                   inline_snapshots=self.inline_snapshots)
        self.storage.ensure_initial_snapshot()

    def write(self, txns: list[tuple[TxnHeader, object]], digests: list | None = None) -> None:
        self.storage.append(txns, digests)
        assert self.storage.log.sync_queued()
        for h, txn in txns:
            if h.type == Op.CREATE_SESSION:
                self.sessions[h.client_id] = txn.timeout  # type: ignore[attr-defined]
            self.tree.apply(h, txn)
        self.tree.events = []

    def adopt(self, tree: DataTree, sessions: dict[int, int]) -> None:
        """Take the state a truncation or a snapshot installation left (as a core would)."""
        self.tree = tree
        self.sessions.clear()
        self.sessions.update(sessions)


def state(tree: DataTree, sessions: dict[int, int], last: int) -> tuple:
    return tree_state(tree), dict(sorted(sessions.items())), last


def recovered_state(rec: Recovered) -> tuple:
    return state(rec.tree, rec.sessions, rec.last_logged_zxid)


def replay_state(txns: list[tuple[TxnHeader, object]]) -> tuple:
    sessions = {h.client_id: t.timeout for h, t in txns if h.type == Op.CREATE_SESSION}  # type: ignore[attr-defined]
    return state(replayed_tree(txns), sessions, txns[-1][0].zxid if txns else 0)


HISTORY = in_epoch(sample_txns(60, seed=3), E1)


def diverged_member(opts: StorageOptions, disk: Disk, **kw) -> Member:
    """Epoch-1 txns 1..60 in three log files, with snapshots after txn 20 and txn 45."""
    m = Member(opts, disk, **kw)
    m.write(HISTORY[:20])
    m.storage.snapshot_now()
    m.write(HISTORY[20:45])
    m.storage.snapshot_now()
    m.write(HISTORY[45:])
    return m


def names(opts: StorageOptions, disk: Disk) -> list[str]:
    out = sorted(disk.listdir(opts.snap_dir))
    if opts.log_dir != opts.snap_dir:
        out += sorted(f"log/{n}" for n in disk.listdir(opts.log_dir))
    return out


# ---------------------------------------------------------------- truncation


@pytest.mark.parametrize("separate_log_dir", [False, True])
def test_truncate_drops_later_txns_and_newer_snapshots_then_appends_go_on(tmp_path: Path,
                                                                           separate_log_dir: bool) -> None:
    opts = options(str(tmp_path), separate_log_dir)
    m = diverged_member(opts, OS_DISK)
    assert set(names(opts, OS_DISK)) == {"snapshot.0", f"snapshot.{E1 + 20:x}", f"snapshot.{E1 + 45:x}"} | {
        f"{'log/' if separate_log_dir else ''}log.{z:x}" for z in (E1 + 1, E1 + 21, E1 + 46)}
    assert m.storage.last_logged_zxid == E1 + 60
    cut = E1 + 30
    rec = m.storage.truncate(cut)
    kept = HISTORY[:30]
    assert recovered_state(rec) == replay_state(kept)
    assert rec.snapshot_zxid == E1 + 20  # the newer snapshot held txns being removed
    assert m.storage.last_logged_zxid == cut
    assert [z for z, _ in snapshot_files(opts.snap_dir)] == [E1 + 20, 0]
    assert [z for z, _ in sorted_files(opts.log_dir, LOG_PREFIX)] == [E1 + 1, E1 + 21]
    assert [e.hdr.zxid for e in LogFile(os.path.join(opts.log_dir, f"log.{E1 + 21:x}"))][-1] == cut
    assert not os.path.exists(os.path.join(opts.snap_dir, INTENT))
    assert [p.zxid for p in rec.committed] == [h.zxid for h, _ in HISTORY[20:30]]
    # The new leader's history goes on after the cut, in a new file.
    m.adopt(rec.tree, rec.sessions)
    new = in_epoch([(hdr(i, Op.SET_DATA), SetDataTxn("/", b"e2-%d" % i, i)) for i in (1, 2, 3)], E2)
    m.write(new)
    assert m.storage.last_logged_zxid == E2 + 3
    assert [z for z, _ in sorted_files(opts.log_dir, LOG_PREFIX)] == [E1 + 1, E1 + 21, E2 + 1]
    assert m.durable[-1] == E2 + 3
    m.storage.close()
    assert recovered_state(recover(opts)) == replay_state(kept + new)


def test_truncate_inside_the_first_file_and_to_the_last_zxid(tmp_path: Path) -> None:
    opts = options(str(tmp_path))
    m = diverged_member(opts, OS_DISK)
    rec = m.storage.truncate(E1 + 60)  # nothing after it: nothing changes
    assert recovered_state(rec) == replay_state(HISTORY)
    assert len(snapshot_files(opts.snap_dir)) == 3
    rec = m.storage.truncate(E1 + 5)
    assert recovered_state(rec) == replay_state(HISTORY[:5])
    assert rec.snapshot_zxid == 0
    assert [z for z, _ in sorted_files(opts.log_dir, LOG_PREFIX)] == [E1 + 1]
    assert recovered_state(recover(opts)) == replay_state(HISTORY[:5])


def test_truncate_to_a_zxid_between_txns_keeps_everything_before_it(tmp_path: Path) -> None:
    opts = options(str(tmp_path))
    m = diverged_member(opts, OS_DISK)
    rec = m.storage.truncate(E2)  # a new-epoch zxid: no txn has it; every epoch-1 txn stays
    assert recovered_state(rec) == replay_state(HISTORY)
    assert rec.last_logged_zxid == E1 + 60


def test_truncate_history_on_a_closed_data_dir(tmp_path: Path) -> None:
    opts = options(str(tmp_path))
    diverged_member(opts, OS_DISK).storage.close()
    rec = truncate_history(opts, E1 + 50)
    assert recovered_state(rec) == replay_state(HISTORY[:50])
    assert recovered_state(recover(opts)) == replay_state(HISTORY[:50])


def _contents(opts: StorageOptions) -> dict[str, bytes]:
    return {n: Path(opts.snap_dir, n).read_bytes() for n in names(opts, OS_DISK)}


def test_truncate_refuses_when_nothing_can_rebuild_the_state(tmp_path: Path) -> None:
    opts = options(str(tmp_path))
    diverged_member(opts, OS_DISK).storage.close()
    os.unlink(os.path.join(opts.snap_dir, "snapshot.0"))
    before = _contents(opts)
    # No snapshot at or below the zxid, and no snapshot.0: a log that starts at 0x100000001 may
    # have lost what came before it.
    with pytest.raises(StorageError, match=f"cannot truncate the txn log to 0x{E1 + 10:x}: no snapshot"):
        truncate_history(opts, E1 + 10)
    os.unlink(os.path.join(opts.log_dir, f"log.{E1 + 1:x}"))
    before = _contents(opts)
    with pytest.raises(StorageError, match=r"no txn log .* to rebuild the state at it from"):
        truncate_history(opts, E1 + 10)
    assert _contents(opts) == before
    rec = truncate_history(opts, E1 + 30)  # the snapshot at 0x100000014 and the log after it can
    assert recovered_state(rec) == replay_state(HISTORY[:30])


def test_truncate_below_every_snapshot_rebuilds_from_the_first_log(tmp_path: Path) -> None:
    opts = options(str(tmp_path))
    m = Member(opts, OS_DISK)
    txns = sample_txns(30, seed=4)  # a standalone history: zxids from 1
    m.write(txns[:20])
    m.storage.snapshot_now()
    m.write(txns[20:])
    m.storage.close()
    os.unlink(os.path.join(opts.snap_dir, "snapshot.0"))
    rec = truncate_history(opts, 10)  # no snapshot at or below it, but log.1 starts the history
    assert recovered_state(rec) == replay_state(txns[:10])
    assert snapshot_files(opts.snap_dir) == []


def test_truncate_waits_for_the_snapshot_being_written(tmp_path: Path) -> None:
    opts = options(str(tmp_path))
    m = diverged_member(opts, OS_DISK)
    waited = []

    class Taker:
        def wait(self) -> None:
            waited.append(True)

    m.storage.taker = Taker()  # type: ignore[assignment]
    m.storage.truncate(E1 + 40)
    m.storage.install_snapshot(replayed_tree(HISTORY[:10]), {SID: 30000}, E1 + 10)
    assert waited == [True, True]


def test_a_failed_log_refuses_to_change_the_history(tmp_path: Path) -> None:
    disk = SimDisk()
    opts = options("/sim")
    m = diverged_member(opts, disk)
    disk.inject("fdatasync")
    m.storage.append(in_epoch([(hdr(61, Op.SET_DATA), SetDataTxn(HISTORY[2][1].path, b"x", 9))], E1))
    assert not m.storage.log.sync_queued()
    with pytest.raises(StorageError, match="failed"):
        m.storage.truncate(E1 + 30)
    with pytest.raises(StorageError, match="failed"):
        m.storage.install_snapshot(DataTree(), {}, E1 + 30)
    disk.inject("unlink")
    m2 = diverged_member(options("/sim2"), disk)
    with pytest.raises(StorageError, match="truncating the txn log"):
        m2.storage.truncate(E1 + 30)
    assert m2.storage.log.failed is not None  # an I/O error midway stops the log for good
    assert recovered_state(recover(m2.opts, disk=disk)) == replay_state(HISTORY[:30])  # the intent finishes it


# ---------------------------------------------------------------- installing a snapshot


LEADER_HISTORY = in_epoch(sample_txns(40, seed=11), E1)  # sample_txns' data is random: made once


def leader_state(upto: int) -> tuple[DataTree, dict[int, int], list[tuple[TxnHeader, object]]]:
    """A leader's history that diverged from HISTORY at its first txns: a new tree each call."""
    txns = LEADER_HISTORY[:upto]
    return replayed_tree(txns), {SID: 30000}, txns


@pytest.mark.parametrize("separate_log_dir", [False, True])
def test_install_snapshot_replaces_the_whole_history(tmp_path: Path, separate_log_dir: bool) -> None:
    opts = options(str(tmp_path), separate_log_dir)
    m = diverged_member(opts, OS_DISK)
    tree, sessions, txns = leader_state(25)
    zxid = E1 + 25  # below the member's own txns 26..60 of a diverged history, and its snapshot at 45
    path = m.storage.install_snapshot(tree, sessions, zxid)
    assert path == os.path.join(opts.snap_dir, f"snapshot.{zxid:x}")
    assert names(opts, OS_DISK) == [f"snapshot.{zxid:x}"]
    assert m.storage.last_logged_zxid == zxid
    assert recovered_state(recover(opts)) == replay_state(txns)
    assert read_snapshot(path).digest == (zxid, DIGEST_VERSION, m.storage.predictor.digest)
    # Later proposals go to a new log, named after the first; a restart replays them on the snapshot.
    m.adopt(tree, sessions)
    more = LEADER_HISTORY[25:]
    m.write(more)
    assert sorted_files(opts.log_dir, LOG_PREFIX) == [(E1 + 26, os.path.join(opts.log_dir, f"log.{E1 + 26:x}"))]
    assert m.durable[-1] == E1 + 40
    m.storage.close()
    rec = recover(opts)
    assert recovered_state(rec) == replay_state(txns + more)
    assert rec.digest_checked is True


def test_install_snapshot_from_a_fresh_member_and_over_the_same_name(tmp_path: Path) -> None:
    opts = options(str(tmp_path))
    m = diverged_member(opts, OS_DISK)
    tree, sessions, txns = leader_state(20)
    m.storage.install_snapshot(tree, sessions, E1 + 20)  # the member's own snapshot.100000014 is replaced
    assert names(opts, OS_DISK) == [f"snapshot.{E1 + 20:x}"]
    assert recovered_state(recover(opts)) == replay_state(txns)
    fresh = Member(options(str(tmp_path / "fresh")), OS_DISK)
    fresh.storage.install_snapshot(replayed_tree(txns), sessions, E1 + 20)
    assert fresh.storage.log.sync_queued()  # manual mode reports at the next sync round
    assert fresh.durable == [E1 + 20]  # durable through the snapshot's zxid once it is
    assert recovered_state(recover(fresh.opts)) == replay_state(txns)


def test_a_sync_answer_about_the_old_history_reports_nothing(tmp_path: Path) -> None:
    """The syncer's answer for a file of the old history, arriving after the rewrite, must not
    make later zxids look durable."""
    m = Member(options(str(tmp_path)), OS_DISK)
    m.write(HISTORY[:10])
    log_ = m.storage.log
    old_file = log_._next_gen
    tree, sessions, _ = leader_state(5)
    m.storage.install_snapshot(tree, sessions, E1 + 5)
    log_._answered(old_file, E1 + 10, 10_000, 1, 0)  # as the syncer's late answer arrives
    assert m.durable == [E1 + 10]  # nothing new: E1 + 5 is not news
    m.adopt(tree, sessions)
    m.write(in_epoch([(hdr(6, Op.SET_DATA), SetDataTxn("/", b"z", 1))], E1))
    assert m.durable == [E1 + 10, E1 + 6]


# ---------------------------------------------------------------- the SNAP stream


def varied_tree() -> tuple[DataTree, dict[int, int]]:
    tree = DataTree(extended_types=True)
    acls = [OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, ((31, "digest", "u:pw"), (1, "ip", "10.0.0.1"))]
    zxid = 0
    for i in range(40):
        zxid += 1
        parent = "" if i < 8 else f"/n{i % 8}"
        kind, owner_ttl = Op.CREATE, -1
        if i % 13 == 5:
            kind = Op.CREATE_CONTAINER
        elif i % 13 == 6:
            kind, owner_ttl = Op.CREATE_TTL, 5000
        data = None if i % 11 == 3 else os.urandom(i % 7) if i % 5 else b"\xff" * 300
        tree.apply(hdr(zxid, kind, 0x77), CreateTxn(kind, f"{parent}/n{i}", data, acls[i % 3], i % 9 == 4 and i >= 8,
                                                     -1, owner_ttl))
    tree.events = []
    tree.last_processed_zxid = zxid
    return tree, {0x77: 4000, -5: 30000, 1 << 62: 10}


def test_snapshot_stream_is_the_snapshot_body_and_round_trips(tmp_path: Path) -> None:
    tree, sessions = varied_tree()
    stream = encode_snapshot_stream(tree, sessions)
    path = write_snapshot(str(tmp_path), tree, sessions)
    whole = Path(path).read_bytes()
    assert whole[FILE_HEADER.size:FILE_HEADER.size + len(stream)] == stream  # no header, seal nor digest
    assert whole[FILE_HEADER.size + len(stream) + 8:][:5] == b"\x00\x00\x00\x01/"  # the file's seal follows
    got, got_sessions = decode_snapshot_stream(stream, extended_types=True)
    assert got_sessions == sessions
    assert tree_state(got) == tree_state(tree)
    assert got.ephemerals.keys() == tree.ephemerals.keys() and got.containers == tree.containers
    assert got.ttls == tree.ttls
    assert got.last_processed_zxid == 0


def _feed_all(chunks: list[bytes | memoryview]) -> tuple[int | None, int, SnapshotStreamScanner]:
    """Feed chunks until the scanner says the snapshot ended: (bytes of the last chunk it used,
    index of that chunk, the scanner). Checks the scanner never holds more than a field."""
    sc = SnapshotStreamScanner()
    for i, chunk in enumerate(chunks):
        used = sc.feed(memoryview(chunk) if i % 2 else chunk)
        assert len(sc._field) <= 12  # it keeps a partial field at most, never the stream
        if used is not None:
            return used, i, sc
    return None, len(chunks), sc


def test_scanner_finds_the_end_at_every_split_point() -> None:
    tree, sessions = varied_tree()
    stream = encode_snapshot_stream(tree, sessions)
    after = b"\x00\x00\x00\x0aBenWasHere" + b"more packets"
    data = stream + after
    for cut in range(len(data) + 1):
        used, i, sc = _feed_all([data[:cut], data[cut:]])
        assert (i, used) == ((0, len(stream)) if cut >= len(stream) else (1, len(stream) - cut)), cut
        assert sc.done and sc.size == len(stream)
    used, i, _ = _feed_all([data[k:k + 1] for k in range(len(data))])  # byte by byte
    assert (i, used) == (len(stream) - 1, 1)
    for cut in range(0, len(stream), 31):  # three chunks
        for cut2 in range(cut, len(stream) + 1, 47):
            used, i, _ = _feed_all([data[:cut], data[cut:cut2], data[cut2:]])
            assert sum(map(len, [data[:cut], data[cut:cut2], data[cut2:]][:i])) + used == len(stream)


def test_scanner_on_a_large_stream_in_random_chunks() -> None:
    tree = DataTree()
    rng = random.Random(5)
    for i in range(1, 3000):
        parent = "" if i < 50 else f"/n{rng.randrange(1, 50)}"
        size = rng.choice([0, 3, 100, 5000, 70000]) if i % 40 == 0 else rng.randrange(20)
        tree.apply(hdr(i, Op.CREATE), CreateTxn(Op.CREATE, f"{parent}/n{i}", rng.randbytes(size), OPEN_ACL_UNSAFE,
                                                False, -1))
    stream = encode_snapshot_stream(tree, {i: 1000 + i for i in range(500)})
    for seed in range(6):
        rng = random.Random(seed)
        data = stream + b"tail"
        chunks, pos = [], 0
        biggest = (2, 16, 600, 70000, 1 << 20, 5)[seed]
        while pos < len(data):
            n = rng.randint(1, biggest)
            chunks.append(data[pos:pos + n])
            pos += n
        used, i, sc = _feed_all(chunks)
        assert sum(map(len, chunks[:i])) + used == len(stream)
        assert sc.size == len(stream)
    got, _ = decode_snapshot_stream(stream)
    assert tree_state(got) == tree_state(tree)


def _body(*parts: bytes) -> bytes:
    return b"".join(parts)


def _i(v: int) -> bytes:
    return v.to_bytes(4, "big", signed=True)


ROOT = _body(_i(0), _i(0), b"\xff" * 8, bytes(60))  # path "", empty data, acl -1, stat
END = _body(_i(1), b"/")


@pytest.mark.parametrize("stream, message", [
    (_body(_i(-1)), "negative session count"),
    (_body(_i(0), _i(-3)), "negative ACL map size"),
    (_body(_i(0), _i(1), bytes(8), _i(-1)), "ACL list of -1"),
    (_body(_i(0), _i(1), bytes(8), _i(1), _i(31), _i(1 << 30)), "ACL scheme of length"),
    (_body(_i(0), _i(0), _i(4), b"/abc"), "the first node has a path of length 4"),
    (_body(_i(0), _i(0), ROOT, _i(0)), "node 2 has a path of length 0"),
    (_body(_i(0), _i(0), ROOT, _i(2), b"ab"), "starts with byte 0x61"),
    (_body(_i(0), _i(0), ROOT, _i(1), b"x"), "starts with byte 0x78"),
    (_body(_i(0), _i(0), ROOT, _i(2), b"/a", _i(-2)), "node data of length -2"),
    (_body(_i(0), _i(0), ROOT, _i(2), b"/a", _i(3 << 20)), "node data of length 3145728"),
    (_body(_i(0), _i(0), ROOT, _i(-7)), "node path of length -7"),
])
def test_scanner_rejects_garbage(stream: bytes, message: str) -> None:
    assert issubclass(SnapshotStreamError, ValueError)  # what the quorum decoder catches
    for chunk in (len(stream), 1):  # whole, and byte by byte
        sc = SnapshotStreamScanner()
        with pytest.raises(SnapshotStreamError, match=message):
            for pos in range(0, len(stream), chunk):
                assert sc.feed(stream[pos:pos + chunk]) is None


def test_scanner_limits_and_the_end() -> None:
    stream = _body(_i(0), _i(0), ROOT, _i(2), b"/a", _i(300), bytes(300 + 68), END)
    sc = SnapshotStreamScanner(max_length=100)
    with pytest.raises(SnapshotStreamError, match="limit 100"):
        sc.feed(stream)
    sc = SnapshotStreamScanner()
    assert sc.feed(stream + b"x") == len(stream)
    with pytest.raises(SnapshotStreamError, match="already ended"):
        sc.feed(b"x")


def test_decode_rejects_what_is_not_one_snapshot() -> None:
    tree, sessions = varied_tree()
    stream = encode_snapshot_stream(tree, sessions)
    with pytest.raises(SnapshotStreamError, match="after the end"):
        decode_snapshot_stream(stream + b"x")
    with pytest.raises(SnapshotStreamError, match="bad snapshot stream"):
        decode_snapshot_stream(stream[:-10])
    orphan = _body(_i(0), _i(0), ROOT, _i(4), b"/a/b", _i(0), b"\xff" * 8, bytes(60), END)
    with pytest.raises(SnapshotStreamError, match="unable to find parent"):
        decode_snapshot_stream(orphan)


# ---------------------------------------------------------------- epochs


@pytest.mark.parametrize("disk_kind", ["os", "sim"])
def test_epoch_files_through_the_disk(tmp_path: Path, disk_kind: str) -> None:
    disk: Disk = OS_DISK if disk_kind == "os" else SimDisk()
    d = str(tmp_path) if disk_kind == "os" else "/sim/v2"
    if isinstance(disk, SimDisk):
        disk.makedirs(d)
    assert epochs.read_long(d, epochs.ACCEPTED_EPOCH, disk) is None
    epochs.write_long(d, epochs.ACCEPTED_EPOCH, 12, disk)
    epochs.write_long(d, epochs.ACCEPTED_EPOCH, 13, disk)
    assert disk.read_file(f"{d}/acceptedEpoch") == b"13"  # decimal, no newline
    assert epochs.read_long(d, epochs.ACCEPTED_EPOCH, disk) == 13
    assert sorted(disk.listdir(d)) == ["acceptedEpoch"]


@pytest.mark.parametrize("content, value", [(b"7", 7), (b"7\n", 7), (b"7\r\njunk", 7), (b"+7", 7), (b"-3", -3),
                                            (b"9223372036854775807", (1 << 63) - 1)])
def test_epoch_files_read_as_apache_reads_them(tmp_path: Path, content: bytes, value: int) -> None:
    (tmp_path / "currentEpoch").write_bytes(content)
    assert epochs.read_long(str(tmp_path), epochs.CURRENT_EPOCH) == value


@pytest.mark.parametrize("content, shown", [(b"", "null"), (b"\n", ""), (b" 7", " 7"), (b"7 ", "7 "), (b"0x7", "0x7"),
                                            (b"9223372036854775808", "9223372036854775808"), (b"1_0", "1_0")])
def test_epoch_files_apache_would_refuse(tmp_path: Path, content: bytes, shown: str) -> None:
    (tmp_path / "currentEpoch").write_bytes(content)
    with pytest.raises(StorageError) as e:
        epochs.read_long(str(tmp_path), epochs.CURRENT_EPOCH)
    assert str(e.value) == f"Found {shown} in {tmp_path}/currentEpoch"


def test_load_epochs_follows_apache_start_up_rules(tmp_path: Path, caplog) -> None:
    d = str(tmp_path)
    caplog.set_level(logging.INFO, "zkserver.storage.epochs")
    # Missing files: created from the epoch of the last logged zxid.
    assert epochs.load_epochs(d, (5 << 32) + 9) == epochs.Epochs(5, 5)
    assert (tmp_path / "currentEpoch").read_bytes() == b"5" and (tmp_path / "acceptedEpoch").read_bytes() == b"5"
    assert "currentEpoch not found! Creating with a reasonable default of 5" in caplog.text
    epochs.write_long(d, epochs.ACCEPTED_EPOCH, 7)
    assert epochs.load_epochs(d, (5 << 32) + 9) == epochs.Epochs(5, 7)
    # currentEpoch behind the log, the log past acceptedEpoch, no currentEpoch.tmp: Apache's message.
    with pytest.raises(StorageError) as e:
        epochs.load_epochs(d, (8 << 32) + 1)
    assert str(e.value) == f"The current epoch, 5, is older than the last zxid, {(8 << 32) + 1}"
    # ... with currentEpoch.tmp (a write the crash cut short after its fsync): its value is taken.
    (tmp_path / "currentEpoch.tmp").write_bytes(b"6")
    assert epochs.load_epochs(d, (6 << 32) + 1) == epochs.Epochs(6, 7)
    assert (tmp_path / "currentEpoch").read_bytes() == b"6" and not (tmp_path / "currentEpoch.tmp").exists()
    # currentEpoch behind the log within acceptedEpoch is refused here as by Apache (ZOOKEEPER-2354);
    # recover_member cuts such a log back first (test_a_member_cuts_txns_of_an_epoch_it_never_acknowledged).
    with pytest.raises(StorageError):
        epochs.load_epochs(d, (7 << 32) + 3)
    # ... an empty currentEpoch.tmp (a crash inside its write, sim seed 320) is ignored, not an error.
    (tmp_path / "currentEpoch.tmp").write_bytes(b"")
    assert epochs.read_pending_current_epoch(d) is None
    assert "currentEpoch.tmp; a write of it was cut short: ignored" in caplog.text
    (tmp_path / "currentEpoch.tmp").unlink()
    epochs.write_long(d, epochs.ACCEPTED_EPOCH, 7)
    # acceptedEpoch behind currentEpoch.
    epochs.write_long(d, epochs.CURRENT_EPOCH, 0x1a)
    with pytest.raises(StorageError) as e:
        epochs.load_epochs(d, 0)
    assert str(e.value) == "The accepted epoch, 7 is less than the current epoch, 1a"


# ---------------------------------------------------------------- committed log, log range


def test_committed_log_keeps_the_latest_as_apache_does() -> None:
    txns = HISTORY[:12]
    log_ = CommittedLog(count=5)
    assert (log_.min_zxid, log_.max_zxid, len(log_)) == (0, 0, 0)
    for i, (h, t) in enumerate(txns):
        log_.add(h, t, (DIGEST_VERSION, i) if i % 2 else None)
    # More than `count` before an add drops the oldest: count + 1 stay.
    assert [p.zxid for p in log_] == [h.zxid for h, _ in txns[-6:]]
    assert (log_.min_zxid, log_.max_zxid) == (txns[-6][0].zxid, txns[-1][0].zxid)
    assert list(log_)[-1] == Proposal(txns[-1][0].zxid, encode_proposal(*txns[-1], 11))
    assert list(log_)[-2].data == encode_proposal(*txns[-2], None)
    assert [p.zxid for p in log_.after(txns[-3][0].zxid)] == [txns[-2][0].zxid, txns[-1][0].zxid]
    with pytest.raises(ValueError, match="after"):
        log_.add(*txns[0])
    log_.clear()
    assert (log_.min_zxid, log_.max_zxid, len(log_)) == (0, 0, 0)


def test_recovery_fills_the_committed_log_with_the_log_entries(tmp_path: Path) -> None:
    opts = options(str(tmp_path), commit_log_count=10)
    m = diverged_member(opts, OS_DISK)
    m.storage.close()
    rec = recover(opts)  # the snapshot at txn 45, then txns 46..60 replayed
    assert rec.last_logged_zxid == E1 + 60
    assert [p.zxid for p in rec.committed] == [h.zxid for h, _ in HISTORY[-11:]]
    pred = DigestPredictor(replayed_tree(HISTORY[:49]))
    for h, t in HISTORY[49:]:
        digest = pred.after(h, t)
        pred.tree.apply(h, t)
        assert next(p for p in rec.committed if p.zxid == h.zxid).data == encode_proposal(h, t, digest)


def test_txn_log_from_gives_what_apache_reads_for_a_lagging_learner(tmp_path: Path) -> None:
    opts = options(str(tmp_path))
    diverged_member(opts, OS_DISK).storage.close()
    logs = sorted_files(opts.log_dir, LOG_PREFIX)
    r = txn_log_from(opts.log_dir, E1 + 30)
    assert r.paths == [p for _, p in logs[1:]] and r.covers
    assert r.size == os.path.getsize(r.paths[1])  # Apache's getStorageSize: the oldest file is not counted
    got = list(r)
    assert [p.zxid for p in got] == [h.zxid for h, _ in HISTORY[20:]]  # from the file's start, as Apache's
    assert [p.data for p in got] == [bytes(e.body) for path in r.paths for e in LogFile(path)]
    r = txn_log_from(opts.log_dir, E1 + 21)  # a file starting at the zxid: it and the one before it
    assert r.paths == [p for _, p in logs] and r.covers
    assert txn_log_from(opts.log_dir, E1).covers is False  # the oldest file starts after it
    assert txn_log_from(str(tmp_path / "nowhere"), 5).paths == []


class CountingDisk(SimDisk):
    """A SimDisk that records which files were read whole."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []

    def read_file(self, path: str) -> bytes:
        self.read.append(os.path.basename(path))
        return super().read_file(path)


def test_a_leader_reads_its_txn_log_for_a_learner_lazily_within_the_size_limit(tmp_path: Path) -> None:
    disk = CountingDisk()
    opts = options("/m")
    m = diverged_member(opts, disk)  # log files from txns 1, 21 and 46; snapshots at 20 and 45
    logs = [os.path.basename(p) for _, p in sorted_files(opts.log_dir, LOG_PREFIX, disk)]
    newest_snap = disk.getsize(snapshot_files(opts.snap_dir, disk)[0][1])
    assert txn_log_size_limit(opts.snap_dir, 0.5, disk) == int(newest_snap * 0.5)
    disk.read.clear()
    got = m.storage.txn_log_from(E1 + 30, 0)  # 0: no limit
    assert disk.read == []  # nothing read before the caller asks
    assert [next(got).zxid for _ in range(25)] == [h.zxid for h, _ in HISTORY[20:45]]
    assert disk.read == [logs[1]]  # the later file is not read while the entries come from this one
    assert [p.zxid for p in got] == [h.zxid for h, _ in HISTORY[45:]]
    assert disk.read == logs[1:]
    # the files after the oldest are larger than the limit (preallocated): none is read
    assert disk.getsize(f"{opts.log_dir}/{logs[2]}") > int(newest_snap * 0.33)
    assert list(m.storage.txn_log_from(E1 + 30, 0.33)) == []
    # a learner in the newest file: nothing else counts against the limit
    assert [p.zxid for p in m.storage.txn_log_from(E1 + 50, 0.33)] == [h.zxid for h, _ in HISTORY[45:]]
    assert list(m.storage.txn_log_from(E1 + 50, -1)) == []  # a negative factor: never
    assert list(m.storage.txn_log_from(E1, 0)) == []  # the oldest file starts after the learner's zxid
    paths = [f"{opts.log_dir}/{n}" for n in logs]
    every = [bytes(e.body) for _, e in read_log_files(paths, disk)]
    assert [p.data for p in m.storage.txn_log_from(E1 + 5, 0)] == every


# ---------------------------------------------------------------- leader digests, inline snapshots


def test_leader_digests_are_written_and_mismatches_counted(tmp_path: Path, caplog) -> None:
    m = Member(options(str(tmp_path)), OS_DISK)
    txns = HISTORY[:8]
    pred = DigestPredictor(DataTree())
    ours = [pred.after(h, t) for h, t in txns]
    given: list = [(DIGEST_VERSION, d) for d in ours]
    given[3] = (DIGEST_VERSION, 12345)  # a leader whose tree differs
    given[4] = None  # a leader that sent none
    given[5] = (9, 777)  # a digest version we do not compute: written, not compared
    m.write(txns[:6], given[:6])
    m.write(txns[6:], given[6:])
    written = [e.digest for e in LogFile(os.path.join(m.opts.log_dir, f"log.{E1 + 1:x}"))]
    assert written == given
    assert m.storage.digest_mismatches == 1
    assert "Digest mismatch at zxid 0x100000004" in caplog.text
    m.write(in_epoch([(hdr(9, Op.SET_DATA), SetDataTxn(txns[1][1].path, b"q", 1))], E1))  # ours again
    assert [e.digest for e in LogFile(os.path.join(m.opts.log_dir, f"log.{E1 + 1:x}"))][-1] == (
        DIGEST_VERSION, m.storage.predictor.digest)


def test_snapshot_now_and_inline_periodic_snapshots_on_a_simulated_disk() -> None:
    disk = SimDisk()
    opts = options("/sim", snap_count=10)
    m = Member(opts, disk, inline_snapshots=True)
    m.write(HISTORY[:4])
    path = m.storage.snapshot_now()
    assert path == f"{opts.snap_dir}/snapshot.{E1 + 4:x}"
    m.write(HISTORY[4:5])  # the log rolled: a new file
    assert f"log.{E1 + 5:x}" in disk.listdir(opts.log_dir)
    for i in range(5, 40):
        m.write(HISTORY[i:i + 1])
    taken = [z for z, _ in snapshot_files(opts.snap_dir, disk)]
    assert len(taken) >= 5  # every 5..10 txns, on the caller's thread
    disk.power_fail()
    disk.reboot("drop")
    assert recovered_state(recover(opts, disk=disk)) == replay_state(HISTORY[:40])


def test_a_failed_inline_snapshot_is_logged_and_the_member_goes_on(caplog) -> None:
    disk = SimDisk()
    opts = options("/sim", snap_count=4)
    m = Member(opts, disk, inline_snapshots=True)
    disk.inject("fsync", where="tmp.snapshot")
    m.write(HISTORY[:10])
    assert "Writing snapshot" in caplog.text
    assert recovered_state(recover(opts, disk=disk)) == replay_state(HISTORY[:10])


# ---------------------------------------------------------------- Apache's session password

# Computed by java.util.Random on the JVM (see tests/e2e/test_storage_ensemble_interop.py for
# the same check against a live Apache server).
JAVA_PASSWORDS: dict[int, str] = {
    0: "f22acd4a97e69d6d20a49bb638eadb38",
    1: "054cc74a37327db215e702e20c73f005",
    -1: "20f62cb5648dc2d771471c8a2486a9ee",
    81985529216486895: "f7cd1b8b3f946c477425d41be3f667c6",
    -(1 << 63): "f22acd4a97e69d6d20a49bb638eadb38",  # Random keeps 48 bits of the seed
}


def test_apache_session_password_is_java_random() -> None:
    for sid, expected in JAVA_PASSWORDS.items():
        assert apache_session_password(sid).hex() == expected



# ---------------------------------------------------------------- a member's start-up


def test_a_member_cuts_txns_of_an_epoch_it_never_acknowledged(tmp_path: Path) -> None:
    """Found by the simulator (seeds 4 and 63, 3 members): a learner logged the txns of its
    catch-up, lost the leader before writing currentEpoch, and could not restart (Apache's rule,
    ZOOKEEPER-2354); and seed 320: the same with the empty currentEpoch.tmp of a write cut short."""
    opts = options(str(tmp_path))
    m = Member(opts, OS_DISK)
    m.write(HISTORY[:30])
    epochs.write_long(opts.snap_dir, epochs.ACCEPTED_EPOCH, 2)
    epochs.write_long(opts.snap_dir, epochs.CURRENT_EPOCH, 1)
    later = in_epoch(sample_txns(5, seed=9), E2)
    m.write(later)  # durable, but currentEpoch was never raised to 2
    m.storage.close()
    (Path(opts.snap_dir) / "currentEpoch.tmp").write_bytes(b"")
    with pytest.raises(StorageError, match="older than the last zxid"):
        epochs.load_epochs(opts.snap_dir, recover(opts).last_logged_zxid)
    rec, found = recover_member(opts)
    assert rec.last_logged_zxid == HISTORY[29][0].zxid
    assert recovered_state(rec) == replay_state(HISTORY[:30])
    assert (found.current, found.accepted) == (1, 2)


def test_a_snapshot_a_sync_installed_is_kept_and_current_epoch_follows_it(tmp_path: Path) -> None:
    opts = options(str(tmp_path))
    m = Member(opts, OS_DISK)
    m.write(HISTORY[:10])
    epochs.write_long(opts.snap_dir, epochs.ACCEPTED_EPOCH, 2)
    epochs.write_long(opts.snap_dir, epochs.CURRENT_EPOCH, 1)
    leader = in_epoch(sample_txns(8, seed=5), E2)
    tree = replayed_tree(leader)
    m.storage.install_snapshot(tree, {}, leader[-1][0].zxid)
    m.storage.close()
    rec, found = recover_member(opts)
    assert rec.last_logged_zxid == leader[-1][0].zxid
    assert (found.current, found.accepted) == (2, 2)
