"""Session table with tick-bucketed expiry, as Apache's SessionTrackerImpl.

Expiry times are rounded up to the next multiple of the tick, so one timer pass expires a
whole bucket. Times are milliseconds of the injected clock; nothing here reads a clock.
Passwords are an HMAC of the session id under a per-server secret: a client cannot derive
another session's password (Apache's can be recomputed from the id), yet the server can
re-derive them after a restart without storing them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from .jute.codes import CONTAINER_EPHEMERAL_OWNER

PASSWORD_LEN = 16


_JAVA_RANDOM_MULTIPLIER = 0x5DEECE66D
_JAVA_RANDOM_MASK = (1 << 48) - 1
_APACHE_SUPER_SECRET = 0xB3415C00  # ZooKeeperServer.superSecret


def apache_session_password(session_id: int) -> bytes:
    """The password Apache's ZooKeeperServer.generatePasswd gives a session: 16 bytes of
    java.util.Random(sessionId ^ 0xB3415C00).nextBytes. Anyone who knows the id can compute it;
    a member of a mixed ensemble needs it to accept a session an Apache member created."""
    seed = (session_id ^ _APACHE_SUPER_SECRET ^ _JAVA_RANDOM_MULTIPLIER) & _JAVA_RANDOM_MASK
    out = bytearray()
    for _ in range(PASSWORD_LEN // 4):
        seed = (seed * _JAVA_RANDOM_MULTIPLIER + 0xB) & _JAVA_RANDOM_MASK
        out += (seed >> 16).to_bytes(4, "little")  # nextInt(), its low byte first
    return bytes(out)


@dataclass(slots=True)
class Session:
    session_id: int
    timeout: int
    expire_at: int
    closing: bool = False
    # The live connection serving this session, if any (opaque to this module).
    connection: object | None = None
    # A local session (localSessionsEnabled): known to this server only, no txn made it, it
    # is not in snapshots and expires here without a txn.
    local: bool = False


def initial_session_id(server_id: int, now_ms: int) -> int:
    """Apache's layout: the server id in the top byte, time bits below it."""
    sid = ((now_ms << 24) & 0xFFFFFFFFFFFFFFFF) >> 8
    sid |= (server_id & 0xFF) << 56
    if sid >= 1 << 63:
        sid -= 1 << 64
    if sid == CONTAINER_EPHEMERAL_OWNER:
        sid += 1
    return sid


class SessionTable:
    def __init__(self, tick_ms: int, server_id: int, secret: bytes, now_ms: int):
        self.tick_ms = tick_ms
        self.secret = secret
        # In an ensemble every member must accept every member's sessions, Apache's included:
        # passwords are then Apache's derivation (docs/compatibility.md).
        self.apache_passwords = False
        self.sessions: dict[int, Session] = {}
        self.next_id = initial_session_id(server_id, now_ms)
        # expire_at -> session ids due then
        self.buckets: dict[int, set[int]] = {}

    def _round_up(self, t: int) -> int:
        return (t // self.tick_ms + 1) * self.tick_ms

    def password(self, session_id: int) -> bytes:
        if self.apache_passwords:
            return apache_session_password(session_id)
        mac = hmac.new(self.secret, session_id.to_bytes(8, "big", signed=True), hashlib.sha256)
        return mac.digest()[:PASSWORD_LEN]

    def check_password(self, session_id: int, passwd: bytes) -> bool:
        return hmac.compare_digest(self.password(session_id), passwd)

    def allocate_id(self) -> int:
        sid = self.next_id
        self.next_id += 1
        return sid

    def add(self, session_id: int, timeout: int, now_ms: int) -> Session:
        s = Session(session_id, timeout, 0)
        self.sessions[session_id] = s
        self._reschedule(s, now_ms)
        return s

    def touch(self, session_id: int, now_ms: int) -> bool:
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return False
        self._reschedule(s, now_ms)
        return True

    def _reschedule(self, s: Session, now_ms: int) -> None:
        new_at = self._round_up(now_ms + s.timeout)
        if new_at == s.expire_at:
            return
        if s.expire_at:
            bucket = self.buckets.get(s.expire_at)
            if bucket is not None:
                bucket.discard(s.session_id)
                if not bucket:
                    del self.buckets[s.expire_at]
        s.expire_at = new_at
        self.buckets.setdefault(new_at, set()).add(s.session_id)

    def remove(self, session_id: int) -> None:
        s = self.sessions.pop(session_id, None)
        if s is None:
            return
        bucket = self.buckets.get(s.expire_at)
        if bucket is not None:
            bucket.discard(session_id)
            if not bucket:
                del self.buckets[s.expire_at]

    def timeouts(self) -> dict[int, int]:
        """Every global session's timeout: what snapshots and SNAP streams hold."""
        return {sid: s.timeout for sid, s in self.sessions.items() if not s.local}

    def expired(self, now_ms: int, local_only: bool = False) -> list[Session]:
        """Sessions whose bucket time has passed; they are marked closing, not removed.
        `local_only`: a learner expires its local sessions only (the leader owns the rest,
        which stay in their buckets here)."""
        due: list[Session] = []
        for at in sorted(t for t in self.buckets if t <= now_ms):
            bucket = self.buckets[at]
            for sid in sorted(bucket):
                s = self.sessions.get(sid)
                if s is None or (local_only and not s.local):
                    continue
                bucket.discard(sid)
                if not s.closing:
                    s.closing = True
                    due.append(s)
            if not bucket:
                del self.buckets[at]
        return due
