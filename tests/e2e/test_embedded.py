"""The embedding API (zkserver.embedded) and its pytest plugin, through a real client (kazoo)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NoNodeError
from kazoo.protocol.states import KazooState
from kazoo.security import make_digest_acl
from tests.support.kazoo_clients import connect, wait_for

from zkserver.embedded import AsyncZkServer, WireSession, ZkServer, ZkServerError

TIMEOUT = 10.0


def state_log(client: KazooClient) -> list[str]:
    states: list[str] = []
    client.add_listener(states.append)
    return states


# --------------------------------------------------------------------------- thread mode


def test_thread_mode_serves_on_a_free_loopback_port(clients: list[KazooClient]) -> None:
    with ZkServer() as zk:
        assert zk.mode == "thread" and zk.running
        assert zk.hosts == f"127.0.0.1:{zk.port}" == zk.connect_string
        assert zk.four_letter("ruok") == "imok"
        assert zk.data_dir is None  # in memory
        client = connect(clients, zk.hosts)
        client.create("/a", b"x")
        assert client.get("/a")[0] == b"x"
        workdir = zk.workdir
        assert workdir is not None and workdir.exists()
    assert not workdir.exists()
    assert not zk.running


def test_restart_keeps_tree_sessions_and_port(clients: list[KazooClient]) -> None:
    with ZkServer() as zk:
        port = zk.port
        client = connect(clients, zk.hosts)
        session_id = client.client_id[0]
        client.create("/persistent", b"p")
        client.create("/ephemeral", ephemeral=True)
        states = state_log(client)
        zk.restart()
        assert zk.port == port
        # Until the client has seen the old connection close, it still reports CONNECTED.
        wait_for(lambda: KazooState.SUSPENDED in states)
        wait_for(lambda: client.state == KazooState.CONNECTED and client.connected)
        assert client.client_id[0] == session_id  # the session was resumed, not replaced
        assert client.get("/persistent")[0] == b"p"
        assert client.exists("/ephemeral") is not None


def test_kill_aborts_connections_but_keeps_sessions(clients: list[KazooClient]) -> None:
    with ZkServer() as zk:
        client = connect(clients, zk.hosts)
        session_id = client.client_id[0]
        client.create("/e", ephemeral=True)
        states = state_log(client)
        zk.kill()
        assert not zk.running
        wait_for(lambda: KazooState.SUSPENDED in states)
        with pytest.raises(OSError):
            zk.four_letter("ruok", timeout=1.0)
        zk.start()
        wait_for(lambda: client.connected)
        assert client.client_id[0] == session_id
        assert client.exists("/e") is not None
        assert KazooState.LOST not in states


def test_expire_session_takes_the_expiry_path(clients: list[KazooClient]) -> None:
    with ZkServer() as zk:
        doomed = connect(clients, zk.hosts)
        watcher = connect(clients, zk.hosts)
        doomed.create("/owned", ephemeral=True)
        gone = threading.Event()
        watcher.exists("/owned", watch=lambda event: gone.set())
        states = state_log(doomed)
        session_id = doomed.client_id[0]
        assert zk.expire_session(session_id) is True
        assert gone.wait(TIMEOUT), "the ephemeral node of the expired session was not deleted"
        wait_for(lambda: KazooState.LOST in states)
        assert zk.expire_session(session_id) is False  # already gone
        assert zk.expire_session(0x1234) is False


def test_settings_are_zoo_cfg_keys_and_properties(clients: list[KazooClient]) -> None:
    private = [make_digest_acl("someone", "secret", all=True)]
    with ZkServer(tickTime=500, properties={"zookeeper.skipACL": "yes"}) as zk:
        with WireSession("127.0.0.1", zk.port, timeout=100.0) as wire:
            assert wire.timeout_ms == 20 * 500  # maxSessionTimeout follows tickTime
        client = connect(clients, zk.hosts)
        client.create("/private", b"p", acl=private)
        assert client.get("/private")[0] == b"p"  # -Dzookeeper.skipACL=yes
    with ZkServer() as zk:
        with WireSession("127.0.0.1", zk.port, timeout=100.0) as wire:
            assert wire.timeout_ms == 20 * 2000
        client = connect(clients, zk.hosts)
        client.create("/private", b"p", acl=private)
        with pytest.raises(NoAuthError):
            client.get("/private")


def test_bad_settings_fail_like_the_command_line() -> None:
    from zkserver.config import ConfigError

    with pytest.raises(ConfigError, match="tickTime"):
        ZkServer(tickTime="soon").start()


def test_launcher_arguments_are_checked_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="nodes=0"):
        ZkServer(nodes=0)
    with pytest.raises(ValueError, match="AsyncZkServer"):
        ZkServer(mode="loop")  # type: ignore[arg-type]
    with pytest.raises(ZkServerError, match="not started"):
        _ = ZkServer().port


def test_disk_storage_in_process_recovers_on_restart(tmp_path: Path, clients: list[KazooClient]) -> None:
    data = tmp_path / "data"
    with ZkServer(data_dir=data, tickTime=500) as zk:
        assert zk.data_dir == data
        client = connect(clients, zk.hosts)
        client.create("/durable", b"d")
        session_id = client.client_id[0]
        states = state_log(client)
        zk.restart()  # a new runner recovers the tree from the data dir
        wait_for(lambda: KazooState.SUSPENDED in states)
        wait_for(lambda: client.connected)
        assert client.client_id[0] == session_id
        assert client.get("/durable")[0] == b"d"
    assert (data / "version-2").is_dir()  # a data dir we were given is kept


def test_chroot_helpers(clients: list[KazooClient]) -> None:
    with ZkServer() as zk:
        hosts = zk.create_chroot("/one/two")
        assert hosts == f"{zk.hosts}/one/two"
        client = connect(clients, hosts)
        client.create("/inside/deep", makepath=True)
        zk.delete_tree("/one")
        root = connect(clients, zk.hosts)
        with pytest.raises(NoNodeError):
            root.get("/one")


# --------------------------------------------------------------------------- subprocess


def test_subprocess_mode_kill_is_sigkill(clients: list[KazooClient]) -> None:
    with ZkServer(mode="subprocess") as zk:
        pid = zk.pid
        assert pid is not None and zk.running
        client = connect(clients, zk.hosts)
        client.create("/x")
        zk.kill()
        assert not zk.running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        log_path = zk.log_path
        assert log_path is not None and "zkserver" in log_path.read_text()


def test_subprocess_restart_keeps_the_data_dir(clients: list[KazooClient]) -> None:
    with ZkServer(mode="subprocess", storage="disk", tickTime=500) as zk:
        port = zk.port
        client = connect(clients, zk.hosts)
        client.create("/kept", b"k")
        client.stop()
        zk.restart()
        assert zk.port == port
        assert connect(clients, zk.hosts).get("/kept")[0] == b"k"


def test_subprocess_expire_session_needs_the_password(clients: list[KazooClient]) -> None:
    with ZkServer(mode="subprocess") as zk:
        client = connect(clients, zk.hosts)
        client.create("/mine", ephemeral=True)
        states = state_log(client)
        with pytest.raises(ZkServerError, match="password"):
            zk.expire_session(client.client_id[0])
        assert zk.expire_session(client.client_id) is True  # kazoo's (session id, password)
        wait_for(lambda: KazooState.LOST in states)
        assert connect(clients, zk.hosts).exists("/mine") is None


# --------------------------------------------------------------------------- async


def test_async_loop_mode() -> None:
    async def main() -> None:
        async with AsyncZkServer() as zk:
            assert zk.mode == "loop"
            assert await zk.four_letter("ruok") == "imok"
            port = zk.port

            def session() -> KazooClient:
                client = KazooClient(hosts=zk.hosts, timeout=TIMEOUT)
                client.start(timeout=TIMEOUT)
                client.create("/async", b"a")
                return client

            client = await asyncio.to_thread(session)
            try:
                await zk.restart()
                assert zk.port == port
                assert (await asyncio.to_thread(client.retry, client.get, "/async"))[0] == b"a"
                states = state_log(client)
                assert await zk.expire_session(client.client_id) is True
                await asyncio.to_thread(wait_for, lambda: KazooState.LOST in states)
            finally:
                await asyncio.to_thread(client.stop)
                client.close()

    asyncio.run(main())


def test_async_subprocess_mode_delegates() -> None:
    async def main() -> None:
        async with AsyncZkServer(mode="subprocess") as zk:
            assert await zk.four_letter("ruok") == "imok"
            await zk.kill()
            assert not zk.running

    asyncio.run(main())


# --------------------------------------------------------------------------- the pytest plugin


@pytest.fixture
def plugin(request: pytest.FixtureRequest) -> pytest.FixtureRequest:
    if not request.config.pluginmanager.has_plugin("zkserver"):
        pytest.skip("the zkserver pytest plugin is not registered (pip install -e . registers it)")
    return request


@pytest.mark.parametrize("round_", [1, 2])
def test_plugin_hosts_is_a_fresh_chroot(plugin: pytest.FixtureRequest, clients: list[KazooClient],
                                        round_: int) -> None:
    hosts = plugin.getfixturevalue("zkserver_hosts")
    server = plugin.getfixturevalue("zkserver_shared")
    assert hosts.startswith(server.hosts + "/zkserver-test-")
    client = connect(clients, hosts)
    assert client.get_children("/") == []  # nothing from the other round
    client.create("/left-behind", b"")


def test_plugin_fixtures_coexist_with_the_suites_own(plugin: pytest.FixtureRequest, zk_server,
                                                      clients: list[KazooClient]) -> None:
    # zk_server is tests/conftest.py's (a subprocess by tests/support/servers.py); the
    # plugin's names are all zkserver_*, so both are there.
    fresh = plugin.getfixturevalue("zkserver_server")
    assert isinstance(fresh, ZkServer) and fresh.port != zk_server.port
    connect(clients, zk_server.hosts).create("/theirs")
    connect(clients, fresh.hosts).create("/ours")
    make = plugin.getfixturevalue("zkserver_factory")
    assert make(tickTime=500).four_letter("ruok") == "imok"
