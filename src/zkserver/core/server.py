"""ServerCore: connections, sessions, the ordered request pipeline and the replies (see the
package's docstring for the theory of operation)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..jute.codec import JuteError, Reader
from ..jute.codes import XID_NOTIFICATION, XID_PING, Err, KeeperState, Op
from ..jute.records import (
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
from ..prep import Preparer
from ..reads import READ_HANDLERS, ReadHandler
from ..session import SessionTable
from ..tree.acl import AuthPolicy, KeeperError
from ..tree.datatree import DataTree, TxnResult
from ..tree.quota import QuotaPolicy
from .auth import ClientAuth
from .containers import ContainerSweeper
from .model import BODY_AT, WRITE_OPS, Clock, Conn, CoreSettings, Effects, Held, Request, Role
from .replica import Replica
from .replies import write_reply_body

log = logging.getLogger("zkserver.core")

# What a read-only server answers NotReadOnly (ReadOnlyRequestProcessor), a bare check included.
_READ_ONLY_REFUSED = WRITE_OPS | {Op.SYNC, Op.CHECK}


class ServerCore(ClientAuth, Replica):
    """The client-facing server: connections, sessions, the request pipeline, replies."""

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
        self._read_only = False  # Role.READ_ONLY
        self.forwarded: dict[int, deque[Request]] = {}  # learner: a session's writes awaiting their commit
        self.pending_syncs: deque[Request] = deque()  # learner: syncs awaiting the leader's SYNC
        self.revalidating: dict[int, list[Conn]] = {}  # learner: reconnects awaiting the leader's word
        self.touched: dict[int, int] = {}  # learner: sessions touched since the last PING (id -> timeout)
        self.held: dict[int, Held] = {}  # connections (by cid) kept open while electing (Replica.hold_idle)
        # Called with each txn as it is applied (the ensemble's committed log).
        self.on_applied: Callable[[TxnHeader, object], None] | None = None

    # ------------------------------------------------------------ effects

    def take_effects(self) -> Effects:
        fx, self.fx = self.fx, Effects()
        return fx

    def _send(self, conn: Conn, frame: bytes) -> None:
        cid = conn.cid
        if cid in self.conns:
            if self.held and cid in self.held:
                self.held[cid].outbox.append(frame)
                conn.stats.sent += 1
                self.packets_sent += 1
                return
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
        self.held.pop(cid, None)
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
        if self.held and cid in self.held:  # its member is electing: handled once it serves again
            self.held[cid].inbox.extend(bytes(frame) for frame in frames)
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
        if self._read_only and not req.read_only:
            log.info("Refusing session request for not-read-only client %s", conn.ip)
            self._close(conn)
            return
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
            if self._read_only:
                self._refuse_global_session(conn)
                return
            if not self._learner:  # a learner tracks the session once the leader committed it
                session = self.sessions.add(sid, conn.timeout, self.clock.mono_ms())
                session.connection = conn
            self._submit(Request(conn, 0, Op.CREATE_SESSION, b"", sid), CreateSessionTxn(conn.timeout))
            return
        conn.session_id = req.session_id
        session = self.sessions.sessions.get(req.session_id)
        if self._read_only and session is not None and not session.local:
            log.info("Refusing global session reconnection in RO mode %s", conn.ip)
            self._close(conn)
            return
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
            self._read_only if conn.has_ro else None,
        )
        self._send(conn, len(body).to_bytes(4, "big") + body)
        if not valid:
            log.info("Invalid session 0x%x for client %s, probably expired", sid & 0xFFFFFFFFFFFFFFFF, conn.ip)
            self._close(conn)


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
        if self._read_only and (op in _READ_ONLY_REFUSED or (op == Op.CLOSE_SESSION and not conn.local)):
            if not self.enforce_auth or self._auth_enforced(conn, xid):
                self._answer(conn, xid, op, Err.NOT_READ_ONLY, b"", now, False)
            return
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
            return self._prep_reconfig(r, ids, zxid)
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
        if rc.err and rc.multi is None:
            # A multi's ops answer their errors in its results; any other result's error is the
            # reply's, an error txn's included (a request refused whole: its session expired, it
            # did not decode), whatever the op, as Apache's FinalRequestProcessor answers.
            self._reply(req, rc.err, b"")
            return
        self._reply(req, 0, write_reply_body(op, rc) if op != Op.RECONFIG else self._reconfig_reply(rc))

    def _session_closed(self, req: Request) -> None:
        session = self.sessions.sessions.get(req.session_id)
        self.sessions.remove(req.session_id)
        conn = req.conn or (session.connection if session else None)
        if conn is None:
            return
        if req.conn is not None:
            self._reply(req, 0, b"")
        self._close(conn)


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

