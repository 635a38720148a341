"""A tiny world for bring-up: SimClients against one standalone ServerCore, in memory.

`Pipe` is a simulated TCP connection honouring the Stream contract (sim/streams.py): bytes in
order, delivered after a drawn latency in chunks whose boundaries it chooses (a send may be
split; sends due in the same millisecond are merged into one delivery), a graceful close after
what was sent, a reset that drops what was not delivered. `CoreHost` plays the shell around a
ServerCore: frames in, effects out, the log made durable after a drawn delay (0 = at once),
ticks every tickTime. Faults: resets of live connections, and clients cut off from the
member for a while (their connects are refused), long enough for sessions to expire.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from zkserver.core import CoreSettings, ServerCore
from zkserver.jute.records import TxnHeader
from zkserver.proto.framing import FrameSplitter
from zkserver.sim.checkers.base import MemberState
from zkserver.sim.checkers.observe import member_state
from zkserver.sim.client import SimClient
from zkserver.sim.history import History
from zkserver.sim.scheduler import Scheduler, SimClock
from zkserver.sim.streams import StreamHandler
from zkserver.sim.workload import Workload, WorkloadOptions


class _End:
    """One end of a Pipe: the Stream its owner sends on."""

    def __init__(self, pipe: Pipe, side: int):
        self.pipe = pipe
        self.side = side
        self.handler: StreamHandler | None = None
        self.queue: deque[tuple[int, bytes]] = deque()  # what is on its way *to* this end
        self.last_due = 0
        self.closed = False  # no more callbacks to its handler

    def send(self, data: bytes) -> None:
        if not self.closed and not self.pipe.dead:
            self.pipe.transmit(self.pipe.ends[1 - self.side], data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        other = self.pipe.ends[1 - self.side]
        self.pipe.scheduler.call_at(max(self.pipe.scheduler.now, other.last_due) + 1, self.pipe.finish, other)


class Pipe:
    def __init__(self, scheduler: Scheduler, name: str, latency: tuple[int, int] = (0, 3), max_chunks: int = 3):
        self.scheduler = scheduler
        self.rng = scheduler.rng(f"pipe/{name}")
        self.latency = latency
        self.max_chunks = max_chunks
        self.ends = (_End(self, 0), _End(self, 1))
        self.dead = False

    def transmit(self, to: _End, data: bytes) -> None:
        rng = self.rng
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, self.max_chunks - 1))))
        due = max(self.scheduler.now + rng.randint(*self.latency), to.last_due)
        for start, stop in zip([0, *cuts], [*cuts, len(data)], strict=True):
            to.queue.append((due, data[start:stop]))
            self.scheduler.call_at(due, self.deliver, to)
            due += rng.randint(0, 1)
        to.last_due = due

    def deliver(self, to: _End) -> None:
        parts = []
        while to.queue and to.queue[0][0] <= self.scheduler.now:
            parts.append(to.queue.popleft()[1])
        if parts and not to.closed and not self.dead and to.handler is not None:
            to.handler.on_data(b"".join(parts))

    def finish(self, end: _End) -> None:
        """The other side closed gracefully: `end` hears of it after what was sent."""
        if not end.closed:
            end.closed = True
            if end.handler is not None:
                end.handler.on_close()

    def reset(self) -> None:
        """Both ends see the connection die; nothing still in flight arrives."""
        if self.dead:
            return
        self.dead = True
        for end in self.ends:
            end.queue.clear()
            if not end.closed:
                end.closed = True
                if end.handler is not None:
                    end.handler.on_close()


class _ServerConn:
    """The server side of one client connection: frames to the core, as the shell does."""

    def __init__(self, host: CoreHost, cid: int, end: _End):
        self.host = host
        self.cid = cid
        self.end = end
        self.splitter = FrameSplitter(host.core.settings.max_buffer)

    def on_open(self) -> None:
        if not self.host.core.connection_made(self.cid, f"10.0.0.{self.cid % 250}"):
            self.end.close()

    def on_data(self, data: bytes) -> None:
        self.host.core.frames_received(self.cid, self.splitter.feed(data))
        self.host.pump()

    def on_close(self) -> None:
        self.host.conns.pop(self.cid, None)
        self.host.core.connection_lost(self.cid)
        self.host.pump()


@dataclass
class HostOptions:
    tick_ms: int = 200
    persist_ms: tuple[int, int] = (0, 4)  # (0, 0): durable at once
    connect_ms: tuple[int, int] = (1, 5)
    latency_ms: tuple[int, int] = (0, 3)  # each way, per send
    session_timeout: int = 3000
    extended_types: bool = True
    container_check_ms: int = 500


class CoreHost:
    def __init__(self, scheduler: Scheduler, member: int = 1, opts: HostOptions | None = None):
        self.scheduler = scheduler
        self.member = member
        self.opts = opts or HostOptions()
        self.rng = scheduler.rng(f"host/{member}")
        settings = CoreSettings(tick_ms=self.opts.tick_ms, min_session_timeout=2 * self.opts.tick_ms,
                                max_session_timeout=20 * self.opts.tick_ms, server_id=member,
                                extended_types=self.opts.extended_types,
                                container_check_interval_ms=self.opts.container_check_ms)
        self.core = ServerCore(settings, SimClock(scheduler), b"s" * 32)
        self.conns: dict[int, _ServerConn] = {}
        self.pipes: list[Pipe] = []
        self.client_of: dict[Pipe, int] = {}
        self.blocked_until: dict[int, int] = {}  # client -> virtual ms its connects are refused until
        self.committed: list[tuple[TxnHeader, object]] = []
        self._unsynced: list[tuple[TxnHeader, object]] = []
        self._next_cid = 1
        self.ticking = True
        scheduler.call_later(self.opts.tick_ms, self._tick)

    # ------------------------------------------------------------ connections

    def connector(self, client: int):
        """The `connect(member, handler)` function SimClient number `client` is given."""

        def connect(member: int, handler: StreamHandler) -> _End:
            assert member == self.member
            cid = self._next_cid
            self._next_cid += 1
            pipe = Pipe(self.scheduler, f"c{client}/{cid}", self.opts.latency_ms)
            client_end, server_end = pipe.ends
            client_end.handler = handler
            delay = self.rng.randint(*self.opts.connect_ms)
            if self.blocked_until.get(client, -1) > self.scheduler.now:
                self.scheduler.call_later(delay, pipe.reset)  # refused
                return client_end
            server = _ServerConn(self, cid, server_end)
            server_end.handler = server
            self.conns[cid] = server
            self.pipes.append(pipe)
            self.client_of[pipe] = client
            self.scheduler.call_later(delay, self._open, pipe, server, handler)
            return client_end

        return connect

    def _open(self, pipe: Pipe, server: _ServerConn, handler: StreamHandler) -> None:
        if pipe.dead:
            return
        server.on_open()
        handler.on_open()
        self.pump()

    def reset_one(self) -> bool:
        """Reset a live client connection, drawn at random; False when there is none."""
        live = [p for p in self.pipes if not p.dead and not any(e.closed for e in p.ends)]
        self.pipes = live
        if not live:
            return False
        self.rng.choice(live).reset()
        return True

    def block(self, client: int, until: int) -> None:
        """Cut `client` off: its connection is reset and its connects refused until `until`."""
        self.blocked_until[client] = until
        for pipe in self.pipes:
            if self.client_of[pipe] == client:
                pipe.reset()

    # ------------------------------------------------------------ the shell's loop

    def pump(self) -> None:
        core = self.core
        while True:
            fx = core.take_effects()
            if not (fx.out or fx.close or fx.appends):
                return
            for cid, frames in fx.out.items():
                conn = self.conns.get(cid)
                if conn is not None:
                    self.send(conn, frames)
            for cid in fx.close:
                conn = self.conns.pop(cid, None)
                if conn is not None:
                    conn.end.close()
                core.connection_lost(cid)
            # Last: a log durable at once answers writes from inside this call, and those
            # replies must not overtake the ones above (the checkers caught exactly that).
            if fx.appends:
                self._append(fx.appends)

    def send(self, conn: _ServerConn, frames: list[bytes]) -> None:
        """A connection's frames of one turn, written at once (as the shell's one write per turn)."""
        conn.end.send(b"".join(frames))

    def _append(self, appends: list[tuple[TxnHeader, object]]) -> None:
        self._unsynced.extend(appends)
        delay = self.rng.randint(*self.opts.persist_ms)
        if delay == 0:
            self._persist(appends[-1][0].zxid)
        else:
            self.scheduler.call_later(delay, self._persist, appends[-1][0].zxid)

    def _persist(self, zxid: int) -> None:
        done = [a for a in self._unsynced if a[0].zxid <= zxid]
        if not done:
            return
        self._unsynced = self._unsynced[len(done):]
        self.committed.extend(done)
        self.core.persisted(zxid)
        self.pump()

    def _tick(self) -> None:
        if self.ticking:
            self.core.tick()
            self.pump()
            self.scheduler.call_later(self.opts.tick_ms, self._tick)

    def state(self) -> MemberState:
        return member_state(self.member, self.core.tree, self.committed, set(self.core.sessions.sessions))


@dataclass
class BringUp:
    scheduler: Scheduler
    host: CoreHost
    history: History
    clients: list[SimClient]
    workload: Workload


def build(seed: int, clients: int = 4, workload: WorkloadOptions | None = None, host: HostOptions | None = None,
          request_timeout: int | None = None) -> BringUp:
    scheduler = Scheduler(seed)
    h = CoreHost(scheduler, 1, host)
    history = History()
    sims = [SimClient(n, scheduler, history, h.connector(n), [h.member], session_timeout=h.opts.session_timeout,
                      request_timeout=request_timeout) for n in range(clients)]
    return BringUp(scheduler, h, history, sims, Workload(scheduler, sims, workload))


def run(world: BringUp, limit_ms: int = 600_000, settle_ms: int = 5_000) -> None:
    """Run the workload to its end, let what is in flight finish, and stop the clock's work."""
    world.workload.start()
    s = world.scheduler
    s.run_until(limit_ms, stop=lambda: world.workload.done)
    world.workload.stop()
    s.run_until(s.now + settle_ms)
    world.host.ticking = False
    s.run_until(s.now + settle_ms)


def inject_faults(world: BringUp, gap_ms: tuple[int, int] = (20, 300), reset_share: float = 0.8,
                  blocked_ms: tuple[int, int] = (1000, 6000)) -> None:
    """Until the workload is done: now and then reset a live connection (requests in flight end
    UNKNOWN), or cut a client off for long enough that its session may expire."""
    rng = world.scheduler.rng("faults")
    s = world.scheduler

    def fault() -> None:
        if world.workload.done:
            return
        if rng.random() < reset_share:
            world.host.reset_one()
        else:
            world.host.block(rng.randrange(len(world.clients)), s.now + rng.randint(*blocked_ms))
        s.call_later(rng.randint(*gap_ms), fault)

    s.call_later(rng.randint(*gap_ms), fault)
