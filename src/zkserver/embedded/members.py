"""Handles on an embedded ensemble's members: ``zk.members[i]`` (Member on ZkServer, AsyncMember
on AsyncZkServer). A handle holds no state of its own: it names a member of the ensemble
engine (ensemble.py) and runs the engine's coroutines on the engine's loop.

Member ``index`` i is 0-based and has myid i + 1; the observers are the last members.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from .ensemble import ROLES, Ensemble
from .nodes import LoopThread
from .settings import STOP_TIMEOUT, ZkServerError
from .wire import four_letter, four_letter_async

T = TypeVar("T")
AsyncCall = Callable[[Coroutine[Any, Any, Any], float], Awaitable[Any]]


def call_timeout(ensemble: Ensemble) -> float:
    """How long a caller waits for the loop: a start may take start_timeout twice (to start,
    then to get a role) and a stop STOP_TIMEOUT per member."""
    return 2 * ensemble.plan.start_timeout + STOP_TIMEOUT * len(ensemble.seats)


class _MemberInfo:
    """What both kinds of handle read without the loop."""

    def __init__(self, ensemble: Ensemble, index: int) -> None:
        self._ensemble = ensemble
        self._seat = ensemble.seats[index]

    @property
    def index(self) -> int:
        """Position in ``members``, from 0."""
        return self._seat.index

    @property
    def myid(self) -> int:
        """The server id in zoo.cfg (server.N) and in the data dir's myid file: index + 1."""
        return self._seat.myid

    @property
    def observer(self) -> bool:
        return self._seat.observer

    @property
    def port(self) -> int:
        """The member's client port (known once it has started)."""
        if not self._seat.client_port:
            raise ZkServerError(f"member {self.index} has not started yet, so it has no port")
        return self._seat.client_port

    @property
    def hosts(self) -> str:
        """This member alone as a connect string, "127.0.0.1:port"."""
        return f"{self._ensemble.plan.address}:{self.port}"

    @property
    def running(self) -> bool:
        return self._ensemble.running(self.index)

    @property
    def isolated(self) -> bool:
        """Cut off from its peers by isolate() (until heal())."""
        return self._ensemble.isolated(self.index)

    @property
    def pid(self) -> int | None:
        """A subprocess member's PID (None in-process)."""
        return self._ensemble.pid(self.index)

    @property
    def dir(self) -> Path:
        """The member's directory: zoo.cfg, data/ and (subprocess) zkserver.log."""
        return self._seat.dir

    @property
    def data_dir(self) -> Path:
        return self._seat.data_dir

    @property
    def log_path(self) -> Path | None:
        """A subprocess member's output (in-process members log through `logging`)."""
        return None if self._ensemble.in_process else self._seat.log_path

    def __repr__(self) -> str:
        state = "isolated" if self.isolated else "running" if self.running else "stopped"
        port = self._seat.client_port or "-"
        role = " observer" if self.observer else ""
        return f"<{type(self).__name__} {self.index} myid={self.myid}{role} port={port} {state}>"


class Member(_MemberInfo):
    """One member of a ZkServer ensemble; its methods block until done."""

    def __init__(self, ensemble: Ensemble, index: int, thread: LoopThread) -> None:
        super().__init__(ensemble, index)
        self._thread = thread

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._thread.call(coro, call_timeout(self._ensemble))

    def start(self, wait: bool = True) -> Member:
        """Start the member again (same ports, its data dir); with `wait`, return once it has a role
        (that needs a quorum of voters running: pass wait=False to start one without)."""
        self._call(self._ensemble.start_member(self.index, wait))
        return self

    def stop(self) -> None:
        """Shut the member down cleanly (a subprocess gets SIGTERM)."""
        self._call(self._ensemble.stop_member(self.index))

    def kill(self) -> None:
        """Crash the member: nothing more it writes reaches a peer or a client (a subprocess gets SIGKILL)."""
        self._call(self._ensemble.kill_member(self.index))

    def restart(self, wait: bool = True) -> Member:
        """stop() then start(wait)."""
        self.stop()
        return self.start(wait)

    def isolate(self) -> None:
        """Cut the member off from its peers (election and quorum ports, both ways) while it keeps
        running and serving its client port; returns at once. It notices by its own time-outs."""
        self._call(self._ensemble.isolate(self.index))

    def heal(self) -> None:
        """Reconnect the member to its peers; it rejoins at its election's next notification."""
        self._call(self._ensemble.heal(self.index))

    def mode(self) -> str | None:
        """"leader", "follower" or "observer"; "" while electing; None when not running."""
        return self._call(self._ensemble.mode(self.index))

    def wait_for_mode(self, *modes: str, timeout: float | None = None) -> str:
        """Wait until the member reports one of `modes` ("" for not serving); the mode reached."""
        return self._call(self._ensemble.wait_for_mode(self.index, modes or ROLES, timeout))

    def four_letter(self, word: str, timeout: float = 5.0) -> str:
        """Send a four-letter word to this member's client port and return its answer."""
        return four_letter(self._ensemble.plan.address, self.port, word, timeout)


class AsyncMember(_MemberInfo):
    """One member of an AsyncZkServer ensemble; the same methods as Member, awaited."""

    def __init__(self, ensemble: Ensemble, index: int, call: AsyncCall) -> None:
        super().__init__(ensemble, index)
        self._acall = call

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return await self._acall(coro, call_timeout(self._ensemble))

    async def start(self, wait: bool = True) -> AsyncMember:
        await self._call(self._ensemble.start_member(self.index, wait))
        return self

    async def stop(self) -> None:
        await self._call(self._ensemble.stop_member(self.index))

    async def kill(self) -> None:
        await self._call(self._ensemble.kill_member(self.index))

    async def restart(self, wait: bool = True) -> AsyncMember:
        await self.stop()
        return await self.start(wait)

    async def isolate(self) -> None:
        await self._call(self._ensemble.isolate(self.index))

    async def heal(self) -> None:
        await self._call(self._ensemble.heal(self.index))

    async def mode(self) -> str | None:
        return await self._call(self._ensemble.mode(self.index))

    async def wait_for_mode(self, *modes: str, timeout: float | None = None) -> str:
        return await self._call(self._ensemble.wait_for_mode(self.index, modes or ROLES, timeout))

    async def four_letter(self, word: str, timeout: float = 5.0) -> str:
        return await four_letter_async(self._ensemble.plan.address, self.port, word, timeout)


async def on_this_loop(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """AsyncCall for an ensemble on the caller's own loop."""
    return await asyncio.wait_for(coro, timeout)
