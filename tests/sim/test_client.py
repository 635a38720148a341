"""SimClient against members the test plays by hand: handshake, replies split and merged,
out-of-order and unexpected replies, refused and expired sessions, timeouts, pings, watches
re-armed on reconnect, close."""

from __future__ import annotations

from zkserver.jute.codec import Reader, Writer
from zkserver.jute.codes import XID_NOTIFICATION, XID_PING, XID_SET_WATCHES, Err, EventType, KeeperState, Op
from zkserver.jute.records import STAT, ConnectRequest, SetWatches, encode_connect_response, encode_reply
from zkserver.proto.framing import FrameSplitter
from zkserver.sim.checkers.consistency import check_session_order
from zkserver.sim.client import SimClient
from zkserver.sim.history import History, Outcome
from zkserver.sim.scheduler import Scheduler
from zkserver.sim.workload import Workload, WorkloadOptions

from .corehost import Pipe

STAT0 = STAT.pack(5, 5, 0, 0, 0, 0, 0, 0, 1, 0, 5)
SID = 0x1234


class Member:
    """The server end of one connection, scripted by the test."""

    def __init__(self, member: int, pipe: Pipe):
        self.member = member
        self.pipe = pipe
        self.end = pipe.ends[1]
        self.splitter = FrameSplitter(1 << 20)
        self.frames: list[bytes] = []
        self.closed = False

    def on_open(self) -> None:
        pass

    def on_data(self, data: bytes) -> None:
        self.frames += [bytes(f) for f in self.splitter.feed(data)]

    def on_close(self) -> None:
        self.closed = True

    def hello(self) -> ConnectRequest:
        return ConnectRequest.read(self.frames[0])

    def requests(self) -> list[tuple[int, int, Reader]]:
        out = []
        for f in self.frames[1:]:
            r = Reader(f)
            out.append((r.int(), r.int(), r))
        return out

    def accept(self, timeout: int = 3000, sid: int = SID) -> None:
        body = encode_connect_response(timeout, sid, b"p" * 16, False)
        self.end.send(len(body).to_bytes(4, "big") + body)

    def reply(self, xid: int, zxid: int, err: int = 0, body: bytes = b"") -> None:
        self.end.send(encode_reply(xid, zxid, err, body))

    def event(self, etype: int, path: str, zxid: int) -> None:
        body = Writer().int(etype).int(KeeperState.SYNC_CONNECTED).ustring(path).getvalue()
        self.reply(XID_NOTIFICATION, zxid, 0, body)


class World:
    def __init__(self, members: tuple[int, ...] = (1,), **kw):
        self.scheduler = Scheduler(7)
        self.history = History()
        self.links: list[Member] = []
        self.client = SimClient(0, self.scheduler, self.history, self._connect, list(members), **kw)

    def _connect(self, member: int, handler):
        pipe = Pipe(self.scheduler, f"{member}/{len(self.links)}", latency=(1, 1), max_chunks=1)
        link = Member(member, pipe)
        pipe.ends[0].handler, pipe.ends[1].handler = handler, link
        self.links.append(link)
        self.scheduler.call_later(1, handler.on_open)
        return pipe.ends[0]

    def run(self, ms: int = 5) -> None:
        self.scheduler.run_until(self.scheduler.now + ms)

    def connected(self) -> Member:
        self.client.start()
        self.run()
        link = self.links[-1]
        link.accept()
        self.run()
        assert self.client.state == "connected"
        return link


def test_handshake_request_and_reply():
    w = World()
    w.client.start()
    w.run()
    link = w.links[0]
    hello = link.hello()
    assert (hello.session_id, hello.last_zxid_seen, hello.timeout, hello.passwd) == (0, 0, 10000, bytes(16))
    link.accept(timeout=4000)
    w.run()
    op = w.client.submit("get", "/a", {"watch": False})
    w.run()
    [(xid, opcode, r)] = link.requests()
    assert (opcode, r.path(), r.bool()) == (Op.GET_DATA, "/a", False)
    link.reply(xid, 9, 0, Writer().buffer(b"v").getvalue() + STAT0)
    w.run()
    assert op.outcome is Outcome.OK and op.result[0] == b"v" and op.result[1].czxid == 5
    assert (op.zxid, op.session_id, op.member, w.client.last_zxid, w.client.timeout) == (9, SID, 1, 9, 4000)
    [session] = [o for o in w.history.ops if o.kind == "session"]
    assert session.outcome is Outcome.OK and session.result == SID


def test_replies_split_and_merged_on_the_wire_are_reassembled():
    w = World()
    link = w.connected()
    ops = [w.client.submit("exists", f"/n{i}", {}) for i in range(3)]
    w.run()
    blob = b"".join(encode_reply(xid, 20 + xid, 0, STAT0) for xid, _, _ in link.requests())
    for i in range(len(blob)):  # a byte at a time: every frame boundary falls mid-delivery
        link.end.send(blob[i:i + 1])
    w.run(200)
    assert [(o.outcome, o.zxid) for o in ops] == [(Outcome.OK, 21), (Outcome.OK, 22), (Outcome.OK, 23)]


def test_an_out_of_order_reply_is_recorded_as_it_arrives_for_the_checker_to_judge():
    w = World()
    link = w.connected()
    a = w.client.submit("exists", "/a", {})
    b = w.client.submit("exists", "/b", {})
    w.run()
    (xa, _, _), (xb, _, _) = link.requests()
    link.reply(xb, 7, 0, STAT0)
    link.reply(xa, 7, 0, STAT0)
    w.run()
    assert a.outcome is b.outcome is Outcome.OK and b.seq < a.seq
    [v] = check_session_order(w.history)
    assert v.ops == (a.op_id, b.op_id)


def test_a_reply_to_no_request_is_an_anomaly_and_ends_the_connection():
    w = World()
    link = w.connected()
    pending = w.client.submit("exists", "/a", {})
    w.run()
    link.reply(99, 7, 0, STAT0)
    w.run(3000)
    assert pending.outcome is Outcome.UNKNOWN and pending.completed is None
    [(client, _, member, what)] = w.history.anomalies
    assert (client, member) == (0, 1) and "xid 99" in what
    assert len(w.links) == 2 and w.links[1].hello().session_id == SID  # reconnected, same session


def test_a_refusing_member_sends_the_client_to_the_next():
    w = World(members=(1, 2))
    first = w.connected()
    op = w.client.submit("exists", "/a", {})
    w.run()
    [(xid, _, _)] = first.requests()
    first.reply(xid, 0x500, 0, STAT0)
    w.run()
    first.pipe.reset()
    w.run(3000)
    second = w.links[1]
    assert second.member != first.member and op.outcome is Outcome.OK
    hello = second.hello()
    assert (hello.session_id, hello.passwd, hello.last_zxid_seen) == (SID, b"p" * 16, 0x500)
    second.end.close()  # behind the client's zxid: Apache closes without a word
    w.run(3000)
    assert w.links[2].member == first.member and w.links[2].hello().session_id == SID


def test_an_expired_session_is_recorded_and_replaced():
    w = World()
    link = w.connected()
    link.pipe.reset()
    queued = w.client.submit("create", "/e", {"data": b"x", "flags": 1})
    w.run(3000)
    w.links[1].accept(timeout=0, sid=0)
    w.run(3000)
    assert queued.outcome is Outcome.ERROR and queued.error == Err.SESSION_EXPIRED and queued.zxid is None
    [expired] = [o for o in w.history.ops if o.kind == "expired"]
    assert expired.session_id == SID and expired.error == Err.SESSION_EXPIRED
    hello = w.links[2].hello()
    assert (hello.session_id, hello.last_zxid_seen) == (0, 0)


def test_pending_requests_end_unknown_and_queued_ones_wait_for_the_next_connection():
    w = World()
    link = w.connected()
    sent = w.client.submit("delete", "/a", {"version": -1})
    w.run()
    link.pipe.reset()
    queued = w.client.submit("delete", "/b", {"version": -1})
    w.run(3000)
    assert sent.outcome is Outcome.UNKNOWN and queued.outcome is None
    again = w.links[1]
    again.accept()
    w.run()
    [(xid, opcode, r)] = again.requests()
    assert (opcode, r.path()) == (Op.DELETE, "/b")
    again.reply(xid, 3)
    w.run()
    assert queued.outcome is Outcome.OK


def test_a_request_unanswered_past_the_request_timeout_ends_unknown():
    w = World(request_timeout=500)
    link = w.connected()
    op = w.client.submit("sync", "/", {})
    w.run(400)
    assert op.outcome is None
    w.run(200)
    assert op.outcome is Outcome.UNKNOWN and link.closed  # the client hung up
    assert len(w.links) == 1 or w.links[1].hello().session_id == SID


def test_an_idle_client_pings_and_a_silent_member_is_left():
    w = World(session_timeout=3000)
    link = w.connected()
    for _ in range(5):  # answer every ping for a while: the connection stays
        w.run(1000)
        for xid, opcode, _ in link.requests()[-1:]:
            if xid == XID_PING and opcode == Op.PING:
                link.reply(XID_PING, 0)
        link.frames[1:] = []
    assert w.client.link is not None and w.client.link.stream is link.pipe.ends[0]
    w.run(2100)  # now silence: the read timeout (two thirds of 3000 ms) ends it
    assert w.client.link is None or w.client.link.stream is not link.pipe.ends[0]


def test_watches_are_rearmed_on_reconnect_and_events_disarm_them():
    w = World()
    link = w.connected()
    ops = [w.client.submit("get", "/d", {"watch": True}), w.client.submit("exists", "/x", {"watch": True}),
           w.client.submit("children", "/c", {"watch": True}), w.client.submit("get", "/gone", {"watch": True})]
    w.run()
    (x1, _, _), (x2, _, _), (x3, _, _), (x4, _, _) = link.requests()
    link.reply(x1, 10, 0, Writer().buffer(b"v").getvalue() + STAT0)
    link.reply(x2, 10, Err.NO_NODE)
    link.reply(x3, 10, 0, Writer().ustring_vector(["k"]).getvalue())
    link.reply(x4, 11, 0, Writer().buffer(b"v").getvalue() + STAT0)
    link.event(EventType.NODE_DELETED, "/gone", 12)
    w.run()
    assert [o.outcome for o in ops] == [Outcome.OK, Outcome.ERROR, Outcome.OK, Outcome.OK]
    assert [(e.type, e.path, e.zxid) for e in w.history.events] == [(EventType.NODE_DELETED, "/gone", 12)]
    link.pipe.reset()
    w.run(3000)
    again = w.links[1]
    again.accept()
    w.run()
    [(xid, opcode, r)] = again.requests()
    sw = SetWatches.read(r, v2=False)
    assert (xid, opcode, sw.relative_zxid) == (XID_SET_WATCHES, Op.SET_WATCHES, 11)
    assert (sw.data, sw.exist, sw.child) == (["/d"], ["/x"], ["/c"])
    w.client.submit("add_watch", "/r", {"mode": 1})
    w.run()
    again.reply(again.requests()[-1][0], 11, 0, Writer().int(0).getvalue())
    w.run()
    again.pipe.reset()
    w.run(3000)
    w.links[2].accept()
    w.run()
    [(_, opcode, r)] = w.links[2].requests()
    sw = SetWatches.read(r, v2=True)
    assert opcode == Op.SET_WATCHES2 and sw.recursive == ["/r"] and sw.data == ["/d"]


def test_a_closed_session_is_not_resumed():
    w = World()
    link = w.connected()
    close = w.client.submit("close", "/", {})
    w.run()
    [(xid, opcode, _)] = link.requests()
    assert opcode == Op.CLOSE_SESSION
    link.reply(xid, 30)
    w.run(3000)
    assert close.outcome is Outcome.OK and w.client.state == "closed" and len(w.links) == 1
    w.client.start()
    w.run()
    assert w.links[1].hello().session_id == 0


def test_a_callback_may_submit_while_the_connection_is_being_lost():
    w = World()
    link = w.connected()
    retries = []
    w.client.submit("delete", "/a", {"version": -1},
                    on_done=lambda op: retries.append(w.client.submit("delete", "/a", {"version": -1})))
    w.run()
    link.pipe.reset()
    w.run(3000)
    [retry] = retries
    assert retry.outcome is None and w.client.outstanding == 1  # queued for the next connection
    w.links[1].accept()
    w.run()
    assert [opcode for _, opcode, _ in w.links[1].requests()] == [Op.DELETE]


def test_a_session_being_opened_keeps_the_workload_from_idling():
    """Seed 61 (3 voters + 1 observer): the world went quiet while a client's new session was
    being asked for, and its "session" operation stayed pending past the end."""
    w = World()
    workload = Workload(w.scheduler, [w.client], WorkloadOptions(ops_per_client=None))
    w.client.start()
    w.run()
    assert w.client.opening_session and w.client.outstanding == 0
    assert not workload.idle
    w.links[-1].accept()
    w.run()
    assert not w.client.opening_session and workload.idle
