"""portUnification's first-byte switch (shell/quorum_tls.py `_Unified`), over real loopback sockets:
a TLS record goes to the TLS side, anything else to the plaintext side, each with every byte read
so far and the transport; a connection that says nothing is closed after the detection time-out."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("cryptography")
from zkserver.shell.quorum_tls import _Unified


class Recorder(asyncio.Protocol):
    def __init__(self, kind: str, seen: list) -> None:
        self.kind, self.seen = kind, seen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.seen.append((self.kind, data))
        self.transport.write(b"ok:" + self.kind.encode())  # type: ignore[attr-defined]


async def exchange(first: bytes, timeout: float = 5.0) -> tuple[list, bytes]:
    seen: list = []
    server = await asyncio.get_running_loop().create_server(
        lambda: _Unified(lambda: Recorder("tls", seen), lambda: Recorder("plain", seen), timeout), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if first:
        writer.write(first)
    try:
        answer = await asyncio.wait_for(reader.read(100), 3.0)
    finally:
        writer.close()
        server.close()
    return seen, answer


def test_a_tls_record_goes_to_the_tls_side_with_its_bytes() -> None:
    hello = b"\x16\x03\x01\x00\x05hello"
    assert asyncio.run(exchange(hello)) == ([("tls", hello)], b"ok:tls")


def test_anything_else_goes_to_the_plaintext_side_with_its_bytes() -> None:
    initial = b"\xff\xff\xff\xff\xff\xff\x00\x01rest"  # an election initial message's version
    assert asyncio.run(exchange(initial)) == ([("plain", initial)], b"ok:plain")


def test_a_silent_connection_is_closed_after_the_detection_time_out() -> None:
    assert asyncio.run(exchange(b"", timeout=0.2)) == ([], b"")
