"""The election port over asyncio: Apache 3.8's QuorumCnxManager, without threads.

Theory of operation. Every pair of members keeps one TCP connection, and it is the one the
larger sid opened:

- Dialling (`connect_one`): connect within `zookeeper.cnxTimeout`, send the initial message
  (who I am, where I listen) in one write. If the peer's sid is larger, close: it will dial
  back. Otherwise the connection is *the* link to that sid (an older one is closed).
- Accepting: read the initial message (within the handshake timeout). A smaller sid is
  dropped, its old link too, and dialled back (at the address it sent, else the config's);
  my own sid is a configuration error (logged, closed); a larger sid becomes its link. Sids
  not in the config are not refused: a larger one is kept (FLE answers it as a non-voter),
  a smaller one is dialled back if it said where.
- Sending: one slot per peer holding only the newest unsent payload (Apache's queue of
  capacity 1), written at once when the link can take it, else when it can. A new link
  first re-sends the last payload sent to that peer if the slot is empty (the peer may not
  have read it: expect duplicates). Sending to a peer without a link dials it. Sending to
  myself loops back through `on_message` on the next loop turn.
- Receiving: `int length` + payload frames, handed to `on_message(sid, payload)` in order.

Bad bytes never stop anything but their own connection: a malformed initial message or frame
length closes that connection with a log line (ZOOKEEPER-3769); the listener keeps
accepting. (Apache 3.8's listener dies on an out-of-range port in an initial message; ours
refuses that connection only.) A payload that is not a notification is the FLE driver's to
drop. Binding retries `zookeeper.electionPortBindRetry` times, a second apart, then raises
ElectionBindError (the server exits with code 14).

With `sslQuorum=true` every connection, dialled or accepted, is TLS with mutual authentication
(shell/quorum_tls.py) before the initial message; the rules above apply inside it unchanged.
With `portUnification=true` accepted connections may be either (dialled ones are TLS with
sslQuorum only). SASL (`quorum.auth.enableSasl`) is not served: `ElectionNetSettings.from_config`
refuses configs that ask for it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import ConfigError, ServerConfig
from ..proto.election_codec import (
    OBSERVER_ID,
    PROTOCOL_VERSION_V1,
    PROTOCOL_VERSION_V2,
    ElectionCodecError,
    ElectionStreamDecoder,
    InitialMessage,
    encode_frame,
)
from .sockopts import PLAIN_LINKS, no_delay

if TYPE_CHECKING:
    from .quorum_tls import QuorumTls

log = logging.getLogger("zkserver.election.net")

Address = tuple[str, int]


class ElectionBindError(OSError):
    """The election port could not be bound after every retry: the server exits with
    `exit_code` (Apache's ExitCode.UNABLE_TO_BIND_QUORUM_PORT)."""

    exit_code = 14


@dataclass(frozen=True)
class ElectionNetSettings:
    connect_timeout_ms: int = 5000  # zookeeper.cnxTimeout
    handshake_timeout_ms: int = 5000  # quorumCnxnTimeoutMs, else tickTime * syncLimit
    bind_retries: int = 3  # zookeeper.electionPortBindRetry; 0 = for ever
    bind_retry_delay_s: float = 1.0
    listen_on_all_ips: bool = False  # quorumListenOnAllIPs
    multi_address: bool = False  # multiAddress.enabled: protocol V2, every address sent
    tcp_keep_alive: bool = False  # zookeeper.tcpKeepAlive
    tls: QuorumTls | None = None  # sslQuorum (TLS only), portUnification (TLS or plaintext accepted)

    @classmethod
    def from_config(cls, cfg: ServerConfig) -> ElectionNetSettings:
        """The settings of this config; a ConfigError for what the election port does not serve."""
        if cfg.quorum_enable_sasl:
            raise ConfigError(cfg.source_path, cfg.key_lines.get("quorum.auth.enableSasl"),
                              "quorum.auth.enableSasl: SASL on the quorum and election ports is not served")
        return cls(cfg.election_connect_timeout_ms, cfg.election_handshake_timeout_ms, cfg.election_port_bind_retry,
                   1.0, cfg.quorum_listen_on_all_ips, cfg.multi_address_enabled, cfg.tcp_keep_alive,
                   _quorum_tls(cfg) if cfg.ssl_quorum or cfg.port_unification else None)


def _quorum_tls(cfg: ServerConfig) -> QuorumTls:
    """The ssl.quorum.* contexts of sslQuorum (TLS out and in) and portUnification (TLS or
    plaintext in); a ConfigError naming the key when unusable."""
    key = "sslQuorum" if cfg.ssl_quorum else "portUnification"
    line = cfg.key_lines.get(key)
    try:
        from ..security.tls import TlsConfigError, TlsSettings
        from .quorum_tls import QuorumTls
    except ImportError as e:  # cryptography is the optional extra zkserver[tls]
        raise ConfigError(cfg.source_path, line, f"{key} needs the tls extra (pip install 'zkserver[tls]'):"
                                                 f" {e}") from None
    try:
        settings = TlsSettings.from_config(cfg.ssl, cfg.properties, prefix="ssl.quorum.")
        if not settings.trust_store:
            raise TlsConfigError("a trust store is required: zookeeper.ssl.quorum.trustStore.location")
        for warning in settings.warnings:
            log.warning("%s", warning)
        return QuorumTls(settings, dial_tls=cfg.ssl_quorum, accept_plain=cfg.port_unification,
                         reload=cfg.ssl_quorum_reload_cert_files)
    except TlsConfigError as e:
        raise ConfigError(cfg.source_path, line, f"{key}: {e}") from None


class _Link(asyncio.Protocol):
    """One election connection, dialled or accepted."""

    def __init__(self, net: ElectionNet, sid: int | None) -> None:
        self.net = net
        self.sid = sid  # None until an accepted connection's initial message is read
        self.dialled = sid is not None
        self.decoder = ElectionStreamDecoder(handshake=sid is None)
        self.transport: asyncio.Transport | None = None
        self.writable = True
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None

    def peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return f"{peer[0]}:{peer[1]}" if peer else "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        no_delay(transport, self.net.settings.tcp_keep_alive)
        self.net._links.add(self)
        if self.sid is None:
            timeout = self.net.settings.handshake_timeout_ms / 1000
            self._timer = asyncio.get_running_loop().call_later(timeout, self._handshake_timeout)

    def _handshake_timeout(self) -> None:
        if not self.decoder.handshake_done:
            log.warning("election connection from %s: no initial message within %d ms; closing",
                        self.peer(), self.net.settings.handshake_timeout_ms)
            self.close()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.decoder.feed(data)
        except ElectionCodecError as exc:
            log.warning("election connection from %s (sid %s): %s; closing", self.peer(), self.sid, exc)
            self.close()
            return
        for event in events:
            if self.closed:
                return
            if isinstance(event, InitialMessage):
                self._cancel_timer()
                self.net._accepted(self, event)
            elif self.net._links_by_sid.get(self.sid) is self:  # type: ignore[arg-type]
                self.net.on_message(self.sid, event)  # type: ignore[arg-type]

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        if self.sid is not None:
            self.net._flush(self.sid)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self.net._lost(self)

    def write(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(encode_frame(payload))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._cancel_timer()
            if self.transport is not None:
                self.transport.close()
            self.net._lost(self)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ElectionNet:
    """One member's election connections: see the module docstring."""

    def __init__(self, my_sid: int, my_addresses: Sequence[Address], peers: Mapping[int, Sequence[Address]],
                 on_message: Callable[[int, bytes], None], settings: ElectionNetSettings | None = None) -> None:
        self.my_sid = my_sid
        self.my_addresses = list(my_addresses)
        self.peers = {sid: list(addrs) for sid, addrs in peers.items()}
        self.on_message = on_message
        self.settings = settings or ElectionNetSettings()
        self._servers: list[asyncio.AbstractServer] = []
        self._links: set[_Link] = set()
        self._links_by_sid: dict[int, _Link] = {}
        self._slots: dict[int, bytes | None] = {}  # queueSendMap: one newest unsent payload per peer
        self._last_sent: dict[int, bytes] = {}
        self._dialling: dict[int, asyncio.Task[None]] = {}
        self._observer_ids = -1  # Apache's stand-in ids for observers that send OBSERVER_ID
        self._advertised: list[Address] = []
        self._closed = False

    # -- life cycle

    async def start(self) -> None:
        """Bind the listener(s), retrying; ElectionBindError when every try failed."""
        # Resolved before binding: a peer may dial in the moment we listen, and its dial-back
        # must already name us.
        self._advertised = await self._resolve(self.my_addresses)
        targets = self._listen_targets()
        attempt = 0
        while True:
            attempt += 1
            try:
                for host, port in targets:
                    server = await asyncio.get_running_loop().create_server(
                        self._accept_factory(), host, port, reuse_address=True)
                    self._servers.append(server)
                break
            except OSError as exc:
                for server in self._servers:
                    server.close()
                self._servers.clear()
                log.error("election port %s: %s (try %d)", targets, exc, attempt)
                if 0 < self.settings.bind_retries <= attempt:
                    raise ElectionBindError(exc.errno, f"cannot bind the election port {targets} after {attempt}"
                                            f" tries: {exc.strerror or exc}") from exc
                await asyncio.sleep(self.settings.bind_retry_delay_s)
        log.info("sid %d: election port listening on %s", self.my_sid, self.bound_addresses())

    def _accept_factory(self) -> Callable[[], asyncio.Protocol]:
        links = self.settings.tls or PLAIN_LINKS
        return links.acceptor(lambda: _Link(self, None), "election", lambda: not self._closed)

    def _listen_targets(self) -> list[tuple[str | None, int]]:
        if self.settings.listen_on_all_ips:
            return [(None, port) for port in dict.fromkeys(port for _, port in self.my_addresses)]
        return [(host, port) for host, port in self.my_addresses]

    async def _resolve(self, addresses: Sequence[Address]) -> list[Address]:
        # Apache sends its address resolved to an IP (NetUtils.formatInetAddr).
        out = []
        loop = asyncio.get_running_loop()
        for host, port in addresses:
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                out.append((str(infos[0][4][0]), port))
            except OSError:
                out.append((host, port))
        return out

    def bound_addresses(self) -> list[Address]:
        return [sock.getsockname()[:2] for server in self._servers for sock in server.sockets]

    def close(self) -> None:
        self._closed = True
        for server in self._servers:
            server.close()
        for task in self._dialling.values():
            task.cancel()
        for link in list(self._links):
            link.close()

    # -- sending

    def send(self, sid: int, payload: bytes) -> None:
        """Queue `payload` for `sid`, replacing an unsent older one; dial if not connected."""
        if sid == self.my_sid:
            asyncio.get_running_loop().call_soon(self.on_message, sid, payload)
            return
        self._slots[sid] = payload
        if sid in self._links_by_sid:
            self._flush(sid)
        else:
            self.connect_one(sid)

    def _flush(self, sid: int) -> None:
        link = self._links_by_sid.get(sid)
        payload = self._slots.get(sid)
        if link is None or payload is None or not link.writable:
            return
        self._slots[sid] = None
        self._last_sent[sid] = payload
        link.write(payload)

    def connected(self, sid: int) -> bool:
        return sid in self._links_by_sid

    def connections(self) -> dict[int, str]:
        """Each peer with a link, and whether I "dialled" or "accepted" it."""
        return {sid: "dialled" if link.dialled else "accepted" for sid, link in self._links_by_sid.items()}

    # -- connecting

    def connect_all(self) -> None:
        """Dial every peer something was ever queued for and that has no link."""
        for sid in list(self._slots):
            self.connect_one(sid)

    def connect_one(self, sid: int, addresses: Sequence[Address] | None = None) -> None:
        if self._closed or sid in self._links_by_sid or sid in self._dialling:
            return
        targets = list(addresses) if addresses else self.peers.get(sid, [])
        if not targets:
            log.warning("sid %d: invalid server id %d: no election address to dial", self.my_sid, sid)
            return
        self._dialling[sid] = asyncio.get_running_loop().create_task(self._dial(sid, targets))

    async def _dial(self, sid: int, targets: list[Address]) -> None:
        timeout = self.settings.connect_timeout_ms / 1000
        try:
            for host, port in targets:
                try:
                    link = await asyncio.wait_for(self._connect(sid, host, port), timeout)
                except (OSError, TimeoutError) as exc:
                    # A down peer is routine (info); a failed TLS handshake says its own level.
                    log.log(getattr(exc, "log_level", logging.INFO), "sid %d: cannot open an election connection"
                            " to %d at %s:%d: %s", self.my_sid, sid, host, port, exc or type(exc).__name__)
                    continue
                self._started(link)
                return
        finally:
            # Done in the same step that installed the link: a dial-back request arriving
            # right after must not find this dial still "in progress" and be skipped.
            self._dialling.pop(sid, None)

    async def _connect(self, sid: int, host: str, port: int) -> _Link:
        link = _Link(self, sid)
        await (self.settings.tls or PLAIN_LINKS).dial(link, host, port, "election")
        return link

    def _started(self, link: _Link) -> None:
        """A dialled connection is up: introduce myself; keep it only if my sid is the larger."""
        if link.closed:  # lost before the dial returned: nothing to introduce, nothing to keep
            return
        version = PROTOCOL_VERSION_V2 if self.settings.multi_address else PROTOCOL_VERSION_V1
        advertised = self._advertised if self.settings.multi_address else self._advertised[:1]
        assert link.transport is not None and link.sid is not None
        if link.closed:
            # Reset before this step ran (a peer, or a proxy, that accepts and drops at once): a
            # failed dial. Writing would raise on uvloop and install a dead link on asyncio.
            log.info("sid %d: election connection to %d closed as it opened", self.my_sid, link.sid)
            return
        link.transport.write(InitialMessage(self.my_sid, tuple(advertised), version).encode())
        if link.sid > self.my_sid:
            link.close()  # the larger sid dials; it will call back after reading who I am
            return
        self._install(link.sid, link)

    # -- accepting

    def _accepted(self, link: _Link, message: InitialMessage) -> None:
        sid = message.sid
        if sid == OBSERVER_ID:
            sid, self._observer_ids = self._observer_ids, self._observer_ids - 1
        link.sid = sid
        if sid < self.my_sid:
            old = self._links_by_sid.get(sid)
            if old is not None:
                old.close()
            link.close()
            self.connect_one(sid, message.addresses or None)
        elif sid == self.my_sid:
            log.warning("election connection from %s claims my own sid %d: a configuration error? closing",
                        link.peer(), sid)
            link.close()
        else:
            self._install(sid, link)

    def _install(self, sid: int, link: _Link) -> None:
        old = self._links_by_sid.get(sid)
        self._links_by_sid[sid] = link
        if old is not None and old is not link:
            old.close()
        log.info("sid %d: election connection to %d up (%s)", self.my_sid, sid, link.peer())
        if self._slots.get(sid) is None and sid in self._last_sent:
            self._slots[sid] = self._last_sent[sid]  # SendWorker: re-send the last message
        self._slots.setdefault(sid, None)
        self._flush(sid)

    def _lost(self, link: _Link) -> None:
        self._links.discard(link)
        if link.sid is not None and self._links_by_sid.get(link.sid) is link:
            del self._links_by_sid[link.sid]
            log.info("sid %d: election connection to %d closed", self.my_sid, link.sid)
