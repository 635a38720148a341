"""What an ensemble member's core does beyond a standalone one: the role behind its commit
step, forwarding a learner's writes and syncs, the leader's answers, session revalidation,
and local sessions (localSessionsEnabled)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

from ..jute.codec import JuteError, Reader, encode_buffer
from ..jute.codes import Err, Op, Perm
from ..jute.records import (
    REQUEST_DECODERS,
    REQUEST_HEADER,
    CreateSessionTxn,
    ErrorTxn,
    ReconfigRequest,
    SetDataTxn,
    TxnHeader,
    encode_reply,
    read_multi,
)
from ..prep import NodeState, Preparer
from ..tree.acl import Identity, KeeperError
from ..tree.datatree import CONFIG_PATH, DataTree, TxnResult
from ..tree.quota import QuotaPolicy
from .model import ANSWERED, BODY_AT, FORWARDED, Conn, Held, Reconfigurer, Request, Role

log = logging.getLogger("zkserver.core")


class Replica:
    """ServerCore's ensemble side; a mixin over the core's sessions, pipeline and effects."""

    reconfigurer: Reconfigurer | None = None  # the leader role, while this member leads

    # ------------------------------------------------------------ ensemble roles

    def stop_serving(self, hold: bool = True) -> None:
        """Leave the current role: nothing half-done survives. Apache tears its ZooKeeperServer
        down at every election and closes every client connection (the sessions live on); here
        a connection with nothing in flight is held instead (`hold_idle`), so that its client
        waits out a short election rather than reconnecting. `hold` False (the member stops
        taking part) closes them all, as Apache does."""
        serving = self.role in (Role.LEADER, Role.FOLLOWER, Role.OBSERVER)
        if hold and serving and self.settings.election_hold_ms > 0:
            self.hold_idle()
        else:
            self.close_held()
        for cid, conn in list(self.conns.items()):
            if cid not in self.held:
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
        self.reconfigurer = None
        self._learner = self._read_only = False
        for sid in [sid for sid, session in self.sessions.sessions.items() if session.local]:
            self.sessions.remove(sid)  # Apache's local session tracker goes with its server

    def hold_idle(self) -> None:
        """Hold the connections that wait for nothing: a request in the pipeline, forwarded or
        revalidating would never be answered (its txn may be lost with the old leader), so
        those connections close, as Apache closes them all; so do local sessions' (they end
        with the role, as Apache's local session tracker does) and half-open ones."""
        busy = {r.session_id for r in self.pipeline} | self.forwarded.keys() | self.revalidating.keys()
        busy.update(r.session_id for r in self.pending_syncs)
        now = self.clock.mono_ms()
        limit = self.settings.election_hold_ms
        for conn in self.conns.values():
            sid = conn.session_id
            if conn.closing or sid is None or conn.local or sid in busy or sid not in self.sessions.sessions:
                continue
            self.held[conn.cid] = Held(now + min(limit, conn.timeout // 3))

    def release_held(self) -> None:
        """Serving again with the history it held its connections with (a DIFF, or leading):
        send each what it is owed, then handle what it sent meanwhile. A read-only member
        serves none of them (their sessions are global): they close."""
        if not self.held or self.role == Role.LOOKING:
            return
        if self.role == Role.READ_ONLY:
            self.close_held()
            return
        held, self.held = self.held, {}
        for cid, io in held.items():
            if self.conns[cid].closing:
                continue
            if io.outbox:
                self.fx.out.setdefault(cid, []).extend(io.outbox)
            if io.inbox:
                self.frames_received(cid, io.inbox)

    def close_held(self) -> None:
        """The held connections close: the member's tree was replaced or cut back (TRUNC, SNAP)
        and what they saw may be gone, or it serves none of them; their clients reconnect, with
        setWatches, to a member that serves."""
        self._close_held(list(self.held))

    def hold_deadline(self) -> int:
        """When the first held connection's hold ends (there is one)."""
        return min(io.until_ms for io in self.held.values())

    def expire_held(self, now: int) -> None:
        """A held connection whose member has not served again in time closes, so that its
        client moves to a member that serves (a member cut off from the quorum never will)."""
        self._close_held([cid for cid, io in self.held.items() if io.until_ms <= now])

    def _close_held(self, cids: list[int]) -> None:
        for cid in cids:
            del self.held[cid]  # held connections are open ones: connection_lost drops them here
            self._close(self.conns[cid])

    def start_serving(self, role: str, zxid: int | None = None) -> None:
        """Serve clients as `role`. A new leader numbers its txns from `zxid` (its epoch << 32)
        and gives every session a full timeout from now, as Apache's new session tracker does."""
        self.role = role
        self._learner = role in (Role.FOLLOWER, Role.OBSERVER)
        self._read_only = role == Role.READ_ONLY
        self.now_ms = now = self.clock.mono_ms()
        if zxid is not None:
            self.zxid = self.durable_zxid = zxid
        if role == Role.LEADER:
            for session in self.sessions.sessions.values():
                self.sessions.touch(session.session_id, now)

    def replace_tree(self, tree: DataTree, sessions: dict[int, int]) -> None:
        """Serve `tree` and `sessions` from now on (a restore, or a learner's TRUNC or SNAP)."""
        self.close_held()
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

    # ------------------------------------------------------------ dynamic reconfiguration

    def _prep_reconfig(self, r: Reader, ids: list[Identity], zxid: int) -> tuple[int, object]:
        """Apache's PrepRequestProcessor for reconfig: the leader role decides the new config
        (quorum/reconfig.py has the rules), then WRITE on /zookeeper/config is checked; the txn
        sets that node to the new config's string with version -1, as Apache's does."""
        req = ReconfigRequest.read(r)
        if not self.settings.reconfig_enabled:
            return Op.ERROR, ErrorTxn(Err.RECONFIG_DISABLED)
        if self.reconfigurer is None:  # a standalone server runs no reconfig (Apache's neither)
            return Op.ERROR, ErrorTxn(Err.UNIMPLEMENTED)
        try:
            verifier = self.reconfigurer.check_reconfig(req, zxid)
            node = self.prep.pending.require(CONFIG_PATH)
            self.auth.require(node.acl, Perm.WRITE, ids, CONFIG_PATH)
        except KeeperError as e:
            log.info("reconfig refused (%d): %s", e.code, e.path)
            return Op.ERROR, ErrorTxn(e.code)
        data = str(verifier).encode()
        self.prep.pending.put(CONFIG_PATH, NodeState(zxid, True, -1, node.cversion, node.aversion, node.owner,
                                                     node.child_count, node.acl, data))
        self.reconfigurer.reconfig_prepared(verifier)
        return Op.RECONFIG, SetDataTxn(CONFIG_PATH, data, -1)

    def _reconfig_reply(self, rc: TxnResult) -> bytes:
        """A reconfig's answer is a GetDataResponse: the config now in force and the node's Stat."""
        node = self.tree.get(CONFIG_PATH)
        return encode_buffer(node.data if node is not None else b"") + (rc.stat or b"")

    def set_config_node(self, data: bytes, version: int) -> None:
        """Apache's initConfigInZKDatabase: /zookeeper/config holds the config in force, with
        mzxid its version, version -1 and mtime now (not a txn: every member does it itself)."""
        if self.tree.get(CONFIG_PATH) is not None:
            self.tree.set_data(CONFIG_PATH, data, -1, version, self.clock.wall_ms())
            self._deliver_events()

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

    # ------------------------------------------------------------ sessions

    def _foreign_local_session(self, session_id: int) -> bool:
        """With local sessions on, a leader takes a session it does not know for another
        member's local session (its creator's id is in the top byte), as LeaderSessionTracker."""
        return (self.role == Role.LEADER and self.settings.local_sessions
                and (session_id >> 56) != self.settings.server_id)

    def _local_sessions(self) -> bool:
        return self.settings.local_sessions and self.role in (Role.LEADER, Role.FOLLOWER, Role.OBSERVER,
                                                              Role.READ_ONLY)

    def _refuse_global_session(self, conn: Conn) -> None:
        """A read-only server makes no global session: without local sessions Apache answers the
        createSession with a NotReadOnly reply header where the client awaits its ConnectResponse
        (which no client can use); the same bytes, then the connection closes."""
        log.info("Refusing a new session from %s: read-only mode serves local sessions only", conn.ip)
        self._send(conn, encode_reply(0, self.tree.last_processed_zxid, Err.NOT_READ_ONLY))
        self._close(conn)

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
