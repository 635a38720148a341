"""The client port seen from outside: four-letter words, a session closed remotely, a bare session."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from ..jute.codec import Reader, Writer
from ..jute.codes import Op
from .settings import ZkServerError


def free_port(host: str) -> int:
    return free_ports(host, 1)[0]


def free_ports(host: str, count: int) -> list[int]:
    """`count` distinct ports that were free a moment ago (all held until all are picked)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _send_frame(sock: socket.socket, body: bytes) -> None:
    sock.sendall(len(body).to_bytes(4, "big") + body)


def _recv_frame(sock: socket.socket) -> bytes:
    return _recv_exact(sock, int.from_bytes(_recv_exact(sock, 4), "big"))


def four_letter(host: str, port: int, word: str, timeout: float = 5.0) -> str:
    """Send a four-letter word to host:port and read the answer until the server closes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


async def four_letter_async(host: str, port: int, word: str, timeout: float = 5.0) -> str:
    """`four_letter` on the running loop."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(word.encode("ascii"))
        answer = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    return answer.decode("utf-8", errors="replace")


def close_session_remotely(host: str, port: int, session_id: int, password: bytes,
                           timeout: float = 5.0) -> bool:
    """Attach to a session from a new connection and close it (Curator's KillSession).

    The server moves the session to the new connection (dropping the old one), then applies
    the closeSession; the session's own client sees SESSION_EXPIRED when it reconnects.
    False when the server no longer knows the session or rejects the password.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        _send_frame(sock, Writer().int(0).long(0).int(30000).long(session_id).buffer(password)
                    .bool(False).getvalue())
        try:
            r = Reader(_recv_frame(sock))
        except ConnectionError:
            return False
        r.int()  # protocolVersion
        negotiated, granted = r.int(), r.long()
        if negotiated <= 0 or granted != session_id:
            return False
        _send_frame(sock, Writer().int(1).int(Op.CLOSE_SESSION).getvalue())
        reply = Reader(_recv_frame(sock))
        reply.int()  # xid
        reply.long()  # zxid
        return reply.int() == 0


class WireSession:
    """A minimal blocking client session on the wire: enough to make and remove a chroot.

    No watches, no reconnects; each call waits for its reply. The fixtures use it so they need
    no client library; tests should use a real client.
    """

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.xid = 0
        _send_frame(self.sock, Writer().int(0).long(0).int(int(timeout * 1000)).long(0).buffer(bytes(16))
                    .bool(False).getvalue())
        r = Reader(_recv_frame(self.sock))
        r.int()
        self.timeout_ms = r.int()  # as the server negotiated it
        self.session_id = r.long()
        if self.timeout_ms <= 0:
            self.sock.close()
            raise ZkServerError(f"{host}:{port} refused a new session")

    def call(self, op: int, body: bytes) -> tuple[int, Reader]:
        """Send one request; return (error code, reader over the reply body)."""
        self.xid += 1
        _send_frame(self.sock, Writer().int(self.xid).int(op).getvalue() + body)
        r = Reader(_recv_frame(self.sock))
        r.int()  # xid
        r.long()  # zxid
        return r.int(), r

    def create(self, path: str, data: bytes = b"") -> int:
        """Create a persistent node open to everyone; return the error code (0, NODE_EXISTS...)."""
        acl = Writer().int(1).int(0x1F).ustring("world").ustring("anyone").getvalue()
        body = Writer().ustring(path).buffer(data).raw(acl).int(0).getvalue()
        return self.call(Op.CREATE, body)[0]

    def children(self, path: str) -> list[str]:
        err, r = self.call(Op.GET_CHILDREN, Writer().ustring(path).bool(False).getvalue())
        return (r.ustring_vector() or []) if err == 0 else []

    def delete_tree(self, path: str) -> None:
        """Delete path and everything under it (nodes that vanish meanwhile are fine)."""
        for child in self.children(path):
            self.delete_tree(f"{path.rstrip('/')}/{child}")
        if path != "/":
            self.call(Op.DELETE, Writer().ustring(path).int(-1).getvalue())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.call(Op.CLOSE_SESSION, b"")
        self.sock.close()

    def __enter__(self) -> WireSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

