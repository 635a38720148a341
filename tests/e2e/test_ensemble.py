"""zkserver ensembles as real processes: elections, failover under pipelined writes, the three
sync modes, observers; after every scenario every acknowledged write is on every member and
the members agree.

Agreement is judged from outside: each member is read by its own kazoo client after a sync,
and `mntr` gives its znode count and digest mismatches. Which sync mode a restarted member
went through is read from its log.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, KazooException
from tests.support.cluster import Cluster

CLIENT_TIMEOUT = 15.0
SNAP_ABSENCE = 600  # writes a member misses: more than a committed log holds


def client(cluster: Cluster, sids: list[int] | None = None) -> KazooClient:
    c = KazooClient(hosts=cluster.hosts(sids), timeout=10.0, connection_retry={"max_tries": -1, "delay": 0.05,
                                                                               "max_delay": 0.5})
    c.start(timeout=CLIENT_TIMEOUT)
    return c


class Writer:
    """Pipelined creates from one session, in a thread, recording what was acknowledged."""

    def __init__(self, cluster: Cluster, prefix: str, depth: int = 16):
        self.zk = client(cluster)
        self.prefix = prefix
        self.depth = depth
        self.acked: list[str] = []
        self.unknown: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self.zk.ensure_path(self.prefix)
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            batch = []
            for _ in range(self.depth):
                path = f"{self.prefix}/n{n:07d}"
                n += 1
                batch.append((path, self.zk.create_async(path, path.encode())))
            for path, result in batch:
                try:
                    result.get(timeout=CLIENT_TIMEOUT)
                    self.acked.append(path)
                except (ConnectionLoss, KazooException, TimeoutError):
                    self.unknown.append(path)
                except Exception:
                    self.unknown.append(path)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.zk.stop()
        self.zk.close()


def assert_agree(cluster: Cluster, acked: list[str], sids: list[int] | None = None) -> None:
    """Every acknowledged path is on every member; the members' trees agree."""
    sids = sids or cluster.live()
    counts = {}
    for sid in sids:
        zk = client(cluster, [sid])
        try:
            zk.sync("/")
            missing = [p for p in acked if zk.exists(p) is None]
            assert not missing, f"member {sid} lacks {len(missing)} acknowledged writes, e.g. {missing[:3]}"
        finally:
            zk.stop()
            zk.close()
        stats = cluster.mntr(sid)
        assert stats.get("zk_digest_mismatches_count", "0") == "0", (sid, stats.get("zk_digest_mismatches_count"))
        counts[sid] = stats["zk_znode_count"]
    assert len(set(counts.values())) == 1, f"members disagree on the znode count: {counts}"


def log_of(cluster: Cluster, sid: int) -> str:
    return cluster.members[sid].log_path.read_text(errors="replace")


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, ["zkserver"] * 3) as cluster:
        cluster.start()
        yield cluster


def test_leader_and_follower_kill9_under_pipelined_writes(three: Cluster) -> None:
    cluster = three
    with Writer(cluster, "/w") as w:
        time.sleep(1.0)
        leader = cluster.leader()
        assert leader is not None
        cluster.kill(leader)
        cluster.wait_for_quorum(sids=[s for s in cluster.seats if s != leader])
        time.sleep(1.0)
        follower = next(s for s in cluster.seats if s != leader and cluster.mode(s) == "follower")
        cluster.kill(follower)
        time.sleep(0.5)
        cluster.start([leader, follower], wait=False)
        cluster.wait_for_quorum()
        time.sleep(1.0)
    assert len(w.acked) > 100, f"only {len(w.acked)} writes acknowledged"
    assert_agree(cluster, w.acked)


def test_sync_modes_diff_trunc_snap(tmp_path: Path) -> None:
    """A short absence catches up by DIFF, a long one (past the committed log: 500 txns, the least
    zookeeper.commitLogCount gives, as in Apache) by SNAP when the leader may not read its txn
    log (zookeeper.snapshotSizeFactor=-1), and a member holding a proposal nobody else logged is
    TRUNCated."""
    with Cluster(tmp_path, ["zkserver"] * 3, props={"zookeeper.snapshotSizeFactor": "-1"}) as cluster:
        cluster.start()
        zk = client(cluster)
        leader = cluster.leader()
        a, b = (s for s in cluster.seats if s != leader)
        # DIFF: a misses a few writes.
        cluster.stop(a)
        for i in range(5):
            zk.create(f"/d{i}")
        cluster.start([a])
        # SNAP: b misses more writes than the committed log holds.
        cluster.stop(b)
        for pending in [zk.create_async(f"/s{i}") for i in range(SNAP_ABSENCE)]:
            pending.get(timeout=CLIENT_TIMEOUT)
        cluster.start([b])
        assert "Getting a diff from the leader" in log_of(cluster, a)
        assert "Getting a snapshot from leader" in log_of(cluster, b)
        # TRUNC: with both followers down the leader logs a proposal nobody acks, then dies;
        # the followers elect without it, and the old leader comes back before they write.
        zk.stop()
        lone = client(cluster, [leader])
        cluster.pause(a)  # frozen, not dead: the leader keeps its quorum for syncLimit ticks
        cluster.pause(b)
        lone.create_async("/phantom")
        time.sleep(0.3)
        for sid in (leader, a, b):  # the frozen followers die without reading the proposal
            cluster.kill(sid)
        lone.stop()
        cluster.start([a, b], wait=False)
        cluster.wait_for_quorum(sids=[a, b])
        cluster.start([leader])
        assert "Truncating log to get in sync with the leader" in log_of(cluster, leader)
        zk = client(cluster)
        zk.create("/after")
        acked = [f"/d{i}" for i in range(5)] + [f"/s{i}" for i in range(SNAP_ABSENCE)] + ["/after"]
        assert_agree(cluster, acked)
        zk.sync("/")
        assert zk.exists("/phantom") is None
        zk.stop()


def test_a_member_behind_the_committed_log_syncs_by_diff_from_the_leaders_txn_log(three: Cluster) -> None:
    """Past the committed log (500 txns) the leader reads what a member misses from its txn log
    and sends a DIFF (Apache's syncFollower with the default zookeeper.snapshotSizeFactor)."""
    cluster = three
    zk = client(cluster)
    leader = cluster.leader()
    assert leader is not None
    behind = next(s for s in cluster.seats if s != leader)
    cluster.stop(behind)
    for pending in [zk.create_async(f"/t{i}", b"x" * 100) for i in range(SNAP_ABSENCE)]:
        pending.get(timeout=CLIENT_TIMEOUT)
    mark = cluster.log_mark(leader)
    cluster.start([behind])
    assert "Getting a diff from the leader" in log_of(cluster, behind)
    assert "Getting a snapshot from leader" not in log_of(cluster, behind)
    assert "Digest mismatch" not in log_of(cluster, behind)  # each txn's digest is the leader's tree's
    sent = re.findall(rf"Sending DIFF 0x[0-9a-f]+ to learner {behind} \(its last zxid 0x[0-9a-f]+\) with (\d+) txns, "
                      r"(\d+) of them from the txn log", cluster.log_since(leader, mark))
    assert len(sent) == 1 and int(sent[0][0]) >= SNAP_ABSENCE and int(sent[0][1]) >= SNAP_ABSENCE - 501, sent
    zk.create("/after")
    assert_agree(cluster, [f"/t{i}" for i in range(SNAP_ABSENCE)] + ["/after"])
    zk.stop()


def test_five_members_with_an_observer_survive_two_failures(tmp_path: Path) -> None:
    with Cluster(tmp_path, ["zkserver"] * 6, observers=1) as cluster:
        cluster.start()
        assert cluster.mode(6) == "observer"
        obs = client(cluster, [6])
        obs.create("/via-observer", b"o")  # forwarded by the observer
        with Writer(cluster, "/five") as w:
            time.sleep(0.5)
            leader = cluster.leader()
            victims = [leader, next(s for s in range(1, 6) if s != leader)]
            for sid in victims:
                cluster.kill(sid)
            cluster.wait_for_quorum(sids=[s for s in cluster.seats if s not in victims])
            time.sleep(0.5)
        assert obs.get("/via-observer")[0] == b"o"
        obs.stop()
        cluster.start(victims, wait=False)
        cluster.wait_for_quorum()
        assert_agree(cluster, [*w.acked, "/via-observer"])


def test_sessions_move_between_members_and_expire_everywhere(three: Cluster) -> None:
    cluster = three
    first = next(s for s in cluster.seats if cluster.mode(s) == "follower")
    zk = client(cluster, [first])
    zk.create("/mine", ephemeral=True)
    session = zk.client_id
    others = [s for s in cluster.seats if s != first]
    cluster.stop(first)  # the session moves to another member (its timeout is 4 s here)
    moved = KazooClient(hosts=cluster.hosts(others), client_id=session)
    moved.start(timeout=CLIENT_TIMEOUT)
    assert moved.exists("/mine") is not None
    moved.set("/mine", b"still mine")
    zk.stop()
    cluster.start([first])
    cluster.wait_for_quorum()
    # The session expires on the leader; its ephemeral goes on every member.
    moved.stop()  # closes the session: its ephemeral goes at once
    for sid in cluster.seats:
        reader = client(cluster, [sid])
        reader.sync("/")
        assert reader.exists("/mine") is None, sid
        reader.stop()
    again = KazooClient(hosts=cluster.hosts(), client_id=session)
    try:
        again.start(timeout=CLIENT_TIMEOUT)  # the closed session is refused: kazoo starts a new one
        assert again.client_id[0] != session[0]
    finally:
        again.stop()


def test_a_followers_client_rides_through_the_leaders_kill9_without_a_disconnect(three: Cluster) -> None:
    """electionClientHoldMs: the surviving follower holds its idle client's connection while it
    elects, so the client sees no Disconnected (kazoo: no SUSPENDED) and its watch still fires."""
    cluster = three
    leader = cluster.leader()
    assert leader is not None
    follower = next(s for s in cluster.seats if s != leader)
    zk = client(cluster, [follower])
    states: list[str] = []
    zk.add_listener(lambda state: states.append(str(state)))
    zk.create("/held", b"before")
    fired = threading.Event()
    zk.get("/held", watch=lambda event: fired.set())
    cluster.kill(leader)
    cluster.wait_for_quorum(sids=[s for s in cluster.seats if s != leader])
    assert zk.get("/held")[0] == b"before"
    other = client(cluster, [s for s in cluster.seats if s not in (leader, follower)])
    other.set("/held", b"after")
    assert fired.wait(5.0), "the watch set before the election never fired"
    assert states == [], f"the client saw {states} during the election"
    other.stop()
    zk.stop()
