"""Dynamic reconfiguration on real ensembles: 3 zkserver members, and mixed with Apache 3.8.

A super user adds an observer and removes it again (kazoo's TestReconfig does the same through
kazoo's own harness, tests/kazoo_suite). Every member must then serve the same
/zookeeper/config, and keep the files Apache 3.8 keeps: zoo.cfg.bak (the original),
zoo.cfg.dynamic.<hex version> per activated config (sorted lines, no version) and zoo.cfg
rewritten to point at the newest one. A member restarted afterwards starts from those files.
In the mixed runs each kind leads in one of them (whoever wins the election; the test records
which), and both kinds must end with byte-identical dynamic files.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from tests.support.cluster import Cluster
from tests.support.ports import free_port

SUPER_DIGEST = {"zookeeper.DigestAuthenticationProvider.superDigest": "super:D/InIHSb7yEEbrWz8b9l71RjZJU="}
RECONFIG = {"reconfigEnabled": "true"}


def client(c: Cluster, sids: list[int] | None = None, auth: bool = False) -> KazooClient:
    zk = KazooClient(hosts=c.hosts(sids), auth_data=[("digest", "super:test")] if auth else None, timeout=10)
    zk.start(timeout=30)
    return zk


def served_config(c: Cluster, sid: int) -> bytes:
    zk = client(c, [sid])
    try:
        zk.sync("/zookeeper/config")
        return zk.get("/zookeeper/config")[0]
    finally:
        zk.stop()
        zk.close()


def config_files(c: Cluster, sid: int) -> dict[str, str]:
    base = c.data_dir(sid).parent
    return {p.name: p.read_text() for p in base.iterdir() if p.name.startswith("zoo.cfg") and not
            p.name.endswith(".tmp")}


def wait_for_files(c: Cluster, sid: int, name: str, timeout: float = 10.0) -> dict[str, str]:
    end = time.monotonic() + timeout
    while True:
        files = config_files(c, sid)
        if name in files or time.monotonic() > end:
            return files
        time.sleep(0.05)


def dynamic_text(config: bytes) -> str:
    """What zoo.cfg.dynamic.<v> holds for a served config: its lines sorted, no version."""
    return "\n".join(sorted(line for line in config.decode().split("\n") if not line.startswith("version=")))


def version_of(config: bytes) -> int:
    return int(config.decode().rsplit("version=", 1)[1], 16)


def add_and_remove_an_observer(c: Cluster) -> tuple[bytes, bytes]:
    joining = f"server.100=0.0.0.0:{free_port()}:{free_port()}:observer;0.0.0.0:{free_port()}"
    zk = client(c, auth=True)
    try:
        added, _ = zk.reconfig(joining=joining, leaving=None, new_members=None)
        assert joining.encode() in added
        removed, stat = zk.reconfig(joining=None, leaving="100", new_members=None, from_config=version_of(added))
        assert b"server.100" not in removed and stat.version == -1 and stat.mzxid == version_of(removed)
        return added, removed
    finally:
        zk.stop()
        zk.close()


def check_member_files(c: Cluster, sid: int, configs: list[bytes]) -> dict[str, str]:
    last = f"zoo.cfg.dynamic.{version_of(configs[-1]):x}"
    files = wait_for_files(c, sid, last)
    for config in configs:
        name = f"zoo.cfg.dynamic.{version_of(config):x}"
        assert files.get(name) == dynamic_text(config), f"member {sid} ({c.kind(sid)}): {name}"
    static = files["zoo.cfg"]
    assert f"dynamicConfigFile={c.data_dir(sid).parent / last}\n" in static, static
    assert "server." not in static
    assert "server.1=" in files["zoo.cfg.bak"]
    assert "zoo.cfg.dynamic.next" not in files
    return files


def test_three_zkserver_members_reconfigure_keep_apaches_files_and_restart_from_them(tmp_path: Path) -> None:
    with Cluster(tmp_path, ["zkserver"] * 3, cfg=RECONFIG, props=SUPER_DIGEST) as c:
        c.start()
        first = served_config(c, 1)
        assert version_of(first) & 0xFFFFFFFF == 0 and version_of(first) >> 32 >= 1  # the first leader's epoch << 32
        added, removed = add_and_remove_an_observer(c)
        for sid in (1, 2, 3):
            assert served_config(c, sid) == removed, sid
            check_member_files(c, sid, [first, added, removed])
        follower = next(sid for sid in (1, 2, 3) if sid != c.leader())
        c.stop(follower)
        c.start([follower])  # zoo.cfg now names the dynamic file, with no server lines
        assert c.wait_for_mode(follower, ["follower"]) == "follower"
        assert served_config(c, follower) == removed


@pytest.mark.apache
@pytest.mark.parametrize("kinds", [["zkserver", "apache", "zkserver"], ["zkserver", "apache", "apache"]],
                         ids=["mostly-zkserver", "mostly-apache"])
def test_a_mixed_ensemble_applies_one_reconfig_alike_on_both_kinds(tmp_path: Path, kinds: list[str]) -> None:
    with Cluster(tmp_path, kinds, cfg=RECONFIG, props=SUPER_DIGEST) as c:
        c.start()
        leader = c.leader()
        first = served_config(c, 1)
        added, removed = add_and_remove_an_observer(c)
        dynamic: dict[str, dict[str, str]] = {}
        for sid in (1, 2, 3):
            assert served_config(c, sid) == removed, f"member {sid} ({c.kind(sid)}), leader {leader}"
            files = check_member_files(c, sid, [first, added, removed])
            dynamic[c.kind(sid)] = {k: v for k, v in files.items() if k.startswith("zoo.cfg.dynamic.")}
        assert dynamic["zkserver"] == dynamic["apache"], f"leader {leader}: {kinds}"


def remove_the_leader(c: Cluster) -> None:
    """The leader leaves the config: the others elect a leader among themselves, the old one
    follows on without a vote, and every member serves the new config and the writes after it."""
    old = c.leader()
    assert old is not None
    others = [sid for sid in c.seats if sid != old]
    # Through a zkserver member: an Apache follower told of another leader may leave before it
    # answers the reconfig (its commit is asynchronous to its shutdown), and the client sees
    # ConnectionLoss; a zkserver member answers first, then leaves its role.
    zk = client(c, [sid for sid in others if c.kind(sid) == "zkserver"], auth=True)
    try:
        zk.create("/before", b"")
        config, _ = zk.reconfig(joining=None, leaving=str(old), new_members=None)
        assert f"server.{old}=".encode() not in config
        new = c.wait_for_quorum(sids=others)
        assert new in others, f"old leader {old} ({c.kind(old)}), new {new}"
        zk.create("/after", b"")
    finally:
        zk.stop()
        zk.close()
    assert c.wait_for_mode(old, ["follower"]) == "follower"  # Apache's non-voting participant
    for sid in c.seats:
        assert served_config(c, sid) == config, f"member {sid} ({c.kind(sid)})"


def test_removing_the_zkserver_leader_hands_over_to_another_member(tmp_path: Path) -> None:
    with Cluster(tmp_path, ["zkserver"] * 3, cfg=RECONFIG, props=SUPER_DIGEST) as c:
        c.start()
        remove_the_leader(c)


@pytest.mark.apache
@pytest.mark.parametrize("kinds", [["zkserver", "apache", "zkserver"], ["zkserver", "apache", "apache"]],
                         ids=["mostly-zkserver", "mostly-apache"])
def test_removing_the_leader_of_a_mixed_ensemble(tmp_path: Path, kinds: list[str]) -> None:
    with Cluster(tmp_path, kinds, cfg=RECONFIG, props=SUPER_DIGEST) as c:
        c.start()
        remove_the_leader(c)
