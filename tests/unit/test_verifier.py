"""Quorum verifiers: membership, quorum rules, weights, the oracle, and the config string."""

from __future__ import annotations

from pathlib import Path

import pytest

from zkserver.config import ConfigError, PeerAddress, ServerSpec, load_config
from zkserver.quorum.verifier import (
    QuorumHierarchical,
    QuorumMaj,
    QuorumOracleMaj,
    config_version,
    java_hex,
    java_host_string,
    server_string,
    verifier_from_config,
)
from zkserver.tree.javaorder import java_hash_map_order, java_long_hash, java_properties_order


def spec(sid: int, observer: bool = False, host: str = "127.0.0.1", client: tuple[str | None, int] | None = None
         ) -> ServerSpec:
    address = PeerAddress(host, 2000 + sid, 3000 + sid)
    client_host, client_port = client if client else (None, None)
    return ServerSpec(sid, (address,), "observer" if observer else "participant", client_host, client_port)


def write_cfg(tmp_path: Path, body: str, myid: int = 1) -> Path:
    (tmp_path / "myid").write_text(str(myid))
    path = tmp_path / "zoo.cfg"
    path.write_text(f"tickTime=500\ndataDir={tmp_path}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n{body}")
    return path


def test_majority_counts_voters_only() -> None:
    v = QuorumMaj([spec(1), spec(2), spec(3), spec(4, observer=True), spec(5, observer=True)])
    assert v.voting == {1, 2, 3} and v.observers == {4, 5}
    assert v.contains_quorum({1, 2})
    assert not v.contains_quorum({1, 4, 5})  # observers never count
    assert not v.contains_quorum({1, 99})
    assert v.weight(1) == 1 and v.weight(99) == 1


def test_majority_of_four_needs_three() -> None:
    v = QuorumMaj([spec(s) for s in (1, 2, 3, 4)])
    assert not v.contains_quorum({1, 2})
    assert v.contains_quorum({1, 2, 3})


def test_string_is_apaches_with_no_trailing_newline() -> None:
    v = QuorumMaj([spec(3), spec(1), spec(2)])
    assert str(v) == ("server.1=127.0.0.1:2001:3001:participant\n"
                      "server.2=127.0.0.1:2002:3002:participant\n"
                      "server.3=127.0.0.1:2003:3003:participant\nversion=0")
    assert v.config_bytes() == str(v).encode()


def test_string_hex_version_and_colliding_ids_in_hashmap_order() -> None:
    # 1 and 17 share bucket 1 of a 16-bucket HashMap: insertion order decides inside it.
    v = QuorumMaj([spec(17), spec(2), spec(1)], version=0x100000000)
    assert [line.split("=")[0] for line in str(v).splitlines()] == \
        ["server.17", "server.1", "server.2", "version"]
    assert str(v).endswith("version=100000000")
    assert java_hex(-1) == "ffffffffffffffff"


def test_server_string_client_part_only_from_the_server_line() -> None:
    assert server_string(spec(1)) == "127.0.0.1:2001:3001:participant"
    assert server_string(spec(1, client=(None, 2181))) == "127.0.0.1:2001:3001:participant;0.0.0.0:2181"
    assert server_string(spec(1, observer=True, client=("10.0.0.1", 2181))) == \
        "127.0.0.1:2001:3001:observer;10.0.0.1:2181"


def test_host_strings_are_javas() -> None:
    assert java_host_string("::1") == "0:0:0:0:0:0:0:1"
    assert java_host_string("fe80::ab:1") == "fe80:0:0:0:0:0:ab:1"
    assert java_host_string("::ffff:10.0.0.1") == "10.0.0.1"
    assert java_host_string("zk1.example") == "zk1.example"
    assert server_string(spec(1, host="::1")) == "[0:0:0:0:0:0:0:1]:2001:3001:participant"


def test_multi_address_sorted_by_host() -> None:
    s = ServerSpec(1, (PeerAddress("b.example", 1, 2), PeerAddress("a.example", 3, 4)))
    assert server_string(s) == "a.example:3:4|b.example:1:2:participant"


def test_hierarchical_quorum_majority_of_groups_by_weight() -> None:
    members = [spec(s) for s in range(1, 7)]
    v = QuorumHierarchical(members, {1: (1, 2, 3), 2: (4, 5, 6)}, {})
    assert not v.contains_quorum({1, 2})  # one group of two is not more than half of two groups
    assert v.contains_quorum({1, 2, 4, 5})
    assert not v.contains_quorum(set())
    three = QuorumHierarchical(members, {1: (1, 2), 2: (3, 4), 3: (5, 6)}, {})
    assert three.contains_quorum({1, 2, 3, 4})
    assert not three.contains_quorum({1, 3, 5})  # half of each group is not a majority


def test_hierarchical_zero_weight_group_does_not_count() -> None:
    members = [spec(s) for s in range(1, 7)]
    v = QuorumHierarchical(members, {1: (1, 2, 3), 2: (4, 5, 6)}, {4: 0, 5: 0, 6: 0})
    assert v.contains_quorum({1, 2})  # one live group: its majority is enough
    assert not v.contains_quorum({4, 5, 6})


def test_hierarchical_weights() -> None:
    members = [spec(s) for s in range(1, 7)]
    v = QuorumHierarchical(members, {1: (1, 2, 3), 2: (4, 5, 6), 3: ()}, {1: 3, 2: 0, 3: 0})
    assert v.weight(1) == 3 and v.weight(2) == 0 and v.weight(4) == 1 and v.weight(99) == 0
    assert v.contains_quorum({1, 4, 5})  # server 1 alone outweighs its group's others
    assert not v.contains_quorum({2, 3, 4, 5})


def test_hierarchical_string() -> None:
    members = [spec(1), spec(2), spec(3), spec(4, observer=True)]
    v = QuorumHierarchical(members, {1: (1, 2), 2: (3,)}, {2: 0})
    assert str(v).split("\n")[4:] == ["group.1=1:2", "group.2=3", "weight.1=1", "weight.2=0", "weight.3=1",
                                      "version=0"]


def test_hierarchical_rejects_a_participant_without_a_group() -> None:
    with pytest.raises(ValueError, match="not in a group"):
        QuorumHierarchical([spec(1), spec(2)], {1: (1,)}, {})


def test_oracle_breaks_the_two_voter_tie_only_when_needed() -> None:
    answer = {"value": True}
    v = QuorumOracleMaj([spec(1), spec(2)], 0, lambda: answer["value"])
    assert v.uses_oracle and v.need_oracle()
    assert v.contains_quorum({1, 2})
    assert v.contains_quorum({1})
    answer["value"] = False
    assert not v.contains_quorum({1})
    answer["value"] = True
    v.update_need_oracle(forwarding_followers=1)
    assert not v.contains_quorum({1})  # a follower is back: plain majority again
    three = QuorumOracleMaj([spec(1), spec(2), spec(3)], 0, lambda: True)
    assert not three.contains_quorum({1})


def test_from_config_static(tmp_path: Path) -> None:
    cfg = load_config(str(write_cfg(tmp_path, "server.1=127.0.0.1:2888:3888\n"
                                              "server.2=127.0.0.1:2889:3889;2182\n"
                                              "server.3=127.0.0.1:2890:3890:observer\n")))
    v = verifier_from_config(cfg)
    assert isinstance(v, QuorumMaj) and v.version == 0
    assert str(v) == ("server.1=127.0.0.1:2888:3888:participant\n"
                      "server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n"
                      "server.3=127.0.0.1:2890:3890:observer\nversion=0")


def test_from_config_dynamic_file_version_from_its_name(tmp_path: Path) -> None:
    dynamic = tmp_path / "zoo.cfg.dynamic.100000000"
    dynamic.write_text("server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n")
    cfg = load_config(str(write_cfg(tmp_path, f"dynamicConfigFile={dynamic}\n")))
    assert verifier_from_config(cfg).version == 0x100000000


def test_from_config_hierarchical_and_its_errors(tmp_path: Path) -> None:
    cfg = load_config(str(write_cfg(tmp_path, "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
                                              "server.3=127.0.0.1:2890:3890\ngroup.1=1:2:3\nweight.3=0\n")))
    v = verifier_from_config(cfg)
    assert isinstance(v, QuorumHierarchical) and v.weight(3) == 0
    bad = load_config(str(write_cfg(tmp_path, "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
                                              "group.1=1\n")))
    with pytest.raises(ConfigError, match="server 2 is not in a group"):
        verifier_from_config(bad)


def test_from_config_oracle_needs_a_reader(tmp_path: Path) -> None:
    cfg = load_config(str(write_cfg(tmp_path, "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
                                              f"oraclePath={tmp_path / 'oracle'}\n")))
    with pytest.raises(ValueError):
        verifier_from_config(cfg)
    assert isinstance(verifier_from_config(cfg, lambda: True), QuorumOracleMaj)


def test_config_version_of_a_peer_string() -> None:
    assert config_version("server.1=a:1:2:participant\nversion=100000000") == 0x100000000
    assert config_version("server.1=a:1:2:participant") == 0
    assert config_version("version=zz") is None
    assert config_version("version=0x10") is None  # Long.parseLong(_, 16) takes no prefix


def test_java_hash_map_order_keeps_insertion_order_inside_a_bucket() -> None:
    assert java_hash_map_order([3, 1, 2], java_long_hash) == [1, 2, 3]
    assert java_hash_map_order([33, 1, 17], java_long_hash) == [33, 1, 17]
    assert java_hash_map_order(list(range(20)), java_long_hash) == list(range(20))  # 32 buckets once 13+
    assert java_long_hash(-1) == 0


def test_java_properties_order_is_a_function_of_keys_and_their_order() -> None:
    keys = [f"server.{i}" for i in range(40)] + ["tickTime", "dataDir"]
    order = java_properties_order(keys)
    assert sorted(order) == sorted(keys)
    assert java_properties_order(["a", "a", "b"]) == java_properties_order(["a", "b"])
