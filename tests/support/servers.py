"""Start, stop and probe real server processes for tests: Apache ZooKeeper and zkserver.

Every server runs in the foreground as a child process we hold by PID; nothing is registered
globally, so the caller (normally a fixture in tests/conftest.py) must call ``stop()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port
from tests.support.prereq import missing

REPO_ROOT = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1  # linux/prctl.h
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3

APACHE_JAR = Path("/usr/share/java/zookeeper.jar")
APACHE_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# An explicit classpath, not '/usr/share/java/*': that wildcard holds six SLF4J bindings and
# the JVM picks one by directory order (slf4j-nop here), so Apache logs nothing. zookeeper.jar's
# manifest Class-Path pulls in its own dependencies; we add a real log binding, log4j's config
# dir, and the two Netty jars the manifest omits (needed by NettyServerCnxnFactory).
APACHE_CLASSPATH = ":".join(
    [
        "/usr/share/java/zookeeper.jar",
        "/usr/share/java/zookeeper-jute.jar",
        "/usr/share/java/netty-codec.jar",
        "/usr/share/java/netty-resolver.jar",
        "/usr/share/java/slf4j-log4j12.jar",
        "/usr/share/java/log4j-1.2.jar",
        "/etc/zookeeper/conf",
    ]
)
APACHE_JVM_OPTS = ["-Xmx512m", "-Djava.awt.headless=true"]
# log4j.properties in /etc/zookeeper/conf reads these; CONSOLE goes to our captured stdout.
APACHE_DEFAULT_PROPS = {"zookeeper.root.logger": "INFO,CONSOLE", "zookeeper.log.dir": "."}


class ServerStartError(RuntimeError):
    """A server process died or never answered ``ruok`` in time."""


@dataclass(eq=False)
class RunningServer:
    """One server process plus everything needed to probe or restart it."""

    kind: str  # "apache" | "zkserver"
    argv: list[str]
    cwd: Path
    cfg_path: Path
    data_dir: Path
    port: int
    log_path: Path
    env: dict[str, str] | None = None
    ready_timeout: float = READY_TIMEOUT
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _launches: int = field(default=0, repr=False)

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def launch(self) -> None:
        """Start the process (without waiting); output is appended to ``log_path``."""
        if self.running:
            raise RuntimeError(f"{self.kind} server pid {self.pid} is already running")
        self._launches += 1
        with self.log_path.open("ab") as log:
            log.write(f"=== launch {self._launches}: {' '.join(self.argv)}\n".encode())
            log.flush()
            # A new session keeps a Ctrl-C in the terminal from reaching the server before the
            # fixture's teardown does; we still signal only this PID.
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll ``ruok`` until the answer is ``imok``; raise with the log tail otherwise."""
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running:
                raise ServerStartError(self._failure(f"exited with status {self.returncode}"))
            try:
                answer = self.four_letter("ruok", timeout=1.0)
                if answer == "imok":
                    return
                last_error = f"ruok answered {answer!r}"
            except OSError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        failure = self._failure(f"not ready after {timeout or self.ready_timeout:.0f} s ({last_error})")
        self.stop()
        raise ServerStartError(failure)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait; SIGKILL if it has not exited after ``timeout`` seconds."""
        if not self.running:
            self._reap()
            return
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL by PID and reap: a crash with no chance to flush anything."""
        if self.running:
            assert self._proc is not None
            os.kill(self._proc.pid, signal.SIGKILL)
        self._reap()

    def restart(self, timeout: float | None = None) -> None:
        """Stop if running, then start again with the same config, data dir and port."""
        self.stop()
        self.launch()
        self.wait_ready(timeout)

    def four_letter(self, cmd: str, timeout: float = 5.0) -> str:
        """Send a four-letter word and read until the server closes the connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(cmd.encode("ascii"))
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log file)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.wait()

    def _failure(self, what: str) -> str:
        return (
            f"{self.kind} server on port {self.port} {what}\n"
            f"argv: {' '.join(self.argv)}\nlog {self.log_path}, last lines:\n{self.log_tail()}"
        )


def _die_with_parent() -> None:
    """In the child, before exec: have Linux SIGKILL the server when the test process dies.

    Teardown stops servers normally; this covers a test process that never reaches teardown
    (SIGKILL, pytest-timeout's os._exit), which would otherwise leave an orphan JVM holding a
    port. The signal follows the launching *thread*, so it is only armed from the main thread.
    """
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# --------------------------------------------------------------------------- zoo.cfg


def default_cfg(data_dir: Path, port: int) -> dict[str, str]:
    """The zoo.cfg every test server gets unless a test overrides a key."""
    return {
        "tickTime": "500",  # small, so session-expiry tests stay fast
        "dataDir": str(data_dir),
        "clientPort": str(port),
        "clientPortAddress": "127.0.0.1",
        "maxClientCnxns": "0",  # Apache's default 60 per IP breaks many-session tests
        "4lw.commands.whitelist": "*",  # Apache enables only srvr by default
        "admin.enableServer": "false",  # Jetty does not load from the Debian package
        "extendedTypesEnabled": "true",  # TTL nodes
    }


def write_cfg(workdir: Path, cfg: Mapping[str, str | None] | None) -> tuple[Path, Path, int]:
    """Write ``workdir/zoo.cfg``; a key overridden with None is left out entirely."""
    workdir.mkdir(parents=True, exist_ok=True)
    overrides = dict(cfg or {})
    port = int(overrides["clientPort"]) if overrides.get("clientPort") else free_port()
    data_dir = Path(overrides.get("dataDir") or workdir / "data")
    data_dir.mkdir(parents=True, exist_ok=True)
    merged: dict[str, str | None] = {**default_cfg(data_dir, port), **overrides}
    lines = [f"{key}={value}" for key, value in merged.items() if value is not None]
    cfg_path = workdir / "zoo.cfg"
    cfg_path.write_text("\n".join(lines) + "\n")
    return cfg_path, data_dir, port


def _start(
    kind: str,
    workdir: Path,
    cfg: Mapping[str, str | None] | None,
    make_argv: Callable[[Path], list[str]],
    env: dict[str, str] | None = None,
) -> RunningServer:
    """Write the config, launch, wait for ``imok``; retry with a new port if ours was taken."""
    workdir = Path(workdir)
    fixed_port = bool(cfg and cfg.get("clientPort"))
    for attempt in range(1, START_ATTEMPTS + 1):
        cfg_path, data_dir, port = write_cfg(workdir, cfg)
        server = RunningServer(
            kind=kind,
            argv=make_argv(cfg_path),
            cwd=workdir,
            cfg_path=cfg_path,
            data_dir=data_dir,
            port=port,
            log_path=workdir / f"{kind}.log",
            env=env,
        )
        server.launch()
        try:
            server.wait_ready()
            return server
        except ServerStartError:
            server.kill()
            # free_port() can race with another process taking the port before we bind it.
            port_taken = "Address already in use" in server.log_tail(200)
            if fixed_port or not port_taken or attempt == START_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- Apache


def apache_installed() -> bool:
    return APACHE_JAR.exists() and any(
        (Path(d) / "java").exists() for d in os.environ.get("PATH", "").split(os.pathsep)
    )


def skip_if_no_apache() -> None:
    """Skip when the Debian package is missing; in CI (CI=true) that is a failure instead."""
    if apache_installed():
        return
    why = f"Apache ZooKeeper is not installed ({APACHE_JAR} or java missing)"
    missing(why, "CI must install it (see .ci/test)")


def start_apache(
    workdir: Path,
    cfg: Mapping[str, str | None] | None = None,
    jvm_props: Mapping[str, object] | None = None,
) -> RunningServer:
    """Start Apache ZooKeeper 3.8 (standalone) in the foreground and wait until it is ready."""
    props = {**APACHE_DEFAULT_PROPS, **(jvm_props or {})}

    def argv(cfg_path: Path) -> list[str]:
        flags = [f"-D{key}={value}" for key, value in props.items()]
        return ["java", *APACHE_JVM_OPTS, *flags, "-cp", APACHE_CLASSPATH, APACHE_MAIN, str(cfg_path)]

    return _start("apache", workdir, cfg, argv)


# --------------------------------------------------------------------------- zkserver


def zkserver_env() -> dict[str, str]:
    """Our environment plus src/ on PYTHONPATH, so an uninstalled checkout runs too."""
    env = dict(os.environ)
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def start_zkserver(
    workdir: Path,
    cfg: Mapping[str, str | None] | None = None,
    props: Mapping[str, object] | None = None,
) -> RunningServer:
    """Start zkserver (``python -m zkserver start``) and wait until it answers ``imok``."""
    flags = [f"-D{key}={value}" for key, value in (props or {}).items()]

    def argv(cfg_path: Path) -> list[str]:
        return [sys.executable, "-m", "zkserver", "start", *flags, str(cfg_path)]

    return _start("zkserver", workdir, cfg, argv, env=zkserver_env())


STARTERS: dict[str, Callable[..., RunningServer]] = {"apache": start_apache, "zkserver": start_zkserver}


def start_server_with_props(kind: str, workdir: Path, cfg: Mapping[str, str | None] | None,
                            props: Mapping[str, object]) -> RunningServer:
    """Either kind with -D style properties (JVM flags for Apache, -D items for zkserver)."""
    if kind == "apache":
        skip_if_no_apache()
        return start_apache(workdir, cfg, props)
    return start_zkserver(workdir, cfg, props)


def start_server(kind: str, workdir: Path, cfg: Mapping[str, str | None] | None = None) -> RunningServer:
    """Start a server of either kind with the shared defaults (skips if Apache is missing)."""
    if kind == "apache":
        skip_if_no_apache()
    return STARTERS[kind](workdir, cfg)
