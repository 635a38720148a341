"""QuorumPeer: one ensemble member - the election, then a role around one ServerCore.

Theory of operation. The peer is the member's pure state machine (Apache's QuorumPeer.run
loop, without its threads). It starts LOOKING: the election runs until it decides; then the
peer builds a `Leader` or a `Learner` (follower or observer) and the ServerCore serves
clients once that role is up (the leader established, the learner past UPTODATE). When the
role fails - a timeout, a lost connection, a protocol error, the leader losing its quorum -
the core stops serving (every client connection closes, as Apache's do; sessions live on),
whatever the member logged but did not apply is applied (the history it will vote with, as
Apache's reload from disk gives), and it looks again.

Read-only mode (readonlymode.enabled): a member still LOOKING a grace period after it began
(max(2000 ms, tickTime), Apache's) serves read-only clients from the tree it has, with local
sessions only, until the election decides; then those clients are disconnected as any are.

The shell (asyncio in shell/, or the simulator) drives it with inputs and takes one `Ready`
after each: election messages, quorum-port bytes per connection, the leader to dial,
connections to close, and the client effects of the core. The peer owns the per-connection
quorum decoders, so a shell only moves bytes. The log and the epoch files are reached through
`MemberStorage`; durability comes back as `log_persisted(zxid)`, which is what releases every
acknowledgement (see leader.py and learner.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..core import Effects, Role, ServerCore
from ..jute.records import TxnHeader
from ..proto.election_codec import Notification, NotificationError, ServerState
from ..proto.peer_codec import (
    PacketType,
    PeerProtocolError,
    QuorumPacket,
    QuorumStreamDecoder,
    SnapshotScanner,
    encode_packet,
)
from ..storage.txnlog import StorageError
from ..tree.datatree import DataTree
from . import bugs
from .context import (
    CommittedLog,
    ConfigStore,
    MemberStorage,
    NoConfigStore,
    NoMetrics,
    PeerSettings,
    QuorumMetrics,
    Verifier,
)
from .election import FastLeaderElection
from .leader import ACCEPTED_EPOCH, Leader
from .learner import Learner
from .reconfig import verifier_from_string

log = logging.getLogger("zkserver.quorum.peer")

DISK_ERRORS = (OSError, StorageError)


@dataclass
class LinkStats:
    """Traffic of one quorum connection a learner made to this leader (Apache's LearnerHandler
    counters, shown by the AdminServer's `observers`)."""

    sent: int = 0
    received: int = 0
    requests: int = 0
    last_zxid: int = -1  # of the last packet sent with a zxid above 0

    def reset(self) -> None:
        self.sent = self.received = self.requests = 0
        self.last_zxid = -1


@dataclass
class Ready:
    election: list[tuple[int, bytes]] = field(default_factory=list)
    quorum: dict[int, list[bytes]] = field(default_factory=dict)
    dial: list[int] = field(default_factory=list)  # sids whose quorum port to dial
    close: list[int] = field(default_factory=list)  # quorum connections to close
    client: Effects = field(default_factory=Effects)


class QuorumPeer:
    def __init__(self, settings: PeerSettings, core: ServerCore, storage: MemberStorage, verifier: Verifier,
                 election: FastLeaderElection, committed_log: CommittedLog, clock, *, accepted_epoch: int,
                 current_epoch: int, decode_snapshot: Callable[[bytes], tuple[DataTree, dict[int, int]]],
                 snapshot_scanner: Callable[[], SnapshotScanner] | None = None,
                 metrics: QuorumMetrics | None = None, config_store: ConfigStore | None = None,
                 last_seen: Verifier | None = None):
        self.settings = settings
        self.core = core
        self.storage = storage
        self.verifier = verifier
        # The newest config seen: a proposed reconfig not yet committed, else the committed one.
        self.last_seen = last_seen if last_seen is not None and last_seen.version > verifier.version else verifier
        self.config_store = config_store or NoConfigStore()
        self.election = election
        if self.last_seen is not verifier:
            election.set_config(verifier, self.last_seen, not settings.observer)
        self.committed_log = committed_log
        self.clock = clock
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        self.durable_zxid = storage.last_logged_zxid  # recovery left the log durable
        self.decode_snapshot = decode_snapshot
        self.snapshot_scanner = snapshot_scanner
        self.state = ServerState.LOOKING
        self.leader: Leader | None = None
        self.learner: Learner | None = None
        self.decoders: dict[int, QuorumStreamDecoder] = {}
        self.ready = Ready()
        self.failed_reason: str | None = None
        self.stopped: str | None = None  # the member cannot go on (its log failed)
        self.next_core_tick = 0
        self.leader_sid: int | None = None
        self.read_only_at: int | None = None  # LOOKING: when read-only mode starts
        self._unwritten_snapshot: tuple[DataTree, dict[int, int], int] | None = None
        self.election_dead = False  # only with the bug switch "fle-receiver-dies"
        self.metrics = metrics or NoMetrics()
        self.link_stats: dict[int, LinkStats] = {}  # learners' connections while leading
        self.looking_since = 0  # ms; election_time runs from here
        self.unavailable_since: int | None = None  # ms; not serving since (unavailable_time)
        self._last_packet: QuorumPacket | None = None  # what send() encoded last, and its bytes
        self._last_encoded = b""
        core.stop_serving()

    # ------------------------------------------------------------ inputs

    def start(self) -> None:
        now = self.clock.mono_ms()
        self.next_core_tick = now + self.settings.tick_ms
        self._look(now)

    def election_message(self, sid: int, payload: bytes) -> None:
        if self.election_dead:
            return
        try:
            notification = Notification.decode(payload)
        except NotificationError as e:
            log.warning("dropped a notification from %d: %s", sid, e)
            if bugs.ACTIVE and "fle-receiver-dies" in bugs.ACTIVE:
                self.election_dead = True
            return
        now = self.clock.mono_ms()
        self.election.receive(sid, notification, now)
        self._after_election(now)

    def quorum_accepted(self, cid: int) -> None:
        """A connection on this member's quorum port."""
        if self.leader is None:
            self._close(cid)  # Apache listens only while leading
            return
        self.decoders[cid] = QuorumStreamDecoder()
        self.link_stats[cid] = LinkStats()
        self.leader.accepted(cid, self.clock.mono_ms())

    def quorum_dialed(self, cid: int) -> None:
        """The connection to the leader's quorum port the peer asked for is up."""
        if self.learner is None:
            self._close(cid)
            return
        self.decoders[cid] = QuorumStreamDecoder(snapshot_scanner=self.snapshot_scanner)
        self.learner.connected(cid, self.clock.mono_ms())

    def quorum_dial_failed(self) -> None:
        if self.learner is not None:
            self.learner.dial_failed(self.clock.mono_ms())
            self._settle()

    def quorum_data(self, cid: int, data: bytes) -> None:
        decoder = self.decoders.get(cid)
        if decoder is None:
            return
        try:
            items = decoder.feed(data)
        except PeerProtocolError as e:
            log.warning("closing quorum connection %d: %s", cid, e)
            self._lost(cid)
            self._close(cid)
            return
        stats = self.link_stats.get(cid)
        for item in items:
            if cid not in self.decoders:
                break
            # Read the clock for each: the one before may have taken long (a snapshot installed),
            # and a read time-out runs from the last packet, not from before that work.
            now = self.clock.mono_ms()
            if stats is not None and isinstance(item, QuorumPacket):
                stats.received += 1
                stats.requests += item.type == PacketType.REQUEST
            try:  # not _disk_errors_fail_the_role(): a context manager per packet cost ~2 us
                if self.leader is not None:
                    self.leader.packet(cid, item, now)  # type: ignore[arg-type]
                elif self.learner is not None and cid == self.learner.cid:
                    self.learner.packet(item, now)
            except DISK_ERRORS as e:
                self._disk_refused(e)
            self._settle()
        if self.learner is not None and self.learner.to_log:
            with self._disk_errors_fail_the_role():
                self.learner.flush_log()
            self._settle()

    def quorum_closed(self, cid: int) -> None:
        self.link_stats.pop(cid, None)
        if self.decoders.pop(cid, None) is not None:
            self._lost(cid)

    def log_persisted(self, zxid: int) -> None:
        if zxid <= self.durable_zxid:
            return
        self.durable_zxid = zxid
        now = self.clock.mono_ms()
        with self._disk_errors_fail_the_role():
            if self.leader is not None:
                self.leader.persisted(zxid, now)
            elif self.learner is not None:
                self.learner.persisted(zxid)
        self._settle()

    def log_failed(self, reason: str) -> None:
        """The log cannot make anything durable any more: this member must not take part."""
        log.error("the txn log failed (%s): this member stops taking part in the ensemble", reason)
        self.stopped = reason
        self._leave_role()
        self.state = ServerState.LOOKING

    def timer(self) -> None:
        now = self.clock.mono_ms()
        if self.core.held:
            self.core.expire_held(now)
        if now >= self.next_core_tick:
            self.next_core_tick = now + self.settings.tick_ms
            self.core.tick()
        if self.stopped is not None:
            return
        if self.state == ServerState.LOOKING:
            self.election.timer(now)
            self._after_election(now)
            self._maybe_read_only(now)
        elif self.leader is not None:
            self.leader.timer(now)
        elif self.learner is not None:
            self.learner.timer(now)
        self._settle()

    def deadline(self) -> int:
        times = [self.next_core_tick]
        if self.core.held:
            times.append(self.core.hold_deadline())
        if self.stopped is None:
            if self.state == ServerState.LOOKING:
                times.append(self.election.deadline() or self.next_core_tick)
                if self.read_only_at is not None:
                    times.append(self.read_only_at)
            elif self.leader is not None:
                times.append(self.leader.deadline())
            elif self.learner is not None and (d := self.learner.deadline()) is not None:
                times.append(d)
        return min(times)

    def take_ready(self) -> Ready:
        self.flush_core()
        self._settle()
        ready, self.ready = self.ready, Ready()
        if self.stopped is None:
            ready.election.extend((sid, n.encode()) for sid, n in self.election.take_outbox())
        return ready

    # ------------------------------------------------------------ election

    def _look(self, now: int) -> None:
        self.state = ServerState.LOOKING
        self.leader_sid = None
        self.metrics.count("looking_count")
        self.looking_since = now
        if self.unavailable_since is None:
            self.unavailable_since = now
        log.info("LOOKING: last logged zxid 0x%x, current epoch %d", self.storage.last_logged_zxid, self.current_epoch)
        self.election.start(now, self.storage.last_logged_zxid, self.current_epoch)
        if self.settings.read_only:
            self.read_only_at = now + max(2000, self.settings.tick_ms)
        self._after_election(now)

    def _maybe_read_only(self, now: int) -> None:
        """Still LOOKING after the grace period: serve read-only clients (Apache's roZkMgr)."""
        if self.state == ServerState.LOOKING and self.read_only_at is not None and now >= self.read_only_at:
            self.read_only_at = None
            log.info("Read-only server started: still LOOKING after the grace period")
            self.core.start_serving(Role.READ_ONLY)

    def _after_election(self, now: int) -> None:
        if self.state != ServerState.LOOKING or self.stopped is not None:
            return
        if self.settings.reconfig_enabled and self.election.newer_config is not None:
            self._adopt_newer_config(now)
        decision = self.election.decision
        if decision is not None:
            state, vote = decision
            self.decided(state, vote.leader, now)

    def _adopt_newer_config(self, now: int) -> None:
        """A notification carried a newer committed config (Apache's FLE with reconfigEnabled):
        activate it, and look again with it when it differs from ours."""
        raw, self.election.newer_config = self.election.newer_config, None
        try:
            verifier = verifier_from_string(raw.decode())  # type: ignore[union-attr]
        except (UnicodeDecodeError, ValueError) as e:
            log.warning("a notification's config does not parse: %s", e)
            return
        members_before = {sid: spec.addresses for sid, spec in self.verifier.members.items()}
        self.activate(verifier, None)
        if {sid: spec.addresses for sid, spec in verifier.members.items()} != members_before:
            log.info("config version 0x%x from the election: looking again with it", verifier.version)
            self.election.start(now, self.storage.last_logged_zxid, self.current_epoch)

    def decided(self, state: ServerState, leader_sid: int, now: int) -> None:
        """The election's outcome: lead, follow or observe `leader_sid`."""
        self.state = state
        self.leader_sid = leader_sid
        if state != ServerState.OBSERVING:  # Apache's Observer does not record it
            self.metrics.observe("election_time", now - self.looking_since)
        self.read_only_at = None
        if self.core.role == Role.READ_ONLY:
            self.core.stop_serving()  # its clients go, as Apache shuts its read-only server down
            self.flush_core()
        if state == ServerState.LEADING:
            with self._disk_errors_fail_the_role():
                self.leader = Leader(self, now)
        else:
            log.info("%s leader %d", state.name, leader_sid)
            self.learner = Learner(self, leader_sid, now)
        self._settle()

    # ------------------------------------------------------------ what the roles call (PeerContext)

    def send(self, cid: int, packet: QuorumPacket) -> None:
        # The leader hands one packet object to each learner in turn (a proposal, a commit, a
        # ping): encode it once. A QuorumPacket is immutable: the same object is the same bytes.
        if packet is not self._last_packet:
            self._last_packet, self._last_encoded = packet, encode_packet(packet)
        self.send_bytes(cid, self._last_encoded)
        stats = self.link_stats.get(cid)
        if stats is not None:
            stats.sent += 1
            if packet.zxid > 0:
                stats.last_zxid = packet.zxid

    def send_bytes(self, cid: int, data: bytes) -> None:
        if cid in self.decoders:
            self.ready.quorum.setdefault(cid, []).append(data)

    def close(self, cid: int) -> None:
        self.decoders.pop(cid, None)
        self.link_stats.pop(cid, None)
        self._close(cid)

    def dial(self, sid: int) -> None:
        self.ready.dial.append(sid)

    def write_epoch(self, name: str, value: int) -> None:
        self.storage.write_epoch(name, value)
        if name == ACCEPTED_EPOCH:
            self.accepted_epoch = value
        else:
            self.current_epoch = value

    def session_timeouts(self) -> dict[int, int]:
        return self.core.sessions.timeouts()

    def flush_core(self) -> None:
        if self.core.held:
            # Here, not in start_serving: a learner applies its sync's txns after it starts
            # serving, and the held connections' waiting requests are answered from the synced tree.
            self.core.release_held()
        fx = self.core.take_effects()
        if fx.appends:
            if self.leader is None:
                raise AssertionError("the core prepared txns while not leading")
            appends, fx.appends = fx.appends, []
            bodies = self.storage.append(appends)
            if len(bodies) == len(appends):
                self.leader.propose([(h, t, b) for (h, t), b in zip(appends, bodies, strict=True)],
                                    self.clock.mono_ms())
            else:
                # The log refused them (it failed between its last report and now): they will
                # never be durable, nor will anything after them. Stop, as log_failed does.
                self.stopped = "the txn log refused a write"
                self.role_failed(self.stopped)
        if (fx.forwards or fx.revalidations) and self.learner is not None:
            self.learner.forward(fx.forwards, fx.revalidations)
        client = self.ready.client
        for cid, frames in fx.out.items():
            client.out.setdefault(cid, []).extend(frames)
        client.close.extend(fx.close)

    def leading(self, epoch: int) -> None:
        zxid = epoch << 32
        if self.settings.initial_zxid is not None:
            zxid |= self.settings.initial_zxid & 0xFFFFFFFF
            self.leader.last_proposed = self.leader.last_committed = zxid  # type: ignore[union-attr]
        self.core.start_serving(Role.LEADER, zxid)
        self.core.reconfigurer = self.leader
        self.election.update_peer_epoch(epoch)
        self._serving_again(leading=True)

    def following(self, epoch: int) -> None:
        self.core.start_serving(Role.OBSERVER if self.settings.observer else Role.FOLLOWER)
        self.election.update_peer_epoch(epoch)
        started = self.learner.sync_started_ms if self.learner is not None else None
        if started is not None:
            kind = "observer_sync_time" if self.settings.observer else "follower_sync_time"
            self.metrics.observe(kind, self.clock.mono_ms() - started)
        self._serving_again(leading=False)

    def _serving_again(self, leading: bool) -> None:
        """Serving again (Apache's ZabState BROADCAST): how long this member served nobody."""
        if self.unavailable_since is None:
            return
        gone = self.clock.mono_ms() - self.unavailable_since
        self.unavailable_since = None
        self.metrics.observe("unavailable_time", gone)
        if leading:
            self.metrics.observe("leader_unavailable_time", gone)

    # ------------------------------------------------------------ dynamic reconfiguration

    def see_config(self, verifier: Verifier) -> None:
        """Apache's setLastSeenQuorumVerifier: a newer proposed config (kept in .dynamic.next)."""
        if not self.settings.reconfig_enabled or verifier.version <= self.last_seen.version:
            return
        log.info("config version 0x%x proposed (committed: 0x%x)", verifier.version, self.verifier.version)
        self.last_seen = verifier
        self.election.set_config(self.verifier, verifier, not self.settings.observer)
        self.config_store.proposed(verifier)

    def activate(self, verifier: Verifier, designated_leader: int | None) -> bool:
        """Apache's processReconfig: `verifier` is committed. It becomes this member's config
        (files written, /zookeeper/config set, the election told); True when this member's role
        changes with it (participant <-> observer) or its leader does: it must elect again."""
        if not self.settings.reconfig_enabled or verifier.version <= self.verifier.version:
            return False
        log.info("activating config version 0x%x (was 0x%x)", verifier.version, self.verifier.version)
        previous, self.verifier = self.verifier, verifier
        if self.last_seen.version <= verifier.version:
            self.last_seen = verifier
        self.config_store.activated(verifier)
        self.core.set_config_node(str(verifier).encode(), verifier.version)
        me = self.settings.my_sid
        observer = me in verifier.observers  # not in the config at all: a non-voting participant
        role_change = observer != self.settings.observer
        self.settings.observer = observer
        self.election.set_config(verifier, self.last_seen, not observer)
        leader = self.leader_sid
        if leader is None:
            leader_change = False
        elif designated_leader is not None:
            leader_change = designated_leader != leader
        else:  # no designated leader: a change when mine is not the same voter in both configs
            was, now = previous.members.get(leader), verifier.members.get(leader)
            leader_change = (leader not in previous.voting or leader not in verifier.voting
                             or was is None or now is None or was.addresses != now.addresses)
        return role_change or leader_change

    def truncate(self, zxid: int) -> None:
        rec = self.storage.truncate(zxid)
        self.core.replace_tree(rec.tree, rec.sessions)
        self.durable_zxid = min(self.durable_zxid, self.storage.last_logged_zxid)
        self.committed_log.clear()

    def install_snapshot(self, data: bytes, zxid: int) -> None:
        """The leader's database (SNAP) replaces ours, durably before anything is acked."""
        tree, sessions = self.decode_snapshot(data)
        tree.last_processed_zxid = zxid
        self.core.replace_tree(tree, sessions)
        self.committed_log.clear()
        if bugs.ACTIVE and "snap-not-durable" in bugs.ACTIVE:
            self._unwritten_snapshot = (tree, sessions, zxid)
            return
        self.storage.install_snapshot(tree, sessions, zxid)
        self.durable_zxid = zxid

    def write_deferred_snapshot(self) -> None:
        """UPTODATE arrived: only the bug switch "snap-not-durable" waits for this to write the
        SNAP it acked NEWLEADER for (ZOOKEEPER-3104: the snapshot was taken after UPTODATE)."""
        if self._unwritten_snapshot is not None:
            tree, sessions, zxid = self._unwritten_snapshot
            self._unwritten_snapshot = None
            self.storage.install_snapshot(tree, sessions, zxid)

    @contextlib.contextmanager
    def _disk_errors_fail_the_role(self) -> Iterator[None]:
        """An epoch file, a TRUNC or a SNAP that the disk refuses (full, failing): the role
        cannot go on; as Apache's learner and leader do on an IOException, look again (a log
        that failed for good also stops the member, through log_failed)."""
        try:
            yield
        except DISK_ERRORS as e:
            self._disk_refused(e)

    def _disk_refused(self, e: BaseException) -> None:
        self.role_failed(f"the disk refused a write the role needs: {e}")

    def role_failed(self, reason: str) -> None:
        if self.failed_reason is None:
            self.failed_reason = reason

    # ------------------------------------------------------------ role changes

    def _settle(self) -> None:
        """Carry out a role failure once the role's own call has returned."""
        if self.core.rollover and self.leader is not None:
            self.core.rollover = False
            self.role_failed("zxid lower 32 bits have rolled over, forcing re-election, and therefore new epoch start")
        reason = self.failed_reason
        if reason is None:
            return
        self.failed_reason = None
        log.warning("%s -> LOOKING: %s", self.state.name, reason)
        self._leave_role()
        if self.stopped is None:
            self._look(self.clock.mono_ms())
        else:
            self.state = ServerState.LOOKING

    def _leave_role(self) -> None:
        self.flush_core()
        role = self.leader or self.learner
        pending: list[tuple[TxnHeader, object, bytes]] = []
        if self.leader is not None:
            pending = [(p.hdr, p.txn, p.data) for p in self.leader.logged_unapplied()]
            self.leader.close_all()
        elif self.learner is not None:
            pending = [(t.hdr, t.txn, t.data) for t in self.learner.logged_unapplied()]
        for cid in list(self.decoders):
            self.close(cid)
        self.leader = self.learner = None
        self.core.stop_serving(hold=self.stopped is None)
        # The history this member votes with is everything it logged (Apache reloads it from
        # disk): apply what was logged but not applied, so the tree is that history.
        for hdr, txn, data in sorted(pending, key=lambda p: p[0].zxid):
            if hdr.zxid > self.core.tree.last_processed_zxid:
                self.core.apply_remote(hdr, txn)
                self.committed_log.add_encoded(hdr.zxid, data)
        flushed = self.core.take_effects()
        self.ready.client.close.extend(flushed.close)
        if role is not None:
            log.info("left the %s role", type(role).__name__)

    def _lost(self, cid: int) -> None:
        if self.leader is not None:
            self.leader.disconnected(cid)
        elif self.learner is not None and cid == self.learner.cid:
            self.learner.disconnected(self.clock.mono_ms())
        self._settle()

    def _close(self, cid: int) -> None:
        self.ready.close.append(cid)
