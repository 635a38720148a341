"""What a mixed-ensemble test checks with real clients: acknowledged writes, write load, agreement.

A `Ledger` records every write a server acknowledged (and the ones whose outcome the client
never learned). `Writer` is one kazoo session writing under load in a thread, recording into a
ledger, holding an ephemeral node and noting every state its session went through, so a test
can tell that the session survived (no LOST). `agree` is the check run after every scenario:
each given member, read through its own client port after a `sync`, holds every acknowledged
write and exactly the same tree (data and Stat) as the others; their `mntr` znode counts are
equal; no member counts a digest mismatch in `mntr` nor (ours) logs one, but right after a fuzzy
snapshot from an Apache leader (see `sort_mismatches`); their epoch files agree.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from tests.support.cluster import Cluster
from zkserver.storage.txnlog import LOG_PREFIX, read_log_files, sorted_files

CLIENT_TIMEOUT = 30.0  # seconds; the session timeout asked for (the servers cap it at maxSessionTimeout)
RETRY = {"max_tries": -1, "delay": 0.1, "backoff": 1.5, "max_delay": 1.0}
WRITE_TIMEOUT = 30.0
OUR_DIGEST_MISMATCH = "Digest mismatch at zxid"  # storage/database.py's warning
FUZZY_WINDOW = 256  # txns after a SNAP from an Apache leader whose digests may differ (see below)


def client(hosts: str, timeout: float = CLIENT_TIMEOUT, **kwargs: object) -> KazooClient:
    """A started kazoo client that reconnects quickly and forever."""
    zk = KazooClient(hosts=hosts, timeout=timeout, connection_retry=dict(RETRY), **kwargs)
    zk.start(timeout=30)
    return zk


def close(zk: KazooClient) -> None:
    zk.stop()
    zk.close()


@dataclass
class Ledger:
    """Acknowledged writes (path -> data last acknowledged; None: deleted) and unsure ones."""

    acked: dict[str, bytes | None] = field(default_factory=dict)
    unsure: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, path: str, data: bytes | None) -> None:
        with self.lock:
            self.acked[path] = data

    def doubt(self, path: str) -> None:
        with self.lock:
            self.unsure.add(path)

    def write(self, zk: KazooClient, path: str, data: bytes) -> None:
        """Create `path` through `zk` and record it (the caller wants it acknowledged)."""
        zk.create(path, data, makepath=True)
        self.ack(path, data)

    def bulk(self, zk: KazooClient, parent: str, count: int, size: int = 16) -> None:
        """Create `count` children of `parent` through `zk`, pipelined, and record them."""
        zk.ensure_path(parent)
        pending = []
        for i in range(count):
            path, data = f"{parent}/{i:06d}", f"{i:0{size}d}".encode()
            pending.append((path, data, zk.create_async(path, data)))
        for path, data, result in pending:
            result.get(timeout=WRITE_TIMEOUT)
            self.ack(path, data)


class Writer(threading.Thread):
    """One session creating /load/<name>/<n> one after another, as fast as it is answered."""

    def __init__(self, name: str, hosts: str, ledger: Ledger, timeout: float = CLIENT_TIMEOUT):
        super().__init__(name=f"writer-{name}", daemon=True)
        self.label = name
        self.ledger = ledger
        self.states: list[KazooState] = []
        self.zk = client(hosts, timeout)
        self.zk.add_listener(self.states.append)
        self.ephemeral = f"/live/{name}"
        self.zk.create(self.ephemeral, name.encode(), ephemeral=True, makepath=True)
        self.zk.ensure_path(f"/load/{name}")
        self.session_id = self.zk.client_id[0]
        self.count = 0
        self.errors: list[str] = []
        self._halted = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._halted.is_set():
            path = f"/load/{self.label}/{n:06d}"
            data = f"{self.label}:{n}".encode()
            n += 1
            try:
                self.zk.create_async(path, data).get(timeout=WRITE_TIMEOUT)
            except (KazooException, KazooTimeoutError) as e:
                # Lost with its connection, or not answered in time: it may or may not have happened.
                self.ledger.doubt(path)
                self.errors.append(f"{path}: {type(e).__name__}")
                self._halted.wait(0.05)
                continue
            self.ledger.ack(path, data)
            self.count += 1

    def wait_for(self, writes: int, timeout: float = 60.0) -> None:
        """Block until this writer has had `writes` more writes acknowledged."""
        target = self.count + writes
        deadline = time.monotonic() + timeout
        while self.count < target:
            if time.monotonic() > deadline or not self.is_alive():
                raise AssertionError(f"{self.name}: {self.count}/{target} writes acknowledged; "
                                     f"errors {self.errors[-5:]}")
            time.sleep(0.02)

    def halt(self) -> None:
        self._halted.set()
        self.join(WRITE_TIMEOUT + 5)

    def close(self) -> None:
        self.halt()
        close(self.zk)


def wait_writes(writers: Iterable[Writer], writes: int) -> None:
    for w in writers:
        w.wait_for(writes)


# --------------------------------------------------------------------------- reading a member


def read_tree(zk: KazooClient, root: str = "/") -> dict[str, tuple]:
    """path -> (data, Stat) of every node under `root` but /zookeeper, read level by level with
    pipelined requests."""
    out: dict[str, tuple] = {}
    level = [root]
    while level:
        gets = [(p, zk.get_async(p), zk.get_children_async(p)) for p in level]
        level = []
        for path, get, children in gets:
            try:
                data, stat = get.get(timeout=30)
                kids = children.get(timeout=30)
            except NoNodeError:
                continue  # deleted between the two reads of its parent (only under load)
            out[path] = (data, tuple(stat))
            level += [f"{path.rstrip('/')}/{c}" for c in kids if f"{path.rstrip('/')}/{c}" != "/zookeeper"]
    return out


def member_view(cluster: Cluster, sid: int) -> dict[str, tuple]:
    """Member `sid`'s tree as its own clients see it once it has caught up (sync)."""
    zk = client(cluster.hosts([sid]), timeout=10.0)
    try:
        zk.sync("/")
        return read_tree(zk)
    finally:
        close(zk)


def agree(cluster: Cluster, ledger: Ledger, sids: Iterable[int] | None = None, timeout: float = 30.0) -> dict:
    """The check after every scenario (see the module doc); the agreed tree."""
    sids = list(sids) if sids is not None else cluster.live()
    views = {sid: member_view(cluster, sid) for sid in sids}
    first, reference = sids[0], views[sids[0]]
    for sid in sids:
        view = views[sid]
        missing = {p: d for p, d in ledger.acked.items() if d is not None and (p not in view or view[p][0] != d)}
        assert not missing, f"member {sid} ({cluster.kind(sid)}) lacks acknowledged writes: {sorted(missing)[:10]}"
        resurrected = [p for p, d in ledger.acked.items() if d is None and p in view]
        assert not resurrected, f"member {sid} has nodes whose delete was acknowledged: {resurrected[:10]}"
        if view != reference:
            diff = sorted(p for p in set(view) | set(reference) if view.get(p) != reference.get(p))
            raise AssertionError(f"members {first} and {sid} disagree on {len(diff)} nodes, e.g. "
                                 f"{[(p, reference.get(p), view.get(p)) for p in diff[:3]]}")
    _same_counts_no_mismatch(cluster, sids, timeout)
    _same_epochs(cluster, sids)
    return reference


def _same_epochs(cluster: Cluster, sids: list[int]) -> None:
    """currentEpoch and acceptedEpoch: a decimal number without a newline, the same everywhere."""
    files = {sid: tuple((cluster.data_dir(sid) / "version-2" / name).read_text()
                        for name in ("currentEpoch", "acceptedEpoch")) for sid in sids}
    assert all(re.fullmatch(r"\d+", v) for pair in files.values() for v in pair), files
    assert len(set(files.values())) == 1, f"epoch files (current, accepted) differ: {files}"


def _same_counts_no_mismatch(cluster: Cluster, sids: list[int], timeout: float) -> None:
    # The counts settle once the sessions of the readers above are closed everywhere.
    deadline = time.monotonic() + timeout
    while True:
        stats = {sid: cluster.mntr(sid) for sid in sids}
        counts = {sid: stats[sid].get("zk_znode_count") for sid in sids}
        if len(set(counts.values())) == 1:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"znode counts differ: {counts}")
        time.sleep(0.2)
    for sid in sids:
        mismatches = int(stats[sid].get("zk_digest_mismatches_count", "0"))
        allowed = 0
        if cluster.kind(sid) == "zkserver":
            text = cluster.log_since(sid)
            explained, unexplained = sort_mismatches(cluster, text)
            assert not unexplained, f"member {sid} logged digest mismatches: {unexplained[:3]}"
            this_run = text[text.rfind("=== launch"):]  # what its mntr counts
            allowed = FUZZY_WINDOW if any(line in this_run for line in explained) else 0
        assert mismatches <= allowed, f"member {sid} ({cluster.kind(sid)}) counts {mismatches} digest mismatches"


def sort_mismatches(cluster: Cluster, log_text: str) -> tuple[list[str], list[str]]:
    """Our member's "Digest mismatch" lines: those of the first FUZZY_WINDOW txns after a SNAP
    from an Apache leader, and the others. Apache serializes the snapshot it sends while it keeps
    applying txns, so the tree may already hold some of the txns that follow it; until the
    learner has replayed past them, its digest and the leader's differ - an Apache learner counts
    them too. (The leader's kind is read from the cluster now: right for tests that replace no
    member before this check.) A zkserver leader's snapshot is exact: any mismatch after it counts."""
    leader, snap, explained, unexplained = None, None, [], []
    for line in log_text.splitlines():
        if m := re.search(r"FOLLOWING leader (\d+)", line):
            leader, snap = int(m.group(1)), None
        elif m := re.search(r"Getting a snapshot from leader 0x([0-9a-f]+)", line):
            snap = int(m.group(1), 16) if leader is not None and cluster.kind(leader) == "apache" else None
        elif m := re.search(rf"{OUR_DIGEST_MISMATCH} 0x([0-9a-f]+)", line):
            fuzzy = snap is not None and 0 < int(m.group(1), 16) - snap <= FUZZY_WINDOW
            (explained if fuzzy else unexplained).append(line)
    return explained, unexplained


# --------------------------------------------------------------------------- a member's disk


def logged_txns(data_dir: Path) -> list[tuple[int, object]]:
    """(zxid, txn) of every entry in the member's txn logs, in order (Apache's or ours)."""
    v2 = str(data_dir / "version-2")
    paths = [p for _, p in sorted_files(v2, LOG_PREFIX)]
    return [(e.hdr.zxid, e.txn) for _, e in read_log_files(paths)]


def wait_logged(data_dir: Path, path: str, timeout: float = 20.0) -> int:
    """Wait until a create of `path` is in the member's txn log; its zxid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for zxid, txn in logged_txns(data_dir):
            if getattr(txn, "path", None) == path:
                return zxid
        time.sleep(0.05)
    raise AssertionError(f"no create of {path} in the txn log under {data_dir}")
