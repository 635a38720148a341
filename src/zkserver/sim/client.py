"""SimClient: a ZooKeeper client speaking the real client protocol over a simulated Stream.

Theory of operation. The client behaves as Apache's Java client (ClientCnxn) does, on the
scheduler's virtual time and its own named random stream:
  - Members are tried in an order shuffled once, one connection at a time. The handshake is a
    ConnectRequest with the session id, password and the last zxid seen; nothing else is sent
    until the ConnectResponse arrives (the Java client holds its queue too). A connection that
    closes before the response is a refusal (a server behind our last zxid closes it): the
    next member is tried. A response with timeout 0 means the session expired: that is
    recorded, requests never sent fail with SessionExpired, watches are forgotten and a new
    session is started, as an application does with a new handle.
  - Connected, the client pings when it has sent nothing for a third of the negotiated
    timeout, and drops the connection when it has heard nothing for two thirds of it (Java's
    read timeout), or when a request stays unanswered longer than the request timeout.
  - A dropped connection ends every request sent on it as UNKNOWN; requests not yet sent wait
    for the next connection. Before them, the first packet after the handshake re-registers
    the watches still armed (SetWatches, or SetWatches2 when persistent watches exist) with
    the last zxid seen, so the server fires what was missed.
  - Replies are matched to requests by xid and recorded as they arrive, even out of order: the
    checkers, not the client, judge the server. A reply to no request, or bytes that do not
    decode, are recorded as an anomaly and end the connection.
Every operation, session start and expiry, and every watch event goes to the History.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..jute.codec import JuteError
from ..jute.codes import XID_NOTIFICATION, XID_PING, XID_SET_WATCHES, AddWatchMode, Err, EventType, Op
from ..proto.framing import FrameError, FrameSplitter
from . import clientwire as wire
from .history import History, Operation, Outcome
from .scheduler import Scheduler, Timer
from .streams import Stream, StreamHandler

Connect = Callable[[int, StreamHandler], Stream]
Callback = Callable[[Operation], None]

# Server errors that leave a request's fate open, as connection loss does.
AMBIGUOUS_ERRORS = frozenset({Err.CONNECTION_LOSS, Err.OPERATION_TIMEOUT, Err.REQUEST_TIMEOUT})
SPIN_DELAY_MS = 1000  # Java's StaticHostProvider: the pause once every member has been tried
RECONNECT_JITTER_MS = 1000  # Java sleeps up to this long before each reconnect
MAX_FRAME = 4 << 20


@dataclass(slots=True)
class _Request:
    op: Operation
    opcode: int
    body: bytes
    on_done: Callback | None
    xid: int = 0
    timer: Timer | None = None


class _Link(StreamHandler):
    """One connection to one member. Callbacks of a link the client has let go are ignored."""

    def __init__(self, client: SimClient, member: int):
        self.client = client
        self.member = member
        self.stream: Stream | None = None
        self.splitter = FrameSplitter(MAX_FRAME)
        self.opened = False
        self.handshaken = False

    def on_open(self) -> None:
        self.client._opened(self)

    def on_data(self, data: bytes) -> None:
        self.client._data(self, data)

    def on_close(self) -> None:
        self.client._closed(self)


class SimClient:
    def __init__(self, number: int, scheduler: Scheduler, history: History, connect: Connect, members: list[int],
                 *, session_timeout: int = 10000, request_timeout: int | None = None):
        self.number = number
        self.scheduler = scheduler
        self.history = history
        self._connect = connect
        self.rng = scheduler.rng(f"client/{number}")
        self.members = list(members)
        self.rng.shuffle(self.members)
        self._cursor = -1
        self._tried_since_success = 0
        self.requested_timeout = session_timeout
        self.timeout = session_timeout  # negotiated
        self.request_timeout = request_timeout or session_timeout
        self.session_id = 0
        self.passwd = bytes(16)
        self.last_zxid = 0
        self.state = "idle"  # idle | connecting | connected | closed
        self.closing = False  # a closeSession was submitted: no more requests, no new session
        self.link: _Link | None = None
        self._queue: deque[_Request] = deque()  # not sent yet
        self._pending: dict[int, _Request] = {}  # sent on `link`, by xid, in send order
        self._next_xid = 1
        self._session_op: Operation | None = None
        self._last_recv = 0
        self._last_send = 0
        self._timers: dict[str, Timer] = {}  # "connect", "read", "ping", "redial"
        # Armed watches, as ZKWatchManager keeps them: re-registered on every reconnect.
        self.watches: dict[str, set[str]] = {k: set() for k in ("data", "exist", "child", "persistent", "recursive")}
        # Told of "connected", "expired", "closed", "disconnected" (the workload's hook).
        self.listener: Callable[[str], None] | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect and establish a session (a new one once the previous was closed or expired)."""
        if self.state in ("idle", "closed"):
            if self.state == "closed":
                self._forget_session()
            self.state = "connecting"
            self.closing = False
            self._dial()

    def shutdown(self) -> None:
        """Stop for good: drop the connection; what was pending ends UNKNOWN, what was queued is
        failed as never sent."""
        link = self.link
        self.state = "closed"
        if link is not None:
            self._drop(link)
        self._cancel_timers()
        self._fail_queue(Err.SESSION_EXPIRED)

    @property
    def outstanding(self) -> int:
        return len(self._queue) + len(self._pending)

    @property
    def opening_session(self) -> bool:
        """A new session was asked for and not yet granted (its "session" operation is pending)."""
        return self._session_op is not None

    # ------------------------------------------------------------ operations

    def submit(self, kind: str, path: str, args: dict[str, Any], on_done: Callback | None = None) -> Operation:
        """Invoke an operation of `kind` (History's vocabulary); it is sent at once when connected,
        else when the session is (re)established."""
        if self.state in ("idle", "closed") or self.closing:
            raise RuntimeError(f"client {self.number} cannot take requests now ({self.state}, closing={self.closing})")
        opcode, body = encode(kind, path, args)
        op = self.history.invoke(self.number, self.session_id or None, kind, path, args, self.scheduler.now)
        req = _Request(op, opcode, body, on_done)
        if self.state == "connected":
            self._send_request(req)
        else:
            self._queue.append(req)
        if kind == "close":
            self.closing = True
        return op

    # ------------------------------------------------------------ connecting

    def _dial(self) -> None:
        if self.state != "connecting":
            return
        self._cursor = (self._cursor + 1) % len(self.members)
        self._tried_since_success += 1
        link = self.link = _Link(self, self.members[self._cursor])
        self._arm("connect", self.timeout // len(self.members), self._connect_timeout, link)  # Java's connectTimeout
        link.stream = self._connect(link.member, link)
        if link.opened and link is self.link:
            self._hello(link)  # the connect succeeded before it returned

    def _opened(self, link: _Link) -> None:
        link.opened = True
        if link is self.link and link.stream is not None:
            self._hello(link)

    def _hello(self, link: _Link) -> None:
        if self.session_id == 0:
            self._session_op = self.history.invoke(self.number, None, "session", "/", {}, self.scheduler.now)
        self._send(link, wire.connect_request(self.last_zxid, self.requested_timeout, self.session_id, self.passwd))

    def _connect_timeout(self, link: _Link) -> None:
        if link is self.link and not link.handshaken:
            self._drop(link)

    def _handshake(self, link: _Link, payload: bytes) -> None:
        timeout, session_id, passwd = wire.connect_response(payload)
        link.handshaken = True
        if timeout <= 0:
            self._expired(link)
            return
        now = self.scheduler.now
        if self.session_id == 0:
            self.session_id, self.passwd = session_id, passwd
            if self._session_op is not None:
                self.history.complete(self._session_op, now, Outcome.OK, result=session_id, member=link.member)
                self._session_op.session_id = session_id
                self._session_op = None
        elif session_id != self.session_id:
            self._anomaly(link, f"resumed session 0x{self.session_id:x} answered as 0x{session_id:x}")
            return
        self.state = "connected"
        self.timeout = timeout
        self._tried_since_success = 0
        self._cancel_timers()
        self._arm("read", self.timeout * 2 // 3, self._read_check, link)
        self._arm("ping", self.timeout // 3, self._ping_check, link)
        self._rearm_watches(link)
        while self._queue:
            self._send_request(self._queue.popleft())
        self._tell("connected")

    def _expired(self, link: _Link) -> None:
        now = self.scheduler.now
        if self.session_id:
            op = self.history.invoke(self.number, self.session_id, "expired", "/", {}, now)
            self.history.complete(op, now, Outcome.ERROR, error=Err.SESSION_EXPIRED, member=link.member)
        self._fail_queue(Err.SESSION_EXPIRED)
        self._forget_session()
        self._drop(link, reconnect=False)
        if self.closing:  # the close it was waiting to send is moot
            self.state = "closed"
            self._tell("closed")
            return
        self._tell("expired")
        self._dial()

    def _forget_session(self) -> None:
        """What a new handle starts with: no session, no zxid seen, no watches."""
        for paths in self.watches.values():
            paths.clear()
        self.session_id, self.passwd, self.last_zxid = 0, bytes(16), 0

    def _rearm_watches(self, link: _Link) -> None:
        w = self.watches
        lists = [sorted(w["data"]), sorted(w["exist"]), sorted(w["child"])]
        persistent = [sorted(w["persistent"]), sorted(w["recursive"])]
        if not any(lists) and not any(persistent):
            return
        opcode = Op.SET_WATCHES2 if any(persistent) else Op.SET_WATCHES
        if opcode == Op.SET_WATCHES2:
            lists += persistent
        self._send(link, wire.request(XID_SET_WATCHES, opcode, wire.set_watches_body(self.last_zxid, lists)))

    # ------------------------------------------------------------ sending

    def _send(self, link: _Link, data: bytes) -> None:
        if link.stream is not None:
            self._last_send = self.scheduler.now
            link.stream.send(data)

    def _send_request(self, req: _Request) -> None:
        link = self.link
        assert link is not None
        req.xid = self._next_xid
        self._next_xid += 1
        req.op.session_id = self.session_id
        req.op.member = link.member
        req.op.xid = req.xid
        self._pending[req.xid] = req
        req.timer = self.scheduler.call_later(self.request_timeout, self._request_timeout, link, req.xid)
        self._send(link, wire.request(req.xid, req.opcode, req.body))

    def _request_timeout(self, link: _Link, xid: int) -> None:
        if link is self.link and xid in self._pending:
            self._drop(link)

    def _ping_check(self, link: _Link) -> None:
        due = self._last_send + self.timeout // 3
        now = self.scheduler.now
        if now >= due:
            self._send(link, wire.request(XID_PING, Op.PING))
            due = now + self.timeout // 3
        self._arm("ping", due - now, self._ping_check, link)

    def _read_check(self, link: _Link) -> None:
        due = self._last_recv + self.timeout * 2 // 3
        now = self.scheduler.now
        if now >= due:
            self._drop(link)  # "Client session timed out, have not heard from server"
            return
        self._arm("read", due - now, self._read_check, link)

    def _arm(self, name: str, delay: int, callback: Callable[..., None], *args: Any) -> None:
        old = self._timers.get(name)
        if old is not None:
            old.cancel()
        self._timers[name] = self.scheduler.call_later(delay, callback, *args)

    def _cancel_timers(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers = {}

    # ------------------------------------------------------------ receiving

    def _data(self, link: _Link, data: bytes) -> None:
        if link is not self.link:
            return
        self._last_recv = self.scheduler.now
        try:
            frames = link.splitter.feed(data)
            for payload in frames:
                if link is not self.link:
                    return  # an earlier frame ended this connection
                if not link.handshaken:
                    self._handshake(link, bytes(payload))
                else:
                    self._reply(link, bytes(payload))
        except (JuteError, FrameError) as e:
            self._anomaly(link, f"undecodable frame: {e}")

    def _reply(self, link: _Link, payload: bytes) -> None:
        xid, zxid, err, r = wire.reply_header(payload)
        if xid in (XID_PING, XID_SET_WATCHES):
            return
        if xid == XID_NOTIFICATION:
            self._event(link, zxid, *wire.watcher_event(r))
            return
        req = self._pending.pop(xid, None)
        if req is None:
            self._anomaly(link, f"reply to xid {xid}, which is not outstanding")
            return
        if req.timer is not None:
            req.timer.cancel()
        if zxid > 0:
            self.last_zxid = zxid  # as Java's ClientCnxn: the latest reply's zxid, not a maximum
        self._finish(req, link, zxid, err, r)

    def _finish(self, req: _Request, link: _Link, zxid: int, err: int, r: Any) -> None:
        op, now = req.op, self.scheduler.now
        if err in AMBIGUOUS_ERRORS:
            self.history.complete(op, now, Outcome.UNKNOWN, member=link.member)
        elif err:
            self.history.complete(op, now, Outcome.ERROR, error=err, zxid=zxid, member=link.member)
            self._register(op, err)
        else:
            result = wire.decode_result(op.kind, req.opcode, op.args, r)
            failed = wire.multi_error(result) if op.kind == "multi" else 0
            outcome = Outcome.ERROR if failed else Outcome.OK
            self.history.complete(op, now, outcome, error=failed, result=result, zxid=zxid, member=link.member)
            self._register(op, 0)
        if req.on_done is not None:
            req.on_done(op)
        if op.kind == "close" and op.outcome is Outcome.OK:
            self.state = "closed"
            self._drop(link, reconnect=False)

    def _register(self, op: Operation, err: int) -> None:
        """Arm the watch a reply set, as the Java client's WatchRegistration does."""
        kind, path, w = op.kind, op.path, self.watches
        if kind == "add_watch" and not err:
            w["recursive" if op.args["mode"] == AddWatchMode.PERSISTENT_RECURSIVE else "persistent"].add(path)
        if not op.args.get("watch"):
            return
        if kind == "exists" and err in (0, Err.NO_NODE):
            w["data" if not err else "exist"].add(path)
        elif kind == "get" and not err:
            w["data"].add(path)
        elif kind == "children" and not err:
            w["child"].add(path)

    def _event(self, link: _Link, zxid: int, etype: int, state: int, path: str) -> None:
        self.history.event(self.number, self.session_id, self.scheduler.now, etype, path, zxid, link.member)
        w = self.watches
        if etype in (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED, EventType.NODE_DELETED):
            w["data"].discard(path)
            w["exist"].discard(path)
        if etype in (EventType.NODE_CHILDREN_CHANGED, EventType.NODE_DELETED):
            w["child"].discard(path)

    # ------------------------------------------------------------ losing the connection

    def _anomaly(self, link: _Link, what: str) -> None:
        self.history.anomalies.append((self.number, self.scheduler.now, link.member, what))
        self._drop(link)

    def _closed(self, link: _Link) -> None:
        if link is self.link:
            self._lost(link, reconnect=True)

    def _drop(self, link: _Link, reconnect: bool = True) -> None:
        """We end the connection (a timeout, an anomaly, a close)."""
        if link.stream is not None:
            link.stream.close()
        if link is self.link:
            self._lost(link, reconnect)

    def _lost(self, link: _Link, reconnect: bool) -> None:
        self.link = None
        self._cancel_timers()
        now = self.scheduler.now
        if self._session_op is not None:
            self.history.complete(self._session_op, now, Outcome.UNKNOWN, member=link.member)
            self._session_op = None
        pending, self._pending = self._pending, {}
        if any(req.op.kind == "close" for req in pending.values()):
            self.state = "closed"  # as the Java client: a close ends the handle, answered or not
        elif reconnect and self.state != "closed":
            self.state = "connecting"  # before the callbacks below, which may submit more
        for req in pending.values():
            if req.timer is not None:
                req.timer.cancel()
            self.history.complete(req.op, now, Outcome.UNKNOWN, member=link.member)
            if req.on_done is not None:
                req.on_done(req.op)
        if self.state == "closed":
            if self.closing:
                self._tell("closed")
            return
        if not reconnect:
            return
        self._tell("disconnected")
        delay = self.rng.randint(0, RECONNECT_JITTER_MS)
        if self._tried_since_success >= len(self.members):
            delay += SPIN_DELAY_MS
            self._tried_since_success = 0
        self._arm("redial", delay, self._dial)

    def _fail_queue(self, err: int) -> None:
        queued, self._queue = self._queue, deque()
        for req in queued:
            self.history.complete(req.op, self.scheduler.now, Outcome.ERROR, error=err)
            if req.on_done is not None:
                req.on_done(req.op)

    def _tell(self, what: str) -> None:
        if self.listener is not None:
            self.listener(what)


def encode(kind: str, path: str, args: dict[str, Any]) -> tuple[int, bytes]:
    """The opcode and request body of an operation in History's vocabulary."""
    if kind == "create":
        ttl = args.get("ttl")
        flags = args.get("flags", 0)
        if ttl is not None:
            op = Op.CREATE_TTL
        elif flags == 4:
            op = Op.CREATE_CONTAINER
        else:
            op = Op.CREATE2 if args.get("stat") else Op.CREATE
        return op, wire.create_body(path, args["data"], flags, ttl)
    if kind == "set":
        return Op.SET_DATA, wire.set_data_body(path, args["data"], args.get("version", -1))
    if kind in ("delete", "check"):
        return (Op.DELETE if kind == "delete" else Op.CHECK), wire.path_int_body(path, args.get("version", -1))
    if kind in ("get", "exists", "children"):
        op = {"get": Op.GET_DATA, "exists": Op.EXISTS}.get(kind, Op.GET_CHILDREN2 if args.get("stat")
                                                          else Op.GET_CHILDREN)
        return op, wire.path_watch_body(path, bool(args.get("watch")))
    if kind == "sync":
        return Op.SYNC, wire.path_body(path)
    if kind == "add_watch":
        return Op.ADD_WATCH, wire.path_int_body(path, args["mode"])
    if kind == "close":
        return Op.CLOSE_SESSION, b""
    if kind == "multi":
        return Op.MULTI, wire.multi_body([encode(sub["kind"], sub["path"], sub) for sub in args["ops"]])
    raise ValueError(f"unknown operation kind {kind!r}")
