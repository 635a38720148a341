"""The operator surface of an ensemble member, formatted from real roles: four-letter words,
mntr's keys and order, the AdminServer's ensemble commands and the Prometheus families, for a
leader, a follower, an observer and a member that is electing.

The members are the scripted in-memory ensemble of tests/interaction (real QuorumPeers,
Leaders, Learners and ServerCores); `Member` stands in for the ServerRunner the operator
code reads. The expected orders below were taken from live Apache 3.8 members.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kazoo.protocol.serialization import Create
from tests.interaction.test_zab_basic import OPEN_ACL, session
from tests.interaction.zabworld import ZabWorld

from zkserver import fourlw
from zkserver.config.model import PeerAddress, ServerSpec
from zkserver.ops import admin, quorumview
from zkserver.ops.metrics import UNMEASURED_QUORUM, monitor_values
from zkserver.ops.prometheus import ZkCollector
from zkserver.quorum.verifier import QuorumMaj
from zkserver.shell.ensemble import EnsembleShell

# Apache 3.8's mntr after version and server_state, on a leader of three voters and an observer.
APACHE_LEADER_KEYS = [
    "peer_state", "ephemerals_count", "num_alive_connections", "avg_latency", "min_proposal_size",
    "outstanding_requests", "znode_count", "global_sessions", "non_mtls_remote_conn_count",
    "last_client_response_size", "packets_sent", "packets_received", "max_proposal_size", "max_client_response_size",
    "synced_followers", "connection_drop_probability", "watch_count", "synced_non_voting_followers",
    "synced_observers", "auth_failed_count", "min_latency", "max_file_descriptor_count", "approximate_data_size",
    "open_file_descriptor_count", "last_proposal_size", "pending_syncs", "leader_uptime", "local_sessions", "uptime",
    "max_latency", "outstanding_tls_handshake", "learners", "min_client_response_size", "non_mtls_local_conn_count",
    "quorum_size", "proposal_count"
]
APACHE_FOLLOWER_KEYS = [
    "peer_state", "ephemerals_count", "num_alive_connections", "avg_latency", "outstanding_requests", "znode_count",
    "global_sessions", "non_mtls_remote_conn_count", "last_client_response_size", "packets_sent", "packets_received",
    "max_client_response_size", "connection_drop_probability", "watch_count", "auth_failed_count", "min_latency",
    "max_file_descriptor_count", "approximate_data_size", "open_file_descriptor_count", "local_sessions", "uptime",
    "max_latency", "outstanding_tls_handshake", "min_client_response_size", "non_mtls_local_conn_count",
    "quorum_size", "proposal_count"
]


class _Shell:
    """An EnsembleShell's operator-facing part over a scripted peer (its `mode` is the real one)."""

    mode = EnsembleShell.mode

    def __init__(self, peer, verifier: QuorumMaj, sid: int):
        self.peer = peer
        self.opts = SimpleNamespace(verifier=verifier, my_sid=sid, peer=peer.settings)
        self.quorum = SimpleNamespace(peer_address=lambda cid: f"127.0.0.1:{40000 + cid}")


class Member:
    """What the operator code reads of a ServerRunner, for one scripted member."""

    def __init__(self, world: ZabWorld, sid: int, verifier: QuorumMaj):
        node = world[sid]
        self.core, self.stats, self.clock = node.core, node.metrics, world.clock
        self.ensemble = _Shell(node.peer, verifier, sid)
        self.options = SimpleNamespace(storage=None, host="127.0.0.1")
        self.port = 2180 + sid
        self.four_letter_whitelist = frozenset({"*"})
        self.asking_cid = 0

    def peer_of(self, cid: int) -> str:
        return f"127.0.0.1:{50000 + cid}"


def _verifier() -> QuorumMaj:
    # The same addresses as the scripted world's own verifier string.
    return QuorumMaj(ServerSpec(sid, (PeerAddress("127.0.0.1", 2000 + sid, 3000 + sid),),
                                "observer" if sid == 4 else "participant") for sid in (1, 2, 3, 4))


@pytest.fixture
def members() -> dict[int, Member]:
    """Voters 1-3 (3 leads), observer 4, three txns made through follower 1."""
    w = ZabWorld(3, 1)
    w.start()
    w.elect(leader=3)
    c = session(w, 1)
    assert c.call(Create("/a", b"x" * 10, OPEN_ACL, 0)).err == 0
    assert c.call(Create("/b", b"", OPEN_ACL, 0)).err == 0
    verifier = _verifier()
    out = {sid: Member(w, sid, verifier) for sid in (1, 2, 3, 4)}
    out[0] = _electing(verifier)  # type: ignore[assignment]
    return out


def _electing(verifier: QuorumMaj) -> Member:
    """A member of another ensemble that has only itself: it stays LOOKING."""
    w = ZabWorld(3)
    w[1].peer.start()
    return Member(w, 1, verifier)


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_srvr_mode_and_the_leaders_proposal_sizes(members: dict[int, Member]) -> None:
    leader, follower = members[3], members[1]
    sizes = leader.ensemble.peer.leader.proposal_sizes
    assert sizes.min > 0 and sizes.max >= sizes.min
    text = fourlw.run("srvr", leader)
    assert "Mode: leader" in text
    assert _lines(text)[-2:] == [f"Node count: {len(leader.core.tree.nodes) + 1}",
                                 f"Proposal sizes last/min/max: {sizes.last}/{sizes.min}/{sizes.max}"]
    assert _lines(fourlw.run("stat", leader))[-1] == _lines(text)[-1]
    assert _lines(fourlw.run("srvr", follower))[-1].startswith("Node count: ")
    assert "Mode: follower" in fourlw.run("srvr", follower)
    assert "Mode: observer" in fourlw.run("srvr", members[4])
    # 4lw srst also resets the leader's proposal sizes (the AdminServer's stat_reset does not)
    assert fourlw.run("srst", leader) == "Server stats reset.\n"
    assert _lines(fourlw.run("srvr", leader))[-1] == "Proposal sizes last/min/max: -1/-1/-1"


def test_conf_adds_the_members_lines_and_membership(members: dict[int, Member]) -> None:
    text = fourlw.run("conf", members[4])
    lines = _lines(text)
    at = lines.index("serverId=4")
    assert lines[at + 1:at + 8] == ["initLimit=10", "syncLimit=5", "electionAlg=3", "electionPort=3004",
                                    "quorumPort=2004", "peerType=1", "membership: "]
    assert text.endswith("membership: \n" + str(_verifier()))
    assert str(_verifier()).endswith("\nversion=0")  # no newline after the verifier, as Apache prints it
    assert "peerType=0" in fourlw.run("conf", members[1])


def _mntr_keys(member: Member) -> list[str]:
    return [line.split("\t", 1)[0][3:] for line in _lines(fourlw.run("mntr", member))]


def test_mntr_keys_in_apaches_order_per_role(members: dict[int, Member]) -> None:
    keys = _mntr_keys(members[3])
    assert keys[:2] == ["version", "server_state"]
    assert keys[2:2 + len(APACHE_LEADER_KEYS)] == APACHE_LEADER_KEYS
    assert keys[2:2 + len(APACHE_FOLLOWER_KEYS)] != APACHE_FOLLOWER_KEYS
    follower = _mntr_keys(members[1])
    assert follower[2:2 + len(APACHE_FOLLOWER_KEYS)] == APACHE_FOLLOWER_KEYS  # synced_observers: null there
    observer = _mntr_keys(members[4])
    assert observer[2:4] == ["peer_state", "observer_master_id"]
    assert observer[4:3 + len(APACHE_FOLLOWER_KEYS)] == APACHE_FOLLOWER_KEYS[1:]
    values = {m: dict(monitor_values(members[m])) for m in (1, 3, 4)}
    assert [values[m]["peer_state"] for m in (3, 1, 4)] == \
        ["leading - broadcast", "following - broadcast", "observing - broadcast"]
    assert values[4]["observer_master_id"] == 3
    lead = values[3]
    assert (lead["learners"], lead["synced_followers"], lead["synced_observers"], lead["quorum_size"]) == (3, 2, 1, 3)
    assert lead["synced_non_voting_followers"] == lead["pending_syncs"] == 0
    assert lead["proposal_count"] == 3 and values[1]["learner_commit_received_count"] == 3
    assert isinstance(lead["leader_uptime"], int) and lead["leader_uptime"] >= 0


def test_a_member_that_is_electing_answers_as_apache(members: dict[int, Member]) -> None:
    electing = members[0]
    for word in ("srvr", "stat", "mntr", "cons", "crst", "dump", "wchc", "wchp", "wchs", "srst", "conf", "dirs"):
        assert fourlw.run(word, electing) == "This ZooKeeper instance is not currently serving requests\n", word
    assert fourlw.run("hash", electing) == "This ZooKeeper instance is not currently serving requests"
    assert fourlw.run("isro", electing) == "null"
    assert fourlw.run("ruok", electing) == "imok"
    assert fourlw.run("gtmk", electing) == "306"
    assert fourlw.run("envi", electing).startswith("Environment:\n")
    assert fourlw.run("isro", members[1]) == "rw"


def test_a_learners_dump_lists_global_sessions_with_timeouts(members: dict[int, Member]) -> None:
    follower = members[2]
    sid = next(iter(follower.core.sessions.sessions))
    lines = _lines(fourlw.run("dump", follower))
    assert lines[:3] == ["SessionTracker dump:", "Global Sessions(1):", f"0x{sid:x}\t10000ms"]
    assert _lines(fourlw.run("dump", members[3]))[1].startswith("Session Sets (")


def _admin(member: Member, handler) -> dict:  # type: ignore[no-untyped-def]
    fields, status = handler(SimpleNamespace(server=member, config=None), None)
    assert status == 200
    return fields


def test_admin_leader_voting_view_and_observers(members: dict[int, Member]) -> None:
    assert _admin(members[3], admin._leader) == {"is_leader": True, "leader_id": 3, "leader_ip": "127.0.0.1"}
    assert _admin(members[4], admin._leader) == {"is_leader": False, "leader_id": 3, "leader_ip": "127.0.0.1"}
    view = _admin(members[1], admin._voting_view)["current_config"]
    assert list(view) == ["1", "2", "3"]  # voters only
    assert view["1"] == {"server_addresses": ["127.0.0.1:2001"], "election_addresses": ["127.0.0.1:3001"],
                         "client_address": "127.0.0.1:2181", "learner_type": "participant"}
    assert view["2"]["client_address"] == ""  # only a member's own client address is known
    obs = _admin(members[3], admin._observers)
    assert obs["synced_observers"] == 1 and len(obs["observers"]) == 1
    info = obs["observers"][0]
    assert list(info) == ["remote_socket_address", "sid", "established", "queued_packets", "queued_packets_size",
                          "packets_received", "packets_sent", "requests", "last_zxid"]
    assert info["sid"] == 4 and info["remote_socket_address"].startswith("/127.0.0.1:")
    assert info["last_zxid"] == members[3].core.tree.last_processed_zxid and info["packets_sent"] > 0
    assert _admin(members[3], admin._orst) == {}
    assert _admin(members[3], admin._observers)["observers"][0]["packets_sent"] == 0
    assert _admin(members[1], admin._observers) == {"synced_observers": 0, "observers": []}


def test_admin_zabstate_server_stats_and_monitor(members: dict[int, Member]) -> None:
    zab = _admin(members[3], lambda a, r: admin._ok(quorumview.zabstate(a.server)))
    assert list(zab) == ["myid", "is_leader", "quorum_address", "election_address", "client_address", "voting",
                         "last_zxid", "zab_epoch", "zab_counter", "zabstate"]
    zxid = members[3].core.tree.last_processed_zxid
    assert (zab["myid"], zab["is_leader"], zab["voting"], zab["zabstate"]) == (3, True, True, "broadcast")
    assert (zab["last_zxid"], zab["zab_epoch"], zab["zab_counter"]) == (f"0x{zxid:x}", zxid >> 32, zxid & 0xFFFFFFFF)
    assert zab["quorum_address"]["all_addresses"] == ["127.0.0.1:2003"]
    assert zab["election_address"]["wildcard_addresses"] == ["0.0.0.0:3003"]
    assert quorumview.zabstate(members[0]) == {"voting": False, "zabstate": ""}
    assert quorumview.zabstate(members[4])["voting"] is False  # an observer
    srvr = _admin(members[3], admin._srvr)
    assert srvr["server_stats"]["server_state"] == "leader"
    assert list(srvr)[-2:] == ["proposal_stats", "node_count"]
    assert "proposal_stats" not in _admin(members[1], admin._srvr)
    fields, status = admin._monitor(SimpleNamespace(server=members[0]), None)
    assert status == 500 and fields == {"error": admin.NOT_SERVING}


def test_prometheus_exports_the_roles_gauges_and_leaves_unmeasured_metrics_out(members: dict[int, Member]) -> None:
    def families(member: Member) -> dict[str, object]:
        return {m.name: m for m in ZkCollector(member).collect()}  # type: ignore[arg-type]

    leader = families(members[3])
    for name in ("quorum_size", "learners", "synced_followers", "synced_observers", "pending_syncs",
                 "leader_uptime", "last_proposal_size", "min_proposal_size", "max_proposal_size"):
        assert leader[name].type == "gauge", name
    assert leader["learners"].samples[0].value == 3
    assert leader["proposal_count"].samples[0].value == 3
    assert not UNMEASURED_QUORUM & set(leader)
    follower = families(members[1])
    assert follower["synced_observers"].samples[0].value == 0  # null there: Apache's wrapper reads 0
    assert "learners" not in follower
    electing = families(members[0])
    assert "znode_count" not in electing and "quorum_size" not in electing  # unregistered while electing
    assert "looking_count" in electing
