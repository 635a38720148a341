"""Watches: a one-shot watch fires at most once, and before the data that triggered it is seen.

Theory of operation. Per session, the replies and notifications are walked in arrival order
(`seq`). A reply arms one-shot watches as the Java client records them: getData OK and exists
OK arm a data watch, exists NoNode arms one too (the server keeps both in its data table),
getChildren OK arms a child watch; an UNKNOWN request arms nothing (the server dropped what it
armed with the connection). A notification consumes what it fires: NodeCreated and
NodeDataChanged a data watch, NodeChildrenChanged a child watch, NodeDeleted both; one that
finds nothing armed fired twice, or never was set. Paths under a persistent watch (addWatch)
of the session, or a recursive one above them, fire any number of times and are exempt.

Ordering: a notification for a change at zxid z must reach its session before any reply on
that path carrying a zxid >= z (the server sends it when it applies z, ahead of every reply it
makes after). Catch-up notifications of SetWatches carry no zxid (-1) and are not ordered.
"""

from __future__ import annotations

from ...jute.codes import AddWatchMode, Err, EventType
from ..history import Event, History, Operation, Outcome
from .base import Violation, op_specs

_DATA_EVENTS = (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED)


def _ancestors_or_self(path: str) -> list[str]:
    out = [path]
    while path != "/":
        path = path[: path.rfind("/")] or "/"
        out.append(path)
    return out


class _SessionWatches:
    def __init__(self) -> None:
        self.data: set[str] = set()
        self.child: set[str] = set()
        self.persistent: set[str] = set()
        self.recursive: set[str] = set()

    def arm(self, o: Operation) -> None:
        if o.kind == "add_watch" and o.outcome is Outcome.OK:
            modes = self.recursive if o.args["mode"] == AddWatchMode.PERSISTENT_RECURSIVE else self.persistent
            modes.add(o.path)
        if not o.args.get("watch"):
            return
        ok = o.outcome is Outcome.OK
        if (o.kind in ("get", "exists") and ok) or (o.kind == "exists" and o.error == Err.NO_NODE):
            self.data.add(o.path)
        elif o.kind == "children" and ok:
            self.child.add(o.path)

    def exempt(self, ev: Event) -> bool:
        if ev.path in self.persistent:
            return True
        return ev.type != EventType.NODE_CHILDREN_CHANGED and any(
            p in self.recursive for p in _ancestors_or_self(ev.path))

    def consume(self, ev: Event) -> bool:
        """Disarm what `ev` fires; False when nothing it could fire was armed."""
        path = ev.path
        if ev.type in _DATA_EVENTS:
            armed = path in self.data
            self.data.discard(path)
        elif ev.type == EventType.NODE_CHILDREN_CHANGED:
            armed = path in self.child
            self.child.discard(path)
        elif ev.type == EventType.NODE_DELETED:
            armed = path in self.data or path in self.child
            self.data.discard(path)
            self.child.discard(path)
        else:
            return True  # not a node event
        return armed


def check_watches(history: History) -> list[Violation]:
    arrivals: dict[int, list[tuple[int, Operation | Event]]] = {}
    for o in history.ops:
        if o.session_id is not None and o.seq is not None and o.zxid is not None:
            arrivals.setdefault(o.session_id, []).append((o.seq, o))
    for ev in history.events:
        arrivals.setdefault(ev.session_id, []).append((ev.seq, ev))
    out = []
    for sid, items in arrivals.items():
        items.sort(key=lambda item: item[0])
        state = _SessionWatches()
        replied: dict[str, list[Operation]] = {}  # path -> replies on it so far
        for _, item in items:
            if isinstance(item, Operation):
                state.arm(item)
                for spec in op_specs(item):
                    replied.setdefault(spec["path"], []).append(item)
                continue
            ev = item
            exempt = state.exempt(ev)
            if not state.consume(ev) and not exempt:
                out.append(Violation("watches", f"session 0x{sid:x}: event type {ev.type} on {ev.path} (zxid "
                                     f"{ev.zxid:#x}) from member {ev.member} found no watch armed for it: fired twice, "
                                     "or never set"))
            if ev.zxid > 0:
                late = [o for o in replied.get(ev.path, ()) if o.zxid >= ev.zxid]  # type: ignore[operator]
                if late:
                    o = late[0]
                    out.append(Violation("watches", f"session 0x{sid:x}: the reply to op {o.op_id} ({o.kind} {o.path}, "
                                         f"zxid {o.zxid:#x}) arrived before the event type {ev.type} for the change at "
                                         f"zxid {ev.zxid:#x}", (o.op_id,)))
    return out
