"""Lockstep differential runner: every Op goes to a reference server and a candidate server,
and the two answers are compared before the next Op is sent.

Per Op we compare an Outcome: the normalized result (value or exception class), the zxid in
the reply header, and the watch notifications the acting session had received by the time
its reply arrived. Then every session on each side does a ``sync``; ZooKeeper sends a
session's notifications before any later reply to that session, so once each sync has
answered, all notifications caused by the Op have arrived, and the per-session lists are
compared. No sleeps, no "settle time": delivery order alone makes it deterministic.
"""

from __future__ import annotations

import contextlib
import difflib
import pprint
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Watch

from tests.differential.normalize import Normalizer, event_name
from tests.differential.opgen import OpGenerator
from tests.differential.ops import Op

SESSION_TIMEOUT = 10.0
OP_TIMEOUT = 10.0
HISTORY_IN_REPORT = 12

Event = tuple[str, str, str]


class DifferentialMismatch(AssertionError):
    """The two servers answered the same Op differently."""


@dataclass(frozen=True)
class Outcome:
    result: Any
    reply_zxid: Any
    events: tuple[Event, ...]  # notifications the acting session had when its reply came


class Session:
    """A KazooClient whose watch notifications are recorded as they come off the socket.

    Why at the socket: kazoo hands notifications to watcher callables on another thread and
    merges watchers per path, so a callback log is neither ordered against replies nor one
    entry per server notification. kazoo's reader thread handles a notification before it
    reads the next reply, so when a call returns, every notification sent before its reply
    is already in ``events``.
    """

    def __init__(self, hosts: str, ordinal: int) -> None:
        self.ordinal = ordinal
        self.client = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT)
        self.events: list[Event] = []
        self._taken = 0
        self._record_notifications()
        self.client.start(timeout=SESSION_TIMEOUT)
        self.session_id: int = self.client.client_id[0]

    def _record_notifications(self) -> None:
        connection = self.client._connection
        original = getattr(connection, "_read_watch_event", None)
        if original is None:
            raise RuntimeError("kazoo changed: ConnectionHandler._read_watch_event is gone")

        def record(buffer: bytes, offset: int) -> None:
            watch, _ = Watch.deserialize(buffer, offset)
            self.events.append(event_name(watch.type, watch.state, watch.path))
            original(buffer, offset)

        connection._read_watch_event = record

    @staticmethod
    def watcher(event: object) -> None:
        """kazoo needs a callable to arm a watch; the notifications are recorded above."""

    def take_events(self) -> tuple[Event, ...]:
        """Notifications received since the previous call."""
        new = self.events[self._taken :]
        self._taken += len(new)
        return tuple(new)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.stop()
        with contextlib.suppress(Exception):
            self.client.close()


# --------------------------------------------------------------------------- executing Ops


def _wait(async_result: Any) -> Any:
    # A bounded wait: a server that never answers fails this step instead of hanging the run.
    return async_result.get(timeout=OP_TIMEOUT)


def _acl(op: Op) -> list | None:
    return list(op.acl) if op.acl is not None else None


def _children(session: Session, op: Op) -> Any:
    watch = session.watcher if op.watch else None
    result = _wait(session.client.get_children_async(op.path, watch, op.include_data))
    # ZooKeeper promises no order for children (Apache returns hash-set order).
    if op.include_data:
        names, stat = result
        return sorted(names), stat
    return sorted(result)


def _transaction(session: Session, op: Op) -> Any:
    txn = session.client.transaction()
    for sub in op.ops:
        if sub.kind == "create":
            txn.create(sub.path, sub.data, _acl(sub), sub.ephemeral, sub.sequence)
        elif sub.kind == "delete":
            txn.delete(sub.path, sub.version)
        elif sub.kind == "set":
            txn.set_data(sub.path, sub.data, sub.version)
        elif sub.kind == "check":
            txn.check(sub.path, sub.version)
        else:
            raise ValueError(f"not a transaction op: {sub.kind}")
    return _wait(txn.commit_async())


def _create(session: Session, op: Op, include_data: bool) -> Any:
    c = session.client
    return _wait(c.create_async(op.path, op.data, _acl(op), op.ephemeral, op.sequence, False, include_data))


EXECUTORS: dict[str, Callable[[Session, Op], Any]] = {
    "create": lambda s, op: _create(s, op, include_data=False),
    "create2": lambda s, op: _create(s, op, include_data=True),
    "delete": lambda s, op: _wait(s.client.delete_async(op.path, op.version)),
    "exists": lambda s, op: _wait(s.client.exists_async(op.path, s.watcher if op.watch else None)),
    "get": lambda s, op: _wait(s.client.get_async(op.path, s.watcher if op.watch else None)),
    "set": lambda s, op: _wait(s.client.set_async(op.path, op.data, op.version)),
    "get_children": _children,
    "get_acls": lambda s, op: _wait(s.client.get_acls_async(op.path)),
    "set_acls": lambda s, op: _wait(s.client.set_acls_async(op.path, _acl(op), op.version)),
    "sync": lambda s, op: _wait(s.client.sync_async(op.path)),
    "transaction": _transaction,
    "add_auth": lambda s, op: _wait(s.client.add_auth_async(op.scheme, op.credential)),
}


def execute(session: Session, op: Op) -> Any:
    """Run one Op; an exception is a result like any other."""
    try:
        return EXECUTORS[op.kind](session, op)
    except Exception as exc:
        return exc


# --------------------------------------------------------------------------- one server


class Side:
    """The sessions of one server, and the normalizer that knows their session ids."""

    def __init__(self, name: str, hosts: str, slots: int, rebase_zxids: bool = False) -> None:
        self.name = name
        self.hosts = hosts
        self.norm = Normalizer()
        self.sessions: list[Session] = []
        self._opened = 0
        try:
            for _ in range(slots):
                self.sessions.append(self._open())
            if rebase_zxids:
                self.norm.zxid.base = self._last_processed_zxid()
        except BaseException:
            self.shutdown()
            raise

    def _open(self) -> Session:
        session = Session(self.hosts, self._opened)
        self.norm.sessions.add(session.session_id, session.ordinal)
        self._opened += 1
        return session

    def _last_processed_zxid(self) -> int:
        # A read's reply header carries the server's last processed zxid.
        first = self.sessions[0]
        _wait(first.client.exists_async("/"))
        return first.client.last_zxid

    def perform(self, op: Op) -> Outcome:
        if op.kind == "close":
            return self._close_and_replace(op.slot)
        session = self.sessions[op.slot]
        raw = execute(session, op)
        return Outcome(
            result=self.norm.value(raw),
            reply_zxid=self.norm.zxid(session.client.last_zxid),
            events=session.take_events(),
        )

    def _close_and_replace(self, slot: int) -> Outcome:
        """End the slot's session (its ephemerals go) and open a new one in its place."""
        old = self.sessions[slot]
        old.close()
        # No reply zxid: kazoo resets last_zxid when it stops. The close's zxid still shows,
        # in the zxids of the next writes.
        outcome = Outcome(result=("closed", f"session#{old.ordinal}"), reply_zxid=None, events=old.take_events())
        self.sessions[slot] = self._open()
        return outcome

    def settle(self) -> list[tuple[Event, ...]]:
        """Sync every session, then return each one's notifications since the last call."""
        failures: dict[int, Event] = {}
        for slot, session in enumerate(self.sessions):
            result = execute(session, Op("sync", path="/"))
            if isinstance(result, Exception):
                failures[slot] = ("SyncFailed", type(result).__name__, "/")
        # A failed sync shows up as a pseudo-event, so it cannot hide missing notifications.
        return [
            session.take_events() + ((failures[slot],) if slot in failures else ())
            for slot, session in enumerate(self.sessions)
        ]

    def shutdown(self) -> None:
        for session in self.sessions:
            session.close()


# --------------------------------------------------------------------------- two servers


@dataclass
class Step:
    number: int
    op: Op
    outcome: Outcome
    settled: list[tuple[Event, ...]]


@dataclass
class Lockstep:
    """Drives two Sides with the same Ops and fails at the first difference."""

    reference: Side
    candidate: Side
    label: str  # e.g. "seed=7"; printed in every mismatch report
    history: list[Step] = field(default_factory=list)

    def step(self, op: Op) -> Outcome:
        number = len(self.history)
        ours = self.reference.perform(op)
        theirs = self.candidate.perform(op)
        self._compare(number, op, "reply", ours, theirs)
        settled = self.reference.settle()
        self._compare(number, op, "notifications per session after sync", settled, self.candidate.settle())
        self.history.append(Step(number, op, ours, settled))
        return ours

    def run(self, ops: Sequence[Op]) -> list[Outcome]:
        return [self.step(op) for op in ops]

    def close(self) -> None:
        self.reference.shutdown()
        self.candidate.shutdown()

    def __enter__(self) -> Lockstep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _compare(self, number: int, op: Op, what: str, ours: Any, theirs: Any) -> None:
        if ours != theirs:
            raise DifferentialMismatch(self._report(number, op, what, ours, theirs))

    def _report(self, number: int, op: Op, what: str, ours: Any, theirs: Any) -> str:
        left, right = _pretty(ours), _pretty(theirs)
        diff = difflib.unified_diff(
            left.splitlines(), right.splitlines(), self.reference.name, self.candidate.name, lineterm=""
        )
        recent = [_summary(step) for step in self.history[-HISTORY_IN_REPORT:]]
        return "\n".join(
            [
                f"differential mismatch ({self.label}) at step {number}: {what}",
                f"op: {op.describe()}",
                f"{self.reference.name}:\n{left}",
                f"{self.candidate.name}:\n{right}",
                "diff:",
                *diff,
                f"previous {len(recent)} steps (reference side):",
                *recent,
            ]
        )


def _pretty(value: Any) -> str:
    if isinstance(value, Outcome):
        value = {"result": value.result, "reply_zxid": value.reply_zxid, "events": value.events}
    return pprint.pformat(value, width=100, sort_dicts=False)


def _summary(step: Step) -> str:
    text = f"  {step.number}: {step.op.describe()} -> {step.outcome.result!r} zxid={step.outcome.reply_zxid}"
    if step.outcome.events or any(step.settled):
        text += f" events={step.outcome.events} settled={step.settled}"
    return text


# --------------------------------------------------------------------------- random runs


def run_random(
    reference: tuple[str, str],
    candidate: tuple[str, str],
    seed: int,
    n_ops: int,
    slots: int = 3,
) -> Lockstep:
    """Run ``n_ops`` generated Ops against two fresh servers, given as (name, hosts) pairs.

    Servers must be fresh: zxids are compared as absolute numbers.
    """
    generator = OpGenerator(seed, slots)
    ref_side = Side(reference[0], reference[1], slots)
    try:
        cand_side = Side(candidate[0], candidate[1], slots)
    except BaseException:
        ref_side.shutdown()
        raise
    with Lockstep(ref_side, cand_side, label=f"seed={seed}") as lockstep:
        for op in generator.setup():
            generator.observe(op, lockstep.step(op).result)
        for _ in range(n_ops):
            op = generator.next_op()
            generator.observe(op, lockstep.step(op).result)
    return lockstep
