"""The quorum port over asyncio: learners' connections to a leader, and a learner's dial.

Theory of operation. Only bytes move here; what they mean is the QuorumPeer's business. Each
connection gets a number (cid) the peer knows it by: connections accepted on this member's
quorum port (a learner dialing in while we lead) and the one this member dials when it
follows. The port is bound only while the member leads (`start_listening`/`stop_listening`),
as Apache's Leader binds it: a learner that dials a member that does not lead (yet) is
refused and retries, where an accepted-then-dropped connection would end its role. Inbound
bytes go straight to `peer.quorum_data(cid, data)`; a connection that ends, either way, is
reported once through `peer.quorum_closed(cid)`; the peer's Ready says what to write and what
to close. The peer keeps every time-out itself (Apache's socket time-outs are its read
time-outs), so a silent peer is noticed there, not here. TCP_NODELAY is on, as Apache's
leader sets it by default (leader.nodelay). With `sslQuorum=true` (a QuorumTls given) every
connection is TLS with mutual authentication, checked before the peer hears of it
(shell/quorum_tls.py): a learner whose handshake fails is never accepted, and a dial whose
handshake fails is a failed dial.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .sockopts import PLAIN_LINKS, no_delay

if TYPE_CHECKING:
    from .quorum_tls import QuorumTls

log = logging.getLogger("zkserver.shell.quorum")


class _QuorumProtocol(asyncio.Protocol):
    def __init__(self, net: QuorumNet, cid: int, on_open: Callable[[int], None] | None):
        self.net = net
        self.cid = cid
        self.on_open = on_open
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        no_delay(transport)
        self.net.conns[self.cid] = self
        if self.on_open is not None:
            self.on_open(self.cid)

    def data_received(self, data: bytes) -> None:
        self.net.on_data(self.cid, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.net.conns.pop(self.cid, None) is not None:
            self.net.on_closed(self.cid)


class QuorumNet:
    """Listener and dialer for one member's quorum connections."""

    def __init__(self, on_accept: Callable[[int], None], on_dialed: Callable[[int], None],
                 on_dial_failed: Callable[[], None], on_data: Callable[[int, bytes], None],
                 on_closed: Callable[[int], None], tls: QuorumTls | None = None):
        self.on_accept = on_accept
        self.on_dialed = on_dialed
        self.on_dial_failed = on_dial_failed
        self.on_data = on_data
        self.on_closed = on_closed
        self.links = tls or PLAIN_LINKS
        self.conns: dict[int, _QuorumProtocol] = {}
        self._next_cid = 1
        self._server: asyncio.base_events.Server | None = None
        self._binding: asyncio.Task | None = None  # set from start_listening to stop_listening
        self._dialing: asyncio.Task | None = None
        self.port = 0

    def _cid(self) -> int:
        cid = self._next_cid
        self._next_cid += 1
        return cid

    async def listen(self, host: str | None, port: int) -> None:
        loop = asyncio.get_running_loop()
        def accepted() -> _QuorumProtocol:
            return _QuorumProtocol(self, self._cid(), self.on_accept)

        # With TLS the port may have closed (no longer leading) by the time a handshake ends.
        factory = self.links.acceptor(accepted, "quorum", lambda: self._server is not None)
        self._server = await loop.create_server(factory, host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("quorum port listening on %s:%d", host or "0.0.0.0", self.port)

    @property
    def listening(self) -> bool:
        return self._binding is not None

    def start_listening(self, host: str | None, port: int) -> None:
        """Bind the quorum port in the background (learners that dial meanwhile retry)."""
        if self._binding is None:
            self._binding = asyncio.get_running_loop().create_task(self._listen_or_log(host, port))

    async def _listen_or_log(self, host: str | None, port: int) -> None:
        try:
            await self.listen(host, port)
        except OSError as e:  # no learner can join: the leader times out and the member looks again
            log.error("cannot listen on the quorum port %s:%d: %s", host or "0.0.0.0", port, e)

    def stop_listening(self) -> None:
        """Unbind the quorum port (the peer closes the connections it accepted)."""
        if self._binding is not None:
            self._binding.cancel()
            self._binding = None
        if self._server is not None:
            self._server.close()
            self._server = None

    def dial(self, host: str, port: int, timeout_s: float) -> None:
        """Connect to a leader; `on_dialed(cid)` or `on_dial_failed()` tells how it went."""
        if self._dialing is not None and not self._dialing.done():
            self._dialing.cancel()
        self._dialing = asyncio.get_running_loop().create_task(self._dial(host, port, timeout_s))

    async def _dial(self, host: str, port: int, timeout_s: float) -> None:
        cid = self._cid()
        protocol = _QuorumProtocol(self, cid, self.on_dialed)
        try:
            await asyncio.wait_for(self.links.dial(protocol, host, port, "quorum"), timeout_s)
        except (TimeoutError, OSError) as e:
            log.warning("cannot connect to the leader at %s:%d: %s", host, port, e)
            self.on_dial_failed()

    def write(self, cid: int, data: bytes) -> None:
        conn = self.conns.get(cid)
        if conn is not None and conn.transport is not None:
            conn.transport.write(data)

    def peer_address(self, cid: int) -> str:
        """"ip:port" of the other end of a connection (the AdminServer's `observers`)."""
        conn = self.conns.get(cid)
        peer = conn.transport.get_extra_info("peername") if conn is not None and conn.transport else None
        return f"{peer[0]}:{peer[1]}" if peer else "<null>"

    def close(self, cid: int) -> None:
        """Close a connection the peer gave up; it is not reported back as closed."""
        conn = self.conns.pop(cid, None)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    def abort_all(self) -> None:
        for cid in list(self.conns):
            conn = self.conns.pop(cid)
            if conn.transport is not None:
                conn.transport.abort()

    async def stop(self) -> None:
        if self._dialing is not None:
            self._dialing.cancel()
        server = self._server
        self.stop_listening()
        self.abort_all()
        if server is not None:
            await server.wait_closed()
