"""The other checkers on hand-made histories: each accepts a correct one and rejects the
known-bad ones it exists for (a stale read, a reordered reply, a lost write, diverged
replicas, a surviving ephemeral, a reused sequence number, a double-fired watch)."""

from __future__ import annotations

from zkserver.jute.codes import CreateMode, Err, EventType, Op
from zkserver.jute.records import CreateTxn, DeleteTxn, ErrorTxn
from zkserver.sim.checkers import check_all, check_client
from zkserver.sim.checkers.base import Committed, NodeView
from zkserver.sim.checkers.consistency import check_reads, check_session_order, check_sync
from zkserver.sim.checkers.durability import check_acknowledged, check_committed, check_refused
from zkserver.sim.checkers.replicas import check_replicas
from zkserver.sim.checkers.sessions import check_ephemerals, check_sequential
from zkserver.sim.checkers.watches import check_watches
from zkserver.sim.history import Outcome

from .story import OPEN, Story, stat

OK, ERROR, UNKNOWN = Outcome.OK, Outcome.ERROR, Outcome.UNKNOWN


def _two_versions() -> tuple[Story, int, int]:
    """/a created with b"1" at z1, set to b"2" at z2."""
    s = Story()
    s.new_session(1)
    z1 = s.created(1, "/a", b"1")
    z2 = s.set(1, "/a", b"2", 1)
    return s, z1, z2


# ---------------------------------------------------------------- reads


def test_reads_match_the_committed_state_at_their_zxid():
    s, z1, z2 = _two_versions()
    s.op("get", "/a", 0, 1, ERROR, error=Err.NO_NODE, zxid=z1 - 1)
    s.op("get", "/a", 2, 3, result=(b"1", stat(z1, data=b"1")), zxid=z1)
    s.op("exists", "/a", 4, 5, result=stat(z1, z2, version=1, data=b"2"), zxid=z2)
    s.op("children", "/", 6, 7, result=["a", "zookeeper"], zxid=z2)
    assert check_reads(s.history, Committed.merge([s.member()])) == []


def test_a_stale_read_is_rejected():
    s, z1, z2 = _two_versions()
    s.op("get", "/a", 2, 3, result=(b"1", stat(z1, data=b"1")), zxid=z2)  # claims z2, shows z1
    [v] = check_reads(s.history, Committed.merge([s.member()]))
    assert v.check == "reads" and "b'1'" in v.message and "b'2'" in v.message


def test_a_read_of_the_future_and_a_wrong_nonode_are_rejected():
    s, z1, z2 = _two_versions()
    s.op("get", "/a", 2, 3, result=(b"2", stat(z1, z2, version=1, data=b"2")), zxid=z1)
    s.op("exists", "/a", 4, 5, ERROR, error=Err.NO_NODE, zxid=z2)
    s.op("get", "/a", 6, 7, result=(b"2", stat(z1, z2, version=1, data=b"2")), zxid=z2 + 5)
    problems = check_reads(s.history, Committed.merge([s.member()]))
    assert len(problems) == 3
    assert "beyond the committed history" in problems[2].message


def test_a_read_with_a_wrong_stat_field_is_rejected():
    s, z1, _ = _two_versions()
    s.op("get", "/a", 2, 3, result=(b"1", stat(z1, data=b"1", cversion=1)), zxid=z1)
    assert len(check_reads(s.history, Committed.merge([s.member()]))) == 1


def test_a_read_after_sync_must_see_writes_acknowledged_before_the_sync():
    s, z1, z2 = _two_versions()
    s.op("set", "/a", 0, 10, client=1, session=2, data=b"2", version=0, result=stat(z1, z2, version=1), zxid=z2)
    s.op("get", "/a", 5, 6, result=(b"1", stat(z1, data=b"1")), zxid=z1)  # concurrent with it: fine
    s.op("sync", "/a", 20, 21, result="/a", zxid=z2)
    s.op("get", "/a", 20, 22, result=(b"1", stat(z1, data=b"1")), zxid=z1)
    [v] = check_sync(s.history)
    assert "sync op 2" in v.message and "write op 0" in v.message


# ---------------------------------------------------------------- session order


def test_replies_out_of_request_order_are_rejected():
    s, z1, _z2 = _two_versions()
    b = s.history.invoke(0, 1, "get", "/a", {}, 0)
    c = s.history.invoke(0, 1, "get", "/a", {}, 0)
    s.history.complete(c, 5, OK, result=(b"1", stat(z1, data=b"1")), zxid=z1)
    s.history.complete(b, 5, OK, result=(b"1", stat(z1, data=b"1")), zxid=z1)  # same ms, but after c
    problems = check_session_order(s.history)
    assert [v.ops for v in problems] == [(0, 1)]


def test_a_zxid_going_back_in_a_session_is_rejected_across_members():
    s, z1, z2 = _two_versions()
    s.op("get", "/a", 0, 1, result=(b"2", stat(z1, z2, version=1, data=b"2")), zxid=z2, member=1)
    s.op("get", "/a", 2, 3, result=(b"1", stat(z1, data=b"1")), zxid=z1, member=2)
    s.op("get", "/a", 2, 3, client=1, session=2, result=(b"1", stat(z1, data=b"1")), zxid=z1)  # another session
    [v] = check_session_order(s.history)
    assert "member 2" in v.message and v.ops == (0, 1)


# ---------------------------------------------------------------- durability


def test_an_acknowledged_write_missing_from_a_live_member_is_lost():
    s, z1, z2 = _two_versions()
    s.op("create", "/a", 0, 1, data=b"1", flags=0, result=("/a", None), zxid=z1)
    s.op("set", "/a", 2, 3, data=b"2", version=0, result=stat(z1, z2, version=1), zxid=z2)
    whole = s.member(1)
    short = s.member(2, txns=s.txns[:-1])
    down = s.member(3, txns=s.txns[:-1], live=False)
    problems = check_acknowledged(s.history, [whole, short, down])
    assert [(v.member, v.ops) for v in problems] == [(2, (1,))]
    assert "stops at" in problems[0].message


def test_an_acknowledged_write_whose_txn_says_something_else_is_lost():
    s, z1, z2 = _two_versions()
    s.op("set", "/a", 2, 3, data=b"other", version=0, result=stat(z1, z2, version=1), zxid=z2)
    s.op("create", "/b", 4, 5, data=b"b", flags=0, result=("/b", None), zxid=z1)  # z1 holds /a's create
    problems = check_acknowledged(s.history, [s.member()])
    assert len(problems) == 2
    assert "b'other'" in problems[0].message and "/b" in problems[1].message


def test_an_acknowledged_multi_and_close_are_found_in_the_log():
    s = Story()
    s.new_session(1)
    z = s.multi(1, [(Op.CREATE, CreateTxn(Op.CREATE, "/m", b"m", OPEN, False, 1)), (Op.DELETE, DeleteTxn("/n"))])
    zc = s.closed(1, [])
    ops = [{"kind": "create", "path": "/m", "data": b"m", "flags": 0}, {"kind": "delete", "path": "/n"}]
    s.op("multi", "/", 0, 1, ops=ops, result=[(Op.CREATE, 0, ("/m", None)), (Op.DELETE, 0, None)], zxid=z)
    s.op("close", "/", 2, 3, zxid=zc)
    assert check_acknowledged(s.history, [s.member()]) == []
    s.op("close", "/", 2, 3, session=2, zxid=zc)
    assert len(check_acknowledged(s.history, [s.member()])) == 1


def test_a_committed_txn_missing_from_a_live_member_is_lost_acknowledged_or_not():
    """What the world saw committed (an expiry nobody was told of, say) must stay: ack-before-
    durable lost such txns, and the other checkers only saw the consequences."""
    s, _z1, z2 = _two_versions()
    zc = s.closed(1, [])
    journal = list(s.txns)
    whole = s.member(1)
    truncated = s.member(2, txns=s.txns[:2])  # lost the setData and the close: nobody acked the close
    replaced = s.member(3, txns=[*s.txns[:2], s.txns[3]])
    s.zxid = z2 - 1
    other = s.set(1, "/a", b"other", 1)
    replaced.txns[2] = s.txns[-1]
    snapshot = s.member(4, txns=[], complete_from=zc)  # a snapshot covers them all
    down = s.member(5, txns=[], live=False)
    problems = check_committed([whole, truncated, replaced, snapshot, down], journal)
    assert [v.member for v in problems] == [2, 3]
    assert f"0x{z2:x} (type 5 of session 0x1; it holds nothing there), 0x{zc:x}" in problems[0].message
    assert f"0x{other:x} (type 5 of session 0x1; it holds another txn there)" in problems[1].message


# ---------------------------------------------------------------- replicas


def _views(**nodes: tuple[bytes, int]) -> dict[str, NodeView]:
    return {"/" + name: NodeView(data, stat(z, data=data)) for name, (data, z) in nodes.items()}


def test_replicas_that_agree_pass():
    s, _z1, _ = _two_versions()
    z3 = s.deleted(1, "/a")
    s.created(1, "/b", b"b")
    tree = {"/b": NodeView(b"b", stat(z3 + 1, data=b"b"))}
    members = [s.member(m, tree=tree, digest=42) for m in (1, 2)]
    assert check_replicas(members, Committed.merge(members)) == []


def test_diverged_replicas_are_rejected():
    s, _z1, z2 = _two_versions()
    other = Story()
    other.new_session(1)
    other.created(1, "/a", b"1")
    other.set(1, "/a", b"DIFFERENT", 1)
    members = [s.member(1), s.member(2, txns=other.txns)]
    [v] = check_replicas(members, Committed.merge(members), quiet=False)
    assert f"zxid 0x{z2:x}" in v.message and "member 1" in v.message and "member 2" in v.message


def test_a_gap_in_an_epoch_and_a_lagging_live_member_are_rejected():
    s, z1, z2 = _two_versions()
    gapped = s.member(2, txns=[s.txns[0], s.txns[2]])
    lagging = s.member(3, txns=s.txns[:2])
    problems = check_replicas([s.member(1), gapped, lagging], Committed.merge([s.member(1)]))
    assert [(v.member, v.message.split(":")[0]) for v in problems] == [
        (2, "a gap in epoch 1"), (3, f"quiet, yet at zxid 0x{z1:x}, not 0x{z2:x}")]


def test_trees_that_differ_from_the_committed_history_are_rejected():
    s, z1, z2 = _two_versions()
    right = {"/a": NodeView(b"2", stat(z1, z2, version=1, data=b"2"))}
    wrong = {"/a": NodeView(b"1", stat(z1, data=b"1"))}
    members = [s.member(1, tree=right, digest=1), s.member(2, tree=wrong, digest=2)]
    problems = check_replicas(members, Committed.merge(members))
    assert [v.member for v in problems] == [None, 2]
    assert "digests differ" in problems[0].message and "/a" in problems[1].message


def test_a_committed_txn_that_cannot_apply_is_a_history_fault():
    s, _, _ = _two_versions()
    s.created(1, "/a", b"again")
    problems = check_replicas([s.member()], Committed.merge([s.member()]), quiet=False)
    assert [v.check for v in problems] == ["history"] and "/a, which exists" in problems[0].message


# ---------------------------------------------------------------- ephemerals


def test_ephemerals_go_with_their_session():
    s = Story()
    s.new_session(7)
    z = s.created(7, "/e", b"e", ephemeral=True)
    s.new_session(8)
    z8 = s.created(8, "/f", b"f", ephemeral=True)
    s.closed(7, ["/e"])
    live = {"/f": NodeView(b"f", stat(z8, data=b"f", owner=8))}
    assert check_ephemerals([s.member(tree=live, sessions={8})], Committed.merge([s.member()])) == []
    stale = {**live, "/e": NodeView(b"e", stat(z, data=b"e", owner=7))}
    [v] = check_ephemerals([s.member(tree=stale, sessions={8})], Committed.merge([s.member()]))
    assert "/e" in v.message and "0x7" in v.message
    [v] = check_ephemerals([s.member(tree=live, sessions=set())], Committed.merge([s.member()]))
    assert "not live" in v.message


def test_a_close_that_leaves_an_ephemeral_out_or_an_ephemeral_after_close_is_rejected():
    s = Story()
    s.new_session(7)
    s.created(7, "/e", b"e", ephemeral=True)
    s.created(7, "/g", b"g", ephemeral=True)
    s.closed(7, ["/e"])
    s.created(7, "/h", b"h", ephemeral=True)
    problems = check_ephemerals([s.member()], Committed.merge([s.member()]), quiet=False)
    assert len(problems) == 2
    assert "left its ephemeral /g out" in problems[0].message and "/h created by session 0x7" in problems[1].message


# ---------------------------------------------------------------- sequential names


def _seq(s: Story, name: str, t: int, flags: int = CreateMode.PERSISTENT_SEQUENTIAL):
    return s.op("create", "/p/q-", t, t + 1, data=f"{t}".encode(), flags=flags, result=(name, None))


def test_sequential_names_are_never_reused():
    s = Story()
    s.new_session(1)
    for n in (0, 1, 5):
        s.commit(1, Op.CREATE, CreateTxn(Op.CREATE, f"/p/q-{n:010d}", b"x", OPEN, False, n + 1))
    _seq(s, "/p/q-0000000000", 0)
    _seq(s, "/p/q-0000000001", 2, CreateMode.EPHEMERAL_SEQUENTIAL)
    assert check_sequential(s.history, Committed.merge([s.member()])) == []
    _seq(s, "/p/q-0000000001", 4)
    _seq(s, "/p/x-0000000009", 6)
    problems = check_sequential(s.history, Committed.merge([s.member()]))
    assert len(problems) == 2
    assert "again to op 2" in problems[0].message and "asked for /p/q-N" in problems[1].message


def test_committed_sequence_numbers_must_increase_per_parent():
    s = Story()
    s.new_session(1)
    for n in (3, 4, 4):
        s.commit(1, Op.CREATE, CreateTxn(Op.CREATE, f"/p/q-{n:010d}", b"x", OPEN, False, n + 1))
    _seq(s, "/p/q-0000000003", 0)
    [v] = check_sequential(s.history, Committed.merge([s.member()]))
    assert "after number 4" in v.message


# ---------------------------------------------------------------- watches


def test_one_shot_watches_fire_once_per_registration():
    s, z1, z2 = _two_versions()
    s.op("get", "/a", 0, 1, result=(b"1", stat(z1, data=b"1")), zxid=z1, watch=True)
    s.event(EventType.NODE_DATA_CHANGED, "/a", z2)
    s.op("exists", "/b", 2, 3, ERROR, error=Err.NO_NODE, zxid=z2, watch=True)
    s.event(EventType.NODE_CREATED, "/b", z2 + 1)
    s.op("get", "/a", 4, 5, result=(b"2", stat(z1, z2, version=1, data=b"2")), zxid=z2 + 1, watch=True)
    s.event(EventType.NODE_DELETED, "/a", z2 + 2)
    assert check_watches(s.history) == []
    s.event(EventType.NODE_DELETED, "/a", z2 + 2)  # once more: nothing armed it
    [v] = check_watches(s.history)
    assert "fired twice, or never set" in v.message


def test_persistent_watches_fire_any_number_of_times():
    s, z1, z2 = _two_versions()
    s.op("add_watch", "/", 0, 1, zxid=z1, mode=1)  # recursive
    for z in (z2, z2 + 1, z2 + 2):
        s.event(EventType.NODE_DATA_CHANGED, "/a", z)
    assert check_watches(s.history) == []
    s.event(EventType.NODE_CHILDREN_CHANGED, "/", z2 + 3)  # recursive watches never fire these
    assert len(check_watches(s.history)) == 1


def test_an_event_must_come_before_a_reply_showing_its_change():
    s, z1, z2 = _two_versions()
    s.op("get", "/a", 0, 1, result=(b"1", stat(z1, data=b"1")), zxid=z1, watch=True)
    s.op("get", "/a", 2, 3, result=(b"2", stat(z1, z2, version=1, data=b"2")), zxid=z2)
    s.event(EventType.NODE_DATA_CHANGED, "/a", z2)
    [v] = check_watches(s.history)
    assert "arrived before the event" in v.message and v.ops == (1,)


# ---------------------------------------------------------------- all of them


def test_client_anomalies_are_violations():
    s = Story()
    s.history.anomalies.append((3, 17, 2, "reply to xid 9, which is not outstanding"))
    [v] = check_client(s.history)
    assert "client 3" in v.message and "xid 9" in v.message


def test_check_all_of_a_clean_small_story_is_empty():
    s, z1, z2 = _two_versions()
    s.op("create", "/a", 0, 1, data=b"1", flags=0, result=("/a", None), zxid=z1)
    s.op("set", "/a", 2, 3, data=b"2", version=0, result=stat(z1, z2, version=1), zxid=z2)
    s.op("get", "/a", 4, 5, result=(b"2", stat(z1, z2, version=1, data=b"2")), zxid=z2)
    tree = {"/a": NodeView(b"2", stat(z1, z2, version=1, data=b"2"))}
    assert check_all(s.history, [s.member(tree=tree, sessions={1})]) == []


def test_a_write_answered_with_an_error_must_not_have_taken_effect():
    s = Story()
    s.new_session(1)
    s.commit(1, Op.ERROR, ErrorTxn(Err.NODE_EXISTS), cxid=3)
    z = s.created(1, "/b", b"b", cxid=4)
    s.op("create", "/a", 0, 1, ERROR, error=Err.NODE_EXISTS, xid=3, data=b"a", flags=0)
    s.op("create", "/b", 2, 3, ERROR, error=Err.SYSTEM_ERROR, xid=4, data=b"b", flags=0)
    [v] = check_refused(s.history, Committed.merge([s.member()]))
    assert v.ops == (1,) and f"0x{z:x}" in v.message
