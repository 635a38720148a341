"""Embed zkserver: a ZooKeeper server for test suites and programs, without a JVM.

    from kazoo.client import KazooClient
    from zkserver.embedded import ZkServer

    with ZkServer() as zk:               # this process, a background thread, a free port
        client = KazooClient(zk.hosts)
        client.start()

Theory of operation
-------------------
One launcher (``ZkServer``, or ``AsyncZkServer`` for async code) runs its node in one of
three modes:

* ``thread`` (ZkServer's default): a ServerRunner on a private event loop in a daemon
  thread; the synchronous methods hand coroutines to that loop and wait for them.
* ``loop`` (AsyncZkServer's default): the same ServerRunner on the caller's running loop.
* ``subprocess``: ``python -m zkserver start zoo.cfg`` in a temporary work dir, held by PID.

Every mode reads its settings the way the command line does: we write a zoo.cfg from the
keyword arguments, ``load_config`` validates it together with the -D ``properties``, and
``cli.server_options`` turns it into ServerOptions. So a setting means the same here, in
``python -m zkserver start`` and in Apache ZooKeeper.

Lifecycle. ``stop`` closes the listening socket and every connection (replies already queued
are flushed) but closes no session, as Apache's shutdown does. ``kill`` is a crash: in-process
every connection is aborted (queued bytes are dropped), a subprocess gets SIGKILL.
``start`` after either (or ``restart``) listens on the same port again, with the data:

* storage="memory" (the default), in-process: the ServerCore is kept, so the tree, the
  sessions and the zxid survive; session deadlines restart from now, as they do when Apache
  reloads its sessions from a snapshot.
* storage="disk", in-process: a new ServerRunner recovers from the data dir, as a new process
  would; it gets the old session-password secret, so clients resume their sessions.
* subprocess: the new process recovers from the data dir (storage="disk"); in memory it
  starts empty. Recovered sessions can be resumed by their clients.

``expire_session`` expires a session as its timeout would: in-process the core submits the
closeSession of the expiry path (``ServerCore.expire_session``); a subprocess is reached
only through its client port, so there we need the session's password and close the
session from a second connection, as Curator's KillSession does.

``nodes`` is the ensemble size. The launcher is shaped for N nodes (``hosts`` joins their
addresses), but zkserver serves standalone mode only, so 1 is all it accepts for now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from .cli import server_options
from .config import is_standalone, load_config
from .jute.codec import Reader, Writer
from .jute.codes import Op
from .shell.server import ServerOptions, ServerRunner

__all__ = [
    "DEFAULT_CONFIG", "AsyncZkServer", "Mode", "Storage", "WireSession", "ZkServer", "ZkServerError",
    "close_session_remotely", "four_letter",
]

log = logging.getLogger("zkserver.embedded")

Mode = Literal["thread", "loop", "subprocess"]
Storage = Literal["memory", "disk"]
T = TypeVar("T")

# zoo.cfg keys every embedded server gets unless the caller overrides them (None drops a key).
DEFAULT_CONFIG: dict[str, object] = {
    "tickTime": 2000,  # Apache's zoo_sample.cfg: session timeouts 4 s .. 40 s
    "clientPortAddress": "127.0.0.1",
    "maxClientCnxns": 0,  # tests open many sessions from one address
    "4lw.commands.whitelist": "*",
    "admin.enableServer": False,
}
MEMORY_PROPERTY = "zkserver.storage"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 3
SessionRef = int | tuple[int, bytes]


class ZkServerError(RuntimeError):
    """The server did not start in time, or an operation does not fit its state."""


# --------------------------------------------------------------------------- settings


def _cfg_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Plan:
    """What every node of one launcher shares: mode, zoo.cfg keys, -D properties, directories."""

    def __init__(self, mode: Mode, nodes: int, port: int, storage: Storage | None,
                 data_dir: str | os.PathLike[str] | None, config: Mapping[str, object] | None,
                 properties: Mapping[str, object] | None, settings: Mapping[str, object],
                 start_timeout: float) -> None:
        if mode not in ("thread", "loop", "subprocess"):
            raise ValueError(f"mode={mode!r}: expected 'thread', 'loop' or 'subprocess'")
        if nodes != 1:
            raise ValueError(f"nodes={nodes}: zkserver serves standalone mode only for now, so an"
                             " embedded launcher runs exactly one node (nodes=1)")
        cfg = {**DEFAULT_CONFIG, **(config or {}), **settings}
        if "clientPort" in cfg:
            if port:
                raise ValueError("give the port either as port= or as clientPort, not both")
            port = int(str(cfg.pop("clientPort")))
        if cfg.get("dataDir") is not None:
            if data_dir is not None:
                raise ValueError("give the data dir either as data_dir= or as dataDir, not both")
            data_dir = str(cfg["dataDir"])
        cfg.pop("dataDir", None)
        if storage is None:
            storage = "memory" if data_dir is None else "disk"
        if storage not in ("memory", "disk"):
            raise ValueError(f"storage={storage!r}: expected 'memory' or 'disk'")
        if storage == "memory" and data_dir is not None:
            raise ValueError("data_dir= asks for storage='disk'")
        props = {key: _cfg_text(value) for key, value in (properties or {}).items()}
        if storage == "memory":
            props[MEMORY_PROPERTY] = "memory"  # the CLI's switch: the txn log stays in memory
        self.mode: Mode = mode
        self.nodes = nodes
        self.port = port
        self.storage: Storage = storage
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.config = {key: _cfg_text(value) for key, value in cfg.items() if value is not None}
        self.properties = props
        self.start_timeout = start_timeout

    @property
    def address(self) -> str:
        addr = self.config.get("clientPortAddress")
        return "127.0.0.1" if addr in (None, "0.0.0.0", "::") else addr

    def write_cfg(self, workdir: Path, data_dir: Path, port: int) -> Path:
        lines = [f"{key}={value}" for key, value in self.config.items()]
        lines += [f"clientPort={port}", f"dataDir={data_dir}"]
        path = workdir / "zoo.cfg"
        path.write_text("\n".join(lines) + "\n")
        return path

    def server_options(self, workdir: Path, data_dir: Path) -> ServerOptions:
        """The ServerOptions `python -m zkserver start` would build from our zoo.cfg."""
        cfg = load_config(str(self.write_cfg(workdir, data_dir, self.port)), dict(self.properties))
        if not is_standalone(cfg):
            raise ZkServerError("this launcher runs one standalone node; its config describes an ensemble")
        for warning in cfg.warnings:
            log.warning("%s", warning)
        return server_options(cfg)


class _Dirs:
    """The launcher's work dir (zoo.cfg, logs) and data dir; temporary ones go at release()."""

    def __init__(self, plan: _Plan) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="zkserver-"))
        self.data_dir = plan.data_dir or self.workdir / "data"
        if plan.storage == "disk":
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.threads: list[_LoopThread] = []
        self.procs: list[_ProcessNode] = []

    def release(self) -> None:
        """Kill what is left, remove temporary dirs; also runs when a launcher is garbage."""
        for proc in self.procs:
            proc.kill()
        for thread in self.threads:
            thread.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


# --------------------------------------------------------------------------- in-process


class _LoopThread:
    """A private event loop on a daemon thread."""

    def __init__(self) -> None:
        # The stock loop, not uvloop: this server shares the interpreter and its GIL with the
        # code under test, so the loop's CPU per request is not what bounds it.
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="zkserver-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise ZkServerError("a thread-mode ZkServer cannot be driven from its own loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise ZkServerError(f"the server loop did not answer within {timeout:.0f} s") from None

    def close(self) -> None:
        if self.loop.is_closed():
            return
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(STOP_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


async def _settle() -> None:
    # Transports report connection_lost on a later loop turn; let the core see it before we return.
    for _ in range(3):
        await asyncio.sleep(0)


class _LoopNode:
    """One ServerRunner on whatever loop runs these coroutines.

    In memory the runner (so the core: tree, sessions, zxid) outlives restarts; on disk each
    start builds a new runner that recovers from the data dir, as a new process would. The
    session-password secret is kept either way, so clients can resume their sessions.
    """

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.secret = os.urandom(32)
        self.runner: ServerRunner | None = None
        self.running = False

    @property
    def port(self) -> int:
        return self.options.port

    async def start(self) -> None:
        if self.running:
            return
        if self.runner is None or self.options.storage is not None:
            self.runner = ServerRunner(self.options, self.secret)
        else:
            self._renew_sessions(self.runner)
        await self.runner.start()
        self.options.port = self.runner.port  # a restart listens on the same port
        self.running = True

    @staticmethod
    def _renew_sessions(runner: ServerRunner) -> None:
        # While stopped no tick ran; like Apache loading sessions from a snapshot, every
        # surviving session gets a full timeout from now to reconnect.
        table = runner.core.sessions
        now = runner.clock.mono_ms()
        for session_id in list(table.sessions):
            table.touch(session_id, now)

    async def stop(self) -> None:
        if not self.running or self.runner is None:
            return
        self.running = False
        await self.runner.stop()
        await _settle()

    async def kill(self) -> None:
        if not self.running or self.runner is None:
            return
        self.running = False
        for proto in list(self.runner.protocols.values()):
            if proto.transport is not None:
                proto.transport.abort()  # drop queued replies: what a crash does to them
        await self.runner.stop()
        await _settle()

    async def expire_session(self, session_id: int) -> bool:
        if not self.running or self.runner is None:
            raise ZkServerError("the server is not running; start it before expiring a session")
        expired = self.runner.core.expire_session(session_id)
        self.runner.pump()
        return expired


# --------------------------------------------------------------------------- subprocess


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _send_frame(sock: socket.socket, body: bytes) -> None:
    sock.sendall(len(body).to_bytes(4, "big") + body)


def _recv_frame(sock: socket.socket) -> bytes:
    return _recv_exact(sock, int.from_bytes(_recv_exact(sock, 4), "big"))


def four_letter(host: str, port: int, word: str, timeout: float = 5.0) -> str:
    """Send a four-letter word to host:port and read the answer until the server closes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def close_session_remotely(host: str, port: int, session_id: int, password: bytes,
                           timeout: float = 5.0) -> bool:
    """Attach to a session from a new connection and close it (Curator's KillSession).

    The server moves the session to the new connection (dropping the old one), then applies
    the closeSession; the session's own client sees SESSION_EXPIRED when it reconnects.
    False when the server no longer knows the session or rejects the password.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        _send_frame(sock, Writer().int(0).long(0).int(30000).long(session_id).buffer(password)
                    .bool(False).getvalue())
        try:
            r = Reader(_recv_frame(sock))
        except ConnectionError:
            return False
        r.int()  # protocolVersion
        negotiated, granted = r.int(), r.long()
        if negotiated <= 0 or granted != session_id:
            return False
        _send_frame(sock, Writer().int(1).int(Op.CLOSE_SESSION).getvalue())
        reply = Reader(_recv_frame(sock))
        reply.int()  # xid
        reply.long()  # zxid
        return reply.int() == 0


class WireSession:
    """A minimal blocking client session on the wire: enough to make and remove a chroot.

    No watches, no reconnects; each call waits for its reply. The fixtures use it so they need
    no client library; tests should use a real client.
    """

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.xid = 0
        _send_frame(self.sock, Writer().int(0).long(0).int(int(timeout * 1000)).long(0).buffer(bytes(16))
                    .bool(False).getvalue())
        r = Reader(_recv_frame(self.sock))
        r.int()
        self.timeout_ms = r.int()  # as the server negotiated it
        self.session_id = r.long()
        if self.timeout_ms <= 0:
            self.sock.close()
            raise ZkServerError(f"{host}:{port} refused a new session")

    def call(self, op: int, body: bytes) -> tuple[int, Reader]:
        """Send one request; return (error code, reader over the reply body)."""
        self.xid += 1
        _send_frame(self.sock, Writer().int(self.xid).int(op).getvalue() + body)
        r = Reader(_recv_frame(self.sock))
        r.int()  # xid
        r.long()  # zxid
        return r.int(), r

    def create(self, path: str, data: bytes = b"") -> int:
        """Create a persistent node open to everyone; return the error code (0, NODE_EXISTS...)."""
        acl = Writer().int(1).int(0x1F).ustring("world").ustring("anyone").getvalue()
        body = Writer().ustring(path).buffer(data).raw(acl).int(0).getvalue()
        return self.call(Op.CREATE, body)[0]

    def children(self, path: str) -> list[str]:
        err, r = self.call(Op.GET_CHILDREN, Writer().ustring(path).bool(False).getvalue())
        return (r.ustring_vector() or []) if err == 0 else []

    def delete_tree(self, path: str) -> None:
        """Delete path and everything under it (nodes that vanish meanwhile are fine)."""
        for child in self.children(path):
            self.delete_tree(f"{path.rstrip('/')}/{child}")
        if path != "/":
            self.call(Op.DELETE, Writer().ustring(path).int(-1).getvalue())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.call(Op.CLOSE_SESSION, b"")
        self.sock.close()

    def __enter__(self) -> WireSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[1])


class _ProcessNode:
    """`python -m zkserver start zoo.cfg`, held by PID."""

    def __init__(self, plan: _Plan, dirs: _Dirs) -> None:
        self.plan = plan
        self.dirs = dirs
        self.port = plan.port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = dirs.workdir / "zkserver.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float) -> None:
        if self.running:
            return
        fixed = self.port != 0
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = self.port or _free_port(self.plan.address)
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            self._launch(self.plan.write_cfg(self.dirs.workdir, self.dirs.data_dir, port))
            try:
                self._wait_ready(port, timeout)
            except ZkServerError:
                self.kill()
                taken = "Address already in use" in self._log_since(offset)
                if fixed or not taken or attempt == PORT_ATTEMPTS:
                    raise
                continue  # another process took the free port before the server bound it
            self.port = port
            return

    def _launch(self, cfg_path: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
        flags = [f"-D{key}={value}" for key, value in self.plan.properties.items()]
        argv = [sys.executable, "-m", "zkserver", "start", *flags, str(cfg_path)]
        with self.log_path.open("ab") as out:
            out.write(f"=== {' '.join(argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(argv, cwd=self.dirs.workdir, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ready(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ZkServerError(self._failure(f"exited with status {self.proc.returncode}"))
            with contextlib.suppress(OSError):
                if four_letter(self.plan.address, port, "srvr", 1.0).startswith("Zookeeper version"):
                    return
            if time.monotonic() > deadline:
                raise ZkServerError(self._failure(f"did not answer srvr within {timeout:.0f} s"))
            time.sleep(0.01)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if not self.running:
            self._reap()
            return
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait()

    def expire_session(self, session_id: int, password: bytes | None) -> bool:
        if not self.running:
            raise ZkServerError("the server is not running; start it before expiring a session")
        if password is None:
            raise ZkServerError("a subprocess server is reached only through its client port: pass the"
                                " session's password too, e.g. expire_session(kazoo_client.client_id)")
        return close_session_remotely(self.plan.address, self.port, session_id, password)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self._log_since(0).splitlines()[-lines:])

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _failure(self, what: str) -> str:
        return f"zkserver subprocess on port {self.port} {what}; log {self.log_path}:\n{self.log_tail()}"


# --------------------------------------------------------------------------- the launchers


def _session_parts(session: SessionRef, password: bytes | None) -> tuple[int, bytes | None]:
    if isinstance(session, tuple):
        return session[0], session[1] if password is None else password
    return session, password


class _Launcher:
    """What ZkServer and AsyncZkServer share: the plan, the dirs, and the addresses."""

    _plan: _Plan
    _dirs: _Dirs | None
    _thread_node: _LoopNode | None
    _proc_node: _ProcessNode | None

    def __init__(self, mode: Mode, nodes: int, port: int, storage: Storage | None,
                 data_dir: str | os.PathLike[str] | None, config: Mapping[str, object] | None,
                 properties: Mapping[str, object] | None, start_timeout: float,
                 settings: Mapping[str, object]) -> None:
        self._plan = _Plan(mode, nodes, port, storage, data_dir, config, properties, settings,
                           start_timeout)
        self._dirs = None
        self._finalizer: weakref.finalize | None = None
        self._closed = False

    def _ensure_dirs(self) -> _Dirs:
        if self._closed:
            raise ZkServerError("this server was closed; make a new one")
        if self._dirs is None:
            self._dirs = _Dirs(self._plan)
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
        self._thread: _LoopThread | None = None
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
                self._proc_node = _ProcessNode(self._plan, dirs)
                dirs.procs.append(self._proc_node)
            self._proc_node.start(timeout)
            return self
        if self._thread is None:
            self._thread = _LoopThread()
            dirs.threads.append(self._thread)
        if self._thread_node is None:
            self._thread_node = _LoopNode(self._plan.server_options(dirs.workdir, dirs.data_dir))
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
        self._node: _LoopNode | None = None
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
            self._node = _LoopNode(self._plan.server_options(dirs.workdir, dirs.data_dir))
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
