"""Reading what a member holds into the checkers' terms (the only code here that touches a
server's structures, and only to read them)."""

from __future__ import annotations

from ...jute.records import STAT, TxnHeader
from ...storage.digest import tree_digest
from ...tree.datatree import DataTree
from ..history import Stat
from .base import MemberState, NodeView


def txn_bytes(hdr: TxnHeader, txn: object) -> bytes:
    """A committed txn as MemberState holds it: the log entry's header and record."""
    return hdr.encode() + (txn.encode() if txn is not None else b"")  # type: ignore[attr-defined]


def tree_view(tree: DataTree) -> dict[str, NodeView]:
    """Every node as a client reads it: its data and the Stat the server would send."""
    return {path: NodeView(node.data, Stat(*STAT.unpack(tree.client_stat(node)))) for path, node in tree.nodes.items()}


def member_state(member: int, tree: DataTree, txns: list[tuple[TxnHeader, object]], sessions: set[int],
                 *, complete_from: int = 0, live: bool = True) -> MemberState:
    """A member's final state from its tree, the txns it committed (in order) and its live sessions."""
    return MemberState(member, [(hdr.zxid, txn_bytes(hdr, txn)) for hdr, txn in txns], complete_from,
                       tree_view(tree), tree_digest(tree), set(sessions), live)
