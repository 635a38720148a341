"""ServerCore: the deterministic heart of a standalone server, driven by inputs, emitting effects.

Theory of operation. The shell feeds the core: `connection_made`, `frames_received` (the
complete frames of one socket read), `connection_lost`, `tick`, and `persisted(zxid)` when the
log is durable up to a zxid. The core never touches sockets, files, clocks or randomness; it
reads time from the injected clock, once per input, and leaves its effects in `Effects`:
frames to write per connection, connections to close, and txns to append to the log.

Requests go through one ordered pipeline (Apache standalone's Prep -> Sync -> Final):
  - a write is validated at once against the tree plus the writes in flight (prep.Pending),
    gets the next zxid and is handed to the log;
  - a write waits in `pipeline` until it is durable; then it is applied to the tree, its watch
    events go out, and the reply follows them;
  - a read waits there only behind requests of its own session (Apache's CommitProcessor holds a
    session's reads behind that session's pending writes); a sync waits behind every write.
So replies of a session come in request order, and a read sees every write its session
submitted before it, and every write acknowledged to anyone before it arrived.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .jute.codec import JuteError, Reader, Writer, encode_ustring
from .jute.codes import XID_NOTIFICATION, XID_PING, Err, KeeperState, Op
from .jute.records import (
    MULTI_HEADER,
    REQUEST_DECODERS,
    REQUEST_HEADER,
    ConnectRequest,
    CreateSessionTxn,
    ErrorTxn,
    TxnHeader,
    encode_connect_response,
    encode_reply,
    encode_watcher_event,
    read_multi,
)
from .prep import Preparer
from .reads import READ_HANDLERS, ReadHandler
from .session import SessionTable
from .tree.acl import AuthPolicy, Identity, KeeperError
from .tree.datatree import DataTree, TxnResult
from .tree.quota import QuotaPolicy

log = logging.getLogger("zkserver.core")


class Clock(Protocol):
    def wall_ms(self) -> int: ...
    def mono_ms(self) -> int: ...


@dataclass
class CoreSettings:
    tick_ms: int = 2000
    min_session_timeout: int = 4000
    max_session_timeout: int = 40000
    server_id: int = 0
    max_client_cnxns: int = 60
    max_cnxns: int = 0
    max_buffer: int = 0xFFFFF
    extended_types: bool = False
    super_digest: str | None = None
    skip_acl: bool = False
    enforce_quota: bool = False
    digest_auth_enabled: bool = True
    reconfig_enabled: bool = False
    local_sessions: bool = False  # localSessionsEnabled (ensemble members only, as in Apache)
    local_sessions_upgrading: bool = False  # localSessionsUpgradingEnabled
    exists_checks_read: bool = True  # 3.9.2+; False gives 3.8.0's exists (no READ check)
    container_check_interval_ms: int = 60000
    container_max_per_minute: int = 10000
    container_max_never_used_ms: int = 0
    # Secure connections (security/): providers, super users, SASL server settings, enforcement.
    x509_enabled: bool = False
    x509_super_user: str | None = None
    sasl_enabled: bool = False  # authProvider.N=...SASLAuthenticationProvider
    sasl_any_user: str | None = None  # zookeeper.letAnySaslUserDoX
    sasl: Any = None  # security.sasl.SaslSettings; None: no JAAS Server section
    enforce_auth_schemes: tuple[str, ...] = ()  # non-empty: enforce.auth.enabled


class Conn:
    """A client connection as the core sees it; also the key of its watches."""

    __slots__ = ("cid", "closing", "has_ro", "ids", "ip", "local", "session_id", "stats", "timeout")

    def __init__(self, cid: int, ip: str):
        self.cid = cid
        self.ip = ip
        self.session_id: int | None = None
        self.ids: list[Identity] = [("ip", ip)]
        self.closing = False
        self.has_ro = True
        self.timeout = 0
        self.stats = ConnStats()
        self.local = False  # its session is a local session

    def __repr__(self) -> str:
        return f"Conn({self.cid}, 0x{(self.session_id or 0) & 0xFFFFFFFFFFFFFFFF:x})"


@dataclass(slots=True)
class ConnStats:
    """Apache's ServerCnxn statistics; the shell's ops.stats updates the response fields."""

    received: int = 0
    sent: int = 0
    last_op: str = "NA"
    last_zxid: int = -1
    established: int = 0  # wall-clock ms
    last_opcode: int = 0  # 0: none yet
    last_cxid: int = -1
    last_latency: int = 0
    last_response: int = 0  # monotonic ms
    lat_count: int = 0
    lat_total: int = 0
    lat_min: int = 1 << 62
    lat_max: int = 0


@dataclass(slots=True)
class Request:
    conn: Conn | None
    xid: int
    op: int
    frame: bytes  # the whole request frame; its body starts at BODY_AT
    session_id: int
    # Passed by position where requests are made per frame: keywords cost ~0.2 us per call.
    received_ms: int = 0
    hdr: TxnHeader | None = None
    txn: object = None
    # On a learner: FORWARDED until the leader's answer (its commit, or SYNC) is in, then ANSWERED.
    forward: int = 0
    rc: TxnResult | None = None  # a forwarded write's outcome, kept until its turn to reply
    ids: list[Identity] | None = None  # a learner's request on the leader: its connection's ids


# Request.forward
LOCAL, FORWARDED, ANSWERED = 0, 1, 2


class Role:
    """What stands behind the commit step (DESIGN.md §5c). A LOOKING member serves no client."""

    STANDALONE = "standalone"
    LEADER = "leader"
    FOLLOWER = "follower"
    OBSERVER = "observer"
    LOOKING = "looking"


@dataclass
class Effects:
    out: dict[int, list[bytes]] = field(default_factory=dict)
    close: list[int] = field(default_factory=list)
    appends: list[tuple[TxnHeader, object]] = field(default_factory=list)
    # A learner's: requests for the leader, and sessions to revalidate with it (id, timeout).
    forwards: list[Request] = field(default_factory=list)
    revalidations: list[tuple[int, int]] = field(default_factory=list)


# `check` is valid only inside a multi (Apache's Request.isValid); deleteContainer is valid from
# clients too, and skips the ACL check as the container sweeper's does.
WRITE_OPS = frozenset({
    Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL, Op.DELETE, Op.DELETE_CONTAINER,
    Op.SET_DATA, Op.SET_ACL, Op.MULTI, Op.RECONFIG,
})


BODY_AT = REQUEST_HEADER.size

# Multi results: each one's MultiHeader{type, done, err}, then its body; an error result's body
# is its code again.
_MULTI_ERROR = struct.Struct(">i?ii")
_MULTI_CREATE = MULTI_HEADER.pack(Op.CREATE, False, 0)
_MULTI_CREATE2 = MULTI_HEADER.pack(Op.CREATE2, False, 0)
_MULTI_SET_DATA = MULTI_HEADER.pack(Op.SET_DATA, False, 0)
_MULTI_DELETE = MULTI_HEADER.pack(Op.DELETE, False, 0)
_MULTI_DONE = MULTI_HEADER.pack(-1, True, -1)
_STAT_CREATES = frozenset({Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER})


class ServerCore:
    def __init__(self, settings: CoreSettings, clock: Clock, secret: bytes, tree: DataTree | None = None):
        self.settings = settings
        self.clock = clock
        self.tree = tree or DataTree(extended_types=settings.extended_types)
        self.auth = AuthPolicy(settings.super_digest, settings.skip_acl, settings.digest_auth_enabled,
                               x509=settings.x509_enabled, x509_super_user=settings.x509_super_user,
                               sasl=settings.sasl_enabled, sasl_any_user=settings.sasl_any_user)
        self.sasl_servers: dict[int, Any] = {}  # cid -> the SASL server in progress (security.sasl.new_server)
        self.enforce_auth = frozenset(settings.enforce_auth_schemes)
        self.prep = Preparer(self.tree, self.auth, QuotaPolicy(self.tree, settings.enforce_quota),
                             settings.extended_types)
        self.sessions = SessionTable(settings.tick_ms, settings.server_id, secret, clock.mono_ms())
        self.zxid = self.tree.last_processed_zxid
        self.conns: dict[int, Conn] = {}
        self.conns_per_ip: dict[str, int] = {}
        self.pipeline: deque[Request] = deque()
        self.queued: dict[int, int] = {}  # session id -> its requests waiting in `pipeline`
        self.durable_zxid = self.zxid
        self.fx = Effects()
        self.packets_received = 0
        self.packets_sent = 0
        # (conn, opcode, xid, latency ms, is a write, now ms) of every answered request
        self.on_request_done: Callable[[Conn, int, int, int, bool, int], None] | None = None
        self.now_ms = clock.mono_ms()  # read at each entry point that can answer requests
        self.sweeper = ContainerSweeper(settings, clock.mono_ms())
        # Set when the log can no longer make writes durable: reads go on, writes are refused.
        self.log_failed = False
        self.role = Role.STANDALONE
        self.rollover = False  # a leader ran out of zxids in its epoch: it must step down
        self._learner = False  # follower or observer: writes go to the leader
        self.forwarded: dict[int, deque[Request]] = {}  # learner: a session's writes awaiting their commit
        self.pending_syncs: deque[Request] = deque()  # learner: syncs awaiting the leader's SYNC
        self.revalidating: dict[int, list[Conn]] = {}  # learner: reconnects awaiting the leader's word
        self.touched: dict[int, int] = {}  # learner: sessions touched since the last PING (id -> timeout)
        # Called with each txn as it is applied (the ensemble's committed log).
        self.on_applied: Callable[[TxnHeader, object], None] | None = None

    # ------------------------------------------------------------ effects

    def take_effects(self) -> Effects:
        fx, self.fx = self.fx, Effects()
        return fx

    def _send(self, conn: Conn, frame: bytes) -> None:
        cid = conn.cid
        if cid in self.conns:
            out = self.fx.out
            frames = out.get(cid)
            if frames is None:
                out[cid] = [frame]
            else:
                frames.append(frame)
            conn.stats.sent += 1
            self.packets_sent += 1

    def _close(self, conn: Conn) -> None:
        if not conn.closing:
            conn.closing = True
            self.fx.close.append(conn.cid)

    def notify(self, conn: Conn, etype: int, path: str, zxid: int) -> None:
        body = encode_watcher_event(etype, KeeperState.SYNC_CONNECTED, path)
        self._send(conn, encode_reply(XID_NOTIFICATION, zxid, 0, body))

    def _deliver_events(self) -> None:
        events = self.tree.events
        if not events:
            return
        self.tree.events = []
        key: tuple | None = None
        frame = b""
        for ev in events:
            conn = ev.watcher
            if ev.acl is not None and not self.auth.check(ev.acl, 1, conn.ids):
                continue  # no READ on the node: the event would leak its path (CVE-2024-23944)
            # The watchers of one node get the same bytes: encode them once per event.
            if key != (ev.type, ev.path, ev.zxid):
                key = (ev.type, ev.path, ev.zxid)
                body = encode_watcher_event(ev.type, KeeperState.SYNC_CONNECTED, ev.path)
                frame = encode_reply(XID_NOTIFICATION, ev.zxid, 0, body)
            self._send(conn, frame)

    # ------------------------------------------------------------ connections

    def connection_made(self, cid: int, ip: str) -> bool:
        """False when the per-IP limit refuses the connection; the shell then closes it."""
        limit = self.settings.max_client_cnxns
        if limit and self.conns_per_ip.get(ip, 0) >= limit:
            log.warning("Too many connections from %s - max is %d", ip, limit)
            return False
        if self.settings.max_cnxns and len(self.conns) >= self.settings.max_cnxns:
            log.warning("Too many connections - max is %d", self.settings.max_cnxns)
            return False
        conn = self.conns[cid] = Conn(cid, ip)
        conn.stats.established = self.clock.wall_ms()
        self.conns_per_ip[ip] = self.conns_per_ip.get(ip, 0) + 1
        return True

    def connection_lost(self, cid: int) -> None:
        conn = self.conns.pop(cid, None)
        if conn is None:
            return
        self.sasl_servers.pop(cid, None)
        left = self.conns_per_ip.get(conn.ip, 1) - 1
        if left:
            self.conns_per_ip[conn.ip] = left
        else:
            self.conns_per_ip.pop(conn.ip, None)
        conn.closing = True
        self.tree.remove_watcher(conn)
        session = self.sessions.sessions.get(conn.session_id) if conn.session_id is not None else None
        if session is not None and session.connection is conn:
            session.connection = None

    def frame_received(self, cid: int, frame: bytes) -> None:
        self.frames_received(cid, (frame,))

    def frames_received(self, cid: int, frames: Iterable[bytes]) -> None:
        """The complete frames one read from a connection produced, in order. The clock is read
        and the session touched once for them all: per request, both showed in read profiles."""
        conn = self.conns.get(cid)
        if conn is None:
            return
        now = self.now_ms = self.clock.mono_ms()
        touched = False
        for frame in frames:
            if conn.closing:
                return
            self.packets_received += 1
            conn.stats.received += 1
            try:
                if conn.session_id is None:
                    self._connect(conn, frame)
                    continue
                if not touched:
                    self.sessions.touch(conn.session_id, now)
                    if self._learner and not conn.local:
                        self.touched[conn.session_id] = conn.timeout
                    touched = True
                self._request(conn, frame)
            except JuteError as e:
                log.warning("closing connection from %s: malformed packet: %s", conn.ip, e)
                self._close(conn)
            except Exception:
                # Our bug, not the peer's: say so loudly, but lose only this connection.
                log.exception("internal error handling a packet from %s; closing that connection", conn.ip)
                self._close(conn)

    # ------------------------------------------------------------ sessions

    def _connect(self, conn: Conn, frame: memoryview | bytes) -> None:
        if self.role == Role.LOOKING:
            # Apache: "ZooKeeperServer not running"; the client tries another server.
            self._close(conn)
            return
        req = ConnectRequest.read(frame)
        conn.has_ro = req.has_read_only_byte
        if req.last_zxid_seen > self.tree.last_processed_zxid:
            log.info("Refusing session 0x%x: client has seen zxid 0x%x, our last zxid is 0x%x",
                     req.session_id & 0xFFFFFFFFFFFFFFFF, req.last_zxid_seen, self.tree.last_processed_zxid)
            self._close(conn)
            return
        s = self.settings
        conn.timeout = min(max(req.timeout, s.min_session_timeout), s.max_session_timeout)
        if req.session_id == 0:
            sid = self.sessions.allocate_id()
            conn.session_id = sid
            if self._local_sessions():
                self._local_session(conn, sid)
                return
            if not self._learner:  # a learner tracks the session once the leader committed it
                session = self.sessions.add(sid, conn.timeout, self.clock.mono_ms())
                session.connection = conn
            self._submit(Request(conn, 0, Op.CREATE_SESSION, b"", sid), CreateSessionTxn(conn.timeout))
            return
        conn.session_id = req.session_id
        session = self.sessions.sessions.get(req.session_id)
        if session is not None and session.connection is not None and session.connection is not conn:
            self._close(session.connection)
        if self._learner and (session is None or not session.local):
            self._revalidate(conn, req.session_id, req.passwd)
            return
        valid = session is not None and self.sessions.check_password(req.session_id, req.passwd)
        conn.local = valid and session.local  # type: ignore[union-attr]
        if valid:
            # Apache touches the session with the timeout this connection negotiated.
            session.timeout = conn.timeout
            valid = self.sessions.touch(req.session_id, self.clock.mono_ms())
        if valid:
            session.connection = conn
        self._finish_connect(conn, valid)

    def _finish_connect(self, conn: Conn, valid: bool) -> None:
        sid = conn.session_id or 0
        body = encode_connect_response(
            conn.timeout if valid else 0,
            sid if valid else 0,
            self.sessions.password(sid) if valid else bytes(16),
            False if conn.has_ro else None,
        )
        self._send(conn, len(body).to_bytes(4, "big") + body)
        if not valid:
            log.info("Invalid session 0x%x for client %s, probably expired", sid & 0xFFFFFFFFFFFFFFFF, conn.ip)
            self._close(conn)

    def _foreign_local_session(self, session_id: int) -> bool:
        """With local sessions on, a leader takes a session it does not know for another
        member's local session (its creator's id is in the top byte), as LeaderSessionTracker."""
        return (self.role == Role.LEADER and self.settings.local_sessions
                and (session_id >> 56) != self.settings.server_id)

    def _local_sessions(self) -> bool:
        return self.settings.local_sessions and self.role in (Role.LEADER, Role.FOLLOWER, Role.OBSERVER)

    def _local_session(self, conn: Conn, sid: int) -> None:
        """A local session (localSessionsEnabled): this server alone knows it; no txn."""
        session = self.sessions.add(sid, conn.timeout, self.clock.mono_ms())
        session.local = conn.local = True
        session.connection = conn
        self._finish_connect(conn, True)

    def _revalidate(self, conn: Conn, session_id: int, passwd: bytes) -> None:
        """A learner checks the password itself and asks the leader, which owns session expiry,
        whether the session lives (Apache's Learner.revalidateSession)."""
        if not self.sessions.check_password(session_id, passwd):
            self._finish_connect(conn, False)
            return
        waiting = self.revalidating.setdefault(session_id, [])
        waiting.append(conn)
        if len(waiting) == 1:
            self.fx.revalidations.append((session_id, conn.timeout))

    def revalidated(self, session_id: int, valid: bool) -> None:
        """The leader's answer to a revalidation (learner)."""
        self.now_ms = now = self.clock.mono_ms()
        for conn in self.revalidating.pop(session_id, ()):
            if conn.closing:
                continue
            if valid:
                session = self.sessions.sessions.get(session_id) or self.sessions.add(session_id, conn.timeout, now)
                if session.connection is not None and session.connection is not conn:
                    self._close(session.connection)
                session.timeout = conn.timeout
                session.connection = conn
                self.touched[session_id] = conn.timeout
            self._finish_connect(conn, valid)

    def tick(self) -> None:
        if self.role == Role.LOOKING:
            return
        now = self.now_ms = self.clock.mono_ms()
        leads = self.role in (Role.STANDALONE, Role.LEADER)
        for session in self.sessions.expired(now, local_only=not leads):
            log.info("Expiring session 0x%x, timeout of %dms exceeded",
                     session.session_id & 0xFFFFFFFFFFFFFFFF, session.timeout)
            if session.local:
                self._end_local_session(session.session_id, None)
            else:
                self._submit(Request(None, 0, Op.CLOSE_SESSION, b"", session.session_id), None)
        if not leads:
            return  # only the leader expires global sessions and sweeps containers
        if self.log_failed:
            return
        for path in self.sweeper.due(now, self.clock.wall_ms(), self.tree):
            log.info("Attempting to delete candidate container: %s", path)
            self._submit(Request(None, 0, Op.DELETE_CONTAINER, b"", 0), path)

    def expire_session(self, session_id: int) -> bool:
        """Expire a session now, as if its timeout had passed (tests and admin tools)."""
        session = self.sessions.sessions.get(session_id)
        if session is None or session.closing or self.role not in (Role.STANDALONE, Role.LEADER):
            return False
        session.closing = True
        self.now_ms = self.clock.mono_ms()
        self._submit(Request(None, 0, Op.CLOSE_SESSION, b"", session_id), None)
        return True

    # ------------------------------------------------------------ requests

    def _request(self, conn: Conn, frame: bytes) -> None:
        if len(frame) < BODY_AT:
            raise JuteError(f"request of {len(frame)} bytes has no room for its header")
        xid, op = REQUEST_HEADER.unpack_from(frame, 0)
        handler = READ_HANDLERS.get(op)
        now = self.now_ms
        if op == Op.SYNC and self._learner:
            self._forward(Request(conn, xid, op, frame, conn.session_id or 0, now))
            return
        if handler is not None and not self.enforce_auth:
            if self._must_wait(conn.session_id, op):  # it must see, and answer after, what is ahead
                self._queue(Request(conn, xid, op, frame, conn.session_id or 0, now))
            else:
                self._read(conn, xid, op, frame, handler, now)
            return
        sid = conn.session_id
        assert sid is not None
        if op == Op.AUTH:
            self._auth(conn, xid, memoryview(frame)[BODY_AT:])
            return
        if op == Op.SASL:
            self._sasl(conn, xid, memoryview(frame)[BODY_AT:])
            return
        if self.enforce_auth and not self._auth_enforced(conn, xid):
            return
        req = Request(conn, xid, op, frame, sid, now)
        if op in WRITE_OPS or op == Op.CLOSE_SESSION:
            self._submit(req, None)
        elif handler is not None or op == Op.PING:
            self._enqueue(req)
        else:
            log.warning("Received packet at server of unknown type %d", op)
            # Such a request never got a txn, so Apache's reply carries Request.zxid = -1.
            self._send(conn, encode_reply(xid, -1, Err.UNIMPLEMENTED))
            self._close(conn)

    def _auth(self, conn: Conn, xid: int, body: memoryview) -> None:
        r = Reader(body, max_len=self.settings.max_buffer)
        r.int()  # type: unused by every provider
        scheme = r.ustring() or ""
        auth = r.buffer() or b""
        granted = self.auth.authenticate(scheme, auth, conn.ip)
        if granted is None:
            log.warning("Authentication failed for scheme: %s", scheme)
            self._send(conn, encode_reply(xid, 0, Err.AUTH_FAILED))
            self._close(conn)
            return
        for ident in granted:
            if ident not in conn.ids:
                conn.ids.append(ident)
        self._send(conn, encode_reply(xid, 0, 0))

    def add_identities(self, cid: int, ids: list[Identity]) -> None:
        """Identities a connection proved outside the protocol (its TLS client certificate)."""
        conn = self.conns.get(cid)
        if conn is not None:
            conn.ids.extend(i for i in ids if i not in conn.ids)

    def _auth_enforced(self, conn: Conn, xid: int) -> bool:
        """AuthenticationHelper.enforceAuthentication: no id of an enforced scheme, no request."""
        if any(scheme in self.enforce_auth for scheme, _ in conn.ids):
            return True
        log.error("Client authentication scheme(s) %s does not match with any of the expected"
                  " authentication scheme %s, closing session.", [s for s, _ in conn.ids], sorted(self.enforce_auth))
        self._send(conn, encode_reply(xid, 0, Err.SESSION_CLOSED_REQUIRE_SASL_AUTH))
        self._close(conn)
        return False

    def _sasl(self, conn: Conn, xid: int, body: memoryview) -> None:
        """ZooKeeperServer.processSasl: one step of the connection's SASL exchange."""
        from .security.sasl import SaslFailure, new_server

        token = Reader(body, max_len=self.settings.max_buffer).buffer() or b""
        settings = self.settings.sasl
        reply: bytes | None = None
        if settings is None:  # Apache: no SASL server for the connection, the NPE path answers OK
            log.error("cnxn.saslServer is null: cnxn object did not initialize its saslServer properly.")
        else:
            server = self.sasl_servers.get(conn.cid)
            if server is None:
                server = self.sasl_servers[conn.cid] = new_server(settings)  # GSSAPI or DIGEST-MD5
            try:
                reply = server.step(token)
            except SaslFailure as e:
                if not self._sasl_failed(conn, xid, e):
                    return
            else:
                if server.complete:
                    self._sasl_complete(conn, server.authorization_id)
        self._send(conn, encode_reply(xid, 0, 0, Writer().buffer(reply).getvalue()))

    def _sasl_complete(self, conn: Conn, authz: str) -> None:
        self.sasl_servers.pop(conn.cid, None)
        log.info("Session 0x%x: adding SASL authorization for authorizationID: %s",
                 (conn.session_id or 0) & 0xFFFFFFFFFFFFFFFF, authz)
        granted: list[Identity] = [("sasl", authz)]
        if authz in self.settings.sasl.super_users:
            granted.append(("super", ""))
            log.info("Session 0x%x: Authenticated Id '%s' as super user",
                     (conn.session_id or 0) & 0xFFFFFFFFFFFFFFFF, authz)
        self.add_identities(conn.cid, granted)

    def _sasl_failed(self, conn: Conn, xid: int, e: Exception) -> bool:
        """True when the connection stays (zookeeper.allowSaslFailedClients without enforcement)."""
        log.warning("Client %s failed to SASL authenticate: %s", conn.ip, e)
        required = "sasl" in self.enforce_auth
        if self.settings.sasl.allow_failed_clients and not required:
            log.warning("Maintaining client connection despite SASL authentication failure.")
            return True
        if required:
            log.warning("Closing client connection due to server requires client SASL authentication,but"
                        " client SASL authentication has failed, or client is not configured with SASL"
                        " authentication.")
        else:
            log.warning("Closing client connection due to SASL authentication failure.")
        err = Err.SESSION_CLOSED_REQUIRE_SASL_AUTH if required else Err.AUTH_FAILED
        self._send(conn, encode_reply(xid, 0, err, Writer().buffer(None).getvalue()))
        self._close(conn)
        return False

    def _end_local_session(self, session_id: int, req: Request | None) -> None:
        """A local session ends (closed by its client, or expired) without any txn."""
        session = self.sessions.sessions.get(session_id)
        self.sessions.remove(session_id)
        if req is not None:
            self._reply(req, 0, b"")
        conn = req.conn if req is not None else (session.connection if session is not None else None)
        if conn is not None:
            self._close(conn)  # type: ignore[arg-type]

    def _local_write(self, req: Request) -> bool:
        """A write on a local session that must not reach the log as it is: a close (no txn),
        or an ephemeral create (upgrade the session first, or refuse it). True when handled."""
        if req.op == Op.CLOSE_SESSION:
            self._end_local_session(req.session_id, req)
            return True
        if not self._creates_ephemeral(req):
            return False
        if not self.settings.local_sessions_upgrading:
            self._reply(req, Err.EPHEMERAL_ON_LOCAL_SESSION, b"")
            return True
        session = self.sessions.sessions[req.session_id]
        session.local = False
        if req.conn is not None:
            req.conn.local = False
        log.info("Upgrading local session 0x%x to a global session", req.session_id & 0xFFFFFFFFFFFFFFFF)
        # The client already has its connect response: the createSession answers nobody.
        self._submit(Request(None, 0, Op.CREATE_SESSION, b"", req.session_id), CreateSessionTxn(session.timeout))
        return False

    def _creates_ephemeral(self, req: Request) -> bool:
        if req.op not in (Op.CREATE, Op.CREATE2, Op.MULTI):
            return False
        r = Reader(req.frame, BODY_AT, self.settings.max_buffer)
        try:
            creates = [REQUEST_DECODERS[req.op](r)] if req.op != Op.MULTI else \
                [op.record for op in read_multi(r) if op.op in (Op.CREATE, Op.CREATE2)]
        except JuteError:
            return False  # the leader's prep answers a body that does not decode
        return any(c.flags & 1 for c in creates)  # CreateMode's ephemeral bit

    def _submit(self, req: Request, txn: object) -> None:
        """Give a write its zxid and txn now; it is applied once durable (a learner hands it
        to the leader instead)."""
        if req.conn is not None and req.conn.local and self._local_write(req):
            return
        if self._learner:
            req.txn = txn  # a createSession's timeout travels in it
            self._forward(req)
            return
        if self.log_failed:
            self._refuse_write(req)
            return
        zxid = self.zxid + 1
        if zxid & 0xFFFFFFFF == 0xFFFFFFFF and self.role == Role.LEADER:
            # The epoch's last zxid: Apache's leader steps down and the next epoch starts afresh
            # (ZOOKEEPER-1277); the request is never proposed, its client loses the connection.
            self.rollover = True
            if req.conn is not None:
                self._close(req.conn)
            return
        now = self.clock.wall_ms()
        try:
            kind, txn = self._prep(req, txn, zxid, now)  # a JuteError here consumes no zxid...
        except JuteError:
            if req.ids is None:
                raise
            # ...but a learner's request must come back as a txn, or its learner waits for it
            # forever: Apache's PrepRequestProcessor answers MarshallingError the same way.
            kind, txn = Op.ERROR, ErrorTxn(Err.MARSHALLING_ERROR)
        self.zxid = zxid
        req.hdr = TxnHeader(req.session_id, req.xid, zxid, now, kind)
        req.txn = txn
        self.fx.appends.append((req.hdr, txn))
        self._queue(req)

    def storage_failed(self) -> None:
        """The log failed a write or an fsync: nothing from the first undurable txn on will be
        applied. Those writes get SystemError; later ones NotReadOnly (as a read-only Apache
        server answers writes); reads keep being served from the committed tree."""
        if self.log_failed:
            return
        self.log_failed = True
        self.now_ms = self.clock.mono_ms()
        log.error("the txn log failed: refusing writes from zxid 0x%x on; reads go on", self.durable_zxid + 1)
        waiting, self.pipeline = self.pipeline, deque()
        self.queued.clear()
        for req in waiting:
            if req.hdr is None:
                self._finish_read(req)
            elif req.hdr.zxid <= self.durable_zxid:
                self._finish(req)
            else:
                self._fail_write(req, Err.SYSTEM_ERROR)
        self.zxid = self.durable_zxid
        self.prep.pending.changes.clear()

    def _refuse_write(self, req: Request) -> None:
        if req.op == Op.CLOSE_SESSION and req.conn is None:
            # An expiry without a log: drop the connection; the session's ephemerals stay until
            # a restart replays the log and the session expires there.
            session = self.sessions.sessions.get(req.session_id)
            self.sessions.remove(req.session_id)
            if session is not None and session.connection is not None:
                self._close(session.connection)
            return
        self._fail_write(req, Err.NOT_READ_ONLY)

    def _fail_write(self, req: Request, err: int) -> None:
        conn = req.conn
        if conn is None:
            return
        if req.op in (Op.CREATE_SESSION, Op.CLOSE_SESSION):
            if req.op == Op.CREATE_SESSION:
                self.sessions.remove(req.session_id)
            self._close(conn)  # no session can start or end without the log
            return
        self._reply(req, err, b"")

    def _prep(self, req: Request, txn: object, zxid: int, now: int) -> tuple[int, object]:
        op = req.op
        if op == Op.CREATE_SESSION:
            return Op.CREATE_SESSION, txn
        if op == Op.CLOSE_SESSION:
            self._mark_closing(req.session_id)
            return self.prep.prep_close_session(req.session_id, zxid)
        if op == Op.DELETE_CONTAINER and req.conn is None:
            return self._prep_delete_container(txn, zxid)
        session = self.sessions.sessions.get(req.session_id)
        if (session is None and not self._foreign_local_session(req.session_id)) or (
                session is not None and session.closing):
            return Op.ERROR, ErrorTxn(Err.SESSION_EXPIRED)
        r = Reader(req.frame, BODY_AT, self.settings.max_buffer)
        ids = req.conn.ids if req.conn is not None else (req.ids or [])
        if op not in WRITE_OPS:  # what a learner forwarded may be anything
            raise JuteError(f"not a write opcode: {op}")
        decode = REQUEST_DECODERS.get(op)
        if decode is not None:
            return self.prep.prep_single(op, decode(r), req.session_id, ids, zxid, now)
        if op == Op.MULTI:
            return self.prep.prep_multi(read_multi(r), req.session_id, ids, zxid, now)
        if op == Op.RECONFIG:
            # Standalone Apache: ReconfigDisabled, or Unimplemented when reconfig is enabled
            # (its standalone server is no leader to run one).
            return Op.ERROR, ErrorTxn(Err.UNIMPLEMENTED if self.settings.reconfig_enabled else Err.RECONFIG_DISABLED)
        if op == Op.DELETE_CONTAINER:
            return self._prep_delete_container(r.path(), zxid)
        raise JuteError(f"not a write opcode: {op}")

    def _prep_delete_container(self, path: str, zxid: int) -> tuple[int, object]:
        try:
            return self.prep.prep_delete(self.prep.pending, path, -1, [], zxid, container_only=True)
        except KeeperError as e:
            return Op.ERROR, ErrorTxn(e.code)

    def _mark_closing(self, session_id: int) -> None:
        session = self.sessions.sessions.get(session_id)
        if session is not None:
            session.closing = True

    def _must_wait(self, session_id: int | None, op: int) -> bool:
        return session_id in self.queued or (op == Op.SYNC and bool(self.pipeline))

    def _queue(self, req: Request) -> None:
        self.pipeline.append(req)
        queued = self.queued
        queued[req.session_id] = queued.get(req.session_id, 0) + 1

    def _enqueue(self, req: Request) -> None:
        if self._must_wait(req.session_id, req.op):
            self._queue(req)
        else:
            self._finish(req)

    def persisted(self, zxid: int) -> None:
        """The log is durable up to `zxid`: apply and answer everything that was waiting on it."""
        self.durable_zxid = max(self.durable_zxid, zxid)
        self.now_ms = self.clock.mono_ms()
        pipeline, queued = self.pipeline, self.queued
        while pipeline:
            head = pipeline[0]
            if head.hdr is not None and head.hdr.zxid > self.durable_zxid:
                break
            pipeline.popleft()
            left = queued[head.session_id] - 1
            if left:
                queued[head.session_id] = left
            else:
                del queued[head.session_id]
            self._finish(head)

    # ------------------------------------------------------------ ensemble roles

    def stop_serving(self) -> None:
        """Leave the current role: as Apache tears its ZooKeeperServer down at every election,
        every client connection closes (their sessions live on) and nothing half-done survives."""
        for conn in list(self.conns.values()):
            self._close(conn)
        self.pipeline.clear()
        self.queued.clear()
        self.forwarded.clear()
        self.pending_syncs.clear()
        self.revalidating.clear()
        self.touched.clear()
        self.prep.pending.changes.clear()
        self.zxid = self.durable_zxid = self.tree.last_processed_zxid
        self.role = Role.LOOKING
        self._learner = False
        for sid in [sid for sid, session in self.sessions.sessions.items() if session.local]:
            self.sessions.remove(sid)  # Apache's local session tracker goes with its server

    def start_serving(self, role: str, zxid: int | None = None) -> None:
        """Serve clients as `role`. A new leader numbers its txns from `zxid` (its epoch << 32)
        and gives every session a full timeout from now, as Apache's new session tracker does."""
        self.role = role
        self._learner = role in (Role.FOLLOWER, Role.OBSERVER)
        self.now_ms = now = self.clock.mono_ms()
        if zxid is not None:
            self.zxid = self.durable_zxid = zxid
        if role == Role.LEADER:
            for session in self.sessions.sessions.values():
                self.sessions.touch(session.session_id, now)

    def replace_tree(self, tree: DataTree, sessions: dict[int, int]) -> None:
        """Serve `tree` and `sessions` from now on (a restore, or a learner's TRUNC or SNAP)."""
        tree.namespace_stats = self.tree.namespace_stats  # the operator's counters go on
        self.tree = tree
        self.prep = Preparer(tree, self.auth, QuotaPolicy(tree, self.settings.enforce_quota),
                             self.settings.extended_types)
        self.zxid = self.durable_zxid = tree.last_processed_zxid
        now = self.clock.mono_ms()
        table = self.sessions
        table.sessions.clear()
        table.buckets.clear()
        for sid, timeout in sessions.items():
            table.add(sid, timeout, now)

    def _forward(self, req: Request) -> None:
        """A learner's write or sync: the leader decides it; the reply waits for its answer."""
        req.forward = FORWARDED
        self.fx.forwards.append(req)
        self._queue(req)
        if req.op == Op.SYNC:
            self.pending_syncs.append(req)
        else:
            self.forwarded.setdefault(req.session_id, deque()).append(req)

    def apply_remote(self, hdr: TxnHeader, txn: object) -> None:
        """A learner applies a txn the leader committed; if one of its own clients asked for it
        (matched by session id and cxid, as Apache's CommitProcessor matches), that client is
        answered in its turn."""
        self.now_ms = now = self.clock.mono_ms()
        rc = self._apply(hdr, txn)
        self.zxid = self.durable_zxid = max(self.zxid, hdr.zxid)
        req = self._own_request(hdr)
        sid = hdr.client_id
        if hdr.type == Op.CREATE_SESSION and isinstance(txn, CreateSessionTxn):
            session = self.sessions.sessions.get(sid) or self.sessions.add(sid, txn.timeout, now)
            if req is not None and req.conn is not None and not req.conn.closing:
                session.connection = req.conn
        elif hdr.type == Op.CLOSE_SESSION and req is None:
            self._session_closed(Request(None, 0, Op.CLOSE_SESSION, b"", sid))
        if req is not None:
            req.rc = rc
            req.forward = ANSWERED
            self._drain_answered()

    def _own_request(self, hdr: TxnHeader) -> Request | None:
        waiting = self.forwarded.get(hdr.client_id)
        if not waiting or waiting[0].xid != hdr.cxid:
            return None
        req = waiting.popleft()
        if not waiting:
            del self.forwarded[hdr.client_id]
        return req

    def sync_answered(self) -> None:
        """The leader's SYNC for this learner's oldest sync: everything committed before it
        has been applied here (the learner role keeps that order)."""
        if self.pending_syncs:
            self.now_ms = self.clock.mono_ms()
            self.pending_syncs.popleft().forward = ANSWERED
            self._drain_answered()

    def _drain_answered(self) -> None:
        pipeline, queued = self.pipeline, self.queued
        while pipeline and pipeline[0].forward != FORWARDED:
            head = pipeline.popleft()
            left = queued[head.session_id] - 1
            if left:
                queued[head.session_id] = left
            else:
                del queued[head.session_id]
            if head.forward == ANSWERED and head.op != Op.SYNC:
                self._finish_write(head, head.rc)  # type: ignore[arg-type]
            else:
                self._finish_read(head)

    def take_touches(self) -> dict[int, int]:
        """Sessions this learner's clients touched since the last call, for the leader's PING."""
        touched, self.touched = self.touched, {}
        return touched

    def submit_forwarded(self, session_id: int, cxid: int, op: int, body: bytes, ids: list[Identity]) -> None:
        """The leader takes a request a learner forwarded (its REQUEST packet); the answer goes
        back as the txn's commit, so nothing is replied here."""
        self.now_ms = now = self.clock.mono_ms()
        if op == Op.CREATE_SESSION:
            timeout = int.from_bytes(body[:4], "big", signed=True) if len(body) >= 4 else 0
            self.sessions.add(session_id, timeout, now)
            self._submit(Request(None, 0, op, b"", session_id, now), CreateSessionTxn(timeout))
            return
        req = Request(None, cxid, op, REQUEST_HEADER.pack(cxid, op) + body, session_id, now)
        req.ids = ids  # also what makes a request that does not decode an error txn, not a crash
        self._submit(req, None)

    def touch_sessions(self, touches: Iterable[tuple[int, int]]) -> None:
        """Sessions a learner's clients kept alive (its PING reply)."""
        now = self.clock.mono_ms()
        for sid, _timeout in touches:
            self.sessions.touch(sid, now)

    def revalidate(self, session_id: int) -> bool:
        """The leader's check of a session a client brought to a learner: a global session,
        alive, and touched."""
        session = self.sessions.sessions.get(session_id)
        return session is not None and not session.local and self.sessions.touch(session_id, self.clock.mono_ms())

    # ------------------------------------------------------------ finishing

    def _finish(self, req: Request) -> None:
        if req.hdr is None:
            self._finish_read(req)
            return
        self._finish_write(req, self._apply(req.hdr, req.txn))

    def _apply(self, hdr: TxnHeader, txn: object) -> TxnResult:
        """The one place a committed txn reaches the tree, in every role (ZOOKEEPER-4925)."""
        rc = self.tree.apply(hdr, txn)
        self.prep.pending.applied(hdr.zxid)
        if self.on_applied is not None:
            self.on_applied(hdr, txn)
        self._deliver_events()
        return rc

    def _finish_read(self, req: Request) -> None:
        conn = req.conn
        if conn is None or conn.closing:
            return
        if req.op == Op.PING:
            self._send(conn, encode_reply(XID_PING, self.tree.last_processed_zxid, 0))
            return
        self._read(conn, req.xid, req.op, req.frame, READ_HANDLERS[req.op], req.received_ms)

    def _read(self, conn: Conn, xid: int, op: int, frame: bytes, handler: ReadHandler, received_ms: int) -> None:
        session = self.sessions.sessions.get(conn.session_id)  # type: ignore[arg-type]
        try:
            if session is None or session.closing:
                raise KeeperError(Err.SESSION_EXPIRED)
            body = handler(self, conn, Reader(frame, BODY_AT, self.settings.max_buffer))
            err = 0
        except KeeperError as e:
            body, err = b"", e.code
        except JuteError as e:
            log.warning("closing connection from %s: malformed packet: %s", conn.ip, e)
            self._close(conn)
            return
        self._answer(conn, xid, op, err, body, received_ms, False)

    def _finish_write(self, req: Request, rc: TxnResult) -> None:
        op = req.op
        if op == Op.CREATE_SESSION:
            conn = req.conn
            if conn is not None and not conn.closing:
                self._finish_connect(conn, True)
            return
        if op == Op.CLOSE_SESSION:
            self._session_closed(req)
            return
        if req.conn is None:
            return
        if rc.err and op != Op.MULTI:
            self._reply(req, rc.err, b"")
            return
        self._reply(req, 0, self._write_reply_body(op, rc))

    def _session_closed(self, req: Request) -> None:
        session = self.sessions.sessions.get(req.session_id)
        self.sessions.remove(req.session_id)
        conn = req.conn or (session.connection if session else None)
        if conn is None:
            return
        if req.conn is not None:
            self._reply(req, 0, b"")
        self._close(conn)

    def _write_reply_body(self, op: int, rc: TxnResult) -> bytes:
        if op == Op.SET_DATA or op == Op.SET_ACL or op == Op.CHECK:
            return rc.stat or b""
        if op == Op.CREATE:
            return encode_ustring(rc.path)  # type: ignore[arg-type]
        if op in _STAT_CREATES:
            return encode_ustring(rc.path) + rc.stat  # type: ignore[operator]
        if op == Op.MULTI:
            return self._multi_reply(rc)
        return b""

    def _multi_reply(self, rc: TxnResult) -> bytes:
        parts: list[bytes] = []
        for sub in rc.multi or ():
            kind = sub.type
            if kind == Op.ERROR:
                parts.append(_MULTI_ERROR.pack(Op.ERROR, False, sub.err, sub.err))
            elif kind == Op.SET_DATA:
                parts += (_MULTI_SET_DATA, sub.stat)  # type: ignore[arg-type]
            elif kind == Op.CREATE:
                parts += (_MULTI_CREATE, encode_ustring(sub.path))  # type: ignore[arg-type]
            elif kind in _STAT_CREATES:
                # A result with a Stat is a create2 result on the wire, whatever the request's opcode.
                parts += (_MULTI_CREATE2, encode_ustring(sub.path), sub.stat)  # type: ignore[arg-type]
            elif kind == Op.DELETE or kind == Op.DELETE_CONTAINER:
                parts.append(_MULTI_DELETE)
            else:
                parts.append(MULTI_HEADER.pack(kind, False, 0))
        parts.append(_MULTI_DONE)
        return b"".join(parts)

    def _reply(self, req: Request, err: int, body: bytes) -> None:
        if req.conn is not None:
            self._answer(req.conn, req.xid, req.op, err, body, req.received_ms, req.hdr is not None)

    def _answer(self, conn: Conn, xid: int, op: int, err: int, body: bytes, received_ms: int, write: bool) -> None:
        zxid = self.tree.last_processed_zxid
        conn.stats.last_zxid = zxid
        self._send(conn, encode_reply(xid, zxid, err, body))
        if self.on_request_done is not None:
            now = self.now_ms
            self.on_request_done(conn, op, xid, now - received_ms, write, now)


class ContainerSweeper:
    """Apache's ContainerManager: every check interval, collect empty containers that once had
    children (or were never used for longer than allowed) and expired empty TTL nodes, then
    delete them no faster than maxPerMinute."""

    def __init__(self, settings: CoreSettings, now_ms: int):
        self.interval = settings.container_check_interval_ms
        self.spacing = 60000 / max(1, settings.container_max_per_minute)
        self.max_never_used = settings.container_max_never_used_ms
        self.next_check = now_ms + self.interval
        self.queue: deque[str] = deque()
        self.next_delete = 0.0

    def due(self, now_ms: int, wall_ms: int, tree: DataTree) -> list[str]:
        if now_ms >= self.next_check:
            self.next_check = now_ms + self.interval
            queued = set(self.queue)
            self.queue.extend(p for p in self.candidates(wall_ms, tree) if p not in queued)
        out: list[str] = []
        while self.queue and self.next_delete <= now_ms:
            out.append(self.queue.popleft())
            self.next_delete = max(self.next_delete, now_ms - self.spacing) + self.spacing
        return out

    def candidates(self, wall_ms: int, tree: DataTree) -> list[str]:
        found = []
        for path in tree.containers:
            node = tree.nodes.get(path)
            if node is None or node.children:
                continue
            if node.cversion > 0 or (self.max_never_used and wall_ms - node.mtime > self.max_never_used):
                found.append(path)
        for path in tree.ttls:
            node = tree.nodes.get(path)
            if node is None or node.children:
                continue
            ttl = node.owner & 0x000000FFFFFFFFFF
            if ttl and wall_ms - node.mtime > ttl:
                found.append(path)
        return found
