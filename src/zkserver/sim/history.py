"""What the simulated clients saw: one record per operation, for the checkers.

Each operation is invoked at a virtual time and completes at a later one with an outcome:
OK (with its result), a definite ZooKeeper error (NoNode, BadVersion, NodeExists, ... - the
operation had no effect, or for a read, that is what it read), or UNKNOWN (connection loss or
a timeout: the write may or may not have been applied; `completed` is None). Checkers live
outside the code under test and judge only these records and what the members' logs hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Outcome(Enum):
    OK = "ok"
    ERROR = "error"  # a definite error code, in `error`
    UNKNOWN = "unknown"  # connection loss / timeout: may or may not have happened


@dataclass(slots=True)
class Operation:
    op_id: int
    client: int  # simulated client number
    session_id: int | None  # the session it was sent on (None: no session yet)
    kind: str  # "create", "delete", "set", "get", "exists", "children", "multi", "sync", "check", ...
    path: str
    args: dict[str, Any]  # data, version, flags (ephemeral/sequential/container/ttl), sub-ops of a multi, watch
    invoked: int  # virtual ms
    completed: int | None = None  # None while pending or for UNKNOWN
    outcome: Outcome | None = None
    error: int = 0  # the ZooKeeper error code when outcome is ERROR
    result: Any = None  # data+stat, created path, children, multi results, ...
    zxid: int | None = None  # the reply header's zxid
    member: int | None = None  # the server it was answered by


@dataclass
class History:
    ops: list[Operation] = field(default_factory=list)
    # (client, session_id, virtual ms, event type, path, zxid of the notification)
    events: list[tuple[int, int, int, int, str, int]] = field(default_factory=list)

    def invoke(self, client: int, session_id: int | None, kind: str, path: str, args: dict[str, Any],
               now: int) -> Operation:
        op = Operation(len(self.ops), client, session_id, kind, path, args, now)
        self.ops.append(op)
        return op
