"""The ensemble storage operations against Apache ZooKeeper 3.8: its tools and server read a data
dir we truncated and one where we installed a snapshot; its own learner and leader code reads
and writes the SNAP stream we write and read; its session passwords are the ones we compute."""

from __future__ import annotations

import os
import random
import re
import subprocess
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import ACL, Id
from tests.e2e.test_storage_interop import _tool, _tree
from tests.support import javaclient
from tests.support.servers import RunningServer, skip_if_no_apache, start_apache
from tests.unit.test_storage import tree_state
from tests.unit.test_storage_ensemble import E1, diverged_member, leader_state, options, varied_tree

from zkserver.session import apache_session_password
from zkserver.storage.digest import tree_digest
from zkserver.storage.disk import OS_DISK
from zkserver.storage.snapshot import read_snapshot, write_snapshot
from zkserver.storage.snapstream import SnapshotStreamScanner, decode_snapshot_stream, encode_snapshot_stream
from zkserver.storage.txnlog import LogFile
from zkserver.tree.datatree import DataTree

pytestmark = pytest.mark.apache
SNAPSHOT_FORMATTER = "org.apache.zookeeper.server.SnapshotFormatter"
TXN_LOG_TOOLKIT = "org.apache.zookeeper.server.persistence.TxnLogToolkit"
TOOL_SOURCE = Path(__file__).resolve().parent / "java" / "SnapStreamTool.java"
SIGNATURE = b"\x00\x00\x00\x0aBenWasHere"


def _as_served(tree: DataTree) -> dict:
    """Our tree as _tree reads a server's, the system nodes and the root left out. A client sees
    cversion as 2 * the persisted one - children (Apache's DataNode.copyStat)."""
    out = {}
    for path, n in tree.nodes.items():
        if path == "/" or path.startswith("/zookeeper"):
            continue
        out[path] = (n.data or b"", n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version,
                     2 * n.cversion - len(n.children), n.aversion, n.owner, len(n.children),
                     tuple(ACL(p, Id(s, i)) for p, s, i in n.acl))
    return out


def _served_by_apache(tmp_path: Path, data_dir: Path) -> tuple[dict, str]:
    apache: RunningServer = start_apache(tmp_path / "apache", {"dataDir": str(data_dir)})
    try:
        got = _tree(apache)
        text = apache.log_path.read_text(errors="replace")
    finally:
        apache.stop()
    return {k: v for k, v in got.items() if k != "/" and not k.startswith("/zookeeper")}, text


def _loaded_like_us(text: str, tree: DataTree) -> None:
    """Apache's log: it loaded the data dir to our zxid and our digest, and did not complain."""
    assert f"highest zxid is 0x{tree.last_processed_zxid:x}, digest is {tree_digest(tree)}" in text
    assert "digest mismatch" not in text.lower() and "Digests are not matching" not in text


def test_apache_tools_and_server_read_a_truncated_data_dir(tmp_path: Path) -> None:
    skip_if_no_apache()
    opts = options(str(tmp_path))
    m = diverged_member(opts, OS_DISK)
    rec = m.storage.truncate(E1 + 30)
    m.storage.close()
    v2 = Path(opts.snap_dir)
    snaps = sorted(v2.glob("snapshot.*"))
    assert [s.name for s in snaps] == ["snapshot.0", f"snapshot.{E1 + 20:x}"]
    for snap in snaps:
        assert f"Last zxid: 0x{int(snap.name.split('.')[1], 16):x}" in _tool(SNAPSHOT_FORMATTER, snap)
    for log in sorted(v2.glob("log.*")):
        ours = [e.hdr.zxid for e in LogFile(str(log))]
        text = _tool(TXN_LOG_TOOLKIT, log)
        assert f"EOF reached after {len(ours)} txns." in text
        assert [int(z, 16) for z in re.findall(r" zxid 0x([0-9a-f]+) ", text)] == ours
    assert max(e.hdr.zxid for e in LogFile(str(v2 / f"log.{E1 + 21:x}"))) == E1 + 30
    served, text = _served_by_apache(tmp_path, tmp_path / "data")
    assert served == _as_served(rec.tree)
    _loaded_like_us(text, rec.tree)


def test_apache_tools_and_server_read_an_installed_snapshot(tmp_path: Path) -> None:
    skip_if_no_apache()
    opts = options(str(tmp_path))
    m = diverged_member(opts, OS_DISK)
    tree, sessions, _ = leader_state(25)
    path = m.storage.install_snapshot(tree, sessions, E1 + 25)
    m.storage.close()
    assert sorted(os.listdir(opts.snap_dir)) == [f"snapshot.{E1 + 25:x}"]
    text = _tool(SNAPSHOT_FORMATTER, Path(path))
    assert f"ZNode Details (count={len(tree.nodes) + 1}):" in text  # Apache counts the root twice
    assert f"Last zxid: 0x{E1 + 25:x}" in text
    served, log_text = _served_by_apache(tmp_path, tmp_path / "data")
    assert served == _as_served(tree)
    assert (f"The digest in the snapshot has digest version of 2, with zxid as 0x{E1 + 25:x}, and digest "
            f"value as {tree_digest(tree)}") in log_text
    _loaded_like_us(log_text, tree)


@pytest.fixture(scope="module")
def snap_stream_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    skip_if_no_apache()
    javaclient.require_java()
    classes = tmp_path_factory.mktemp("snapstreamtool")
    subprocess.run(["javac", "-nowarn", "-d", str(classes), "-cp", javaclient.client_classpath(), str(TOOL_SOURCE)],
                   check=True, capture_output=True, timeout=120)
    return classes


def _run_tool(classes: Path, *args: str) -> tuple[int, int]:
    proc = subprocess.run(["java", *javaclient.JVM_OPTS, "-cp", f"{classes}:{javaclient.client_classpath()}",
                           "SnapStreamTool", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    nodes, digest = re.fullmatch(r"nodes=(\d+) digest=(-?\d+)\s*", proc.stdout).groups()  # type: ignore[union-attr]
    return int(nodes), int(digest)


def test_apache_learner_reads_our_snapshot_stream(tmp_path: Path, snap_stream_tool: Path) -> None:
    tree, sessions = varied_tree()
    stream = tmp_path / "stream"
    stream.write_bytes(encode_snapshot_stream(tree, sessions) + SIGNATURE)
    snap = tmp_path / f"snapshot.{E1 + 7:x}"
    nodes, digest = _run_tool(snap_stream_tool, "from-stream", str(stream), str(snap), f"{E1 + 7:x}")
    assert (nodes, digest) == (len(tree.nodes) + 1, tree_digest(tree))
    saved = read_snapshot(str(snap), extended_types=True)  # what Apache's learner saved of it
    assert tree_state(saved.tree) == tree_state(tree)
    assert saved.sessions == sessions


def test_we_read_the_snapshot_stream_of_an_apache_leader(tmp_path: Path, snap_stream_tool: Path) -> None:
    tree, sessions = varied_tree()
    snap = write_snapshot(str(tmp_path), tree, sessions)
    out = tmp_path / "stream"
    nodes, digest = _run_tool(snap_stream_tool, "to-stream", snap, str(out))
    assert (nodes, digest) == (len(tree.nodes) + 1, tree_digest(tree))
    data = out.read_bytes()
    assert data.endswith(SIGNATURE)
    rng = random.Random(3)
    for _ in range(20):  # Apache's own orders (sessions, ACL map, children): found in any chunking
        scanner, pos = SnapshotStreamScanner(), 0
        while True:
            n = rng.randint(1, 64)
            used = scanner.feed(data[pos:pos + n])
            if used is not None:
                pos += used
                break
            pos += n
        assert data[pos:] == SIGNATURE
    got, got_sessions = decode_snapshot_stream(data[:-len(SIGNATURE)], extended_types=True)
    assert tree_state(got) == tree_state(tree)
    assert got_sessions == sessions


def test_session_passwords_of_a_live_apache_server(apache_server: RunningServer) -> None:
    for _ in range(3):
        zk = KazooClient(hosts=apache_server.hosts, timeout=10.0)
        zk.start(timeout=10)
        try:
            session_id, password = zk.client_id
        finally:
            zk.stop()
            zk.close()
        assert apache_session_password(session_id) == password, hex(session_id)
