"""The linearizability checker on hand-made histories: what it must accept, what it must reject."""

from __future__ import annotations

from zkserver.jute.codes import CreateMode, Err, Op
from zkserver.jute.records import CreateTxn, ErrorTxn, SetDataTxn
from zkserver.sim.checkers.base import Committed
from zkserver.sim.checkers.linearizable import _Builder, check_linearizable, partitions, witness
from zkserver.sim.history import Outcome, Stat

from .story import OPEN, Story, stat

OK, ERROR, UNKNOWN = Outcome.OK, Outcome.ERROR, Outcome.UNKNOWN
NONE = Committed()  # no committed history: nothing resolved from the logs


def version(v: int) -> Stat:
    return stat(1, version=v)


def create(s: Story, path: str, t0: int, t1: int | None, outcome=OK, flags=CreateMode.PERSISTENT, **kw):
    result = (path, None) if outcome is OK and "result" not in kw else kw.pop("result", None)
    return s.op("create", path, t0, t1, outcome, data=kw.pop("data", f"{path}@{t0}".encode()), flags=flags,
                result=result, **kw)


def test_a_sequential_register_history_passes():
    s = Story()
    create(s, "/a", 0, 10)
    s.op("set", "/a", 20, 30, data=b"x", version=0, result=version(1))
    s.op("set", "/a", 40, 50, ERROR, data=b"y", version=0, error=Err.BAD_VERSION)
    s.op("delete", "/a", 60, 70, version=1)
    s.op("delete", "/a", 80, 90, ERROR, version=-1, error=Err.NO_NODE)
    create(s, "/a", 100, 110)
    assert check_linearizable(s.history, NONE) == []


def test_two_creates_of_one_path_both_ok_is_rejected():
    s = Story()
    create(s, "/a", 0, 10)
    create(s, "/a", 20, 30)
    [v] = check_linearizable(s.history, NONE)
    assert v.check == "linearizable" and "/a" in v.message and not v.inconclusive
    assert v.ops == (0, 1)


def test_overlapping_creates_cannot_both_win_either():
    s = Story()
    create(s, "/a", 0, 30)
    create(s, "/a", 10, 20)
    assert len(check_linearizable(s.history, NONE)) == 1


def test_concurrent_conflicting_outcomes_are_ordered_by_the_search():
    # The set that says BadVersion overlaps the one that moved the version; it must go after it.
    s = Story()
    create(s, "/a", 0, 10)
    s.op("set", "/a", 20, 40, ERROR, data=b"y", version=0, error=Err.BAD_VERSION)
    s.op("set", "/a", 21, 39, data=b"x", version=0, result=version(1))
    assert check_linearizable(s.history, NONE) == []


def test_a_stale_version_after_the_fact_is_rejected():
    s = Story()
    create(s, "/a", 0, 10)
    s.op("set", "/a", 20, 30, data=b"x", version=0, result=version(1))
    s.op("set", "/a", 40, 50, data=b"y", version=0, result=version(1))  # version 0 was gone at 30
    assert len(check_linearizable(s.history, NONE)) == 1


def test_a_wrong_new_version_in_the_reply_is_rejected():
    s = Story()
    create(s, "/a", 0, 10)
    s.op("set", "/a", 20, 30, data=b"x", version=-1, result=version(2))
    assert len(check_linearizable(s.history, NONE)) == 1


def test_an_unknown_outcome_may_have_happened_or_not():
    happened = Story()
    create(happened, "/a", 0, 10)
    happened.op("delete", "/a", 20, None, UNKNOWN, version=-1)
    create(happened, "/a", 100, 110)  # only possible if the unknown delete happened
    assert check_linearizable(happened.history, NONE) == []

    did_not = Story()
    create(did_not, "/a", 0, 10)
    did_not.op("delete", "/a", 20, None, UNKNOWN, version=-1)
    did_not.op("set", "/a", 100, 110, data=b"x", version=0, result=version(1))  # only if it did not
    assert check_linearizable(did_not.history, NONE) == []


def test_an_unknown_write_cannot_take_effect_before_it_was_invoked():
    s = Story()
    create(s, "/a", 0, 10)
    s.op("delete", "/a", 50, None, UNKNOWN, version=-1)
    create(s, "/a", 20, 30)  # over before the delete was even sent
    assert len(check_linearizable(s.history, NONE)) == 1


def test_an_unknown_write_is_resolved_by_its_txn_in_a_complete_log():
    def story() -> Story:
        s = Story()
        create(s, "/a", 0, None, UNKNOWN, data=b"maybe", xid=4)
        create(s, "/a", 10, 20, ERROR, data=b"second", error=Err.NODE_EXISTS, result=None, xid=5)
        return s

    s = story()
    assert check_linearizable(s.history, NONE) == []  # without logs: it may have happened
    s.new_session(1)
    s.failed(1, Err.NODE_EXISTS)
    assert len(check_linearizable(s.history, Committed.merge([s.member()]))) == 1  # no txn of xid 4: it did not
    t = story()
    t.new_session(1)
    t.created(1, "/a", b"maybe", cxid=4)
    assert check_linearizable(t.history, Committed.merge([t.member()])) == []


def test_an_unknown_write_with_a_txn_happened_before_a_later_zxid_was_seen():
    def story(seen: bool) -> Story:
        s = Story()
        s.new_session(1)
        create(s, "/a", 0, 10, data=b"0")
        z = s.commit(1, Op.SET_DATA, SetDataTxn("/a", b"1", 1), cxid=2)
        s.op("set", "/a", 15, None, UNKNOWN, data=b"1", version=-1, xid=2)
        if seen:  # another session saw zxid z at 20: the set was in by then
            s.op("get", "/b", 16, 20, ERROR, client=1, session=2, error=Err.NO_NODE, zxid=z)
        s.op("set", "/a", 30, 40, client=1, session=2, data=b"2", version=0, result=version(1))
        return s

    s = story(seen=False)
    assert check_linearizable(s.history, Committed.merge([s.member()])) == []  # it could come last
    s = story(seen=True)
    [v] = check_linearizable(s.history, Committed.merge([s.member()]))
    assert "op 1 [15, 20] set /a -> ok (by its txn)" in v.message


def test_a_multi_joins_its_paths():
    s = Story()
    ops = [{"kind": "create", "path": "/a", "data": b"1"}, {"kind": "create", "path": "/b", "data": b"2"}]
    s.op("multi", "/", 0, 10, ops=ops, result=[(Op.CREATE, 0, ("/a", None)), (Op.CREATE, 0, ("/b", None))])
    create(s, "/b", 20, 30)
    [v] = check_linearizable(s.history, NONE)
    assert "/a, /b" in v.message


def test_a_failed_multi_must_fail_where_it_says():
    def story(err: int, index: int) -> Story:
        s = Story()
        create(s, "/a", 0, 10)
        ops = [{"kind": "set", "path": "/a", "data": b"x", "version": -1},
               {"kind": "check", "path": "/a", "version": 5}]
        results = [(Op.ERROR, 0, None), (Op.ERROR, 0, None)]
        results[index] = (Op.ERROR, err, None)
        if index == 0:
            results[1] = (Op.ERROR, Err.RUNTIME_INCONSISTENCY, None)
        s.op("multi", "/", 20, 30, ERROR, ops=ops, error=err, result=results)
        s.op("set", "/a", 40, 50, data=b"y", version=0, result=version(1))  # so the multi's set did not apply
        return s

    assert check_linearizable(story(Err.BAD_VERSION, 1).history, NONE) == []
    assert len(check_linearizable(story(Err.NO_NODE, 1).history, NONE)) == 1  # /a exists
    assert len(check_linearizable(story(Err.BAD_VERSION, 0).history, NONE)) == 1  # a set of -1 cannot fail so


def test_closed_sessions_delete_their_ephemerals_from_the_committed_history():
    def story(closed: bool) -> Story:
        s = Story()
        s.new_session(7)
        z = s.created(7, "/e", b"eph", ephemeral=True)
        create(s, "/e", 0, 10, session=7, flags=CreateMode.EPHEMERAL, data=b"eph", zxid=z)
        if closed:
            s.closed(7, ["/e"])
        create(s, "/e", 100, 110, client=1, session=8)
        return s

    s = story(closed=True)
    assert check_linearizable(s.history, Committed.merge([s.member()])) == []
    s = story(closed=False)
    assert len(check_linearizable(s.history, Committed.merge([s.member()]))) == 1


def test_a_create_under_a_parent_known_to_exist_may_not_say_nonode():
    s = Story()
    create(s, "/p", 0, 10)
    create(s, "/p/a", 5, 8, ERROR, error=Err.NO_NODE, result=None)  # before /p was known: fine
    assert check_linearizable(s.history, NONE) == []
    create(s, "/p/b", 20, 30, ERROR, error=Err.NO_NODE, result=None)
    [v] = check_linearizable(s.history, NONE)
    assert "/p/b" in v.message


def test_sequential_creates_are_placed_by_their_names():
    s = Story()
    create(s, "/p/q-", 0, 10, flags=CreateMode.PERSISTENT_SEQUENTIAL, result=("/p/q-0000000000", None))
    s.op("delete", "/p/q-0000000000", 20, 30, version=0)
    s.op("delete", "/p/q-0000000000", 40, 50, version=0)  # twice: impossible
    [v] = check_linearizable(s.history, NONE)
    assert "/p/q-0000000000" in v.message


def test_an_unknown_sequential_create_lands_where_the_log_says():
    s = Story()
    s.new_session(1)
    s.commit(1, Op.CREATE, CreateTxn(Op.CREATE, "/p/q-0000000003", b"v", OPEN, False, 4), cxid=9)
    create(s, "/p/q-", 0, None, UNKNOWN, flags=CreateMode.PERSISTENT_SEQUENTIAL, data=b"v", xid=9)
    s.op("delete", "/p/q-0000000003", 20, 30, version=0)
    assert check_linearizable(s.history, Committed.merge([s.member()])) == []


def test_request_level_errors_change_nothing():
    s = Story()
    create(s, "/a", 0, 10, ERROR, error=Err.SESSION_EXPIRED, result=None)
    s.op("delete", "/a", 20, 30, ERROR, version=-1, error=Err.NO_NODE)
    assert check_linearizable(s.history, NONE) == []


def test_out_of_budget_is_inconclusive_not_a_pass():
    s = Story()
    for i in range(6):
        create(s, "/a", i, 100, ERROR if i else OK, error=Err.NODE_EXISTS if i else 0,
               result=None if i else ("/a", None))
    [v] = check_linearizable(s.history, NONE, budget=3)
    assert v.inconclusive
    assert check_linearizable(s.history, NONE) == []


def _lin_ops(s: Story):
    b = _Builder(s.history, NONE)
    return partitions([b.client_op(o) for o in s.history.ops])


def test_the_committed_order_is_a_witness_when_it_explains_every_outcome():
    s = Story()
    create(s, "/a", 0, 10, zxid=1)
    s.op("set", "/a", 20, 40, ERROR, data=b"y", version=0, error=Err.BAD_VERSION, zxid=3)
    s.op("set", "/a", 21, 39, data=b"x", version=0, result=version(1), zxid=2)
    [(part, ops)] = _lin_ops(s)
    assert witness(part, ops) is None
    s.history.ops[1].zxid, s.history.ops[2].zxid = 2, 3  # the order the log claims no longer explains it
    [(part, ops)] = _lin_ops(s)
    assert "set /a v0 -> error -103 is not what the state then allows" in witness(part, ops)
    assert check_linearizable(s.history, NONE) == []  # but a wrong witness proves nothing: the search decides


def test_an_unknown_write_whose_txn_is_an_error_changed_nothing():
    # Seeds 3 and 6 (3 members): a TTL create lost its connection; its txn is an ErrorTxn
    # (Unimplemented: no extended types), so the node never existed and a later set says NoNode.
    def story(txn_error: bool) -> Story:
        s = Story()
        s.new_session(1)
        if txn_error:
            z = s.failed(1, Err.UNIMPLEMENTED, cxid=3)
        else:
            z = s.commit(1, Op.CREATE_TTL, CreateTxn(Op.CREATE_TTL, "/a", b"t", OPEN, False, 1, 500), cxid=3)
        create(s, "/a", 0, None, UNKNOWN, flags=CreateMode.PERSISTENT_WITH_TTL, ttl=500, data=b"t", xid=3)
        s.op("get", "/b", 5, 10, ERROR, client=1, session=2, error=Err.NO_NODE, zxid=z)  # the txn was in by 10
        s.op("set", "/a", 20, 30, ERROR, client=1, session=2, data=b"x", version=-1, error=Err.NO_NODE, zxid=z)
        return s

    s = story(txn_error=True)
    assert check_linearizable(s.history, Committed.merge([s.member()])) == []
    s = story(txn_error=False)  # the create succeeded: the set cannot say NoNode
    [v] = check_linearizable(s.history, Committed.merge([s.member()]))
    assert "set /a -> error -101" in v.message


def test_an_unknown_write_whose_txn_is_an_error_must_have_been_refused_by_the_state():
    s = Story()
    s.new_session(1)
    create(s, "/a", 0, 10, data=b"1")
    s.op("delete", "/a", 20, None, UNKNOWN, version=-1, xid=4)
    z = s.failed(1, Err.NO_NODE, cxid=4)  # but /a was there, and nothing deleted it
    s.op("get", "/b", 21, 30, ERROR, client=1, session=2, error=Err.NO_NODE, zxid=z)
    [v] = check_linearizable(s.history, Committed.merge([s.member()]))
    assert "delete /a -> error -101" in v.message


def test_an_unknown_multi_whose_txn_failed_changed_nothing_and_failed_where_its_txn_says():
    def story(fail_at_check: bool) -> Story:
        s = Story()
        s.new_session(1)
        ops = [{"kind": "create", "path": "/a", "data": b"m"}, {"kind": "check", "path": "/b", "version": 0}]
        s.op("multi", "/", 0, None, UNKNOWN, ops=ops, xid=5)
        if fail_at_check:  # Apache's layout: the create keeps its txn, the check failed
            z = s.multi(1, [(Op.CREATE, CreateTxn(Op.CREATE, "/a", b"m", OPEN, False, 1)),
                            (Op.ERROR, ErrorTxn(Err.NO_NODE))], cxid=5)
        else:  # the create said NodeExists: it cannot, /a is absent
            z = s.multi(1, [(Op.ERROR, ErrorTxn(Err.NODE_EXISTS)),
                            (Op.ERROR, ErrorTxn(Err.RUNTIME_INCONSISTENCY))], cxid=5)
        s.op("get", "/b", 5, 10, ERROR, client=1, session=2, error=Err.NO_NODE, zxid=z)  # the txn was in by 10
        create(s, "/a", 30, 40, client=1, session=2, data=b"later", zxid=z + 1)  # the multi made no /a
        return s

    s = story(fail_at_check=True)
    assert check_linearizable(s.history, Committed.merge([s.member()])) == []
    s = story(fail_at_check=False)
    assert len(check_linearizable(s.history, Committed.merge([s.member()]))) == 1
