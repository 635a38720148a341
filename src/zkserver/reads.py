"""Requests answered from the committed tree: reads, watch registration, whoAmI.

Each handler takes the decoded request and returns the reply body, or raises KeeperError.
They run only when every write submitted before them has been applied, so a read never sees
an uncommitted write and always sees the writes its own session made before it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .jute.codec import Reader, Writer, encode_buffer, encode_ustring, pack_int
from .jute.codes import AddWatchMode, Err, EventType, Op, Perm, WatcherType
from .jute.records import (
    MULTI_HEADER,
    SetWatches,
    read_multi,
    read_path_int,
    read_path_watch,
    write_acl_list,
)
from .tree.acl import KeeperError, client_infos, mask_digests
from .tree.watches import PERSISTENT, RECURSIVE, STANDARD

if TYPE_CHECKING:
    from .core import Conn, ServerCore
    from .tree.datatree import ZNode


def _node_for_read(core: ServerCore, conn: Conn, path: str, perm: int = Perm.READ):
    node = core.tree.get(path)
    if node is None:
        raise KeeperError(Err.NO_NODE, path)
    core.auth.require(node.acl, perm, conn.ids, path)
    return node


def get_data(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    path, watch = read_path_watch(r)
    return _get_data(core, conn, path, watch)


def _get_data(core: ServerCore, conn: Conn, path: str, watch: bool) -> bytes:
    node = _node_for_read(core, conn, path)
    tree = core.tree
    if watch:
        tree.add_watch(path, conn, child=False)
    data = node.data
    if tree.namespace_stats is not None:
        tree.namespace_stats.read(path, len(data) if data else 0)
    return encode_buffer(data) + tree.client_stat(node)


def exists(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    path, watch = read_path_watch(r)
    if "\0" in path:
        raise KeeperError(Err.BAD_ARGUMENTS, path)
    node = core.tree.get(path)
    if node is not None and core.settings.exists_checks_read:
        core.auth.require(node.acl, Perm.READ, conn.ids, path)
    if watch:
        core.tree.add_watch(path, conn, child=False)
    if node is None:
        raise KeeperError(Err.NO_NODE, path)
    if core.tree.namespace_stats is not None:
        core.tree.namespace_stats.read(path, 0)
    return core.tree.client_stat(node)


def _children(core: ServerCore, conn: Conn, path: str, watch: bool):
    node = _node_for_read(core, conn, path)
    if watch:
        core.tree.add_watch(path, conn, child=True)
    return node


def _child_names(core: ServerCore, path: str, node: ZNode) -> bytes:
    wire = core.tree.encoded_children(path, node)
    if core.tree.namespace_stats is not None:
        # Apache counts the names' lengths: the vector less its count and each name's length prefix
        # (UTF-8 bytes where Java counts UTF-16 units: the same for ASCII names).
        core.tree.namespace_stats.read(path, len(wire) - 4 - 4 * len(node.children))
    return wire


def get_children(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    path, watch = read_path_watch(r)
    node = _children(core, conn, path, watch)
    return _child_names(core, path, node)


def get_children2(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    path, watch = read_path_watch(r)
    node = _children(core, conn, path, watch)
    return _child_names(core, path, node) + core.tree.client_stat(node)


def get_acl(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    path = r.path()
    node = _node_for_read(core, conn, path, Perm.READ | Perm.ADMIN)
    acl = node.acl
    if not core.auth.check(acl, Perm.ADMIN, conn.ids):
        acl = tuple(mask_digests(acl))
    w = Writer()
    write_acl_list(w, acl)
    return w.raw(core.tree.client_stat(node)).getvalue()


def get_all_children_number(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    path = r.path()
    _node_for_read(core, conn, path)
    return pack_int(core.tree.count_descendants(path))


def get_ephemerals(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    prefix = r.ustring()
    mine = core.tree.ephemerals.get(conn.session_id)
    paths = list(mine.clone()) if mine is not None else []  # Apache iterates a clone
    if prefix is not None and prefix.strip() not in ("", "/"):
        paths = [p for p in paths if p.startswith(prefix)]
    return Writer().ustring_vector(paths).getvalue()


def sync(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    return encode_ustring(r.path())


def who_am_i(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    infos = client_infos(conn.ids)
    w = Writer().int(len(infos))
    for scheme, user in infos:
        w.ustring(scheme).ustring(user)
    return w.getvalue()


def add_watch(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    path, mode = read_path_int(r)
    if mode not in (AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE):
        raise KeeperError(Err.MARSHALLING_ERROR, path)  # Apache's WatcherMode.fromZooDef throws
    core.tree.add_persistent_watch(path, conn, recursive=mode == AddWatchMode.PERSISTENT_RECURSIVE)
    return pack_int(0)  # ErrorResponse{err=0}


def _rearm_or_catch_up(core: ServerCore, conn: Conn, paths: list[str], relative_zxid: int, child: bool) -> None:
    """Data or child watches of a reconnecting client: fire what it missed, re-arm the rest."""
    tree = core.tree
    changed_event = EventType.NODE_CHILDREN_CHANGED if child else EventType.NODE_DATA_CHANGED
    table = tree.child_watches if child else tree.data_watches
    for path in paths:
        node = tree.get(path)
        if node is None:
            core.notify(conn, EventType.NODE_DELETED, path, -1)
        elif (node.pzxid if child else node.mzxid) > relative_zxid:
            core.notify(conn, changed_event, path, -1)
        else:
            table.add(path, conn, STANDARD)


def set_watches(core: ServerCore, conn: Conn, r: Reader, v2: bool) -> bytes:
    sw = SetWatches.read(r, v2)
    tree = core.tree
    _rearm_or_catch_up(core, conn, sw.data, sw.relative_zxid, child=False)
    for path in sw.exist:
        if tree.get(path) is not None:
            core.notify(conn, EventType.NODE_CREATED, path, -1)
        else:
            tree.data_watches.add(path, conn, STANDARD)
    _rearm_or_catch_up(core, conn, sw.child, sw.relative_zxid, child=True)
    for path in sw.persistent:
        tree.add_persistent_watch(path, conn, recursive=False)
    for path in sw.recursive:
        tree.add_persistent_watch(path, conn, recursive=True)
    return b""


def _watch_modes(kind: int) -> list[tuple[str, int | None]]:
    """(table, mode) pairs a checkWatches/removeWatches type covers; None = every mode."""
    if kind == WatcherType.CHILDREN:
        return [("child", STANDARD)]
    if kind == WatcherType.DATA:
        return [("data", STANDARD)]
    if kind == WatcherType.ANY:
        return [("child", None), ("data", None)]
    if kind == WatcherType.PERSISTENT:
        return [("child", PERSISTENT), ("data", PERSISTENT)]
    if kind == WatcherType.PERSISTENT_RECURSIVE:
        return [("data", RECURSIVE)]
    # Apache's WatcherType.fromInt throws, which its request processor answers as MarshallingError.
    raise KeeperError(Err.MARSHALLING_ERROR)


def _tables(core: ServerCore, kind: int, checking: bool = False):
    tree = core.tree
    modes = _watch_modes(kind)
    if checking and kind == WatcherType.PERSISTENT:
        modes = [("data", PERSISTENT)]  # Apache's containsWatcher looks in the data table only
    return [(tree.child_watches if t == "child" else tree.data_watches, m) for t, m in modes]


def check_watches(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    path, kind = read_path_int(r)
    tables = _tables(core, kind, checking=True)
    found = any(table.modes(path, conn) & (mode if mode is not None else -1) for table, mode in tables)
    if not found:
        raise KeeperError(Err.NO_WATCHER, path)
    return b""


def remove_watches(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    path, kind = read_path_int(r)
    removed = False
    for table, mode in _tables(core, kind):
        removed = table.remove(path, conn, mode) or removed
    if not removed:
        raise KeeperError(Err.NO_WATCHER, path)
    return b""


def multi_read(core: ServerCore, conn: Conn, r: Reader) -> bytes:
    w = Writer()
    for op in read_multi(r):
        if op.op not in (Op.GET_DATA, Op.GET_CHILDREN):
            # Apache fails the whole request ("Invalid type of readOp") as MarshallingError.
            raise KeeperError(Err.MARSHALLING_ERROR, op.path)
        path, watch = op.record  # type: ignore[misc]
        try:
            if op.op == Op.GET_DATA:
                body = _get_data(core, conn, path, watch)
            else:
                body = _child_names(core, path, _children(core, conn, path, watch))
            w.raw(MULTI_HEADER.pack(op.op, False, 0)).raw(body)
        except KeeperError as e:
            w.raw(MULTI_HEADER.pack(Op.ERROR, False, e.code)).int(e.code)
    w.raw(MULTI_HEADER.pack(-1, True, -1))
    return w.getvalue()


ReadHandler = Callable[["ServerCore", "Conn", Reader], bytes]

READ_HANDLERS: dict[int, ReadHandler] = {
    Op.GET_DATA: get_data,
    Op.EXISTS: exists,
    Op.GET_CHILDREN: get_children,
    Op.GET_CHILDREN2: get_children2,
    Op.GET_ACL: get_acl,
    Op.GET_ALL_CHILDREN_NUMBER: get_all_children_number,
    Op.GET_EPHEMERALS: get_ephemerals,
    Op.SYNC: sync,
    Op.WHO_AM_I: who_am_i,
    Op.ADD_WATCH: add_watch,
    Op.SET_WATCHES: lambda core, conn, r: set_watches(core, conn, r, v2=False),
    Op.SET_WATCHES2: lambda core, conn, r: set_watches(core, conn, r, v2=True),
    Op.CHECK_WATCHES: check_watches,
    Op.REMOVE_WATCHES: remove_watches,
    Op.MULTI_READ: multi_read,
}
