"""Apache ZooKeeper's tree digest (DigestCalculator, version 2), full and predicted.

Theory of operation. A node's digest is CRC32 over its path (the root as ""), its data and
60 bytes of stat (czxid mzxid pzxid ctime mtime version cversion aversion ephemeralOwner);
nodes under "/zookeeper/" count as 0 ("/zookeeper" itself counts). The tree digest is the
wrapping 64-bit sum of all node digests.

Every txn-log entry carries the digest of the tree *after* that txn. Our writes reach the log
before the tree applies them (the tree holds durable state only), so `DigestPredictor` works
out each txn's effect on the digest from the txn alone, over an overlay of the nodes touched by
txns still in flight, and falls back to the committed tree for the rest. An entry stays right
after the tree has applied its txn, because every later change to that node passes through
here first: up to _RETAINED entries are kept as a cache of hot nodes' digests, which a txn
on a node otherwise recomputes from the tree. No hook in DataTree is needed.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from collections.abc import Callable

from ..jute.codes import Op
from ..jute.records import (
    CloseSessionTxn,
    CreateTxn,
    DeleteTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
)
from ..tree.datatree import DataTree, created_owner, parent_of

DIGEST_VERSION = 2
DIGEST_LOG_INTERVAL = 128  # Apache's DataTree.DIGEST_LOG_INTERVAL
_RETAINED = 4096  # overlay entries kept past their txn's apply (~200 bytes each)
EXCLUDED_PREFIX = "/zookeeper/"  # nodes under it count 0
_EXCLUDED_LEN = len(EXCLUDED_PREFIX)
# czxid mzxid pzxid ctime mtime version cversion aversion ephemeralOwner: Apache's order.
DIGEST_STAT = struct.Struct(">qqqqqiiiq")
_MASK64 = (1 << 64) - 1
_MAX64 = (1 << 63) - 1

# A node's stat in DIGEST_STAT's order, so that it packs without reordering.
Stat = tuple[int, int, int, int, int, int, int, int, int]


def signed64(v: int) -> int:
    """Java's long arithmetic wraps; so does the tree digest."""
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def _key_crc(path: str) -> int | None:
    """CRC32 of the node's key, where its digest starts; None for the nodes that count 0."""
    # A slice compare costs about half of str.startswith's method call.
    if path[:_EXCLUDED_LEN] == EXCLUDED_PREFIX:
        return None
    return zlib.crc32(path.encode()) if path != "/" else 0  # the root's key is ""; crc32(b"") is 0


def tree_digest(tree: DataTree) -> int:
    """The digest of the whole tree, computed from scratch (start-up, snapshots, checks).
    Written out in one loop: this walks a million znodes at start-up."""
    total = 0
    crc32, pack, excluded = zlib.crc32, DIGEST_STAT.pack, EXCLUDED_PREFIX
    for path, n in tree.nodes.items():
        if path.startswith(excluded):
            continue
        crc = crc32(b"" if path == "/" else path.encode("utf-8"))
        if n.data:
            crc = crc32(n.data, crc)
        total += crc32(pack(n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version, n.cversion, n.aversion,
                            n.owner), crc)
    return signed64(total)


# An overlay entry: (zxid of the txn that last touched the node, its digest, _key_crc, CRC32 of
# key and data, stat); stat None: that txn deleted it. The CRCs let a change that keeps the data
# (a child created or deleted, an ACL set) digest the node with one pack and one crc32.
_Entry = tuple[int, int, "int | None", "int | None", "Stat | None"]


class DigestPredictor:
    """The tree digest after each txn handed to the log, ahead of the tree applying it."""

    def __init__(self, tree: DataTree, digest: int | None = None):
        self.tree = tree
        self.digest = tree_digest(tree) if digest is None else digest
        self._overlay: dict[str, _Entry] = {}
        self._touched: deque[tuple[int, str]] = deque()  # (zxid, path) in zxid order
        # Told (zxid, digest) for every DIGEST_LOG_INTERVAL-th zxid (the `hash` command's log).
        self.on_interval: Callable[[int, int], None] | None = None

    def after(self, hdr: TxnHeader, txn: object) -> int | None:
        """Account for `txn` and return the tree digest once it is applied; None for a failed
        single operation, whose log entry Apache writes without a digest."""
        kind = hdr.type
        if kind == _ERROR:
            return None
        touched = self._touched
        if touched and touched[0][0] <= self.tree.last_processed_zxid:
            self._prune()
        if kind == _MULTI and txn.__class__ is MultiTxn:
            delta = 0
            subs = txn.txns  # type: ignore[attr-defined]
            if not any(k == _ERROR for k, _ in subs):  # a failed multi changes nothing
                for k, sub in subs:
                    delta += self._one(k, sub, hdr)
        else:
            delta = self._one(kind, txn, hdr)
        # Each node changes the sum by less than 2**32: one conditional wrap is enough.
        total = self.digest + delta
        if total > _MAX64:
            total -= 1 << 64
        elif total < -_MAX64 - 1:
            total += 1 << 64
        self.digest = total
        if not hdr.zxid % DIGEST_LOG_INTERVAL and self.on_interval is not None:
            self.on_interval(hdr.zxid, total)
        return total

    # ------------------------------------------------------------ overlay

    def _prune(self) -> None:
        applied = self.tree.last_processed_zxid
        touched, overlay = self._touched, self._overlay
        if touched[-1][0] <= applied:  # the usual case: the tree caught up with every txn
            touched.clear()
            if len(overlay) > _RETAINED:
                overlay.clear()
            return
        if len(overlay) <= _RETAINED:  # applied entries stay: they are the committed state
            while touched[0][0] <= applied:
                touched.popleft()
            return
        while touched[0][0] <= applied:
            zxid, path = touched.popleft()
            entry = overlay.get(path)
            if entry is not None and entry[0] == zxid:
                del overlay[path]

    def _current(self, path: str) -> _Entry | None:
        """The node as the txns in flight leave it; None or a stat of None when absent."""
        entry = self._overlay.get(path)
        if entry is not None:
            return entry
        n = self.tree.nodes.get(path)
        if n is None:
            return None
        stat = (n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version, n.cversion, n.aversion, n.owner)
        key = _key_crc(path)
        if key is None:
            return (0, 0, None, None, stat)
        head = zlib.crc32(n.data, key) if n.data else key
        return (0, zlib.crc32(DIGEST_STAT.pack(*stat), head), key, head, stat)

    def _put(self, path: str, zxid: int, key: int | None, head: int | None, stat: Stat | None, old: int) -> int:
        """Record the node's new state; return the change to the tree digest from its `old` digest."""
        new = zlib.crc32(DIGEST_STAT.pack(*stat), head) if stat is not None and key is not None else 0
        self._overlay[path] = (zxid, new, key, head, stat)
        self._touched.append((zxid, path))
        return new - old

    # ------------------------------------------------------------ txn effects

    def _one(self, kind: int, txn: object, hdr: TxnHeader) -> int:
        cls = txn.__class__  # exact classes, the common ones first: cheaper than isinstance chains
        if cls is SetDataTxn:
            if kind != _SET_DATA:  # reconfig's SetDataTxn: Apache leaves the digest alone
                return 0
            path = txn.path  # type: ignore[attr-defined]
            cur = self._current(path)
            if cur is None or (s := cur[4]) is None:
                return 0
            zxid = hdr.zxid
            stat = (s[0], zxid, s[2], s[3], hdr.time, txn.version, s[6], s[7], s[8])  # type: ignore[attr-defined]
            key = cur[2]
            data = txn.data  # type: ignore[attr-defined]
            head = zlib.crc32(data, key) if data and key is not None else key
            return self._put(path, zxid, key, head, stat, cur[1])
        if cls is CreateTxn:
            return self._create(kind, txn, hdr)  # type: ignore[arg-type]
        if cls is DeleteTxn:
            return self._delete(txn.path, hdr.zxid)  # type: ignore[attr-defined]
        if cls is SetACLTxn:
            cur = self._current(txn.path)  # type: ignore[attr-defined]
            if cur is None or (s := cur[4]) is None:
                return 0
            return self._put(txn.path, hdr.zxid, cur[2], cur[3], (*s[:7], txn.version, s[8]),  # type: ignore[attr-defined]
                             cur[1])
        if cls is CloseSessionTxn and kind == _CLOSE_SESSION:
            return sum(self._delete(p, hdr.zxid) for p in txn.paths_to_delete)  # type: ignore[attr-defined]
        return 0  # createSession, error, check: the tree does not change

    def _create(self, kind: int, txn: CreateTxn, hdr: TxnHeader) -> int:
        zxid = hdr.zxid
        path = txn.path
        parent_path = parent_of(path)
        parent = self._current(parent_path)
        if parent is None or (ps := parent[4]) is None:
            return 0
        cur = self._current(path)
        if cur is not None and cur[4] is not None:
            return 0
        delta = 0
        cversion = txn.parent_cversion if txn.parent_cversion != -1 else ps[6] + 1
        if cversion > ps[6]:
            delta += self._put(parent_path, zxid, parent[2], parent[3],
                               (ps[0], ps[1], zxid, ps[3], ps[4], ps[5], cversion, ps[7], ps[8]), parent[1])
        owner = created_owner(kind, txn, hdr.client_id)
        key = _key_crc(path)
        head = zlib.crc32(txn.data, key) if txn.data and key is not None else key
        t = hdr.time
        return delta + self._put(path, zxid, key, head, (zxid, zxid, zxid, t, t, 0, 0, 0, owner),
                                 cur[1] if cur is not None else 0)

    def _delete(self, path: str, zxid: int) -> int:
        parent_path = parent_of(path)
        parent = self._current(parent_path)
        delta = 0
        if parent is not None and (ps := parent[4]) is not None and zxid > ps[2]:
            delta += self._put(parent_path, zxid, parent[2], parent[3], (ps[0], ps[1], zxid, *ps[3:]), parent[1])
        cur = self._current(path)
        if cur is not None and cur[4] is not None:
            delta += self._put(path, zxid, cur[2], None, None, cur[1])
        return delta


# Plain ints read once: a class attribute lookup per txn is measurable on the write path.
_ERROR, _MULTI, _SET_DATA, _CLOSE_SESSION = Op.ERROR, Op.MULTI, Op.SET_DATA, Op.CLOSE_SESSION
