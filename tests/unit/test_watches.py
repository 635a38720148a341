"""Watches: WatchTable on its own, then triggering rules as clients see them through the core.

Reference: Apache ZooKeeper 3.9 WatchManager.triggerWatch, DataTree.createNode/deleteNode/
setData/setWatches/containsWatcher/removeWatch, NIOServerCnxn.process (ACL filter).
"""

from __future__ import annotations

import pytest
from kazoo.exceptions import MarshallingError, NoNodeError, NoWatcherError
from kazoo.protocol.serialization import (
    Auth,
    Create,
    Delete,
    Exists,
    GetChildren,
    GetChildren2,
    GetData,
    SetACL,
    SetData,
    Transaction,
)
from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl
from tests.unit.corehelper import (
    XID_AUTH,
    XID_SET_WATCHES,
    AddWatch,
    CheckWatches,
    CoreDriver,
    RemoveWatches,
    SetWatches,
    SetWatches2,
)

from zkserver.tree.watches import PERSISTENT, RECURSIVE, STANDARD, WatchTable, path_and_parents

OPEN = OPEN_ACL_UNSAFE
CREATED, DELETED, CHANGED, CHILDREN = 1, 2, 3, 4
# WatcherType of checkWatches/removeWatches
W_CHILDREN, W_DATA, W_ANY, W_PERSISTENT, W_RECURSIVE = 1, 2, 3, 4, 5
# AddWatchMode
PERSISTENT_MODE, RECURSIVE_MODE = 0, 1


# ====================================================================== WatchTable


class TestWatchTable:
    def test_path_and_parents(self):
        assert list(path_and_parents("/a/b/c")) == ["/a/b/c", "/a/b", "/a", "/"]
        assert list(path_and_parents("/")) == ["/"]

    def test_standard_watch_is_one_shot(self):
        t = WatchTable()
        t.add("/a", "w1")
        t.add("/a", "w2")
        assert sorted(t.trigger("/a")) == ["w1", "w2"]
        assert t.trigger("/a") == []
        assert t.by_path == {} and t.by_watcher == {}

    def test_persistent_watch_survives_triggers(self):
        t = WatchTable()
        t.add("/a", "w", PERSISTENT)
        t.add("/a", "w", STANDARD)
        assert t.trigger("/a") == ["w"]  # one notification however many modes match
        assert t.modes("/a", "w") == PERSISTENT
        assert t.trigger("/a") == ["w"]

    def test_recursive_watch_fires_for_descendants_only_when_registered(self):
        t = WatchTable()
        t.add("/a", "r", RECURSIVE)
        t.add("/a", "s", STANDARD)
        assert t.recursive_count == 1
        assert t.trigger("/a/b/c") == ["r"]
        assert t.trigger("/ab") == []  # a sibling with a common prefix is not a descendant
        assert sorted(t.trigger("/a")) == ["r", "s"]
        assert t.modes("/a", "r") == RECURSIVE
        assert t.remove("/a", "r", RECURSIVE)
        assert t.recursive_count == 0
        assert t.trigger("/a/b") == []

    def test_recursive_on_root(self):
        t = WatchTable()
        t.add("/", "r", RECURSIVE)
        assert t.trigger("/x") == ["r"]
        assert t.trigger("/") == ["r"]

    def test_remove_by_mode(self):
        t = WatchTable()
        t.add("/a", "w", STANDARD)
        t.add("/a", "w", PERSISTENT)
        assert not t.remove("/a", "w", RECURSIVE)
        assert t.remove("/a", "w", STANDARD)
        assert t.modes("/a", "w") == PERSISTENT
        assert t.remove("/a", "w", None)
        assert not t.remove("/a", "w", None)
        assert t.count() == 0

    def test_remove_watcher_drops_every_path(self):
        t = WatchTable()
        for p in ("/a", "/b", "/c"):
            t.add(p, "w", STANDARD)
        t.add("/a", "other")
        t.add("/b", "w", RECURSIVE)
        t.remove_watcher("w")
        assert t.by_watcher == {"other": {"/a": STANDARD}}
        assert t.recursive_count == 0
        assert t.trigger("/b/x") == []

    def test_duplicate_add_is_idempotent(self):
        t = WatchTable()
        t.add("/a", "w", RECURSIVE)
        t.add("/a", "w", RECURSIVE)
        assert t.recursive_count == 1
        assert t.count() == 1


# ====================================================================== through the core


@pytest.fixture
def env():
    d = CoreDriver()
    writer = d.session()
    watcher = d.session()
    return d, writer, watcher


def mk(client, path, data=b"", acl=OPEN, flags=0):
    f = client.call(Create(path, data, acl, flags))
    assert f.err == 0, f.err


class TestOneShot:
    def test_data_watch_fires_once_on_set_data(self, env):
        _, w, c = env
        mk(w, "/n")
        c.ok(GetData("/n", True))
        w.ok(SetData("/n", b"1", -1))
        w.ok(SetData("/n", b"2", -1))
        assert c.events() == [(CHANGED, "/n")]

    def test_event_carries_the_zxid_of_the_change(self, env):
        d, w, c = env
        mk(w, "/n")
        c.ok(GetData("/n", True))
        w.ok(SetData("/n", b"1", -1))
        (frame,) = [f for f in c.take() if f.kind == "event"]
        assert frame.zxid == d.appended[-1][0].zxid
        assert frame.event.state == 3  # SyncConnected

    def test_exists_watch_on_missing_node_fires_created(self, env):
        _, w, c = env
        assert c.err(Exists("/later", True)) == NoNodeError.code
        mk(w, "/later")
        w.ok(SetData("/later", b"x", -1))
        assert c.events() == [(CREATED, "/later")]

    def test_get_data_on_missing_node_sets_no_watch(self, env):
        _, w, c = env
        assert c.err(GetData("/nope", True)) == NoNodeError.code
        mk(w, "/nope")
        assert c.events() == []

    def test_child_watch_fires_on_create_and_delete_of_children_only(self, env):
        _, w, c = env
        mk(w, "/p")
        mk(w, "/p/a")
        c.ok(GetChildren("/p", True))
        w.ok(SetData("/p/a", b"x", -1))  # a child's data is not the parent's children
        w.ok(SetData("/p", b"x", -1))  # nor is the parent's data
        assert c.events() == []
        mk(w, "/p/b")
        assert c.events() == [(CHILDREN, "/p")]
        c.ok(GetChildren2("/p", True))
        w.ok(Delete("/p/b", -1))
        assert c.events() == [(CHILDREN, "/p")]
        mk(w, "/p/c")
        assert c.events() == []

    def test_delete_sends_one_node_deleted_per_connection(self, env):
        _, w, c = env
        mk(w, "/p")
        mk(w, "/p/n")
        c.ok(GetData("/p/n", True))
        c.ok(GetChildren("/p/n", True))
        c.ok(Exists("/p/n", True))
        c.ok(GetChildren("/p", True))
        w.ok(Delete("/p/n", -1))
        assert c.events() == [(DELETED, "/p/n"), (CHILDREN, "/p")]

    def test_child_watch_alone_gets_node_deleted(self, env):
        _, w, c = env
        mk(w, "/n")
        c.ok(GetChildren("/n", True))
        w.ok(Delete("/n", -1))
        assert c.events() == [(DELETED, "/n")]

    def test_every_connection_gets_its_event(self, env):
        d, w, c = env
        c2 = d.session()
        mk(w, "/n")
        c.ok(GetData("/n", True))
        c2.ok(GetChildren("/n", True))
        w.ok(Delete("/n", -1))
        assert c.events() == [(DELETED, "/n")]
        assert c2.events() == [(DELETED, "/n")]

    def test_events_go_out_before_the_reply_of_the_write(self, env):
        _, w, _ = env
        mk(w, "/n")
        w.ok(GetData("/n", True))
        xid = w.send(SetData("/n", b"x", -1))
        frames = w.take()
        assert [(f.kind, f.xid) for f in frames] == [("event", -1), ("reply", xid)]
        assert frames[0].zxid == frames[1].zxid

    def test_multi_fires_every_event_before_its_reply(self, env):
        _, w, _c = env
        mk(w, "/a")
        w.ok(GetData("/a", True))
        assert w.err(Exists("/b", True)) == NoNodeError.code
        xid = w.send(Transaction([SetData("/a", b"1", -1), Create("/b", b"", OPEN, 0)]))
        frames = w.take()
        assert [(f.kind, f.event.type if f.event else f.xid) for f in frames] == [
            ("event", CHANGED), ("event", CREATED), ("reply", xid)]

    def test_failed_multi_fires_nothing(self, env):
        _, w, c = env
        mk(w, "/a")
        c.ok(GetData("/a", True))
        w.ok(Transaction([SetData("/a", b"1", -1), Delete("/missing", -1)]))
        assert c.events() == []

    def test_watches_die_with_the_connection(self, env):
        d, w, c = env
        mk(w, "/n")
        c.ok(GetData("/n", True))
        d.drop(c)
        w.ok(SetData("/n", b"x", -1))
        assert d.core.tree.data_watches.count() == 0


class TestPersistent:
    def test_persistent_watch(self, env):
        _, w, c = env
        mk(w, "/p")
        assert c.ok(AddWatch("/p", PERSISTENT_MODE)) == b"\x00\x00\x00\x00"
        w.ok(SetData("/p", b"1", -1))
        w.ok(SetData("/p", b"2", -1))
        mk(w, "/p/k")
        mk(w, "/p/k/grandchild")  # not the watched node's children
        w.ok(SetData("/p/k", b"x", -1))
        w.ok(Delete("/p/k/grandchild", -1))
        w.ok(Delete("/p/k", -1))
        w.ok(Delete("/p", -1))
        mk(w, "/p")
        assert c.events() == [
            (CHANGED, "/p"), (CHANGED, "/p"), (CHILDREN, "/p"), (CHILDREN, "/p"),
            (DELETED, "/p"), (CREATED, "/p"),
        ]

    def test_recursive_watch_never_gets_children_changed(self, env):
        _, w, c = env
        mk(w, "/r")
        c.ok(AddWatch("/r", RECURSIVE_MODE))
        mk(w, "/r/a")
        mk(w, "/r/a/b")
        w.ok(SetData("/r/a/b", b"x", -1))
        w.ok(SetData("/r", b"x", -1))
        w.ok(Delete("/r/a/b", -1))
        mk(w, "/rx")  # prefix, not a descendant
        assert c.events() == [
            (CREATED, "/r/a"), (CREATED, "/r/a/b"), (CHANGED, "/r/a/b"), (CHANGED, "/r"), (DELETED, "/r/a/b"),
        ]

    def test_recursive_plus_one_shot_gives_one_event(self, env):
        _, w, c = env
        mk(w, "/r")
        c.ok(AddWatch("/r", RECURSIVE_MODE))
        c.ok(GetData("/r", True))
        w.ok(SetData("/r", b"x", -1))
        assert c.events() == [(CHANGED, "/r")]

    def test_add_watch_on_a_missing_node_is_allowed(self, env):
        _, w, c = env
        c.ok(AddWatch("/later", PERSISTENT_MODE))
        mk(w, "/later")
        assert c.events() == [(CREATED, "/later")]

    def test_add_watch_with_unknown_mode_is_a_marshalling_error(self, env):
        """WatcherMode.fromZooDef throws IllegalArgumentException, which FinalRequestProcessor
        catches as Exception: MarshallingError, and the connection stays open."""
        _, _, c = env
        f = c.call(AddWatch("/x", 7))
        assert not c.closed
        assert f.err == MarshallingError.code


class TestAclFilter:
    def test_no_read_no_event(self, env):
        """CVE-2024-23944: an event is delivered only to connections with READ on the node."""
        _, w, c = env
        assert w.call(Auth(0, "digest", "owner:pw"), xid=XID_AUTH).err == 0
        secret_acl = [make_digest_acl("owner", "pw", all=True)]
        mk(w, "/s")
        c.ok(GetData("/s", True))
        assert c.err(Exists("/hidden", True)) == NoNodeError.code
        w.ok(SetACL("/s", secret_acl, -1))  # setACL itself fires nothing
        assert c.events() == []
        w.ok(SetData("/s", b"x", -1))
        mk(w, "/hidden", acl=secret_acl)
        assert c.events() == []
        # The watches were consumed all the same (WatchManager triggers, then process() filters).
        assert d_watch_count(w.driver) == 0

    def test_children_event_checks_the_parent_acl(self, env):
        _, w, c = env
        assert w.call(Auth(0, "digest", "owner:pw"), xid=XID_AUTH).err == 0
        mk(w, "/open")
        c.ok(GetChildren("/open", True))
        mk(w, "/open/secret", acl=[make_digest_acl("owner", "pw", all=True)])
        assert c.events() == [(CHILDREN, "/open")]

    def test_read_permission_is_enough(self, env):
        _, w, c = env
        mk(w, "/r", acl=[make_acl("world", "anyone", read=True, write=True)])
        c.ok(GetData("/r", True))
        w.ok(SetData("/r", b"x", -1))
        assert c.events() == [(CHANGED, "/r")]


def d_watch_count(driver) -> int:
    tree = driver.core.tree
    return tree.data_watches.count() + tree.child_watches.count()


class TestCheckAndRemove:
    def test_check_watches(self, env):
        _, w, c = env
        mk(w, "/n")
        assert c.err(CheckWatches("/n", W_DATA)) == NoWatcherError.code
        c.ok(GetData("/n", True))
        c.ok(CheckWatches("/n", W_DATA))
        c.ok(CheckWatches("/n", W_ANY))
        assert c.err(CheckWatches("/n", W_CHILDREN)) == NoWatcherError.code
        assert c.err(CheckWatches("/n", W_PERSISTENT)) == NoWatcherError.code
        c.ok(GetChildren("/n", True))
        c.ok(CheckWatches("/n", W_CHILDREN))
        # Another connection's watches are not ours.
        assert w.err(CheckWatches("/n", W_ANY)) == NoWatcherError.code

    def test_check_persistent_and_recursive(self, env):
        _, _w, c = env
        c.ok(AddWatch("/p", PERSISTENT_MODE))
        c.ok(AddWatch("/r", RECURSIVE_MODE))
        c.ok(CheckWatches("/p", W_PERSISTENT))
        assert c.err(CheckWatches("/p", W_RECURSIVE)) == NoWatcherError.code
        assert c.err(CheckWatches("/p", W_DATA)) == NoWatcherError.code
        c.ok(CheckWatches("/r", W_RECURSIVE))
        assert c.err(CheckWatches("/r", W_PERSISTENT)) == NoWatcherError.code
        c.ok(CheckWatches("/r", W_ANY))

    def test_remove_watches(self, env):
        _, w, c = env
        mk(w, "/n")
        c.ok(GetData("/n", True))
        c.ok(GetChildren("/n", True))
        c.ok(RemoveWatches("/n", W_DATA))
        assert c.err(RemoveWatches("/n", W_DATA)) == NoWatcherError.code
        w.ok(SetData("/n", b"x", -1))
        assert c.events() == []
        c.ok(RemoveWatches("/n", W_ANY))
        assert c.err(RemoveWatches("/n", W_ANY)) == NoWatcherError.code
        mk(w, "/n/k")
        assert c.events() == []

    def test_remove_persistent_and_recursive(self, env):
        _, w, c = env
        mk(w, "/p")
        c.ok(AddWatch("/p", PERSISTENT_MODE))
        c.ok(AddWatch("/p", RECURSIVE_MODE))
        c.ok(RemoveWatches("/p", W_PERSISTENT))
        assert c.err(RemoveWatches("/p", W_PERSISTENT)) == NoWatcherError.code
        mk(w, "/p/k")  # recursive still there: NodeCreated, no NodeChildrenChanged
        assert c.events() == [(CREATED, "/p/k")]
        c.ok(RemoveWatches("/p", W_RECURSIVE))
        mk(w, "/p/k2")
        assert c.events() == []
        assert d_watch_count(w.driver) == 0

    @pytest.mark.parametrize("request_type", [CheckWatches, RemoveWatches])
    def test_unknown_watcher_type_is_a_marshalling_error(self, env, request_type):
        """Watcher.WatcherType.fromInt throws RuntimeException -> MarshallingError."""
        _, _, c = env
        c.ok(AddWatch("/x", PERSISTENT_MODE))
        assert c.call(request_type("/x", 9)).err == MarshallingError.code

    def test_remove_without_any_watch(self, env):
        _, _, c = env
        assert c.err(RemoveWatches("/none", W_ANY)) == NoWatcherError.code
        assert c.err(RemoveWatches("/none", W_RECURSIVE)) == NoWatcherError.code


class TestSetWatches:
    def test_catch_up_events_by_relative_zxid(self, env):
        d, w, c = env
        mk(w, "/same")
        mk(w, "/changed")
        mk(w, "/kids")
        mk(w, "/gone")
        rel = d.core.tree.last_processed_zxid
        w.ok(SetData("/changed", b"x", -1))
        mk(w, "/kids/k")
        w.ok(Delete("/gone", -1))
        mk(w, "/born")
        f = c.call(SetWatches(rel, ["/same", "/changed", "/gone"], ["/born", "/unborn"], ["/kids", "/same", "/gone"]),
                   xid=XID_SET_WATCHES)
        assert f.err == 0 and f.body == b""
        assert sorted(c.events()) == sorted([
            (CHANGED, "/changed"), (DELETED, "/gone"), (CREATED, "/born"), (CHILDREN, "/kids"), (DELETED, "/gone"),
        ])
        # Watches without catch-up are registered as one-shot watches.
        w.ok(SetData("/same", b"y", -1))
        mk(w, "/unborn")
        mk(w, "/same/k")
        assert c.events() == [(CHANGED, "/same"), (CREATED, "/unborn"), (CHILDREN, "/same")]
        w.ok(SetData("/same", b"z", -1))
        assert c.events() == []

    def test_relative_zxid_equal_to_the_change_is_no_catch_up(self, env):
        d, w, c = env
        mk(w, "/n")
        mk(w, "/n/k")
        w.ok(SetData("/n", b"x", -1))
        rel = d.core.tree.last_processed_zxid  # the client saw the setData: mzxid == rel
        c.ok(SetWatches(rel - 1, [], [], ["/n"]), xid=XID_SET_WATCHES)  # pzxid == rel - 1
        c.ok(SetWatches(rel, ["/n"], [], []), xid=XID_SET_WATCHES)
        assert c.events() == []
        w.ok(SetData("/n", b"y", -1))
        mk(w, "/n/k2")
        assert c.events() == [(CHANGED, "/n"), (CHILDREN, "/n")]

    def test_catch_up_events_come_before_the_reply(self, env):
        d, w, c = env
        mk(w, "/n")
        rel = d.core.tree.last_processed_zxid
        w.ok(SetData("/n", b"x", -1))
        c.send(SetWatches(rel, ["/n"], [], []), xid=XID_SET_WATCHES)
        assert [(f.kind, f.xid) for f in c.take()] == [("event", -1), ("reply", XID_SET_WATCHES)]

    def test_set_watches2_restores_persistent_and_recursive(self, env):
        _, w, c = env
        mk(w, "/p")
        c.ok(SetWatches2(0, [], [], [], ["/p"], ["/r"]), xid=XID_SET_WATCHES)
        assert c.events() == []
        w.ok(SetData("/p", b"1", -1))
        mk(w, "/p/k")
        mk(w, "/r")
        mk(w, "/r/x")
        assert c.events() == [(CHANGED, "/p"), (CHILDREN, "/p"), (CREATED, "/r"), (CREATED, "/r/x")]
        w.ok(SetData("/p", b"2", -1))
        assert c.events() == [(CHANGED, "/p")]
