"""An ensemble member in the simulated world: the real QuorumPeer, election, Zab, ServerCore and
storage code, with only the shell replaced.

What shell/ensemble.py and shell/server.py do with asyncio, done on virtual time. At every
start the process recovers from its disk, loads its epoch files by Apache's rules, builds the
ServerCore and a QuorumPeer around it (FastLeaderElection inside), and listens on "client" and
"quorum". Election notifications travel as datagrams on the "election" channel (the real
shell's connection handling of that port is not simulated: its rules have their own tests);
quorum connections are simulated TCP streams, dialed to the leader's "quorum" port. After
every input the host takes the peer's Ready and carries it out in the order the real shell
does: notifications, quorum bytes, the dial, closes, then client frames; one timer is re-armed
at the peer's deadline, on this machine's own (possibly skewed) clock. Durability comes from
DataDir's sync rounds, as `peer.log_persisted`.

The journal of committed txns (SimEnv.applied) the checkers judge against. Each machine keeps
its member's history, zxid -> txn bytes, through everything that changes it: applies (in a
role, or of a logged suffix when leaving one), recovery (what the log replays), TRUNC (cut),
SNAP (the leader's history up to the snapshot, read off its host: the world sees everything).
A txn is committed when a leader or learner applies it in its role, and the whole history of
a leader is committed once it is established (Zab: a quorum acked NEWLEADER); both go into the
journal. A suffix applied when leaving a role goes in only that way, since a TRUNC may cut it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..config.model import PeerAddress, ServerSpec
from ..core import CoreSettings, ServerCore
from ..jute.records import TxnHeader
from ..quorum.context import PeerSettings
from ..quorum.election import ElectionSettings, FastLeaderElection
from ..quorum.learner import Learner, Stage
from ..quorum.peer import QuorumPeer
from ..quorum.verifier import QuorumMaj
from ..storage.committed import Proposal
from ..storage.database import Recovered, StorageOptions
from ..storage.digest import tree_digest
from ..storage.snapstream import SnapshotStreamScanner, decode_snapshot_stream
from ..storage.txnlog import decode_entry, encode_proposal
from ..tree.datatree import DataTree
from .disks import DiskProfile
from .member import DOWN, UP, ClientPort, MemberHost, MemberState, SimEnv
from .scheduler import Timer
from .streams import Stream

ELECTION = "election"


def member_specs(voters: int, observers: int) -> list[ServerSpec]:
    """server.N lines for a simulated ensemble: member N is the network endpoint mN."""
    return [ServerSpec(sid, (PeerAddress(f"m{sid}", 2888, 3888),), "observer" if sid > voters else "participant")
            for sid in range(1, voters + observers + 1)]


class _MemberLog:
    """The peer's MemberStorage over a DataDir: appends go through its sync rounds; a TRUNC or
    a SNAP changes the host's history too."""

    def __init__(self, host: EnsembleHost):
        self.host = host
        self.data = host.data
        assert self.data.storage is not None
        self.storage = self.data.storage

    @property
    def last_logged_zxid(self) -> int:
        return self.storage.last_logged_zxid

    def append(self, entries: list[tuple[TxnHeader, object]],
               digests: list[tuple[int, int] | None] | None = None) -> list[bytes]:
        return self.data.append(entries, digests)

    def truncate(self, zxid: int) -> Recovered:
        rec = self.storage.truncate(zxid)
        self.host.cut_history(zxid)
        return rec

    def install_snapshot(self, tree: DataTree, sessions: dict[int, int], zxid: int) -> None:
        self.storage.install_snapshot(tree, sessions, zxid)
        self.host.history_from_leader(zxid)

    def snapshot_stream(self, tree: DataTree, sessions: dict[int, int]) -> bytes:
        return self.storage.snapshot_stream(tree, sessions)

    def txn_log_from(self, zxid: int, size_factor: float) -> Iterator[Proposal]:
        return self.storage.txn_log_from(zxid, size_factor)

    def write_epoch(self, name: str, value: int) -> None:
        self.storage.write_epoch(name, value)


class _QuorumLink:
    """One quorum connection of this member, accepted or dialed; callbacks reach the peer."""

    def __init__(self, host: EnsembleHost, cid: int, dialed: bool):
        self.host = host
        self.cid = cid
        self.dialed = dialed
        self.opened = False
        self.stream: Stream | None = None
        self.incarnation = host.incarnation

    def _peer(self) -> QuorumPeer | None:
        host = self.host
        return host.peer if host.incarnation == self.incarnation else None

    def on_open(self) -> None:
        peer = self._peer()
        if peer is None:
            return
        self.opened = True
        self.host.links[self.cid] = self
        if self.dialed:
            peer.quorum_dialed(self.cid)
        else:
            peer.quorum_accepted(self.cid)
        self.host.pump()

    def on_data(self, data: bytes) -> None:
        peer = self._peer()
        if peer is not None:
            peer.quorum_data(self.cid, data)
            self.host.pump()

    def on_close(self) -> None:
        peer = self._peer()
        if peer is None:
            return
        self.host.links.pop(self.cid, None)
        if self.opened:
            peer.quorum_closed(self.cid)
        elif self.dialed:
            peer.quorum_dial_failed()
        self.host.pump()


class EnsembleHost(MemberHost):
    def __init__(self, env: SimEnv, sid: int, settings: CoreSettings, opts: StorageOptions, disk: DiskProfile,
                 peer_settings: PeerSettings, specs: list[ServerSpec],
                 hosts: Callable[[int], EnsembleHost] | None = None,
                 election_settings: ElectionSettings | None = None):
        super().__init__(env, sid, opts, disk)
        self.settings = settings
        self.peer_settings = peer_settings
        self.specs = specs
        self.hosts = hosts  # sid -> that member's host (for a SNAP's history)
        self.election_settings = election_settings or ElectionSettings()
        self.history: dict[int, bytes] = {}  # zxid -> txn bytes: what this machine's member holds
        self._claimed_epoch = -1  # the last epoch this member led established (its history journaled)
        self._sync_cut: tuple[Stage, Callable[[], None]] | None = None  # a fault armed at a sync point
        self._synced_from: tuple[Learner | None, int] = (None, 0)  # (a learner, the currentEpoch it began with)
        self.secret = env.scheduler.rng(f"{self.name}.secret").randbytes(32)
        self.core: ServerCore | None = None
        self.peer: QuorumPeer | None = None
        self.port: ClientPort | None = None
        self.links: dict[int, _QuorumLink] = {}
        self.listening = False
        self._next_cid = 1
        self._wakeup: Timer | None = None

    # ------------------------------------------------------------ the process

    def _boot(self) -> None:
        data = self.data
        rec, epochs = data.recover_member(self.settings.extended_types)
        self._recovered_history(rec.last_logged_zxid)
        core = self.core = ServerCore(self.settings, self.clock, self.secret, tree=rec.tree)
        core.sessions.apache_passwords = True
        core.on_applied = self._applied
        now = self.clock.mono_ms()
        for sid, timeout in rec.sessions.items():
            core.sessions.add(sid, timeout, now)
        data.open(rec, core.sessions.timeouts, self._durable, self._failed)
        verifier = QuorumMaj(self.specs)
        election = FastLeaderElection(self.sid, verifier, not self.peer_settings.observer, self.election_settings)
        extended = self.settings.extended_types
        self.peer = QuorumPeer(self.peer_settings, core, _MemberLog(self), verifier, election,  # type: ignore[arg-type]
                               rec.committed, self.clock, accepted_epoch=epochs.accepted,
                               current_epoch=epochs.current,
                               decode_snapshot=lambda blob: decode_snapshot_stream(blob, extended),
                               snapshot_scanner=SnapshotStreamScanner)
        self.links = {}
        self.port = ClientPort(self, core, self.pump)
        self.listening = False
        self.on_message(ELECTION, self._notification)
        self.note(f"member up at 0x{rec.last_logged_zxid:x}, epochs {epochs.accepted}/{epochs.current}")
        self.peer.start()
        self.pump()

    def _halt(self) -> None:
        self.core = self.peer = self.port = None
        self.links = {}
        self._wakeup = None

    # ------------------------------------------------------------ inputs

    def _notification(self, src: str, payload: bytes) -> None:
        if self.peer is not None:
            self.peer.election_message(int(src[1:]), payload)
            self.pump()

    def _accept(self, peer: str, stream: Stream) -> _QuorumLink:
        link = _QuorumLink(self, self._cid(), dialed=False)
        link.stream = stream
        return link

    def _applied(self, hdr: TxnHeader, txn: object) -> None:
        """Into the history; into the journal too when a leader or learner applies it. A peer
        leaving its role applies what it logged and never saw committed (the history it votes
        with, as Apache reloads it from disk): maybe never committed, and cut by a later TRUNC."""
        body = encode_proposal(hdr, txn, None)
        self.history[hdr.zxid] = body
        peer = self.peer
        if peer is None or peer.leader is not None or peer.learner is not None:
            self.env.note_applied(self.name, hdr.zxid, body)

    # ------------------------------------------------------------ the history (see the module doc)

    def _recovered_history(self, last_zxid: int) -> None:
        """Recovery kept what the disk held: nothing past `last_zxid`, and the log's txns (maybe
        logged and never applied before the crash) as written."""
        history = {z: b for z, b in self.history.items() if z <= last_zxid}
        for zxid, entry in self.data.logged_txns():
            if zxid <= last_zxid:
                hdr, txn, _ = decode_entry(entry)
                history[zxid] = encode_proposal(hdr, txn, None)
        self.history = history

    def cut_history(self, zxid: int) -> None:
        self.history = {z: b for z, b in self.history.items() if z <= zxid}

    def history_from_leader(self, zxid: int) -> None:
        peer = self.peer
        assert peer is not None and peer.leader_sid is not None and self.hosts is not None
        leader = self.hosts(peer.leader_sid)
        self.history = {z: b for z, b in leader.history.items() if z <= zxid}

    def _claim_history(self) -> None:
        """An established leader's history is committed: all of it into the journal, once per epoch."""
        leader = self.peer.leader if self.peer is not None else None
        if leader is None or not leader.established or leader.epoch == self._claimed_epoch:
            return
        self._claimed_epoch = leader.epoch
        for zxid, body in sorted(self.history.items()):
            self.env.note_applied(self.name, zxid, body)

    def _cid(self) -> int:
        cid = self._next_cid
        self._next_cid += 1
        return cid

    def _durable(self, zxid: int) -> None:
        if self.peer is not None:
            self.peer.log_persisted(zxid)
            self.pump()

    def _failed(self, exc: BaseException) -> None:
        self.note(f"txn log failed: {exc}")
        if self.peer is not None:
            self.peer.log_failed(str(exc))
            self.pump()

    def _fire(self) -> None:
        self._wakeup = None
        if self.peer is not None:
            self.peer.timer()
            self.pump()

    # ------------------------------------------------------------ the Ready

    def pump(self) -> None:
        peer, port = self.peer, self.port
        if peer is None or port is None:
            return
        ready = peer.take_ready()
        for sid, payload in ready.election:
            self.send_message(f"m{sid}", ELECTION, payload)
        for cid, chunks in ready.quorum.items():
            link = self.links.get(cid)
            if link is not None and link.stream is not None:
                link.stream.send(b"".join(chunks))
        for sid in ready.dial:
            link = _QuorumLink(self, self._cid(), dialed=True)
            link.stream = self.connect(f"m{sid}", "quorum", link)
        for cid in ready.close:
            link = self.links.pop(cid, None)
            if link is not None and link.stream is not None:
                link.stream.close()
        self._listen_while_leading()
        port.write(ready.client)
        self._claim_history()
        self._arm()
        learner, cut = peer.learner, self._sync_cut
        if learner is not None and self._synced_from[0] is not learner:
            self._synced_from = (learner, peer.current_epoch)  # read before its sync can write it
        if cut is not None and learner is not None and learner.stage == cut[0] and self._establishing(learner):
            self._sync_cut = None
            cut[1]()  # this process dies here, its Ready carried out: nothing may follow in pump

    def _establishing(self, learner: Learner) -> bool:
        """The learner syncs into an epoch newer than its currentEpoch, with a leader that has
        not established it yet: its NEWLEADER ACK may be one its leader's quorum counts."""
        if self.hosts is None or learner.new_epoch <= self._synced_from[1]:
            return False
        leader = self.hosts(learner.leader_sid).peer
        return leader is not None and leader.leader is not None and not leader.leader.established

    def arm_sync_cut(self, point: str | None, on_cut: Callable[[], None] | None = None) -> None:
        """"persisting": once a learner read NEWLEADER and logged its txns, not yet durable;
        "acked": once it sent the NEWLEADER ACK. Only in a sync that may establish a new epoch
        (`_establishing`), where the epoch files change: a learner joining a leader already
        established claims nothing the quorum lacks, and a crash there is a crash like any other."""
        if point is None or on_cut is None:
            self._sync_cut = None
        else:
            self._sync_cut = ({"persisting": Stage.PERSISTING, "acked": Stage.AWAIT_UPTODATE}[point], on_cut)

    def _listen_while_leading(self) -> None:
        """The quorum port accepts only while this member leads, as Apache's Leader binds it
        (shell/ensemble.py does the same): a learner that dials too early is refused and retries."""
        leading = self.peer is not None and self.peer.leader is not None
        if leading and not self.listening:
            self.listen("quorum", self._accept)
        elif not leading and self.listening:
            self.env.network.unlisten(self.name, "quorum")
        self.listening = leading

    def _arm(self) -> None:
        assert self.peer is not None
        if self._wakeup is not None:
            self._wakeup.cancel()
        delay = max(0, self.peer.deadline() - self.clock.mono_ms())
        self._wakeup = self.call_later(delay, self._fire)

    # ------------------------------------------------------------ for the checks

    @property
    def quiet(self) -> bool:
        """The disk is quiet and the member is settled in a role with nothing in flight: a
        learner has applied all it logged, a leader has nothing proposed or committed that is
        not applied, and no quorum packet is on its way to or from it (an observer knows
        nothing of the INFORM coming to it)."""
        if self.state != UP:
            return True
        peer = self.peer
        if not self.data.quiet or peer is None or peer.stopped is not None:
            return self.data.quiet
        if self.env.network.in_flight(self.name, "quorum"):
            return False
        if peer.learner is not None:
            learner = peer.learner
            return learner.stage == Stage.BROADCAST and not learner.logged and not learner.apply_queue
        leader = peer.leader
        return leader is not None and leader.established and not leader.outstanding and not leader.to_be_applied

    @property
    def role(self) -> str:
        return self.core.role if self.core is not None and self.state != DOWN else "down"

    def final_state(self) -> MemberState:
        core = self.core
        if self.state == DOWN or core is None:
            return MemberState(self.name, self.sid, self.state, [], None, None)
        return MemberState(self.name, self.sid, self.state, self.data.logged_txns(), core.tree,
                           tree_digest(core.tree), core.sessions.timeouts(), core.log_failed or self.data.log_failed,
                           role=core.role, history_start=self.data.history_start())


def ensemble_member(world, sid: int) -> EnsembleHost:  # world: sim.world.World
    """The member factory of ensemble worlds: sids above options.members are observers."""
    o = world.options
    settings = CoreSettings(tick_ms=o.tick_ms, min_session_timeout=2 * o.tick_ms,
                            max_session_timeout=20 * o.tick_ms, server_id=sid, election_hold_ms=o.election_hold_ms)
    opts = StorageOptions(data_dir=f"/m{sid}/data", snap_count=o.snap_count, pre_alloc_size_kb=o.pre_alloc_kb,
                          commit_log_count=o.commit_log_count)
    disk = DiskProfile(o.fsync_ms, o.fsync_jitter_ms, o.fsync_tail_p)
    peer = PeerSettings(sid, tick_ms=o.tick_ms, init_limit=o.init_limit, sync_limit=o.sync_limit,
                        observer=sid > o.members)
    election = ElectionSettings(max_notification_interval_ms=o.fle_max_ms)
    return EnsembleHost(world.env, sid, settings, opts, disk, peer, member_specs(o.members, o.observers),
                        lambda other: world.member(f"m{other}"), election)

