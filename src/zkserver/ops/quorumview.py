"""Read-only views of an ensemble member for the operator surface, in Apache 3.8's shapes.

Theory of operation. Apache answers the ensemble parts of its operator commands from the
ZooKeeperServer of the member's current role (QuorumZooKeeperServer.dumpConf and
dumpMonitorValues, the gauges LeaderZooKeeperServer/FollowerZooKeeperServer register, the
AdminServer's leader/voting_view/observers/zabstate) and from the QuorumPeer behind it. A
member that is electing has no such server: `view.server_state` is None then, and the callers
answer as Apache does when it is not serving. Everything here reads the EnsembleShell's peer,
its role (`Leader` or `Learner`) and the quorum verifier; only `reset_observer_stats` (the
AdminServer's orst) changes anything, and only counters.

While a member serves, its Zab phase is BROADCAST and its sync mode NONE (Apache resets it at
NEWLEADER), so the detailed peer state is "<leading|following|observing> - broadcast".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config.model import PeerAddress, ServerSpec
from ..proto.election_codec import ServerState
from ..quorum.verifier import delimited_host_string, java_host_string
from . import view

if TYPE_CHECKING:
    from ..quorum.leader import Leader, SizeStats
    from ..quorum.peer import QuorumPeer
    from ..shell.ensemble import EnsembleShell
    from ..shell.server import ServerRunner

_PEER_STATES = {ServerState.LOOKING: "looking", ServerState.FOLLOWING: "following",
                ServerState.LEADING: "leading", ServerState.OBSERVING: "observing"}
ELECTION_ALG = 3  # the only one Apache 3.8 has (and the config accepts)


def _shell(server: ServerRunner) -> EnsembleShell | None:
    return server.ensemble


def _peer(server: ServerRunner) -> QuorumPeer | None:
    shell = _shell(server)
    return shell.peer if shell is not None else None


def serving_leader(server: ServerRunner) -> Leader | None:
    """The Leader role while this member leads and serves (Apache's LeaderZooKeeperServer)."""
    peer = _peer(server)
    if peer is None or view.server_state(server) != "leader":
        return None
    return peer.leader


def proposal_sizes(server: ServerRunner) -> SizeStats | None:
    """The leader's PROPOSAL sizes (srvr/stat's "Proposal sizes" line), None unless leading."""
    leader = serving_leader(server)
    return leader.proposal_sizes if leader is not None else None


# ---------------------------------------------------------------- addresses


def _address(host: str, port: int) -> str:
    return f"{delimited_host_string(host)}:{port}"


def _my_spec(shell: EnsembleShell) -> ServerSpec:
    return shell.opts.verifier.members[shell.opts.my_sid]


def _client_address(server: ServerRunner, spec: ServerSpec, mine: bool) -> str:
    """A member's client address as Apache keeps it: the server line's client part, else (for
    this member only) clientPortAddress:clientPort, else none."""
    if spec.client_port is not None:
        return _address(spec.client_address or "0.0.0.0", spec.client_port)
    if mine:
        return _address(server.options.host or "0.0.0.0", server.port)
    return ""


# ---------------------------------------------------------------- four-letter words and mntr


def peer_state(server: ServerRunner) -> str:
    """QuorumPeer.getDetailedPeerState while serving."""
    peer = _peer(server)
    assert peer is not None
    return f"{_PEER_STATES[peer.state]} - broadcast"


def conf(server: ServerRunner) -> list[tuple[str, Any]]:
    """QuorumZooKeeperServer.dumpConf's lines after ZooKeeperServer's (membership aside)."""
    shell = _shell(server)
    assert shell is not None
    settings, me = shell.opts.peer, _my_spec(shell)
    return [
        ("initLimit", settings.init_limit),
        ("syncLimit", settings.sync_limit),
        ("electionAlg", ELECTION_ALG),
        ("electionPort", "|".join(str(a.election_port) for a in me.addresses)),
        ("quorumPort", "|".join(str(a.quorum_port) for a in me.addresses)),
        ("peerType", 1 if settings.observer else 0),  # LearnerType.ordinal()
    ]


def membership(server: ServerRunner) -> str:
    """The quorum verifier's string, as conf prints it after "membership: "."""
    shell = _shell(server)
    assert shell is not None
    return str(shell.opts.verifier)


def monitor_values(server: ServerRunner) -> list[tuple[str, Any]]:
    """QuorumZooKeeperServer.dumpMonitorValues after version and server_state (and the
    observer's learner master)."""
    peer = _peer(server)
    assert peer is not None
    values: list[tuple[str, Any]] = [("peer_state", peer_state(server))]
    if peer.state == ServerState.OBSERVING:
        values.append(("observer_master_id", peer.leader_sid if peer.leader_sid is not None else -1))
    return values


def gauges(server: ServerRunner) -> dict[str, int | None]:
    """The gauges the role's ZooKeeperServer registers beyond the standalone ones; None where
    Apache's gauge answers null (mntr leaves it out, Prometheus reads 0)."""
    peer = _peer(server)
    if peer is None or view.server_state(server) is None:
        return {}
    shell = _shell(server)
    assert shell is not None
    out: dict[str, int | None] = {"quorum_size": len(shell.opts.verifier.voting)}
    leader = serving_leader(server)
    if leader is not None:
        out.update(_leader_gauges(server, leader))
    elif peer.state == ServerState.FOLLOWING:
        out["synced_observers"] = None  # a follower serves observers only as an observer master
    return out


def _leader_gauges(server: ServerRunner, leader: Leader) -> dict[str, int | None]:
    voting = server.ensemble.opts.verifier.voting  # type: ignore[union-attr]
    followers = [link.sid for link in leader.forwarding(observers=False)]
    sizes = leader.proposal_sizes
    started = leader.established_ms
    return {
        "learners": leader.learner_count(),
        "synced_followers": len(followers),
        "synced_non_voting_followers": sum(1 for sid in followers if sid not in voting),
        "synced_observers": len(leader.forwarding(observers=True)),
        "pending_syncs": len(leader.pending_syncs),
        "leader_uptime": server.clock.mono_ms() - started if started is not None else 0,
        "last_proposal_size": sizes.last,
        "max_proposal_size": sizes.max,
        "min_proposal_size": sizes.min,
    }


def learner_sessions(server: ServerRunner) -> list[tuple[int, int]] | None:
    """(session id, timeout) in signed order, as a follower's or observer's dump lists its
    global sessions; None on a leader or standalone server (they list expiry sets)."""
    if view.server_state(server) not in ("follower", "observer"):
        return None
    sessions = server.core.sessions.sessions
    return sorted((sid, s.timeout) for sid, s in sessions.items())


# ---------------------------------------------------------------- AdminServer


def leader_fields(server: ServerRunner) -> dict[str, Any]:
    """The AdminServer's `leader`: is_leader, leader_id, leader_ip (the leader's hosts)."""
    shell = _shell(server)
    assert shell is not None
    sid = shell.peer.leader_sid
    spec = shell.opts.verifier.members.get(sid) if sid is not None else None
    hosts = dict.fromkeys(java_host_string(a.host) for a in spec.addresses) if spec is not None else {}
    return {"is_leader": view.server_state(server) == "leader", "leader_id": sid if sid is not None else -1,
            "leader_ip": "|".join(hosts)}


def voting_view(server: ServerRunner) -> dict[str, Any]:
    """The AdminServer's `voting_view`: every voting member's addresses (HashMap<Long> order)."""
    shell = _shell(server)
    assert shell is not None
    verifier, me = shell.opts.verifier, shell.opts.my_sid
    return {str(sid): {
        "server_addresses": [_address(a.host, a.quorum_port) for a in spec.addresses],
        "election_addresses": [_address(a.host, a.election_port) for a in spec.addresses],
        "client_address": _client_address(server, spec, sid == me),
        "learner_type": "observer" if spec.is_observer else "participant",
    } for sid, spec in verifier.members.items() if sid in verifier.voting}


def observers(server: ServerRunner) -> dict[str, Any]:
    """The AdminServer's `observers`: the leader's synced observers (LearnerHandler info); a
    follower or observer has none (no observer master here)."""
    leader = serving_leader(server)
    if leader is None:
        return {"synced_observers": 0, "observers": []}
    shell = _shell(server)
    assert shell is not None
    infos = []
    for link in leader.forwarding(observers=True):
        stats = shell.peer.link_stats.get(link.cid)
        if stats is None:
            continue
        infos.append({
            "remote_socket_address": "/" + shell.quorum.peer_address(link.cid),
            "sid": link.sid,
            "established": int(view.mono_to_wall_s(server, link.connected_ms) * 1000),
            "queued_packets": 0,  # packets go to the socket in the turn they are made
            "queued_packets_size": 0,
            "packets_received": stats.received,
            "packets_sent": stats.sent,
            "requests": stats.requests,
            "last_zxid": stats.last_zxid,
        })
    return {"synced_observers": len(infos), "observers": infos}


def reset_observer_stats(server: ServerRunner) -> None:
    """Zero the leader's observer connection counters (LearnerHandler.resetObserverConnectionStats)."""
    leader = serving_leader(server)
    if leader is None:
        return
    stats = server.ensemble.peer.link_stats  # type: ignore[union-attr]
    for link in leader.forwarding(observers=True):
        if link.cid in stats:
            stats[link.cid].reset()


def _multiple_addresses(addrs: list[str], ports: list[int], hosts: list[str]) -> dict[str, Any]:
    """Apache's MultipleAddresses as Jackson writes it (every address taken as reachable)."""
    return {
        "empty": not addrs, "all_addresses": addrs, "all_reachable_addresses": addrs, "one": addrs[0],
        "reachable_address": addrs[0], "wildcard_addresses": [f"0.0.0.0:{p}" for p in ports],
        "all_ports": ports, "all_host_strings": hosts, "all_reachable_addresses_or_all": addrs,
        "reachable_or_one": addrs[0],
    }


def _my_addresses(addresses: tuple[PeerAddress, ...], election: bool) -> dict[str, Any]:
    ports = [a.election_port if election else a.quorum_port for a in addresses]
    hosts = [java_host_string(a.host) for a in addresses]
    return _multiple_addresses([_address(a.host, p) for a, p in zip(addresses, ports, strict=True)], ports,
                               list(dict.fromkeys(hosts)))


def zabstate(server: ServerRunner) -> dict[str, Any]:
    """The AdminServer's `zabstate` (Apache answers it even while not serving)."""
    shell = _shell(server)
    state = view.server_state(server)
    if shell is None or state is None:
        return {"voting": False, "zabstate": ""}
    me = _my_spec(shell)
    zxid = server.core.tree.last_processed_zxid
    return {
        "myid": shell.opts.my_sid,
        "is_leader": state == "leader",
        "quorum_address": _my_addresses(me.addresses, election=False),
        "election_address": _my_addresses(me.addresses, election=True),
        "client_address": _client_address(server, me, True),
        "voting": shell.opts.my_sid in shell.opts.verifier.voting,
        "last_zxid": f"0x{zxid:x}",
        "zab_epoch": zxid >> 32,
        "zab_counter": zxid & 0xFFFFFFFF,
        "zabstate": "broadcast",
    }
