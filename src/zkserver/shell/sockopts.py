"""Socket options the peer ports and the test link proxy set on every connection, and how the
peer ports make a connection without sslQuorum (`PLAIN_LINKS`; shell/quorum_tls.QuorumTls with it)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable


def no_delay(transport: asyncio.BaseTransport, keep_alive: bool | None = None) -> None:
    """TCP_NODELAY (Apache's peers set it: small packets must not wait), and SO_KEEPALIVE when
    given (zookeeper.tcpKeepAlive). A transport without a socket, or one that refuses, is left as is."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if keep_alive is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(keep_alive))


class PlainLinks:
    """Member-to-member connections in plaintext, with QuorumTls's two calls, so that ElectionNet
    and QuorumNet make each connection one way whether sslQuorum is on or not."""

    async def dial(self, protocol: asyncio.Protocol, host: str, port: int, what: str) -> None:
        """Connect; `protocol` has its transport once this returns (OSError if not)."""
        await asyncio.get_running_loop().create_connection(lambda: protocol, host, port)

    def acceptor(self, factory: Callable[[], asyncio.Protocol], what: str,
                 wanted: Callable[[], bool]) -> Callable[[], asyncio.Protocol]:
        """A `create_server` protocol factory: each accepted connection gets `factory()` at once."""
        return factory


PLAIN_LINKS = PlainLinks()
