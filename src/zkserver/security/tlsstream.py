"""TLS over memory BIOs for one TCP connection: the one implementation behind the secure client
port (security/tls.py) and member-to-member TLS (shell/quorum_tls.py).

Theory of operation. A `TlsStream` is the asyncio protocol of the socket. It runs TLS itself on
an `ssl.SSLObject` over two memory BIOs and, once the peer has been accepted, gives an inner
(plaintext) protocol a `CleartextTransport`: that protocol reads and writes cleartext and never
knows TLS is there. The states are

    handshake -> checking -> open -> closed

- handshake: bytes from the socket go into the incoming BIO and drive `do_handshake`; whatever
  OpenSSL wants sent (hello, alerts) is flushed to the socket at once.
- checking: the handshake is done and `_verify` (a subclass hook) decides about the peer: the
  client port does a synchronous x509 identity check, quorum TLS an asynchronous hostname check
  (it may do a reverse DNS lookup). Bytes that arrive meanwhile wait in the incoming BIO.
  The hook ends by calling `_open()` or `_fail(reason)` (or `close()`).
- open: the inner protocol has its transport; everything read so far is decrypted and handed
  to it, and so is each later read.
- closed: by either side; a failure of ours is told to `_report` (a log line, or a dialer's
  exception) and the socket is dropped.

A handshake timer (Netty's SslHandler default, 10 s) covers handshake and checking both, so a
peer that connects and stalls costs one timer, never a stuck connection.

Why memory BIOs and not the loop's start_tls: a failed handshake is ours to log with the peer's
address and the reason, and uvloop, which delivers the bytes read together with an accepted
connection before a `pause_reading` takes effect, cannot lose a ClientHello: here every byte
lands in the BIO whatever the state.

What differs between the users is a few hooks: `_context` (which SSLContext, None while the
stores cannot be loaded), `_verify`, `_make_inner`, `_opened` (the first thing after the inner
protocol got its transport), `_report`, and three class attributes (the handshake failure
wording, whether our own failures drop the socket hard, whether a peer leaving before the
peer check is news).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

HANDSHAKE_TIMEOUT = 10.0  # Netty SslHandler's default handshake timeout
READ_CHUNK = 256 * 1024


class TlsStream(asyncio.Protocol):
    """One TLS connection over memory BIOs; subclasses say who the peer may be and who it reaches."""

    # The start of the reason a failed handshake is reported with.
    handshake_failed = "TLS handshake failed"
    # False: our own failures close the socket gracefully, so the TLS alert that says why is
    # not destroyed by a reset; True: they drop it at once (transport.abort).
    abort_discards = False
    # True: a peer that goes away before it was accepted is reported too (a dialer must hear of
    # it, not wait for its time-out).
    report_early_loss = False

    def __init__(self, server_side: bool, handshake_timeout: float) -> None:
        self.server_side = server_side
        self.handshake_timeout = handshake_timeout
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.sslobj: ssl.SSLObject | None = None
        self.transport: Any = None
        self.inner: asyncio.Protocol | None = None
        self.state = "handshake"
        self.ip, self.peer = "0.0.0.0", "?"  # the peer's address, and address:port for log lines
        self._timer: asyncio.TimerHandle | None = None
        self._check: asyncio.Task[None] | None = None  # an asynchronous `_verify`, cancelled on loss

    # ---- hooks -------------------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext | None:
        """The context for this connection; None refuses it (the stores cannot be loaded)."""
        raise NotImplementedError

    def _verify(self) -> None:
        """The handshake is done: accept the peer (`_open`) or not (`_fail`, `close`)."""
        raise NotImplementedError

    def _make_inner(self) -> asyncio.Protocol:
        """The plaintext protocol that gets the cleartext transport."""
        raise NotImplementedError

    def _opened(self) -> None:
        """Runs after the inner protocol's connection_made and before it reads anything."""

    def _report(self, reason: str) -> None:
        """Say why this connection is being closed by us."""
        raise NotImplementedError

    # ---- the socket side ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.ip, self.peer = peer[0], f"{peer[0]}:{peer[1]}"
        ctx = self._context()
        if ctx is None:
            self._fail("the key and trust stores are not loaded")
            return
        self.sslobj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=self.server_side)
        self._timer = asyncio.get_running_loop().call_later(self.handshake_timeout, self._handshake_timeout)
        self._handshake()  # a dialler's ClientHello; on the accepting side nothing to do yet

    def _handshake_timeout(self) -> None:
        if self.state in ("handshake", "checking"):
            self._fail(f"no TLS handshake within {self.handshake_timeout:.0f} s")

    def data_received(self, data: bytes) -> None:
        if self.state == "closed":
            return
        self.incoming.write(data)
        if self.state == "handshake":
            self._handshake()
        elif self.state == "open":
            self._read_app()

    def _handshake(self) -> None:
        assert self.sslobj is not None
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, ValueError) as e:
            self._flush()  # the alert tells the peer why
            self._fail(f"{self.handshake_failed}: {failure_reason(e)}")
            return
        self._flush()
        self.state = "checking"
        self._verify()

    def _open(self) -> None:
        """The peer is accepted: the inner protocol gets its transport, then what already came."""
        if self._timer is not None:
            self._timer.cancel()
        self.state = "open"
        self.inner = self._make_inner()
        self.inner.connection_made(CleartextTransport(self))  # type: ignore[arg-type]
        self._opened()
        if self.state == "open":  # the inner protocol may have refused the connection
            self._read_app()

    def _read_app(self) -> None:
        assert self.sslobj is not None
        chunks = []
        ended = False
        while True:
            try:
                chunk = self.sslobj.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify, after ours
                ended = True
                break
            except ssl.SSLError as e:
                self._fail(failure_reason(e))
                return
            if not chunk:  # the peer's close_notify, before ours (CPython's read gives b"")
                ended = True
                break
            chunks.append(chunk)
        self._flush()  # reading can make OpenSSL answer (a key update, our close_notify reply)
        if chunks and self.inner is not None and self.state == "open":
            # What came before a close_notify is delivered first, as a plain port delivers
            # the bytes before a FIN.
            self.inner.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if ended:
            self.close()

    def write_app(self, data: bytes) -> None:
        """Encrypt and send the inner protocol's bytes (nothing before open or after close)."""
        if self.state != "open" or self.sslobj is None:
            return
        try:
            self.sslobj.write(data)
        except ssl.SSLError as e:
            self._fail(failure_reason(e))
            return
        self._flush()

    def _flush(self) -> None:
        out = self.outgoing.read()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    def _fail(self, reason: str) -> None:
        """Something went wrong on our side of the stream: say so, drop the connection."""
        self._report(reason)
        self.abort()

    def close(self) -> None:
        """Orderly close: a close_notify once open, then the socket's graceful close."""
        if self.state == "closed":
            return
        if self.state == "open" and self.sslobj is not None:
            with contextlib.suppress(ssl.SSLError):
                self.sslobj.unwrap()
            self._flush()
        self.state = "closed"
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.state = "closed"
        if self.transport is not None:
            if self.abort_discards:
                self.transport.abort()
            else:
                self.transport.close()

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        was, self.state = self.state, "closed"
        if self._timer is not None:
            self._timer.cancel()
        if self._check is not None:
            self._check.cancel()
        if self.inner is not None:
            self.inner.connection_lost(exc)
        elif was != "closed" and self.report_early_loss:
            self._report(f"closed by the peer during the TLS handshake ({exc or 'end of stream'})")


class CleartextTransport:
    """The inner protocol's transport: writes are encrypted, close sends close_notify."""

    __slots__ = ("stream",)

    def __init__(self, stream: TlsStream) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        self.stream.write_app(data)

    def close(self) -> None:
        self.stream.close()

    def abort(self) -> None:
        self.stream.abort()

    def is_closing(self) -> bool:
        t = self.stream.transport
        return self.stream.state == "closed" or t is None or t.is_closing()

    def pause_reading(self) -> None:
        if self.stream.transport is not None:
            self.stream.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.stream.transport is not None:
            self.stream.transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self.stream.sslobj
        t = self.stream.transport
        return t.get_extra_info(name, default) if t is not None else default


def failure_reason(e: Exception) -> str:
    """An SSL error as a log reason, with a hint when the peer was not speaking TLS at all."""
    if isinstance(e, ssl.SSLError) and e.reason:
        hint = " (a plaintext client on the secure port?)" if e.reason in (
            "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNSUPPORTED_PROTOCOL", "UNEXPECTED_RECORD") else ""
        return f"{e.reason}{hint}"
    return str(e) or type(e).__name__
