"""The launchers: ZkServer for synchronous code, AsyncZkServer for async code."""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from .nodes import Dirs, LoopNode, LoopThread, ProcessNode
from .settings import START_TIMEOUT, STOP_TIMEOUT, Mode, Plan, SessionRef, Storage, ZkServerError
from .wire import WireSession, four_letter

# --------------------------------------------------------------------------- the launchers


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

    def __init__(self, mode: Mode, nodes: int, port: int, storage: Storage | None,
                 data_dir: str | os.PathLike[str] | None, config: Mapping[str, object] | None,
                 properties: Mapping[str, object] | None, start_timeout: float,
                 settings: Mapping[str, object]) -> None:
        self._plan = Plan(mode, nodes, port, storage, data_dir, config, properties, settings,
                           start_timeout)
        self._dirs = None
        self._finalizer: weakref.finalize | None = None
        self._closed = False

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
    def port(self) -> int:
        """The client port (known once the server has started)."""
        port = self._port()
        if not port:
            raise ZkServerError("the server has not started yet, so it has no port")
        return port

    def _port(self) -> int:
        raise NotImplementedError

    @property
    def hosts(self) -> str:
        """The connect string, "127.0.0.1:port" (with N nodes, their addresses joined by commas)."""
        return f"{self._plan.address}:{self.port}"

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
        """The data dir, None with storage='memory'."""
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
    ``data_dir`` names one; the only choice for a subprocess).
    """

    def __init__(self, *, mode: Literal["thread", "subprocess"] = "thread", nodes: int = 1, port: int = 0,
                 storage: Storage | None = None, data_dir: str | os.PathLike[str] | None = None,
                 config: Mapping[str, object] | None = None, properties: Mapping[str, object] | None = None,
                 start_timeout: float = START_TIMEOUT, **settings: object) -> None:
        if mode == "loop":
            raise ValueError("mode='loop' serves on the caller's asyncio loop: use AsyncZkServer")
        super().__init__(mode, nodes, port, storage, data_dir, config, properties, start_timeout, settings)
        self._thread: LoopThread | None = None
        self._thread_node = None
        self._proc_node = None

    def _port(self) -> int:
        node = self._thread_node or self._proc_node
        return node.port if node is not None else self._plan.port

    @property
    def running(self) -> bool:
        if self._thread_node is not None:
            return self._thread_node.running
        return self._proc_node is not None and self._proc_node.running

    @property
    def pid(self) -> int | None:
        """The subprocess's PID (None in thread mode)."""
        return self._proc_node.pid if self._proc_node is not None else None

    @property
    def log_path(self) -> Path | None:
        """The subprocess's output (in thread mode the server logs through `logging`)."""
        return self._proc_node.log_path if self._proc_node is not None else None

    def start(self) -> ZkServer:
        """Start (or, after stop/kill, start again on the same port); return when it serves."""
        dirs = self._ensure_dirs()
        timeout = self._plan.start_timeout
        if self.mode == "subprocess":
            if self._proc_node is None:
                self._proc_node = ProcessNode(self._plan, dirs)
                dirs.procs.append(self._proc_node)
            self._proc_node.start(timeout)
            return self
        if self._thread is None:
            self._thread = LoopThread()
            dirs.threads.append(self._thread)
        if self._thread_node is None:
            self._thread_node = LoopNode(self._plan.server_options(dirs.workdir, dirs.data_dir))
        self._thread.call(self._thread_node.start(), timeout)
        return self

    def stop(self) -> None:
        """Stop serving, keep the data (and in-process the sessions); start() resumes."""
        if self._proc_node is not None:
            self._proc_node.stop()
        elif self._thread_node is not None and self._thread is not None:
            self._thread.call(self._thread_node.stop(), STOP_TIMEOUT)

    def kill(self) -> None:
        """Crash: abort every connection without closing sessions (a subprocess gets SIGKILL)."""
        if self._proc_node is not None:
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
        ``client.client_id``; a subprocess server needs the password.
        """
        session_id, password = _session_parts(session, password)
        if self._proc_node is not None:
            return self._proc_node.expire_session(session_id, password)
        if self._thread_node is None or self._thread is None:
            raise ZkServerError("the server has not started")
        return self._thread.call(self._thread_node.expire_session(session_id), STOP_TIMEOUT)

    def four_letter(self, word: str, timeout: float = 5.0) -> str:
        """Send a four-letter word (ruok, srvr, stat, ...) to the server and return its answer."""
        return four_letter(self._plan.address, self.port, word, timeout)

    def create_chroot(self, path: str) -> str:
        """Create the node `path` (and its parents) and return the connect string chrooted there."""
        if not path.startswith("/") or path == "/":
            raise ValueError(f"{path!r}: a chroot is an absolute path below /")
        with WireSession(self._plan.address, self.port) as wire:
            parts = path.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                wire.create("/" + "/".join(parts[:i]))
        return self.hosts + path

    def delete_tree(self, path: str) -> None:
        """Delete `path` and everything under it (a chroot when a test is done with it)."""
        with WireSession(self._plan.address, self.port) as wire:
            wire.delete_tree(path)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of a subprocess's output ("" in thread mode)."""
        return self._proc_node.log_tail(lines) if self._proc_node is not None else ""

    def close(self) -> None:
        """Stop, end the loop thread, and remove temporary dirs. The server cannot start again."""
        if self._closed:
            return
        with contextlib.suppress(ZkServerError):
            self.stop()
        self._release()

    def __enter__(self) -> ZkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        port = self._port() or "-"
        return f"<ZkServer mode={self.mode} port={port} running={self.running}>"


class AsyncZkServer(_Launcher):
    """A zkserver for async code; the same arguments as ZkServer.

    mode='loop' (default) serves on the running loop, so every method must be awaited on
    that loop. mode='thread' and 'subprocess' run a ZkServer in a worker thread per call.
    """

    def __init__(self, *, mode: Mode = "loop", nodes: int = 1, port: int = 0,
                 storage: Storage | None = None, data_dir: str | os.PathLike[str] | None = None,
                 config: Mapping[str, object] | None = None, properties: Mapping[str, object] | None = None,
                 start_timeout: float = START_TIMEOUT, **settings: object) -> None:
        super().__init__(mode, nodes, port, storage, data_dir, config, properties, start_timeout, settings)
        self._node: LoopNode | None = None
        self._sync: ZkServer | None = None
        if mode != "loop":
            self._sync = ZkServer(mode=mode, nodes=nodes, port=port, storage=storage, data_dir=data_dir,
                                  config=config, properties=properties, start_timeout=start_timeout,
                                  **settings)

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
        return self._node is not None and self._node.running

    async def start(self) -> AsyncZkServer:
        """Start (or start again on the same port); return when it serves."""
        if self._sync is not None:
            await asyncio.to_thread(self._sync.start)
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
        elif self._node is not None:
            await self._node.stop()

    async def kill(self) -> None:
        """Crash: abort every connection without closing sessions (a subprocess gets SIGKILL)."""
        if self._sync is not None:
            await asyncio.to_thread(self._sync.kill)
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
        if self._node is None:
            raise ZkServerError("the server has not started")
        return await self._node.expire_session(_session_parts(session, password)[0])

    async def four_letter(self, word: str, timeout: float = 5.0) -> str:
        """Send a four-letter word to the server and return its answer."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self._plan.address, self.port), timeout)
        try:
            writer.write(word.encode("ascii"))
            answer = await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()
        return answer.decode("utf-8", errors="replace")

    async def close(self) -> None:
        """Stop and remove temporary dirs. The server cannot start again."""
        if self._closed:
            return
        if self._sync is not None:
            await asyncio.to_thread(self._sync.close)
        else:
            await self.stop()
        self._release()

    async def __aenter__(self) -> AsyncZkServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        port = self._port() or "-"
        return f"<AsyncZkServer mode={self.mode} port={port} running={self.running}>"

