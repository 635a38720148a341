"""The recording kazoo clients and the data-dir reader, against one real zkserver process.

What the History says is compared with what kazoo itself returned (a second, independent
reading of the same replies); the workload's History and the data dir must satisfy every
checker, and the same material with one thing changed must not: the judging can fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from kazoo.exceptions import BadVersionError, NodeExistsError
from kazoo.protocol.connection import _CONNECTION_DROP

from tests.support.kazooload import KazooWorkload
from tests.support.memberdisk import read_member
from tests.support.recorder import Recorder, RecordingClient
from tests.support.servers import RunningServer
from zkserver.jute.codes import Err, EventType
from zkserver.sim.checkers import check_all
from zkserver.sim.history import Outcome

WAIT = 10.0


@pytest.fixture
def recorded(zk_server: RunningServer) -> Iterator[tuple[Recorder, RecordingClient]]:
    recorder = Recorder({zk_server.port: 1})
    client = RecordingClient(1, recorder, zk_server.hosts, session_timeout_s=10.0)
    client.zk.start(timeout=WAIT)
    try:
        yield recorder, client
    finally:
        client.zk.stop()
        client.zk.close()


def test_each_reply_is_recorded_with_the_servers_outcome_zxid_and_xid(recorded):
    recorder, client = recorded
    zk = client.zk
    inv, res = client.invoke("create", "/a", {"data": b"1", "flags": 0, "stat": True},
                             lambda: zk.create_async("/a", b"1", include_data=True))
    path, stat = res.get(WAIT)
    op = inv.op
    assert path == "/a"
    assert (op.outcome, op.result[0], op.zxid, op.member) == (Outcome.OK, "/a", stat.czxid, 1)
    assert op.result[1].czxid == stat.czxid and op.session_id == zk.client_id[0] and op.xid > 0

    inv, res = client.invoke("create", "/a", {"data": b"2", "flags": 0}, lambda: zk.create_async("/a", b"2"))
    with pytest.raises(NodeExistsError):
        res.get(WAIT)
    assert (inv.op.outcome, inv.op.error) == (Outcome.ERROR, Err.NODE_EXISTS)

    inv, res = client.invoke("set", "/a", {"data": b"3", "version": 7}, lambda: zk.set_async("/a", b"3", 7))
    with pytest.raises(BadVersionError):
        res.get(WAIT)
    assert inv.op.error == Err.BAD_VERSION and inv.op.zxid >= stat.czxid

    inv, res = client.invoke("exists", "/none", {"watch": True}, lambda: zk.exists_async("/none", lambda e: None))
    assert res.get(WAIT) is None  # kazoo says None; the server said NoNode, and the History keeps that
    assert (inv.op.outcome, inv.op.error) == (Outcome.ERROR, Err.NO_NODE)
    zk.create("/none", b"x")  # fires the exists watch
    deadline = time.monotonic() + WAIT
    while not recorder.history.events and time.monotonic() < deadline:
        time.sleep(0.01)
    event = recorder.history.events[0]
    assert (event.type, event.path, event.session_id) == (EventType.NODE_CREATED, "/none", zk.client_id[0])
    assert event.zxid == zk.exists("/none").czxid

    ops = [{"kind": "check", "path": "/a", "version": 0}, {"kind": "delete", "path": "/missing", "version": -1}]

    def multi():
        t = zk.transaction()
        t.check("/a", 0)
        t.delete("/missing")
        return t.commit_async()

    inv, res = client.invoke("multi", "/", {"ops": ops}, multi)
    res.get(WAIT)
    assert (inv.op.outcome, inv.op.error) == (Outcome.ERROR, Err.NO_NODE)
    assert [r[1] for r in inv.op.result] == [0, Err.NO_NODE]  # the check passed, the delete failed
    xids = [o.xid for o in recorder.history.ops]
    assert xids == sorted(xids) and len(set(xids)) == len(xids)


def test_xids_go_on_across_a_reconnect_within_a_session(recorded):
    _, client = recorded
    zk = client.zk
    zk.get("/")  # not recorded: no invocation bound
    inv1, res = client.invoke("get", "/", {"watch": False}, lambda: zk.get_async("/"))
    res.get(WAIT)
    session = zk.client_id[0]
    zk._call(_CONNECTION_DROP, zk.handler.async_result())  # kazoo's own hook: drop and reconnect
    deadline = time.monotonic() + WAIT
    inv2 = None
    while inv2 is None or inv2.op is None or inv2.op.outcome is not Outcome.OK:
        assert time.monotonic() < deadline, "no reply after the reconnect"
        inv2, res = client.invoke("get", "/", {"watch": False}, lambda: zk.get_async("/"))
        try:
            res.get(WAIT)
        except Exception:
            time.sleep(0.05)
    assert zk.client_id[0] == session
    assert inv2.op.xid > inv1.op.xid  # kazoo alone would have started again at 1


def test_a_request_that_never_left_the_client_is_not_recorded(zk_server):
    recorder = Recorder({zk_server.port: 1})
    client = RecordingClient(1, recorder, zk_server.hosts, session_timeout_s=10.0)
    client.zk.start(timeout=WAIT)
    zk_server.kill()  # now every request waits in kazoo's queue
    inv, res = client.invoke("create", "/x", {"data": b"1", "flags": 0}, lambda: client.zk.create_async("/x", b"1"))
    client.zk.stop()  # the queued request fails without being sent
    client.zk.close()
    with pytest.raises(Exception):  # noqa: B017 - kazoo fails it with ConnectionClosed or ConnectionLoss
        res.get(WAIT)
    assert inv.op is None and all(o.kind != "create" for o in recorder.history.ops)


def test_a_workload_passes_every_checker_and_a_changed_record_does_not(zk_server, tmp_path):
    recorder = Recorder({zk_server.port: 1})
    load = KazooWorkload(recorder, zk_server.hosts, clients=3, seed=5, session_timeout_s=4.0)
    load.start()
    deadline = time.monotonic() + 60
    while recorder.counts().get("ok_writes", 0) < 300:  # enough to conflict: a few hundred writes
        assert time.monotonic() < deadline, recorder.counts()
        time.sleep(0.1)
    assert load.stop()
    zk_server.stop()
    reading = read_member(1, zk_server.data_dir)
    history, state = recorder.history, reading.state
    assert reading.notes == [] and state.complete_from == 0
    assert check_all(history, [state]) == []
    counts = recorder.counts()
    assert counts["ok"] > 300 and counts.get("error", 0) > 0 and counts["events"] > 0

    # An acknowledged write whose txn is missing from the member's log: durability.
    write = next(o for o in history.ops if o.kind == "set" and o.outcome is Outcome.OK)
    lost = replace(state, txns=[(z, b) for z, b in state.txns if z != write.zxid])
    assert any(v.check == "durability" and write.op_id in v.ops for v in check_all(history, [lost]))

    # A read that saw data the committed state at its zxid does not hold: reads.
    read = next(o for o in history.ops if o.kind == "get" and o.outcome is Outcome.OK)
    data, stat = read.result
    read.result = (b"not what was there", stat)
    assert any(v.check == "reads" and read.op_id in v.ops for v in check_all(history, [state]))
    read.result = (data, stat)

    # A create that failed NodeExists, recorded as if it had succeeded: linearizable.
    refused = next(o for o in history.ops if o.kind == "create" and o.error == Err.NODE_EXISTS
                   and o.path.count("/") == 2)  # a key, not a parent
    refused.outcome, refused.error, refused.result = Outcome.OK, 0, (refused.path, None)
    assert any(v.check in ("linearizable", "durability") for v in check_all(history, [state]))
