"""A userspace TCP proxy on every directed peer link of a real ensemble, with network faults.

Theory of operation. `FaultNetwork.route(members)` opens, for every ordered pair of members
(i, j), two listeners on 127.0.0.1: one in front of j's quorum port and one in front of j's
election port. Member i is given server lines naming those listeners for every other member
(tests/support/faultcluster.py), so every byte i sends to j, and every byte j answers on that
connection, passes here. Faults are rules per ordered pair (src, dst) and apply to the bytes
flowing from src to dst, whichever member opened the connection:
  - blackhole: the bytes (and a close) are held, not delivered, until the rule is lifted,
    as a partition does to TCP: nothing arrives, nothing is refused, the sender's kernel keeps
    retransmitting. A connection is opened towards its target only once both directions are
    open (a SYN and its answer must both get through); until then the dialler is connected to
    the proxy alone and what it sends waits. Both directions blackholed is a partition, one
    direction an asymmetric one.
  - delay ± jitter: each chunk is due `delay + uniform(-jitter, jitter)` ms after it was read,
    never before the chunk ahead of it (TCP keeps order).
  - loss: TCP never loses bytes inside a connection, it retransmits them. So a chunk "lost"
    (with this probability, again for each retransmission) arrives one retransmission timeout
    later (200 ms, doubling), and everything behind it waits. Dropping bytes from the middle
    of a stream would splice messages no real network can produce.
  - reset: every connection carrying the pair's bytes is reset (RST both ways) at once.
  - heal: every rule back to "deliver now"; held bytes flow in order.
A connection's end travels as its bytes do: a close is delivered after the bytes before it
(held while blackholed); a reset or a failed write resets the whole connection.

The election port's connection rules hold through it: a dialler's initial message names its
own election address, and a member dials a smaller sid back at that address. The listener in
front of j's election port for i therefore rewrites the address in i's initial message to the
listener in front of i's election port for j, which is where j must dial to reach i.

Everything runs on one asyncio loop in a daemon thread; the test thread changes rules through
methods that run on that loop and wait for it. Only 127.0.0.1 is ever listened on or dialled.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zkserver.proto.election_codec import PROTOCOL_VERSION_V1, PROTOCOL_VERSION_V2, InitialMessage

HOST = "127.0.0.1"
CHUNK = 65536
RTO_MS = 200.0  # Linux's minimum retransmission timeout
MAX_RETRANSMITS = 6
_LONG = struct.Struct(">q")  # an initial message starts with the protocol version (or, before 3.5, the sid)
_INITIAL_REST = struct.Struct(">qi")  # then sid, address length
_MAX_INITIAL_ADDRESS = 4096
_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


@dataclass
class Rule:
    """What happens to the bytes one member sends another."""

    blackhole: bool = False
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0

    def describe(self) -> str:
        parts = ["blackhole"] if self.blackhole else []
        if self.delay_ms or self.jitter_ms:
            parts.append(f"delay {self.delay_ms:g}±{self.jitter_ms:g} ms")
        if self.loss:
            parts.append(f"loss {self.loss:.0%}")
        return ", ".join(parts) or "clear"


@dataclass(frozen=True)
class Route:
    """Where member `viewer` reaches member `target`: the two listeners in front of it."""

    quorum_port: int
    election_port: int


@dataclass
class LinkStats:
    connections: int = 0
    bytes: int = 0  # delivered
    queued: int = 0  # read from the sender, not delivered yet (delayed or held)
    resets: int = 0
    retransmits: int = 0


class _Pair:
    """The rule for bytes from one member to another, and who waits on it."""

    def __init__(self) -> None:
        self.rule = Rule()
        self.open = asyncio.Event()
        self.open.set()
        self.changed = asyncio.Event()
        self.conns: set[_Conn] = set()
        self.stats = LinkStats()

    def set(self, rule: Rule) -> None:
        self.rule = rule
        if rule.blackhole:
            self.open.clear()
        else:
            self.open.set()
        self.changed.set()
        self.changed = asyncio.Event()


class _Direction:
    """Bytes read from one socket, queued with the time each is due at the other."""

    def __init__(self, conn: _Conn, pair: _Pair, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter | None):
        self.conn = conn
        self.pair = pair
        self.reader = reader
        self.writer = writer
        self.queue: deque[tuple[float, bytes | None]] = deque()  # None: the source closed
        self.ready = asyncio.Event()
        self.last_due = 0.0

    def push(self, data: bytes | None, now: float, rng: random.Random, rto_ms: float) -> None:
        rule = self.pair.rule
        due = now + max(0.0, rule.delay_ms + rng.uniform(-rule.jitter_ms, rule.jitter_ms)) / 1000
        if data is not None and rule.loss:
            rto, tries = rto_ms, 0
            while tries < MAX_RETRANSMITS and rng.random() < rule.loss:
                due += rto / 1000
                rto, tries = rto * 2, tries + 1
            self.pair.stats.retransmits += tries
        self.last_due = max(self.last_due, due)
        self.queue.append((self.last_due, data))
        self.pair.stats.queued += len(data or b"")
        self.ready.set()

    async def pump_in(self, first: Callable[[asyncio.StreamReader], Any] | None) -> None:
        loop = asyncio.get_running_loop()
        net = self.conn.net
        if first is not None:
            head = await first(self.reader)
            self.push(head, loop.time(), net.rng, net.rto_ms)
        while True:
            data = await self.reader.read(CHUNK)
            self.push(data or None, loop.time(), net.rng, net.rto_ms)
            if not data:
                return

    async def pump_out(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            due, data = self.queue[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.pair.open.wait()
            self.queue.popleft()
            assert self.writer is not None
            if data is None:
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                return
            self.writer.write(data)
            self.pair.stats.bytes += len(data)
            self.pair.stats.queued -= len(data)
            await self.writer.drain()


class _Conn:
    """One proxied connection: the dialler's socket, ours to the target, two directions."""

    def __init__(self, net: FaultNetwork, link: _Listener, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.net = net
        self.link = link
        self.down_reader, self.down_writer = reader, writer
        self.up_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.directions: list[_Direction] = []
        self.done = False

    async def run(self) -> None:
        forward, backward = self.net.pair(self.link.src, self.link.dst), self.net.pair(self.link.dst, self.link.src)
        forward.conns.add(self)
        backward.conns.add(self)
        forward.stats.connections += 1
        clean = False
        try:
            # The dialler's bytes are read (and held) at once; the connection to the target is
            # opened once a SYN and its answer would both get through.
            out = _Direction(self, forward, self.down_reader, None)
            self.directions.append(out)
            first = self.link.rewrite if self.link.kind == "election" else None
            self.tasks.append(asyncio.ensure_future(out.pump_in(first)))
            if not await self._connectable(forward, backward, self.tasks[0]):
                return  # the dialler gave up before the connection was up: nothing reaches the target
            try:
                up_reader, self.up_writer = await asyncio.open_connection(HOST, self.link.target)
            except OSError:
                return  # the target is down: the dialler is reset, as a refused connection
            out.writer = self.up_writer
            back = _Direction(self, backward, up_reader, self.down_writer)
            self.directions.append(back)
            self.tasks += [asyncio.ensure_future(c) for c in (out.pump_out(), back.pump_in(None), back.pump_out())]
            clean = await self._until_finished()
        finally:
            forward.conns.discard(self)
            backward.conns.discard(self)
            self.finish(rst=not clean)

    @staticmethod
    async def _connectable(forward: _Pair, backward: _Pair, reading: asyncio.Task[None]) -> bool:
        while not (forward.open.is_set() and backward.open.is_set()):
            if reading.done():
                return False
            waiters = [asyncio.ensure_future(p.changed.wait()) for p in (forward, backward)]
            await asyncio.wait([*waiters, reading], return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
        return not (reading.done() and reading.exception() is not None)

    async def _until_finished(self) -> bool:
        """Run until both ends have been delivered (True) or a read or write failed (False)."""
        pending = set(self.tasks)
        outs = {self.tasks[1], self.tasks[3]}
        while outs & pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(t.exception() is not None for t in done):
                return False
        return True

    def finish(self, rst: bool = True) -> None:
        """Close both sockets, with a reset unless both ends were delivered (no-op once done)."""
        if self.done:
            return
        self.done = True
        for task in self.tasks:
            task.cancel()
        for direction in self.directions:  # what was never delivered is gone with the connection
            direction.pair.stats.queued -= sum(len(data or b"") for _, data in direction.queue)
            direction.queue.clear()
        for writer in (self.down_writer, self.up_writer):
            if writer is None:
                continue
            if not rst:
                writer.close()
                continue
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
            writer.transport.abort()


class _BadInitial(Exception):
    pass


@dataclass
class _Listener:
    src: int  # the member that dials through this listener
    dst: int  # the member behind it
    kind: str  # "quorum" | "election"
    target: int  # dst's real port
    reply_port: int = 0  # election: where dst reaches src (the listener in front of src for dst)
    server: asyncio.AbstractServer | None = None
    port: int = 0
    conns: set[asyncio.Task[None]] = field(default_factory=set)

    async def rewrite(self, reader: asyncio.StreamReader) -> bytes:
        """Read the dialler's initial message; give it with the address dst must dial back at."""
        first = await reader.readexactly(_LONG.size)
        (version,) = _LONG.unpack(first)
        if version not in (PROTOCOL_VERSION_V1, PROTOCOL_VERSION_V2):
            return first  # the pre-3.5 form (the first long is the sid): no address to rewrite
        sid, length = _INITIAL_REST.unpack(await reader.readexactly(_INITIAL_REST.size))
        if not 0 <= length <= _MAX_INITIAL_ADDRESS:
            raise _BadInitial(f"initial message with an address of {length} bytes")
        await reader.readexactly(length)
        return InitialMessage(sid, ((HOST, self.reply_port),), version).encode()


class FaultNetwork:
    """Every proxy of one ensemble, and the rules the nemesis sets on them."""

    def __init__(self, seed: int = 0, rto_ms: float = RTO_MS):
        self.rng = random.Random(seed)
        self.rto_ms = rto_ms
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fault-network", daemon=True)
        self._thread.start()
        self._pairs: dict[tuple[int, int], _Pair] = {}
        self._listeners: list[_Listener] = []
        self.routes: dict[tuple[int, int], Route] = {}

    # ------------------------------------------------------------ set-up

    def route(self, members: Mapping[int, tuple[int, int]]) -> dict[tuple[int, int], Route]:
        """members: sid -> (quorum port, election port). Opens a listener pair for each ordered
        pair of members; returns (viewer, target) -> the Route viewer must be given for target."""
        return self._run(self._route(dict(members)))

    async def _route(self, members: dict[int, tuple[int, int]]) -> dict[tuple[int, int], Route]:
        by_pair: dict[tuple[int, int], dict[str, _Listener]] = {}
        for src, dst in itertools.permutations(sorted(members), 2):
            quorum, election = members[dst]
            by_pair[(src, dst)] = {kind: await self._listen(_Listener(src, dst, kind, port))
                                   for kind, port in (("quorum", quorum), ("election", election))}
        for (src, dst), pair in by_pair.items():
            pair["election"].reply_port = by_pair[(dst, src)]["election"].port
            self.routes[(src, dst)] = Route(pair["quorum"].port, pair["election"].port)
        return dict(self.routes)

    async def _listen(self, link: _Listener) -> _Listener:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(_Conn(self, link, reader, writer).run())
            link.conns.add(task)
            task.add_done_callback(link.conns.discard)

        link.server = await asyncio.start_server(accepted, HOST, 0)
        link.port = link.server.sockets[0].getsockname()[1]
        self._listeners.append(link)
        return link

    def pair(self, src: int, dst: int) -> _Pair:
        p = self._pairs.get((src, dst))
        if p is None:
            p = self._pairs[(src, dst)] = _Pair()
        return p

    def close(self) -> None:
        """Reset every connection, close every listener, stop the loop thread."""
        if self.loop.is_closed():
            return
        self._run(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _close(self) -> None:
        for p in self._pairs.values():
            for conn in list(p.conns):
                conn.finish()
        tasks = [t for link in self._listeners for t in link.conns]
        for link in self._listeners:
            if link.server is not None:
                link.server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> FaultNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ faults (from the test thread)

    def set_rule(self, src: int, dst: int, **changes: Any) -> None:
        """Change what happens to the bytes src sends dst (Rule's fields)."""
        self._call(lambda: self._set(src, dst, changes))

    def _set(self, src: int, dst: int, changes: dict[str, Any]) -> None:
        p = self.pair(src, dst)
        p.set(Rule(**{**p.rule.__dict__, **changes}))

    def blackhole(self, src: int, dst: int) -> None:
        """src's bytes no longer reach dst (one way)."""
        self.set_rule(src, dst, blackhole=True)

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """No bytes between members of different groups, either way."""
        sets = [set(g) for g in groups]
        pairs = [(a, b) for g, h in itertools.permutations(sets, 2) for a in g for b in h]
        self._call(lambda: [self._set(a, b, {"blackhole": True}) for a, b in pairs])

    def cut(self, pairs: Iterable[tuple[int, int]]) -> None:
        """No bytes between each given pair, either way."""
        both = [(a, b) for x, y in pairs for a, b in ((x, y), (y, x))]
        self._call(lambda: [self._set(a, b, {"blackhole": True}) for a, b in both])

    def slow(self, pairs: Iterable[tuple[int, int]], delay_ms: float, jitter_ms: float = 0.0) -> None:
        todo = list(pairs)
        self._call(lambda: [self._set(a, b, {"delay_ms": delay_ms, "jitter_ms": jitter_ms}) for a, b in todo])

    def lossy(self, pairs: Iterable[tuple[int, int]], loss: float) -> None:
        todo = list(pairs)
        self._call(lambda: [self._set(a, b, {"loss": loss}) for a, b in todo])

    def reset(self, pairs: Iterable[tuple[int, int]]) -> int:
        """Reset every connection carrying bytes of the given pairs; how many were reset."""
        todo = list(pairs)

        def run() -> int:
            conns = {c for a, b in todo for c in self.pair(a, b).conns}
            for a, b in todo:
                self.pair(a, b).stats.resets += sum(1 for c in conns if c in self.pair(a, b).conns)
            for conn in conns:
                conn.finish()
            return len(conns)

        return self._call(run)

    def heal(self) -> None:
        """Every rule back to clear; held bytes are delivered."""
        self._call(lambda: [p.set(Rule()) for p in self._pairs.values()])

    def rules(self) -> dict[tuple[int, int], str]:
        """The pairs whose rule is not clear, described."""
        return self._call(lambda: {k: p.rule.describe() for k, p in sorted(self._pairs.items())
                                   if p.rule != Rule()})

    def stats(self) -> dict[tuple[int, int], LinkStats]:
        return self._call(lambda: {k: LinkStats(**p.stats.__dict__) for k, p in sorted(self._pairs.items())})

    # ------------------------------------------------------------ the loop

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _call(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        async def call() -> Any:
            return fn()
        return self._run(call(), timeout)
