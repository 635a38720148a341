"""Free TCP ports on the loopback interface for test servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago.

    The kernel picks it (bind to port 0); there is a small race until the server binds it,
    which the server starters cover by retrying on "address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
