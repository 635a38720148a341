"""The checkers' own model of the znode tree, replaying a committed history txn by txn.

Theory of operation. This is deliberately a second, small implementation of what applying a
txn means (ZooKeeper's documented semantics), written apart from the server's DataTree so
that one cannot hide the other's bug. It keeps, per node, what a client's Stat shows:
czxid/mzxid/pzxid, ctime/mtime from the txn header's time, version (the txn's new version),
cversion (one per child created or deleted), aversion, ephemeralOwner (the session for an
ephemeral, 0 for persistent, container and TTL nodes), dataLength and numChildren.

A committed txn that cannot apply (a create over an existing node, a delete of a missing one,
a setData whose version is not the next, an ephemeral created by a closed session...) means
the member that prepared it validated against the wrong state; it is noted in `problems`
and applied as far as it goes. A closeSession deletes the paths it lists; any other ephemeral
of that session it leaves is noted and deleted too (what Apache's replicas do on replay).
"""

from __future__ import annotations

from ...jute.codes import Op
from ...jute.records import CloseSessionTxn, CreateTxn, DeleteTxn, MultiTxn, SetACLTxn, SetDataTxn, TxnHeader
from ..history import Stat
from .base import NodeView, Txn

SYSTEM_PATHS = ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config")
_CREATES = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER})


def is_system(path: str) -> bool:
    """Nodes the server makes itself, whose Stats the model does not predict."""
    return path == "/" or path == "/zookeeper" or path.startswith("/zookeeper/")


def parent_of(path: str) -> str:
    return path[: path.rfind("/")] or "/"


class Node:
    __slots__ = ("aversion", "children", "ctime", "cversion", "czxid", "data", "kind", "mtime", "mzxid", "owner",
                 "pzxid", "version")

    def __init__(self, data: bytes | None, zxid: int, time: int, kind: str, owner: int):
        self.data = data
        self.czxid = self.mzxid = self.pzxid = zxid
        self.ctime = self.mtime = time
        self.version = self.cversion = self.aversion = 0
        self.kind = kind  # persistent | ephemeral | container | ttl
        self.owner = owner  # the session of an ephemeral, else 0
        self.children: set[str] = set()

    def view(self) -> NodeView:
        data = self.data
        return NodeView(data, Stat(self.czxid, self.mzxid, self.ctime, self.mtime, self.version, self.cversion,
                                   self.aversion, self.owner, len(data) if data else 0, len(self.children),
                                   self.pzxid))


class TreeModel:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {p: Node(b"", 0, 0, "persistent", 0) for p in SYSTEM_PATHS}
        for p in SYSTEM_PATHS[1:]:
            self.nodes[parent_of(p)].children.add(p)
        self.sessions: set[int] = set()
        self.closed: dict[int, int] = {}  # session -> zxid of the closeSession that ended it
        self.zxid = 0
        # (zxid, check, what): committed txns that do not apply; check is "history" or "ephemerals"
        self.problems: list[tuple[int, str, str]] = []

    # ------------------------------------------------------------ reading

    def view(self, path: str) -> NodeView | None:
        node = self.nodes.get(path)
        return node.view() if node is not None else None

    def children(self, path: str) -> list[str] | None:
        node = self.nodes.get(path)
        return None if node is None else sorted(c[c.rfind("/") + 1:] for c in node.children)

    def views(self) -> dict[str, NodeView]:
        """Every node a client created, as a client would read it."""
        return {p: n.view() for p, n in self.nodes.items() if not is_system(p)}

    def owned_by(self, session: int) -> list[str]:
        return sorted(p for p, n in self.nodes.items() if n.kind == "ephemeral" and n.owner == session)

    # ------------------------------------------------------------ applying

    def apply(self, t: Txn) -> None:
        self.zxid = t.zxid
        hdr, rec = t.hdr, t.record
        kind = hdr.type
        if kind == Op.CREATE_SESSION:
            self.sessions.add(hdr.client_id)
        elif kind == Op.CLOSE_SESSION:
            self._close_session(hdr, rec)
        elif kind == Op.MULTI:
            assert isinstance(rec, MultiTxn)
            if all(sub_kind != Op.ERROR for sub_kind, _ in rec.txns):  # a failed multi changes nothing
                for sub_kind, sub in rec.txns:
                    self._apply_one(sub_kind, hdr, sub)
        else:
            self._apply_one(kind, hdr, rec)

    def _problem(self, what: str, check: str = "history") -> None:
        self.problems.append((self.zxid, check, what))

    def _apply_one(self, kind: int, hdr: TxnHeader, rec: object) -> None:
        if kind in _CREATES and isinstance(rec, CreateTxn):
            self._create(kind, hdr, rec)
        elif kind in (Op.DELETE, Op.DELETE_CONTAINER) and isinstance(rec, DeleteTxn):
            self._delete(rec.path, kind == Op.DELETE_CONTAINER)
        elif kind == Op.SET_DATA and isinstance(rec, SetDataTxn):
            self._set_data(hdr, rec)
        elif kind == Op.SET_ACL and isinstance(rec, SetACLTxn):
            node = self._existing(rec.path, "setACL")
            if node is not None:
                node.aversion = rec.version
        # check and error txns change nothing

    def _existing(self, path: str, what: str) -> Node | None:
        node = self.nodes.get(path)
        if node is None:
            self._problem(f"{what} of {path}, which does not exist")
        return node

    def _create(self, kind: int, hdr: TxnHeader, rec: CreateTxn) -> None:
        path, session = rec.path, hdr.client_id
        parent = self._existing(parent_of(path), f"create of {path} under its parent")
        if path in self.nodes:
            self._problem(f"create of {path}, which exists")
            return
        if parent is None:
            return
        if parent.kind == "ephemeral":
            self._problem(f"create of {path} under an ephemeral", "ephemerals")
        node_kind = {Op.CREATE_TTL: "ttl", Op.CREATE_CONTAINER: "container"}.get(
            kind, "ephemeral" if rec.ephemeral else "persistent")
        if node_kind == "ephemeral" and session in self.closed:
            self._problem(f"ephemeral {path} created by session 0x{session:x}, closed at zxid "
                          f"0x{self.closed[session]:x}", "ephemerals")
        self.nodes[path] = Node(rec.data, hdr.zxid, hdr.time, node_kind, session if node_kind == "ephemeral" else 0)
        parent.children.add(path)
        parent.cversion += 1
        parent.pzxid = hdr.zxid

    def _delete(self, path: str, container_only: bool = False) -> None:
        node = self._existing(path, "delete")
        if node is None:
            return
        if node.children:
            self._problem(f"delete of {path}, which has children")
        if container_only and node.kind not in ("container", "ttl"):
            self._problem(f"deleteContainer of {path}, a {node.kind} node")
        del self.nodes[path]
        parent = self.nodes.get(parent_of(path))
        if parent is not None:
            parent.children.discard(path)
            parent.cversion += 1
            parent.pzxid = self.zxid

    def _set_data(self, hdr: TxnHeader, rec: SetDataTxn) -> None:
        node = self._existing(rec.path, "setData")
        if node is None:
            return
        if rec.version != node.version + 1:
            self._problem(f"setData of {rec.path} to version {rec.version}; it was at {node.version}")
        node.data = rec.data
        node.version = rec.version
        node.mzxid = hdr.zxid
        node.mtime = hdr.time

    def _close_session(self, hdr: TxnHeader, rec: object) -> None:
        session = hdr.client_id
        listed = rec.paths_to_delete if isinstance(rec, CloseSessionTxn) else None
        for path in listed or ():
            node = self.nodes.get(path)
            if node is None or node.owner != session:
                self._problem(f"closeSession of 0x{session:x} lists {path}, which is not its ephemeral", "ephemerals")
            if node is not None:
                self._delete(path)
        for path in self.owned_by(session):
            if listed is not None:
                self._problem(f"closeSession of 0x{session:x} left its ephemeral {path} out", "ephemerals")
            self._delete(path)
        self.sessions.discard(session)
        self.closed[session] = hdr.zxid


def replay(txns: list[Txn]) -> TreeModel:
    model = TreeModel()
    for t in txns:
        model.apply(t)
    return model
