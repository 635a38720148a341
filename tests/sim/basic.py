"""A deliberately small client, workload and check for testing the world itself.

The real simulated clients, workload and checkers are built separately (zkserver.sim.client,
workload, checkers). These exist only so that the world's tests have traffic to carry and an
outcome to judge: each client keeps one session on one member, pipelines a few creates of
fresh znodes, setDatas of its own znodes (every value unique) and getDatas, encodes requests
with kazoo's serializers (a real client's, not ours), and reconnects with its session after a
connection loss, a request timeout or a silent server. `no_acknowledged_write_lost` then
finds the txn of every acknowledged write in the member's log on disk, at the zxid of its
reply and with the session id and xid of its request.

`log_is_contiguous` checks that each member's log holds zxids 1, 2, 3, ... without a gap.

Use from the command line: `python -m zkserver.sim --seed 7 --workload tests.sim.basic:workload
--check tests.sim.basic:no_acknowledged_write_lost --check tests.sim.basic:log_is_contiguous`
(from the repository root).
"""

from __future__ import annotations

import struct

from kazoo.protocol.serialization import Connect, Create, GetData, ReplyHeader, SetData, int_int_struct
from kazoo.security import OPEN_ACL_UNSAFE

from zkserver.sim.history import Operation, Outcome
from zkserver.sim.world import Violation, World

_LEN = struct.Struct(">i")
_TXN_HEADER = struct.Struct(">qiqqi")  # client id, cxid, zxid, time, type
XID_PING, XID_NOTIFICATION = -2, -1
PING_OP = 11
WRITES = {"create": 1, "set": 5}
MAX_CREATED = 40  # znodes per client: keeps snapshots small


class _Conn:
    """One connection attempt; its callbacks are ignored once the client moved on."""

    def __init__(self, client: BasicClient):
        self.client = client
        self.stream = None

    def on_open(self) -> None:
        if self.client.conn is self:
            self.client._opened()

    def on_data(self, data: bytes) -> None:
        if self.client.conn is self:
            self.client._data(data)

    def on_close(self) -> None:
        if self.client.conn is self:
            self.client._lost("connection closed")


class BasicClient:
    def __init__(self, world: World, n: int, member: str, depth: int = 3):
        self.world = world
        self.n = n
        self.name = f"c{n}"
        self.member = member
        self.sched = world.scheduler
        self.rng = world.scheduler.rng(f"{self.name}.basic")
        self.timeout = world.options.session_timeout_ms
        self.depth = depth
        self.session_id = 0
        self.passwd = bytes(16)
        self.last_zxid = 0
        self.conn: _Conn | None = None
        self.established = False
        self.buf = bytearray()
        self.pending: dict[int, Operation] = {}
        self.next_xid = 1
        self.created: list[str] = []
        self.count = 0
        self.stopped = False
        self.last_heard = 0
        self.last_sent = 0
        self.sessions = 0

    def note(self, text: str) -> None:
        self.world.trace.note(self.name, text)

    # ------------------------------------------------------------ connection

    def start(self) -> None:
        self._dial()
        self.sched.call_later(self.timeout // 3, self._watchdog)

    def stop(self) -> None:
        self.stopped = True

    def _dial(self) -> None:
        self.conn = _Conn(self)
        self.established = False
        self.buf = bytearray()
        self.last_heard = self.sched.now
        self.conn.stream = self.world.connect(self.name, self.member, self.conn)

    def _opened(self) -> None:
        self.last_heard = self.sched.now
        req = Connect(0, self.last_zxid, self.timeout, self.session_id, self.passwd, False)
        self._send(bytes(req.serialize()))

    def _send(self, payload: bytes) -> None:
        self.last_sent = self.sched.now
        self.conn.stream.send(_LEN.pack(len(payload)) + payload)

    def _lost(self, why: str) -> None:
        self.note(f"connection lost ({why}); {len(self.pending)} pending become unknown")
        if self.conn is not None and self.conn.stream is not None:
            self.conn.stream.close()
        self.conn = None
        self.established = False
        for op in self.pending.values():
            op.outcome = Outcome.UNKNOWN
        self.pending.clear()
        if not self.stopped:
            self.sched.call_later(self.rng.randint(10, 100), self._dial)

    def _watchdog(self) -> None:
        now = self.sched.now
        if self.conn is not None:
            silent = now - self.last_heard
            oldest = min((op.invoked for op in self.pending.values()), default=now)
            if silent > self.timeout * 2 // 3 or now - oldest > self.timeout:
                self._lost("timed out")
            elif self.established and now - self.last_sent >= self.timeout // 3:
                self._send(int_int_struct.pack(XID_PING, PING_OP))
        if not (self.stopped and self.conn is None):
            self.sched.call_later(self.timeout // 3, self._watchdog)

    # ------------------------------------------------------------ frames

    def _data(self, data: bytes) -> None:
        self.last_heard = self.sched.now
        self.buf += data
        while len(self.buf) >= 4:
            (n,) = _LEN.unpack_from(self.buf, 0)
            if len(self.buf) < 4 + n:
                return
            frame = bytes(self.buf[4:4 + n])
            del self.buf[:4 + n]
            if self.conn is None:
                return
            if not self.established:
                self._connected(frame)
            else:
                self._reply(frame)

    def _connected(self, frame: bytes) -> None:
        resp, _ = Connect.deserialize(frame, 0)
        if resp.time_out <= 0:
            self.note(f"session 0x{self.session_id:x} expired; starting a new one")
            self.session_id, self.passwd = 0, bytes(16)
            self._lost("session expired")
            return
        if resp.session_id != self.session_id:
            self.sessions += 1
        self.session_id, self.passwd = resp.session_id, resp.passwd
        self.established = True
        self.note(f"session 0x{self.session_id:x} on {self.member}")
        self._fill()

    def _reply(self, frame: bytes) -> None:
        hdr, _offset = ReplyHeader.deserialize(frame, 0)
        if hdr.xid in (XID_PING, XID_NOTIFICATION):
            return
        op = self.pending.pop(hdr.xid, None)
        if op is None:
            self._lost(f"reply to unknown xid {hdr.xid}")
            return
        if hdr.zxid > 0:
            self.last_zxid = max(self.last_zxid, hdr.zxid)
        op.completed, op.zxid, op.member = self.sched.now, hdr.zxid, int(self.member[1:])
        if hdr.err:
            op.outcome, op.error = Outcome.ERROR, hdr.err
        else:
            op.outcome = Outcome.OK
            if op.kind == "create":
                self.created.append(op.path)
        self.sched.call_later(self.rng.randint(10, 200), self._next)

    # ------------------------------------------------------------ operations

    def _fill(self) -> None:
        while self.established and not self.stopped and len(self.pending) < self.depth:
            self._issue()

    def _next(self) -> None:
        """After a reply and a think time: the next operation, if a slot is free."""
        if self.established and not self.stopped and len(self.pending) < self.depth:
            self._issue()

    def _issue(self) -> None:
        self.count += 1
        data = f"{self.name}-{self.count}".encode()
        roll = self.rng.random()
        if (roll < 0.4 and len(self.created) < MAX_CREATED) or not self.created:
            kind, path = "create", f"/{self.name}-{self.count}"
            req = Create(path, data, OPEN_ACL_UNSAFE, 0)
        elif roll < 0.8:
            kind, path = "set", self.rng.choice(self.created)
            req = SetData(path, data, -1)
        else:
            kind, path = "get", self.rng.choice(self.created)
            req = GetData(path, False)
        xid = self.next_xid
        self.next_xid += 1
        op = self.world.history.invoke(self.n, self.session_id, kind, path, {"xid": xid, "data": data},
                                       self.sched.now)
        self.pending[xid] = op
        self._send(int_int_struct.pack(xid, req.type) + bytes(req.serialize()))


class BasicWorkload:
    def __init__(self, world: World):
        members = [m.name for m in world.members]
        self.clients = [BasicClient(world, i, members[(i - 1) % len(members)])
                        for i in range(1, len(world.client_names) + 1)]
        self.world = world

    def start(self) -> None:
        for c in self.clients:
            self.world.scheduler.call_later(c.rng.randint(0, 50), c.start)

    def stop(self) -> None:
        for c in self.clients:
            c.stop()

    @property
    def idle(self) -> bool:
        return all(not c.pending for c in self.clients)


def workload(world: World) -> BasicWorkload:
    return BasicWorkload(world)


def no_acknowledged_write_lost(world: World) -> list[Violation]:
    """Every OK create/set is in the member's log at its reply zxid, from its session and xid."""
    out = []
    logs = {s.sid: dict(s.txns) for s in world.final_states()}
    for op in world.history.ops:
        if op.kind not in WRITES or op.outcome is not Outcome.OK:
            continue
        entry = logs.get(op.member, {}).get(op.zxid)
        if entry is None:
            out.append(Violation("no acknowledged write lost",
                                 f"op {op.op_id} {op.kind} {op.path} by c{op.client} acknowledged at zxid "
                                 f"0x{op.zxid:x} is not in m{op.member}'s log"))
            continue
        client_id, cxid, _zxid, _time, kind = _TXN_HEADER.unpack_from(entry, 0)
        if (client_id, cxid, kind) != (op.session_id, op.args["xid"], WRITES[op.kind]):
            out.append(Violation("no acknowledged write lost",
                                 f"op {op.op_id} {op.kind} {op.path} acknowledged at zxid 0x{op.zxid:x}, but the "
                                 f"log holds session 0x{client_id:x} xid {cxid} type {kind} there"))
    return out


def log_is_contiguous(world: World) -> list[Violation]:
    """Each member's logged zxids run 1, 2, 3, ... with no gap and no repeat (one epoch)."""
    out = []
    for state in world.final_states():
        zxids = [z for z, _ in state.txns]
        expected = list(range(1, len(zxids) + 1))
        if zxids != expected:
            at = next(i for i, (z, e) in enumerate(zip(zxids, expected, strict=False)) if z != e)
            out.append(Violation("log contiguous", f"{state.name}'s log holds zxid 0x{zxids[at]:x} where 0x"
                                                   f"{expected[at]:x} belongs ({len(zxids)} entries)"))
    return out
