"""The launchers: ZkServer for synchronous code, AsyncZkServer for async code.

With nodes=1 a launcher runs one node (nodes.py) itself; with more, it hands every call to
an ensemble engine (ensemble.py) on its loop, and its members are handles (members.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from .ensemble import Ensemble
from .members import AsyncMember, Member, call_timeout, on_this_loop
from .nodes import Dirs, LoopNode, LoopThread, ProcessNode
from .settings import START_TIMEOUT, STOP_TIMEOUT, Mode, Plan, SessionRef, Storage, ZkServerError
from .wire import WireSession, four_letter, four_letter_async

T = TypeVar("T")


def _session_parts(session: SessionRef, password: bytes | None) -> tuple[int, bytes | None]:
    if isinstance(session, tuple):
        return session[0], session[1] if password is None else password
    return session, password


class _Launcher:
    """What ZkServer and AsyncZkServer share: the plan, the dirs, and the addresses."""

    _plan: Plan
    _dirs: Dirs | None
    _thread_node: LoopNode | None
    _proc_node: ProcessNode | None

    def __init__(self, mode: Mode, nodes: int, observers: int, port: int, storage: Storage | None,
                 data_dir: str | os.PathLike[str] | None, config: Mapping[str, object] | None,
                 properties: Mapping[str, object] | None, start_timeout: float,
                 settings: Mapping[str, object]) -> None:
        self._plan = Plan(mode, nodes, port, storage, data_dir, config, properties, settings,
                           start_timeout, observers)
        self._ensemble: Ensemble | None = None
        self._dirs = None
        self._finalizer: weakref.finalize | None = None
        self._closed = False

    def _need_ensemble(self) -> None:
        if self._plan.nodes == 1:
            raise ZkServerError("a standalone server (nodes=1) has no members; ZkServer(nodes=3) runs an ensemble")

    def _ensure_dirs(self) -> Dirs:
        if self._closed:
            raise ZkServerError("this server was closed; make a new one")
        if self._dirs is None:
            self._dirs = Dirs(self._plan)
            self._finalizer = weakref.finalize(self, self._dirs.release)
        return self._dirs

    def _release(self) -> None:
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    @property
    def mode(self) -> Mode:
        return self._plan.mode

    @property
    def nodes(self) -> int:
        """Voting members (1: a standalone server)."""
        return self._plan.nodes

    @property
    def observers(self) -> int:
        return self._plan.observers

    @property
    def port(self) -> int:
        """The client port (known once the server has started)."""
        if self._plan.nodes > 1:
            raise ZkServerError("an ensemble has a client port per member: members[i].port; hosts lists them all")
        port = self._port()
        if not port:
            raise ZkServerError("the server has not started yet, so it has no port")
        return port

    def _port(self) -> int:
        raise NotImplementedError

    def _engine(self) -> Ensemble | None:
        """The ensemble engine, if this launcher runs an ensemble and has made it."""
        return self._ensemble

    def _new_ensemble(self) -> Ensemble:
        dirs = self._ensure_dirs()
        return Ensemble(self._plan, dirs.data_dir, dirs.procs)

    @property
    def hosts(self) -> str:
        """The connect string: "127.0.0.1:port", or every member's address joined by commas."""
        if self._plan.nodes == 1:
            return f"{self._plan.address}:{self.port}"
        engine = self._engine()
        if engine is None or not all(seat.client_port for seat in engine.seats):
            raise ZkServerError("the ensemble has not started yet, so its members have no ports")
        return engine.hosts()

    @property
    def connect_string(self) -> str:
        """Alias of ``hosts``."""
        return self.hosts

    @property
    def workdir(self) -> Path | None:
        """The temporary dir holding zoo.cfg (and a subprocess's log); removed by close()."""
        return self._dirs.workdir if self._dirs is not None else None

    @property
    def data_dir(self) -> Path | None:
        """The data dir, None with storage='memory'; of an ensemble, the dir holding m1/, m2/, ..."""
        if self._plan.storage == "memory":
            return None
        return self._dirs.data_dir if self._dirs is not None else self._plan.data_dir


class ZkServer(_Launcher):
    """A zkserver for synchronous code: on a background thread (default) or as a subprocess.

    Keyword arguments other than the named ones are zoo.cfg keys (``tickTime=500``);
    ``config`` takes keys that are not identifiers (``{"4lw.commands.whitelist": "*"}``) and
    ``properties`` the -D system properties (``{"zookeeper.extendedTypesEnabled": "true"}``).
    A value of None drops one of DEFAULT_CONFIG's keys. ``port=0`` picks a free port.
    ``storage``: "memory" (the in-process default) or "disk" (a temporary data dir unless
    ``data_dir`` names one).

    ``nodes=N`` (N > 1) runs an ensemble of N voting members plus ``observers`` observers, on
    disk; ``members[i]`` (myid i + 1) can be stopped, killed, restarted and cut off from its
    peers. ``port`` then is the first of a block of ports (client ports, then quorum, then
    election ports); 0 picks free ones.
    """

    def __init__(self, *, mode: Literal["thread", "subprocess"] = "thread", nodes: int = 1, observers: int = 0,
                 port: int = 0, storage: Storage | None = None, data_dir: str | os.PathLike[str] | None = None,
                 config: Mapping[str, object] | None = None, properties: Mapping[str, object] | None = None,
                 start_timeout: float = START_TIMEOUT, **settings: object) -> None:
        if mode == "loop":
            raise ValueError("mode='loop' serves on the caller's asyncio loop: use AsyncZkServer")
        super().__init__(mode, nodes, observers, port, storage, data_dir, config, properties, start_timeout,
                         settings)
        self._thread: LoopThread | None = None
        self._thread_node = None
        self._proc_node = None
        self._members: list[Member] = []

    def _port(self) -> int:
        node = self._thread_node or self._proc_node
        return node.port if node is not None else self._plan.port

    def _loop_thread(self) -> LoopThread:
        if self._thread is None:
            self._thread = LoopThread()
            self._ensure_dirs().threads.append(self._thread)
        return self._thread

    # ------------------------------------------------------------ an ensemble's

    def _ens(self) -> Ensemble:
        """The ensemble engine, made on first use (its loop thread too)."""
        self._need_ensemble()
        if self._ensemble is None:
            thread = self._loop_thread()
            self._ensemble = self._new_ensemble()
            self._members = [Member(self._ensemble, i, thread) for i in range(len(self._ensemble.seats))]
        return self._ensemble

    def _ecall(self, coro: Coroutine[Any, Any, T]) -> T:
        ensemble = self._ens()
        return self._loop_thread().call(coro, call_timeout(ensemble))

    @property
    def members(self) -> list[Member]:
        """The ensemble's members: index i has myid i + 1; the observers come last."""
        self._ens()
        return list(self._members)

    def leader(self) -> Member | None:
        """The member that leads the members running and not cut off (None while there is none)."""
        index = self._ecall(self._ens().leader())
        return None if index is None else self._members[index]

    def modes(self) -> list[str | None]:
        """Each member's role, by index: "leader", "follower", "observer"; "" while electing; None
        if stopped. (``mode`` is the launcher's own: thread or subprocess.)"""
        return list(self._ecall(self._ens().modes()).values())

    def wait_for_leader(self, timeout: float | None = None) -> Member:
        """Wait until one member leads and every member running and not cut off has a role."""
        return self._members[self._ecall(self._ens().wait_for_leader(timeout))]

    # ------------------------------------------------------------ either

    @property
    def running(self) -> bool:
        """The server runs (an ensemble: at least one member runs)."""
        if self._ensemble is not None:
            return any(self._ensemble.running(i) for i in range(len(self._ensemble.seats)))
        if self._thread_node is not None:
            return self._thread_node.running
        return self._proc_node is not None and self._proc_node.running

    @property
    def pid(self) -> int | None:
        """The subprocess's PID (None in thread mode, and for an ensemble: see members[i].pid)."""
        return self._proc_node.pid if self._proc_node is not None else None

    @property
    def log_path(self) -> Path | None:
        """The subprocess's output (in thread mode the server logs through `logging`; an
        ensemble: members[i].log_path)."""
        return self._proc_node.log_path if self._proc_node is not None else None

    def start(self) -> ZkServer:
        """Start (or, after stop/kill, start again on the same port); return when it serves.

        An ensemble serves once one member leads and every member has a role."""
        if self._plan.nodes > 1:
            self._ecall(self._ens().start())
            return self
        dirs = self._ensure_dirs()
        timeout = self._plan.start_timeout
        if self.mode == "subprocess":
            if self._proc_node is None:
                plan = self._plan
                self._proc_node = ProcessNode(plan, dirs.workdir,
                                              lambda port, _: plan.write_cfg(dirs.workdir, dirs.data_dir, port),
                                              plan.port)
                dirs.procs.append(self._proc_node)
            self._proc_node.start(timeout)
            return self
        if self._thread_node is None:
            self._thread_node = LoopNode(self._plan.server_options(dirs.workdir, dirs.data_dir))
        self._loop_thread().call(self._thread_node.start(), timeout)
        return self

    def stop(self) -> None:
        """Stop serving, keep the data (and in-process the sessions); start() resumes."""
        if self._ensemble is not None:
            self._ecall(self._ensemble.stop())
        elif self._proc_node is not None:
            self._proc_node.stop()
        elif self._thread_node is not None and self._thread is not None:
            self._thread.call(self._thread_node.stop(), STOP_TIMEOUT)

    def kill(self) -> None:
        """Crash: abort every connection without closing sessions (a subprocess gets SIGKILL)."""
        if self._ensemble is not None:
            self._ecall(self._ensemble.kill())
        elif self._proc_node is not None:
            self._proc_node.kill()
        elif self._thread_node is not None and self._thread is not None:
            self._thread.call(self._thread_node.kill(), STOP_TIMEOUT)

    def restart(self) -> None:
        """stop() then start() on the same port, keeping the data."""
        self.stop()
        self.start()

    def expire_session(self, session: SessionRef, password: bytes | None = None) -> bool:
        """Expire a session now, as its timeout would; False if the server does not know it.

        ``session`` is a session id or a (session id, password) pair such as kazoo's
        ``client.client_id``; a subprocess server needs the password. An ensemble's leader
        expires it.
        """
        session_id, password = _session_parts(session, password)
        if self._plan.nodes > 1:
            return self._ecall(self._ens().expire_session(session_id, password))
        if self._proc_node is not None:
            return self._proc_node.expire_session(session_id, password)
        if self._thread_node is None or self._thread is None:
            raise ZkServerError("the server has not started")
        return self._thread.call(self._thread_node.expire_session(session_id), STOP_TIMEOUT)

    def four_letter(self, word: str, timeout: float = 5.0) -> str:
        """Send a four-letter word (ruok, srvr, stat, ...) to the server and return its answer."""
        if self._plan.nodes > 1:
            raise ZkServerError("an ensemble answers per member: members[i].four_letter(word)")
        return four_letter(self._plan.address, self.port, word, timeout)

    def _wire_port(self) -> int:
        """Where a WireSession goes: the server, or an ensemble's leader."""
        if self._plan.nodes == 1:
            return self.port
        leader = self.leader()
        if leader is None:
            raise ZkServerError("the ensemble has no leader now")
        return leader.port

    def create_chroot(self, path: str) -> str:
        """Create the node `path` (and its parents) and return the connect string chrooted there."""
        if not path.startswith("/") or path == "/":
            raise ValueError(f"{path!r}: a chroot is an absolute path below /")
        with WireSession(self._plan.address, self._wire_port()) as wire:
            parts = path.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                wire.create("/" + "/".join(parts[:i]))
        return self.hosts + path

    def delete_tree(self, path: str) -> None:
        """Delete `path` and everything under it (a chroot when a test is done with it)."""
        with WireSession(self._plan.address, self._wire_port()) as wire:
            wire.delete_tree(path)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of a subprocess's output ("" in thread mode); of every subprocess member."""
        if self._ensemble is not None:
            return "".join(f"--- member {i}:\n{node.log_tail(lines)}\n" for i, node in enumerate(self._ensemble.nodes)
                           if isinstance(node, ProcessNode))
        return self._proc_node.log_tail(lines) if self._proc_node is not None else ""

    def close(self) -> None:
        """Stop, end the loop thread, and remove temporary dirs. The server cannot start again."""
        if self._closed:
            return
        with contextlib.suppress(ZkServerError):
            if self._ensemble is not None:
                self._ecall(self._ensemble.close())
            else:
                self.stop()
        self._release()

    def __enter__(self) -> ZkServer:
        try:
            return self.start()
        except BaseException:
            self.close()  # `with` calls no __exit__ when __enter__ fails
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._plan.nodes > 1:
            return f"<ZkServer mode={self.mode} nodes={self.nodes} observers={self.observers} running={self.running}>"
        port = self._port() or "-"
        return f"<ZkServer mode={self.mode} port={port} running={self.running}>"


class AsyncZkServer(_Launcher):
    """A zkserver for async code; the same arguments as ZkServer.

    mode='loop' (default) serves on the running loop, so every method must be awaited on
    that loop. mode='thread' and 'subprocess' run a ZkServer in a worker thread per call.
    """

    def __init__(self, *, mode: Mode = "loop", nodes: int = 1, observers: int = 0, port: int = 0,
                 storage: Storage | None = None, data_dir: str | os.PathLike[str] | None = None,
                 config: Mapping[str, object] | None = None, properties: Mapping[str, object] | None = None,
                 start_timeout: float = START_TIMEOUT, **settings: object) -> None:
        super().__init__(mode, nodes, observers, port, storage, data_dir, config, properties, start_timeout,
                         settings)
        self._node: LoopNode | None = None
        self._sync: ZkServer | None = None
        self._members: list[AsyncMember] = []
        if mode != "loop":
            self._sync = ZkServer(mode=mode, nodes=nodes, observers=observers, port=port, storage=storage,
                                  data_dir=data_dir, config=config, properties=properties,
                                  start_timeout=start_timeout, **settings)

    def _port(self) -> int:
        if self._sync is not None:
            return self._sync._port()
        return self._node.port if self._node is not None else self._plan.port

    @property
    def workdir(self) -> Path | None:
        return self._sync.workdir if self._sync is not None else super().workdir

    @property
    def data_dir(self) -> Path | None:
        return self._sync.data_dir if self._sync is not None else super().data_dir

    @property
    def running(self) -> bool:
        if self._sync is not None:
            return self._sync.running
        if self._ensemble is not None:
            return any(self._ensemble.running(i) for i in range(len(self._ensemble.seats)))
        return self._node is not None and self._node.running

    # ------------------------------------------------------------ an ensemble's

    def _engine(self) -> Ensemble | None:
        return self._sync._engine() if self._sync is not None else self._ensemble

    def _ens(self) -> Ensemble:
        """The ensemble engine (on this loop, or the worker ZkServer's), made on first use."""
        self._need_ensemble()
        if not self._members:
            if self._sync is not None:
                engine, call = self._sync._ens(), self._sync._loop_thread().acall
            else:
                self._ensemble = engine = self._new_ensemble()
                call = on_this_loop
            self._members = [AsyncMember(engine, i, call) for i in range(len(engine.seats))]
        engine = self._engine()
        assert engine is not None
        return engine

    async def _ecall(self, coro: Coroutine[Any, Any, T]) -> T:
        ensemble = self._ens()
        if self._sync is not None:
            return await self._sync._loop_thread().acall(coro, call_timeout(ensemble))
        return await on_this_loop(coro, call_timeout(ensemble))

    @property
    def members(self) -> list[AsyncMember]:
        """The ensemble's members: index i has myid i + 1; the observers come last."""
        self._ens()
        return list(self._members)

    async def leader(self) -> AsyncMember | None:
        """The member that leads the members running and not cut off (None while there is none)."""
        index = await self._ecall(self._ens().leader())
        return None if index is None else self._members[index]

    async def modes(self) -> list[str | None]:
        """Each member's role, by index (see ZkServer.modes)."""
        return list((await self._ecall(self._ens().modes())).values())

    async def wait_for_leader(self, timeout: float | None = None) -> AsyncMember:
        """Wait until one member leads and every member running and not cut off has a role."""
        return self._members[await self._ecall(self._ens().wait_for_leader(timeout))]

    # ------------------------------------------------------------ either

    async def start(self) -> AsyncZkServer:
        """Start (or start again on the same port); return when it serves."""
        if self._sync is not None:
            await asyncio.to_thread(self._sync.start)
            return self
        if self._plan.nodes > 1:
            await self._ecall(self._ens().start())
            return self
        if self._node is None:
            dirs = self._ensure_dirs()
            self._node = LoopNode(self._plan.server_options(dirs.workdir, dirs.data_dir))
        await asyncio.wait_for(self._node.start(), self._plan.start_timeout)
        return self

    async def stop(self) -> None:
        """Stop serving, keep the data and the sessions; start() resumes."""
        if self._sync is not None:
            await asyncio.to_thread(self._sync.stop)
        elif self._ensemble is not None:
            await self._ecall(self._ensemble.stop())
        elif self._node is not None:
            await self._node.stop()

    async def kill(self) -> None:
        """Crash: abort every connection without closing sessions (a subprocess gets SIGKILL)."""
        if self._sync is not None:
            await asyncio.to_thread(self._sync.kill)
        elif self._ensemble is not None:
            await self._ecall(self._ensemble.kill())
        elif self._node is not None:
            await self._node.kill()

    async def restart(self) -> None:
        """stop() then start() on the same port, keeping the data."""
        await self.stop()
        await self.start()

    async def expire_session(self, session: SessionRef, password: bytes | None = None) -> bool:
        """Expire a session now, as its timeout would (see ZkServer.expire_session)."""
        if self._sync is not None:
            return await asyncio.to_thread(self._sync.expire_session, session, password)
        session_id, password = _session_parts(session, password)
        if self._plan.nodes > 1:
            return await self._ecall(self._ens().expire_session(session_id, password))
        if self._node is None:
            raise ZkServerError("the server has not started")
        return await self._node.expire_session(session_id)

    async def four_letter(self, word: str, timeout: float = 5.0) -> str:
        """Send a four-letter word to the server and return its answer."""
        if self._plan.nodes > 1:
            raise ZkServerError("an ensemble answers per member: await members[i].four_letter(word)")
        return await four_letter_async(self._plan.address, self.port, word, timeout)

    async def close(self) -> None:
        """Stop and remove temporary dirs. The server cannot start again."""
        if self._closed:
            return
        if self._sync is not None:
            await asyncio.to_thread(self._sync.close)
        elif self._ensemble is not None:
            with contextlib.suppress(ZkServerError):
                await self._ecall(self._ensemble.close())
        else:
            await self.stop()
        self._release()

    async def __aenter__(self) -> AsyncZkServer:
        try:
            return await self.start()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        if self._plan.nodes > 1:
            return (f"<AsyncZkServer mode={self.mode} nodes={self.nodes} observers={self.observers}"
                    f" running={self.running}>")
        port = self._port() or "-"
        return f"<AsyncZkServer mode={self.mode} port={port} running={self.running}>"
