"""`zkserver status [CONFIG]`: what Apache's `zkServer.sh status` does, for any server.

Find the client port the way the script does (clientPort, else this server's server.N client
part, else secureClientPort), ask `srvr`, print the Mode line. Exit 0 when the server answered,
1 when it did not (the script's codes).
"""

from __future__ import annotations

import socket
import sys
from typing import TextIO

from ..config import ServerConfig

TIMEOUT_S = 5.0


def client_address(cfg: ServerConfig) -> tuple[str, int, bool] | None:
    """(address, port, TLS?) the script would contact, or None."""
    if cfg.client_port is not None:
        return cfg.client_port_address or "localhost", cfg.client_port, False
    spec = cfg.servers.get(cfg.server_id) if cfg.server_id is not None else None
    client_port = getattr(spec, "client_port", None) if spec is not None else None
    if client_port:
        return getattr(spec, "client_address", None) or "localhost", client_port, False
    if cfg.secure_client_port is not None:
        return cfg.secure_client_port_address or "localhost", cfg.secure_client_port, True
    return None


def srvr(host: str, port: int, timeout: float = TIMEOUT_S) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"srvr")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def status(cfg: ServerConfig, out: TextIO = sys.stdout) -> int:
    where = client_address(cfg)
    if where is None:
        print("Unable to find either secure or unsecure client port in any configs. Terminating.", file=out)
        return 1
    host, port, tls = where
    print(f"Client port found: {port}. Client address: {host}. Client SSL: {'true' if tls else 'false'}.",
          file=out)
    mode = None
    if not tls:
        try:
            mode = next((line for line in srvr(host, port).splitlines() if "Mode" in line), None)
        except OSError:
            mode = None
    if mode is None:
        print("Error contacting service. It is probably not running.", file=out)
        return 1
    print(mode, file=out)
    return 0
