"""What the simulated clients saw: one record per operation, for the checkers.

Each operation is invoked at a virtual time and completes at a later one with an outcome:
OK (with its result), a definite ZooKeeper error (NoNode, BadVersion, NodeExists, ... - the
operation had no effect, or for a read, that is what it read), or UNKNOWN (connection loss or
a timeout: the write may or may not have been applied; `completed` is None). Checkers live
outside the code under test and judge only these records and what the members' logs hold.

Many things happen in one virtual millisecond, so every arrival a client records (a reply
completing an operation, a watch event) also takes the next number of one counter, `seq`:
the checkers order replies and events of a session by it, never by time alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple


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
    seq: int | None = None  # arrival order of its reply among everything recorded (None: no reply)
    xid: int | None = None  # the request's xid once sent: a write's txn carries it as cxid


class Stat(NamedTuple):
    """A znode's Stat as a client receives it (zookeeper.jute order)."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    data_length: int
    num_children: int
    pzxid: int


# Results by kind (OK outcome): "get" (data, Stat); "exists" Stat; "children" sorted list of names,
# or (names, Stat) when args["stat"]; "create" (created path, Stat or None); "set" Stat;
# "delete", "close", "add_watch" None; "sync" the path; "multi" a list of (type, err, payload)
# per op, payload as for the single op (error results carry err, payload None); "session" the
# new session id. A multi whose ops failed is ERROR with that list as its result.


class Event(NamedTuple):
    """A watch notification as a client received it."""

    client: int
    session_id: int
    time: int  # virtual ms
    type: int  # EventType
    path: str
    zxid: int  # the notification header's zxid (-1 when the server sent none)
    seq: int  # arrival order, shared with Operation.seq
    member: int | None = None


@dataclass
class History:
    ops: list[Operation] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # What a client received that no correct server sends (a reply to no request, bytes that do
    # not decode): (client, virtual ms, member, description). The client drops that connection.
    anomalies: list[tuple[int, int, int | None, str]] = field(default_factory=list)
    seq: int = 0

    def invoke(self, client: int, session_id: int | None, kind: str, path: str, args: dict[str, Any],
               now: int) -> Operation:
        op = Operation(len(self.ops), client, session_id, kind, path, args, now)
        self.ops.append(op)
        return op

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def complete(self, op: Operation, now: int, outcome: Outcome, *, error: int = 0, result: Any = None,
                 zxid: int | None = None, member: int | None = None) -> None:
        """Record the end of `op`; an UNKNOWN one keeps `completed` None and takes no seq."""
        op.outcome = outcome
        op.member = member
        if outcome is Outcome.UNKNOWN:
            return
        op.completed = now
        op.error = error
        op.result = result
        op.zxid = zxid
        op.seq = self.next_seq()

    def event(self, client: int, session_id: int, now: int, etype: int, path: str, zxid: int,
              member: int | None) -> Event:
        ev = Event(client, session_id, now, etype, path, zxid, self.next_seq(), member)
        self.events.append(ev)
        return ev
