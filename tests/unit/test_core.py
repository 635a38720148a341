"""ServerCore driven in-process through kazoo's codec: sessions, writes, errors, multi, pipelining.

Expected behaviour is Apache ZooKeeper 3.9's (PrepRequestProcessor, FinalRequestProcessor,
DataTree, ZooKeeperServer); the reference is named where a test pins a specific rule.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    InvalidACLError,
    MarshallingError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RuntimeInconsistency,
    UnimplementedError,
)
from kazoo.protocol.serialization import (
    CheckVersion,
    Close,
    Connect,
    Create,
    Create2,
    Delete,
    Exists,
    GetACL,
    GetChildren,
    GetChildren2,
    GetData,
    Ping,
    SetACL,
    SetData,
    Sync,
    Transaction,
    int_struct,
    read_string,
)
from kazoo.security import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, make_acl
from tests.unit.corehelper import (
    XID_PING,
    CoreDriver,
    CreateContainer,
    CreateTTL,
    DeleteContainer,
    FakeClock,
    GetAllChildrenNumber,
    GetEphemerals,
    MultiRead,
    Raw,
    decode_multi,
)

from zkserver.core import CoreSettings, ServerCore
from zkserver.jute.codes import Op
from zkserver.jute.records import CloseSessionTxn, CreateSessionTxn, ErrorTxn

OPEN = OPEN_ACL_UNSAFE
NODE_DELETED = 2


def new(**settings) -> CoreDriver:
    return CoreDriver(CoreSettings(**settings)) if settings else CoreDriver()


def created_stat(client, path, data=b"", acl=OPEN, flags=0):
    body = client.ok(Create2(path, data, acl, flags))
    return Create2.deserialize(body, 0)


def stat_of(client, path):
    """The node's Stat, or None when exists answers NoNode."""
    f = client.call(Exists(path, False))
    if f.err == NoNodeError.code:
        return None
    assert f.err == 0, f.err
    return Exists.deserialize(f.body, 0)


def children_of(client, path):
    return sorted(GetChildren.deserialize(client.ok(GetChildren(path, False)), 0))


def last_txn(driver):
    return driver.appended[-1]


# ====================================================================== sessions


class TestSessions:
    def test_session_create_consumes_a_zxid_and_is_answered_once_durable(self):
        d = CoreDriver(auto_persist=False)
        c = d.connect(timeout=12000)
        assert c.frames == []  # nothing before the createSession txn is durable
        assert len(d.appended) == 1
        hdr, txn = d.appended[0]
        assert hdr.type == Op.CREATE_SESSION and hdr.zxid == 1
        assert isinstance(txn, CreateSessionTxn) and txn.timeout == 12000
        d.persist()
        (frame,) = c.take()
        assert frame.kind == "connect"
        assert frame.connect.time_out == 12000
        assert frame.connect.session_id == hdr.client_id != 0
        assert len(frame.connect.passwd) == 16
        assert d.core.tree.last_processed_zxid == 1
        # The next session takes the next zxid and another id.
        c2 = d.connect()
        d.persist()
        assert d.appended[1][0].zxid == 2
        assert c2.session_id not in (0, c.session_id)

    @pytest.mark.parametrize(("asked", "granted"), [(1, 4000), (4000, 4000), (25000, 25000), (10**6, 40000)])
    def test_timeout_is_negotiated_into_min_max(self, asked, granted):
        d = new(min_session_timeout=4000, max_session_timeout=40000)
        c = d.session(timeout=asked)
        assert c.timeout == granted

    def test_client_that_saw_a_later_zxid_is_refused(self):
        d = new()
        d.session()  # zxid 1
        c = d.connect(last_zxid=2)
        assert c.closed
        assert c.frames == []
        assert len(d.appended) == 1  # no session created for it
        c_ok = d.connect(last_zxid=1)
        assert not c_ok.closed and c_ok.session_id != 0

    def test_reconnect_with_right_password_moves_the_session(self):
        d = new()
        c1 = d.session()
        created_stat(c1, "/e", flags=1)
        c2 = d.connect(session_id=c1.session_id, passwd=c1.passwd, last_zxid=d.core.tree.last_processed_zxid)
        (frame,) = c2.take()
        assert frame.connect.session_id == c1.session_id
        assert frame.connect.passwd == c1.passwd
        assert frame.connect.time_out == 10000
        assert c1.closed and not c2.closed
        # No session txn for a reconnect; the ephemeral survives.
        assert d.txn_types().count(Op.CREATE_SESSION) == 1
        assert stat_of(c2, "/e").ephemeralOwner == c1.session_id

    def test_reconnect_with_wrong_password_gets_timeout_zero_and_close(self):
        d = new()
        c1 = d.session()
        wrong = bytes(b ^ 0xFF for b in c1.passwd)
        c2 = d.connect(session_id=c1.session_id, passwd=wrong)
        (frame,) = c2.take()
        assert frame.kind == "connect"
        assert (frame.connect.time_out, frame.connect.session_id) == (0, 0)
        assert frame.connect.passwd == bytes(16)
        assert c2.closed
        assert c1.session_id in d.core.sessions.sessions

    def test_reconnect_to_unknown_session_gets_timeout_zero_and_close(self):
        d = new()
        d.session()
        c = d.connect(session_id=0x1234, passwd=bytes(16))
        (frame,) = c.take()
        assert (frame.connect.time_out, frame.connect.session_id) == (0, 0)
        assert c.closed

    def test_expiry_by_tick_deletes_ephemerals_in_a_close_session_txn(self):
        clock = FakeClock(mono_ms=1_000_000)
        d = CoreDriver(CoreSettings(tick_ms=2000), clock)
        owner = d.session(timeout=4000)
        watcher = d.session()
        created_stat(owner, "/eph", flags=1)
        created_stat(owner, "/plain")
        watcher.ok(GetData("/eph", True))
        before = len(d.appended)
        # Expiry time is rounded up to the next tick: (1_000_000 + 4000) // 2000 * 2000 + 2000.
        clock.mono = 1_005_999
        d.core.tick()
        d.pump()
        assert len(d.appended) == before
        clock.mono = 1_006_000
        watcher.call(Ping(), xid=XID_PING)  # keeps the other session alive
        d.core.tick()
        d.pump()
        hdr, txn = last_txn(d)
        assert hdr.type == Op.CLOSE_SESSION and hdr.client_id == owner.session_id
        assert isinstance(txn, CloseSessionTxn) and txn.paths_to_delete == ["/eph"]
        assert owner.closed
        assert watcher.events() == [(NODE_DELETED, "/eph")]
        assert watcher.err(Exists("/eph", False)) == NoNodeError.code
        assert stat_of(watcher, "/plain") is not None
        assert owner.session_id not in d.core.sessions.sessions
        # The expired session cannot be resumed.
        again = d.connect(session_id=owner.session_id, passwd=owner.passwd)
        assert again.take()[0].connect.time_out == 0
        assert again.closed

    def test_requests_touch_the_session(self):
        clock = FakeClock(mono_ms=1_000_000)
        d = CoreDriver(CoreSettings(tick_ms=2000), clock)
        c = d.session(timeout=4000)
        for _ in range(5):
            clock.mono += 3000
            c.send(Ping(), xid=XID_PING)
            d.core.tick()
            d.pump()
        assert not c.closed
        assert d.txn_types().count(Op.CLOSE_SESSION) == 0
        clock.mono += 6000
        d.core.tick()
        d.pump()
        assert c.closed
        assert d.txn_types()[-1] == Op.CLOSE_SESSION

    def test_reconnect_timeout_governs_expiry(self):
        """Apache touches a session with the timeout its connection negotiated
        (ZooKeeperServer.revalidateSession -> touchSession(sessionId, sessionTimeout); touch(cnxn))."""
        clock = FakeClock(mono_ms=1_000_000)
        d = CoreDriver(CoreSettings(tick_ms=2000), clock)
        c1 = d.session(timeout=4000)
        c2 = d.connect(timeout=20000, session_id=c1.session_id, passwd=c1.passwd)
        assert c2.take()[0].connect.time_out == 20000
        clock.mono += 10000
        d.core.tick()
        d.pump()
        assert not c2.closed

    def test_client_close_session(self):
        d = new()
        c = d.session()
        other = d.session()
        created_stat(c, "/x")
        created_stat(c, "/x/e1", flags=1)
        created_stat(c, "/x/e2", flags=3)
        other.ok(GetChildren("/x", True))
        f = c.call(Close())
        assert f.err == 0
        assert c.closed
        hdr, txn = last_txn(d)
        assert hdr.type == Op.CLOSE_SESSION
        assert sorted(txn.paths_to_delete) == ["/x/e1", "/x/e20000000001"]
        assert children_of(other, "/x") == []
        assert other.events() == [(4, "/x")]

    def test_max_client_cnxns_per_ip(self):
        d = new(max_client_cnxns=2)
        a = d.open("10.0.0.1")
        b = d.open("10.0.0.1")
        assert a is not None and b is not None
        assert d.open("10.0.0.1") is None
        assert d.open("10.0.0.2") is not None
        d.drop(a)
        assert d.open("10.0.0.1") is not None

    def test_connection_loss_keeps_the_session_until_expiry(self):
        d = new()
        c = d.session()
        created_stat(c, "/eph", flags=1)
        d.drop(c)
        other = d.session()
        assert stat_of(other, "/eph").ephemeralOwner == c.session_id


# ====================================================================== writes and Stat


class TestWrites:
    def test_create_stat_fields(self):
        clock = FakeClock(wall_ms=1_600_000_000_123)
        d = CoreDriver(clock=clock)
        c = d.session()
        path, stat = created_stat(c, "/n", b"hello")
        zxid = last_txn(d)[0].zxid
        assert path == "/n"
        assert stat.czxid == stat.mzxid == stat.pzxid == zxid
        assert stat.ctime == stat.mtime == 1_600_000_000_123
        assert (stat.version, stat.cversion, stat.aversion, stat.ephemeralOwner) == (0, 0, 0, 0)
        assert (stat.dataLength, stat.numChildren) == (5, 0)
        # Plain create answers with the path only.
        assert read_string(c.ok(Create("/m", b"", OPEN, 0)), 0)[0] == "/m"

    def test_reply_zxid_is_the_last_applied_zxid(self):
        d = new()
        c = d.session()
        f = c.call(Create("/z", b"", OPEN, 0))
        assert f.zxid == last_txn(d)[0].zxid == d.core.tree.last_processed_zxid

    def test_parent_cversion_pzxid_and_mzxid(self):
        d = new()
        c = d.session()
        _, pstat = created_stat(c, "/p")
        created_stat(c, "/p/a")
        _, bstat = created_stat(c, "/p/b")
        st = stat_of(c, "/p")
        assert (st.cversion, st.numChildren, st.pzxid) == (2, 2, bstat.czxid)
        c.ok(Delete("/p/a", -1))
        del_zxid = last_txn(d)[0].zxid
        st = stat_of(c, "/p")
        # Client cversion counts changes: 2 creates + 1 delete = 2 * creates - children.
        assert (st.cversion, st.numChildren, st.pzxid) == (3, 1, del_zxid)
        assert st.mzxid == pstat.mzxid and st.version == 0  # children do not touch data
        assert d.core.tree.get("/p").cversion == 2  # persisted form: number of creates
        _, ch = GetChildren2.deserialize(c.ok(GetChildren2("/p", False)), 0)
        assert ch == st

    def test_sequential_suffix_comes_from_parent_cversion(self):
        d = new()
        c = d.session()
        created_stat(c, "/q")
        assert created_stat(c, "/q/s-", flags=2)[0] == "/q/s-0000000000"
        created_stat(c, "/q/x")
        assert created_stat(c, "/q/s-", flags=2)[0] == "/q/s-0000000002"
        c.ok(Delete("/q/s-0000000000", -1))
        c.ok(Delete("/q/x", -1))
        # Deletes do not lower the create counter: no name is ever reused.
        assert created_stat(c, "/q/s-", flags=3)[0] == "/q/s-0000000003"
        assert created_stat(c, "/q/", flags=2)[0] == "/q/0000000004"

    def test_null_data_reads_back_as_null(self):
        """Apache keeps a null byte[] as null: GetDataResponse writes it as length -1."""
        d = new()
        c = d.session()
        _, st = created_stat(c, "/nul", None)
        assert st.dataLength == 0
        assert GetData.deserialize(c.ok(GetData("/nul", False)), 0)[0] is None
        c.ok(SetData("/nul", b"x", -1))
        c.ok(SetData("/nul", None, -1))
        data, st = GetData.deserialize(c.ok(GetData("/nul", False)), 0)
        assert data is None and st.dataLength == 0 and st.version == 2
        assert GetData.deserialize(c.ok(GetData("/", False)), 0)[0] == b""  # DataTree root: new byte[0]

    def test_set_data_versions_and_mtime(self):
        clock = FakeClock()
        d = CoreDriver(clock=clock)
        c = d.session()
        _, st0 = created_stat(c, "/v", b"a")
        clock.wall += 5000
        st1 = SetData.deserialize(c.ok(SetData("/v", b"bcd", 0)), 0)
        assert (st1.version, st1.dataLength, st1.mtime, st1.ctime) == (1, 3, st0.ctime + 5000, st0.ctime)
        assert st1.mzxid == last_txn(d)[0].zxid and st1.czxid == st0.czxid
        assert c.err(SetData("/v", b"x", 0)) == BadVersionError.code
        assert SetData.deserialize(c.ok(SetData("/v", b"x", -1)), 0).version == 2
        data, st = GetData.deserialize(c.ok(GetData("/v", False)), 0)
        assert (data, st.version) == (b"x", 2)

    def test_set_acl_bumps_aversion(self):
        d = new()
        c = d.session()
        created_stat(c, "/a")
        st = SetACL.deserialize(c.ok(SetACL("/a", READ_ACL_UNSAFE + OPEN, 0)), 0)
        assert st.aversion == 1 and st.version == 0
        assert c.err(SetACL("/a", OPEN, 0)) == BadVersionError.code
        acl, _ = GetACL.deserialize(c.ok(GetACL("/a")), 0)
        assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(1, "world", "anyone"), (31, "world", "anyone")]

    def test_ephemeral_owner_in_stat(self):
        d = new()
        c = d.session()
        _, st = created_stat(c, "/e", flags=1)
        assert st.ephemeralOwner == c.session_id


# ====================================================================== errors


class TestErrors:
    @pytest.fixture
    def env(self):
        d = new()
        c = d.session()
        created_stat(c, "/p")
        created_stat(c, "/p/c")
        created_stat(c, "/eph", flags=1)
        return d, c

    @pytest.mark.parametrize(("request_", "code"), [
        (Create("/p", b"", OPEN, 0), NodeExistsError.code),
        (Create("/missing/x", b"", OPEN, 0), NoNodeError.code),
        (Delete("/missing", -1), NoNodeError.code),
        (SetData("/missing", b"", -1), NoNodeError.code),
        (SetACL("/missing", OPEN, -1), NoNodeError.code),
        (Delete("/p", -1), NotEmptyError.code),
        (Delete("/p/c", 3), BadVersionError.code),
        (SetData("/p", b"", 7), BadVersionError.code),
        (Create("/eph/child", b"", OPEN, 0), NoChildrenForEphemeralsError.code),
        (Create("/acl0", b"", [], 0), InvalidACLError.code),
        (Create("/acl1", b"", [make_acl("auth", "x", all=True)], 0), InvalidACLError.code),  # nobody authenticated
        (Create("/acl2", b"", [make_acl("digest", "nocolon", all=True)], 0), InvalidACLError.code),
        (Create("/acl3", b"", [make_acl("world", "bob", all=True)], 0), InvalidACLError.code),
        (Create("/acl4", b"", [make_acl("ip", "300.1.1.1", all=True)], 0), InvalidACLError.code),
        (Create("/acl5", b"", [make_acl("nosuchscheme", "x", all=True)], 0), InvalidACLError.code),
        (Create("noslash", b"", OPEN, 0), BadArgumentsError.code),
        (Create("/.", b"", OPEN, 0), BadArgumentsError.code),
        (Create("/p/..", b"", OPEN, 0), BadArgumentsError.code),
        (Create("/p/", b"", OPEN, 0), BadArgumentsError.code),
        (Create("/a\0b", b"", OPEN, 0), BadArgumentsError.code),
        (Create("/ctl\x01", b"", OPEN, 0), BadArgumentsError.code),
        (Create("/bad", b"", OPEN, 7), BadArgumentsError.code),
        (SetData("/p/", b"", -1), BadArgumentsError.code),
        (Delete("/zookeeper", -1), BadArgumentsError.code),
        (Delete("/zookeeper/quota", -1), BadArgumentsError.code),
        (Delete("/zookeeper/config", -1), BadArgumentsError.code),
        (Delete("/", -1), BadArgumentsError.code),
        (Delete("noslash", -1), BadArgumentsError.code),
    ], ids=lambda v: repr(v)[:60] if not isinstance(v, int) else str(v))
    def test_failed_write_is_an_error_txn(self, env, request_, code):
        d, c = env
        before_zxid = d.core.zxid
        f = c.call(request_)
        assert f.err == code
        hdr, txn = last_txn(d)
        # The failure still takes a zxid (Apache: the request becomes an ErrorTxn).
        assert hdr.zxid == before_zxid + 1 and hdr.type == Op.ERROR
        assert isinstance(txn, ErrorTxn) and txn.err == code
        assert f.zxid == hdr.zxid
        assert f.body == b""

    def test_error_precedence_follows_apache(self, env):
        _d, c = env
        # PrepRequestProcessor.pRequest2TxnCreate: flags and path shape, then fixupACL, then the
        # parent record, then the CREATE permission, then NodeExists, then the ephemeral parent.
        assert c.err(Create("/missing/x", b"", OPEN, 9)) == BadArgumentsError.code
        assert c.err(Create("/missing/x", b"", [], 0)) == InvalidACLError.code
        assert c.err(Create("/eph/x", b"", [], 0)) == InvalidACLError.code
        assert c.err(Create("/missing/x/.", b"", OPEN, 0)) == NoNodeError.code
        assert c.err(Create("/p/c", b"", OPEN, 0)) == NodeExistsError.code
        # delete: the node must exist before its version is checked; version before NotEmpty.
        assert c.err(Delete("/missing", 9)) == NoNodeError.code
        assert c.err(Delete("/p", 9)) == BadVersionError.code

    def test_no_auth(self):
        d = new()
        c = d.session()
        created_stat(c, "/ro", acl=READ_ACL_UNSAFE)
        created_stat(c, "/nr", acl=[make_acl("world", "anyone", write=True, create=True, delete=True)])
        created_stat(c, "/nr/kid")
        assert c.err(Create("/ro/x", b"", OPEN, 0)) == NoAuthError.code
        assert c.err(SetData("/ro", b"x", -1)) == NoAuthError.code
        assert c.err(SetACL("/ro", OPEN, -1)) == NoAuthError.code
        assert c.err(GetData("/nr", False)) == NoAuthError.code
        assert c.err(GetChildren("/nr", False)) == NoAuthError.code
        assert c.err(Exists("/nr", False)) == NoAuthError.code
        assert c.err(GetACL("/nr")) == NoAuthError.code
        assert last_txn(d)[0].type == Op.ERROR
        # DELETE is checked on the parent: /nr grants it, "/" grants everything.
        c.ok(Delete("/nr/kid", -1))
        created_stat(c, "/nd", acl=[make_acl("world", "anyone", read=True, create=True)])
        created_stat(c, "/nd/kid")
        assert c.err(Delete("/nd/kid", -1)) == NoAuthError.code

    def test_error_txns_keep_zxids_dense(self):
        d = new()
        c = d.session()
        for _ in range(3):
            c.call(Delete("/nothing", -1))
        created_stat(c, "/after")
        zxids = [h.zxid for h, _ in d.appended]
        assert zxids == list(range(1, len(zxids) + 1))
        assert d.txn_types()[1:] == [Op.ERROR] * 3 + [Op.CREATE2]


# ====================================================================== multi


class TestMulti:
    def test_multi_results_per_op(self):
        d = new()
        c = d.session()
        created_stat(c, "/old", b"1")
        body = c.ok(Transaction([
            Create("/m", b"d", OPEN, 0),
            Create2("/m/s-", b"", OPEN, 2),
            SetData("/old", b"22", 0),
            CheckVersion("/old", 1),
            Delete("/old", 1),
        ]))
        res = decode_multi(body)
        zxid = last_txn(d)[0].zxid
        assert [(t, e) for t, e, _ in res] == [(1, 0), (15, 0), (5, 0), (13, 0), (2, 0)]
        assert res[0][2] == "/m"
        path, st = res[1][2]
        assert path == "/m/s-0000000000" and st.czxid == zxid
        assert res[2][2].version == 1 and res[2][2].dataLength == 2
        assert last_txn(d)[0].type == Op.MULTI
        # Every op of a multi shares one zxid.
        assert stat_of(c, "/m").czxid == zxid
        assert stat_of(c, "/old") is None

    def test_failed_multi_is_all_or_nothing(self):
        d = new()
        c = d.session()
        created_stat(c, "/keep", b"v0")
        before = d.core.zxid
        f = c.call(Transaction([
            Create("/new", b"", OPEN, 0),
            SetData("/keep", b"changed", -1),
            Delete("/missing", -1),
            Create("/new2", b"", OPEN, 0),
        ]))
        assert f.err == 0  # the outcome is in the results (FinalRequestProcessor never sets err for multi)
        res = decode_multi(f.body)
        assert res == [
            (-1, 0, 0),
            (-1, 0, 0),
            (-1, NoNodeError.code, NoNodeError.code),
            (-1, RuntimeInconsistency.code, RuntimeInconsistency.code),
        ]
        hdr, _ = last_txn(d)
        assert hdr.type == Op.MULTI and hdr.zxid == before + 1  # the zxid is consumed
        assert stat_of(c, "/new") is None and stat_of(c, "/new2") is None
        data, st = GetData.deserialize(c.ok(GetData("/keep", False)), 0)
        assert (data, st.version) == (b"v0", 0)

    def test_failed_multi_leaves_no_trace_in_the_pending_overlay(self):
        d = CoreDriver(auto_persist=False)
        c = d.session()
        c.send(Create("/p", b"", OPEN, 0))
        d.persist()
        c.take()
        x_multi = c.send(Transaction([
            Create("/t", b"", OPEN, 0),
            Create("/p/s-", b"", OPEN, 2),
            Delete("/missing", -1),
        ]))
        # Validated before the multi is durable: neither /t nor the parent's cversion moved.
        x_create = c.send(Create("/t", b"", OPEN, 0))
        x_seq = c.send(Create("/p/s-", b"", OPEN, 2))
        assert c.frames == []
        d.persist()
        replies = {f.xid: f for f in c.replies()}
        assert decode_multi(replies[x_multi].body)[2][1] == NoNodeError.code
        assert replies[x_create].err == 0
        assert read_string(replies[x_seq].body, 0)[0] == "/p/s-0000000000"

    def test_multi_sees_its_own_earlier_ops(self):
        d = new()
        c = d.session()
        res = decode_multi(c.ok(Transaction([
            Create("/a", b"", OPEN, 0),
            Create("/a/b", b"", OPEN, 0),
            Delete("/a/b", -1),
            Create("/a/b", b"again", OPEN, 0),
        ])))
        assert [t for t, _, _ in res] == [1, 1, 2, 1]
        assert GetData.deserialize(c.ok(GetData("/a/b", False)), 0)[0] == b"again"
        assert stat_of(c, "/a").cversion == 3  # two creates and a delete

    def test_multi_read(self):
        d = new()
        c = d.session()
        created_stat(c, "/r", b"data")
        created_stat(c, "/r/k")
        res = decode_multi(c.ok(MultiRead([GetData("/r", False), GetChildren("/r", False), GetData("/none", False)])))
        assert res[0][0] == 4 and res[0][2][0] == b"data"
        assert res[1] == (8, 0, ["k"])
        assert res[2] == (-1, NoNodeError.code, NoNodeError.code)

    def test_multi_read_with_a_write_op_is_answered(self):
        """FinalRequestProcessor multiRead: a non-read op throws IOException("Invalid type of
        readOp"), answered as MarshallingError; the connection stays open."""
        d = new()
        c = d.session()
        f = c.call(MultiRead([GetData("/", False), Create("/w", b"", OPEN, 0)]))
        assert f.err == MarshallingError.code
        assert f.body == b""
        assert not c.closed
        assert stat_of(c, "/w") is None


# ====================================================================== pipelining


class TestPipelining:
    def test_a_close_does_not_list_an_ephemeral_deleted_and_recreated_by_others_in_flight(self):
        """Found by the simulator (seed 49, 5 voters + 1 observer, with ack-before-durable on for
        its timing): the session's ephemeral was deleted, then created again as another's node,
        both still in flight; the change in flight for the path was the create, whose owner is
        not the session, and the close listed the path from the committed tree anyway."""
        d = CoreDriver(auto_persist=False)
        owner, other = d.session(), d.session()
        owner.send(Create("/e", b"", OPEN, 1))
        d.persist()
        assert owner.take()[0].err == 0
        other.send(Delete("/e", -1))
        other.send(Create("/e", b"mine", OPEN, 0))
        owner.send(Close())
        close = d.unpersisted[-1]
        assert close[0].type == Op.CLOSE_SESSION and close[1].paths_to_delete == []
        d.persist()
        assert [f.err for f in other.take()] == [0, 0]
        assert stat_of(other, "/e").ephemeralOwner == 0

    def test_reads_wait_behind_writes_and_replies_keep_order(self):
        d = CoreDriver(auto_persist=False)
        c = d.session()
        x1 = c.send(Create("/a", b"1", OPEN, 0))
        x2 = c.send(Create("/b", b"2", OPEN, 0))
        x3 = c.send(GetData("/b", False))
        x4 = c.send(Ping(), xid=XID_PING)
        x5 = c.send(Exists("/a", False))
        assert [h.type for h, _ in d.unpersisted] == [Op.CREATE, Op.CREATE]
        assert c.frames == []
        z1 = d.unpersisted[0][0].zxid
        d.persist(z1)
        assert [f.xid for f in c.take()] == [x1]
        d.persist()
        frames = c.take()
        assert [f.xid for f in frames] == [x2, x3, x4, x5]
        assert GetData.deserialize(frames[1].body, 0)[0] == b"2"  # the read sees the write before it
        assert frames[2].zxid == d.core.tree.last_processed_zxid

    def test_read_of_another_session_is_answered_from_committed_state(self):
        d = CoreDriver(auto_persist=False)
        w = d.session()
        r = d.session()
        xw = w.send(Create("/new", b"", OPEN, 0))
        xr = r.send(Exists("/new", False))
        (f,) = r.take()  # the create is not durable yet: the read may come before it
        assert f.xid == xr and f.err == NoNodeError.code
        xs = r.send(Sync("/"))
        xe = r.send(Exists("/new", False))
        assert r.frames == []  # a sync waits for every write in flight, and the read for the sync
        d.persist()
        assert [f.xid for f in w.take()] == [xw]
        frames = r.take()
        assert [(f.xid, f.err) for f in frames] == [(xs, 0), (xe, 0)]

    def test_read_on_a_new_connection_waits_for_the_sessions_write_in_flight(self):
        d = CoreDriver(auto_persist=False)
        c1 = d.session()
        c1.send(Create("/moved", b"", OPEN, 0))
        d.drop(c1)
        c2 = d.connect(session_id=c1.session_id, passwd=c1.passwd, last_zxid=d.core.tree.last_processed_zxid)
        assert c2.take()[0].kind == "connect"
        xe = c2.send(Exists("/moved", False))
        assert c2.frames == []  # keyed by session, not connection: the create comes first
        d.persist()
        (f,) = c2.take()
        assert f.xid == xe and f.err == 0

    def test_reads_answer_at_once_when_nothing_is_in_flight(self):
        d = CoreDriver(auto_persist=False)
        c = d.session()
        xid = c.send(Exists("/", False))
        assert [f.xid for f in c.take()] == [xid]

    def test_validation_sees_writes_in_flight(self):
        d = CoreDriver(auto_persist=False)
        c = d.session()
        xa = c.send(Create("/dup", b"", OPEN, 0))
        xb = c.send(Create("/dup", b"", OPEN, 0))
        xc = c.send(SetData("/dup", b"x", 0))
        xd = c.send(SetData("/dup", b"y", 0))  # version 0 is gone once xc applies
        xe = c.send(Create("/dup/kid", b"", OPEN, 0))
        xf = c.send(Delete("/dup", -1))  # not empty: /dup/kid is in flight
        xg = c.send(Delete("/dup/kid", -1))
        xh = c.send(Delete("/dup", 1))
        xi = c.send(Create("/dup", b"", OPEN, 0))  # free again once the delete is in flight
        xj = c.send(Create("/dup/s-", b"", OPEN, 2))  # parent cversion is pending too
        types = [h.type for h, _ in d.unpersisted]
        assert types == [Op.CREATE, Op.ERROR, Op.SET_DATA, Op.ERROR, Op.CREATE, Op.ERROR, Op.DELETE,
                         Op.DELETE, Op.CREATE, Op.CREATE]
        assert c.frames == []
        d.persist()
        errs = {f.xid: f.err for f in c.replies()}
        assert errs == {xa: 0, xb: NodeExistsError.code, xc: 0, xd: BadVersionError.code, xe: 0,
                        xf: NotEmptyError.code, xg: 0, xh: 0, xi: 0, xj: 0}
        assert children_of(c, "/dup") == ["s-0000000000"]

    def test_sequential_names_of_pipelined_creates(self):
        d = CoreDriver(auto_persist=False)
        c = d.session()
        c.send(Create("/q", b"", OPEN, 0))
        xs = [c.send(Create("/q/n-", b"", OPEN, 2)) for _ in range(3)]
        d.persist()
        names = {f.xid: read_string(f.body, 0)[0] for f in c.replies()}
        assert [names[x] for x in xs] == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]

    def test_ephemeral_in_flight_parent_refuses_children(self):
        d = CoreDriver(auto_persist=False)
        c = d.session()
        c.send(Create("/e", b"", OPEN, 1))
        x = c.send(Create("/e/k", b"", OPEN, 0))
        d.persist()
        assert {f.xid: f.err for f in c.replies()}[x] == NoChildrenForEphemeralsError.code

    def test_sync_and_ping(self):
        d = new()
        c = d.session()
        assert read_string(c.ok(Sync("/any")), 0)[0] == "/any"
        f = c.call(Ping(), xid=XID_PING)
        assert f.err == 0 and f.zxid == d.core.tree.last_processed_zxid


# ====================================================================== node kinds and special reads


class TestNodeKinds:
    def test_ttl_needs_extended_types(self):
        d = new()
        c = d.session()
        assert c.err(CreateTTL("/t", b"", OPEN, 5, 1000)) == UnimplementedError.code
        assert c.err(Create("/t", b"", OPEN, 5)) == UnimplementedError.code
        assert last_txn(d)[0].type == Op.ERROR
        assert stat_of(c, "/t") is None

    def test_ttl_with_extended_types(self):
        d = new(extended_types=True)
        c = d.session()
        body = c.ok(CreateTTL("/t", b"", OPEN, 5, 1000))
        path, st = Create2.deserialize(body, 0)
        assert path == "/t" and st.ephemeralOwner == 0  # TTL owner is hidden from clients
        assert "/t" in d.core.tree.ttls
        assert last_txn(d)[0].type == Op.CREATE_TTL
        seq, _ = Create2.deserialize(c.ok(CreateTTL("/t/s-", b"", OPEN, 6, 5)), 0)
        assert seq == "/t/s-0000000000"
        assert c.err(CreateTTL("/u", b"", OPEN, 5, 0)) == BadArgumentsError.code
        assert c.err(CreateTTL("/u", b"", OPEN, 5, 1 << 41)) == BadArgumentsError.code
        assert c.err(CreateTTL("/u", b"", OPEN, 0, 1000)) == BadArgumentsError.code

    def test_container_create(self):
        d = new()
        c = d.session()
        path, st = Create2.deserialize(c.ok(CreateContainer("/c", b"", OPEN, 4)), 0)
        assert path == "/c" and st.ephemeralOwner == 0
        assert "/c" in d.core.tree.containers
        assert last_txn(d)[0].type == Op.CREATE_CONTAINER
        created_stat(c, "/c/kid", flags=1)  # a container may hold ephemerals
        # The plain create opcode with the container flag makes a plain node.
        created_stat(c, "/notc", flags=4)
        assert "/notc" not in d.core.tree.containers

    def test_delete_container_from_a_client(self):
        """Request.isValid accepts deleteContainer from clients; PrepRequestProcessor deletes an
        empty non-ephemeral node without an ACL check (BadVersion for a session ephemeral)."""
        d = new()
        c = d.session()
        created_stat(c, "/locked", acl=[make_acl("world", "anyone", read=True, create=True)])
        c.ok(CreateContainer("/locked/c", b"", OPEN, 4))
        c.ok(CreateContainer("/locked/full", b"", OPEN, 4))
        created_stat(c, "/locked/full/kid")
        created_stat(c, "/eph", flags=1)
        c.ok(DeleteContainer("/locked/c"))  # no DELETE permission on /locked needed
        assert last_txn(d)[0].type == Op.DELETE_CONTAINER
        assert stat_of(c, "/locked/c") is None
        assert "/locked/c" not in d.core.tree.containers
        assert c.err(DeleteContainer("/locked/full")) == NotEmptyError.code
        assert c.err(DeleteContainer("/eph")) == BadVersionError.code
        assert c.err(DeleteContainer("/nothing")) == NoNodeError.code
        assert c.err(DeleteContainer("/zookeeper")) == BadArgumentsError.code
        assert last_txn(d)[0].type == Op.ERROR

    def test_get_ephemerals(self):
        d = new()
        c = d.session()
        other = d.session()
        created_stat(c, "/a")
        created_stat(c, "/a/e1", flags=1)
        created_stat(c, "/b1", flags=1)
        created_stat(other, "/b2", flags=1)

        def ephemerals(prefix):
            body = c.ok(GetEphemerals(prefix))
            return sorted(GetChildren.deserialize(body, 0))

        assert ephemerals("/") == ["/a/e1", "/b1"]
        assert ephemerals(None) == ["/a/e1", "/b1"]
        assert ephemerals("/a") == ["/a/e1"]
        assert ephemerals("/b") == ["/b1"]

    def test_get_all_children_number(self):
        d = new()
        c = d.session()
        for p in ("/x", "/x/y", "/x/y/z", "/x/w"):
            created_stat(c, p)

        def count(path):
            return int_struct.unpack(c.ok(GetAllChildrenNumber(path)))[0]

        assert count("/x") == 3
        assert count("/x/y") == 1
        assert count("/") == 4 + 3  # plus /zookeeper, /zookeeper/quota, /zookeeper/config
        assert c.err(GetAllChildrenNumber("/nope")) == NoNodeError.code

    def test_system_nodes(self):
        d = new()
        c = d.session()
        assert children_of(c, "/") == ["zookeeper"]
        assert children_of(c, "/zookeeper") == ["config", "quota"]
        assert c.err(SetData("/zookeeper/config", b"x", -1)) == NoAuthError.code


# ====================================================================== bad input


class TestBadInput:
    def test_unknown_opcode_is_unimplemented_and_closes(self):
        d = new()
        c = d.session()
        f = c.call(Raw(999, b""))
        assert f.err == UnimplementedError.code
        assert c.closed

    def test_unknown_opcode_reply_zxid_is_minus_one(self):
        """UnimplementedRequestProcessor answers ReplyHeader(cxid, request.zxid) and a request that
        never got a txn has Request.zxid = -1."""
        d = new()
        c = d.session()
        assert c.call(Raw(999, b"")).zxid == -1

    def test_standalone_check_is_unimplemented(self):
        """check is valid only inside a multi: Request.isValid(OpCode.check) is false, so
        ZooKeeperServer.submitRequestNow hands it to UnimplementedRequestProcessor."""
        d = new()
        c = d.session()
        created_stat(c, "/n")
        before = len(d.appended)
        f = c.call(CheckVersion("/n", 0))
        assert f.err == UnimplementedError.code
        assert c.closed
        assert len(d.appended) == before

    @pytest.mark.parametrize("payload", [
        b"",
        b"\x00\x00\x00\x00",
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\x00\x00\x00\x00" + b"\x00" * 8 + b"\x00\x00\x27\x10" + b"\x00" * 8 + b"\x7f\xff\xff\xff",
    ])
    def test_malformed_connect_request_closes(self, payload):
        d = new()
        c = d.open()
        c.send_raw(payload)
        assert c.closed
        assert c.frames == []
        assert d.appended == []

    @pytest.mark.parametrize(("op", "body"), [
        (Op.CREATE, b"\x00\x00\x00\x05/a"),  # string runs past the end
        (Op.GET_DATA, b"\xff\xff\xff\xff\x00"),  # null path
        (Op.SET_DATA, b"\x00\x00\x00\x02/a\x80\x00\x00\x00"),  # negative buffer length
        (Op.GET_CHILDREN, b"\x00\x00\x00\x02\xc3\x28\x00"),  # not UTF-8
        (Op.MULTI, b"\x00\x00\x00\x63\x00\xff\xff\xff\xff"),  # unknown op inside the multi
        (Op.AUTH, b"\x00\x00\x00\x00\x00\x10\x00\x00"),  # scheme length over the frame
        (Op.SET_WATCHES, b"\x00" * 8 + b"\x7f\xff\xff\xff"),  # vector count over the frame
    ])
    def test_malformed_request_closes_without_consuming_a_zxid(self, op, body):
        d = new()
        c = d.session()
        before = len(d.appended)
        c.send(Raw(op, body))
        assert c.closed
        assert c.take() == []
        assert len(d.appended) == before
        # Another connection is unaffected.
        other = d.session()
        assert stat_of(other, "/") is not None

    def test_short_request_header_closes(self):
        """A frame too short for its RequestHeader closes that connection (DESIGN.md §5)."""
        d = new()
        c = d.session()
        c.send_raw(b"\x00\x00\x00\x01\x00")
        assert c.closed

    def test_malformed_read_behind_a_write_closes_the_connection(self):
        """A read is decoded when its turn comes, in persisted(); a bad body there must close only
        that connection, not escape from persisted()."""
        d = CoreDriver(auto_persist=False)
        c = d.session()
        other = d.session()
        c.send(Create("/w", b"", OPEN, 0))
        c.send(Raw(Op.GET_DATA, b"\x00\x00\x00\x10/a"))
        xo = other.send(Exists("/w", False))
        d.persist()
        assert c.closed
        assert [f.xid for f in other.take()] == [xo]

    def test_frames_after_close_are_ignored(self):
        d = new()
        c = d.session()
        c.call(Raw(999, b""))
        assert c.closed
        before = len(d.appended)
        d.core.frame_received(c.cid, b"\x00\x00\x00\x01\x00\x00\x00\x01")
        d.pump()
        assert len(d.appended) == before


# ====================================================================== fuzz

KNOWN_OPS = [int(op) for op in Op if op not in (Op.NOTIFICATION, Op.CREATE_SESSION)]


class RawConn:
    """A bare connection on a ServerCore, looking only at raw effects (no decoding that could
    itself trip on garbage)."""

    def __init__(self, core: ServerCore, cid: int):
        self.core = core
        self.cid = cid
        self.frames: list[bytes] = []
        self.closed = False
        self.appended = self.durable = core.durable_zxid
        core.connection_made(cid, "127.0.0.1")

    def flush(self, persist: bool) -> None:
        """Collect effects; with `persist`, report every appended txn durable."""
        while True:
            fx = self.core.take_effects()
            self.frames += fx.out.get(self.cid, [])
            if self.cid in fx.close and not self.closed:
                self.closed = True
                self.core.connection_lost(self.cid)
            if fx.appends:
                self.appended = fx.appends[-1][0].zxid
            if persist and self.appended > self.durable:
                self.durable = self.appended
                self.core.persisted(self.durable)
                continue
            if not (fx.out or fx.close or fx.appends):
                return


def well_formed(frame: bytes, connect: bool) -> bool:
    n = int.from_bytes(frame[:4], "big")
    return n == len(frame) - 4 and (connect or n >= 16)


def reply_xids(frames: list[bytes]) -> list[int]:
    return [int.from_bytes(f[4:8], "big", signed=True) for f in frames]


def session_core() -> tuple[ServerCore, RawConn]:
    core = ServerCore(CoreSettings(), FakeClock(), b"k" * 32)
    conn = RawConn(core, 1)
    core.frame_received(1, bytes(Connect(0, 0, 10000, 0, b"\0" * 16, False).serialize()))
    conn.flush(persist=True)
    assert len(conn.frames) == 1 and not conn.closed
    conn.frames.clear()
    return core, conn


def still_serves(core: ServerCore) -> None:
    """A fresh client gets a session and an answer: one bad client never hurts another."""
    other = RawConn(core, 2)
    core.frame_received(2, bytes(Connect(0, 0, 10000, 0, b"\0" * 16, False).serialize()))
    other.flush(persist=True)
    core.frame_received(2, b"\x00\x00\x00\x07\x00\x00\x00\x03" + bytes(Exists("/", False).serialize()))
    other.flush(persist=True)
    assert not other.closed
    assert reply_xids(other.frames[1:]) == [7]


request_frames = st.one_of(
    st.binary(max_size=40),
    st.builds(
        lambda xid, op, body: xid.to_bytes(4, "big", signed=True) + op.to_bytes(4, "big", signed=True) + body,
        st.integers(1, 2**31 - 1),
        st.one_of(st.sampled_from(KNOWN_OPS), st.integers(-(2**31), 2**31 - 1)),
        st.one_of(
            st.binary(max_size=60),
            st.sampled_from([
                bytes(Create("/f", b"", OPEN, 0).serialize()),
                bytes(GetData("/f", True).serialize()),
                bytes(Transaction([Create("/g", b"", OPEN, 0), Delete("/f", -1)]).serialize()),
                bytes(MultiRead([GetData("/", False)]).serialize()),
            ]),
        ),
    ),
)


class TestFuzz:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=80))
    def test_random_connect_frames(self, payload):
        core = ServerCore(CoreSettings(), FakeClock(), b"k" * 32)
        conn = RawConn(core, 1)
        core.frame_received(1, payload)
        conn.flush(persist=True)
        assert conn.closed or len(conn.frames) == 1
        assert all(well_formed(f, connect=True) for f in conn.frames[:1])
        still_serves(core)

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(request_frames, min_size=1, max_size=6), st.booleans())
    def test_random_request_frames(self, frames, persist_each):
        core, conn = session_core()
        answered = 0
        for payload in frames:
            if conn.closed:
                break
            core.frame_received(1, payload)
            answered += 1
            conn.flush(persist=persist_each)
        conn.flush(persist=True)
        assert all(well_formed(f, connect=False) for f in conn.frames)
        if not conn.closed:
            # Every request got its reply (pings answer with xid -2); events are extra frames.
            replies = [x for x in reply_xids(conn.frames) if x != -1]
            assert len(replies) == answered
        still_serves(core)


def test_replaced_tree_keeps_feeding_the_namespace_stats() -> None:
    """A learner's TRUNC or SNAP swaps the tree: mntr's per-namespace writes must go on counting."""
    from zkserver.ops.stats import NamespaceStats
    from zkserver.tree.datatree import DataTree

    core = ServerCore(CoreSettings(), FakeClock(), b"k" * 32)
    stats = core.tree.namespace_stats = NamespaceStats()
    core.replace_tree(DataTree(), {})
    core.tree.set_data("/zookeeper/config", b"xyz", -1, 1, 0)
    assert stats.writes.namespaces["zookeeper"][:2] == [1, len("/zookeeper/config") + 3]
