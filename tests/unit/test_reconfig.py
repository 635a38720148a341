"""quorum/reconfig.py: what a reconfig request asks for, and the files Apache 3.8 writes.

The file texts below are what Apache 3.8.0 (Debian) wrote in a 3-member ensemble with
reconfigEnabled=true (the zoo.cfg it was started with, then its zoo.cfg rewritten at the first
election and after a reconfig); a member of either kind must be able to start from them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zkserver.config import load_config
from zkserver.jute.codes import Err
from zkserver.jute.records import ReconfigRequest
from zkserver.quorum.reconfig import (
    dynamic_file_text,
    edited_static_config,
    requested_verifier,
    verifier_from_string,
    with_version,
)
from zkserver.quorum.verifier import verifier_from_config
from zkserver.shell.dynconfig import DynamicConfigFiles
from zkserver.tree.acl import KeeperError

STARTED_WITH = """tickTime=200
initLimit=25
syncLimit=10
dataDir=/tmp/probe/m1/data
clientPort=54021
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
reconfigEnabled=true
server.1=127.0.0.1:39343:45953
server.2=127.0.0.1:60897:43781
server.3=127.0.0.1:33001:49917
"""
AFTER_ELECTION = """dataDir=/tmp/probe/m1/data
4lw.commands.whitelist=*
syncLimit=10
reconfigEnabled=true
clientPortAddress=127.0.0.1
admin.enableServer=false
clientPort=54021
initLimit=25
tickTime=200
maxClientCnxns=0
dynamicConfigFile=/tmp/probe/m1/zoo.cfg.dynamic.100000000
"""
AFTER_RECONFIG = """admin.enableServer=false
dataDir=/tmp/probe/m1/data
4lw.commands.whitelist=*
clientPort=54021
initLimit=25
tickTime=200
syncLimit=10
reconfigEnabled=true
clientPortAddress=127.0.0.1
maxClientCnxns=0
dynamicConfigFile=/tmp/probe/m1/zoo.cfg.dynamic.100000002
"""
CONFIG_V2 = ("server.1=127.0.0.1:39343:45953:participant\nserver.2=127.0.0.1:60897:43781:participant\n"
             "server.3=127.0.0.1:33001:49917:participant\nserver.100=0.0.0.0:48625:39843:observer;0.0.0.0:60987\n"
             "version=100000002")
DYNAMIC_V2 = ("server.100=0.0.0.0:48625:39843:observer;0.0.0.0:60987\nserver.1=127.0.0.1:39343:45953:participant\n"
              "server.2=127.0.0.1:60897:43781:participant\nserver.3=127.0.0.1:33001:49917:participant")
THREE = verifier_from_string(CONFIG_V2.replace("server.100=0.0.0.0:48625:39843:observer;0.0.0.0:60987\n", "")
                             .replace("version=100000002", "version=100000000"))


def ask(joining=None, leaving=None, new_members=None, version=-1, standalone=True):
    return requested_verifier(ReconfigRequest(joining, leaving, new_members, version), THREE, 0x100000005, standalone)


def code(**kwargs) -> int:
    with pytest.raises(KeeperError) as e:
        ask(**kwargs)
    return e.value.code


# ---------------------------------------------------------------- requests


def test_an_incremental_join_keeps_the_line_as_apache_prints_it_and_numbers_it_with_the_zxid():
    qv = ask(joining="server.100=0.0.0.0:48625:39843:observer;0.0.0.0:60987")
    assert str(qv) == CONFIG_V2.replace("version=100000002", "version=100000005")
    assert qv.observers == {100} and qv.voting == {1, 2, 3}


def test_leaving_and_joining_together_and_a_joiner_replacing_a_member():
    qv = ask(joining="server.4=127.0.0.1:1:2:participant;3", leaving="1")
    assert qv.voting == {2, 3, 4} and sorted(qv.members) == [2, 3, 4]
    qv = ask(joining="server.3=127.0.0.1:7:8:participant;9")
    assert "server.3=127.0.0.1:7:8:participant;0.0.0.0:9\n" in str(qv)


def test_bad_input_codes_follow_apaches_exceptions():
    assert code(joining="some thing") == Err.BAD_ARGUMENTS  # not server.x=...
    assert code(joining="server.9=127.0.0.1:1:2") == Err.BAD_ARGUMENTS  # no client port
    assert code(joining="server.9=127.0.0.1:x:2;3") == Err.BAD_ARGUMENTS  # QuorumServer's ConfigException
    assert code(joining="server.nine=127.0.0.1:1:2;3") == Err.MARSHALLING_ERROR  # Long.parseLong
    assert code(leaving="one") == Err.MARSHALLING_ERROR
    assert code(leaving="2,3") == Err.BAD_ARGUMENTS  # one voter left, standaloneEnabled
    assert code(new_members="server.1=127.0.0.1:1:2:participant") == Err.BAD_ARGUMENTS
    assert code(new_members="server.1=127.0.0.1:1:2:participant,bogus=1") == Err.BAD_ARGUMENTS
    assert code(new_members="server.5=127.0.0.1:1:2:observer") == Err.MARSHALLING_ERROR  # observers alone


def test_without_standalone_one_voter_is_enough():
    assert ask(leaving="2,3", standalone=False).voting == {1}


def test_a_joiner_on_another_members_routable_address_is_refused_loopback_and_wildcard_never_conflict():
    base = ask(joining="server.4=10.0.0.4:2888:3888:participant;2181")
    req = ReconfigRequest("server.5=10.0.0.4:2888:3889:participant;2182", None, None, -1)
    with pytest.raises(KeeperError) as e:
        requested_verifier(req, base, 0x100000006)
    assert e.value.code == Err.BAD_ARGUMENTS
    ok = ReconfigRequest("server.5=127.0.0.1:39343:45953:participant;2182", None, None, -1)
    assert 5 in requested_verifier(ok, base, 0x100000006).voting


def test_new_members_with_commas_and_newlines():
    qv = ask(new_members="server.1=127.0.0.1:1:2:participant;3,server.2=127.0.0.1:4:5:participant;6\n"
                         "server.7=127.0.0.1:8:9:observer;10")
    assert qv.voting == {1, 2} and qv.observers == {7} and qv.version == 0x100000005


# ---------------------------------------------------------------- strings and files


def test_config_strings_round_trip_and_a_copy_takes_a_new_version():
    assert str(verifier_from_string(CONFIG_V2)) == CONFIG_V2
    assert str(with_version(THREE, 0x200000000)).endswith("\nversion=200000000")


def test_the_dynamic_file_is_apaches_sorted_lines_without_the_version_except_in_next():
    qv = verifier_from_string(CONFIG_V2)
    assert dynamic_file_text(qv, keep_version=False) == DYNAMIC_V2
    assert dynamic_file_text(qv, keep_version=True) == "\n".join(sorted(CONFIG_V2.split("\n")))


def test_zoo_cfg_is_rewritten_in_apaches_properties_order():
    assert edited_static_config(STARTED_WITH, "/tmp/probe/m1/zoo.cfg.dynamic.100000000", False) == AFTER_ELECTION
    assert edited_static_config(AFTER_ELECTION, "/tmp/probe/m1/zoo.cfg.dynamic.100000002", False) == AFTER_RECONFIG
    erased = edited_static_config(STARTED_WITH, "/d", True)
    assert "clientPort" not in erased and erased.endswith("dynamicConfigFile=/d\n")


def test_a_member_starts_from_the_files_apache_wrote(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("1\n")
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(AFTER_RECONFIG.replace("/tmp/probe/m1", str(tmp_path)))
    (tmp_path / "zoo.cfg.dynamic.100000002").write_text(DYNAMIC_V2)
    qv = verifier_from_config(load_config(str(cfg)))
    assert qv.version == 0x100000002
    assert str(qv) == CONFIG_V2


def test_the_shell_writes_the_files_and_a_restart_reads_them_back(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("1\n")
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(STARTED_WITH.replace("/tmp/probe/m1", str(tmp_path)))
    files = DynamicConfigFiles(str(cfg), 1)
    files.backup_static()
    qv = verifier_from_string(CONFIG_V2)
    files.proposed(qv)
    assert DynamicConfigFiles(str(cfg), 1).pending().version == qv.version  # .next, read at start-up
    files.activated(qv)
    assert (tmp_path / "zoo.cfg.bak").read_text() == STARTED_WITH.replace("/tmp/probe/m1", str(tmp_path))
    assert (tmp_path / "zoo.cfg.dynamic.100000002").read_text() == DYNAMIC_V2
    assert not (tmp_path / "zoo.cfg.dynamic.next").exists()
    assert str(verifier_from_config(load_config(str(cfg)))) == CONFIG_V2
