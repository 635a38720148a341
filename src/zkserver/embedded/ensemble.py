"""Embedded ensembles: N voting members and K observers on 127.0.0.1, in this process or as
subprocesses, each member's faults at hand.

Theory of operation
-------------------
Members are numbered by index 0..N+K-1 and get myid = index + 1; the observers are the last
K. Member myid has a directory root/m<myid> with its zoo.cfg, its data dir (data/, holding the
myid file) and, as a subprocess, its output (zkserver.log).

One event loop runs the ensemble: the launcher's private thread, or the caller's loop for
AsyncZkServer. In-process members are ServerRunners on that loop, each with its own core,
disk log and ports, meeting only through sockets as processes would (they share one GIL
anyway, so more threads would buy nothing). Subprocess members are started and stopped from
worker threads, so that the loop goes on carrying their peer traffic meanwhile.

Peer links. With the link proxy (linkproxy.py, the default) each member's zoo.cfg names its
peers at the proxy's listeners for its own links to them, so that cutting a member off cuts
real sockets. The proxy binds first, on ports the OS picks; a member's real ports are picked
free afterwards, and, until the member has once started, picked again if another process took
one in between (only the proxy knows them). Without the proxy (dev-ensemble) every member gets
the same server lines and the ports are fixed from the start; so are they with a base port.

Waiting. A member has a role when it says leader, follower or observer: in-process its
EnsembleShell's mode, a subprocess's srvr Mode line. The ensemble serves when, among the
members that run and are not cut off, one leads and every one has a role.

Crash. An in-process kill first has the proxy reset the member's links (so nothing it writes
while it shuts down reaches a peer), aborts its client connections, then stops its runner. A
subprocess gets SIGKILL.
"""

from __future__ import annotations

import asyncio
import errno
import time
from dataclasses import dataclass
from pathlib import Path

from .linkproxy import HOST, Link, LinkProxy
from .nodes import LoopNode, ProcessNode
from .settings import PORT_ATTEMPTS, STOP_TIMEOUT, Plan, ZkServerError
from .wire import close_session_remotely, four_letter_async, free_ports

ROLES = ("leader", "follower", "observer")
KINDS = ("quorum", "election")
# What a member logs once its election port is bound (shell/election_net.py); its quorum port is
# bound only while it leads.
ELECTION_PORT_BOUND = "election port listening on"
POLL_S = 0.02


@dataclass
class Seat:
    """One member's fixed identity and where it listens."""

    index: int
    myid: int
    observer: bool
    dir: Path
    client_port: int = 0  # 0: an in-process member binds one at its first start
    quorum_port: int = 0
    election_port: int = 0
    started: bool = False  # once started, a member keeps its ports

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        return self.dir / "zkserver.log"


class Ensemble:
    """The members of one launcher and what can be done to them; every method runs on the
    ensemble's loop. See the module docstring."""

    def __init__(self, plan: Plan, root: Path, procs: list[ProcessNode], *, proxied: bool = True) -> None:
        self.plan = plan
        self.root = root
        self.procs = procs  # the launcher's, so that its finalizer kills what is left
        total = plan.nodes + plan.observers
        self.seats = [Seat(i, i + 1, i >= plan.nodes, root / f"m{i + 1}") for i in range(total)]
        self.proxy = LinkProxy(self._real_port) if proxied else None
        self.fixed_ports = bool(plan.port) or not proxied
        self.in_process = plan.mode != "subprocess"
        self.nodes: list[LoopNode | ProcessNode | None] = [None] * total
        self._opened = False

    # ------------------------------------------------------------ set-up

    async def _open(self) -> None:
        if self._opened:
            return
        if self.proxy is not None:
            seats = self.seats
            await self.proxy.open(Link(a.myid, b.myid, kind) for a in seats for b in seats if a is not b
                                  for kind in KINDS)
        self._pick_ports()
        for seat in self.seats:
            seat.data_dir.mkdir(parents=True, exist_ok=True)
            (seat.data_dir / "myid").write_text(f"{seat.myid}\n")
        self._opened = True

    def _pick_ports(self) -> None:
        n = len(self.seats)
        base = self.plan.port
        if base:  # a block: client ports, then quorum ports, then election ports
            for seat in self.seats:
                seat.client_port, seat.quorum_port, seat.election_port = (base + seat.index, base + n + seat.index,
                                                                          base + 2 * n + seat.index)
            return
        ports = free_ports(HOST, 2 * n)  # all held at once, so no two seats get the same port
        for seat in self.seats:
            seat.quorum_port, seat.election_port = ports[2 * seat.index], ports[2 * seat.index + 1]

    def _repick(self, seat: Seat) -> None:
        """New peer ports for a member whose start found one taken (only the proxy knows them)."""
        seat.quorum_port, seat.election_port = free_ports(HOST, 2)

    def _real_port(self, myid: int, kind: str) -> int:
        seat = self.seats[myid - 1]
        return seat.quorum_port if kind == "quorum" else seat.election_port

    def _write_cfg(self, seat: Seat, client_port: int) -> Path:
        extra = ["peerType=observer"] if seat.observer else []
        extra += [self._server_line(seat, other) for other in self.seats]
        seat.dir.mkdir(parents=True, exist_ok=True)
        return self.plan.write_cfg(seat.dir, seat.data_dir, client_port, extra)

    def _server_line(self, viewer: Seat, seat: Seat) -> str:
        """server.N as `viewer` sees it: itself at its real ports, a peer at the proxy's for the link."""
        if self.proxy is None or seat is viewer:
            quorum, election = seat.quorum_port, seat.election_port
        else:
            quorum = self.proxy.port(viewer.myid, seat.myid, "quorum")
            election = self.proxy.port(viewer.myid, seat.myid, "election")
        role = ":observer" if seat.observer else ""
        return f"server.{seat.myid}={HOST}:{quorum}:{election}{role}"

    # ------------------------------------------------------------ the whole ensemble

    async def start(self) -> int:
        """Start every member that is not running; return the leader's index once it serves."""
        await self._open()
        results = await asyncio.gather(*(self.start_member(i, wait=False) for i in range(len(self.seats))),
                                       return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise failed[0]
        return await self.wait_for_leader()

    async def stop(self) -> None:
        await asyncio.gather(*(self.stop_member(i) for i in range(len(self.seats))))

    async def kill(self) -> None:
        await asyncio.gather(*(self.kill_member(i) for i in range(len(self.seats))))

    async def close(self) -> None:
        await self.stop()
        if self.proxy is not None:
            await self.proxy.close()

    # ------------------------------------------------------------ one member

    def running(self, index: int) -> bool:
        node = self.nodes[index]
        return node is not None and node.running

    def isolated(self, index: int) -> bool:
        return self.proxy is not None and self.seats[index].myid in self.proxy.isolated

    def pid(self, index: int) -> int | None:
        node = self.nodes[index]
        return node.pid if isinstance(node, ProcessNode) else None

    async def start_member(self, index: int, wait: bool = True) -> None:
        """Start member `index` (a no-op if it runs); with `wait`, return once it has a role."""
        await self._open()
        seat = self.seats[index]
        if self.proxy is not None:
            self.proxy.set_up(seat.myid)
        if self.in_process:
            await self._start_in_process(seat)
        else:
            await asyncio.to_thread(self._start_process, seat)
        seat.started = True
        if wait:
            await self.wait_for_mode(index, ROLES)

    async def _start_in_process(self, seat: Seat) -> None:
        node = self.nodes[seat.index]
        for attempt in range(1, PORT_ATTEMPTS + 1):
            if node is None:
                cfg = self._write_cfg(seat, seat.client_port)
                node = LoopNode(self.plan.options_from(cfg, ensemble=True))
            try:
                await node.start()
            except OSError as exc:
                if seat.started or self.fixed_ports or exc.errno != errno.EADDRINUSE or attempt == PORT_ATTEMPTS:
                    raise ZkServerError(f"member {seat.myid} did not start: {exc}") from exc
                self._repick(seat)  # another process took a port we picked
                node = None
                continue
            break
        assert node is not None
        self.nodes[seat.index] = node
        seat.client_port = node.port

    def _start_process(self, seat: Seat) -> None:
        node = self.nodes[seat.index]
        if node is None:
            node = ProcessNode(self.plan, seat.dir, lambda port, retry: self._process_cfg(seat, port, retry),
                               seat.client_port, ("ruok", "imok"),  # port 0: a free one, picked again if taken
                               ready_line=ELECTION_PORT_BOUND)
            self.nodes[seat.index] = node
            self.procs.append(node)
        node.start(self.plan.start_timeout)
        seat.client_port = node.port

    def _process_cfg(self, seat: Seat, client_port: int, retry: bool) -> Path:
        if retry and not self.fixed_ports:
            self._repick(seat)
        return self._write_cfg(seat, client_port)

    async def stop_member(self, index: int) -> None:
        node = self.nodes[index]
        if isinstance(node, LoopNode):
            await node.stop()
        elif isinstance(node, ProcessNode):
            await asyncio.to_thread(node.stop)
        if self.proxy is not None:
            self.proxy.set_down(self.seats[index].myid)

    async def kill_member(self, index: int) -> None:
        if self.proxy is not None:
            self.proxy.set_down(self.seats[index].myid)  # first: nothing more of it reaches a peer
        node = self.nodes[index]
        if isinstance(node, LoopNode):
            await node.kill()
        elif isinstance(node, ProcessNode):
            await asyncio.to_thread(node.kill)

    async def isolate(self, index: int) -> None:
        self._proxy().isolate(self.seats[index].myid)

    async def heal(self, index: int) -> None:
        self._proxy().heal(self.seats[index].myid)

    def _proxy(self) -> LinkProxy:
        if self.proxy is None:
            raise ZkServerError("this ensemble runs without the link proxy, so its members cannot be cut off")
        return self.proxy

    # ------------------------------------------------------------ roles

    async def mode(self, index: int) -> str | None:
        """leader, follower or observer; "" while it elects (or cannot be asked); None if it is not running."""
        node = self.nodes[index]
        if node is None or not node.running:
            return None
        if isinstance(node, LoopNode):
            assert node.runner is not None and node.runner.ensemble is not None
            return node.runner.ensemble.mode
        try:
            text = await four_letter_async(self.plan.address, node.port, "srvr", 2.0)
        except (OSError, TimeoutError):
            return ""
        for line in text.splitlines():
            if line.startswith("Mode: "):
                mode = line[len("Mode: "):].strip()
                return mode if mode in ROLES else ""
        return ""

    async def modes(self) -> dict[int, str | None]:
        return {i: await self.mode(i) for i in range(len(self.seats))}

    def _serving(self, modes: dict[int, str | None]) -> list[int]:
        """The indexes whose view counts: running, not cut off."""
        return [i for i, mode in modes.items() if mode is not None and not self.isolated(i)]

    async def leader(self) -> int | None:
        """The index of the one member that leads the members that run and are not cut off."""
        modes = await self.modes()
        leaders = [i for i in self._serving(modes) if modes[i] == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    async def wait_for_leader(self, timeout: float | None = None) -> int:
        """Wait until one member leads and every member that runs and is not cut off has a role."""
        deadline = time.monotonic() + (timeout or self.plan.start_timeout)
        while True:
            modes = await self.modes()
            counted = self._serving(modes)
            leaders = [i for i in counted if modes[i] == "leader"]
            if not counted:
                raise ZkServerError(f"no member is running and connected to its peers; modes {self._show(modes)}")
            if len(leaders) == 1 and all(modes[i] in ROLES for i in counted):
                return leaders[0]
            self._check_alive()
            if time.monotonic() > deadline:
                raise ZkServerError(f"the ensemble did not settle on a leader: {self._show(modes)}{self._tails()}")
            await asyncio.sleep(POLL_S)

    async def wait_for_mode(self, index: int, modes: tuple[str, ...], timeout: float | None = None) -> str:
        """Wait until member `index` reports one of `modes` ("" means electing or not serving)."""
        deadline = time.monotonic() + (timeout or self.plan.start_timeout)
        while True:
            mode = await self.mode(index)
            if mode in modes:
                return mode
            if mode is None:
                raise ZkServerError(f"member {index} is not running{self._tails([index])}")
            if time.monotonic() > deadline:
                raise ZkServerError(f"member {index} is {mode or 'electing'!r}, not one of {modes}, after"
                                    f" {timeout or self.plan.start_timeout:.0f} s{self._tails([index])}")
            await asyncio.sleep(POLL_S)

    def _check_alive(self) -> None:
        """A subprocess member that started and then exited on its own is an error, not a wait."""
        for i, node in enumerate(self.nodes):
            if isinstance(node, ProcessNode) and node.proc is not None and node.proc.returncode not in (None, -9, -15):
                raise ZkServerError(f"member {i} exited with status {node.proc.returncode}{self._tails([i])}")

    def _show(self, modes: dict[int, str | None]) -> str:
        shown = {i: "not running" if m is None else (m or "electing") + (" (cut off)" if self.isolated(i) else "")
                 for i, m in modes.items()}
        return ", ".join(f"member {i}: {m}" for i, m in shown.items())

    def _tails(self, indexes: list[int] | None = None) -> str:
        out = []
        for i in indexes if indexes is not None else range(len(self.seats)):
            node = self.nodes[i]
            if isinstance(node, ProcessNode):
                out.append(f"\n--- member {i} ({node.log_path}):\n{node.log_tail(20)}")
        return "".join(out)

    # ------------------------------------------------------------ sessions

    async def expire_session(self, session_id: int, password: bytes | None) -> bool:
        """Have the leader expire a session (in-process: its expiry path; a subprocess: a
        closeSession from a second connection to it, which needs the password)."""
        leader = await self.leader()
        if leader is None:
            raise ZkServerError("the ensemble has no leader now, so nobody can expire a session")
        node = self.nodes[leader]
        if isinstance(node, LoopNode):
            return await node.expire_session(session_id)
        assert isinstance(node, ProcessNode)
        if password is None:
            raise ZkServerError("subprocess members are reached only through their client ports: pass the"
                                " session's password too, e.g. expire_session(kazoo_client.client_id)")
        return await asyncio.to_thread(close_session_remotely, self.plan.address, node.port, session_id, password,
                                       STOP_TIMEOUT)

    def hosts(self) -> str:
        return ",".join(f"{self.plan.address}:{seat.client_port}" for seat in self.seats)
