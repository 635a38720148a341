"""Turn a write request into a transaction, validated against the tree plus writes in flight.

Theory of operation. Writes are pipelined: a request is validated and given its zxid before
the writes ahead of it are durable and applied. So validation reads a node's state through
`Pending`, an overlay of the changes in flight (Apache's "outstanding changes"), and then
records its own effect there. Once a txn is applied to the tree, the overlay entries it wrote
are dropped. A multi prepares its ops against a scratch layer that is merged only when every
op succeeded, so a failed multi leaves no trace in the overlay.

The order of checks, and so which error wins when several apply, follows Apache's
PrepRequestProcessor.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .jute.codes import Err, Op
from .jute.records import (
    ACLList,
    CheckVersionTxn,
    CloseSessionTxn,
    CreateRequest,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiOp,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
)
from .tree.acl import AuthPolicy, Identity, KeeperError
from .tree.datatree import SPECIAL_PATHS, DataTree, ZNode, owner_kind, parent_of, ttl_owner
from .tree.javaorder import JavaHashSet
from .tree.paths import validate_path
from .tree.quota import QuotaPolicy

TTL_MAX = 0x000000FFFFFFFFFF
_CREATE_OPS = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL})


@dataclass(slots=True)
class NodeState:
    """What validation needs to know of a node; `exists=False` marks a pending delete."""

    zxid: int
    exists: bool
    version: int = 0
    cversion: int = 0
    aversion: int = 0
    owner: int = 0
    child_count: int = 0
    acl: ACLList = ()
    data: bytes | None = None


# What validation reads of a node: a change in flight, or else the committed ZNode itself,
# which answers the same fields (copying it into a NodeState on every read cost ~0.4 us).
Node = NodeState | ZNode


def _changed(node: Node, zxid: int, **fields: object) -> NodeState:
    """The existing `node` as of `zxid` with `fields` changed (dataclasses.replace, without its cost)."""
    s = NodeState(zxid, True, node.version, node.cversion, node.aversion, node.owner, node.child_count,
                  node.acl, node.data)
    for name, value in fields.items():
        setattr(s, name, value)
    return s


class Pending:
    """The overlay of changes in flight, keyed by path."""

    def __init__(self, tree: DataTree, parent: Pending | None = None):
        self.tree = tree
        self.nodes = tree.nodes  # a tree's dict is never replaced (a restore builds a new Preparer)
        self.parent = parent
        self.changes: dict[str, NodeState] = {}
        # (zxid, path) of every put, in zxid order: `applied` drops entries from the front
        # instead of scanning every change in flight once per applied txn.
        self._order: deque[tuple[int, str]] = deque()

    def get(self, path: str) -> Node | None:
        state = self.changes.get(path)
        if state is not None:
            return state
        if self.parent is not None:
            return self.parent.get(path)
        return self.nodes.get(path)

    def require(self, path: str, validate: bool = False) -> Node:
        """The existing node at `path`, else NoNode; or BadArguments first, as Apache's
        validatePath comes first, when `validate` and `path` is invalid. Only a path that
        nothing is stored under can be invalid, so most requests skip the check."""
        state = self.get(path)
        if state is None or not state.exists:
            if validate and state is None:
                validate_path(path)
            raise KeeperError(Err.NO_NODE, path)
        return state

    def put(self, path: str, state: NodeState) -> None:
        self.changes[path] = state
        self._order.append((state.zxid, path))

    def layer(self) -> Pending:
        return Pending(self.tree, self)

    def merge_into_parent(self) -> None:
        assert self.parent is not None
        self.parent.changes.update(self.changes)
        self.parent._order.extend(self._order)

    def applied(self, zxid: int) -> None:
        """The tree now includes every txn up to `zxid`: drop what those wrote."""
        order, changes = self._order, self.changes
        while order and order[0][0] <= zxid:
            path = order.popleft()[1]
            state = changes.get(path)
            if state is not None and state.zxid <= zxid:
                del changes[path]

    def ephemerals_of(self, session_id: int) -> list[str]:
        """The session's ephemerals once in-flight writes land, in the order Apache lists them."""
        committed = self.tree.ephemerals.get(session_id)
        paths = committed.clone() if committed is not None else JavaHashSet()
        for path, state in self.changes.items():
            # The last change in flight of each path: one that leaves another's node there (a
            # delete, then a create by someone else) took the session's node away too; Apache
            # walks every change in order and meets the delete.
            if state.exists and state.owner == session_id:
                paths.add(path)
            else:
                paths.discard(path)
        return list(paths)


def _check_version(current: int, expected: int, path: str) -> int:
    if expected != -1 and expected != current:
        raise KeeperError(Err.BAD_VERSION, path)
    return current + 1


def _parent_for_delete(path: str) -> str:
    if "/" not in path or "\0" in path or path in SPECIAL_PATHS:
        raise KeeperError(Err.BAD_ARGUMENTS, path)
    return parent_of(path)


class Preparer:
    def __init__(self, tree: DataTree, auth: AuthPolicy, quotas: QuotaPolicy, extended_types: bool):
        self.tree = tree
        self.auth = auth
        self.quotas = quotas
        self.extended_types = extended_types
        self.pending = Pending(tree)

    # Each prep_* validates against `view`, records its effect there, and returns (type, txn).

    def prep_create(self, view: Pending, op: int, req: CreateRequest, session_id: int,
                    ids: list[Identity], zxid: int, time: int) -> tuple[int, object]:
        mode = req.flags
        if mode < 0 or mode > 6:
            raise KeeperError(Err.BAD_ARGUMENTS, req.path)
        is_ttl = mode in (5, 6)
        if is_ttl and not self.extended_types:
            raise KeeperError(Err.UNIMPLEMENTED, req.path)
        if (is_ttl and not 0 < req.ttl <= TTL_MAX) or (not is_ttl and (req.ttl >= 0 or op == Op.CREATE_TTL)):
            raise KeeperError(Err.BAD_ARGUMENTS, req.path)
        path = req.path
        if "/" not in path or "\0" in path:
            raise KeeperError(Err.BAD_ARGUMENTS, path)
        parent_path = parent_of(path)
        acl = self.auth.fixup(path, req.acl, ids)
        parent = view.require(parent_path)
        self.auth.require(parent.acl, 4, ids, path)  # CREATE
        if mode in (2, 3, 6):
            path = f"{path}{parent.cversion:010d}"
        validate_path(path)
        existing = view.get(path)
        if existing is not None and existing.exists:
            raise KeeperError(Err.NODE_EXISTS, path)
        if owner_kind(parent.owner, self.extended_types) == "session":
            raise KeeperError(Err.NO_CHILDREN_FOR_EPHEMERALS, path)
        new_cversion = parent.cversion + 1
        data = req.data
        self.quotas.check(path, None, data or b"")
        # The opcode, not the mode flag, picks the txn type, and the tree takes the owner
        # from the txn type: a plain create with the container flag makes a plain node.
        if op == Op.CREATE_CONTAINER:
            kind, owner = Op.CREATE_CONTAINER, -0x8000000000000000
        elif op == Op.CREATE_TTL:
            kind, owner = Op.CREATE_TTL, ttl_owner(req.ttl)
        else:
            kind = Op.CREATE2 if op == Op.CREATE2 else Op.CREATE
            owner = session_id if mode in (1, 3) else 0
        txn = CreateTxn(kind, path, req.data, acl, mode in (1, 3), new_cversion, req.ttl if is_ttl else -1)
        view.put(parent_path, NodeState(zxid, True, parent.version, new_cversion, parent.aversion, parent.owner,
                                        parent.child_count + 1, parent.acl, parent.data))
        view.put(path, NodeState(zxid, True, 0, 0, 0, owner, 0, acl, data))
        return kind, txn

    def prep_delete(self, view: Pending, path: str, version: int, ids: list[Identity], zxid: int,
                    container_only: bool = False) -> tuple[int, object]:
        parent_path = _parent_for_delete(path)
        parent = view.require(parent_path)
        if not container_only:
            self.auth.require(parent.acl, 8, ids, path)  # DELETE
        node = view.require(path)
        if not container_only:
            _check_version(node.version, version, path)
        if node.child_count > 0:
            raise KeeperError(Err.NOT_EMPTY, path)
        if container_only and owner_kind(node.owner, self.extended_types) in ("void", "session"):
            raise KeeperError(Err.BAD_VERSION, path)
        view.put(parent_path, _changed(parent, zxid, child_count=parent.child_count - 1))
        view.put(path, NodeState(zxid, False))
        return (Op.DELETE_CONTAINER if container_only else Op.DELETE), DeleteTxn(path)

    def prep_set_data(self, view: Pending, path: str, data: bytes | None, version: int,
                      ids: list[Identity], zxid: int) -> tuple[int, object]:
        node = view.require(path, validate=True)
        self.auth.require(node.acl, 2, ids, path)  # WRITE
        self.quotas.check(path, node.data, data or b"")
        new_version = _check_version(node.version, version, path)
        view.put(path, NodeState(zxid, True, new_version, node.cversion, node.aversion, node.owner,
                                 node.child_count, node.acl, data))
        return Op.SET_DATA, SetDataTxn(path, data, new_version)

    def prep_set_acl(self, view: Pending, path: str, acl: list | None, version: int,
                     ids: list[Identity], zxid: int) -> tuple[int, object]:
        validate_path(path)
        fixed = self.auth.fixup(path, acl, ids)
        node = view.require(path)
        self.auth.require(node.acl, 16, ids, path)  # ADMIN
        new_version = _check_version(node.aversion, version, path)
        view.put(path, _changed(node, zxid, aversion=new_version, acl=fixed))
        return Op.SET_ACL, SetACLTxn(path, fixed, new_version)

    def prep_check(self, view: Pending, path: str, version: int, ids: list[Identity]) -> tuple[int, object]:
        node = view.require(path, validate=True)
        self.auth.require(node.acl, 1, ids, path)  # READ
        return Op.CHECK, CheckVersionTxn(path, _check_version(node.version, version, path))

    def prep_close_session(self, session_id: int, zxid: int) -> tuple[int, object]:
        paths = self.pending.ephemerals_of(session_id)
        for path in paths:
            parent_path = parent_of(path)
            parent = self.pending.get(parent_path)
            if parent is not None and parent.exists:
                self.pending.put(parent_path, _changed(parent, zxid, child_count=parent.child_count - 1))
            self.pending.put(path, NodeState(zxid, False))
        return Op.CLOSE_SESSION, CloseSessionTxn(paths)

    def prep_op(self, view: Pending, op: int, rec: object, session_id: int, ids: list[Identity],
                zxid: int, time: int) -> tuple[int, object]:
        if op == Op.SET_DATA:
            path, data, version = rec  # type: ignore[misc]
            return self.prep_set_data(view, path, data, version, ids, zxid)
        if op in _CREATE_OPS:
            assert isinstance(rec, CreateRequest)
            return self.prep_create(view, op, rec, session_id, ids, zxid, time)
        if op == Op.DELETE:
            path, version = rec  # type: ignore[misc]
            return self.prep_delete(view, path, version, ids, zxid)
        if op == Op.SET_ACL:
            path, acl, version = rec  # type: ignore[misc]
            return self.prep_set_acl(view, path, acl, version, ids, zxid)
        if op == Op.CHECK:
            path, version = rec  # type: ignore[misc]
            return self.prep_check(view, path, version, ids)
        raise KeeperError(Err.BAD_ARGUMENTS)

    def prep_single(self, op: int, rec: object, session_id: int, ids: list[Identity], zxid: int,
                    time: int) -> tuple[int, object]:
        """A failed write still becomes a txn: an ErrorTxn that consumes its zxid, as in Apache."""
        try:
            return self.prep_op(self.pending, op, rec, session_id, ids, zxid, time)
        except KeeperError as e:
            return Op.ERROR, ErrorTxn(e.code)

    def prep_multi(self, ops: list[MultiOp], session_id: int, ids: list[Identity], zxid: int,
                   time: int) -> tuple[int, object]:
        layer = self.pending.layer()
        subs: list[tuple[int, object]] = []
        failed = False
        for op in ops:
            if failed:
                subs.append((Op.ERROR, ErrorTxn(Err.RUNTIME_INCONSISTENCY)))
                continue
            try:
                subs.append(self.prep_op(layer, op.op, op.record, session_id, ids, zxid, time))
            except KeeperError as e:
                failed = True
                subs.append((Op.ERROR, ErrorTxn(e.code)))
        if not failed:
            layer.merge_into_parent()
        return Op.MULTI, MultiTxn(subs)
