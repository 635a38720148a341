"""kazoo clients that record every operation they send into a History, on the real clock.

Theory of operation. The simulator's checkers judge a `zkserver.sim.history.History`; here the
clients are real kazoo clients against real processes, so the record is taken where kazoo
meets the wire, on kazoo's connection thread, by three hooks on one KazooClient instance:
  - `_call` (the caller's thread): the operation the caller is about to invoke is bound to
    the request kazoo queues for it. `invoked` is read just before the kazoo call.
  - `_send_request` (connection thread): a request that went out in full enters the History,
    with its xid and the session it was sent on, in send order. A request that never left
    the client (kazoo failed it while disconnected, closed or expired) never enters it: it
    had no effect anywhere, and is no operation on the system.
  - `_read_header` (connection thread): every reply frame, in arrival order, before kazoo acts
    on it. The outcome comes from the server's own reply header and body, decoded with the
    simulator's client codec (sim/clientwire.py), never from kazoo's interpretation: an
    error code makes the operation ERROR (definite), ConnectionLoss-like codes UNKNOWN; the
    reply zxid is the header's. Watch notifications are recorded as events.
Everything sent and never answered (the connection dropped, the session expired, the client
stopped) is UNKNOWN: `Recorder.finish()` marks it once the clients are stopped.

Times are microseconds of the monotonic clock since the recorder started (the History's time
fields are unit-free integers; the checkers compare them only with each other). `invoked` is
taken before the request is handed to kazoo and `completed` after its reply was read, so each
interval contains the real one.

This relies on kazoo 2.x internals (`_call`, `_pending`, the ConnectionHandler's
`_send_request`, `_read_header` and `_connect`); the test extra pins kazoo >= 2.10.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Close

from zkserver.jute.codec import JuteError, Reader
from zkserver.jute.codes import XID_AUTH, XID_NOTIFICATION, XID_PING, Err
from zkserver.sim.clientwire import decode_result, multi_error, watcher_event
from zkserver.sim.history import History, Operation, Outcome

# Server errors that leave a request's fate open, as connection loss does (as SimClient).
AMBIGUOUS_ERRORS = frozenset({Err.CONNECTION_LOSS, Err.OPERATION_TIMEOUT, Err.REQUEST_TIMEOUT})
# Reconnect quickly: kazoo's default backs off to a minute, longer than any session here.
CONNECTION_RETRY = {"max_tries": -1, "delay": 0.05, "backoff": 1.5, "max_delay": 1.0, "max_jitter": 0.2}


class Recorder:
    """One History shared by every recording client; `lock` guards it across their threads."""

    def __init__(self, member_of_port: Mapping[int, int]):
        self.history = History()
        self.lock = threading.Lock()
        self.member_of_port = dict(member_of_port)
        self._t0 = time.monotonic_ns()

    def now(self) -> int:
        return (time.monotonic_ns() - self._t0) // 1000

    def finish(self) -> int:
        """Mark every operation sent and never answered UNKNOWN; how many there were."""
        with self.lock:
            open_ops = [o for o in self.history.ops if o.outcome is None]
            for o in open_ops:
                self.history.complete(o, self.now(), Outcome.UNKNOWN, member=o.member)
            return len(open_ops)

    def counts(self) -> dict[str, int]:
        """Operations by outcome, for the run's report."""
        out: dict[str, int] = {"ops": len(self.history.ops), "events": len(self.history.events)}
        for o in self.history.ops:
            key = "unknown" if o.outcome is Outcome.UNKNOWN else (o.outcome.value if o.outcome else "open")
            out[key] = out.get(key, 0) + 1
            if o.outcome is Outcome.OK and o.kind in ("create", "set", "delete", "multi"):
                out["ok_writes"] = out.get("ok_writes", 0) + 1
        return out


@dataclass
class Invocation:
    """What the caller invoked, until kazoo sends it (then `op` is its History record)."""

    kind: str
    path: str
    args: dict[str, Any]
    invoked: int
    op: Operation | None = None


class RecordingClient:
    """A KazooClient whose requests and replies go into the recorder's History as client
    `number`. Drive it with `invoke(kind, path, args, call)`, where `call()` makes the kazoo
    call (an *_async method); `close_session()` sends closeSession (kazoo's stop)."""

    def __init__(self, number: int, recorder: Recorder, hosts: str, session_timeout_s: float):
        self.number = number
        self.recorder = recorder
        self.zk = KazooClient(hosts=hosts, timeout=session_timeout_s, connection_retry=dict(CONNECTION_RETRY))
        self._binding: Invocation | None = None
        self._close: Invocation | None = None
        self._port: int | None = None
        self._last_xid = 0
        self._hook()

    # ------------------------------------------------------------ the caller's side

    def invoke(self, kind: str, path: str, args: dict[str, Any], call: Callable[[], Any]) -> tuple[Invocation, Any]:
        """Run `call()` (a kazoo *_async call) as the operation (kind, path, args); returns the
        invocation (its `op` is set once sent) and kazoo's async result."""
        inv = Invocation(kind, path, args, self.recorder.now())
        self._binding = inv
        try:
            result = call()
        finally:
            self._binding = None
        return inv, result

    def close_session(self) -> Invocation:
        """Send closeSession and stop the client (kazoo's stop: it waits for the answer or the
        connection's end)."""
        inv = self._close = Invocation("close", "/", {}, self.recorder.now())
        self.zk.stop()
        return inv

    # ------------------------------------------------------------ hooks

    def _hook(self) -> None:
        zk, conn = self.zk, self.zk._connection
        call, send, read_header, connect = zk._call, conn._send_request, conn._read_header, conn._connect

        def hooked_call(request: Any, async_object: Any) -> Any:
            if self._binding is not None and async_object is not None:
                async_object.zk_invocation = self._binding
                self._binding = None
            return call(request, async_object)

        def hooked_send(read_timeout: float, connect_timeout: float) -> None:
            before = len(zk._pending)
            send(read_timeout, connect_timeout)
            if len(zk._pending) > before:
                self._sent(*zk._pending[-1])

        def hooked_read_header(timeout: float) -> Any:
            header, buffer, offset = read_header(timeout)
            self._arrived(header, bytes(buffer[offset:]))
            return header, buffer, offset

        def hooked_connect(host: str, hostip: str, port: int) -> Any:
            # kazoo numbers requests from 1 again on every connection; the Java client keeps one
            # counter per handle. The checkers find an UNKNOWN write's txn by (session, xid), so
            # xids must not repeat within a session: carry the counter on, as Java does.
            conn._xid = self._last_xid
            self._port = port
            return connect(host, hostip, port)

        zk._call = hooked_call
        conn._send_request, conn._read_header, conn._connect = hooked_send, hooked_read_header, hooked_connect

    @property
    def member(self) -> int | None:
        return self.recorder.member_of_port.get(self._port) if self._port is not None else None

    def _sent(self, request: Any, async_object: Any, xid: int) -> None:
        inv = self._close if isinstance(request, Close) else getattr(async_object, "zk_invocation", None)
        if inv is None or inv.op is not None:
            return
        rec = self.recorder
        with rec.lock:
            op = rec.history.invoke(self.number, self.zk._session_id or None, inv.kind, inv.path, inv.args,
                                    inv.invoked)
            op.xid = xid
            op.member = self.member
            self._last_xid = max(self._last_xid, xid)
            inv.op = op
        if async_object is not None:
            async_object.zk_op = op

    def _arrived(self, header: Any, body: bytes) -> None:
        xid = header.xid
        if xid in (XID_PING, XID_AUTH):
            return
        rec = self.recorder
        if xid == XID_NOTIFICATION:
            self._event(header, body)
            return
        if not self.zk._pending:
            self._anomaly(f"reply to xid {xid}, which is not outstanding")
            return
        request, async_object, expected = self.zk._pending[0]
        if xid != expected:
            self._anomaly(f"reply to xid {xid}, expected {expected}")  # kazoo drops the connection
            return
        op = self._close.op if isinstance(request, Close) and self._close else getattr(async_object, "zk_op", None)
        if op is None:
            return
        now, member = rec.now(), self.member
        try:
            with rec.lock:
                self._complete(op, now, member, header.zxid, header.err, request.type, body)
        except JuteError as e:
            self._anomaly(f"undecodable reply to {op.kind} {op.path}: {e}")

    def _complete(self, op: Operation, now: int, member: int | None, zxid: int, err: int, opcode: int,
                  body: bytes) -> None:
        history = self.recorder.history
        if err in AMBIGUOUS_ERRORS:
            history.complete(op, now, Outcome.UNKNOWN, member=member)
        elif err:
            history.complete(op, now, Outcome.ERROR, error=err, zxid=zxid, member=member)
        else:
            result = decode_result(op.kind, opcode, op.args, Reader(body, max_len=len(body)))
            failed = multi_error(result) if op.kind == "multi" else 0
            outcome = Outcome.ERROR if failed else Outcome.OK
            history.complete(op, now, outcome, error=failed, result=result, zxid=zxid, member=member)

    def _event(self, header: Any, body: bytes) -> None:
        rec = self.recorder
        try:
            etype, _state, path = watcher_event(Reader(body, max_len=len(body)))
        except JuteError as e:
            self._anomaly(f"undecodable notification: {e}")
            return
        with rec.lock:
            rec.history.event(self.number, self.zk._session_id, rec.now(), etype, path, header.zxid, self.member)

    def _anomaly(self, what: str) -> None:
        rec = self.recorder
        with rec.lock:
            rec.history.anomalies.append((self.number, rec.now(), self.member, what))
