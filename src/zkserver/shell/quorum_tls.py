"""TLS on the election and quorum ports (`sslQuorum=true`): Apache's QuorumX509Util over asyncio.

Theory of operation. With sslQuorum both member-to-member ports speak TLS only, with mutual
authentication: each side presents the certificate of its `ssl.quorum.keyStore` and checks the
other's against its `ssl.quorum.trustStore` (`ssl.quorum.clientAuth`, default need). Inside TLS
the bytes are exactly the plaintext protocols, so ElectionNet and QuorumNet keep their own
protocol objects and only their connections are made here:

- `dial(protocol, host, port, what)` connects, runs the client handshake, checks the peer, and
  only then gives `protocol` its (cleartext) transport. A failure raises QuorumTlsError, an
  OSError, so the dialer's usual "cannot connect" line names the peer and the reason.
- `acceptor(factory, what, wanted)` is a protocol factory for `create_server`: each accepted
  connection runs the server handshake and the peer check, then gets `factory()`'s protocol. A
  failure is logged with the peer's address and the reason and closes that connection only;
  `wanted()` false once the check is done (the port was closed meanwhile) drops it.

TLS runs over memory BIOs in `_QuorumStream`, a `security.tlsstream.TlsStream` (the one the
secure client port uses too), not the loop's start_tls: that way a failed handshake is ours to
log, and uvloop, which delivers the bytes read with an accepted connection before a
`pause_reading` takes effect, cannot lose a ClientHello.

The peer check is ZKTrustManager's with `ssl.quorum.hostnameVerification` on (the default): the
certificate must name the peer's address, its IP among the IP SANs, else a host name among the
DNS SANs (or as the CN when there are none, as ZKHostnameVerifier does). The host name is the
one dialled when it was not an IP literal; otherwise, and always when accepting, it is the
reverse lookup of the IP, which QuorumX509Util allows by default
(`ssl.quorum.allowReverseDnsLookup`). Bytes that arrive during the check wait in the BIO.

The contexts are built at start-up from the stores (a store that cannot be read stops
start-up, naming the key). With `sslQuorumReloadCertFiles=true` they are built again, for the
connections made from then on, once a store file changed (its stamp is looked at at most once a
second, when a connection is made; a store that does not load keeps the previous contexts):
certificates rotate without a restart, as Apache's file watcher lets them.

`portUnification=true` (Apache's UnifiedServerSocket, the way to move a running ensemble to TLS
one member at a time) makes both ports accept either kind: an accepted connection whose first
byte opens a TLS handshake record (0x16; a plaintext member's first message starts with a
zero byte) goes through TLS as above, any other goes to `factory()` in plaintext. A member
then dials in TLS only with sslQuorum: the rolling upgrade restarts each member with
portUnification, then each with sslQuorum too, then each without portUnification.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..security.tls import StoreWatch, TlsSettings, build_context
from ..security.tlsstream import HANDSHAKE_TIMEOUT, TlsStream
from ..security.x509 import DerError, dns_in_san, ip_in_san, subject_name
from .sockopts import PLAIN_LINKS

log = logging.getLogger("zkserver.shell.quorum_tls")

TLS_HANDSHAKE_RECORD = 0x16  # the content type of the record a TLS connection opens with
# portUnification: an accepted connection that sends nothing for this long is closed (Apache's
# default ssl.quorum.handshakeDetectionTimeoutMillis; the key itself is not read).
DETECTION_TIMEOUT = 5.0


class QuorumTlsError(OSError):
    """A member-to-member TLS connection failed its handshake or its peer check."""

    log_level = logging.WARNING  # a certificate or configuration matter, unlike a peer that is down


class QuorumTls:
    """The ssl.quorum contexts and the handshake + peer check of every member-to-member connection."""

    def __init__(self, settings: TlsSettings, dial_tls: bool = True, accept_plain: bool = False,
                 reload: bool = False) -> None:
        """Raises TlsConfigError naming the key when a store cannot be used. `dial_tls`: sslQuorum;
        `accept_plain`: portUnification; `reload`: sslQuorumReloadCertFiles."""
        self.settings = settings
        self._contexts = self._build()
        self._watch = StoreWatch(settings, self._build, "quorum ") if reload else None
        self.handshake_timeout = HANDSHAKE_TIMEOUT
        self.dial_tls = dial_tls
        self.accept_plain = accept_plain

    async def dial(self, protocol: asyncio.Protocol, host: str, port: int, what: str) -> None:
        """Connect, TLS, check the peer; then `protocol` has its transport. QuorumTlsError if not."""
        if not self.dial_tls:
            await PLAIN_LINKS.dial(protocol, host, port, what)
            return
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        stream = _QuorumStream(self, what, lambda: protocol, None if _is_ip(host) else host, ready)
        transport, _ = await loop.create_connection(lambda: stream, host, port)
        try:
            await ready
        except BaseException:  # failed, or cancelled by the dialer's time-out: no socket left open
            transport.close()
            raise

    def acceptor(self, factory: Callable[[], asyncio.Protocol], what: str,
                 wanted: Callable[[], bool]) -> Callable[[], asyncio.Protocol]:
        """A `create_server` protocol factory: TLS and the peer check first, then `factory()`."""
        def made() -> asyncio.Protocol:
            return factory() if wanted() else _Dropped()

        def tls() -> asyncio.Protocol:
            return _QuorumStream(self, what, made, None, None)
        if self.accept_plain:
            return lambda: _Unified(tls, factory, DETECTION_TIMEOUT)
        return tls

    def _build(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        return build_context(self.settings, server_side=True), build_context(self.settings, server_side=False)

    def context(self, server_side: bool) -> ssl.SSLContext:
        """The context for a new connection (with sslQuorumReloadCertFiles, from the stores as
        they are now)."""
        if self._watch is not None:
            self._contexts = self._watch.rebuilt(self._contexts)
        return self._contexts[0 if server_side else 1]

    async def check_peer(self, sslobj: ssl.SSLObject, ip: str, dialled_host: str | None) -> str | None:
        """None when the peer's certificate passes hostname verification, else why not."""
        der = sslobj.getpeercert(binary_form=True)
        if not der:
            # Only with ssl.quorum.clientAuth=want/none on the accepting side: nothing to check.
            return None if self.settings.client_auth != "need" else "the peer sent no certificate"
        if not self.settings.verify_server_hostname:
            return None
        try:
            cert = x509.load_der_x509_certificate(der)
            name = subject_name(cert)
        except (ValueError, DerError) as e:
            return f"cannot read the peer's certificate: {e}"
        if ip_in_san(cert, ip):
            return None
        host = dialled_host
        if host is None and self.settings.allow_reverse_dns:
            try:
                host = (await asyncio.get_running_loop().run_in_executor(None, socket.gethostbyaddr, ip))[0]
            except OSError:
                host = None
        if host is not None and _names_host(cert, host):
            return None
        tried = f"{ip} or {host}" if host else ip
        return f"certificate {name!r} does not name {tried} ({self.settings.prefix}hostnameVerification)"


class _Unified(asyncio.Protocol):
    """portUnification: an accepted connection's first byte says whether it is TLS; the protocol
    for that kind then takes the transport and every byte read so far. The dialling side always
    speaks first (a ClientHello, an election initial message, a FOLLOWERINFO)."""

    def __init__(self, tls: Callable[[], asyncio.Protocol], plain: Callable[[], asyncio.Protocol],
                 timeout: float) -> None:
        self.tls, self.plain, self.timeout = tls, plain, timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(self.timeout, transport.close)

    def data_received(self, data: bytes) -> None:
        """Called once: the chosen protocol takes the transport, and every read after this."""
        self.timer.cancel()
        protocol = self.tls() if data[0] == TLS_HANDSHAKE_RECORD else self.plain()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.data_received(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()  # it said nothing: closed by the timer, or by its peer


class _Dropped(asyncio.Protocol):
    """What an accepted connection gets when its port closed during its handshake."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _QuorumStream(TlsStream):
    """One member-to-member connection: the peer check runs asynchronously between handshake and
    open, and a dialled stream reports its outcome through `ready`; an accepted one logs a failure."""

    abort_discards = True  # a member we refuse is dropped at once; the dialer closes its side anyway
    report_early_loss = True  # a dialer waits on `ready`: a peer hanging up must fail it now

    def __init__(self, tls: QuorumTls, what: str, inner: Callable[[], asyncio.Protocol],
                 dialled_host: str | None, ready: asyncio.Future[None] | None) -> None:
        super().__init__(server_side=ready is None, handshake_timeout=tls.handshake_timeout)
        self.tls, self.what, self.make_inner = tls, what, inner
        self.dialled_host, self.ready = dialled_host, ready

    def _context(self) -> ssl.SSLContext:
        return self.tls.context(self.server_side)

    def _verify(self) -> None:
        self._check = asyncio.get_running_loop().create_task(self._check_peer())

    async def _check_peer(self) -> None:
        assert self.sslobj is not None
        problem = await self.tls.check_peer(self.sslobj, self.ip, self.dialled_host)
        if self.state != "checking":  # timed out or lost meanwhile: already reported
            return
        if problem is not None:
            self._fail(problem)
        else:
            self._open()

    def _make_inner(self) -> asyncio.Protocol:
        return self.make_inner()

    def _opened(self) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)

    def _report(self, reason: str) -> None:
        if self.inner is not None:  # a broken record after open: the dialer has long returned
            log.warning("%s connection with %s: %s; closed", self.what, self.peer, reason)
        elif self.ready is None:
            log.warning("%s connection from %s: %s; closed", self.what, self.peer, reason)
        elif not self.ready.done():
            self.ready.set_exception(QuorumTlsError(reason))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _names_host(cert: x509.Certificate, host: str) -> bool:
    """ZKHostnameVerifier for a host name: the DNS SANs, or the CN when there are none."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        has_dns = bool(sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        has_dns = False
    if has_dns:
        return dns_in_san(cert, host)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return bool(cns) and str(cns[-1].value).lower().rstrip(".") == host.lower().rstrip(".")
