"""Checkers: pure functions over a History and the members' final state, returning violations.

They live outside the code under test: txns are decoded with the jute codec, and what they
mean is worked out by the checkers' own model (model.py), never by the server's DataTree or
Preparer. `check_all` runs every checker; each is also callable on its own.
"""

from __future__ import annotations

from ..history import History
from .base import Committed, MemberState, NodeView, Violation
from .consistency import check_reads, check_session_order, check_sync
from .durability import check_acknowledged, check_committed, check_refused
from .linearizable import DEFAULT_BUDGET, check_linearizable
from .replicas import check_replicas
from .sessions import check_ephemerals, check_sequential
from .watches import check_watches

__all__ = ["Committed", "MemberState", "NodeView", "Violation", "check_all", "check_client"]


def check_client(history: History) -> list[Violation]:
    """What a client received that no correct server sends."""
    return [Violation("client", f"client {client} at {t} ms from member {member}: {what}")
            for client, t, member, what in history.anomalies]


def check_all(history: History, members: list[MemberState], *, quiet: bool = True,
              budget: int = DEFAULT_BUDGET, journal: list[tuple[int, bytes]] | None = None) -> list[Violation]:
    """Every checker. `quiet`: the world has healed and settled, so live members must agree on
    their final trees and hold no ephemeral of a dead session. `journal`: see Committed.merge."""
    committed = Committed.merge(members, journal)
    return [
        *check_client(history),
        *check_replicas(members, committed, quiet),
        *check_acknowledged(history, members),
        *check_committed(members, journal or []),
        *check_refused(history, committed),
        *check_session_order(history),
        *check_sync(history),
        *check_reads(history, committed),
        *check_linearizable(history, committed, budget),
        *check_ephemerals(members, committed, quiet),
        *check_sequential(history, committed),
        *check_watches(history),
    ]
