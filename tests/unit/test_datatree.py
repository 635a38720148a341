"""DataTree on its own: txn apply, Stat bookkeeping, ephemerals/containers/TTLs, events.

Reference: Apache ZooKeeper 3.9 DataTree (createNode, deleteNode, setData, processTxn,
killSession, getAllChildrenNumber) and DataNode.copyStat.
"""

from __future__ import annotations

import pytest

from zkserver.jute.codes import CONTAINER_EPHEMERAL_OWNER, Err, EventType, Op
from zkserver.jute.records import (
    STAT,
    CheckVersionTxn,
    CloseSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
)
from zkserver.tree.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from zkserver.tree.datatree import DataTree, owner_kind, parent_of, ttl_owner

SID = 0x1234
OPEN = OPEN_ACL_UNSAFE


class Applier:
    """Feeds txns with increasing zxids and times."""

    def __init__(self, tree: DataTree | None = None):
        self.tree = tree or DataTree()
        self.zxid = self.tree.last_processed_zxid
        self.time = 1_000

    def __call__(self, kind, txn, session=SID):
        self.zxid += 1
        self.time += 10
        return self.tree.apply(TxnHeader(session, 1, self.zxid, self.time, kind), txn)

    def create(self, path, data=b"", parent_cversion=-1, ephemeral=False, kind=Op.CREATE, acl=OPEN, ttl=-1,
               session=SID):
        return self(kind, CreateTxn(kind, path, data, acl, ephemeral, parent_cversion, ttl), session)

    def delete(self, path):
        return self(Op.DELETE, DeleteTxn(path))


@pytest.fixture
def ap():
    return Applier()


def stat(tree, path):
    """The client Stat as a dict."""
    names = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion", "ephemeralOwner",
             "dataLength", "numChildren", "pzxid")
    return dict(zip(names, STAT.unpack(tree.client_stat(tree.get(path))), strict=True))


class TestInitialTree:
    def test_system_nodes(self):
        t = DataTree()
        assert set(t.nodes) == {"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"}
        assert list(t.get("/").children) == ["zookeeper"]
        assert sorted(t.get("/zookeeper").children) == ["config", "quota"]
        assert t.get("/zookeeper/config").acl == READ_ACL_UNSAFE
        assert t.last_processed_zxid == 0
        assert t.count_descendants("/") == 3


class TestCreate:
    def test_create_sets_stat_and_parent(self, ap):
        rc = ap.create("/a", b"xyz")
        assert (rc.err, rc.path, rc.type) == (0, "/a", Op.CREATE)
        s = stat(ap.tree, "/a")
        assert s["czxid"] == s["mzxid"] == s["pzxid"] == ap.zxid
        assert s["ctime"] == s["mtime"] == ap.time
        assert (s["version"], s["cversion"], s["aversion"], s["dataLength"]) == (0, 0, 0, 3)
        assert rc.stat == ap.tree.client_stat(ap.tree.get("/a"))
        root = ap.tree.get("/")
        assert root.cversion == 1 and root.pzxid == ap.zxid
        assert ap.tree.last_processed_zxid == ap.zxid

    def test_parent_cversion_from_txn(self, ap):
        ap.create("/p")
        ap.create("/p/a", parent_cversion=5)
        p = ap.tree.get("/p")
        assert p.cversion == 5 and p.pzxid == ap.zxid
        # A lower parentCVersion (replay of an older create) does not move cversion/pzxid back.
        before = ap.zxid
        ap.create("/p/b", parent_cversion=3)
        assert p.cversion == 5 and p.pzxid == before

    def test_create_existing_is_node_exists_and_bumps_parent_on_replay(self, ap):
        ap.create("/p")
        ap.create("/p/a", parent_cversion=1)
        rc = ap.create("/p/a", parent_cversion=4)
        assert rc.err == Err.NODE_EXISTS
        p = ap.tree.get("/p")
        # DataTree.processTxn: NODEEXISTS on a create txn still sets the parent's cversion/pzxid.
        assert p.cversion == 4 and p.pzxid == ap.zxid
        assert ap.tree.last_processed_zxid == ap.zxid

    def test_create_without_parent_is_no_node(self, ap):
        rc = ap.create("/missing/a")
        assert rc.err == Err.NO_NODE
        assert "/missing/a" not in ap.tree.nodes

    def test_ephemeral_bookkeeping(self, ap):
        ap.create("/e", ephemeral=True)
        assert ap.tree.ephemerals == {SID: {"/e": None}}
        assert stat(ap.tree, "/e")["ephemeralOwner"] == SID
        ap.delete("/e")
        # As in Apache, the session keeps its (now empty) set: its table size shapes later order.
        assert ap.tree.ephemerals == {SID: set()}

    def test_container_and_ttl(self):
        ap = Applier(DataTree(extended_types=True))
        ap.create("/c", kind=Op.CREATE_CONTAINER)
        ap.create("/t", kind=Op.CREATE_TTL, ttl=500)
        assert list(ap.tree.containers) == ["/c"]
        assert list(ap.tree.ttls) == ["/t"]
        assert ap.tree.get("/c").owner == CONTAINER_EPHEMERAL_OWNER
        assert ap.tree.get("/t").owner == ttl_owner(500)
        assert stat(ap.tree, "/c")["ephemeralOwner"] == 0
        assert stat(ap.tree, "/t")["ephemeralOwner"] == 0
        ap.delete("/c")
        ap.delete("/t")
        assert not ap.tree.containers and not ap.tree.ttls


class TestOwnerKind:
    def test_kinds(self):
        assert owner_kind(0, False) == "void"
        assert owner_kind(SID, False) == "session"
        assert owner_kind(CONTAINER_EPHEMERAL_OWNER, False) == "container"
        assert owner_kind(CONTAINER_EPHEMERAL_OWNER, True) == "container"
        assert owner_kind(ttl_owner(1000), True) == "ttl"
        # Without extended types a TTL-shaped owner is just a (negative) session id.
        assert owner_kind(ttl_owner(1000), False) == "session"

    def test_ttl_owner_layout(self):
        assert ttl_owner(1) & 0xFFFFFFFFFFFFFFFF == 0xFF00000000000001
        assert ttl_owner(0xFFFFFFFFFF) & 0xFFFFFFFFFFFFFFFF == 0xFF0000FFFFFFFFFF

    def test_parent_of(self):
        assert parent_of("/a") == "/"
        assert parent_of("/a/b/c") == "/a/b"


class TestDeleteAndStat:
    def test_client_cversion_counts_changes(self, ap):
        ap.create("/p")
        for name in "abc":
            ap.create(f"/p/{name}")
        ap.delete("/p/b")
        s = stat(ap.tree, "/p")
        assert ap.tree.get("/p").cversion == 3  # persisted: creates
        assert (s["cversion"], s["numChildren"]) == (2 * 3 - 2, 2)
        assert s["pzxid"] == ap.zxid

    def test_delete_pzxid_only_moves_forward(self, ap):
        ap.create("/p")
        ap.create("/p/a")
        p = ap.tree.get("/p")
        p.pzxid = 1000  # as if a later create had been replayed first (fuzzy snapshot)
        ap.delete("/p/a")
        assert p.pzxid == 1000

    def test_delete_missing(self, ap):
        assert ap.delete("/none").err == Err.NO_NODE

    def test_set_data(self, ap):
        ap.create("/a", b"1")
        rc = ap(Op.SET_DATA, SetDataTxn("/a", b"22", 7))
        s = stat(ap.tree, "/a")
        assert (s["version"], s["mzxid"], s["mtime"], s["dataLength"]) == (7, ap.zxid, ap.time, 2)
        assert s["czxid"] == ap.zxid - 1
        assert rc.stat == ap.tree.client_stat(ap.tree.get("/a"))
        ap(Op.SET_DATA, SetDataTxn("/a", None, 8))
        assert ap.tree.get("/a").data is None and stat(ap.tree, "/a")["dataLength"] == 0

    def test_set_acl(self, ap):
        ap.create("/a")
        mzxid = ap.tree.get("/a").mzxid
        ap(Op.SET_ACL, SetACLTxn("/a", READ_ACL_UNSAFE, 3))
        n = ap.tree.get("/a")
        assert n.acl == READ_ACL_UNSAFE and n.aversion == 3 and n.mzxid == mzxid

    def test_error_txn_moves_last_processed_zxid(self, ap):
        rc = ap(Op.ERROR, ErrorTxn(Err.NO_NODE))
        assert rc.err == Err.NO_NODE
        assert ap.tree.last_processed_zxid == ap.zxid

    def test_check_txn(self, ap):
        ap.create("/a")
        rc = ap(Op.CHECK, CheckVersionTxn("/a", 1))
        assert rc.err == 0 and rc.path == "/a"
        assert ap.tree.get("/a").version == 0

    def test_count_descendants(self, ap):
        for p in ("/a", "/a/b", "/a/b/c", "/a/d", "/ab"):
            ap.create(p)
        assert ap.tree.count_descendants("/a") == 3
        assert ap.tree.count_descendants("/a/b/c") == 0
        assert ap.tree.count_descendants("/") == 5 + 3
        assert ap.tree.count_descendants("/none") == 0


class TestSessions:
    def test_close_session_deletes_listed_and_local_ephemerals(self, ap):
        ap.create("/p")
        ap.create("/p/e1", ephemeral=True)
        ap.create("/e2", ephemeral=True)
        ap.create("/other", ephemeral=True, session=99)
        ap(Op.CLOSE_SESSION, CloseSessionTxn(["/p/e1"]))
        assert "/p/e1" not in ap.tree.nodes
        assert "/e2" not in ap.tree.nodes  # not in the txn but owned by the session
        assert "/other" in ap.tree.nodes
        assert SID not in ap.tree.ephemerals
        assert ap.tree.get("/p").pzxid == ap.zxid

    def test_close_session_without_paths(self, ap):
        ap.create("/e", ephemeral=True)
        ap(Op.CLOSE_SESSION, None)
        assert "/e" not in ap.tree.nodes


class TestMultiApply:
    def test_success(self, ap):
        ap.create("/a")
        rc = ap(Op.MULTI, MultiTxn([
            (Op.CREATE, CreateTxn(Op.CREATE, "/a/b", b"", OPEN, False, 1)),
            (Op.SET_DATA, SetDataTxn("/a", b"x", 1)),
            (Op.CHECK, CheckVersionTxn("/a", 2)),
            (Op.DELETE, DeleteTxn("/a/b")),
        ]))
        assert rc.err == 0
        assert [(r.type, r.err) for r in rc.multi] == [(Op.CREATE, 0), (Op.SET_DATA, 0), (Op.CHECK, 0),
                                                       (Op.DELETE, 0)]
        a = ap.tree.get("/a")
        assert a.data == b"x" and a.pzxid == ap.zxid and a.cversion == 1 and not a.children

    def test_failed_multi_applies_nothing(self, ap):
        ap.create("/a", b"old")
        rc = ap(Op.MULTI, MultiTxn([
            (Op.SET_DATA, SetDataTxn("/a", b"new", 1)),
            (Op.ERROR, ErrorTxn(Err.BAD_VERSION)),
            (Op.ERROR, ErrorTxn(Err.RUNTIME_INCONSISTENCY)),
        ]))
        assert [(r.type, r.err) for r in rc.multi] == [(Op.ERROR, 0), (Op.ERROR, Err.BAD_VERSION),
                                                       (Op.ERROR, Err.RUNTIME_INCONSISTENCY)]
        assert rc.err == Err.BAD_VERSION
        assert ap.tree.get("/a").data == b"old"
        assert ap.tree.last_processed_zxid == ap.zxid


class TestEvents:
    def drain(self, tree):
        evs, tree.events = tree.events, []
        return [(e.watcher, e.type, e.path) for e in evs]

    def test_create_delete_set_events(self, ap):
        t = ap.tree
        t.add_watch("/a", "w-exists", child=False)
        t.add_watch("/", "w-root", child=True)
        ap.create("/a")
        assert self.drain(t) == [("w-exists", EventType.NODE_CREATED, "/a"),
                                 ("w-root", EventType.NODE_CHILDREN_CHANGED, "/")]
        t.add_watch("/a", "w-data", child=False)
        t.add_watch("/a", "w-kids", child=True)
        t.add_watch("/a", "w-data", child=True)
        ap(Op.SET_DATA, SetDataTxn("/a", b"x", 1))
        assert self.drain(t) == [("w-data", EventType.NODE_DATA_CHANGED, "/a")]
        t.add_watch("/a", "w-data", child=False)
        ap.delete("/a")
        assert self.drain(t) == [("w-data", EventType.NODE_DELETED, "/a"),
                                 ("w-kids", EventType.NODE_DELETED, "/a")]

    def test_event_acl_and_zxid(self, ap):
        t = ap.tree
        ap.create("/p", acl=READ_ACL_UNSAFE)
        t.add_watch("/p", "w", child=True)
        t.add_watch("/p/k", "x", child=False)
        ap.create("/p/k", acl=OPEN)
        evs, t.events = t.events, []
        by_watcher = {e.watcher: e for e in evs}
        assert by_watcher["x"].acl == OPEN and by_watcher["x"].zxid == ap.zxid
        assert by_watcher["w"].acl == READ_ACL_UNSAFE  # children events carry the parent's ACL

    def test_persistent_and_recursive(self, ap):
        t = ap.tree
        ap.create("/p")
        t.add_persistent_watch("/p", "pers", recursive=False)
        t.add_persistent_watch("/p", "rec", recursive=True)
        ap.create("/p/k")
        ap.create("/p/k/g")
        assert self.drain(t) == [("rec", EventType.NODE_CREATED, "/p/k"),
                                 ("pers", EventType.NODE_CHILDREN_CHANGED, "/p"),
                                 ("rec", EventType.NODE_CREATED, "/p/k/g")]
        t.remove_watcher("rec")
        ap(Op.SET_DATA, SetDataTxn("/p", b"", 1))
        ap(Op.SET_DATA, SetDataTxn("/p", b"", 2))
        assert self.drain(t) == [("pers", EventType.NODE_DATA_CHANGED, "/p")] * 2


def test_java_hash_set_order_matches_java():
    """Oracle: the orders OpenJDK 17 printed for the same operations (HashSet add, clone,
    remove, iterate), which is the order of Apache's closeSession txn and events."""
    from zkserver.tree.javaorder import JavaHashSet, java_string_hash

    assert java_string_hash("hello") == 99162322
    s = JavaHashSet.of([f"/app/node-{i}" for i in range(30)])
    c = s.clone()
    for i in range(20):
        c.discard(f"/app/node-{i}")
    c.add("/x/\u00e9t\u00e9")
    c.add("/zz")
    assert ",".join(s) == JAVA_ORDERS[0]
    assert ",".join(c) == JAVA_ORDERS[1]
    assert ",".join(c.clone()) == JAVA_ORDERS[2]


JAVA_ORDERS = [
    '/app/node-7,/app/node-29,/app/node-6,/app/node-28,/app/node-9,/app/node-8,/app/node-25,/app/node-24,/app/node-27,/app/node-26,/app/node-1,/app/node-0,/app/node-3,/app/node-2,/app/node-5,/app/node-4,/app/node-21,/app/node-20,/app/node-23,/app/node-22,/app/node-18,/app/node-17,/app/node-19,/app/node-14,/app/node-13,/app/node-16,/app/node-15,/app/node-10,/app/node-12,/app/node-11',
    '/app/node-29,/app/node-28,/app/node-25,/app/node-24,/app/node-27,/app/node-26,/app/node-21,/app/node-20,/app/node-23,/app/node-22,/x/été,/zz',
    '/app/node-29,/app/node-28,/app/node-25,/app/node-24,/app/node-27,/app/node-26,/zz,/app/node-21,/app/node-20,/app/node-23,/app/node-22,/x/été',
]
