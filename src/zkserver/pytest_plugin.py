"""pytest plugin: ZooKeeper servers for any test suite, no JVM needed.

Installed with zkserver (the ``pytest11`` entry point ``zkserver``), so its fixtures are
there in every pytest run of an environment that has zkserver. Their names all start with
``zkserver_``, so they never shadow a suite's own ``zk_*`` fixtures (zkserver's own test
suite has ``zk_server``, for one):

  zkserver_server   function scope: a fresh server for one test, closed after it
  zkserver_shared   session scope: one server for the whole run
  zkserver_hosts    function scope: "127.0.0.1:PORT/zkserver-test-N", a fresh chroot on
                    zkserver_shared; the chroot and everything in it is deleted after the test
  zkserver_factory  function scope: ``zkserver_factory(tickTime=500, mode="subprocess")`` starts
                    servers with your settings (ZkServer's arguments); all closed after the test
  zkserver_ensemble function scope: a fresh 3-member ensemble; ``.members[i]`` (myid i + 1) can
                    be killed, stopped, restarted, isolated and healed; closed after the test
  zkserver_ensemble_factory  function scope: ``zkserver_ensemble_factory(nodes=5, observers=1,
                    mode="subprocess", tickTime=500)``; nodes defaults to 3; all closed after the test

``--zkserver-mode=thread|subprocess`` (ini: ``zkserver_mode``) chooses where the fixtures'
servers run (an ensemble's members too); the default is a thread of the test process. zkserver is imported only when a
fixture is used, so the plugin costs nothing in suites that do not use it.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .embedded import ZkServer

MODES = ("thread", "subprocess")
CHROOT_PREFIX = "/zkserver-test-"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zkserver", "embedded ZooKeeper servers (zkserver)")
    group.addoption("--zkserver-mode", choices=MODES, default=None,
                    help="where zkserver fixtures run their servers: thread (default) or subprocess")
    parser.addini("zkserver_mode", "default for --zkserver-mode", default="thread")


def _mode(config: pytest.Config) -> str:
    mode = config.getoption("zkserver_mode") or config.getini("zkserver_mode") or "thread"
    if mode not in MODES:
        raise pytest.UsageError(f"zkserver_mode = {mode!r}: expected one of {', '.join(MODES)}")
    return str(mode)


def _start(config: pytest.Config, **kwargs: object) -> ZkServer:
    from .embedded import ZkServer

    kwargs.setdefault("mode", _mode(config))
    return ZkServer(**kwargs).start()  # type: ignore[arg-type]


@pytest.fixture
def zkserver_server(request: pytest.FixtureRequest) -> Iterator[ZkServer]:
    """A fresh zkserver for one test (in memory, free port); ``.hosts`` is its connect string."""
    server = _start(request.config)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def zkserver_shared(request: pytest.FixtureRequest) -> Iterator[ZkServer]:
    """One zkserver for the whole session: tests must not assume an empty tree or zxid 0."""
    server = _start(request.config)
    try:
        yield server
    finally:
        server.close()


_chroots = itertools.count(1)


@pytest.fixture
def zkserver_hosts(zkserver_shared: ZkServer) -> Iterator[str]:
    """A connect string with a fresh chroot on the shared server, deleted after the test."""
    path = f"{CHROOT_PREFIX}{next(_chroots)}"
    hosts = zkserver_shared.create_chroot(path)
    try:
        yield hosts
    finally:
        # Best effort: the test may have stopped the shared server, or left a client open
        # whose ephemeral nodes come back under our feet.
        with contextlib.suppress(Exception):
            zkserver_shared.delete_tree(path)


def _factory(request: pytest.FixtureRequest, **defaults: object) -> Iterator[Callable[..., ZkServer]]:
    started: list[ZkServer] = []

    def make(**kwargs: object) -> ZkServer:
        server = _start(request.config, **{**defaults, **kwargs})
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in reversed(started):
            with contextlib.suppress(Exception):
                server.close()


@pytest.fixture
def zkserver_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., ZkServer]]:
    """Start servers with your own settings: ``zkserver_factory(tickTime=500)``."""
    yield from _factory(request)


@pytest.fixture
def zkserver_ensemble(request: pytest.FixtureRequest) -> Iterator[ZkServer]:
    """A fresh 3-member ensemble for one test, serving (one leader, every member a role)."""
    server = _start(request.config, nodes=3)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def zkserver_ensemble_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., ZkServer]]:
    """Start ensembles with your own shape and settings: ``zkserver_ensemble_factory(nodes=5, observers=1)``."""
    yield from _factory(request, nodes=3)
