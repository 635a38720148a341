"""Four-letter words answered on the client port (ruok, srvr, stat, envi, isro).

The text layouts are Apache's, since scripts (zkServer.sh status, kazoo's server_version,
monitoring checks) parse them. The rest of the operator commands belong to the operator
surface and answer with the whitelist refusal until they exist.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import ZOOKEEPER_COMPAT_VERSION, __version__

if TYPE_CHECKING:
    from .shell.server import ServerRunner

FULL_VERSION = f"{ZOOKEEPER_COMPAT_VERSION}-zkserver-{__version__}, built on zkserver"


def _ruok(server: ServerRunner) -> str:
    return "imok"


def _isro(server: ServerRunner) -> str:
    return "rw"


def _envi(server: ServerRunner) -> str:
    entries = [
        ("zookeeper.version", FULL_VERSION),
        ("host.name", socket.getfqdn()),
        ("java.version", f"<NA: zkserver runs on Python {platform.python_version()}>"),
        ("java.vendor", "<NA>"),
        ("java.home", sys.prefix),
        ("java.class.path", "<NA>"),
        ("java.library.path", "<NA>"),
        ("java.io.tmpdir", os.environ.get("TMPDIR", "/tmp")),
        ("java.compiler", "<NA>"),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", getpass.getuser()),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
    ]
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in entries)


def _server_stats(server: ServerRunner) -> str:
    st = server.stats
    core = server.core
    return (
        f"Latency min/avg/max: {st.min_latency()}/{st.avg_latency()}/{st.max_latency()}\n"
        f"Received: {core.packets_received}\n"
        f"Sent: {core.packets_sent}\n"
        f"Connections: {len(core.conns)}\n"
        f"Outstanding: {len(core.pipeline)}\n"
        f"Zxid: 0x{core.tree.last_processed_zxid:x}\n"
        "Mode: standalone\n"
        f"Node count: {len(core.tree.nodes) + 1}\n"  # Apache counts the root twice ("" and "/")
    )


def _srvr(server: ServerRunner) -> str:
    return f"Zookeeper version: {FULL_VERSION}\n" + _server_stats(server)


def _stat(server: ServerRunner) -> str:
    out = f"Zookeeper version: {FULL_VERSION}\nClients:\n"
    for conn in server.core.conns.values():
        peer = server.peer_of(conn.cid)
        # Apache shows the asking connection with interest ops 0 and its 4-byte command counted.
        asking = conn.cid == server.asking_cid
        interest, received = (0, conn.stats.received + 1) if asking else (1, conn.stats.received)
        out += f" /{peer}[{interest}](queued=0,recved={received},sent={conn.stats.sent})\n"
    return out + "\n" + _server_stats(server)


COMMANDS: dict[str, Callable[[ServerRunner], str]] = {
    "ruok": _ruok,
    "isro": _isro,
    "envi": _envi,
    "srvr": _srvr,
    "stat": _stat,
}


def run(word: str, server: ServerRunner) -> str:
    if word not in server.four_letter_whitelist and "*" not in server.four_letter_whitelist:
        return f"{word} is not executed because it is not in the whitelist."
    handler = COMMANDS.get(word)
    if handler is None:
        return f"{word} is not served by this zkserver version yet."
    return handler(server)
