"""security.tlsstream: the one memory-BIO TLS stream behind the secure client port and quorum TLS.

Two streams (a dialler and an acceptor) are wired back to back through in-memory transports, so
the handshake, the hooks' order and every failure path run deterministically without sockets.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from zkserver.security.tlsstream import CleartextTransport, TlsStream


class Wire:
    """A transport that queues what is written; `pump` moves the bytes to the other end."""

    def __init__(self, port: int) -> None:
        self.port, self.sent, self.closing, self.aborted = port, bytearray(), False, False
        self.protocol: asyncio.Protocol | None = None

    def write(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", self.port) if name == "peername" else default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def pump(a: Wire, b: Wire) -> None:
    """Deliver queued bytes both ways until both sides are quiet; a closed side loses its peer."""
    while a.sent or b.sent:
        for src, dst in ((a, b), (b, a)):
            data, src.sent = bytes(src.sent), bytearray()
            if data and not dst.closing:
                assert dst.protocol is not None
                dst.protocol.data_received(data)


class Inner(asyncio.Protocol):
    def __init__(self, events: list[object]) -> None:
        self.events, self.transport = events, None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.events.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")


class Stream(TlsStream):
    """A test user of the hooks: accepts the peer unless told to refuse, records what happens."""

    def __init__(self, ctx: ssl.SSLContext, server_side: bool, refuse: str | None = None) -> None:
        super().__init__(server_side=server_side, handshake_timeout=10.0)
        self.ctx, self.refuse = ctx, refuse
        self.events: list[object] = []
        self.reports: list[str] = []

    def _context(self) -> ssl.SSLContext:
        return self.ctx

    def _verify(self) -> None:
        if self.refuse:
            self._fail(self.refuse)
        else:
            self._open()

    def _make_inner(self) -> asyncio.Protocol:
        return Inner(self.events)

    def _opened(self) -> None:
        self.events.append("opened")

    def _report(self, reason: str) -> None:
        self.reports.append(reason)


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tlsstream test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    d: Path = tmp_path_factory.mktemp("tlsstream")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(d / "cert.pem", d / "key.pem")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(d / "cert.pem")
    client.check_hostname = False
    return server, client


def connect(server: Stream, dialler: Stream) -> tuple[Wire, Wire]:
    """The accepting side's wire, the dialler's wire; the handshake has run as far as it can."""
    ws, wd = Wire(40001), Wire(40002)
    ws.protocol, wd.protocol = server, dialler
    server.connection_made(ws)  # type: ignore[arg-type]
    dialler.connection_made(wd)  # type: ignore[arg-type]
    pump(ws, wd)
    return ws, wd


def run(body) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        body()
    asyncio.run(main())  # the streams' handshake timer needs a running loop


def test_cleartext_both_ways_and_the_opened_hook_runs_before_any_data(contexts) -> None:  # type: ignore[no-untyped-def]
    def body() -> None:
        server, dialler = Stream(contexts[0], True), Stream(contexts[1], False)
        ws, wd = Wire(40001), Wire(40002)
        ws.protocol, wd.protocol = server, dialler
        server.connection_made(ws)  # type: ignore[arg-type]
        dialler.connection_made(wd)  # type: ignore[arg-type]
        server.data_received(bytes(wd.sent))  # the ClientHello
        wd.sent.clear()
        dialler.data_received(bytes(ws.sent))  # the server's flight: the dialler is done (TLS 1.3)
        ws.sent.clear()
        assert dialler.state == "open" and server.state == "handshake"
        assert isinstance(dialler.inner.transport, CleartextTransport)  # type: ignore[union-attr]
        dialler.inner.transport.write(b"ping")  # type: ignore[union-attr]
        server.data_received(bytes(wd.sent))  # its Finished and the first record in one read
        wd.sent.clear()
        assert server.events == ["made", "opened", b"ping"]
        server.inner.transport.write(b"pong")  # type: ignore[union-attr]
        pump(ws, wd)
        assert dialler.events == ["made", "opened", b"pong"]
        assert not server.reports and not dialler.reports
    run(body)


def test_data_that_comes_with_a_close_notify_is_delivered(contexts) -> None:  # type: ignore[no-untyped-def]
    def body() -> None:
        server, dialler = Stream(contexts[0], True), Stream(contexts[1], False)
        _, wd = connect(server, dialler)
        dialler.inner.transport.write(b"last words")  # type: ignore[union-attr]
        dialler.inner.transport.close()  # type: ignore[union-attr]
        assert dialler.state == "closed" and wd.closing and not wd.aborted
        ws = server.transport
        server.data_received(bytes(wd.sent))  # the record and the close_notify in one read
        assert server.events == ["made", "opened", b"last words"]
        # The peer's close_notify closes our side too (our close_notify, then the socket), as a
        # FIN would on a plain port, without waiting for the peer's TCP close.
        assert server.state == "closed" and ws.closing and not ws.aborted
        server.connection_lost(None)  # the socket closes
        assert server.events[-1] == "lost" and not server.reports
    run(body)


@pytest.mark.parametrize("discards", [False, True])
def test_a_refused_peer_is_reported_and_never_reaches_the_inner_protocol(contexts, discards) -> None:  # type: ignore[no-untyped-def]
    def body() -> None:
        server, dialler = Stream(contexts[0], True, refuse="not welcome"), Stream(contexts[1], False)
        server.abort_discards = discards
        ws, _ = connect(server, dialler)
        assert server.reports == ["not welcome"] and server.events == [] and server.inner is None
        assert server.state == "closed" and ws.closing and ws.aborted is discards
        server.connection_lost(None)  # our own close: not reported twice
        assert server.reports == ["not welcome"]
    run(body)


def test_a_plaintext_peer_fails_the_handshake_with_a_hint(contexts) -> None:  # type: ignore[no-untyped-def]
    def body() -> None:
        server = Stream(contexts[0], True)
        ws = Wire(40001)
        server.connection_made(ws)  # type: ignore[arg-type]
        server.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert len(server.reports) == 1 and server.reports[0].startswith("TLS handshake failed: ")
        assert "plaintext client" in server.reports[0] and ws.closing and server.inner is None
        server.data_received(b"more")  # ignored once closed
        assert len(server.reports) == 1
    run(body)


def test_handshake_timeout_and_early_loss_reporting(contexts) -> None:  # type: ignore[no-untyped-def]
    def body() -> None:
        stalled = Stream(contexts[0], True)
        stalled.connection_made(Wire(40001))  # type: ignore[arg-type]
        stalled._handshake_timeout()  # the timer firing, without waiting for it
        assert stalled.reports == ["no TLS handshake within 10 s"] and stalled.state == "closed"
        for report in (False, True):
            gone = Stream(contexts[0], True)
            gone.report_early_loss = report
            gone.connection_made(Wire(40001))  # type: ignore[arg-type]
            gone.connection_lost(None)
            assert gone.reports == (["closed by the peer during the TLS handshake (end of stream)"] if report else [])
    run(body)


def test_no_context_refuses_the_connection() -> None:
    class NoContext(Stream):
        def _context(self) -> None:  # type: ignore[override]
            return None

    def body() -> None:
        s = NoContext(None, True)  # type: ignore[arg-type]
        w = Wire(40001)
        s.connection_made(w)  # type: ignore[arg-type]
        assert s.reports == ["the key and trust stores are not loaded"] and w.closing and s.sslobj is None
    run(body)
