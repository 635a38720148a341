"""Free TCP ports on the loopback interface for test servers."""

from __future__ import annotations

import random
import socket

_HANDED_OUT: set[int] = set()  # ports this process gave out: the kernel may offer one again once closed


def free_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago, and not returned before here.

    The kernel picks it (bind to port 0); there is a small race until the server binds it,
    which the server starters cover by retrying on "address already in use". A closed port can
    come back from the kernel at once, so two calls for one config (a member's quorum and
    election ports) could get the same one: a port already handed out is never returned again.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def free_port_block(count: int, attempts: int = 200) -> int:
    """Return the first of `count` consecutive ports that were all free a moment ago.

    For harnesses that derive every port from one offset (kazoo's ZOOKEEPER_PORT_OFFSET). Each
    port is tried on the wildcard address, as servers without a client address bind it. The
    bases are drawn at random from a range the kernel does not hand out as ephemeral ports.
    """
    rng = random.Random()
    for _ in range(attempts):
        base = rng.randrange(20000, 32000 - count)
        if all(_bindable(port) for port in range(base, base + count)):
            return base
    raise RuntimeError(f"no block of {count} free ports found")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True
