"""A raw client-protocol socket, for tests that send what no client library sends (SASL tokens
by hand, floods, whoAmI) or must see the very first reply of a connection."""

from __future__ import annotations

import socket
import struct
import time

_INT = struct.Struct(">i")
_REPLY_HEADER = struct.Struct(">iqi")  # xid, zxid, err

# ConnectRequest: protocol 0, lastZxidSeen 0, timeout 10 s, no session, 16-byte password, not read-only.
_CONNECT = struct.pack(">iqiqi16s?", 0, 0, 10000, 0, 16, bytes(16), False)
CONNECT_REQUEST = _INT.pack(len(_CONNECT)) + _CONNECT


def read_frame(s: socket.socket) -> bytes:
    """One length-prefixed frame; ConnectionError when the server closes first."""
    return _exact(s, _INT.unpack(_exact(s, 4))[0])


def _exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def send_request(s: socket.socket, xid: int, op: int, body: bytes = b"") -> None:
    s.sendall(_INT.pack(8 + len(body)) + struct.pack(">ii", xid, op) + body)


def reply_err(frame: bytes) -> int:
    """The err field of a reply's header."""
    return _REPLY_HEADER.unpack_from(frame, 0)[2]


def open_session(port: int) -> socket.socket:
    """A socket on which the server has answered a new session's ConnectRequest."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    try:
        s.settimeout(10)
        s.sendall(CONNECT_REQUEST)
        read_frame(s)
    except BaseException:
        s.close()
        raise
    return s


def wait_sessions(port: int, timeout: float = 20.0) -> None:
    """Apache answers ruok before it takes sessions ("ZooKeeperServer not running" closes the
    connection): raw-socket tests wait until a session is answered."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            open_session(port).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
