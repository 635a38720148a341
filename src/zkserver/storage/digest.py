"""Apache ZooKeeper's tree digest (DigestCalculator, version 2), full and predicted.

Theory of operation. A node's digest is CRC32 over its path (the root as ""), its data and
60 bytes of stat (czxid mzxid pzxid ctime mtime version cversion aversion ephemeralOwner);
nodes under "/zookeeper/" count as 0 ("/zookeeper" itself counts). The tree digest is the
wrapping 64-bit sum of all node digests.

Every txn-log entry carries the digest of the tree *after* that txn. Our writes reach the log
before the tree applies them (the tree holds durable state only), so `DigestPredictor` works
out each txn's effect on the digest from the txn alone, over an overlay of the nodes touched by
txns still in flight, and falls back to the committed tree for the rest. The overlay entries
are dropped once the tree has applied the txn that wrote them. No hook in DataTree is needed.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque

from ..jute.codes import CONTAINER_EPHEMERAL_OWNER, Op
from ..jute.records import (
    CloseSessionTxn,
    CreateTxn,
    DeleteTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
)
from ..tree.datatree import DataTree, ZNode, parent_of, ttl_owner

DIGEST_VERSION = 2
_EXCLUDED_PREFIX = "/zookeeper/"
# czxid mzxid pzxid ctime mtime version cversion aversion ephemeralOwner: Apache's order.
_DIGEST_STAT = struct.Struct(">qqqqqiiiq")
_MASK64 = (1 << 64) - 1

# The digest-relevant state of a node:
# (data, czxid, mzxid, pzxid, ctime, mtime, version, cversion, aversion, owner)
NodeState = tuple[bytes, int, int, int, int, int, int, int, int, int]


def signed64(v: int) -> int:
    """Java's long arithmetic wraps; so does the tree digest."""
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def state_digest(path: str, s: NodeState) -> int:
    if path.startswith(_EXCLUDED_PREFIX):
        return 0
    key = b"" if path == "/" else path.encode("utf-8")
    data, czxid, mzxid, pzxid, ctime, mtime, version, cversion, aversion, owner = s
    crc = zlib.crc32(key)
    if data:
        crc = zlib.crc32(data, crc)
    return zlib.crc32(_DIGEST_STAT.pack(czxid, mzxid, pzxid, ctime, mtime, version, cversion, aversion, owner), crc)


def node_state(n: ZNode) -> NodeState:
    return (n.data, n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version, n.cversion, n.aversion, n.owner)


def node_digest(path: str, n: ZNode) -> int:
    return state_digest(path, node_state(n))


def tree_digest(tree: DataTree) -> int:
    """The digest of the whole tree, computed from scratch (start-up, snapshots, checks).
    state_digest inlined: this walks a million znodes at start-up."""
    total = 0
    crc32, pack, excluded = zlib.crc32, _DIGEST_STAT.pack, _EXCLUDED_PREFIX
    for path, n in tree.nodes.items():
        if path.startswith(excluded):
            continue
        crc = crc32(b"" if path == "/" else path.encode("utf-8"))
        if n.data:
            crc = crc32(n.data, crc)
        total += crc32(pack(n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version, n.cversion, n.aversion,
                            n.owner), crc)
    return signed64(total)


_MISSING = object()


class DigestPredictor:
    """The tree digest after each txn handed to the log, ahead of the tree applying it."""

    def __init__(self, tree: DataTree, digest: int | None = None):
        self.tree = tree
        self.digest = tree_digest(tree) if digest is None else digest
        # path -> (zxid of the txn that last touched it, state or None when deleted)
        self._overlay: dict[str, tuple[int, NodeState | None]] = {}
        self._touched: deque[tuple[int, str]] = deque()

    def after(self, hdr: TxnHeader, txn: object) -> int | None:
        """Account for `txn` and return the tree digest once it is applied; None for a failed
        single operation, whose log entry Apache writes without a digest."""
        if hdr.type == Op.ERROR:
            return None
        self._prune()
        total = self.digest
        if hdr.type == Op.MULTI and isinstance(txn, MultiTxn):
            if not any(kind == Op.ERROR for kind, _ in txn.txns):  # a failed multi changes nothing
                for kind, sub in txn.txns:
                    total += self._one(kind, sub, hdr)
        else:
            total += self._one(hdr.type, txn, hdr)
        self.digest = signed64(total)
        return self.digest

    # ------------------------------------------------------------ overlay

    def _prune(self) -> None:
        applied = self.tree.last_processed_zxid
        touched, overlay = self._touched, self._overlay
        while touched and touched[0][0] <= applied:
            zxid, path = touched.popleft()
            entry = overlay.get(path)
            if entry is not None and entry[0] == zxid:
                del overlay[path]

    def _get(self, path: str) -> NodeState | None:
        entry = self._overlay.get(path, _MISSING)
        if entry is not _MISSING:
            return entry[1]  # type: ignore[index]
        node = self.tree.nodes.get(path)
        return node_state(node) if node is not None else None

    def _put(self, path: str, zxid: int, state: NodeState | None) -> int:
        """Record the new state; return the change it makes to the tree digest."""
        old = self._get(path)
        self._overlay[path] = (zxid, state)
        self._touched.append((zxid, path))
        delta = state_digest(path, state) if state is not None else 0
        return delta - (state_digest(path, old) if old is not None else 0)

    # ------------------------------------------------------------ txn effects

    def _one(self, kind: int, txn: object, hdr: TxnHeader) -> int:
        zxid = hdr.zxid
        if isinstance(txn, CreateTxn):
            return self._create(kind, txn, hdr)
        if isinstance(txn, DeleteTxn):
            return self._delete(txn.path, zxid)
        if isinstance(txn, SetDataTxn) and kind == Op.SET_DATA:
            s = self._get(txn.path)
            if s is None:
                return 0
            return self._put(txn.path, zxid, (txn.data or b"", s[1], zxid, s[3], s[4], hdr.time, txn.version,
                                              s[7], s[8], s[9]))
        if isinstance(txn, SetACLTxn):
            s = self._get(txn.path)
            if s is None:
                return 0
            return self._put(txn.path, zxid, (*s[:8], txn.version, s[9]))
        if kind == Op.CLOSE_SESSION and isinstance(txn, CloseSessionTxn):
            return sum(self._delete(p, zxid) for p in txn.paths_to_delete)
        return 0  # createSession, error, check: the tree does not change

    def _create(self, kind: int, txn: CreateTxn, hdr: TxnHeader) -> int:
        zxid = hdr.zxid
        parent_path = parent_of(txn.path)
        parent = self._get(parent_path)
        if parent is None or self._get(txn.path) is not None:
            return 0
        delta = 0
        cversion = txn.parent_cversion if txn.parent_cversion != -1 else parent[7] + 1
        if cversion > parent[7]:
            delta += self._put(parent_path, zxid, (*parent[:3], zxid, *parent[4:7], cversion, *parent[8:]))
        if kind == Op.CREATE_CONTAINER:
            owner = CONTAINER_EPHEMERAL_OWNER
        elif kind == Op.CREATE_TTL:
            owner = ttl_owner(txn.ttl)
        else:
            owner = hdr.client_id if txn.ephemeral else 0
        t = hdr.time
        return delta + self._put(txn.path, zxid, (txn.data or b"", zxid, zxid, zxid, t, t, 0, 0, 0, owner))

    def _delete(self, path: str, zxid: int) -> int:
        parent_path = parent_of(path)
        parent = self._get(parent_path)
        delta = 0
        if parent is not None and zxid > parent[3]:
            delta += self._put(parent_path, zxid, (*parent[:3], zxid, *parent[4:]))
        if self._get(path) is not None:
            delta += self._put(path, zxid, None)
        return delta
