"""The committed znode tree: nodes, Stats, ephemerals, containers/TTLs, watches, txn apply.

Theory of operation. The tree holds committed state only and changes only through
`apply(header, txn)`, which is deterministic: everything it needs (zxid, time, session) comes
in the txn, so replaying a log gives the same tree on every node. Applying a txn queues watch
notifications in `self.events`; the core drains them and delivers them before the reply of
the request that caused them.

Stat fields are kept as Apache persists them (StatPersisted); what a client sees is derived in
`client_stat`, encoded as the wire's Stat: cversion counts changes there (2 * creates - children)
and ephemeralOwner reads 0 for containers and TTL nodes.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from ..jute.codec import pack_int
from ..jute.codes import CONTAINER_EPHEMERAL_OWNER, Err, EventType, Op
from ..jute.records import (
    STAT,
    ACLList,
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
from .acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, KeeperError, shared_acl
from .javaorder import JavaHashSet
from .quota import LIMIT_NODE, STAT_NODE, format_stats, parse_stats, quota_root_for, stat_value
from .watches import PERSISTENT, RECURSIVE, STANDARD, WatchTable

log = logging.getLogger("zkserver.tree")
pack_stat = STAT.pack

ZOOKEEPER_PATH = "/zookeeper"
QUOTA_PATH = "/zookeeper/quota"
CONFIG_PATH = "/zookeeper/config"
SPECIAL_PATHS = frozenset({"/", ZOOKEEPER_PATH, QUOTA_PATH, CONFIG_PATH})
_EXTENDED_MASK = -0x0100000000000000  # 0xff00000000000000 as a signed long
_TTL_MASK = 0x000000FFFFFFFFFF


def ttl_owner(ttl: int) -> int:
    """ephemeralOwner of a TTL node: 0xff in the top byte, the TTL in the low five bytes."""
    return _EXTENDED_MASK | ttl


def created_owner(kind: int, txn: CreateTxn, client_id: int) -> int:
    """The ephemeralOwner a create txn gives its node: the txn type decides, not the mode flag."""
    if kind == Op.CREATE_CONTAINER:
        return CONTAINER_EPHEMERAL_OWNER
    if kind == Op.CREATE_TTL:
        return ttl_owner(txn.ttl)
    return client_id if txn.ephemeral else 0


def owner_kind(owner: int, extended_types: bool) -> str:
    """'void', 'session', 'container' or 'ttl', as Apache's EphemeralType.get reads it."""
    if not owner:  # most nodes
        return "void"
    if extended_types and owner & _EXTENDED_MASK == _EXTENDED_MASK and owner != CONTAINER_EPHEMERAL_OWNER:
        return "ttl"
    if owner == CONTAINER_EPHEMERAL_OWNER:
        return "container"
    return "session"


def parent_of(path: str) -> str:
    return path[: path.rfind("/")] or "/"


CACHE_CHILDREN_FROM = 16  # smaller child lists are cheaper to encode than to keep


def _encoded_name(name: str) -> bytes:
    b = name.encode("utf-8")
    return pack_int(len(b)) + b


class ZNode:
    __slots__ = (
        "acl", "aversion", "children", "ctime", "cversion", "czxid", "data", "mtime",
        "mzxid", "owner", "pzxid", "version",
    )

    def __init__(self, data: bytes | None, acl: ACLList, czxid: int, time: int, owner: int):
        self.data = data
        self.acl = acl
        self.czxid = czxid
        self.mzxid = czxid
        self.pzxid = czxid
        self.ctime = time
        self.mtime = time
        self.version = 0
        self.cversion = 0
        self.aversion = 0
        self.owner = owner
        self.children: dict[str, None] = {}

    # prep.Pending reads a committed node through the fields of its NodeState of a change in
    # flight, instead of copying each node it validates against.
    exists = True

    @property
    def child_count(self) -> int:
        return len(self.children)


@dataclass(slots=True)
class TxnResult:
    type: int
    path: str | None = None
    err: int = 0
    stat: bytes | None = None  # the client Stat as of this txn (encoded), for replies that carry one
    multi: list[TxnResult] | None = None


@dataclass(slots=True)
class WatchEvent:
    watcher: Hashable
    type: int
    path: str
    zxid: int
    acl: ACLList | None  # READ on this ACL is checked before delivery (CVE-2024-23944)


@dataclass
class DataTree:
    extended_types: bool = False
    nodes: dict[str, ZNode] = field(default_factory=dict)
    # Java-ordered, because Apache's closeSession deletes them in HashSet order.
    ephemerals: dict[int, JavaHashSet] = field(default_factory=dict)
    containers: dict[str, None] = field(default_factory=dict)
    ttls: dict[str, None] = field(default_factory=dict)
    data_watches: WatchTable = field(default_factory=WatchTable)
    child_watches: WatchTable = field(default_factory=WatchTable)
    events: list[WatchEvent] = field(default_factory=list)
    last_processed_zxid: int = 0
    # The encoded child-name vector of nodes with many children, as getChildren answers it;
    # dropped whenever the node's children change (create_node, delete_node).
    children_wire: dict[str, bytes] = field(default_factory=dict)
    # Apache's per-namespace metrics (ops.stats.NamespaceStats), fed where Apache's DataTree feeds
    # them: each applied create, delete and setData; the read handlers feed the reads. None: off.
    namespace_stats: Any = None

    def __post_init__(self) -> None:
        if not self.nodes:
            self._add_system_nodes()

    def _add_system_nodes(self) -> None:
        root = ZNode(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        root.pzxid = 0
        zk = ZNode(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        quota = ZNode(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        config = ZNode(b"", READ_ACL_UNSAFE, 0, 0, 0)
        config.aversion = -1  # Apache sets its ACL with version -1 at start-up
        root.children["zookeeper"] = None
        zk.children["quota"] = None
        zk.children["config"] = None
        self.nodes.update({"/": root, ZOOKEEPER_PATH: zk, QUOTA_PATH: quota, CONFIG_PATH: config})

    # ------------------------------------------------------------ reads

    def get(self, path: str) -> ZNode | None:
        return self.nodes.get(path)

    def encoded_children(self, path: str, node: ZNode) -> bytes:
        """jute vector<ustring> of the node's child names; cached for nodes with many children."""
        wire = self.children_wire.get(path)
        if wire is None:
            names = node.children
            wire = b"".join([pack_int(len(names)), *(_encoded_name(n) for n in names)])
            if len(names) >= CACHE_CHILDREN_FROM:
                self.children_wire[path] = wire
        return wire

    def client_stat(self, n: ZNode) -> bytes:
        """The Stat a client sees, encoded: every reply that carries one sends it as is."""
        owner = n.owner
        if owner and owner_kind(owner, self.extended_types) != "session":
            owner = 0
        nchildren = len(n.children)
        data = n.data
        return pack_stat(n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.cversion * 2 - nchildren,
                         n.aversion, owner, len(data) if data else 0, nchildren, n.pzxid)

    def count_descendants(self, path: str) -> int:
        node = self.nodes.get(path)
        if node is None:
            return 0
        total = 0
        stack = [(path, node)]
        while stack:
            p, n = stack.pop()
            for name in n.children:
                child_path = (p if p != "/" else "") + "/" + name
                total += 1
                stack.append((child_path, self.nodes[child_path]))
        return total

    # ------------------------------------------------------------ watches

    def add_watch(self, path: str, watcher: Hashable, child: bool) -> None:
        (self.child_watches if child else self.data_watches).add(path, watcher, STANDARD)

    def add_persistent_watch(self, path: str, watcher: Hashable, recursive: bool) -> None:
        if recursive:
            self.data_watches.add(path, watcher, RECURSIVE)
        else:
            self.data_watches.add(path, watcher, PERSISTENT)
            self.child_watches.add(path, watcher, PERSISTENT)

    def remove_watcher(self, watcher: Hashable) -> None:
        self.data_watches.remove_watcher(watcher)
        self.child_watches.remove_watcher(watcher)

    def _fire(self, table: WatchTable, path: str, etype: int, zxid: int, acl: ACLList | None,
              suppress: list[Hashable] | None = None) -> list[Hashable]:
        if not table.recursive_count and path not in table.by_path:
            return []  # nobody watches: most txns, and trigger's call costs more than this test
        watchers = table.trigger(path)
        for w in watchers:
            if suppress is None or w not in suppress:
                self.events.append(WatchEvent(w, etype, path, zxid, acl))
        return watchers

    # ------------------------------------------------------------ mutations

    def create_node(self, path: str, data: bytes | None, acl: ACLList, owner: int, parent_cversion: int,
                    zxid: int, time: int) -> ZNode:
        parent_path = parent_of(path)
        parent = self.nodes.get(parent_path)
        if parent is None:
            raise KeeperError(Err.NO_NODE, path)
        if path in self.nodes:
            raise KeeperError(Err.NODE_EXISTS, path)
        if parent_cversion == -1:
            parent_cversion = parent.cversion + 1
        if parent_cversion > parent.cversion:
            parent.cversion = parent_cversion
            parent.pzxid = zxid
        node = ZNode(data, shared_acl(acl), zxid, time, owner)  # null data stays null: clients see None
        parent.children[path[path.rfind("/") + 1 :]] = None
        if self.children_wire:
            self.children_wire.pop(parent_path, None)
        self.nodes[path] = node
        if owner:
            self.index_owned(path, owner)
        if parent_path.startswith(QUOTA_PATH) and path.endswith("/" + STAT_NODE):
            self._recount_quota(parent_path[len(QUOTA_PATH):])
        self._update_quota(path, len(data or b""), 1)
        if self.namespace_stats is not None:
            self.namespace_stats.write(path, len(data) if data else 0)
        self._fire(self.data_watches, path, EventType.NODE_CREATED, zxid, acl)
        self._fire(self.child_watches, parent_path, EventType.NODE_CHILDREN_CHANGED, zxid, parent.acl)
        return node

    def index_owned(self, path: str, owner: int) -> None:
        """List a node with an owner among its session's ephemerals, the containers or the TTL nodes."""
        kind = owner_kind(owner, self.extended_types)
        if kind == "container":
            self.containers[path] = None
        elif kind == "ttl":
            self.ttls[path] = None
        elif kind == "session":
            self.ephemerals.setdefault(owner, JavaHashSet()).add(path)

    def _unindex_owned(self, path: str, owner: int) -> None:
        kind = owner_kind(owner, self.extended_types)
        if kind == "container":
            self.containers.pop(path, None)
        elif kind == "ttl":
            self.ttls.pop(path, None)
        elif kind == "session":
            paths = self.ephemerals.get(owner)
            if paths is not None:
                paths.discard(path)  # an empty set stays: its table size is part of the order

    def delete_node(self, path: str, zxid: int) -> None:
        parent_path = parent_of(path)
        parent = self.nodes.get(parent_path)
        if parent is None:
            raise KeeperError(Err.NO_NODE, path)
        # As Apache, the parent's pzxid moves even when the child is already gone (a delete
        # replayed over a fuzzy snapshot must leave the parent as the original delete did).
        parent.children.pop(path[path.rfind("/") + 1 :], None)
        if self.children_wire:
            self.children_wire.pop(parent_path, None)
            self.children_wire.pop(path, None)
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        node = self.nodes.pop(path, None)
        if node is None:
            raise KeeperError(Err.NO_NODE, path)
        if node.owner:
            self._unindex_owned(path, node.owner)
        self._update_quota(path, -len(node.data or b""), -1)
        if self.namespace_stats is not None:
            self.namespace_stats.write(path, 0)
        notified = self._fire(self.data_watches, path, EventType.NODE_DELETED, zxid, node.acl)
        self._fire(self.child_watches, path, EventType.NODE_DELETED, zxid, node.acl, suppress=notified)
        self._fire(self.child_watches, parent_path, EventType.NODE_CHILDREN_CHANGED, zxid, parent.acl)

    def set_data(self, path: str, data: bytes | None, version: int, zxid: int, time: int) -> ZNode:
        node = self.nodes.get(path)
        if node is None:
            raise KeeperError(Err.NO_NODE, path)
        self._update_quota(path, len(data or b"") - len(node.data or b""), 0)
        node.data = data
        node.mtime = time
        node.mzxid = zxid
        node.version = version
        if self.namespace_stats is not None:
            self.namespace_stats.write(path, len(data) if data else 0)
        self._fire(self.data_watches, path, EventType.NODE_DATA_CHANGED, zxid, node.acl)
        return node

    def set_acl(self, path: str, acl: ACLList, version: int) -> ZNode:
        node = self.nodes.get(path)
        if node is None:
            raise KeeperError(Err.NO_NODE, path)
        node.aversion = version
        node.acl = shared_acl(acl)
        return node

    # ------------------------------------------------------------ quotas

    def _update_quota(self, path: str, bytes_diff: int, count_diff: int) -> None:
        """Keep the zookeeper_stats node of the enclosing quota root current, as Apache does
        (its data changes in place; its Stat does not)."""
        root = quota_root_for(self.nodes, path)
        if root is None:
            return
        stat_node = self.nodes.get(f"{QUOTA_PATH}{root}/{STAT_NODE}")
        if stat_node is None:
            return
        stats = parse_stats(stat_node.data)
        stats["count"] = stat_value(stats, "count") + count_diff
        stats["bytes"] = stat_value(stats, "bytes") + bytes_diff
        stat_node.data = format_stats(stats)
        limits = parse_stats(self.nodes[f"{QUOTA_PATH}{root}/{LIMIT_NODE}"].data)
        for what, soft in (("count", "count"), ("bytes", "bytes")):
            if -1 < stat_value(limits, soft) < stats[what]:
                log.warning("Quota exceeded: %s %s=%d %s limit=%d", root, what, stats[what], what, limits[soft])

    def _recount_quota(self, root: str) -> None:
        stat_node = self.nodes.get(f"{QUOTA_PATH}{root}/{STAT_NODE}")
        if stat_node is None or root not in self.nodes:
            return
        count = self.count_descendants(root) + 1
        total = sum(len(n.data or b"") for p, n in self.nodes.items() if p == root or p.startswith(root + "/"))
        stat_node.data = format_stats({"count": count, "bytes": total})

    def kill_session(self, session_id: int, zxid: int, paths: list[str] | None) -> None:
        local = self.ephemerals.pop(session_id, JavaHashSet())
        for path in list(paths or ()) + [p for p in local if p not in (paths or ())]:
            if path in self.nodes:
                self.delete_node(path, zxid)

    # ------------------------------------------------------------ txn apply

    def apply(self, hdr: TxnHeader, txn: object) -> TxnResult:
        rc = self._apply_one(hdr.type, hdr, txn)
        if hdr.zxid > self.last_processed_zxid:
            self.last_processed_zxid = hdr.zxid
        return rc

    def _apply_one(self, kind: int, hdr: TxnHeader, txn: object) -> TxnResult:
        rc = TxnResult(kind)
        apply = _APPLY.get(type(txn))  # the record type picks how a txn applies
        try:
            if apply is not None:
                apply(self, kind, hdr, txn, rc)
            elif kind == Op.CLOSE_SESSION:  # read from a log written without the paths
                self.kill_session(hdr.client_id, hdr.zxid, None)
        except KeeperError as e:
            rc.err = e.code
            if kind == Op.CREATE and e.code == Err.NODE_EXISTS and isinstance(txn, CreateTxn):
                # Replaying a fuzzy snapshot: the node is already there, but its parent's
                # cversion/pzxid must still move forward as the original create moved them.
                self._bump_parent(txn.path, txn.parent_cversion, hdr.zxid)
        return rc

    def _bump_parent(self, path: str, cversion: int, zxid: int) -> None:
        parent = self.nodes.get(parent_of(path))
        if parent is not None and cversion > parent.cversion:
            parent.cversion = cversion
            parent.pzxid = zxid

    def _apply_create(self, kind: int, hdr: TxnHeader, txn: CreateTxn, rc: TxnResult) -> None:
        rc.path = txn.path
        owner = created_owner(kind, txn, hdr.client_id)
        node = self.create_node(txn.path, txn.data, txn.acl, owner, txn.parent_cversion, hdr.zxid, hdr.time)
        rc.stat = self.client_stat(node)

    def _apply_delete(self, kind: int, hdr: TxnHeader, txn: DeleteTxn, rc: TxnResult) -> None:
        rc.path = txn.path
        self.delete_node(txn.path, hdr.zxid)

    def _apply_set_data(self, kind: int, hdr: TxnHeader, txn: SetDataTxn, rc: TxnResult) -> None:
        rc.path = txn.path
        rc.stat = self.client_stat(self.set_data(txn.path, txn.data, txn.version, hdr.zxid, hdr.time))

    def _apply_set_acl(self, kind: int, hdr: TxnHeader, txn: SetACLTxn, rc: TxnResult) -> None:
        rc.path = txn.path
        rc.stat = self.client_stat(self.set_acl(txn.path, txn.acl, txn.version))

    def _apply_close_session(self, kind: int, hdr: TxnHeader, txn: CloseSessionTxn, rc: TxnResult) -> None:
        self.kill_session(hdr.client_id, hdr.zxid, txn.paths_to_delete)

    def _apply_error(self, kind: int, hdr: TxnHeader, txn: ErrorTxn, rc: TxnResult) -> None:
        rc.err = txn.err

    def _apply_check(self, kind: int, hdr: TxnHeader, txn: CheckVersionTxn, rc: TxnResult) -> None:
        rc.path = txn.path
        node = self.nodes.get(txn.path)
        rc.stat = self.client_stat(node) if node is not None else None

    def _apply_multi(self, kind: int, hdr: TxnHeader, txn: MultiTxn, rc: TxnResult) -> None:
        rc.multi = []
        failed = Op.ERROR in [sub_kind for sub_kind, _ in txn.txns]
        past_failure = False
        for sub_kind, sub in txn.txns:
            if sub_kind == Op.ERROR:
                past_failure = True
            elif failed:
                # Ops of a failed multi report OK before the failing op and
                # RuntimeInconsistency after it, as Apache's results do.
                sub_kind, sub = Op.ERROR, ErrorTxn(Err.RUNTIME_INCONSISTENCY if past_failure else 0)
            sub_rc = self._apply_one(sub_kind, hdr, sub)
            rc.multi.append(sub_rc)
            if sub_rc.err and not rc.err:
                rc.err = sub_rc.err


_APPLY = {
    CreateTxn: DataTree._apply_create,
    DeleteTxn: DataTree._apply_delete,
    SetDataTxn: DataTree._apply_set_data,
    SetACLTxn: DataTree._apply_set_acl,
    CloseSessionTxn: DataTree._apply_close_session,
    ErrorTxn: DataTree._apply_error,
    CheckVersionTxn: DataTree._apply_check,
    MultiTxn: DataTree._apply_multi,
}
