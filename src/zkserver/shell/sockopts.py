"""Socket options the peer ports and the test link proxy set on every connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket


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
