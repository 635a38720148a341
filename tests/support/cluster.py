"""Real-process ensembles for tests: zkserver members, Apache 3.8 members, or a mix.

`Cluster(workdir, ["zkserver", "apache", "zkserver"])` writes one directory per member (its
zoo.cfg with every member's server line, its myid) and launches each member as a process held
by PID (tests/support/servers.RunningServer). Members are numbered from 1 in the order given;
`observers=k` makes the last k of them observers. `close()` stops every process it started;
use it as a context manager or from a fixture's teardown.

Probing stays outside the code under test: a member's role is what its `srvr` says, the
tree is what a kazoo client reads, agreement is checked through `mntr`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port
from tests.support.servers import (
    APACHE_CLASSPATH,
    APACHE_DEFAULT_PROPS,
    APACHE_JVM_OPTS,
    APACHE_MAIN,
    RunningServer,
    skip_if_no_apache,
    zkserver_env,
)

QUORUM_TIMEOUT = 60.0
MODES = ("leader", "follower", "observer")


@dataclass
class Seat:
    sid: int
    kind: str  # "zkserver" | "apache"
    observer: bool = False
    quorum_port: int = field(default_factory=free_port)
    election_port: int = field(default_factory=free_port)
    client_port: int = field(default_factory=free_port)

    def line(self, quorum_port: int | None = None, election_port: int | None = None) -> str:
        """Its server.N line; other ports for a member that reaches it through something else."""
        role = ":observer" if self.observer else ""
        return (f"server.{self.sid}=127.0.0.1:{quorum_port or self.quorum_port}:"
                f"{election_port or self.election_port}{role}")


class Cluster:
    def __init__(self, workdir: Path, kinds: Iterable[str], *, observers: int = 0, tick_ms: int = 200,
                 init_limit: int = 25, sync_limit: int = 10, cfg: Mapping[str, str] | None = None,
                 props: Mapping[str, str] | None = None, jvm_opts: Iterable[str] = APACHE_JVM_OPTS):
        kinds = list(kinds)
        if "apache" in kinds:
            skip_if_no_apache()
        self.workdir = Path(workdir)
        self.seats = {i + 1: Seat(i + 1, kind, observer=i >= len(kinds) - observers) for i, kind in enumerate(kinds)}
        self.tick_ms, self.init_limit, self.sync_limit = tick_ms, init_limit, sync_limit
        self.extra_cfg = dict(cfg or {})
        self.member_cfg: dict[int, dict[str, str]] = {}  # per member, over extra_cfg (its own key store, say)
        self.props = dict(props or {})
        self.jvm_opts = list(jvm_opts)
        self.members: dict[int, RunningServer] = {}
        self.paused: set[int] = set()

    # ------------------------------------------------------------ set-up

    def data_dir(self, sid: int) -> Path:
        return self.workdir / f"m{sid}" / "data"

    def write_member(self, sid: int) -> Path:
        seat = self.seats[sid]
        base = self.workdir / f"m{sid}"
        data = self.data_dir(sid)
        data.mkdir(parents=True, exist_ok=True)
        (data / "myid").write_text(f"{sid}\n")
        lines = {
            "tickTime": str(self.tick_ms), "initLimit": str(self.init_limit), "syncLimit": str(self.sync_limit),
            "dataDir": str(data), "clientPort": str(seat.client_port), "clientPortAddress": "127.0.0.1",
            "maxClientCnxns": "0", "4lw.commands.whitelist": "*", "admin.enableServer": "false",
            **self.extra_cfg, **self.member_cfg.get(sid, {}),
        }
        if seat.observer:
            lines["peerType"] = "observer"
        text = "".join(f"{k}={v}\n" for k, v in lines.items()) + "".join(line + "\n" for line in self.server_lines(sid))
        cfg = base / "zoo.cfg"
        cfg.write_text(text)
        return cfg

    def server_lines(self, sid: int) -> list[str]:
        """The server.N lines member `sid` is given: every seat's own ports (a subclass may
        route the other members through something else, see faultcluster.py)."""
        return [seat.line() for seat in self.seats.values()]

    def _server(self, sid: int) -> RunningServer:
        seat = self.seats[sid]
        cfg = self.write_member(sid)
        base = cfg.parent
        if seat.kind == "apache":
            props = {**APACHE_DEFAULT_PROPS, "zookeeper.log.dir": str(base), **self.props}
            argv = ["java", *self.jvm_opts, *(f"-D{k}={v}" for k, v in props.items()), "-cp", APACHE_CLASSPATH,
                    APACHE_MAIN, str(cfg)]
            env = None
        else:
            argv = [sys.executable, "-m", "zkserver", "start", *(f"-D{k}={v}" for k, v in self.props.items()),
                    str(cfg)]
            env = zkserver_env()
        return RunningServer(kind=seat.kind, argv=argv, cwd=base, cfg_path=cfg, data_dir=self.data_dir(sid),
                             port=seat.client_port, log_path=base / f"{seat.kind}.log", env=env)

    def start(self, sids: Iterable[int] | None = None, wait: bool = True) -> Cluster:
        for sid in sids or self.seats:
            server = self.members.get(sid) or self._server(sid)
            self.members[sid] = server
            if not server.running:
                server.launch()
        if wait:
            self.wait_for_quorum()
        return self

    def replace(self, sid: int, kind: str) -> None:
        """Stop member `sid` and give its seat (ports, data dir) to a server of `kind`."""
        self.stop(sid)
        self.seats[sid].kind = kind
        self.members[sid] = self._server(sid)

    def kind(self, sid: int) -> str:
        return self.seats[sid].kind

    # ------------------------------------------------------------ faults

    def stop(self, sid: int) -> None:
        self.resume(sid)
        server = self.members.get(sid)
        if server is not None:
            server.stop()

    def kill(self, sid: int) -> None:
        """SIGKILL, paused or not: a paused member dies without running again (SIGKILL needs no
        SIGCONT), so whatever reached its socket buffers while it was stopped is never read."""
        server = self.members.get(sid)
        if server is not None:
            server.kill()
        self.paused.discard(sid)

    def pause(self, sid: int) -> None:
        """SIGSTOP the member and wait until every thread of it has stopped: the signal is
        delivered asynchronously, and a JVM thread still running could read (and log) what is
        sent to it right after (the TRUNC scenarios depend on it never seeing a proposal)."""
        server = self.members[sid]
        if server.pid is not None:
            os.kill(server.pid, signal.SIGSTOP)
            self.paused.add(sid)
            _wait_stopped(server.pid)

    def resume(self, sid: int) -> None:
        server = self.members.get(sid)
        if sid in self.paused and server is not None and server.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGCONT)
        self.paused.discard(sid)

    def wipe(self, sid: int) -> None:
        """Delete the member's version-2 directory (its log, snapshots and epochs)."""
        shutil.rmtree(self.data_dir(sid) / "version-2", ignore_errors=True)

    def close(self) -> None:
        for sid in list(self.members):
            self.resume(sid)
            with contextlib.suppress(Exception):
                self.members[sid].stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ probes

    def hosts(self, sids: Iterable[int] | None = None) -> str:
        return ",".join(f"127.0.0.1:{self.seats[s].client_port}" for s in (sids or self.seats))

    def live(self) -> list[int]:
        return [sid for sid, s in self.members.items() if s.running and sid not in self.paused]

    def four_letter(self, sid: int, word: str, timeout: float = 3.0) -> str:
        return self.members[sid].four_letter(word, timeout=timeout)

    def mode(self, sid: int) -> str | None:
        """leader, follower or observer as srvr says; None while electing or unreachable."""
        try:
            text = self.four_letter(sid, "srvr", timeout=2.0)
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Mode: "):
                mode = line[len("Mode: "):].strip()
                return mode if mode in MODES else None
        return None

    def modes(self) -> dict[int, str | None]:
        return {sid: self.mode(sid) for sid in self.live()}

    def leader(self) -> int | None:
        leaders = [sid for sid, mode in self.modes().items() if mode == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def wait_for_quorum(self, timeout: float = QUORUM_TIMEOUT, sids: Iterable[int] | None = None) -> int:
        """Wait until one member leads and every given (default: live) member has a role;
        the leader's sid."""
        deadline = time.monotonic() + timeout
        modes: dict[int, str | None] = {}
        while time.monotonic() < deadline:
            wanted = list(sids) if sids is not None else self.live()
            modes = {sid: self.mode(sid) for sid in wanted}
            leaders = [sid for sid, m in modes.items() if m == "leader"]
            if len(leaders) == 1 and all(m in MODES for m in modes.values()):
                return leaders[0]
            for sid in wanted:
                if not self.members[sid].running:
                    raise AssertionError(f"member {sid} exited:\n{self.members[sid].log_tail(60)}")
            time.sleep(0.1)
        tails = "\n".join(f"--- member {sid} ({self.seats[sid].kind}):\n{self.members[sid].log_tail(30)}"
                          for sid in self.members)
        raise AssertionError(f"no quorum within {timeout}s; modes {modes}\n{tails}")

    def wait_for_mode(self, sid: int, modes: Iterable[str | None], timeout: float = QUORUM_TIMEOUT) -> str | None:
        """Wait until member `sid`'s srvr Mode is one of `modes` (None: not serving); that mode."""
        wanted = set(modes)
        deadline = time.monotonic() + timeout
        mode = None
        while time.monotonic() < deadline:
            mode = self.mode(sid)
            if mode in wanted:
                return mode
            if sid in self.members and not self.members[sid].running:
                raise AssertionError(f"member {sid} exited:\n{self.members[sid].log_tail(60)}")
            time.sleep(0.1)
        raise AssertionError(f"member {sid} is {mode!r}, not one of {wanted}, after {timeout}s:\n"
                             f"{self.members[sid].log_tail(40)}")

    # ------------------------------------------------------------ logs

    def log_path(self, sid: int) -> Path:
        return self.members[sid].log_path

    def log_mark(self, sid: int) -> int:
        """Where member `sid`'s log ends now: `log_since` reads what it writes after this."""
        path = self.log_path(sid)
        return path.stat().st_size if path.exists() else 0

    def log_since(self, sid: int, mark: int = 0) -> str:
        path = self.log_path(sid)
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", errors="replace")

    def wait_for_log(self, sid: int, text: str, mark: int = 0, timeout: float = QUORUM_TIMEOUT) -> str:
        """Wait until `text` appears in member `sid`'s log after `mark`; the log since `mark`."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.log_since(sid, mark)
            if text in got:
                return got
            if time.monotonic() >= deadline:
                raise AssertionError(f"member {sid} ({self.kind(sid)}) never logged {text!r}; since the mark:\n"
                                     f"{got[-4000:]}")
            time.sleep(0.1)

    def mntr(self, sid: int) -> dict[str, str]:
        out = {}
        for line in self.four_letter(sid, "mntr").splitlines():
            key, _, value = line.partition("\t")
            out[key] = value
        return out


def _wait_stopped(pid: int, timeout: float = 5.0) -> None:
    """Until every thread of `pid` is stopped (T), or dead, or the process is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            states = [Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                      for tid in os.listdir(f"/proc/{pid}/task")]
        except FileNotFoundError:  # a thread ended meanwhile, or the whole process
            if not os.path.exists(f"/proc/{pid}"):
                return
            continue
        if all(state in ("T", "t", "Z", "X") for state in states):  # stopped, or dead
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop within {timeout} s of SIGSTOP")

