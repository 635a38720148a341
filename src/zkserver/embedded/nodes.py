"""One node of an embedded launcher: a ServerRunner on an event loop, or a subprocess held by PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ..shell.server import ServerOptions, ServerRunner
from .settings import PORT_ATTEMPTS, STOP_TIMEOUT, Plan, ZkServerError
from .wire import close_session_remotely, four_letter, free_port

T = TypeVar("T")


class Dirs:
    """The launcher's work dir (zoo.cfg, logs) and data dir; temporary ones go at release().

    An ensemble's data dir is the root of its members' dirs (m1/, m2/, ...), the work dir
    unless the caller named one."""

    def __init__(self, plan: Plan) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="zkserver-"))
        self.data_dir = plan.data_dir or (self.workdir if plan.nodes > 1 else self.workdir / "data")
        if plan.storage == "disk":
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.threads: list[LoopThread] = []
        self.procs: list[ProcessNode] = []

    def release(self) -> None:
        """Kill what is left, remove temporary dirs; also runs when a launcher is garbage."""
        for proc in self.procs:
            proc.kill()
        for thread in self.threads:
            thread.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


# --------------------------------------------------------------------------- in-process


class LoopThread:
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

    async def acall(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """`call` for a coroutine on another loop: awaits without blocking that loop."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            raise ZkServerError(f"the server loop did not answer within {timeout:.0f} s") from None

    def close(self) -> None:
        if self.loop.is_closed():
            return
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(STOP_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


async def settle() -> None:
    # Transports report connection_lost on a later loop turn; let the core see it before we return.
    for _ in range(3):
        await asyncio.sleep(0)


class LoopNode:
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
        try:
            await self.runner.start()
        except BaseException:
            with contextlib.suppress(Exception):  # what did start (the log, a port) must not linger
                await self.runner.stop()
            raise
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
        await settle()

    async def kill(self) -> None:
        if not self.running or self.runner is None:
            return
        self.running = False
        for proto in list(self.runner.protocols.values()):
            if proto.transport is not None:
                proto.transport.abort()  # drop queued replies: what a crash does to them
        await self.runner.stop()
        await settle()

    async def expire_session(self, session_id: int) -> bool:
        if not self.running or self.runner is None:
            raise ZkServerError("the server is not running; start it before expiring a session")
        expired = self.runner.core.expire_session(session_id)
        self.runner.pump()
        return expired


def package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


class ProcessNode:
    """`python -m zkserver start zoo.cfg`, held by PID; its output goes to workdir/zkserver.log.

    `write_cfg(port, retry)` writes the zoo.cfg for a client port and returns its path; `retry`
    says the last start found a port taken. Ready means `probe` answers with its prefix: srvr's
    "Zookeeper version" for a standalone server, which serves at once; "imok" for an ensemble
    member, which answers ruok while it is still electing. A member binds its client port
    first, so it is ready only once its log also says `ready_line` (its election port is bound;
    a port that merely accepts could be another process's).
    """

    def __init__(self, plan: Plan, workdir: Path, write_cfg: Callable[[int, bool], Path], port: int = 0,
                 probe: tuple[str, str] = ("srvr", "Zookeeper version"),
                 ready_line: str | None = None) -> None:
        self.plan = plan
        self.workdir = workdir
        self.write_cfg = write_cfg
        self.port = port
        self.probe = probe
        self.ready_line = ready_line
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "zkserver.log"

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
            port = self.port or free_port(self.plan.address)
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            self._launch(self.write_cfg(port, attempt > 1))
            try:
                self._wait_ready(port, timeout, offset)
            except ZkServerError:
                self.kill()
                taken = "address already in use" in self._log_since(offset).lower()  # uvloop says it in lower case
                if fixed or not taken or attempt == PORT_ATTEMPTS:
                    raise
                continue  # another process took the free port before the server bound it
            self.port = port
            return

    def _launch(self, cfg_path: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root(), env.get("PYTHONPATH")) if p)
        flags = [f"-D{key}={value}" for key, value in self.plan.properties.items()]
        argv = [sys.executable, "-m", "zkserver", "start", *flags, str(cfg_path)]
        with self.log_path.open("ab") as out:
            out.write(f"=== {' '.join(argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ready(self, port: int, timeout: float, offset: int) -> None:
        word, prefix = self.probe
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ZkServerError(self._failure(f"exited with status {self.proc.returncode}"))
            with contextlib.suppress(OSError):
                if four_letter(self.plan.address, port, word, 1.0).startswith(prefix) and (
                        self.ready_line is None or self.ready_line in self._log_since(offset)):
                    return
            if time.monotonic() > deadline:
                raise ZkServerError(self._failure(f"did not answer {word} within {timeout:.0f} s"))
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


