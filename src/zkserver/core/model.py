"""The core's vocabulary: its settings, a client connection, a request in the pipeline, the
roles behind its commit step, and the effects it leaves for the shell."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..jute.codes import Op
from ..jute.records import REQUEST_HEADER, TxnHeader
from ..tree.acl import Identity
from ..tree.datatree import TxnResult


class Reconfigurer(Protocol):
    """The leader role as the core's reconfig preparation sees it (quorum/leader.py)."""

    def check_reconfig(self, req: Any, zxid: int) -> Any:
        """The new quorum verifier `req` (a ReconfigRequest) asks for, numbered `zxid`; raises
        KeeperError for a request the leader refuses."""
        ...

    def reconfig_prepared(self, verifier: Any) -> None:
        """The reconfig txn is prepared: from now on a reconfig is in progress."""
        ...


class Clock(Protocol):
    def wall_ms(self) -> int: ...
    def mono_ms(self) -> int: ...


@dataclass
class CoreSettings:
    tick_ms: int = 2000
    min_session_timeout: int = 4000
    max_session_timeout: int = 40000
    server_id: int = 0
    max_client_cnxns: int = 60
    max_cnxns: int = 0
    max_buffer: int = 0xFFFFF
    extended_types: bool = False
    super_digest: str | None = None
    skip_acl: bool = False
    enforce_quota: bool = False
    digest_auth_enabled: bool = True
    reconfig_enabled: bool = False
    local_sessions: bool = False  # localSessionsEnabled (ensemble members only, as in Apache)
    local_sessions_upgrading: bool = False  # localSessionsUpgradingEnabled
    exists_checks_read: bool = True  # 3.9.2+; False gives 3.8.0's exists (no READ check)
    container_check_interval_ms: int = 60000
    container_max_per_minute: int = 10000
    container_max_never_used_ms: int = 0
    # An ensemble member that stops serving to elect keeps its idle client connections this
    # long at most (and never beyond a third of a session's timeout), so that a new leader
    # found quickly costs its clients nothing; 0: close them at once, as Apache does.
    election_hold_ms: int = 2000
    # Secure connections (security/): providers, super users, SASL server settings, enforcement.
    x509_enabled: bool = False
    x509_super_user: str | None = None
    sasl_enabled: bool = False  # authProvider.N=...SASLAuthenticationProvider
    sasl_any_user: str | None = None  # zookeeper.letAnySaslUserDoX
    sasl: Any = None  # security.sasl.SaslSettings; None: no JAAS Server section
    enforce_auth_schemes: tuple[str, ...] = ()  # non-empty: enforce.auth.enabled


class Conn:
    """A client connection as the core sees it; also the key of its watches."""

    __slots__ = ("cid", "closing", "has_ro", "ids", "ip", "local", "session_id", "stats", "timeout")

    def __init__(self, cid: int, ip: str):
        self.cid = cid
        self.ip = ip
        self.session_id: int | None = None
        self.ids: list[Identity] = [("ip", ip)]
        self.closing = False
        self.has_ro = True
        self.timeout = 0
        self.stats = ConnStats()
        self.local = False  # its session is a local session

    def __repr__(self) -> str:
        return f"Conn({self.cid}, 0x{(self.session_id or 0) & 0xFFFFFFFFFFFFFFFF:x})"


@dataclass(slots=True)
class Held:
    """A connection kept open while its member elects (ServerCore.held): what it sent meanwhile,
    what it is owed."""

    until_ms: int  # closed if the member does not serve again by then
    inbox: list[bytes] = field(default_factory=list)  # its frames, handled once the member serves
    outbox: list[bytes] = field(default_factory=list)  # frames for it (watch events), sent then


@dataclass(slots=True)
class ConnStats:
    """Apache's ServerCnxn statistics; the shell's ops.stats updates the response fields."""

    received: int = 0
    sent: int = 0
    last_op: str = "NA"
    last_zxid: int = -1
    established: int = 0  # wall-clock ms
    last_opcode: int = 0  # 0: none yet
    last_cxid: int = -1
    last_latency: int = 0
    last_response: int = 0  # monotonic ms
    lat_count: int = 0
    lat_total: int = 0
    lat_min: int = 1 << 62
    lat_max: int = 0


@dataclass(slots=True)
class Request:
    conn: Conn | None
    xid: int
    op: int
    frame: bytes  # the whole request frame; its body starts at BODY_AT
    session_id: int
    # Passed by position where requests are made per frame: keywords cost ~0.2 us per call.
    received_ms: int = 0
    hdr: TxnHeader | None = None
    txn: object = None
    # On a learner: FORWARDED until the leader's answer (its commit, or SYNC) is in, then ANSWERED.
    forward: int = 0
    rc: TxnResult | None = None  # a forwarded write's outcome, kept until its turn to reply
    ids: list[Identity] | None = None  # a learner's request on the leader: its connection's ids


# Request.forward
LOCAL, FORWARDED, ANSWERED = 0, 1, 2


class Role:
    """What stands behind the commit step (DESIGN.md §5c). A LOOKING member serves no client."""

    STANDALONE = "standalone"
    LEADER = "leader"
    FOLLOWER = "follower"
    OBSERVER = "observer"
    LOOKING = "looking"
    # A LOOKING member with readonlymode.enabled, after a grace period: read-only clients only,
    # local sessions only, every write refused (Apache's ReadOnlyZooKeeperServer).
    READ_ONLY = "read-only"


@dataclass
class Effects:
    out: dict[int, list[bytes]] = field(default_factory=dict)
    close: list[int] = field(default_factory=list)
    appends: list[tuple[TxnHeader, object]] = field(default_factory=list)
    # A learner's: requests for the leader, and sessions to revalidate with it (id, timeout).
    forwards: list[Request] = field(default_factory=list)
    revalidations: list[tuple[int, int]] = field(default_factory=list)


# `check` is valid only inside a multi (Apache's Request.isValid); deleteContainer is valid from
# clients too, and skips the ACL check as the container sweeper's does.
WRITE_OPS = frozenset({
    Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL, Op.DELETE, Op.DELETE_CONTAINER,
    Op.SET_DATA, Op.SET_ACL, Op.MULTI, Op.RECONFIG,
})


BODY_AT = REQUEST_HEADER.size
