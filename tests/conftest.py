"""Shared fixtures: real server processes (Apache ZooKeeper, zkserver) and kazoo clients.

Every process a fixture starts is stopped by PID in the fixture's teardown, which pytest runs
even when the test fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.support.servers import RunningServer, start_server

APACHE_FIXTURES = {"apache_server", "apache_server_mod"}
CLIENT_TIMEOUT = 10.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that use an Apache fixture get the `apache` marker, so `-m "not apache"` works
    # without every test having to repeat the marker.
    # `slow` tests (long variants of a test CI runs bounded) run only when -m names them.
    run_slow = "slow" in (config.getoption("markexpr") or "")
    for item in items:
        if APACHE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.apache)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="a long run: select it with -m slow"))


def _serve(kind: str, workdir: Path) -> Iterator[RunningServer]:
    server = start_server(kind, workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def apache_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A fresh Apache ZooKeeper 3.8 standalone server for one test."""
    yield from _serve("apache", tmp_path / "apache")


@pytest.fixture
def zk_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A fresh zkserver for one test."""
    yield from _serve("zkserver", tmp_path / "zkserver")


@pytest.fixture(
    params=[pytest.param("apache", marks=pytest.mark.apache), "zkserver"],
    ids=["apache", "zkserver"],
)
def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """The test runs once against Apache ZooKeeper and once against zkserver."""
    yield from _serve(request.param, tmp_path / request.param)


@pytest.fixture(scope="module")
def apache_server_mod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One Apache server shared by a module: tests must not assume an empty tree or zxid 0."""
    yield from _serve("apache", tmp_path_factory.mktemp("apache"))


@pytest.fixture(scope="module")
def zk_server_mod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One zkserver shared by a module: tests must not assume an empty tree or zxid 0."""
    yield from _serve("zkserver", tmp_path_factory.mktemp("zkserver"))


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start extra servers on demand: ``server_factory("apache", cfg={...})``; all stopped at teardown."""
    started: list[RunningServer] = []

    def make(kind: str, cfg: dict[str, str | None] | None = None) -> RunningServer:
        server = start_server(kind, tmp_path / f"{kind}-{len(started)}", cfg)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def kazoo_client_factory() -> Iterator[Callable[..., KazooClient]]:
    """Make started KazooClients: ``kazoo_client_factory(server.hosts, **kazoo_kwargs)``.

    All of them are stopped and closed at teardown (errors there are ignored: the server may
    already be gone, which is what some tests are about).
    """
    clients: list[KazooClient] = []

    def make(hosts: str, **kwargs: object) -> KazooClient:
        kwargs.setdefault("timeout", CLIENT_TIMEOUT)
        client = KazooClient(hosts=hosts, **kwargs)
        clients.append(client)
        client.start(timeout=CLIENT_TIMEOUT)
        return client

    try:
        yield make
    finally:
        for client in reversed(clients):
            _close_quietly(client)


def _close_quietly(client: KazooClient) -> None:
    # Teardown must reach every client, whatever state the server is in.
    with contextlib.suppress(Exception):
        client.stop()
    with contextlib.suppress(Exception):
        client.close()
