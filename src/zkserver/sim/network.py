"""The simulated network: streams (TCP) and datagrams between named endpoints, with faults.

Theory of operation. Endpoints are names ("m1", "c3"). Each directed pair of endpoints is a
`_Link` with a latency profile (base + exponential jitter + an occasional heavy-tailed delay,
times a slow-down factor), a datagram loss rate and a block count (partitions; a one-way
partition blocks one direction only).

A stream (streams.py's contract) is a `Connection` with two ends; each end sends through a
`_Pipe`, a queue of entries (SYN, OPEN, DATA, CLOSE) with due times that never decrease, so
what one end sends arrives in order. One scheduler timer per pipe delivers every entry due;
a send may be cut into chunks and entries due together may be merged into one `on_data`, so
receivers meet every framing case. While a link is blocked its pipes stall (TCP retransmits)
and resume when it heals; a connect into a partition fails when its connect timeout fires.
The dialing end's SYN travels in its pipe too: data sent before the connection opens follows
it, and the accepting end's OPEN travels back in the other pipe ahead of any reply.

A crashed endpoint's ends go silent at once (no more callbacks into a dead process). A
process crash lets the kernel send what was queued, then a CLOSE (FIN); a power cut loses
unsent bytes and says nothing: the peer learns only when something it sends reaches the
endpoint once it is up again (a RST), or from its own timeouts. A reset (a fault) drops
what was not delivered and closes both ends.

Datagrams (`send_message`, the election channel) are delivered in order per directed link,
or dropped: by loss, a partition at send or delivery time, or a receiver that is not there.

No callback ever runs inside a send, close or connect: everything is delivered by scheduler
events, so the code on one endpoint never runs inside another's. Randomness comes from the
scheduler's named streams (latency, loss, chunking apart), so a seed replays exactly.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from .scheduler import Scheduler, Timer
from .streams import Stream, StreamHandler
from .trace import Trace

Accept = Callable[[str, Stream], StreamHandler | None]  # (peer endpoint, our new end) -> its handler
Receive = Callable[[str, bytes], None]  # (sender endpoint, payload)

SYN, OPEN, DATA, CLOSE = 0, 1, 2, 3


@dataclass
class LinkProfile:
    base_ms: float = 1.0
    jitter_ms: float = 1.0  # mean of the exponential part
    tail_p: float = 0.0  # probability that a delivery also takes a heavy-tailed delay
    tail_ms: float = 50.0  # scale of that delay (Pareto, capped at 20x)
    loss: float = 0.0  # datagrams only: streams do not lose bytes, they stall or reset


@dataclass
class NetConfig:
    link: LinkProfile = field(default_factory=LinkProfile)
    connect_timeout_ms: int = 2000
    chunk_p: float = 0.3  # probability that a send is cut into chunks
    max_chunks: int = 4
    merge_p: float = 0.5  # probability that entries due together arrive as one on_data


class _Link:
    __slots__ = ("blocks", "dst", "msg_due", "msgs", "name", "profile", "slow", "src")

    def __init__(self, src: str, dst: str, profile: LinkProfile):
        self.src, self.dst = src, dst
        self.name = f"{src}>{dst}"
        self.profile = profile
        self.slow = 1.0
        self.blocks = 0
        self.msg_due = 0
        self.msgs: deque[tuple[Timer, str, bytes]] = deque()  # datagrams in flight, in delivery order


class _Pipe:
    """One direction of a connection: entries [due, kind, data] toward the end `to`."""

    __slots__ = ("due", "link", "queue", "timer", "to")

    def __init__(self, link: _Link, to: _End):
        self.link = link
        self.to = to
        self.queue: deque[tuple[int, int, bytes]] = deque()
        self.timer: Timer | None = None
        self.due = 0

    def clear(self) -> None:
        self.queue.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _End:
    """One end of a connection: the Stream its owner holds."""

    __slots__ = ("alive", "can_send", "conn", "handler", "local", "net", "opened", "orphan", "out", "remote")

    def __init__(self, net: Network, conn: Connection, local: str, remote: str, handler: StreamHandler | None):
        self.net = net
        self.conn = conn
        self.local, self.remote = local, remote
        self.handler = handler
        self.out: _Pipe
        self.alive = handler is not None  # its handler may still be called
        self.can_send = handler is not None
        self.opened = False
        self.orphan = False  # its endpoint lost power: a packet reaching it once it is up gets a RST

    def send(self, data: bytes) -> None:
        if self.can_send and data:
            self.net._send_data(self, data)

    def close(self) -> None:
        if self.can_send:
            self.can_send = False
            self.alive = False
            self.net._push(self.out, CLOSE, b"")
            self.net.trace.note(self.out.link.name, f"{self.conn.label} close by {self.local}")

    def __repr__(self) -> str:
        return f"<stream {self.local} of {self.conn.label}>"


class Connection:
    __slots__ = ("a", "b", "label", "n", "port", "timeout")

    def __init__(self, n: int, label: str, port: str):
        self.n = n
        self.label = label
        self.port = port
        self.a: _End  # the dialing end
        self.b: _End  # the accepting end
        self.timeout: Timer | None = None

    def ends(self) -> tuple[_End, _End]:
        return self.a, self.b

    @property
    def live(self) -> bool:
        return self.a.alive or self.b.alive


class Network:
    def __init__(self, scheduler: Scheduler, trace: Trace, config: NetConfig | None = None):
        self.scheduler = scheduler
        self.trace = trace
        self.config = config or NetConfig()
        self._latency_rng = scheduler.rng("net.latency")
        self._loss_rng = scheduler.rng("net.loss")
        self._chunk_rng = scheduler.rng("net.chunks")
        self.links: dict[tuple[str, str], _Link] = {}
        self.listeners: dict[tuple[str, str], Accept] = {}
        self.receivers: dict[tuple[str, str], Receive] = {}
        self.down: set[str] = set()  # endpoints whose process is not running
        self.dark: set[str] = set()  # ... and of those, the machines without power: no RST, no answer
        self.conns: dict[int, Connection] = {}
        self._next_conn = 1
        self._blocks: dict[int, list[_Link]] = {}
        self._next_block = 1
        self._stalled: set[_Pipe] = set()
        self.stats = {"bytes": 0, "messages": 0, "dropped": 0, "connects": 0, "resets": 0}

    # ------------------------------------------------------------ links

    def link(self, src: str, dst: str) -> _Link:
        link = self.links.get((src, dst))
        if link is None:
            link = self.links[(src, dst)] = _Link(src, dst, self.config.link)
        return link

    def set_profile(self, src: str, dst: str, profile: LinkProfile) -> None:
        self.link(src, dst).profile = profile

    def set_slow(self, src: str, dst: str, factor: float) -> None:
        self.link(src, dst).slow = factor
        self.trace.note(f"{src}>{dst}", f"slow x{factor:g}")

    def latency(self, link: _Link) -> int:
        p, r = link.profile, self._latency_rng
        ms = p.base_ms + (r.expovariate(1.0 / p.jitter_ms) if p.jitter_ms > 0 else 0.0)
        if p.tail_p and r.random() < p.tail_p:
            ms += min(p.tail_ms * r.paretovariate(1.5), 20 * p.tail_ms)
        return int(ms * link.slow)

    # ------------------------------------------------------------ partitions

    def block(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Stop traffic on each directed (src, dst) pair until `unblock(token)`; blocks of
        overlapping partitions add up, so ending one leaves the others in force."""
        token = self._next_block
        self._next_block += 1
        links = [self.link(s, d) for s, d in pairs]
        for link in links:
            link.blocks += 1
        self._blocks[token] = links
        return token

    def unblock(self, token: int) -> None:
        for link in self._blocks.pop(token, ()):
            link.blocks -= 1
        self._restart_stalled()

    def heal(self) -> None:
        """End every partition and slow-down, the heavy tail of the latencies and datagram
        loss: after a heal the network is a calm one, so that liveness can be judged with fixed
        timeouts (the real election channel is TCP, which loses nothing once it connects)."""
        self.config.link = replace(self.config.link, tail_p=0.0, loss=0.0)
        for link in self.links.values():
            link.blocks = 0
            link.slow = 1.0
            link.profile = replace(link.profile, tail_p=0.0, loss=0.0)
        self._blocks.clear()
        for conn in self.connections():
            for end in conn.ends():
                self._retime(end.out)
        for link in self.links.values():
            self._retime_messages(link)
        self._restart_stalled()

    def _retime_messages(self, link: _Link) -> None:
        """Datagrams held up by a slow or heavy-tailed delivery arrive as on the calm network,
        still in order (one held for seconds would hold up every later one on its link)."""
        now, due = self.scheduler.now, 0
        msgs = link.msgs
        for i, (timer, channel, payload) in enumerate(msgs):
            due = max(due, min(timer.at, now + self.latency(link)))
            if due != timer.at:
                timer.cancel()
                timer = self.scheduler.call_at(due, self._deliver_message, link, channel, payload)
            msgs[i] = (timer, channel, payload)
        link.msg_due = due

    def _retime(self, pipe: _Pipe) -> None:
        """Bytes held up by a slow or heavy-tailed delivery arrive as on the calm network,
        still in order."""
        now, due = self.scheduler.now, 0
        queue = pipe.queue
        for i, (at, kind, data) in enumerate(queue):
            due = max(due, min(at, now + self.latency(pipe.link)))
            queue[i] = (due, kind, data)
        pipe.due = due
        if pipe.timer is not None:
            pipe.timer.cancel()
            pipe.timer = None
            self._arm(pipe)

    def blocked(self, src: str, dst: str) -> bool:
        link = self.links.get((src, dst))
        return link is not None and link.blocks > 0

    def _restart_stalled(self) -> None:
        for pipe in sorted(self._stalled, key=lambda p: (p.to.conn.label, p.to.local)):
            if pipe.link.blocks == 0:
                self._stalled.discard(pipe)
                if pipe.queue:
                    head_due = max(pipe.queue[0][0], self.scheduler.now + self.latency(pipe.link))
                    pipe.queue[0] = (head_due, *pipe.queue[0][1:])
                    pipe.due = max(pipe.due, head_due)
                    self._arm(pipe)

    # ------------------------------------------------------------ endpoints

    def crash(self, endpoint: str, power: bool) -> None:
        """The endpoint's process is gone (`power`: the whole machine): its ends go silent,
        its listeners and receivers are dropped."""
        self.down.add(endpoint)
        if power:
            self.dark.add(endpoint)
        for key in [k for k in self.listeners if k[0] == endpoint]:
            del self.listeners[key]
        for key in [k for k in self.receivers if k[0] == endpoint]:
            del self.receivers[key]
        for conn in list(self.conns.values()):
            for end in conn.ends():
                if end.local != endpoint or not (end.alive or end.can_send):
                    continue
                end.alive = False
                if power:
                    end.can_send = False
                    end.orphan = True
                    end.out.clear()
                elif end.can_send:
                    end.can_send = False
                    self._push(end.out, CLOSE, b"")
        self.trace.note(endpoint, f"net: {'power lost' if power else 'process gone'}")

    def revive(self, endpoint: str) -> None:
        self.down.discard(endpoint)
        self.dark.discard(endpoint)

    def up(self, endpoint: str) -> bool:
        return endpoint not in self.down

    def listen(self, endpoint: str, port: str, accept: Accept) -> None:
        self.listeners[(endpoint, port)] = accept

    def unlisten(self, endpoint: str, port: str) -> None:
        self.listeners.pop((endpoint, port), None)

    def on_message(self, endpoint: str, channel: str, receive: Receive) -> None:
        self.receivers[(endpoint, channel)] = receive

    # ------------------------------------------------------------ streams

    def connect(self, src: str, dst: str, port: str, handler: StreamHandler) -> Stream:
        """Dial dst's `port`: `handler.on_open` when accepted, `on_close` when refused (nothing
        listens, dst is down) or when no answer came within the connect timeout."""
        n = self._next_conn
        self._next_conn += 1
        conn = Connection(n, f"#{n} {src}>{dst}:{port}", port)
        a = conn.a = _End(self, conn, src, dst, handler)
        b = conn.b = _End(self, conn, dst, src, None)
        a.out = _Pipe(self.link(src, dst), b)
        b.out = _Pipe(self.link(dst, src), a)
        self.conns[n] = conn
        self.stats["connects"] += 1
        self._push(a.out, SYN, b"")
        conn.timeout = self.scheduler.call_later(self.config.connect_timeout_ms, self._connect_timeout, conn)
        self.trace.note(a.out.link.name, f"{conn.label} connect")
        return a

    def in_flight(self, endpoint: str, port: str) -> bool:
        """Bytes on their way to or from `endpoint` on a live connection to some `port`."""
        return any(c.port == port and c.live and endpoint in (c.a.local, c.b.local) and (c.a.out.queue or c.b.out.queue)
                   for c in self.conns.values())

    def connections(self) -> list[Connection]:
        """The connections still open at some end, oldest first."""
        live = [c for c in self.conns.values() if c.live]
        self.conns = {c.n: c for c in live}
        return live

    def reset(self, conn: Connection, why: str = "reset") -> None:
        """Both ends get on_close soon; nothing undelivered arrives."""
        self.stats["resets"] += 1
        self.trace.note(conn.a.out.link.name, f"{conn.label} {why}")
        for end in conn.ends():
            end.can_send = False
            end.out.clear()
            self._stalled.discard(end.out)
            if end.alive:
                self.scheduler.call_later(self.latency(end.out.link), self._closed, end)

    def _send_data(self, end: _End, data: bytes) -> None:
        self.stats["bytes"] += len(data)
        cfg = self.config
        rng = self._chunk_rng
        if len(data) > 1 and cfg.max_chunks > 1 and rng.random() < cfg.chunk_p:
            cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, cfg.max_chunks - 1))))
            bounds = [0, *cuts, len(data)]
            for lo, hi in itertools.pairwise(bounds):
                self._push(end.out, DATA, data[lo:hi])
        else:
            self._push(end.out, DATA, data)

    def _push(self, pipe: _Pipe, kind: int, data: bytes) -> None:
        due = max(pipe.due, self.scheduler.now + self.latency(pipe.link))
        pipe.due = due
        pipe.queue.append((due, kind, data))
        if pipe.timer is None and pipe not in self._stalled:
            self._arm(pipe)

    def _arm(self, pipe: _Pipe) -> None:
        if pipe.timer is None and pipe.queue:
            pipe.timer = self.scheduler.call_at(pipe.queue[0][0], self._flush, pipe)

    def _flush(self, pipe: _Pipe) -> None:
        pipe.timer = None
        if pipe.link.blocks:
            self._stalled.add(pipe)
            return
        now, queue, to = self.scheduler.now, pipe.queue, pipe.to
        while queue and queue[0][0] <= now:
            _, kind, data = queue.popleft()
            if kind == DATA:
                while queue and queue[0][0] <= now and queue[0][1] == DATA \
                        and self._chunk_rng.random() < self.config.merge_p:
                    data += queue.popleft()[2]
            self._deliver(pipe, to, kind, data)
        self._arm(pipe)

    def _deliver(self, pipe: _Pipe, to: _End, kind: int, data: bytes) -> None:
        place = pipe.link.name
        label = to.conn.label
        if to.orphan and not to.alive:
            if to.local not in self.dark:  # the rebooted machine knows nothing of it: RST
                self.trace.note(place, f"{label} reaches rebooted {to.local}: reset")
                self.reset(to.conn, "reset by rebooted peer")
            pipe.clear()
            return
        if kind == SYN:
            self._syn(pipe, to)
        elif not to.alive:
            return
        elif kind == DATA:
            self.trace.note(place, f"{label} {len(data)}B")
            to.handler.on_data(data)  # type: ignore[union-attr]
        elif kind == OPEN:
            to.opened = True
            if to.conn.timeout is not None:
                to.conn.timeout.cancel()
            self.trace.note(place, f"{label} open")
            to.handler.on_open()  # type: ignore[union-attr]
        else:
            self._closed(to)

    def _syn(self, pipe: _Pipe, b: _End) -> None:
        conn = b.conn
        if b.local in self.dark:  # no answer at all: the dialer's connect timeout ends it
            pipe.clear()
            return
        accept = self.listeners.get((b.local, conn.port)) if self.up(b.local) else None
        handler = accept(b.remote, b) if accept is not None else None
        if handler is None:
            self.trace.note(pipe.link.name, f"{conn.label} refused")
            pipe.clear()
            self._push(b.out, CLOSE, b"")
            return
        b.handler = handler
        b.alive = b.can_send = b.opened = True
        self._push(b.out, OPEN, b"")
        self.trace.note(pipe.link.name, f"{conn.label} accepted")
        handler.on_open()

    def _connect_timeout(self, conn: Connection) -> None:
        conn.timeout = None
        if conn.a.opened or not conn.a.alive:
            return
        self.trace.note(conn.a.out.link.name, f"{conn.label} connect timed out")
        for end in conn.ends():
            end.can_send = False
            end.out.clear()
            self._stalled.discard(end.out)
            self._closed(end)

    def _closed(self, end: _End) -> None:
        if end.alive:
            end.alive = False
            end.can_send = False
            end.out.clear()
            self._stalled.discard(end.out)
            end.handler.on_close()  # type: ignore[union-attr]

    # ------------------------------------------------------------ datagrams

    def send_message(self, src: str, dst: str, channel: str, payload: bytes) -> None:
        link = self.link(src, dst)
        self.stats["messages"] += 1
        p = link.profile
        if link.blocks or (p.loss and self._loss_rng.random() < p.loss):
            self.stats["dropped"] += 1
            self.trace.note(link.name, f"msg {channel} {len(payload)}B dropped{' (partition)' if link.blocks else ''}")
            return
        due = link.msg_due = max(link.msg_due, self.scheduler.now + self.latency(link))
        link.msgs.append((self.scheduler.call_at(due, self._deliver_message, link, channel, payload), channel, payload))

    def _deliver_message(self, link: _Link, channel: str, payload: bytes) -> None:
        link.msgs.popleft()
        receive = self.receivers.get((link.dst, channel))
        if link.blocks or receive is None or not self.up(link.dst):
            self.stats["dropped"] += 1
            self.trace.note(link.name, f"msg {channel} {len(payload)}B lost at delivery")
            return
        self.trace.note(link.name, f"msg {channel} {len(payload)}B")
        receive(link.src, payload)
