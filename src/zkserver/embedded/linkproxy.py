"""A userspace TCP proxy on every directed peer link of an embedded ensemble, so that a member
can be cut off from its peers while it keeps running.

Theory of operation
-------------------
Member A reaches member B's quorum and election ports only through two listeners of this
proxy that belong to the directed link A->B: A's zoo.cfg names B at those ports, and names A
itself at its real ports, which it binds. A connection accepted on a link's listener is paired
with a new connection to the real port behind it, and bytes are copied both ways; a side whose
peer cannot take more (asyncio's write buffer above its high-water mark) stops being read.

The election port has a dial-back rule: a dialler's initial message names its own election
address, and a peer with a larger sid closes the connection and dials back there. That address
is A's real port, which would bypass the proxy, so on an election link A->B the proxy rewrites
it, in the dialler's first message only, to its own listener for B->A. Nothing else is read or
changed. (The pre-3.5 form names no address; the peer then dials back the address in its own
config, which is the proxy's already.)

`isolate(myid)` cuts every link from and to that member, both directions, as a partition does:
bytes are dropped, connections stay open, a close on one side is not passed on, and new
connections are accepted and held without an upstream. Nobody learns of the cut except by its
own time-outs. `heal(myid)` lets traffic through again; a connection that lost bytes (or never
had an upstream, or lost one side) is reset, since a TCP stream cannot go on after a gap.

`set_down(myid)` says the member is not running: its connections are reset and new ones are
closed at once - except on cut links, where the far side keeps hearing nothing. In-process that
makes a kill a crash: nothing the member still writes while it shuts down reaches a peer.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..proto.election_codec import InitialMessage
from ..shell.sockopts import no_delay

log = logging.getLogger("zkserver.embedded.proxy")

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 5.0
_HEADER = struct.Struct(">qqi")  # protocol version, sid, address length
_ADDRESS_MAX = 65536  # a longer address is not ours to judge: passed on, the member refuses it


@dataclass(frozen=True)
class Link:
    """The connections member `src` opens to member `dst`'s `kind` port ("quorum" or "election")."""

    src: int
    dst: int
    kind: str


class _InitialRewrite:
    """Collects the dialler's initial message on an election link and swaps its address."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.buf = bytearray()

    def feed(self, data: bytes) -> bytes | None:
        """The bytes to pass on once the message is complete (None: not yet)."""
        self.buf += data
        if len(self.buf) < 8:
            return None
        (version,) = struct.unpack_from(">q", self.buf)
        if version >= 0:  # the pre-3.5 form: the sid alone
            return bytes(self.buf)
        if len(self.buf) < _HEADER.size:
            return None
        _, sid, length = _HEADER.unpack_from(self.buf)
        if not 0 <= length <= _ADDRESS_MAX:
            return bytes(self.buf)
        end = _HEADER.size + length
        if len(self.buf) < end:
            return None
        return InitialMessage(sid, (self.address,), version).encode() + bytes(self.buf[end:])


class _Leg(asyncio.Protocol):
    """One of a pipe's two connections: to the dialler (accepted) or to the target (dialled)."""

    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        no_delay(transport)
        if self is self.pipe.dialler:
            self.pipe.proxy._route(self.pipe)

    def data_received(self, data: bytes) -> None:
        self.pipe.carry(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pipe.leg_lost(self, exc)

    def pause_writing(self) -> None:
        other = self.pipe.other(self)
        if other is not None:
            other.pause()

    def resume_writing(self) -> None:
        other = self.pipe.other(self)
        if other is not None:
            other.resume()

    def pause(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.lost and not self.transport.is_closing():
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()


class _Pipe:
    """One proxied connection on a link: the dialler's leg and, once connected, the target's."""

    def __init__(self, proxy: LinkProxy, link: Link, rewrite: _InitialRewrite | None) -> None:
        self.proxy = proxy
        self.link = link
        self.dialler = _Leg(self)
        self.target: _Leg | None = None
        self.rewrite = rewrite
        self.broken = False  # bytes were dropped, or a close was not passed on: reset at heal
        self.done = False
        self.connecting: asyncio.Task[None] | None = None

    def other(self, leg: _Leg) -> _Leg | None:
        return self.target if leg is self.dialler else self.dialler

    def touches(self, myid: int) -> bool:
        return myid in (self.link.src, self.link.dst)

    def leg_of(self, myid: int) -> _Leg | None:
        """The leg facing member `myid`: the dialler is src, the target is dst."""
        return self.dialler if myid == self.link.src else self.target

    async def connect(self, port: int) -> None:
        self.dialler.pause()  # nothing is read until there is somewhere to put it
        loop = asyncio.get_running_loop()
        target = _Leg(self)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: target, HOST, port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            if self.proxy.cut(self.link):
                self.broken = True  # the dialler hears nothing now; heal resets it
            else:
                self.reset()
            return
        if self.done or self.dialler.lost:
            target.close()
            return
        self.target = target
        self.dialler.resume()

    def carry(self, leg: _Leg, data: bytes) -> None:
        if self.proxy.cut(self.link):
            self.broken = True
            return
        if leg is self.dialler and self.rewrite is not None:
            out = self.rewrite.feed(data)
            if out is None:
                return
            self.rewrite, data = None, out
        other = self.other(leg)
        if other is not None:
            other.write(data)

    def leg_lost(self, leg: _Leg, exc: Exception | None) -> None:
        other = self.other(leg)
        if self.proxy.cut(self.link):
            self.broken = True  # a partition does not carry the close either
        elif other is not None and exc is None:
            other.close()  # flushes what is still buffered for it
        elif other is not None:
            other.abort()
        if self.dialler.lost and (self.target is None or self.target.lost):
            self.done = True
            self.proxy.pipes.discard(self)

    def reset(self) -> None:
        self.done = True
        task = self.connecting
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self.dialler.abort()
        if self.target is not None:
            self.target.abort()
        self.proxy.pipes.discard(self)


class LinkProxy:
    """Listeners for directed peer links, with isolate/heal and down/up per member: see the module
    docstring. Every method runs on the loop the proxy was opened on."""

    def __init__(self, target: Callable[[int, str], int | None]) -> None:
        self.ports: dict[Link, int] = {}
        self.target = target  # (myid, kind) -> the port the member really listens on, if known
        self.isolated: set[int] = set()
        self.down: set[int] = set()
        self.pipes: set[_Pipe] = set()
        self._servers: list[asyncio.AbstractServer] = []

    async def open(self, links: Iterable[Link]) -> None:
        """Bind a listener on a free port for each link (`port(link)` then says where)."""
        loop = asyncio.get_running_loop()
        for link in links:
            server = await loop.create_server(lambda link=link: self._accept(link), HOST, 0)
            self._servers.append(server)
            self.ports[link] = server.sockets[0].getsockname()[1]

    def port(self, src: int, dst: int, kind: str) -> int:
        return self.ports[Link(src, dst, kind)]

    def cut(self, link: Link) -> bool:
        return link.src in self.isolated or link.dst in self.isolated

    def _accept(self, link: Link) -> _Leg:
        rewrite = None
        if link.kind == "election":
            rewrite = _InitialRewrite((HOST, self.port(link.dst, link.src, "election")))
        pipe = _Pipe(self, link, rewrite)
        self.pipes.add(pipe)
        return pipe.dialler

    def _route(self, pipe: _Pipe) -> None:
        """A dialler's connection is up: hold it, refuse it, or connect it to its member."""
        link = pipe.link
        port = self.target(link.dst, link.kind)
        if self.cut(link):
            pipe.broken = True  # held: no upstream until heal resets it
        elif link.src in self.down or link.dst in self.down or not port:
            pipe.reset()
        else:
            pipe.connecting = asyncio.get_running_loop().create_task(pipe.connect(port))

    # ------------------------------------------------------------ faults

    def isolate(self, myid: int) -> None:
        """Cut every link from and to `myid`: silence both ways, from now on."""
        log.info("member %d cut off from its peers", myid)
        self.isolated.add(myid)

    def heal(self, myid: int) -> None:
        """Let `myid`'s links carry traffic again; reset the connections the cut broke."""
        if myid not in self.isolated:
            return
        log.info("member %d reconnected to its peers", myid)
        self.isolated.discard(myid)
        for pipe in list(self.pipes):
            if not self.cut(pipe.link) and (pipe.broken or pipe.target is None or pipe.target.lost
                                            or pipe.dialler.lost):
                pipe.reset()

    def set_down(self, myid: int) -> None:
        """`myid` stopped running: reset its connections (the far side of a cut link hears nothing)."""
        self.down.add(myid)
        for pipe in list(self.pipes):
            if not pipe.touches(myid):
                continue
            if self.cut(pipe.link):
                leg = pipe.leg_of(myid)
                if leg is not None:
                    leg.abort()
            else:
                pipe.reset()

    def set_up(self, myid: int) -> None:
        self.down.discard(myid)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for pipe in list(self.pipes):
            pipe.reset()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
