"""Apache ZooKeeper and zkserver read each other's data dirs, and Apache's tools read ours."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl
from tests.support.servers import RunningServer, skip_if_no_apache, start_apache, start_zkserver

pytestmark = pytest.mark.apache
TOOL_CP = "/usr/share/java/*:/usr/share/zookeeper/*"


def _workload(hosts: str) -> None:
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=10)
    try:
        for i in range(30):
            zk.create(f"/n{i}", b"v%d" % i)
        zk.set("/n1", b"changed")
        zk.delete("/n2")
        zk.create("/n3/child", b"c")
        zk.create("/seq-", b"", sequence=True)
        zk.set_acls("/n4", [make_digest_acl("u", "p", all=True)])
        t = zk.transaction()
        t.create("/m1", b"m")
        t.set_data("/n5", b"multi")
        t.delete("/n3/child")
        t.commit()
        t = zk.transaction()
        t.create("/m2")
        t.delete("/missing")
        t.commit()
        zk.create("/deep/a/b/c", b"deep", makepath=True)
        zk.create("/eph", b"", ephemeral=True)
    finally:
        zk.stop()
        zk.close()


def _tree(server: RunningServer) -> dict:
    zk = KazooClient(hosts=server.hosts, timeout=10.0, auth_data=[("digest", "u:p")])
    zk.start(timeout=10)
    out = {}
    try:
        stack = ["/"]
        while stack:
            p = stack.pop()
            data, st = zk.get(p)
            out[p] = (data, st.czxid, st.mzxid, st.pzxid, st.ctime, st.mtime, st.version, st.cversion,
                      st.aversion, st.ephemeralOwner, st.numChildren, tuple(zk.get_acls(p)[0]))
            stack += [(p.rstrip("/") + "/" + c) for c in zk.get_children(p)]
    finally:
        zk.stop()
        zk.close()
    return out


def _tool(cls: str, path: Path) -> str:
    res = subprocess.run(["java", "-cp", TOOL_CP, cls, str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"{cls} failed on {path}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res.stdout


def test_zkserver_serves_an_apache_data_dir(tmp_path: Path) -> None:
    skip_if_no_apache()
    apache = start_apache(tmp_path / "apache", {"dataDir": str(tmp_path / "adata")})
    try:
        _workload(apache.hosts)
        expected = _tree(apache)
    finally:
        apache.stop()
    shutil.copytree(tmp_path / "adata", tmp_path / "zdata")
    ours = start_zkserver(tmp_path / "zk", {"dataDir": str(tmp_path / "zdata")})
    try:
        got = _tree(ours)
    finally:
        ours.stop()
    # Apache's reads above created and closed sessions, moving the root's and nothing else.
    assert {k: v for k, v in got.items() if k != "/"} == {k: v for k, v in expected.items() if k != "/"}
    # Replaying Apache's log, our tree digest matched the one Apache recorded in each entry.
    assert "Tree digest after replay" not in ours.log_path.read_text(errors="replace")


def test_apache_reads_zkserver_files_and_data_dir(tmp_path: Path) -> None:
    skip_if_no_apache()
    data = tmp_path / "zdata"
    ours = start_zkserver(tmp_path / "zk", {"dataDir": str(data), "snapCount": "10", "preAllocSize": "64"})
    try:
        _workload(ours.hosts)
        expected = _tree(ours)
    finally:
        ours.stop()
    version2 = data / "version-2"
    snaps = sorted(version2.glob("snapshot.*"))
    logs = sorted(version2.glob("log.*"))
    assert len(snaps) > 1 and len(logs) > 1
    for snap in snaps:
        assert "Last zxid" in _tool("org.apache.zookeeper.server.SnapshotFormatter", snap)
    for log in logs:
        assert "EOF reached after" in _tool("org.apache.zookeeper.server.persistence.TxnLogToolkit", log)
    shutil.copytree(data, tmp_path / "adata")
    apache = start_apache(tmp_path / "apache", {"dataDir": str(tmp_path / "adata")})
    try:
        got = _tree(apache)
        text = apache.log_path.read_text(errors="replace")
    finally:
        apache.stop()
    assert {k: v for k, v in got.items() if k != "/"} == {k: v for k, v in expected.items() if k != "/"}
    # Apache compares our logged digests with its own tree as it replays: no complaints.
    assert "digest mismatch" not in text.lower() and "Digests are not matching" not in text


def test_gz_snapshots_with_the_39_trailer_both_ways(tmp_path: Path) -> None:
    """snapshot.compression.method=gz: zkserver writes snapshot.<zxid>.gz (with 3.9's
    lastProcessedZxid section, on by default as in 3.9) that Debian's 3.8 tools and server
    read; and it reads the .gz snapshots Apache writes."""
    skip_if_no_apache()
    data = tmp_path / "zdata"
    ours = start_zkserver(tmp_path / "zk", {"dataDir": str(data), "snapCount": "10",
                                            "snapshot.compression.method": "gz"})
    try:
        _workload(ours.hosts)
        expected = _tree(ours)
    finally:
        ours.stop()
    snaps = sorted((data / "version-2").glob("snapshot.*"))
    assert len(snaps) > 1 and all(s.name.endswith(".gz") for s in snaps), snaps
    for snap in snaps:
        assert "Last zxid" in _tool("org.apache.zookeeper.server.SnapshotFormatter", snap)
    shutil.copytree(data, tmp_path / "adata")
    apache = start_apache(tmp_path / "apache", {"dataDir": str(tmp_path / "adata"), "snapCount": "10"},
                          jvm_props={"zookeeper.snapshot.compression.method": "gz"})
    try:
        got = _tree(apache)
        _workload_more(apache.hosts)
        expected_more = _tree(apache)
    finally:
        apache.stop()
    assert {k: v for k, v in got.items() if k != "/"} == {k: v for k, v in expected.items() if k != "/"}
    # Apache wrote .gz snapshots of its own on top; zkserver reads them back.
    assert len(list((tmp_path / "adata" / "version-2").glob("snapshot.*.gz"))) > len(snaps)
    shutil.copytree(tmp_path / "adata", tmp_path / "zdata2")
    again = start_zkserver(tmp_path / "zk2", {"dataDir": str(tmp_path / "zdata2")})
    try:
        back = _tree(again)
    finally:
        again.stop()
    assert {k: v for k, v in back.items() if k != "/"} == {k: v for k, v in expected_more.items() if k != "/"}
    assert "Skipping invalid snapshot" not in again.log_path.read_text(errors="replace")


def _workload_more(hosts: str) -> None:
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=10)
    try:
        for i in range(25):
            zk.create(f"/more{i}", b"m%d" % i)
    finally:
        zk.stop()
        zk.close()
