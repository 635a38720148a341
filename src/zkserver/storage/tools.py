"""Human-readable dumps of txn logs and snapshots (`zkserver txnlog-dump|snapshot-dump`).

The output follows the spirit of Apache's TxnLogToolkit and SnapshotFormatter: one line per
txn, one block per znode; it is for people, not a stable format.
"""

from __future__ import annotations

import datetime
from typing import TextIO

from ..jute.codes import Op
from .digest import tree_digest
from .snapshot import read_snapshot
from .txnlog import LogFile


def _op_name(kind: int) -> str:
    try:
        return Op.name_of(kind).lower()
    except ValueError:
        return f"type{kind}"


def _when(ms: int) -> str:
    try:
        return datetime.datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return str(ms)


def dump_txnlog(path: str, out: TextIO) -> int:
    """Print every entry; return 0, or 1 when the file ends with a bad entry."""
    lf = LogFile(path)
    count = 0
    for e in lf:
        h = e.hdr
        digest = f" digest={e.digest[1]}" if e.digest else ""
        out.write(f"{_when(h.time)} session 0x{h.client_id & 0xFFFFFFFFFFFFFFFF:x} cxid 0x{h.cxid & 0xFFFFFFFF:x} "
                  f"zxid 0x{h.zxid:x} {_op_name(h.type)} {e.txn!r}{digest}\n")
        count += 1
    out.write(f"EOF reached after {count} txns.\n")
    if lf.problem:
        out.write(f"Stopped at offset {lf.end}: {lf.problem}\n")
        return 1
    return 0


def dump_snapshot(path: str, out: TextIO, with_data: bool = False) -> int:
    snap = read_snapshot(path, extended_types=True)
    tree = snap.tree
    out.write(f"ZNode Details (count={len(tree.nodes)}):\n")
    for p in sorted(tree.nodes):
        n = tree.nodes[p]
        out.write(f"----\n{p}\n  cZxid = 0x{n.czxid:x}\n  ctime = {_when(n.ctime)}\n  mZxid = 0x{n.mzxid:x}\n"
                  f"  mtime = {_when(n.mtime)}\n  pZxid = 0x{n.pzxid:x}\n  cversion = {n.cversion}\n"
                  f"  dataVersion = {n.version}\n  aclVersion = {n.aversion}\n"
                  f"  ephemeralOwner = 0x{n.owner & 0xFFFFFFFFFFFFFFFF:x}\n  dataLength = {len(n.data or b'')}\n")
        if with_data:
            out.write(f"  data = {n.data!r}\n")
    out.write("----\nSession Details (sid, timeout, ephemeralCount):\n")
    for sid, timeout in snap.sessions.items():
        out.write(f"0x{sid & 0xFFFFFFFFFFFFFFFF:x}, {timeout}, {len(tree.ephemerals.get(sid, ()))}\n")
    out.write(f"----\nLast zxid: 0x{snap.zxid:x}\n")
    if snap.digest:
        z, v, d = snap.digest
        ours = tree_digest(tree)
        out.write(f"Digest: zxid 0x{z:x} version {v} value {d}; recomputed {ours}"
                  f"{'' if z != snap.zxid or ours == d else ' (MISMATCH)'}\n")
    return 0
