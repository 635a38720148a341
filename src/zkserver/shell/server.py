"""The asyncio shell around ServerCore: sockets, timers, the log, and batched writes.

Each loop turn: every socket callback feeds complete frames to the core; one `pump` per turn
(scheduled with call_soon) hands the core's txn appends to the log, lets durable txns be
applied, then writes each connection's replies with a single transport.write and closes what
the core asked to close. Appends reach the log before any reply that depends on them leaves.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from .. import fourlw
from ..core import CoreSettings, ServerCore
from ..ops.stats import ServerStats
from ..proto.framing import FrameError, FrameSplitter
from ..storage.database import DiskStorage, StorageOptions, prepare_dirs, recover, recover_member
from ..storage.epochs import load_or_create_secret
from ..storage.memory import MemoryTxnLog
from ..storage.txnlog import StorageError
from .clock import SystemClock

log = logging.getLogger("zkserver.server")


@dataclass
class ServerOptions:
    host: str | None = None
    port: int = 2181
    settings: CoreSettings = field(default_factory=CoreSettings)
    four_letter_whitelist: frozenset[str] = frozenset({"srvr"})
    storage: StorageOptions | None = None  # None: keep the txn log in memory only
    plain_port: bool = True  # False: no clientPort in zoo.cfg, only the secure port listens
    secure_host: str | None = None
    secure_port: int | None = None  # secureClientPort: TLS (security.tls) beside the plain port
    tls: Any = None  # a security.tls.TlsServer when secure_port is set
    listen_backlog: int = -1  # clientPortListenBacklog; -1: the event loop's default (100)
    ensemble: Any = None  # shell.ensemble.EnsembleOptions: an ensemble member (needs `storage`)


class ClientProtocol(asyncio.Protocol):
    __slots__ = ("cid", "framing", "runner", "transport")

    def __init__(self, runner: ServerRunner):
        self.runner = runner
        self.framing = FrameSplitter(runner.core.settings.max_buffer)
        self.transport: asyncio.Transport | None = None
        self.cid = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check here.
        self.transport = transport  # type: ignore[assignment]
        self.cid = self.runner.register(self)
        if not self.runner.core.connection_made(self.cid, self.peer_ip()):
            transport.close()

    def peer_ip(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return peer[0] if peer else "0.0.0.0"

    def data_received(self, data: bytes) -> None:
        word = self.framing.four_letter_word(data)
        if word is not None:
            self.runner.four_letter_word(self, word, data)
            return
        try:
            frames = self.framing.feed(data)
        except FrameError as e:
            log.warning("closing connection from %s: %s", self.peer_ip(), e)
            self.transport.close()
            return
        self.runner.core.frames_received(self.cid, frames)
        self.runner.schedule_pump()

    # A client that sends without reading its replies must not make us buffer without bound:
    # while its transport's write buffer is over the high-water mark, stop reading from it.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.runner.unregister(self.cid)
        self.runner.schedule_pump()


class ServerRunner:
    def __init__(self, options: ServerOptions, secret: bytes | None = None):
        self.options = options
        self.clock = SystemClock()
        self.log: MemoryTxnLog | DiskStorage
        if options.storage is None:
            self.core = ServerCore(options.settings, self.clock, secret or os.urandom(32))
            self.log = MemoryTxnLog(self.core.persisted)
        else:
            self._open_storage(options.storage, secret)
        self.four_letter_whitelist = options.four_letter_whitelist
        self.stats = ServerStats()
        self.core.on_request_done = self.stats.request_done
        # Writes replayed at start-up are not counted (Apache counts them; they are not served).
        self.core.tree.namespace_stats = self.stats.namespaces
        self.protocols: dict[int, ClientProtocol] = {}
        self.asking_cid = 0  # the connection a four-letter word is being answered on
        self._next_cid = 1
        self._pump_scheduled = False
        self._pumping = False
        self._server: asyncio.base_events.Server | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = options.port
        self._secure_server: asyncio.base_events.Server | None = None
        self.secure_port = options.secure_port
        self.ensemble = None  # shell.ensemble.EnsembleShell of an ensemble member
        if options.ensemble is not None:
            self._join_ensemble(options.ensemble)

    def _join_ensemble(self, opts: Any) -> None:
        from .ensemble import EnsembleShell
        from .member import build_peer

        if not isinstance(self.log, DiskStorage):
            raise StorageError("an ensemble member keeps its txn log on disk (zkserver.storage=memory is"
                               " for standalone servers)")
        self.ensemble = EnsembleShell(self, opts, build_peer(self, opts, self._recovered, self._epochs))

    def _open_storage(self, opts: StorageOptions, secret: bytes | None) -> None:
        """Recover the tree and sessions from disk (raises StorageError with the reason)."""
        prepare_dirs(opts)
        if self.options.ensemble is not None:
            rec, self._epochs = recover_member(opts, self.options.settings.extended_types)
        else:
            rec = recover(opts, self.options.settings.extended_types)
        self._recovered = rec
        # Restored sessions keep their passwords only if the secret survives restarts too.
        secret = secret or load_or_create_secret(opts.snap_dir)
        self.core = ServerCore(self.options.settings, self.clock, secret, tree=rec.tree)
        now = self.clock.mono_ms()
        for sid, timeout in rec.sessions.items():
            self.core.sessions.add(sid, timeout, now)  # they expire unless their clients return
        self.log = DiskStorage(opts, rec.tree, self.core.sessions.timeouts,
                               self._persisted, self._storage_failed, digest=rec.digest)
        self.log.ensure_initial_snapshot()

    def _persisted(self, zxid: int) -> None:
        # The syncer's answers arrive outside any pump: the replies they release need one. If
        # none is due this turn, pump now rather than a loop turn later (fsync-bound latency);
        # never from inside a pump (a log without a syncer reports durability inline).
        if self.ensemble is not None:
            self.ensemble.persisted(zxid)
        else:
            self.core.persisted(zxid)
        if self._pump_scheduled or self._pumping or self._loop is None:
            self.schedule_pump()
        else:
            self.pump()

    def _storage_failed(self, exc: BaseException) -> None:
        # Nothing after the failed write can be made durable: the core refuses writes from
        # here on and keeps serving reads.
        log.error("The txn log failed (%s)", exc)
        if self.ensemble is not None:
            self.ensemble.storage_failed(exc)
        else:
            self.core.storage_failed()
        self.schedule_pump()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if isinstance(self.log, DiskStorage):
            self.log.start(self._loop)
        if self.options.plain_port:
            self._server = await self._loop.create_server(
                lambda: ClientProtocol(self), self.options.host, self.options.port, reuse_address=True,
                backlog=self._backlog())
            self.port = self._server.sockets[0].getsockname()[1]
            log.info("binding to port %s:%d", self.options.host or "0.0.0.0", self.port)
        if self.options.secure_port is not None:
            from ..security.tls import TlsClientProtocol

            tls = self.options.tls
            self._secure_server = await self._loop.create_server(
                lambda: TlsClientProtocol(self, tls), self.options.secure_host, self.options.secure_port,
                reuse_address=True, backlog=self._backlog())
            self.secure_port = self._secure_server.sockets[0].getsockname()[1]
            log.info("binding to secure port %s:%d", self.options.secure_host or "0.0.0.0", self.secure_port)
        if self.ensemble is not None:
            await self.ensemble.start()  # its timer ticks the core
        else:
            self._schedule_tick()

    def _backlog(self) -> int:
        return self.options.listen_backlog if self.options.listen_backlog > 0 else 100

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for server in (self._server, self._secure_server):
            if server is not None:
                server.close()
        for proto in list(self.protocols.values()):
            if proto.transport is not None:
                proto.transport.close()
        for server in (self._server, self._secure_server):
            if server is not None:
                await server.wait_closed()
        if self.ensemble is not None:
            await self.ensemble.stop()
        self.log.close()

    def _schedule_tick(self) -> None:
        assert self._loop is not None
        self._ticker = self._loop.call_later(self.options.settings.tick_ms / 1000, self._tick)

    def _tick(self) -> None:
        self.core.tick()
        self.pump()
        self._schedule_tick()

    # ------------------------------------------------------------ connections

    def register(self, proto: ClientProtocol) -> int:
        cid = self._next_cid
        self._next_cid += 1
        self.protocols[cid] = proto
        return cid

    def unregister(self, cid: int) -> None:
        self.protocols.pop(cid, None)
        self.core.connection_lost(cid)

    def peer_of(self, cid: int) -> str:
        proto = self.protocols.get(cid)
        peer = proto.transport.get_extra_info("peername") if proto and proto.transport else None
        return f"{peer[0]}:{peer[1]}" if peer else "unknown"

    def four_letter_word(self, proto: ClientProtocol, word: str, data: bytes = b"") -> None:
        self.core.packets_received += 1
        self.asking_cid = proto.cid
        fourlw.respond(self, proto, word, data)

    # ------------------------------------------------------------ the loop turn

    def schedule_pump(self) -> None:
        if not self._pump_scheduled and self._loop is not None:
            self._pump_scheduled = True
            self._loop.call_soon(self.pump)

    def pump(self) -> None:
        self._pump_scheduled = False
        self._pumping = True
        if self.ensemble is not None:
            self.ensemble.pump()
            self._pumping = False
            return
        core = self.core
        fx = core.take_effects()
        if fx.appends:
            self.log.append(fx.appends)
            later = core.take_effects()
            for cid, frames in later.out.items():
                fx.out.setdefault(cid, []).extend(frames)
            fx.close.extend(later.close)
        self.write_client(fx)
        self._pumping = False

    def write_client(self, fx: Any) -> None:
        """Each connection's frames in one write, then the closes the core asked for."""
        for cid, frames in fx.out.items():
            proto = self.protocols.get(cid)
            if proto is not None and proto.transport is not None:
                proto.transport.write(b"".join(frames))
        for cid in fx.close:
            proto = self.protocols.get(cid)
            if proto is not None and proto.transport is not None:
                proto.transport.close()
