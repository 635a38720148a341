"""What the leader and learner roles see of the member around them.

The roles are pure: they never touch a socket, a file or the clock. They send and close
through the `PeerContext` (the QuorumPeer), which turns that into its Ready; they reach the
member's log and tree through it too. These protocols are the seam the simulator and the real
shell both plug into (through the peer), and what the role tests fake.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..core import ServerCore
    from ..jute.records import TxnHeader
    from ..proto.peer_codec import QuorumPacket
    from ..storage.database import Recovered
    from ..tree.datatree import DataTree


@dataclass
class PeerSettings:
    my_sid: int
    tick_ms: int = 2000
    init_limit: int = 10
    sync_limit: int = 5
    observer: bool = False  # this member's own peer type
    force_snapshot_sync: bool = False  # zookeeper.forceSnapshotSync
    snapshot_size_factor: float = 0.33  # zookeeper.snapshotSizeFactor (< 0: never read the txn log)
    connect_tries: int = 5  # Learner.connectToLeader: tries per election, 100 ms apart
    connect_retry_ms: int = 100
    initial_zxid: int | None = None  # zookeeper.testingonly.initialZxid (decimal counter)
    read_only: bool = False  # readonlymode.enabled: serve read-only clients while LOOKING
    reconfig_enabled: bool = False  # reconfigEnabled: dynamic reconfiguration (quorum/reconfig.py)
    standalone_enabled: bool = True  # standaloneEnabled: a reconfig must leave two voters


class Verifier(Protocol):
    """The quorum verifier of the committed configuration (quorum/verifier.py); str() of it is
    Apache's QuorumVerifier string, as NEWLEADER carries it."""

    version: int
    voting: frozenset[int]
    observers: frozenset[int]
    members: dict[int, Any]  # sid -> config.ServerSpec

    def contains_quorum(self, sids: Iterable[int]) -> bool: ...


class ConfigStore(Protocol):
    """Where a member keeps its dynamic configuration (shell/dynconfig.py writes Apache's files)."""

    def proposed(self, verifier: Verifier) -> None:
        """A newer config was proposed (zoo.cfg.dynamic.next)."""
        ...

    def activated(self, verifier: Verifier) -> None:
        """A config is in force (zoo.cfg.dynamic.<version>, zoo.cfg pointing at it)."""
        ...


class NoConfigStore:
    """A ConfigStore that keeps nothing (scripted tests, the simulator, no zoo.cfg)."""

    def proposed(self, verifier: Verifier) -> None:
        pass

    def activated(self, verifier: Verifier) -> None:
        pass


class QuorumMetrics(Protocol):
    """Where the roles report Apache's quorum ServerMetrics (proposal_count, election_time, ...):
    counters by name and one observation of a summary. The shell passes the server's stats."""

    def count(self, name: str, delta: int = 1) -> None: ...

    def observe(self, name: str, value: int) -> None: ...


class NoMetrics:
    """A QuorumMetrics that keeps nothing (scripted tests, the simulator)."""

    def count(self, name: str, delta: int = 1) -> None:
        pass

    def observe(self, name: str, value: int) -> None:
        pass


class CommittedLog(Protocol):
    """The last few hundred applied txns as PROPOSAL data, oldest first (Apache's
    ZKDatabase.committedLog; storage/committed.py)."""

    def __iter__(self) -> Iterator[Any]:
        """Entries with `zxid` and `data`."""
        ...

    def add_encoded(self, zxid: int, data: bytes) -> None: ...

    def clear(self) -> None: ...


class MemberStorage(Protocol):
    """A member's log and snapshots, as Zab needs them (storage/ implements it)."""

    last_logged_zxid: int

    def append(self, entries: list[tuple[TxnHeader, object]],
               digests: list[tuple[int, int] | None] | None = None) -> list[bytes]:
        """Log txns (durability is reported later, to the peer); the PROPOSAL data of each.
        `digests`: the (version, tree digest) the leader sent with each, to log as they are."""
        ...

    def truncate(self, zxid: int) -> Recovered: ...

    def install_snapshot(self, tree: DataTree, sessions: dict[int, int], zxid: int) -> None: ...

    def snapshot_stream(self, tree: DataTree, sessions: dict[int, int]) -> bytes: ...

    def txn_log_from(self, zxid: int, size_factor: float) -> Iterator[Any]:
        """The txn log's entries (`zxid`, `data`) from the start of the oldest file that may hold
        what follows `zxid`, read lazily; none when the log does not reach back that far or is
        larger than size_factor times the newest snapshot (storage/committed.py)."""
        ...

    def write_epoch(self, name: str, value: int) -> None: ...


class PeerContext(Protocol):
    settings: PeerSettings
    core: ServerCore
    verifier: Verifier
    last_seen: Verifier  # the newest config seen: a proposed one, or else the committed one
    storage: MemberStorage
    committed_log: CommittedLog
    accepted_epoch: int
    current_epoch: int
    durable_zxid: int
    metrics: QuorumMetrics

    def send(self, cid: int, packet: QuorumPacket) -> None: ...

    def send_bytes(self, cid: int, data: bytes) -> None: ...

    def close(self, cid: int) -> None: ...

    def write_epoch(self, name: str, value: int) -> None:
        """Durably, before returning (and the peer's accepted/current epoch follow)."""
        ...

    def session_timeouts(self) -> dict[int, int]: ...

    def flush_core(self) -> None:
        """Hand whatever the ServerCore prepared so far to the role now (appends, forwards)."""
        ...

    def leading(self, epoch: int) -> None:
        """The leader is established: the core serves clients as leader from epoch << 32."""
        ...

    def following(self, epoch: int) -> None:
        """The learner is up to date (UPTODATE): the core serves clients as follower/observer."""
        ...

    def dial(self, sid: int) -> None:
        """Connect to member `sid`'s quorum port (a learner, to its leader)."""
        ...

    def truncate(self, zxid: int) -> None:
        """TRUNC: the member's history ends at `zxid` from now on, durably."""
        ...

    def install_snapshot(self, data: bytes, zxid: int) -> None:
        """SNAP: the leader's database replaces ours, durably."""
        ...

    def write_deferred_snapshot(self) -> None: ...

    def see_config(self, verifier: Verifier) -> None:
        """A newer config was proposed (Apache's setLastSeenQuorumVerifier); reconfigEnabled only."""
        ...

    def activate(self, verifier: Verifier, designated_leader: int | None) -> bool:
        """A config is committed (Apache's processReconfig); True when this member's role or
        leader changes with it, so it must elect again."""
        ...

    def role_failed(self, reason: str) -> None:
        """Give the role up and go back to LOOKING."""
        ...
