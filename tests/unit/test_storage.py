"""Durable storage: log and snapshot formats, digest prediction, recovery, torn tails, purge."""

from __future__ import annotations

import asyncio
import errno
import gzip
import logging
import os
import random
import socket
import threading
import zlib
from pathlib import Path

import pytest
from kazoo.protocol.serialization import Create, Delete, SetData, Transaction
from kazoo.security import OPEN_ACL_UNSAFE as KAZOO_OPEN
from tests.unit.corehelper import CoreDriver

from zkserver.jute.codec import Writer
from zkserver.jute.codes import Op
from zkserver.jute.records import (
    CheckVersionTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
)
from zkserver.storage import digest as digest_module
from zkserver.storage import epochs, purge, syncer
from zkserver.storage.database import DiskStorage, StorageOptions, logs_needed, prepare_dirs, recover
from zkserver.storage.digest import DigestPredictor, tree_digest
from zkserver.storage.snapshot import SnapFormat, read_snapshot, write_snapshot
from zkserver.storage.txnlog import (
    FileTxnLog,
    LogFile,
    StorageError,
    decode_entry,
    encode_entry,
    pad_size,
)
from zkserver.tree.acl import OPEN_ACL_UNSAFE
from zkserver.tree.datatree import DataTree

ACL = OPEN_ACL_UNSAFE
SID = 0x1234


def hdr(zxid: int, kind: int, sid: int = SID) -> TxnHeader:
    return TxnHeader(sid, zxid, zxid, 1_700_000_000_000 + zxid, kind)


def sample_txns(n: int = 60, seed: int = 1) -> list[tuple[TxnHeader, object]]:
    """A valid txn sequence over a small tree: creates, sets, deletes, ACLs, multis, sessions."""
    rng = random.Random(seed)
    live: list[str] = []
    ephs: list[str] = []  # never parents, never deleted here, but they keep their parent alive
    out: list[tuple[TxnHeader, object]] = [(hdr(1, Op.CREATE_SESSION), CreateSessionTxn(30000))]
    zxid = 1
    while len(out) < n:
        zxid += 1
        roll = rng.random()
        if roll < 0.4 or not live:
            parent = rng.choice(["", *live]) if live else ""
            path = f"{parent}/n{zxid}"
            eph = rng.random() < 0.2
            out.append((hdr(zxid, Op.CREATE), CreateTxn(Op.CREATE, path, b"d%d" % zxid, ACL, eph, -1)))
            (ephs if eph else live).append(path)
        elif roll < 0.6:
            out.append((hdr(zxid, Op.SET_DATA), SetDataTxn(rng.choice(live), os.urandom(rng.randrange(20)), zxid)))
        elif roll < 0.7:
            out.append((hdr(zxid, Op.SET_ACL), SetACLTxn(rng.choice(live), ((1, "world", "anyone"),), 1)))
        elif roll < 0.8:
            leaves = [p for p in live if not any(q.startswith(p + "/") for q in live + ephs)]
            path = rng.choice(leaves)
            live.remove(path)
            out.append((hdr(zxid, Op.DELETE), DeleteTxn(path)))
        elif roll < 0.9:
            path = f"/m{zxid}"
            subs = [(Op.CREATE, CreateTxn(Op.CREATE, path, b"", ACL, False, -1)),
                    (Op.SET_DATA, SetDataTxn(path, b"x", 1)), (Op.CHECK, CheckVersionTxn(path, 1))]
            out.append((hdr(zxid, Op.MULTI), MultiTxn(subs)))
            live.append(path)
        else:
            out.append((hdr(zxid, Op.ERROR), ErrorTxn(-101)))
    return out


def opts_for(tmp_path: Path, **kw) -> StorageOptions:
    o = StorageOptions(data_dir=str(tmp_path / "data"), **kw)
    os.makedirs(o.snap_dir, exist_ok=True)
    return o


def write_log(o: StorageOptions, txns: list[tuple[TxnHeader, object]], prealloc: int = 4096) -> str:
    tree = DataTree()
    pred = DigestPredictor(tree)
    log = FileTxnLog(o.log_dir, lambda z: None, pre_alloc_size=prealloc, digest=pred.after)
    log.append(txns)
    log.close()
    return os.path.join(o.log_dir, f"log.{txns[0][0].zxid:x}")


def replayed_tree(txns: list[tuple[TxnHeader, object]]) -> DataTree:
    t = DataTree()
    for h, txn in txns:
        t.apply(h, txn)
    t.events = []
    return t


def tree_state(t: DataTree) -> dict:
    return {p: (n.data, n.acl, n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version, n.cversion, n.aversion,
                n.owner, tuple(sorted(n.children))) for p, n in t.nodes.items()}


# ---------------------------------------------------------------- format


def test_missing_data_dirs_are_created_unless_autocreate_is_off(tmp_path: Path) -> None:
    # FileTxnSnapLog: zookeeper.datadir.autocreate=false refuses a missing version-2 directory.
    opts = StorageOptions(data_dir=str(tmp_path / "a" / "b"), data_log_dir=str(tmp_path / "log"), autocreate_dirs=False)
    with pytest.raises(StorageError, match=r"Missing data directory .*zookeeper.datadir.autocreate is false"):
        prepare_dirs(opts)
    prepare_dirs(StorageOptions(data_dir=opts.data_dir, data_log_dir=opts.data_log_dir))
    assert os.path.isdir(opts.snap_dir) and os.path.isdir(opts.log_dir)
    prepare_dirs(opts)  # they exist now


def test_entry_round_trip_every_txn_type() -> None:
    for h, txn in [*sample_txns(200, seed=7), (hdr(999, Op.CLOSE_SESSION), CloseSessionTxn(["/a", "/b"]))]:
        raw = encode_entry(h, txn, 42)
        back_hdr, back_txn, digest = decode_entry(raw[12:-1])
        assert back_hdr == h
        assert digest == (2, 42)
        if not isinstance(txn, MultiTxn):
            assert back_txn == txn


def test_fast_entry_encoders_keep_the_records_layout() -> None:
    # setData, create and delete entries are built without a Writer; their bytes must stay
    # those of TxnHeader.write + the record's write + TxnDigest.
    acls = ((31, "world", "anyone"), (1, "digest", "bob:xyz="), (3, "ip", "10.0.0.1"))
    txns = [
        (Op.SET_DATA, SetDataTxn("/a/\u00fc", b"x" * 300, 7)), (Op.SET_DATA, SetDataTxn("/a", None, -1)),
        (Op.SET_DATA, SetDataTxn("/", b"", 2**31 - 1)),
        (Op.CREATE, CreateTxn(Op.CREATE, "/e", b"d", ACL, True, 4)),
        (Op.CREATE2, CreateTxn(Op.CREATE2, "/\u00e9", None, acls, False, -1)),
        (Op.CREATE_CONTAINER, CreateTxn(Op.CREATE_CONTAINER, "/c", b"", acls[:1], False, 2)),
        (Op.CREATE_TTL, CreateTxn(Op.CREATE_TTL, "/t", b"t", (), False, 3, 999)),
        (Op.DELETE, DeleteTxn("/a")), (Op.DELETE_CONTAINER, DeleteTxn("/c", Op.DELETE_CONTAINER)),
    ]
    for kind, txn in txns:
        h = TxnHeader(-(2**63), -1, 2**63 - 1, 1_700_000_000_000, kind)
        for digest in (None, 0, -(2**63)):
            w = Writer().raw(h.encode()).raw(txn.encode())
            if digest is not None:
                w.int(2).long(digest)  # TxnDigest{version 2, treeDigest}
            body = bytes(w.buf)
            assert encode_entry(h, txn, digest) == (
                zlib.adler32(body).to_bytes(8, "big") + len(body).to_bytes(4, "big") + body + b"B"), (txn, digest)


def test_pad_size_follows_apache() -> None:
    assert pad_size(16, 16, 1000) == 1016
    assert pad_size(100, 10000, 1000) == 10000  # far from the end: no growth
    assert pad_size(5000, 1000, 1000) == 6000  # past the end: next multiple beyond
    assert pad_size(5000, 1000, 0) == 1000


def test_log_write_read_and_preallocation(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(300)
    path = write_log(o, txns, prealloc=8192)
    assert os.path.getsize(path) % 8192 == 0
    lf = LogFile(path)
    got = [(e.hdr, e.digest) for e in lf]
    assert lf.problem is None
    assert [h for h, _ in got] == [h for h, _ in txns]
    # Entries of failed single ops carry no digest, as Apache writes them.
    assert all((d is None) == (h.type == Op.ERROR) for h, d in got)


# ---------------------------------------------------------------- digest


def test_predicted_digest_matches_full_digest_after_each_txn() -> None:
    txns = sample_txns(300, seed=3)
    tree = DataTree()
    pred = DigestPredictor(tree)
    predicted = [pred.after(h, t) for h, t in txns]  # all in flight before any is applied
    for (h, t), p in zip(txns, predicted, strict=True):
        tree.apply(h, t)
        if p is not None:
            assert p == tree_digest(tree), hex(h.zxid)


@pytest.mark.parametrize("retained", [0, 8, 4096])
def test_predicted_digest_with_applies_between_predictions(monkeypatch, retained: int) -> None:
    """Entries kept after their txn is applied (a cache of hot nodes) must stay exact, whether
    the overlay is trimmed, cleared or kept."""
    monkeypatch.setattr(digest_module, "_RETAINED", retained)
    txns = sample_txns(600, seed=11)
    tree = DataTree()
    pred = DigestPredictor(tree)
    rng = random.Random(4)
    i = 0
    while i < len(txns):
        window = txns[i:i + rng.randint(1, 12)]  # predicted ahead, then applied
        predicted = [pred.after(h, t) for h, t in window]
        for (h, t), p in zip(window, predicted, strict=True):
            tree.apply(h, t)
            if p is not None:
                assert p == tree_digest(tree), hex(h.zxid)
        i += len(window)


def test_predicted_digest_with_pipelined_core_writes() -> None:
    drv = CoreDriver(auto_persist=False)
    client = drv.session()
    pred = DigestPredictor(drv.core.tree)
    start = len(drv.appended)
    for i in range(30):
        client.send(Create(f"/p{i % 7}", b"x" * i, KAZOO_OPEN, 0))
        client.send(SetData(f"/p{i % 5}", b"y%d" % i, -1))
        if i % 4 == 3:
            client.send(Delete(f"/p{i % 7}", -1))
        if i % 6 == 0:
            client.send(Transaction([Create(f"/t{i}", b"", KAZOO_OPEN, 0), Delete("/nope", -1)]))
    drv.pump()
    fresh = drv.appended[start:]
    predicted = [pred.after(h, t) for h, t in fresh]
    for (h, _), p in zip(fresh, predicted, strict=True):
        drv.persist(h.zxid)
        if p is not None:
            assert p == tree_digest(drv.core.tree)


# ---------------------------------------------------------------- snapshots


def test_snapshot_round_trip(tmp_path: Path) -> None:
    txns = sample_txns(200, seed=5)
    tree = replayed_tree(txns)
    tree.nodes["/zookeeper/config"].data = b"server.1=x"
    path = write_snapshot(str(tmp_path), tree, {SID: 30000, 77: 4000})
    assert os.path.basename(path) == f"snapshot.{tree.last_processed_zxid:x}"
    snap = read_snapshot(path)
    assert snap.sessions == {SID: 30000, 77: 4000}
    assert tree_state(snap.tree) == tree_state(tree)
    assert snap.tree.ephemerals == {k: v for k, v in tree.ephemerals.items() if v}
    assert snap.digest == (tree.last_processed_zxid, 2, tree_digest(tree))
    assert not [n for n in os.listdir(tmp_path) if n.startswith("tmp.")]


@pytest.mark.parametrize("digest", [True, False])
@pytest.mark.parametrize("last_zxid", [True, False])
@pytest.mark.parametrize("compression", ["", "gz"])
def test_snapshot_formats_round_trip(tmp_path: Path, digest: bool, last_zxid: bool, compression: str) -> None:
    tree = replayed_tree(sample_txns(120, seed=9))
    fmt = SnapFormat(digest, compression, last_zxid)
    path = write_snapshot(str(tmp_path), tree, {SID: 30000}, fmt=fmt)
    assert os.path.basename(path) == f"snapshot.{tree.last_processed_zxid:x}" + (".gz" if compression else "")
    raw = Path(path).read_bytes()
    assert raw[:2] == b"\x1f\x8b" if compression else raw[-5:] == b"\x00\x00\x00\x01/"
    snap = read_snapshot(path)
    assert tree_state(snap.tree) == tree_state(tree)
    assert (snap.digest is not None) == digest
    assert snap.extra.get("last_processed_zxid") == (tree.last_processed_zxid if last_zxid else None)
    (tmp_path / "plain").mkdir()
    plain = write_snapshot(str(tmp_path / "plain"), tree, {SID: 30000}, fmt=SnapFormat(digest, "", last_zxid))
    assert (gzip.decompress(raw) if compression else raw) == Path(plain).read_bytes()


def test_snapshot_keeps_null_data_null(tmp_path: Path) -> None:
    tree = replayed_tree([(hdr(1, Op.CREATE), CreateTxn(Op.CREATE, "/null", None, ACL, False, -1)),
                          (hdr(2, Op.CREATE), CreateTxn(Op.CREATE, "/empty", b"", ACL, False, -1))])
    snap = read_snapshot(write_snapshot(str(tmp_path), tree, {}))
    assert snap.tree.nodes["/null"].data is None  # as Apache reads a length of -1
    assert snap.tree.nodes["/empty"].data == b""
    assert snap.digest is not None and snap.digest[2] == tree_digest(snap.tree)


def test_snapshot_corruption_is_detected(tmp_path: Path) -> None:
    tree = replayed_tree(sample_txns(50))
    path = write_snapshot(str(tmp_path), tree, {})
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0x40
    Path(path).write_bytes(bytes(data))
    with pytest.raises(StorageError):
        read_snapshot(path)


# ---------------------------------------------------------------- recovery


def test_recover_snapshot_plus_log(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(120)
    write_log(o, txns)
    mid = replayed_tree(txns[:50])
    write_snapshot(o.snap_dir, mid, {SID: 30000})
    rec = recover(o)
    assert rec.snapshot_zxid == txns[49][0].zxid
    assert rec.replayed == 70
    assert tree_state(rec.tree) == tree_state(replayed_tree(txns))
    assert rec.tree.last_processed_zxid == txns[-1][0].zxid
    # The snapshot's digest, carried through the replay by prediction, without a walk.
    assert rec.digest_checked is True
    assert rec.digest == tree_digest(rec.tree)


def test_recover_walks_the_tree_when_the_log_digests_disagree(tmp_path: Path, caplog) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(120)
    write_log(o, txns)
    mid = replayed_tree(txns[:50])
    mid.nodes["/"].data = b"not what the log's digests were computed over"
    write_snapshot(o.snap_dir, mid, {SID: 30000})
    with caplog.at_level(logging.INFO, logger="zkserver.storage"):
        rec = recover(o)
    assert "computed from the whole tree" in caplog.text
    assert rec.digest == tree_digest(rec.tree)
    assert rec.digest_checked is False


def test_recover_does_not_trust_the_digest_of_a_fuzzy_snapshot(tmp_path: Path, caplog) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(120)
    write_log(o, txns)
    # Apache's snapshots are fuzzy: named after the zxid at the start, they may hold later
    # txns, and their recorded digest is the one after the last txn applied when they ended.
    later = Path(write_snapshot(o.snap_dir, replayed_tree(txns[:60]), {SID: 30000}))
    later.rename(later.with_name(f"snapshot.{txns[49][0].zxid:x}"))
    with caplog.at_level(logging.INFO, logger="zkserver.storage"):
        rec = recover(o)
    assert "not the one predicted" not in caplog.text  # the recorded digest was never used
    assert tree_state(rec.tree) == tree_state(replayed_tree(txns))
    assert rec.digest == tree_digest(rec.tree)
    assert rec.digest_checked is True


def test_recover_walks_the_tree_after_a_log_without_digests(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(120)
    log = FileTxnLog(o.log_dir, lambda z: None, pre_alloc_size=4096)  # digest.enabled=false wrote it
    log.append(txns)
    log.close()
    write_snapshot(o.snap_dir, replayed_tree(txns[:50]), {SID: 30000})
    rec = recover(o)
    assert rec.replayed == 70
    assert rec.digest is None  # the running server walks the tree for its predictor
    assert rec.digest_checked is None


def test_invalid_snapshot_is_skipped_for_an_older_one(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(120)
    write_log(o, txns)
    write_snapshot(o.snap_dir, DataTree(), {})
    newer = write_snapshot(o.snap_dir, replayed_tree(txns[:80]), {})
    Path(newer).write_bytes(Path(newer).read_bytes()[:-30] + b"\0" * 25 + b"\x00\x00\x00\x01/")
    rec = recover(o)
    assert rec.snapshot_zxid == 0
    assert tree_state(rec.tree) == tree_state(replayed_tree(txns))


def test_sessions_come_back_and_orphan_ephemerals_go(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    other = 0x99
    txns = [(hdr(1, Op.CREATE_SESSION), CreateSessionTxn(30000)),
            (hdr(2, Op.CREATE_SESSION, other), CreateSessionTxn(5000)),
            (hdr(3, Op.CREATE, other), CreateTxn(Op.CREATE, "/eph", b"", ACL, True, -1)),
            (hdr(4, Op.CLOSE_SESSION, other), CloseSessionTxn([]))]
    write_log(o, txns[:3])
    rec = recover(o)
    assert rec.sessions == {SID: 30000, other: 5000}
    assert "/eph" in rec.tree.nodes
    write_log(o, txns[3:])
    rec = recover(o)
    assert rec.sessions == {SID: 30000}
    assert "/eph" not in rec.tree.nodes


@pytest.mark.parametrize("seed", range(12))
def test_torn_tail_is_truncated_at_any_point(tmp_path: Path, seed: int) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(80, seed=seed)
    path = write_log(o, txns)
    end = LogFile(path)
    list(end)
    rng = random.Random(seed)
    cut = rng.randrange(16, end.end)
    data = Path(path).read_bytes()[:cut]
    if seed % 2:  # as after a crash into a preallocated file: zeros follow the tear
        data += b"\0" * 5000
    Path(path).write_bytes(data)
    rec = recover(o)
    n = rec.tree.last_processed_zxid
    kept = [t for t in txns if t[0].zxid <= n]
    assert tree_state(rec.tree) == tree_state(replayed_tree(kept))
    assert len(kept) == len(list(LogFile(path)))
    # The file now ends at its last good entry, and recovery again changes nothing.
    assert rec.truncated == [path] or cut == end.end
    again = recover(o)
    assert tree_state(again.tree) == tree_state(rec.tree)
    assert again.truncated == []


def test_checksum_corruption_in_the_last_log_truncates(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(80)
    path = write_log(o, txns)
    entries = list(LogFile(path))
    data = bytearray(Path(path).read_bytes())
    data[entries[40].offset + 20] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    rec = recover(o)
    assert rec.tree.last_processed_zxid == txns[39][0].zxid
    assert rec.truncated == [path]


def test_corruption_before_later_logs_stops_startup(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(80)
    first = write_log(o, txns[:40])
    write_log(o, txns[40:])
    entries = list(LogFile(first))
    data = bytearray(Path(first).read_bytes())
    data[entries[10].offset + 20] ^= 0xFF
    Path(first).write_bytes(bytes(data))
    with pytest.raises(StorageError, match="refusing to start"):
        recover(o)


def test_logs_needed_follows_apache() -> None:
    logs = [(1, "a"), (10, "b"), (20, "c")]
    assert logs_needed(logs, 15) == [(10, "b"), (20, "c")]
    assert logs_needed(logs, 10) == [(10, "b"), (20, "c")]
    assert logs_needed(logs, 0) == logs


# ---------------------------------------------------------------- running storage


def test_group_commit_through_the_syncer(tmp_path: Path) -> None:
    o = opts_for(tmp_path, snap_count=40)
    txns = sample_txns(200)

    async def run() -> list[int]:
        loop = asyncio.get_running_loop()
        durable: list[int] = []
        tree = DataTree()
        st = DiskStorage(o, tree, dict, durable.append)
        st.start(loop)
        for h, t in txns:
            st.append([(h, t)])
            if h.zxid % 17 == 0:
                await asyncio.sleep(0.001)
        while not durable or durable[-1] != txns[-1][0].zxid:
            await asyncio.sleep(0.01)
        st.close()
        return durable

    durable = asyncio.run(run())
    assert durable == sorted(durable)
    assert len(durable) < len(txns)  # batches: fewer fsync reports than txns
    rec = recover(o)
    assert tree_state(rec.tree) == tree_state(replayed_tree(txns))


def test_writes_before_the_syncer_is_up_are_synced_by_the_loop(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(30)

    async def run() -> bool:
        durable: list[int] = []
        st = DiskStorage(o, DataTree(), dict, durable.append)
        st.log.lone_rounds = False
        st.start(asyncio.get_running_loop())
        st.append(txns[:10])  # the loop has not run since start: the syncer cannot have said it is up
        synced_here = not st.log._syncer_ready and st.log.stats.fsyncs > 0
        await asyncio.sleep(0)
        assert durable == [txns[9][0].zxid]
        while not st.log._syncer_ready:
            await asyncio.sleep(0.01)
        syncs, own = st.log.stats.fsyncs, st.log.stats.own_fsyncs
        st.append(txns[10:])
        while durable[-1] != txns[-1][0].zxid:
            await asyncio.sleep(0.01)
        assert st.log.stats.fsyncs > syncs and st.log.stats.own_fsyncs == own  # through the syncer now
        st.close()
        return synced_here

    assert asyncio.run(run())
    assert tree_state(recover(o).tree) == tree_state(replayed_tree(txns))


async def _storage_with_syncer_up(o: StorageOptions, durable: list[int]) -> DiskStorage:
    st = DiskStorage(o, DataTree(), dict, durable.append)
    st.start(asyncio.get_running_loop())
    while not st.log._syncer_ready:
        await asyncio.sleep(0.01)
    return st


def test_a_lone_write_is_synced_by_the_loop_right_after_its_turn(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(3)

    async def run() -> None:
        durable: list[int] = []
        st = await _storage_with_syncer_up(o, durable)
        for i, (h, t) in enumerate(txns):
            await asyncio.sleep(0.01)  # idle: nothing to group this write with
            own = st.log.stats.own_fsyncs
            st.append([(h, t)])
            assert not st.log._in_flight  # the syncer was not asked
            assert durable == [x[0].zxid for x in txns[:i]]  # not durable within the turn
            await asyncio.sleep(0)
            assert durable[-1] == h.zxid and st.log.stats.own_fsyncs == own + 1
        st.close()

    asyncio.run(run())
    assert tree_state(recover(o).tree) == tree_state(replayed_tree(txns))


def test_a_lone_write_goes_to_the_syncer_while_fsyncs_are_slow(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(2)

    async def run() -> None:
        durable: list[int] = []
        st = await _storage_with_syncer_up(o, durable)
        st.log._recent_fsync_s = 0.005  # as on a disk that takes milliseconds per fsync
        await asyncio.sleep(0.02)  # idle for longer than two such fsyncs
        st.append(txns)
        assert st.log._in_flight  # the syncer was asked: the loop does not wait for a slow disk
        while not durable:
            await asyncio.sleep(0.01)
        st.close()

    asyncio.run(run())


def test_writes_in_quick_succession_go_to_the_syncer(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(60)

    async def run() -> tuple[int, int]:
        durable: list[int] = []
        st = await _storage_with_syncer_up(o, durable)
        before = st.log.stats.fsyncs - st.log.stats.own_fsyncs
        for h, t in txns:
            st.append([(h, t)])
            await asyncio.sleep(0)  # one loop turn between writes: no time to sync inline
        while durable[-1] != txns[-1][0].zxid:
            await asyncio.sleep(0.01)
        st.close()
        return before, st.log.stats.fsyncs - st.log.stats.own_fsyncs

    before, after = asyncio.run(run())
    assert after > before  # rounds by the syncer
    assert tree_state(recover(o).tree) == tree_state(replayed_tree(txns))


def test_syncer_protocol_answers_each_request_with_its_sync_result(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = threading.Thread(target=syncer.serve, args=(theirs,))
    server.start()
    log_fd = os.open(tmp_path / "log.1", os.O_RDWR | os.O_CREAT)
    os.write(log_fd, b"entries")
    pipe_r, pipe_w = os.pipe()
    try:
        assert syncer.ANSWER.unpack(ours.recv(64))[0] == syncer.READY_GEN  # unasked, first
        socket.send_fds(ours, [syncer.REQUEST.pack(1, 7, 64)], [log_fd])
        gen, zxid, pos, _, err = syncer.ANSWER.unpack(ours.recv(64))
        assert (gen, zxid, pos, err) == (1, 7, 64, 0)
        socket.send_fds(ours, [syncer.REQUEST.pack(1, 9, 96)], [])  # the same file again
        gen, zxid, pos, _, err = syncer.ANSWER.unpack(ours.recv(64))
        assert (gen, zxid, pos, err) == (1, 9, 96, 0)
        socket.send_fds(ours, [syncer.REQUEST.pack(2, 10, 128)], [pipe_w])  # a file that cannot sync
        assert syncer.ANSWER.unpack(ours.recv(64))[4] == errno.EINVAL
    finally:
        ours.close()  # end of file: the syncer returns
        server.join(5)
        theirs.close()
        for fd in (log_fd, pipe_r, pipe_w):
            os.close(fd)
    assert not server.is_alive()


def test_a_dead_syncer_fails_the_log_and_keeps_what_it_acknowledged(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    txns = sample_txns(40)

    async def run() -> tuple[list[int], list[BaseException]]:
        durable: list[int] = []
        failures: list[BaseException] = []
        st = DiskStorage(o, DataTree(), dict, durable.append, failures.append)
        st.log.lone_rounds = False  # every round through the syncer, the one that dies
        st.start(asyncio.get_running_loop())
        while not st.log._syncer_ready:  # before that, the loop syncs by itself
            await asyncio.sleep(0.01)
        st.append(txns[:20])
        while not durable or durable[-1] != txns[19][0].zxid:
            await asyncio.sleep(0.01)
        syncer = st.log._syncer
        assert syncer is not None
        syncer.kill()
        syncer.wait()
        for h, t in txns[20:]:
            st.append([(h, t)])
            await asyncio.sleep(0.001)
        while not failures:
            await asyncio.sleep(0.01)
        sock = st.log._sock
        assert sock is not None
        # The failed log stopped watching the dead syncer's socket, which would otherwise be
        # readable (end of file) on every loop turn.
        assert not asyncio.get_running_loop().remove_reader(sock.fileno())
        st.close()
        return durable, failures

    durable, failures = asyncio.run(run())
    assert durable[-1] == txns[19][0].zxid  # nothing after the syncer died is acknowledged
    assert isinstance(failures[0], OSError)
    rec = recover(o)
    assert rec.tree.last_processed_zxid == txns[19][0].zxid  # and nothing unacknowledged is replayed
    assert tree_state(rec.tree) == tree_state(replayed_tree(txns[:20]))


# ---------------------------------------------------------------- purge and epochs


def test_purge_keeps_what_recovery_needs(tmp_path: Path) -> None:
    o = opts_for(tmp_path)
    for z in (0, 10, 20, 30, 40):
        Path(o.snap_dir, f"snapshot.{z:x}").write_bytes(b"x")
    for z in (1, 8, 15, 25, 35, 45):
        Path(o.log_dir, f"log.{z:x}").write_bytes(b"x")
    removed = purge.purge(o.snap_dir, o.log_dir, 3)
    names = sorted(os.path.basename(p) for p in removed)
    # Keep snapshots 0x14, 0x1e, 0x28 and the log that starts before 0x14 (log.f) onwards.
    assert names == ["log.1", "log.8", "snapshot.0", "snapshot.a"]
    with pytest.raises(ValueError):
        purge.files_to_purge(o.snap_dir, o.log_dir, 2)


def test_epoch_files(tmp_path: Path) -> None:
    assert epochs.read_long(str(tmp_path), epochs.CURRENT_EPOCH) is None
    epochs.write_long(str(tmp_path), epochs.CURRENT_EPOCH, 7)
    epochs.write_long(str(tmp_path), epochs.CURRENT_EPOCH, 8)
    assert (tmp_path / "currentEpoch").read_text() == "8"
    assert epochs.read_long(str(tmp_path), epochs.CURRENT_EPOCH) == 8
    (tmp_path / "acceptedEpoch").write_text("garbage")
    with pytest.raises(StorageError):
        epochs.read_long(str(tmp_path), epochs.ACCEPTED_EPOCH)
