"""Turn kazoo results into plain, comparable values.

Only what legitimately differs between two correct servers is normalized away:
- ctime/mtime are wall-clock times; we keep only "zero or not" (Apache's built-in nodes have 0).
- session ids (and ephemeralOwner) are random per server; they become the session's ordinal
  in the run ("session#3"), assigned in creation order, which is the same on both sides.
zxids are compared exactly (optionally relative to a per-scenario base, see ZxidBase).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL

EVENT_TYPES = {
    -1: "None",
    1: "NodeCreated",
    2: "NodeDeleted",
    3: "NodeDataChanged",
    4: "NodeChildrenChanged",
    5: "DataWatchRemoved",
    6: "ChildWatchRemoved",
    7: "PersistentWatchRemoved",
}
KEEPER_STATES = {
    -112: "Expired",
    -1: "Unknown",
    0: "Disconnected",
    3: "SyncConnected",
    4: "AuthFailed",
    5: "ConnectedReadOnly",
    6: "SaslAuthenticated",
}


@dataclass
class ZxidBase:
    """Zxids from ``base`` on are shown as +offset; older ones (before this run) as they are.

    With a fresh server the base is 0 and every zxid is compared as is. Scenarios that share
    one server per module rebase, so one diverging scenario cannot fail all later ones.
    """

    base: int = 0

    def __call__(self, zxid: int) -> int | str:
        if self.base == 0:
            return zxid
        return f"+{zxid - self.base}" if zxid >= self.base else f"pre:{zxid:#x}"


@dataclass
class SessionNames:
    """Maps a server's session ids to the run's session ordinals."""

    ordinals: dict[int, int] = field(default_factory=dict)

    def add(self, session_id: int, ordinal: int) -> None:
        self.ordinals[session_id] = ordinal

    def __call__(self, session_id: int) -> int | str:
        if session_id == 0:
            return 0
        if session_id in self.ordinals:
            return f"session#{self.ordinals[session_id]}"
        return f"unknown-session:{session_id:#x}"


@dataclass
class Normalizer:
    sessions: SessionNames = field(default_factory=SessionNames)
    zxid: ZxidBase = field(default_factory=ZxidBase)

    def stat(self, stat: ZnodeStat) -> dict[str, Any]:
        return {
            "czxid": self.zxid(stat.czxid),
            "mzxid": self.zxid(stat.mzxid),
            "pzxid": self.zxid(stat.pzxid),
            "ctime": "zero" if stat.ctime == 0 else "set",
            "mtime": "zero" if stat.mtime == 0 else "set",
            "version": stat.version,
            "cversion": stat.cversion,
            "aversion": stat.aversion,
            "ephemeralOwner": self.sessions(stat.ephemeralOwner),
            "dataLength": stat.dataLength,
            "numChildren": stat.numChildren,
        }

    def value(self, value: Any) -> Any:
        """Recursively normalize a result; exceptions become ("error", ClassName)."""
        if isinstance(value, BaseException):
            return ("error", type(value).__name__)
        if isinstance(value, ZnodeStat):
            return self.stat(value)
        if isinstance(value, ACL):
            return (value.perms, value.id.scheme, value.id.id)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.value(item) for item in value)
        return value


def event_name(event_type: int, state: int, path: str) -> tuple[str, str, str]:
    return (
        EVENT_TYPES.get(event_type, f"type{event_type}"),
        KEEPER_STATES.get(state, f"state{state}"),
        path,
    )
