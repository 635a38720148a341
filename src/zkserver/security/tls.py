"""The secure client port: Apache's ssl.* settings as an SSLContext, and TLS over each connection.

Theory of operation. `TlsSettings.from_config` reads the ssl.* keys (zoo.cfg or -Dzookeeper.ssl.*)
exactly as ClientX509Util does; `TlsServer` turns them into an `ssl.SSLContext` and rebuilds it
when a store file changes (Apache's Netty factory reads the stores again for every new
connection, so a replaced certificate is used from the next connection on; we check the files'
stamps at most once a second). `TlsClientProtocol` runs TLS itself over memory BIOs (a
`tlsstream.TlsStream`, shared with quorum TLS) and hands the cleartext to the ordinary
`ClientProtocol`, so the plain port's hot path is not touched and every failure (a plaintext
client, a bad certificate, a stalled handshake) closes only that connection, with a log line.
After the handshake the client certificate's subject becomes the connection's ("x509", RFC 2253
name) identity, plus ("super", "") when it is the configured x509 super user, as
X509AuthenticationProvider does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cryptography import x509

from . import X509_PROVIDER, keystores
from .tlsstream import HANDSHAKE_TIMEOUT, TlsStream
from .x509 import DerError, dns_in_san, ip_in_san, subject_name

if TYPE_CHECKING:
    from ..shell.server import ServerRunner

log = logging.getLogger("zkserver.tls")

RELOAD_CHECK_INTERVAL = 1.0
T = TypeVar("T")

_PROTOCOLS = {
    "TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
# Java's generic SSLContext names enable the versions the JDK enables by default.
_GENERIC = {"TLS": ("TLSv1.2", "TLSv1.3"), "SSL": ("TLSv1.2", "TLSv1.3"), "Default": ("TLSv1.2", "TLSv1.3")}
# X509Util's default list (Java 9+ order: GCM first); the TLS 1.3 suites are always enabled here.
DEFAULT_CIPHERS = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256",
)
TLS13_SUITES = frozenset({"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256",
                          "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"})


class TlsConfigError(Exception):
    """The ssl.* settings cannot give a working TLS port (start-up stops with the reason)."""


def _java_bool(text: str | None, default: bool) -> bool:
    return default if text is None else text.strip().lower() == "true"


def _read_secret(path: str) -> str:
    """SecretUtils.readSecret: the file's text less one trailing line separator."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise TlsConfigError(f"cannot read the password file {path}: {e.strerror or e}") from None
    return text[:-1] if text.endswith("\n") else text


def iana_to_openssl(name: str) -> str | None:
    """A Java/IANA TLS 1.2 cipher suite name as OpenSSL spells it (None: no such OpenSSL suite)."""
    if not name.startswith("TLS_") or "_WITH_" not in name:
        return None
    kx, _, cipher = name[4:].partition("_WITH_")
    prefix = {"ECDHE_ECDSA": "ECDHE-ECDSA-", "ECDHE_RSA": "ECDHE-RSA-", "DHE_RSA": "DHE-RSA-",
              "DHE_DSS": "DHE-DSS-", "RSA": ""}.get(kx)
    if prefix is None:
        return None
    parts = cipher.split("_")
    if parts[:1] == ["CHACHA20"] and parts[1:2] == ["POLY1305"]:
        return prefix + "CHACHA20-POLY1305"
    if len(parts) != 4 or parts[0] not in ("AES", "CAMELLIA", "ARIA"):
        return None
    algo, bits, mode, mac = parts
    if mode == "GCM":
        return f"{prefix}{algo}{bits}-GCM-{mac}"
    if mode == "CBC":
        return f"{prefix}{algo}{bits}-{mac}"
    if mode == "CCM":
        return f"{prefix}{algo}{bits}-CCM" if mac == "" else None
    return None


@dataclass(frozen=True)
class TlsSettings:
    """The ssl.* settings the secure client port uses, by Apache's rules and defaults."""

    key_store: str = ""
    key_store_password: str = ""
    key_store_type: str | None = None
    trust_store: str = ""
    trust_store_password: str = ""
    trust_store_type: str | None = None
    client_auth: str = "need"
    protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    ciphers: tuple[str, ...] = DEFAULT_CIPHERS
    verify_client_hostname: bool = False
    allow_reverse_dns: bool = False
    x509_super_user: str | None = None
    warnings: list[str] = field(default_factory=list, compare=False)
    prefix: str = "ssl."  # "ssl.quorum." for the quorum and election ports (QuorumX509Util)
    verify_server_hostname: bool = True

    @classmethod
    def from_config(cls, ssl_keys: dict[str, str], properties: dict[str, str], prefix: str = "ssl.") -> TlsSettings:
        """The settings under `prefix`: "ssl." as ClientX509Util reads them, "ssl.quorum." as
        QuorumX509Util does (client hostnames verified, reverse DNS allowed, no auth provider)."""
        quorum = prefix != "ssl."

        def get(key: str) -> str | None:
            value = ssl_keys.get(prefix + key)
            return None if value is None else value.strip()

        warnings: list[str] = []
        for key in ("crl", "ocsp"):
            if _java_bool(get(key), False):
                warnings.append(f"{prefix}{key}=true: revocation checking needs network CRL/OCSP fetching,"
                                " which zkserver does not do; certificates are not checked for revocation")
        if get("context.supplier.class"):
            raise TlsConfigError(f"{prefix}context.supplier.class names Java code; zkserver cannot load it")
        provider = get("sslProvider")
        if provider and provider.upper() not in ("JDK", "OPENSSL", "OPENSSL_REFCNT"):
            raise TlsConfigError(f"{prefix}sslProvider: {provider!r} is not JDK, OPENSSL or OPENSSL_REFCNT")
        if not quorum:
            _check_auth_provider(get("authProvider") or "x509", properties)
        enabled = get("enabledProtocols")
        if enabled is None:
            # Unset: Apache 3.8 enables TLSv1.2 only, 3.9 TLSv1.3 only (on Java 11+); we enable
            # both, so peers of either version connect. ssl.protocol set: that one only.
            protocols: tuple[str, ...] = (get("protocol"),) if get("protocol") else ("TLSv1.2", "TLSv1.3")
        else:
            protocols = tuple(p for p in enabled.split(","))
        ciphers_text = get("ciphersuites")
        ciphers = DEFAULT_CIPHERS if ciphers_text is None else tuple(ciphers_text.split(","))
        hostname = _java_bool(get("hostnameVerification"), True)
        client_hostname = True if quorum else _java_bool(get("clientHostnameVerification"), False)
        return cls(
            key_store=get("keyStore.location") or "",
            key_store_password=_password(get, "keyStore"),
            key_store_type=get("keyStore.type") or None,
            trust_store=get("trustStore.location") or "",
            trust_store_password=_password(get, "trustStore"),
            trust_store_type=get("trustStore.type") or None,
            client_auth=(get("clientAuth") or "need").lower(),
            protocols=protocols,
            ciphers=ciphers,
            verify_client_hostname=hostname and client_hostname,
            allow_reverse_dns=_java_bool(get("allowReverseDnsLookup"), quorum),
            x509_super_user=None if quorum else properties.get("zookeeper.X509AuthenticationProvider.superUser"),
            warnings=warnings,
            prefix=prefix,
            verify_server_hostname=hostname,
        )


def _check_auth_provider(scheme: str, properties: dict[str, str]) -> None:
    provider_class = properties.get(f"zookeeper.authProvider.{scheme}", X509_PROVIDER).strip()
    if provider_class != X509_PROVIDER:
        raise TlsConfigError(f"ssl.authProvider={scheme} names {provider_class}: only Apache's"
                             f" {X509_PROVIDER} is served (custom providers are Java code)")


def _password(get: Any, prefix: str) -> str:
    path = get(prefix + ".passwordPath")
    if path:
        return _read_secret(path)
    value = get(prefix + ".password")
    return value if value is not None else ""


def _protocol_range(protocols: tuple[str, ...], prefix: str = "ssl.") -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    versions = []
    for name in protocols:
        name = name.strip()
        for each in _GENERIC.get(name, (name,)):
            if each not in _PROTOCOLS:
                raise TlsConfigError(f"{prefix}enabledProtocols/{prefix}protocol: unsupported protocol {name!r}")
            versions.append(_PROTOCOLS[each])
    if not versions:
        raise TlsConfigError(f"{prefix}enabledProtocols names no protocol")
    return min(versions), max(versions)


def build_context(s: TlsSettings, server_side: bool = True) -> ssl.SSLContext:
    """An SSL context for these settings; raises TlsConfigError with the reason. The client
    side (a member dialing a peer) always checks the peer's certificate against the trust
    store, and its hostname is the caller's to check (Apache's ZKTrustManager rule)."""
    if not s.key_store:
        raise TlsConfigError(f"Keystore is required for SSL server: zookeeper.{s.prefix}keyStore.location")
    if s.client_auth not in ("need", "want", "none"):
        raise TlsConfigError(f"{s.prefix}clientAuth: {s.client_auth!r} is not none, want or need")
    try:
        material = keystores.load_key_store(s.key_store, s.key_store_password, s.key_store_type,
                                            s.prefix + "keyStore.type")
    except keystores.StoreError as e:
        raise TlsConfigError(f"{s.prefix}keyStore: {e}") from None
    try:
        trusted = (keystores.load_trust_store(s.trust_store, s.trust_store_password, s.trust_store_type,
                                              s.prefix + "trustStore.type") if s.trust_store else None)
    except keystores.StoreError as e:
        raise TlsConfigError(f"{s.prefix}trustStore: {e}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version, ctx.maximum_version = _protocol_range(s.protocols, s.prefix)
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # Apache sets jdk.tls.rejectClientInitiatedRenegotiation
    _set_ciphers(ctx, s.ciphers, s.prefix)
    _load_key(ctx, material)
    if server_side:
        ctx.verify_mode = {"need": ssl.CERT_REQUIRED, "want": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}[s.client_auth]
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
    if ctx.verify_mode != ssl.CERT_NONE:
        if trusted is None:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH if server_side else ssl.Purpose.SERVER_AUTH)
        else:
            from cryptography.hazmat.primitives.serialization import Encoding
            ctx.load_verify_locations(cadata="".join(c.public_bytes(Encoding.PEM).decode() for c in trusted))
    return ctx


def _set_ciphers(ctx: ssl.SSLContext, names: tuple[str, ...], prefix: str = "ssl.") -> None:
    openssl_names = []
    for name in names:
        name = name.strip()
        if name in TLS13_SUITES:
            continue  # Python's ssl module cannot narrow the TLS 1.3 suites; all stay enabled
        converted = iana_to_openssl(name)
        if converted is None:
            log.warning("%sciphersuites: %s is not a cipher suite OpenSSL offers; skipped", prefix, name)
            continue
        openssl_names.append(converted)
    if ctx.maximum_version < ssl.TLSVersion.TLSv1_3 and not openssl_names:
        raise TlsConfigError(f"{prefix}ciphersuites leaves no usable TLS 1.2 cipher suite")
    try:
        ctx.set_ciphers(":".join(openssl_names) if openssl_names else "!ALL")
    except ssl.SSLError:
        if ctx.maximum_version < ssl.TLSVersion.TLSv1_3:
            raise TlsConfigError(f"{prefix}ciphersuites: none of the suites is available here") from None


def _load_key(ctx: ssl.SSLContext, material: keystores.KeyMaterial) -> None:
    # The ssl module loads keys from files only: write them encrypted with a one-time password
    # into a private directory and remove them at once.
    secret = os.urandom(24).hex().encode()
    with tempfile.TemporaryDirectory(prefix="zkserver-tls-") as d:
        cert_path, key_path = os.path.join(d, "chain.pem"), os.path.join(d, "key.pem")
        for path, data in ((cert_path, material.chain_pem()), (key_path, material.key_pem(secret))):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ctx.load_cert_chain(cert_path, key_path, password=secret)
        except ssl.SSLError as e:
            raise TlsConfigError(f"the key store's key does not fit its certificate: {e}") from None


class StoreWatch(Generic[T]):
    """What is built from a key and trust store (SSL contexts), built again once one of their
    files is replaced or rewritten: looked at at most once a RELOAD_CHECK_INTERVAL, when a
    connection is made. A build that fails (a half-written file) keeps what there was."""

    def __init__(self, settings: TlsSettings, build: Callable[[], T], label: str):
        self.settings, self.build, self.label = settings, build, label
        self._stamp = keystores.file_stamp(settings.key_store, settings.trust_store)
        self._checked = time.monotonic()

    def rebuilt(self, current: T) -> T:
        """`current`, or what `build` makes of the stores once they changed."""
        now = time.monotonic()
        if now - self._checked < RELOAD_CHECK_INTERVAL:
            return current
        self._checked = now
        stamp = keystores.file_stamp(self.settings.key_store, self.settings.trust_store)
        if stamp == self._stamp:
            return current
        self._stamp = stamp
        try:
            made = self.build()
        except TlsConfigError as e:
            if current is None:
                log.error("%skey or trust store changed but still cannot be loaded: %s", self.label, e)
            else:
                log.warning("%skey or trust store changed but cannot be loaded (%s); keeping the previous"
                            " certificates", self.label, e)
            return current
        log.info("%skey or trust store changed: reloaded %s / %s", self.label, self.settings.key_store,
                 self.settings.trust_store or "(default trust)")
        return made


class TlsServer:
    """The current SSLContext of the secure port, rebuilt when a store file changes.

    Apache's Netty factory builds its SSL context for each new connection, so key or trust
    stores that are missing or unreadable at start-up fail the TLS clients, not the start. We
    start too, say so in the log, close TLS connections while there is no context, and build
    it when the files change.
    """

    def __init__(self, settings: TlsSettings):
        self.settings = settings
        self._watch = StoreWatch(settings, lambda: build_context(settings), "")
        self._ctx: ssl.SSLContext | None = None
        self.handshake_timeout = HANDSHAKE_TIMEOUT
        try:
            self._ctx = build_context(settings)
        except TlsConfigError as e:
            log.error("secure client port: %s; TLS connections are closed until the key and trust stores"
                      " can be loaded", e)

    def context(self) -> ssl.SSLContext | None:
        """The context for a new connection; None while the stores cannot be loaded."""
        self._ctx = self._watch.rebuilt(self._ctx)
        return self._ctx

    def identities(self, sslobj: ssl.SSLObject, ip: str) -> list[tuple[str, str]] | None:
        """The ids a completed handshake grants; None rejects the connection."""
        if self.settings.client_auth == "none":
            return []
        der = sslobj.getpeercert(binary_form=True)
        if not der:
            if self.settings.client_auth == "need":
                log.error("TLS client %s sent no certificate (ssl.clientAuth=need)", ip)
                return None
            return []
        try:
            cert = x509.load_der_x509_certificate(der)
            name = subject_name(cert)
        except (ValueError, DerError) as e:
            log.error("TLS client %s: cannot read its certificate: %s", ip, e)
            return None
        if self.settings.verify_client_hostname and not self._host_ok(cert, ip):
            log.error("TLS client %s: certificate %s does not name this address (ssl.clientHostnameVerification)",
                      ip, name)
            return None
        ids: list[tuple[str, str]] = []
        if self.settings.x509_super_user is not None and name == self.settings.x509_super_user:
            ids.append(("super", name))
            log.info("Authenticated Id '%s' as super user", name)
        ids.append(("x509", name))
        log.info("Authenticated Id '%s' for scheme 'x509'", name)
        return ids

    def _host_ok(self, cert: x509.Certificate, ip: str) -> bool:
        if ip_in_san(cert, ip):
            return True
        if not self.settings.allow_reverse_dns:
            return False
        import socket
        try:
            host = socket.gethostbyaddr(ip)[0]
        except OSError:
            return False
        return dns_in_san(cert, host)


class TlsClientProtocol(TlsStream):
    """One connection of the secure port: TLS, then the x509 identities, then ClientProtocol."""

    handshake_failed = "handshake failed"  # the log line already says it is TLS

    def __init__(self, runner: ServerRunner, tls: TlsServer):
        super().__init__(server_side=True, handshake_timeout=tls.handshake_timeout)
        self.runner = runner
        self.tls = tls
        self._ids: list[tuple[str, str]] = []

    def _context(self) -> ssl.SSLContext | None:
        return self.tls.context()

    def _verify(self) -> None:
        assert self.sslobj is not None
        ids = self.tls.identities(self.sslobj, self.ip)
        if ids is None:  # identities() has logged why
            self.close()
            return
        self._ids = ids
        self._open()

    def _make_inner(self) -> asyncio.Protocol:
        from ..shell.server import ClientProtocol

        return ClientProtocol(self.runner)

    def _opened(self) -> None:
        # Before the first request is read, so that request already runs with these ids.
        if self._ids and self.state == "open":
            self.runner.core.add_identities(self.inner.cid, self._ids)  # type: ignore[union-attr]

    def _report(self, reason: str) -> None:
        log.warning("closing TLS connection from %s: %s", self.ip, reason)
