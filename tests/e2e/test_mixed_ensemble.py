"""Mixed ensembles of Apache ZooKeeper 3.8 (Debian) and zkserver, each kind in every role, and a
rolling migration of a live Apache ensemble to zkserver.

Real processes (tests/support/cluster.py), real clients: kazoo for writes and reads, Apache's
Java client (ZkDriver) where only it can show something - a session moving between the two
kinds with its watches re-armed by setWatches. Each test runs one ensemble through several
scenarios, to keep the JVM start-ups few; after every scenario `agree` checks that each member,
read through its own client port after a sync, holds every acknowledged write and the same tree
(data and Stat) as the others, with equal znode counts and no digest mismatch.

Which sync a restarted member got is read from its own log: Apache's learner logs "Getting a
diff from the leader", "Getting a snapshot from leader" and "Truncating log", and ours logs the
same words. How each is forced:
- DIFF: a short absence (a few writes while the member is down).
- SNAP: an absence longer than the committed log (Apache keeps at least 500 txns there, whatever
  zookeeper.commitLogCount says, and so do we). A leader of either kind would still send a DIFF
  read from its txn log, so the members run with zookeeper.snapshotSizeFactor=-1 where a SNAP
  is wanted; without it the same absence gives a long DIFF from the leader's txn log.
- TRUNC: the leader logs a write no one acknowledges (its followers are stopped by SIGSTOP, then
  killed before they run again: resumed, they would read the proposal from their socket buffers
  and log it), is killed, and the others elect and take no write before it comes back; it is
  then past the new leader's committed log and is truncated to it.
"""

from __future__ import annotations

import base64
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooState
from tests.support import javaclient, mixed
from tests.support.cluster import Cluster

pytestmark = pytest.mark.apache

CFG = {"maxSessionTimeout": "30000"}  # sessions outlive a leader's kill -9 and an election
SNAP_ABSENCE = 600  # writes while a member is down: past the 500 txns of a committed log
NO_TXNLOG_SYNC = {"zookeeper.snapshotSizeFactor": "-1"}  # an Apache leader sends SNAP past its committed log
FORMATTER_CP = "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-nop.jar"
FIELD = re.compile(r"  (\w+) = ?(.*)$")  # a SnapshotFormatter line of a node
DIFF, SNAP, TRUNC = "Getting a diff from the leader", "Getting a snapshot from leader", "Truncating log"


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[list[Cluster]]:
    """Clusters a test builds; every process of each is stopped by PID at teardown."""
    made: list[Cluster] = []
    yield made
    for cluster in made:
        cluster.close()


def make(clusters: list[Cluster], workdir: Path, kinds: list[str], **kwargs: object) -> Cluster:
    cluster = Cluster(workdir, kinds, cfg=CFG, **kwargs)  # type: ignore[arg-type]
    clusters.append(cluster)
    return cluster


# --------------------------------------------------------------------------- scenarios


def writes_and_syncs_through_each(c: Cluster, ledger: mixed.Ledger, tag: str) -> None:
    """A write through each member, seen through every member after a sync there."""
    readers = {sid: mixed.client(c.hosts([sid])) for sid in c.live()}
    try:
        for sid, zk in readers.items():
            path = f"/{tag}/via{sid}"
            ledger.write(zk, path, f"{c.kind(sid)}-{sid}".encode())
            for other, reader in readers.items():
                reader.sync(path)
                data, _ = reader.get(path)
                assert data == f"{c.kind(sid)}-{sid}".encode(), f"{path} written via {sid}, read via {other}"
    finally:
        for zk in readers.values():
            mixed.close(zk)


def sessions_live_through(c: Cluster, sids: list[int], seconds: float = 5.0) -> None:
    """Sessions of 1.5 s, each client talking only to one of `sids`, outlive `seconds`: their
    member's pings told the leader they are alive (the leader alone expires sessions)."""
    clients = {sid: mixed.client(c.hosts([sid]), timeout=1.5) for sid in sids}
    states: dict[int, list] = {sid: [] for sid in sids}
    try:
        for sid, zk in clients.items():
            zk.add_listener(states[sid].append)
            zk.create(f"/keep/{sid}", b"", ephemeral=True, makepath=True)
        time.sleep(seconds)  # the point of the check: time passes
        for sid, zk in clients.items():
            assert zk.exists(f"/keep/{sid}") is not None and KazooState.LOST not in states[sid], \
                f"a session on member {sid} ({c.kind(sid)}) expired: {states[sid]}"
    finally:
        for zk in clients.values():
            mixed.close(zk)


def rejoin(c: Cluster, ledger: mixed.Ledger, sid: int, writes: int, expect: str, tag: str) -> str:
    """Stop member `sid`, make `writes` writes elsewhere, start it again; it must sync by `expect`.
    Returns its log since the restart."""
    c.stop(sid)
    others = [s for s in c.live() if s != sid]
    zk = mixed.client(c.hosts(others))
    try:
        ledger.bulk(zk, f"/{tag}", writes)
    finally:
        mixed.close(zk)
    mark = c.log_mark(sid)
    c.start([sid])
    return c.wait_for_log(sid, expect, mark)


def rejoins_under_load(c: Cluster, ledger: mixed.Ledger, sid: int, times: int) -> None:
    """Member `sid` leaves and rejoins `times` times while writers keep the leader busy, so that
    proposals are in flight during each sync (the window of ZOOKEEPER-4685 and -4394). Each
    rejoin takes one sync; the member never gives up on its leader."""
    load = [mixed.Writer(f"r{sid}-{i}", c.hosts([s for s in c.live() if s != sid]), ledger) for i in range(2)]
    try:
        for w in load:
            w.start()
        mixed.wait_writes(load, 10)
        mark = c.log_mark(sid)
        for _ in range(times):
            c.stop(sid)
            mixed.wait_writes(load, 10)
            c.start([sid])
            mixed.wait_writes(load, 10)
        text = c.log_since(sid, mark)
        assert text.count(DIFF) + text.count(SNAP) == times, "a rejoin took more than one sync"
        assert "Exception when following the leader" not in text and "FOLLOWING -> LOOKING" not in text
    finally:
        for w in load:
            w.close()


def truncate_isolated_leader(c: Cluster, leader: int) -> str:
    """Make the leader log a write no one acks, kill it, let the others elect (and take no write),
    start it again: it must be truncated. Returns its log since the restart; the write must be gone.
    The followers are stopped (SIGSTOP) while the leader logs the write, so that it still leads,
    and killed before they could read its proposal."""
    followers = [s for s in c.live() if s != leader]
    zk = mixed.client(c.hosts([leader]))
    try:
        for sid in followers:
            c.pause(sid)
        zk.create_async("/uncommitted", b"never acknowledged")
        mixed.wait_logged(c.data_dir(leader), "/uncommitted")
        for sid in followers:
            c.kill(sid)
        c.kill(leader)
    finally:
        zk.stop()  # its server is gone: this only ends the client
        zk.close()
    c.start(followers, wait=False)
    c.wait_for_quorum(sids=followers)
    mark = c.log_mark(leader)
    c.start([leader])
    text = c.wait_for_log(leader, TRUNC, mark)
    c.wait_for_quorum()
    return text


def assert_uncommitted_gone(c: Cluster) -> None:
    for sid in c.live():
        zk = mixed.client(c.hosts([sid]))
        try:
            zk.sync("/")
            assert zk.exists("/uncommitted") is None, f"member {sid} kept the truncated write"
        finally:
            mixed.close(zk)


def java_session_moves(c: Cluster, apache: int, ours: int, tag: str) -> None:
    """Apache's Java client, connected to both members, is moved between them twice by dropping
    its connection (its host list alternates): the session survives each move, and the watches it
    set on one kind fire on the other - the client re-armed them there with setWatches."""
    hosts = f"{c.hosts([apache])},{c.hosts([ours])}"
    base = f"/{tag}"
    script = [
        "connect 20000", "server", "events",
        f"create {base} - PERSISTENT", f"create {base}/eph me EPHEMERAL",
        f"get {base} w=data", f"getChildren {base} w=kids",
        "dropconnection", "waitconnected", "server", "events",
        "@t connect 20000", f"@t set {base} changed", f"@t create {base}/k - PERSISTENT",
        "waitevents 2 20000", "events",
        f"get {base} w=data",
        "dropconnection", "waitconnected", "server", "events",
        f"@t set {base} again", "waitevents 1 20000", "events",
        f"exists {base}/eph", "@t close", "close",
    ]
    out = javaclient.run_script(hosts, script, timeout=120)
    assert not javaclient.all_ok(out), javaclient.all_ok(out)
    servers = [r["server"] for r in javaclient.results(out) if r["cmd"] == "server"]
    ports = {c.seats[apache].client_port: "apache", c.seats[ours].client_port: "zkserver"}
    kinds = [ports[int(s.rsplit(":", 1)[1])] for s in servers]
    assert kinds[0] != kinds[1] and kinds[2] == kinds[0], f"the session was on {kinds}"
    moved = [("None", "Disconnected", None, "default"), ("None", "SyncConnected", None, "default")]
    assert javaclient.events_of(out, "events", 1) == moved
    assert sorted(javaclient.events_of(out, "events", 2)) == [
        ("NodeChildrenChanged", "SyncConnected", base, "kids"), ("NodeDataChanged", "SyncConnected", base, "data")]
    assert javaclient.events_of(out, "events", 3) == moved
    assert javaclient.events_of(out, "events", 4) == [("NodeDataChanged", "SyncConnected", base, "data")]
    session = javaclient.step(out, "connect 20000")["sessionId"]
    assert javaclient.step(out, f"exists {base}/eph")["stat"]["ephemeralOwner"] == session


def snapshot_tree(path: Path) -> dict[str, tuple]:
    """What Apache's SnapshotFormatter reads in a snapshot file: path -> (data, czxid, mzxid,
    pzxid, version, aversion, ephemeralOwner)."""
    res = subprocess.run(["java", "-cp", FORMATTER_CP, "org.apache.zookeeper.server.SnapshotFormatter", "-d",
                          str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = {}
    for block in res.stdout.split("----\n")[1:]:
        lines = block.splitlines()
        if not lines or not lines[0].startswith("/"):
            continue
        fields = dict(m.groups() for m in map(FIELD.match, lines[1:]) if m)
        out[lines[0]] = (base64.b64decode(fields.get("data", "")), int(fields["cZxid"], 16),
                         int(fields["mZxid"], 16), int(fields["pZxid"], 16), int(fields["dataVersion"]),
                         int(fields["aclVersion"]), int(fields["ephemeralOwner"], 16))
    return out


def apache_snapshot_matches(c: Cluster, sid: int, log_text: str, tree: dict[str, tuple]) -> None:
    """The snapshot Apache member `sid` wrote after a SNAP from us reads in SnapshotFormatter as
    `tree` (what the leader's clients read: kazoo's Stat is czxid, mzxid, ctime, mtime, version,
    cversion, aversion, ephemeralOwner, dataLength, numChildren, pzxid)."""
    zxid = int(re.search(rf"{SNAP} 0x([0-9a-f]+)", log_text).group(1), 16)  # type: ignore[union-attr]
    snap = c.data_dir(sid) / "version-2" / f"snapshot.{zxid:x}"
    deadline = time.monotonic() + 30
    while not snap.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    read = snapshot_tree(snap)
    expected = {p: (d, st[0], st[1], st[10], st[4], st[6], st[7]) for p, (d, st) in tree.items()}
    read = {p: v for p, v in read.items() if p == "/" or not p.startswith("/zookeeper")}
    assert read == expected


def step_down_below_quorum(c: Cluster, leader: int) -> float:
    """SIGSTOP every follower: the leader must step down (srvr: not serving) about syncLimit ticks
    later. Returns how long it took; the followers are resumed and the ensemble re-forms."""
    followers = [s for s in c.live() if s != leader and c.mode(s) == "follower"]
    for sid in followers:
        c.pause(sid)
    start = time.monotonic()
    try:
        c.wait_for_mode(leader, [None], timeout=30)
        took = time.monotonic() - start
    finally:
        for sid in followers:
            c.resume(sid)
    c.wait_for_quorum()
    return took


def assert_step_down_time(c: Cluster, took: float) -> None:
    tick = c.tick_ms / 1000
    # The leader counts a follower synced until syncLimit ticks after its last packet, and checks
    # once per tick; a loaded 2-core machine only makes it later.
    assert (c.sync_limit - 2) * tick <= took <= (c.sync_limit + 2) * tick + 5, took


# --------------------------------------------------------------------------- tests


def test_two_apache_and_zkserver_leading_then_following(tmp_path: Path, clusters: list[Cluster]) -> None:
    """2 Apache + 1 zkserver: zkserver leads Apache followers (writes, syncs, digests, a session
    moving between kinds, Apache followers synced by DIFF - also while writes are in flight -,
    SNAP - the snapshot it writes read back by Apache's formatter - and TRUNC), then a kill -9
    hands leadership to Apache, whose leader syncs zkserver by TRUNC, DIFF and SNAP; zkserver
    leads again and steps down below quorum."""
    c = make(clusters, tmp_path / "c", ["apache", "apache", "zkserver"], props=NO_TXNLOG_SYNC)
    ledger = mixed.Ledger()
    c.start([1, 3])  # the larger sid wins among equals: ours
    c.start([2])
    assert c.leader() == 3

    writes_and_syncs_through_each(c, ledger, "zleads")
    sessions_live_through(c, [1, 2])
    java_session_moves(c, apache=1, ours=3, tag="jmove1")
    rejoin(c, ledger, 1, 5, DIFF, "adiff")
    rejoins_under_load(c, ledger, 1, 2)
    snap_log = rejoin(c, ledger, 1, SNAP_ABSENCE, SNAP, "asnap")
    tree = mixed.agree(c, ledger)
    apache_snapshot_matches(c, 1, snap_log, tree)

    # Our leader, isolated with a write nobody acked, is killed: Apache 2 leads and truncates us.
    truncate_isolated_leader(c, 3)
    assert c.leader() == 2
    assert_uncommitted_gone(c)
    mixed.agree(c, ledger)

    writes_and_syncs_through_each(c, ledger, "aleads")
    sessions_live_through(c, [3])
    rejoin(c, ledger, 3, 5, DIFF, "zdiff")
    rejoins_under_load(c, ledger, 3, 2)
    rejoin(c, ledger, 3, SNAP_ABSENCE, SNAP, "zsnap")
    mixed.agree(c, ledger)

    # The Apache leader, isolated the same way, is killed: we lead again and truncate it.
    truncate_isolated_leader(c, 2)
    assert c.leader() == 3
    assert_uncommitted_gone(c)
    writes_and_syncs_through_each(c, ledger, "zleads2")
    mixed.agree(c, ledger)

    assert_step_down_time(c, step_down_below_quorum(c, 3))
    writes_and_syncs_through_each(c, ledger, "after")
    mixed.agree(c, ledger)


def test_apache_and_two_zkserver_with_observers_of_both_kinds(tmp_path: Path, clusters: list[Cluster]) -> None:
    """1 Apache + 2 zkserver voters, one observer of each kind: Apache leads (zkserver followers
    and both observers synced by DIFF, also a long DIFF Apache reads from its txn log), a kill -9
    moves leadership to zkserver (Apache rejoins by DIFF, both observers follow the new leader,
    the Apache observer rejoins by a long DIFF our leader reads from its txn log), then back to
    Apache, which steps down below quorum."""
    c = make(clusters, tmp_path / "c", ["zkserver", "zkserver", "apache", "apache", "zkserver"], observers=2)
    ledger = mixed.Ledger()
    c.start([1, 3])
    c.start([2, 4, 5])
    assert c.leader() == 3
    assert (c.mode(4), c.mode(5)) == ("observer", "observer")

    writes_and_syncs_through_each(c, ledger, "aleads")
    sessions_live_through(c, [1, 4, 5])
    java_session_moves(c, apache=3, ours=1, tag="jmove1")
    java_session_moves(c, apache=4, ours=5, tag="jmove2")  # between the two observers
    rejoin(c, ledger, 1, 5, DIFF, "zdiff")
    apache_mark = c.log_mark(3)
    rejoin(c, ledger, 1, SNAP_ABSENCE, DIFF, "zlongdiff")
    assert "Use txnlog and committedLog for peer sid: 1" in c.log_since(3, apache_mark)
    rejoin(c, ledger, 5, 5, DIFF, "odiff")
    mixed.agree(c, ledger)

    c.kill(3)
    assert c.wait_for_quorum() == 2
    writes_and_syncs_through_each(c, ledger, "zleads")
    mark = c.log_mark(3)
    c.start([3])
    c.wait_for_log(3, DIFF, mark)
    ours = c.leader()
    ours_mark = c.log_mark(ours)
    rejoin(c, ledger, 4, SNAP_ABSENCE, DIFF, "aolongdiff")  # the Apache observer, from our leader's txn log
    sent = re.findall(r"Sending DIFF 0x[0-9a-f]+ to learner 4 .* with (\d+) txns, (\d+) of them from the txn log",
                      c.log_since(ours, ours_mark))
    assert len(sent) == 1 and int(sent[0][1]) > 0, sent
    mixed.agree(c, ledger)

    c.kill(2)
    assert c.wait_for_quorum() == 3
    assert_step_down_time(c, step_down_below_quorum(c, 3))
    c.start([2])
    writes_and_syncs_through_each(c, ledger, "after")
    mixed.agree(c, ledger)


@pytest.mark.parametrize(("writers", "writes"), [
    pytest.param(3, 30, id="bounded"),
    pytest.param(6, 200, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(1200)]),
])
def test_rolling_migration_of_a_live_apache_ensemble(tmp_path: Path, clusters: list[Cluster], writers: int,
                                                     writes: int) -> None:
    """Three Apache members under continuous write load are replaced by zkserver on their own data
    dirs, one at a time, followers first; the Apache leader is killed -9 after the first
    replacement and its crashed data dir is the next one zkserver takes over; then one member is
    rolled back to Apache on the data dir zkserver wrote. At the end every
    acknowledged write is on every member, the members agree, and every writer's session lived
    through it all (its ephemeral node is still there; kazoo never saw it LOST): clients of a
    replaced member reconnected elsewhere, as with Apache."""
    c = make(clusters, tmp_path / "c", ["apache", "apache", "apache"])
    c.start()
    ledger = mixed.Ledger()
    load = [mixed.Writer(f"w{i}", c.hosts(), ledger) for i in range(writers)]
    try:
        for w in load:
            w.start()
        mixed.wait_writes(load, writes)

        leader = c.leader()
        first, second = (s for s in c.seats if s != leader)
        migrate(c, first)
        mixed.wait_writes(load, writes)

        c.kill(leader)  # a crash in the middle of the migration
        c.wait_for_quorum()
        mixed.wait_writes(load, writes)
        migrate(c, leader)  # zkserver recovers the data dir Apache crashed on
        mixed.wait_writes(load, writes)
        migrate(c, second)
        mixed.wait_writes(load, writes)
        assert {c.kind(s) for s in c.seats} == {"zkserver"}
        if writers > 3:  # the long run also loses a zkserver leader to a kill -9
            crashed = c.leader()
            assert crashed is not None
            c.kill(crashed)
            c.wait_for_quorum()
            mixed.wait_writes(load, writes)
            c.start([crashed])
            mixed.wait_writes(load, writes)
        # Rolling back one member: Apache starts on the data dir zkserver wrote, and follows.
        back = next(s for s in c.seats if c.mode(s) == "follower")
        c.replace(back, "apache")
        c.start([back])
        mixed.wait_writes(load, writes)
        for w in load:
            w.halt()
    finally:
        for w in load:
            w.halt()
    tree = mixed.agree(c, ledger)
    for w in load:
        assert KazooState.LOST not in w.states, f"{w.label}'s session expired: {w.states}"
        assert tree[w.ephemeral][1][7] == w.session_id, f"{w.ephemeral} is not {w.label}'s any more"
        assert w.count >= 5 * writes
        w.close()


def migrate(c: Cluster, sid: int) -> None:
    """Stop Apache member `sid` and start zkserver on its seat and data dir; wait until it serves."""
    assert c.kind(sid) == "apache"
    c.replace(sid, "zkserver")
    c.start([sid])
    assert c.mode(sid) in ("leader", "follower")
    assert re.search(rf"ensemble member {sid}: last logged zxid 0x[1-9a-f]", c.log_since(sid)), "it lost Apache's log"
