"""A simulated member's machine and process: lifecycle, the gate every callback passes, and
the client port. What any kind of member host (standalone now, ensemble later) shares.

Theory of operation. A `MemberHost` is one machine running one server process. The machine
(its clock, its disk, its network endpoint) outlives the process; the process - every object
`_boot` builds - is thrown away by `crash` and rebuilt from the disk by `start`, as the real
server recovers at start-up.

Every callback into the process passes `run`, the gate: timers (`call_later`), stream
callbacks (`listen`, `connect` wrap the handlers) and datagrams (`on_message`). The gate
- runs nothing while the process is down, and nothing of an older incarnation (a timer
  armed before a crash does not fire after the restart);
- while the process is paused (SIGSTOP), queues each callback and runs them all, in order,
  at `resume` (timers fire late, input arrives at once, as after a long GC pause);
- turns a `PowerLoss` raised by the disk (a crash point armed inside a disk operation) into
  a power cut of this machine, and hands any other exception to the world as a bug: bad
  input must never get that far.

`ClientPort` is the client port as shell/server.py runs it: it splits each connection's
bytes into frames with the real FrameSplitter, feeds the core, and writes the core's
effects to the streams, one send per connection per pump. A subclass builds its server in
`_boot`, drops it in `_halt` and reports what its disk holds in `final_state`.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core import Effects, ServerCore
from ..proto.framing import FrameError, FrameSplitter
from ..storage.database import StorageOptions
from ..storage.simdisk import PowerLoss
from ..tree.datatree import DataTree
from .disks import DataDir, DiskProfile
from .network import Network
from .scheduler import Scheduler, SimClock, Timer
from .streams import Stream, StreamHandler
from .trace import Trace

DOWN, UP, PAUSED = "down", "up", "paused"


@dataclass
class SimEnv:
    """What a host needs of its world."""

    scheduler: Scheduler
    network: Network
    trace: Trace
    on_bug: Callable[[str, BaseException], None]  # (place, exception): the world stops with a violation
    running: str = "world"  # whose code runs now (log lines go to its trace)
    # zxid -> (member, txn bytes) of every txn any member applied, over the whole run: the
    # committed history from its start even after every member's logs were replaced by a SNAP.
    applied: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)  # two members applied different txns at one zxid

    def note_applied(self, member: str, zxid: int, body: bytes) -> None:
        seen = self.applied.setdefault(zxid, (member, body))
        if seen[1] != body and len(self.conflicts) < 10:
            self.conflicts.append(f"at zxid 0x{zxid:x} {member} applied {body.hex()} but {seen[0]} applied "
                                  f"{seen[1].hex()}")


@dataclass
class MemberState:
    """What a member holds at the end of a run, for the checkers."""

    name: str
    sid: int
    state: str
    txns: list[tuple[int, bytes]]  # (zxid, entry bytes) of every good entry in its logs on disk
    tree: DataTree | None
    digest: int | None
    sessions: dict[int, int] = field(default_factory=dict)  # session id -> timeout
    log_failed: bool = False
    role: str | None = None  # an ensemble member's role at the end (core.Role), None standalone
    history_start: int = 0  # `txns` holds every txn after this zxid (DataDir.history_start)


class MemberHost:
    """One machine and the server process on it; subclasses say what the process is."""

    def __init__(self, env: SimEnv, sid: int, opts: StorageOptions, disk: DiskProfile):
        self.env = env
        self.sid = sid
        self.name = f"m{sid}"
        sched = env.scheduler
        self.clock = SimClock(sched)
        self.data = DataDir(opts, disk, sched.rng(f"{self.name}.fsync"), sched.rng(f"{self.name}.disk"),
                            self.call_later, self.note)
        self.state = DOWN
        self.incarnation = 0
        self.boots = 0
        self._deferred: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._reboot_mode = "random"

    def note(self, text: str) -> None:
        self.env.trace.note(self.name, text)

    # ------------------------------------------------------------ lifecycle

    def start(self, cut_in_recovery: int = 0) -> None:
        """Power on if needed, then start the process: it recovers from the disk (`_boot`).
        `cut_in_recovery`: the power fails again in that mutating disk operation of the
        start-up, if it does that many (a torn-tail repair, the new log file...)."""
        if self.state != DOWN:
            return
        disk = self.data.disk
        if disk.crashed:
            disk.reboot(self._reboot_mode)
            # A snapshot's temp file is named after the writing process: keep the trace the
            # same in every process that runs this seed.
            kept = disk.history[-1].replace(f".{os.getpid()}", ".<pid>")
            self.note(f"reboot ({self._reboot_mode}): {kept}")
        self.state = UP
        self.incarnation += 1
        self.boots += 1
        self.env.network.revive(self.name)
        armed = f", power cut armed at disk op {cut_in_recovery}" if cut_in_recovery else ""
        self.note(f"start #{self.boots}{armed}")
        if cut_in_recovery:
            disk.crash_after(cut_in_recovery)
        self.run(self._boot_or_exit)
        if cut_in_recovery and self.state == UP:
            disk.crash_after(None)  # the start-up did fewer disk operations: no cut

    def _boot_or_exit(self) -> None:
        """Start-up, which a full or failing disk stops: the real process prints why and exits
        (`zkserver start`, as Apache's QuorumPeerMain when it cannot load its database); the
        next start tries again. Any other error is a bug."""
        try:
            self._boot()
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EIO):
                raise
            self.note(f"start-up failed, the process exits: {e!r}")
            self.crash(power=False)

    def crash(self, power: bool = False, reboot_mode: str = "random") -> None:
        """Kill the process (`power`: cut the machine's power; `reboot_mode` is what the disk
        keeps of unsynced data when it comes back, see SimDisk.reboot)."""
        if self.state == DOWN:
            return
        self.note("power cut" if power else "process killed")
        self.state = DOWN
        self.incarnation += 1
        self._deferred.clear()
        self.env.network.crash(self.name, power)
        self._halt()
        self.data.close()
        if power:
            self.data.disk.power_fail()
            self._reboot_mode = reboot_mode
        else:
            self.data.disk.restart()  # open files close; the page cache keeps every byte

    def arm_power_cut(self, after_ops: int, reboot_mode: str) -> bool:
        """Cut the power during the `after_ops`-th mutating disk operation from now (a write in
        it done only in part): the crash lands inside the storage code. Only a running
        process can be caught in a disk operation (False: not armed)."""
        if self.state == DOWN:
            return False
        self._reboot_mode = reboot_mode
        self.data.disk.crash_after(after_ops)
        return True

    def arm_sync_cut(self, point: str | None, on_cut: Callable[[], None] | None = None) -> None:
        """Call `on_cut` when this member's process reaches `point` of a learner's sync (None:
        disarm). Only ensemble members sync; elsewhere this does nothing."""

    def pause(self) -> None:
        if self.state == UP:
            self.state = PAUSED
            self.note("paused")

    def resume(self) -> None:
        if self.state != PAUSED:
            return
        self.state = UP
        deferred, self._deferred = self._deferred, []
        self.note(f"resumed: {len(deferred)} callbacks waited")
        incarnation = self.incarnation
        for fn, args in deferred:
            if self.state != UP or self.incarnation != incarnation:
                break  # crashed or paused again by one of them: the rest is lost or waits
            self._call(fn, args)

    def set_clock_rate(self, rate: float) -> None:
        if rate != self.clock.rate:
            self.clock.set_rate(rate)
            self.note(f"clock rate x{rate:g}")

    def jump_wall_clock(self, delta_ms: int) -> None:
        self.clock.jump_wall(delta_ms)
        self.note(f"wall clock jumps {delta_ms:+d} ms")

    # ------------------------------------------------------------ the gate

    def run(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.state == UP:
            self._call(fn, args)
        elif self.state == PAUSED:
            self._deferred.append((fn, args))

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        env = self.env
        env.running = self.name
        try:
            fn(*args)
        except PowerLoss:
            self.note("the power failed inside a disk operation")
            self.crash(power=True, reboot_mode=self._reboot_mode)
        except Exception as e:
            env.on_bug(self.name, e)
        finally:
            env.running = "world"

    def call_later(self, delay_ms: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """`fn(*args)` after `delay_ms` of this machine's (possibly skewed) clock, in this
        incarnation of the process only."""
        # Rounded up: on a fast clock a 1 ms wait rounded down to 0 would fire before this
        # machine's clock reached it, and a caller waiting for it would spin at one instant.
        virtual = math.ceil(delay_ms / self.clock.rate)
        return self.env.scheduler.call_later(virtual, self._timer, self.incarnation, fn, args)

    def _timer(self, incarnation: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if incarnation == self.incarnation:
            self.run(fn, *args)

    # ------------------------------------------------------------ the network, through the gate

    def listen(self, port: str, accept: Callable[[str, Stream], StreamHandler | None]) -> None:
        def gated_accept(peer: str, stream: Stream) -> StreamHandler | None:
            handler = accept(peer, stream)
            return _Gated(self, handler) if handler is not None else None

        self.env.network.listen(self.name, port, gated_accept)

    def connect(self, dst: str, port: str, handler: StreamHandler) -> Stream:
        return self.env.network.connect(self.name, dst, port, _Gated(self, handler))

    def on_message(self, channel: str, receive: Callable[[str, bytes], None]) -> None:
        self.env.network.on_message(self.name, channel, lambda src, payload: self.run(receive, src, payload))

    def send_message(self, dst: str, channel: str, payload: bytes) -> None:
        self.env.network.send_message(self.name, dst, channel, payload)

    # ------------------------------------------------------------ what a subclass provides

    def _boot(self) -> None:
        raise NotImplementedError

    def _halt(self) -> None:
        """Drop every object of the process (the machine and its disk stay)."""
        raise NotImplementedError

    @property
    def log_failed(self) -> bool:
        """The process's txn log failed (EIO, ENOSPC): it refuses writes until restarted."""
        return self.state != DOWN and self.data.log_failed

    @property
    def quiet(self) -> bool:
        """Nothing in flight that would change the disk if time went on (end of a run)."""
        return self.state != UP or self.data.quiet

    def final_state(self) -> MemberState:
        raise NotImplementedError


class _Gated:
    """A stream handler whose callbacks pass the host's gate."""

    __slots__ = ("handler", "host")

    def __init__(self, host: MemberHost, handler: StreamHandler):
        self.host = host
        self.handler = handler

    def on_open(self) -> None:
        self.host.run(self.handler.on_open)

    def on_data(self, data: bytes) -> None:
        self.host.run(self.handler.on_data, data)

    def on_close(self) -> None:
        self.host.run(self.handler.on_close)


class ClientPort:
    """The client port of one server process: connections in, frames to the core, effects out.
    `on_input` is called after each input the core took (the host then pumps)."""

    def __init__(self, host: MemberHost, core: ServerCore, on_input: Callable[[], None]):
        self.host = host
        self.core = core
        self.on_input = on_input
        self.conns: dict[int, _ClientConn] = {}
        self._next_cid = 1
        host.listen("client", self._accept)

    def _accept(self, peer: str, stream: Stream) -> StreamHandler:
        cid = self._next_cid
        self._next_cid += 1
        return _ClientConn(self, cid, peer, stream)

    def write(self, fx: Effects) -> None:
        """Each connection's frames in one send, then the closes the core asked for."""
        conns = self.conns
        for cid, frames in fx.out.items():
            conn = conns.get(cid)
            if conn is not None:
                conn.stream.send(b"".join(frames))
        for cid in fx.close:
            conn = conns.pop(cid, None)
            if conn is not None:
                conn.stream.close()
                self.core.connection_lost(cid)  # our close ends our callbacks: tell the core now


class _ClientConn:
    __slots__ = ("cid", "framing", "peer", "port", "stream")

    def __init__(self, port: ClientPort, cid: int, peer: str, stream: Stream):
        self.port = port
        self.cid = cid
        self.peer = peer
        self.stream = stream
        self.framing = FrameSplitter(port.core.settings.max_buffer)

    def on_open(self) -> None:
        port = self.port
        if port.core.connection_made(self.cid, self.peer):
            port.conns[self.cid] = self
        else:
            port.host.note(f"refused a connection from {self.peer} (connection limit)")
            self.stream.close()

    def on_data(self, data: bytes) -> None:
        port = self.port
        if self.cid not in port.conns:
            return
        try:
            frames = self.framing.feed(data)
        except FrameError as e:
            port.host.note(f"closing connection {self.cid} from {self.peer}: {e}")
            del port.conns[self.cid]
            self.stream.close()
            port.core.connection_lost(self.cid)
            return
        if frames:
            port.core.frames_received(self.cid, frames)
            port.on_input()

    def on_close(self) -> None:
        port = self.port
        if port.conns.pop(self.cid, None) is not None:
            port.core.connection_lost(self.cid)
            port.on_input()
