"""Embedded ensembles (ZkServer(nodes=N), the plugin's ensemble fixtures) through a real client.

The failover tests are written the way a user's suite would write them with the pytest plugin.
Waits are on what the ensemble reports (roles, a client's state), bounded by timeouts that only
fail the test. Isolation tests run with tickTime=200, so that a member cut off from its peers
notices within syncLimit ticks (1 s) instead of Apache's sample 10 s.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState
from tests.support.kazoo_clients import connect, wait_for

from zkserver.embedded import AsyncZkServer, Member, ZkServer, ZkServerError

TIMEOUT = 20.0
MODES = ["thread", "subprocess"]
Factory = Callable[..., ZkServer]


@pytest.fixture
def plugin(request: pytest.FixtureRequest) -> pytest.FixtureRequest:
    if not request.config.pluginmanager.has_plugin("zkserver"):
        pytest.skip("the zkserver pytest plugin is not registered (pip install -e . registers it)")
    return request


@pytest.fixture
def ensembles(plugin: pytest.FixtureRequest) -> Factory:
    return plugin.getfixturevalue("zkserver_ensemble_factory")


# --------------------------------------------------------------------------- failover


def check_failover(zk: ZkServer, clients: list[KazooClient]) -> None:
    """Kill the leader; a write succeeds through a survivor; the killed member restarts and catches up."""
    client = connect(clients, zk.hosts)
    client.create("/before", b"1")
    old = zk.leader()
    assert old is not None
    old.kill()
    assert not old.running and zk.modes()[old.index] is None
    new = zk.wait_for_leader()
    assert new is not old and new.running
    survivor = next(m for m in zk.members if m is not new and m is not old)
    through_survivor = connect(clients, survivor.hosts)
    through_survivor.create("/after", b"2")
    assert client.retry(client.get, "/after")[0] == b"2"  # the first client follows the ensemble
    old.start()  # waits until it has a role again
    assert old.mode() == "follower"
    caught_up = connect(clients, old.hosts)
    caught_up.sync("/")
    assert caught_up.get("/before")[0] == b"1" and caught_up.get("/after")[0] == b"2"


def test_failover_as_a_user_writes_it(plugin: pytest.FixtureRequest, clients: list[KazooClient]) -> None:
    zk = plugin.getfixturevalue("zkserver_ensemble")
    assert len(zk.members) == 3 and zk.hosts.count(",") == 2
    check_failover(zk, clients)


def test_failover_of_subprocess_members(ensembles: Factory, clients: list[KazooClient]) -> None:
    zk = ensembles(mode="subprocess")
    pids = [m.pid for m in zk.members]
    assert all(pids) and len(set(pids)) == 3
    leader = zk.leader()
    assert leader is not None
    check_failover(zk, clients)
    with pytest.raises(ProcessLookupError):
        os.kill(pids[leader.index], 0)  # the killed member was SIGKILLed and reaped
    assert leader.pid != pids[leader.index]  # and started as a new process


# --------------------------------------------------------------------------- isolate / heal


@pytest.mark.parametrize("mode", MODES)
def test_an_isolated_leader_stops_serving_and_rejoins_after_heal(ensembles: Factory, clients: list[KazooClient],
                                                                  mode: str) -> None:
    zk = ensembles(mode=mode, tickTime=200)
    old = zk.leader()
    assert old is not None
    old.isolate()
    assert old.isolated and old.running
    new = zk.wait_for_leader()  # among the members that are not cut off
    assert new is not old
    assert old.wait_for_mode("", timeout=TIMEOUT) == ""  # it noticed: it leads nobody and serves nobody
    assert old.four_letter("srvr").startswith("This ZooKeeper instance is not currently serving requests")
    majority = connect(clients, ",".join(m.hosts for m in zk.members if m is not old))
    majority.create("/while-cut-off", b"x")
    old.heal()
    assert not old.isolated
    assert old.wait_for_mode("follower", timeout=TIMEOUT) == "follower"
    assert zk.wait_for_leader() is new
    rejoined = connect(clients, old.hosts)
    rejoined.sync("/")
    assert rejoined.get("/while-cut-off")[0] == b"x"


def test_an_isolated_follower_drops_its_clients_while_the_others_serve_on(ensembles: Factory,
                                                                           clients: list[KazooClient]) -> None:
    zk = ensembles(tickTime=200)
    follower = next(m for m in zk.members if m.mode() == "follower")
    states: list[str] = []
    pinned = connect(clients, follower.hosts)
    pinned.add_listener(states.append)
    follower.isolate()
    follower.wait_for_mode("", timeout=TIMEOUT)
    wait_for(lambda: KazooState.SUSPENDED in states)  # its member closed the connection
    others = connect(clients, ",".join(m.hosts for m in zk.members if m is not follower))
    others.create("/served", b"on")
    follower.heal()
    follower.wait_for_mode("follower", timeout=TIMEOUT)
    wait_for(lambda: pinned.connected)  # the session survived: it is back on its member
    assert pinned.retry(pinned.get, "/served")[0] == b"on"


# --------------------------------------------------------------------------- shape, sessions, async


def test_members_myids_observers_and_their_files(ensembles: Factory) -> None:
    zk = ensembles(nodes=3, observers=1)
    assert [m.myid for m in zk.members] == [1, 2, 3, 4]
    assert [m.observer for m in zk.members] == [False, False, False, True]
    assert zk.modes()[3] == "observer" and zk.members[3].mode() == "observer"
    assert sorted(zk.modes()[:3]) == ["follower", "follower", "leader"]  # type: ignore[type-var]
    assert zk.hosts == ",".join(m.hosts for m in zk.members)
    for m in zk.members:
        assert (m.data_dir / "myid").read_text().strip() == str(m.myid)
        cfg = (m.dir / "zoo.cfg").read_text()
        assert f"server.{m.myid}=127.0.0.1:" in cfg and ("peerType=observer" in cfg) == m.observer
        assert (m.data_dir / "version-2").is_dir()  # an ensemble member keeps its log on disk
    assert zk.members[0].log_path is None  # in-process members log through `logging`
    with pytest.raises(ZkServerError, match=r"members\[i\]\.port"):
        _ = zk.port
    with pytest.raises(ZkServerError, match="per member"):
        zk.four_letter("ruok")
    assert zk.members[0].four_letter("ruok") == "imok"


def test_bad_ensemble_arguments() -> None:
    with pytest.raises(ValueError, match="on disk"):
        ZkServer(nodes=3, storage="memory")
    with pytest.raises(ValueError, match="observers join an ensemble"):
        ZkServer(observers=1)
    with pytest.raises(ValueError, match="server lines"):
        ZkServer(nodes=3, config={"server.1": "127.0.0.1:1:2"})
    with pytest.raises(ZkServerError, match="standalone"):
        _ = ZkServer().members


@pytest.mark.parametrize("mode", MODES)
def test_expire_session_goes_through_the_leader(ensembles: Factory, clients: list[KazooClient], mode: str) -> None:
    zk = ensembles(mode=mode)
    follower = next(m for m in zk.members if m.mode() == "follower")
    doomed = connect(clients, follower.hosts)  # its session lives on a follower
    watcher = connect(clients, zk.hosts)
    doomed.create("/owned", ephemeral=True)
    gone = threading.Event()
    watcher.exists("/owned", watch=lambda event: gone.set())
    states: list[str] = []
    doomed.add_listener(states.append)
    assert zk.expire_session(doomed.client_id) is True
    assert gone.wait(TIMEOUT), "the ephemeral node of the expired session was not deleted"
    wait_for(lambda: KazooState.LOST in states)


def test_async_ensemble_on_the_callers_loop() -> None:
    async def main() -> None:
        async with AsyncZkServer(nodes=3) as zk:
            assert zk.mode == "loop" and len(await zk.modes()) == 3
            leader = await zk.leader()
            assert leader is not None and await leader.mode() == "leader"
            await leader.kill()
            new = await zk.wait_for_leader()
            assert new is not leader
            await leader.restart()
            assert await leader.mode() == "follower"
            follower = next(m for m in zk.members if m is not new)
            assert await follower.four_letter("ruok") == "imok"
        assert not zk.running

    asyncio.run(main())


def test_a_member_handle_is_the_member(ensembles: Factory) -> None:
    zk = ensembles()
    member = zk.members[1]
    assert isinstance(member, Member) and member.index == 1 and member.myid == 2
    member.stop()
    assert not member.running and zk.modes()[1] is None
    assert zk.wait_for_leader() is not member  # two of three still serve
    member.start(wait=False)
    assert member.wait_for_mode() in ("follower", "leader")
    assert "running" in repr(member)


@pytest.mark.parametrize("mode", MODES)
def test_a_peer_port_taken_before_the_member_binds_it_is_picked_again(ensembles: Factory,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       mode: str) -> None:
    """Free ports are free only a moment ago: if another process takes one first, the member
    gets new ones (only the proxy knows a member's real ports, so nobody else has to change)."""
    import socket

    from zkserver.embedded import ensemble

    picked = ensemble.free_ports
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()

        def first_taken(host: str, count: int) -> list[int]:
            monkeypatch.setattr(ensemble, "free_ports", picked)
            quorum, *rest = picked(host, count - 1)
            # member 0's election port (bound at start; its quorum port is bound only to lead)
            return [quorum, taken.getsockname()[1], *rest]

        monkeypatch.setattr(ensemble, "free_ports", first_taken)
        zk = ensembles(mode=mode)
        assert zk.members[0].running and zk.members[0].mode() in ("leader", "follower")
        assert f":{taken.getsockname()[1]}" not in (zk.members[0].dir / "zoo.cfg").read_text()
