"""The leader's side of Zab (Apache's Leader.lead() and LearnerHandler), as a state machine.

Theory of operation. A member that won the election builds a `Leader`; the peer feeds it the
learners' quorum connections (`accepted`, `packet`, `disconnected`), its own log's durability
(`persisted`), the proposals its ServerCore made (`propose`) and the time (`timer`). Each
learner connection is a `LearnerLink` that goes through Apache's LearnerHandler phases:

  FOLLOWERINFO/OBSERVERINFO -> (epoch decided) LEADERINFO -> ACKEPOCH -> (a quorum acked the
  epoch) DIFF|TRUNC|SNAP + txns + NEWLEADER -> its ACK -> (leader established) UPTODATE ->
  broadcast: ACKs, PINGs with session touches, REQUESTs, REVALIDATEs.

Between NEWLEADER and UPTODATE a participant gets the new proposals but its COMMITs wait until
right after UPTODATE: an Apache 3.8.0 follower cannot take a COMMIT there (ZOOKEEPER-4394).

The leader itself goes DISCOVERY (a quorum of participants, itself included, connected: the
new epoch is max(accepted epochs) + 1, written to acceptedEpoch) -> SYNCHRONIZATION (a quorum
acked the epoch: currentEpoch written; each learner is synced) -> BROADCAST (a quorum acked
NEWLEADER: the ServerCore starts serving as leader). Each wait is bounded by initLimit ticks;
a timeout sends the member back to LOOKING, as does losing the quorum of synced learners
(checked every tick) or the zxid counter running out.

Dynamic reconfiguration (reconfigEnabled; quorum/reconfig.py has the rules): the core asks
`check_reconfig` for the new config and the proposal of the reconfig txn makes it the last
seen config. Until it commits, every proposal (the reconfig's own included) and the leader's
synced-quorum check need a quorum of the committed config and of the new one. Its commit
activates it here first (the peer installs the verifier and writes the files), then goes out
as COMMITANDACTIVATE to followers and INFORMANDACTIVATE to observers, carrying the designated
leader (Apache's getDesignatedLeader): this leader if it is a voter of the new config at the
same address, else the voter of the new config that acked the reconfig and most of what
followed it. A leader that is not the designated one commits nothing more and steps down
(Apache's allowedToCommit=false, then the lost quorum); its learners, told of another leader,
elect again with the new config. The first leader of a version-0 config numbers it
epoch << 32 (Apache's Leader.lead): NEWLEADER carries the last seen config, which is activated
when the leader is established (a leader that config removes steps down at once).

Persist before acknowledge, on this side: the leader counts itself in the epoch and NEWLEADER
quorums only once its own log is durable up to its last logged zxid, and in a proposal's
quorum only once its log holds that proposal durably. A txn is applied here once committed
and durable locally; COMMIT goes to the followers as soon as a quorum (of anyone) has it.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import chain

from ..jute.codes import Err, Op
from ..jute.records import ReconfigRequest, TxnHeader
from ..proto.peer_codec import (
    PROTOCOL_VERSION,
    PacketType,
    PeerProtocolError,
    QuorumPacket,
    decode_int,
    decode_learner_info,
    decode_request,
    decode_revalidate,
    decode_touches,
    encode_int,
    encode_revalidate_reply,
    encode_signature,
    packet_name,
)
from ..tree.acl import KeeperError
from . import bugs
from .context import PeerContext, Verifier
from .reconfig import requested_verifier, verifier_from_string, with_version
from .syncplan import SyncKind, epoch_of, needs_disk, plan_sync
from .verifier import QuorumVerifier

log = logging.getLogger("zkserver.quorum.leader")

ACCEPTED_EPOCH = "acceptedEpoch"
CURRENT_EPOCH = "currentEpoch"
_SYNC_OP = 9  # OpCode.sync in a REQUEST


class Link(IntEnum):
    """Where one learner connection is (Apache's LearnerHandler.run, step by step)."""

    AWAIT_INFO = 0  # its first packet must be FOLLOWERINFO or OBSERVERINFO
    AWAIT_EPOCH = 1  # waiting for the leader to settle the new epoch (getEpochToPropose)
    AWAIT_ACKEPOCH = 2  # LEADERINFO sent
    AWAIT_ELECTED = 3  # waiting for a quorum of epoch acks (waitForEpochAck)
    AWAIT_NEWLEADER_ACK = 4  # synced; NEWLEADER sent; its ACK must be the next packet
    AWAIT_STARTUP = 5  # waiting for the leader to be established (waitForStartup)
    BROADCAST = 6


class Phase(IntEnum):
    DISCOVERY = 0
    SYNCHRONIZATION = 1
    BROADCAST = 2


@dataclass
class LearnerLink:
    cid: int
    connected_ms: int
    sid: int = -1
    observer: bool = False
    state: Link = Link.AWAIT_INFO
    accepted_epoch: int = 0
    last_zxid: int = -1  # from ACKEPOCH
    forwarding: bool = False  # it gets proposals (participants) or INFORMs (observers)
    wait_deadline: int = 0  # ms; a wait in AWAIT_EPOCH/AWAIT_ELECTED ends here
    last_received: int = 0  # ms; the socket time-out runs from here
    read_timeout: int = 0  # ms; initLimit ticks until the NEWLEADER ACK, then syncLimit ticks
    ack_deadline_tick: int = 0  # "synced" while the leader's tick is at most this
    unacked: deque[tuple[int, int]] = field(default_factory=deque)  # (zxid, sent ms), after its NEWLEADER ACK
    held_commits: list[QuorumPacket] = field(default_factory=list)  # between NEWLEADER and UPTODATE
    checking_acks: bool = False
    snap_sync: bool | None = None  # from its sync (SNAP: True, DIFF/TRUNC: False) to its NEWLEADER ACK


@dataclass
class SizeStats:
    """Apache's BufferStats: the last, smallest and largest size recorded; -1 before any."""

    last: int = -1
    min: int = -1
    max: int = -1

    def record(self, size: int) -> None:
        self.last = size
        if self.min == -1 or size < self.min:
            self.min = size
        if size > self.max:
            self.max = size

    def reset(self) -> None:
        self.last = self.min = self.max = -1

    def __str__(self) -> str:
        return f"{self.last}/{self.min}/{self.max}"


@dataclass
class Proposal:
    zxid: int
    data: bytes  # PROPOSAL data: the txn-log entry body
    hdr: TxnHeader
    txn: object
    acks: set[int] = field(default_factory=set)
    verifiers: tuple[Verifier, ...] = ()  # each must have a quorum of acks: the committed config, and a pending one
    new_config: Verifier | None = None  # a reconfig's verifier


class Leader:
    def __init__(self, peer: PeerContext, now_ms: int):
        self.peer = peer
        self.allowed_to_commit = True  # False once a reconfig designated another leader
        s = peer.settings
        self.my_sid = s.my_sid
        self.tick_ms = s.tick_ms
        self.init_ms = s.tick_ms * s.init_limit
        self.sync_ms = s.tick_ms * s.sync_limit
        self.phase = Phase.DISCOVERY
        self.links: dict[int, LearnerLink] = {}
        self.epoch = -1  # highest accepted epoch seen + 1, while being decided
        self.epoch_decided = False
        self.connecting: set[int] = set()
        self.epoch_acked: set[int] = set()
        self.newleader_acked: set[int] = set()
        self.established = False
        self.established_ms: int | None = None  # Apache's leaderStartTime (leader_uptime)
        self.proposal_sizes = SizeStats()  # PROPOSAL data sizes (srvr, mntr's *_proposal_size)
        self.started_ms = now_ms
        self.phase_deadline = now_ms + self.init_ms
        self.tick = 0
        self.next_half_tick = 0
        self.tick_skip = True
        # what the leader's own history is, as it starts to lead
        self.start_zxid = peer.core.tree.last_processed_zxid
        self.summary = (peer.current_epoch, self.start_zxid)
        self.outstanding: dict[int, Proposal] = {}
        self.to_be_applied: deque[Proposal] = deque()
        self.last_proposed = 0
        self.last_committed = 0
        self.pending_syncs: dict[int, list[int]] = {}
        log.info("LEADING: my last zxid 0x%x, accepted epoch %d, current epoch %d",
                 self.start_zxid, peer.accepted_epoch, peer.current_epoch)
        self._epoch_joined(self.my_sid, peer.accepted_epoch, participant=True, now_ms=now_ms)

    # ------------------------------------------------------------ inputs

    def accepted(self, cid: int, now_ms: int) -> None:
        """A learner connected to the quorum port."""
        self.links[cid] = LearnerLink(cid, now_ms, last_received=now_ms, read_timeout=self.init_ms,
                                      ack_deadline_tick=self.tick + self.peer.settings.init_limit
                                      + self.peer.settings.sync_limit)

    def disconnected(self, cid: int) -> None:
        link = self.links.pop(cid, None)
        if link is not None:
            log.warning("******* GOODBYE learner %d (connection %d) ********", link.sid, cid)

    def packet(self, cid: int, pkt: QuorumPacket, now_ms: int) -> None:
        link = self.links.get(cid)
        if link is None:
            return
        link.last_received = now_ms
        try:
            self._dispatch(link, pkt, now_ms)
        except PeerProtocolError as e:
            log.warning("learner %d sent a bad %s: %s; closing its connection", link.sid, packet_name(pkt.type), e)
            self._drop(link)

    def persisted(self, zxid: int, now_ms: int) -> None:
        """The leader's own log is durable up to `zxid`."""
        if not self.established:
            self._own_history_durable(now_ms)
            return
        for p in self.outstanding.values():
            if p.zxid > zxid:
                break
            p.acks.add(self.my_sid)
        self._try_commit()
        self._apply_committed()

    def propose(self, proposals: list[tuple[TxnHeader, object, bytes]], now_ms: int) -> None:
        """Txns the ServerCore prepared (already handed to the local log), in zxid order."""
        for hdr, txn, data in proposals:
            zxid = hdr.zxid
            if zxid != self.last_proposed + 1:
                raise AssertionError(f"proposal 0x{zxid:x} does not follow 0x{self.last_proposed:x}")
            p = self.outstanding[zxid] = Proposal(zxid, data, hdr, txn)
            if hdr.type == Op.RECONFIG:  # Apache's propose: the new config is the last seen one
                p.new_config = verifier_from_string(txn.data.decode())  # type: ignore[attr-defined]
                self.peer.see_config(p.new_config)
            p.verifiers = self._verifiers()
            self.last_proposed = zxid
            self.proposal_sizes.record(len(data))
            packet = QuorumPacket(PacketType.PROPOSAL, zxid, data)
            for link in self.links.values():
                if link.forwarding and not link.observer:
                    self.peer.send(link.cid, packet)
                    if link.checking_acks:
                        link.unacked.append((zxid, now_ms))
            if self.peer.durable_zxid >= zxid or (bugs.ACTIVE and "leader-ack-before-durable" in bugs.ACTIVE):
                p.acks.add(self.my_sid)
        self.peer.metrics.count("proposal_count", len(proposals))
        self._try_commit()

    def timer(self, now_ms: int) -> None:
        for link in list(self.links.values()):
            self._check_link_timeouts(link, now_ms)
        if not self.established:
            if now_ms >= self.phase_deadline:
                self._give_up(now_ms)
            return
        if now_ms >= self.next_half_tick:
            # One pass however late we are (a paused process): Apache's loop waits half a tick
            # from the start of each pass, so a long stall never makes several ticks at once.
            self.next_half_tick = now_ms + (self.tick_ms // 2 or 1)
            self._half_tick(now_ms)

    def deadline(self) -> int:
        times = [self.next_half_tick if self.established else self.phase_deadline]
        for link in self.links.values():
            times.append(link.last_received + link.read_timeout)
            if link.state in (Link.AWAIT_EPOCH, Link.AWAIT_ELECTED):
                times.append(link.wait_deadline)
        return min(times)

    # ------------------------------------------------------------ discovery

    def _dispatch(self, link: LearnerLink, pkt: QuorumPacket, now_ms: int) -> None:
        state = link.state
        if state == Link.BROADCAST:
            self._broadcast_packet(link, pkt, now_ms)
        elif state == Link.AWAIT_INFO:
            self._learner_info(link, pkt, now_ms)
        elif state == Link.AWAIT_ACKEPOCH:
            if pkt.type != PacketType.ACKEPOCH:
                raise PeerProtocolError(f"{packet_name(pkt.type)} where ACKEPOCH was due")
            self._ack_epoch(link, pkt, now_ms)
        elif state == Link.AWAIT_NEWLEADER_ACK:
            self._newleader_ack(link, pkt, now_ms)
        elif state == Link.AWAIT_STARTUP:
            self._broadcast_packet(link, pkt, now_ms)  # Apache reads them once it is up; so can we
        else:  # waiting on the leader: a learner should send nothing now
            raise PeerProtocolError(f"{packet_name(pkt.type)} while it should wait for the leader")

    def _learner_info(self, link: LearnerLink, pkt: QuorumPacket, now_ms: int) -> None:
        if pkt.type not in (PacketType.FOLLOWERINFO, PacketType.OBSERVERINFO):
            raise PeerProtocolError(f"first packet {packet_name(pkt.type)} is not FOLLOWERINFO or OBSERVERINFO")
        info = decode_learner_info(pkt.data, -link.cid)
        if info.config_version > self.peer.verifier.version:
            raise PeerProtocolError("Follower is ahead of the leader (has a later activated configuration)")
        if info.protocol_version < PROTOCOL_VERSION:
            raise PeerProtocolError(f"learner speaks Zab protocol 0x{info.protocol_version:x}, older than 1.0")
        link.sid = info.sid
        link.observer = pkt.type == PacketType.OBSERVERINFO
        for other in list(self.links.values()):
            if other is not link and other.sid == link.sid:
                log.info("learner %d connected again; dropping its older connection", link.sid)
                self._drop(other)
        link.accepted_epoch = epoch_of(pkt.zxid)
        participant = not link.observer and link.sid in self.peer.verifier.voting
        log.info("Follower sid: %d (%s) connected, accepted epoch %d", link.sid,
                 "observer" if link.observer else "participant", link.accepted_epoch)
        link.state = Link.AWAIT_EPOCH
        link.wait_deadline = now_ms + self.init_ms
        if self.epoch_decided and participant and link.accepted_epoch > self.epoch:
            # It accepted a later epoch from a leader attempt that failed, so it would refuse our
            # LEADERINFO and look again, for as long as we lead (Apache's Learner does, and its
            # Leader lets it). A new election's epoch passes the one it accepted: it comes back in.
            self.peer.role_failed(f"voter {link.sid} accepted epoch {link.accepted_epoch}, past ours"
                                  f" ({self.epoch}): a new election lets it in")
            return
        if self.epoch_decided:  # an established (or establishing) leader answers at once
            self._send_leader_info(link)
        else:
            self._epoch_joined(link.sid, link.accepted_epoch, participant, now_ms)

    def _epoch_joined(self, sid: int, accepted_epoch: int, participant: bool, now_ms: int) -> None:
        """Apache's getEpochToPropose: the new epoch is past every accepted epoch seen while the
        leader is being established; a quorum of participants (the leader among them) settles it."""
        if self.epoch_decided:
            return
        if accepted_epoch >= self.epoch:
            self.epoch = accepted_epoch + 1
        if participant:
            self.connecting.add(sid)
        if self.my_sid in self.connecting and self.peer.verifier.contains_quorum(self.connecting):
            self.epoch_decided = True
            self.peer.write_epoch(ACCEPTED_EPOCH, self.epoch)
            log.info("New epoch %d decided with %s; acceptedEpoch written", self.epoch, sorted(self.connecting))
            self.last_proposed = self.last_committed = self.epoch << 32
            self.phase_deadline = now_ms + self.init_ms
            peer = self.peer
            if peer.settings.reconfig_enabled and peer.verifier.version == 0 == peer.last_seen.version:
                peer.see_config(with_version(peer.verifier, self.epoch << 32))
            for link in self.links.values():
                if link.state == Link.AWAIT_EPOCH:
                    self._send_leader_info(link)
            self._own_history_durable(now_ms)

    def _send_leader_info(self, link: LearnerLink) -> None:
        link.state = Link.AWAIT_ACKEPOCH
        self.peer.send(link.cid, QuorumPacket(PacketType.LEADERINFO, self.epoch << 32, encode_int(PROTOCOL_VERSION)))

    def _ack_epoch(self, link: LearnerLink, pkt: QuorumPacket, now_ms: int) -> None:
        current = decode_int(pkt.data, "ACKEPOCH")
        link.last_zxid = pkt.zxid
        if self.phase == Phase.DISCOVERY and current != -1 and (current, pkt.zxid) > self.summary:
            log.warning("Follower %d is ahead of the leader: its (epoch, zxid) (%d, 0x%x) > ours (%d, 0x%x)",
                        link.sid, current, pkt.zxid, *self.summary)
            self._drop(link)
            return
        counted = current != -1 and pkt.zxid != -1 and not link.observer and link.sid in self.peer.verifier.voting
        link.state = Link.AWAIT_ELECTED
        link.wait_deadline = now_ms + self.init_ms
        if self.phase != Phase.DISCOVERY:
            self._sync(link, now_ms)
        else:  # may end discovery, which syncs every learner waiting for it, this one too
            self._epoch_acked(link.sid if counted else None, now_ms)

    def _own_history_durable(self, now_ms: int) -> None:
        """The leader acks its own epoch and NEWLEADER once its whole log is durable."""
        if self.peer.durable_zxid < self.peer.storage.last_logged_zxid or not self.epoch_decided:
            return
        if self.my_sid not in self.epoch_acked:
            self._epoch_acked(self.my_sid, now_ms)
        if self.phase == Phase.SYNCHRONIZATION and self.my_sid not in self.newleader_acked:
            self._newleader_acked(self.my_sid, now_ms)

    def _epoch_acked(self, sid: int | None, now_ms: int) -> None:
        """Apache's waitForEpochAck: a quorum of epoch acks, the leader's among them, ends discovery."""
        if self.phase != Phase.DISCOVERY:
            return
        if sid is not None:
            self.epoch_acked.add(sid)
        if self.my_sid not in self.epoch_acked or not self.peer.verifier.contains_quorum(self.epoch_acked):
            return
        self.peer.write_epoch(CURRENT_EPOCH, self.epoch)
        self.phase = Phase.SYNCHRONIZATION
        self.phase_deadline = now_ms + self.init_ms
        log.info("Epoch %d acked by %s; currentEpoch written; syncing learners", self.epoch, sorted(self.epoch_acked))
        for link in list(self.links.values()):
            if link.state == Link.AWAIT_ELECTED:
                self._sync(link, now_ms)
        self._newleader_acked(self.my_sid, now_ms)  # its epoch ack already waited for its log

    # ------------------------------------------------------------ synchronization

    def _sync(self, link: LearnerLink, now_ms: int) -> None:
        """Queue the learner's catch-up, what is in flight, then NEWLEADER (syncFollower)."""
        peer = self.peer
        committed = [p.zxid for p in peer.committed_log]
        tree_zxid = peer.core.tree.last_processed_zxid
        read, from_disk = self._txn_log_part(link.last_zxid, committed, tree_zxid)
        plan = plan_sync(link.last_zxid, committed, tree_zxid, peer.settings.force_snapshot_sync, read)
        link.snap_sync = plan.kind == SyncKind.SNAP
        self._syncs_in_flight(link.snap_sync)
        if plan.kind == SyncKind.SNAP:
            tree = peer.core.tree
            log.info("Sending snapshot 0x%x to learner %d (its last zxid 0x%x)", tree.last_processed_zxid,
                     link.sid, link.last_zxid)
            peer.send(link.cid, QuorumPacket(PacketType.SNAP, tree.last_processed_zxid))
            peer.send_bytes(link.cid, peer.storage.snapshot_stream(tree, peer.session_timeouts()))
            peer.send_bytes(link.cid, encode_signature())
            peer.metrics.count("snap_count")
        else:
            wanted = set(plan.txns)
            log.info("Sending %s 0x%x to learner %d (its last zxid 0x%x) with %d txns, %d of them from the txn log",
                     plan.kind.value, plan.zxid, link.sid, link.last_zxid, len(plan.txns),
                     sum(1 for p in from_disk if p.zxid in wanted))
            kind = PacketType.DIFF if plan.kind == SyncKind.DIFF else PacketType.TRUNC
            peer.send(link.cid, QuorumPacket(kind, plan.zxid))
            sent = -1
            for p in chain(from_disk, peer.committed_log):
                if p.zxid in wanted:
                    wanted.discard(p.zxid)  # the committed log's first txn is also the disk part's last
                    # A learner logs what follows its DIFF/TRUNC in zxid order, each once: so it must go.
                    assert p.zxid > sent, f"sync of learner {link.sid}: 0x{p.zxid:x} after 0x{sent:x}"
                    sent = p.zxid
                    peer.send(link.cid, QuorumPacket(PacketType.PROPOSAL, p.zxid, p.data))
                    peer.send(link.cid, QuorumPacket(PacketType.COMMIT, p.zxid))
            peer.metrics.count("diff_count")  # Apache counts TRUNC here too
        self._start_forwarding(link, plan.forward_from)
        peer.send(link.cid, QuorumPacket(PacketType.NEWLEADER, self.epoch << 32, str(peer.last_seen).encode()))
        link.state = Link.AWAIT_NEWLEADER_ACK

    def _txn_log_part(self, peer_zxid: int, committed: list[int], tree_zxid: int) -> tuple[list[int], list]:
        """Rule 5 of the sync plan (LearnerHandler.syncFollower reading getProposalsFromTxnLog):
        for a learner behind the committed log, the zxids of the txn log's entries up to the
        committed log's first, and the entries (zxid, data) the learner lacks among them. The
        files are read lazily, each once, and none after the one holding the committed log's
        first txn; nothing is read for a forced snapshot or a negative snapshotSizeFactor. A
        file that cannot be read means nothing read (the learner gets a snapshot), as in Apache."""
        settings = self.peer.settings
        upto = needs_disk(peer_zxid, committed, tree_zxid)
        zxids: list[int] = []
        lacked = []
        if upto is None or settings.force_snapshot_sync or settings.snapshot_size_factor < 0:
            return zxids, lacked
        try:
            for p in self.peer.storage.txn_log_from(peer_zxid, settings.snapshot_size_factor):
                if p.zxid > upto:
                    break
                zxids.append(p.zxid)
                if p.zxid > peer_zxid:
                    lacked.append(p)
                if p.zxid == upto:
                    break
        except OSError as e:
            log.warning("Reading the txn log for learner zxid 0x%x failed: %s", peer_zxid, e)
            return [], []
        return zxids, lacked

    def _syncs_in_flight(self, snap: bool) -> None:
        """Apache's inflight_snap_count / inflight_diff_count: syncs of the kind under way, as a
        sync starts and as its NEWLEADER ACK ends it."""
        n = sum(1 for link in self.links.values() if link.snap_sync is snap)
        self.peer.metrics.observe("inflight_snap_count" if snap else "inflight_diff_count", n)

    def _start_forwarding(self, link: LearnerLink, last_seen: int) -> None:
        """Apache's startForwarding: what is committed but not applied, and (participants only)
        what is proposed, after what the learner will have; from now on it gets the broadcast."""
        for p in self.to_be_applied:
            if p.zxid > last_seen:
                self.peer.send(link.cid, QuorumPacket(PacketType.PROPOSAL, p.zxid, p.data))
                self.peer.send(link.cid, QuorumPacket(PacketType.COMMIT, p.zxid))
        if not link.observer:
            for p in self.outstanding.values():
                if p.zxid > last_seen:
                    self.peer.send(link.cid, QuorumPacket(PacketType.PROPOSAL, p.zxid, p.data))
        link.forwarding = True

    def _newleader_ack(self, link: LearnerLink, pkt: QuorumPacket, now_ms: int) -> None:
        if pkt.type != PacketType.ACK:
            raise PeerProtocolError(f"{packet_name(pkt.type)} where the NEWLEADER ACK was due")
        if pkt.zxid != self.epoch << 32:
            # ZOOKEEPER-4685: an Apache 3.8.0 learner logs its sync's txns asynchronously at NEWLEADER
            # and its sync thread may ACK one, durable, before the NEWLEADER ACK goes out. It is a
            # proposal ACK; the NEWLEADER ACK still follows. (Apache's leader takes the first ACK
            # for it and loses the real one: a leader needing that learner then gives up.)
            log.info("learner %d acked 0x%x before NEWLEADER; still waiting for its NEWLEADER ACK",
                     link.sid, pkt.zxid)
            self._proposal_ack(link, pkt.zxid)
            return
        snap, link.snap_sync = link.snap_sync, None
        if snap is not None:
            self._syncs_in_flight(snap)
        link.read_timeout = self.sync_ms
        link.checking_acks = not link.observer
        if not link.observer and self._voter(link.sid):
            self._newleader_acked(link.sid, now_ms)
        link.state = Link.AWAIT_STARTUP
        if self.established:
            self._uptodate(link)

    def _newleader_acked(self, sid: int | None, now_ms: int) -> None:
        if self.established or self.phase != Phase.SYNCHRONIZATION:
            return
        if sid is not None:
            self.newleader_acked.add(sid)
        if self.my_sid in self.newleader_acked and self._all_quorums(self.newleader_acked):
            self._establish(now_ms)

    def _establish(self, now_ms: int) -> None:
        peer = self.peer
        if peer.last_seen.version > peer.verifier.version:  # Apache's startZkServer: processReconfig
            qv = peer.last_seen
            if self.my_sid not in qv.voting:
                # A pending reconfig removed this leader: activate it, and leave the lead to a voter.
                others = sorted((self.newleader_acked & set(qv.voting)) - {self.my_sid}) or sorted(qv.voting)
                peer.activate(qv, others[0])
                self.allowed_to_commit = False
                peer.role_failed(f"not a voter of the configuration activated at start-up; designated {others[0]}")
                return
            peer.activate(qv, self.my_sid)
        self.established = True
        self.established_ms = now_ms
        self.phase = Phase.BROADCAST
        self.tick = 0
        self.next_half_tick = now_ms + (self.tick_ms // 2 or 1)
        log.info("Leader established in epoch %d with %s", self.epoch, sorted(self.newleader_acked))
        peer.leading(self.epoch)
        for link in self.links.values():
            if link.state == Link.AWAIT_STARTUP:
                self._uptodate(link)

    def _uptodate(self, link: LearnerLink) -> None:
        link.state = Link.BROADCAST
        self.peer.send(link.cid, QuorumPacket(PacketType.UPTODATE, -1))
        for commit in link.held_commits:
            self.peer.send(link.cid, commit)
        link.held_commits.clear()

    # ------------------------------------------------------------ broadcast

    def _broadcast_packet(self, link: LearnerLink, pkt: QuorumPacket, now_ms: int) -> None:
        link.ack_deadline_tick = self.tick + self.peer.settings.sync_limit
        kind = pkt.type
        if kind == PacketType.ACK:
            self._proposal_ack(link, pkt.zxid)
        elif kind == PacketType.PING:
            self.peer.core.touch_sessions(decode_touches(pkt.data))
        elif kind == PacketType.REQUEST:
            self._request(link, pkt)
        elif kind == PacketType.REVALIDATE:
            self.peer.metrics.count("revalidate_count")
            sid, _timeout = decode_revalidate(pkt.data)
            valid = self.established and self.peer.core.revalidate(sid)
            self.peer.send(link.cid, QuorumPacket(PacketType.REVALIDATE, -1, encode_revalidate_reply(sid, valid)))
        else:
            log.warning("unexpected quorum packet from learner %d: %s", link.sid, pkt)

    def _request(self, link: LearnerLink, pkt: QuorumPacket) -> None:
        req = decode_request(pkt.data)
        if req.op == _SYNC_OP:
            # Everything this learner sent before the sync must be proposed before it counts.
            self.peer.flush_core()
            if not self.outstanding:
                self.peer.send(link.cid, QuorumPacket(PacketType.SYNC, 0))
            else:
                self.pending_syncs.setdefault(self.last_proposed, []).append(link.cid)
            return
        ids = [(scheme, ident) for scheme, ident in (pkt.authinfo or ())]
        self.peer.core.submit_forwarded(req.session_id, req.cxid, req.op, req.body, ids)

    def _proposal_ack(self, link: LearnerLink, zxid: int) -> None:
        """Apache's processAck."""
        unacked = link.unacked
        while unacked and unacked[0][0] <= zxid:
            unacked.popleft()
        if zxid & 0xFFFFFFFF == 0 or link.observer:
            return  # a learner that votes in neither config is not counted by any verifier
        p = self.outstanding.get(zxid)
        if p is None:
            return  # committed already, or not ours
        p.acks.add(link.sid)
        self._try_commit()

    def _try_commit(self) -> None:
        """Commit the oldest proposals while each has a quorum (commits stay in zxid order)."""
        committed = 0
        while self.outstanding and self.allowed_to_commit:
            p = next(iter(self.outstanding.values()))
            if not all(v.contains_quorum(p.acks) for v in p.verifiers):
                break
            del self.outstanding[p.zxid]
            self._commit(p)
            committed += 1
        if committed:
            self.peer.metrics.count("commit_count", committed)
            self._apply_committed()

    def _commit(self, p: Proposal) -> None:
        assert p.zxid == self.last_committed + 1, f"commit 0x{p.zxid:x} after 0x{self.last_committed:x}"
        self.last_committed = p.zxid
        self.to_be_applied.append(p)
        if p.new_config is not None:
            # Apache's tryToCommit: activate it here, then tell every learner who leads from now on.
            leader = self._designated_leader(p)
            self.peer.activate(p.new_config, leader)
            if leader != self.my_sid:
                log.warning("the new config designates leader %d: this leader commits nothing more", leader)
                self.allowed_to_commit = False
                self.peer.role_failed(f"a reconfig designated leader {leader}")
            designated = leader.to_bytes(8, "big", signed=True)
            commit = QuorumPacket(PacketType.COMMITANDACTIVATE, p.zxid, designated)
            inform = QuorumPacket(PacketType.INFORMANDACTIVATE, p.zxid, designated + p.data)
        else:
            commit = QuorumPacket(PacketType.COMMIT, p.zxid)
            inform = None
        for link in self.links.values():
            if not link.forwarding:
                continue
            if link.observer:
                inform = inform or QuorumPacket(PacketType.INFORM, p.zxid, p.data)
                self.peer.send(link.cid, inform)
            elif link.state in (Link.AWAIT_NEWLEADER_ACK, Link.AWAIT_STARTUP):
                # ZOOKEEPER-4394: an Apache 3.8.0 follower drops the proposals it holds at NEWLEADER
                # and fails on a COMMIT read before UPTODATE; it gets them right after UPTODATE.
                link.held_commits.append(commit)
            else:
                self.peer.send(link.cid, commit)
        for cid in self.pending_syncs.pop(p.zxid, ()):
            if cid in self.links:
                self.peer.send(cid, QuorumPacket(PacketType.SYNC, 0))

    def _apply_committed(self) -> None:
        """Apply what is both committed and durable here, in order."""
        upto = min(self.last_committed, self.peer.durable_zxid)
        if not self.to_be_applied or self.to_be_applied[0].zxid > upto:
            return
        self.peer.core.persisted(upto)
        while self.to_be_applied and self.to_be_applied[0].zxid <= upto:
            p = self.to_be_applied.popleft()
            self.peer.committed_log.add_encoded(p.zxid, p.data)

    # ------------------------------------------------------------ time

    def _half_tick(self, now_ms: int) -> None:
        """Apache's lead() loop: every other half tick a tick and the quorum check; every half
        tick a PING to every learner."""
        if not self.tick_skip:
            self.tick += 1
            synced = {self.my_sid} | self._synced_learners()
            if not self._all_quorums(synced):
                self.peer.role_failed(f"Not sufficient followers synced, only synced with sids: {sorted(synced)}")
                return
        self.tick_skip = not self.tick_skip
        ping = QuorumPacket(PacketType.PING, self.last_proposed)
        for link in list(self.links.values()):
            if link.state < Link.AWAIT_NEWLEADER_ACK:
                continue  # Apache pings only once its sender runs: after NEWLEADER is queued
            if link.unacked and now_ms - link.unacked[0][1] > self.sync_ms:
                log.warning("Closing connection to learner %d: proposal 0x%x unacked for over %d ms",
                            link.sid, link.unacked[0][0], self.sync_ms)
                self._drop(link)
                continue
            self.peer.send(link.cid, ping)

    def _synced_learners(self) -> set[int]:
        return {link.sid for link in self.links.values()
                if link.state == Link.BROADCAST and self.tick <= link.ack_deadline_tick}

    # ------------------------------------------------------------ reconfiguration

    def _verifiers(self) -> tuple[Verifier, ...]:
        """The configs a quorum is needed in: the committed one, and a newer proposed one."""
        peer = self.peer
        if peer.last_seen.version > peer.verifier.version:
            return (peer.verifier, peer.last_seen)
        return (peer.verifier,)

    def _all_quorums(self, sids: set[int]) -> bool:
        return all(v.contains_quorum(sids) for v in self._verifiers())

    def _voter(self, sid: int) -> bool:
        return any(sid in v.voting for v in self._verifiers())

    def check_reconfig(self, req: ReconfigRequest, zxid: int) -> QuorumVerifier:
        """Apache's PrepRequestProcessor reconfig checks, in its order (the ACL check follows in
        the core): a reconfig in progress, the expected version, the request itself, and a
        connected and synced quorum of the new config."""
        peer = self.peer
        last_seen = peer.last_seen
        if last_seen.version != peer.verifier.version:
            raise KeeperError(Err.RECONFIG_IN_PROGRESS)
        if req.cur_config_id != -1 and req.cur_config_id != last_seen.version:
            raise KeeperError(Err.BAD_VERSION, f"Reconfiguration from version {req.cur_config_id} failed -- last"
                              f" seen version is {last_seen.version}")
        qv = requested_verifier(req, last_seen, zxid, peer.settings.standalone_enabled)
        ids = {link.sid for link in self.links.values() if not link.observer} & self._synced_learners()
        if not qv.contains_quorum((ids | {self.my_sid}) & qv.voting):
            raise KeeperError(Err.NEW_CONFIG_NO_QUORUM, "there must be a connected and synced quorum in new"
                              " configuration")
        return qv

    def _designated_leader(self, p: Proposal) -> int:
        """Apache's getDesignatedLeader: this leader if the new config keeps it as a voter at the
        same quorum address; else, of the new config's voters that acked the reconfig, the one
        that acked the longest run of the proposals after it (the most up to date)."""
        new = p.new_config
        assert new is not None, "only a reconfig's proposal designates a leader"
        mine, was = new.members.get(self.my_sid), p.verifiers[0].members.get(self.my_sid)
        if self.my_sid in new.voting and mine is not None and (was is None or mine.addresses == was.addresses):
            return self.my_sid
        candidates = sorted((p.acks & set(new.voting)) - {self.my_sid})
        if not candidates:  # only this leader votes in it (standaloneEnabled=false): it stays
            return self.my_sid
        best = candidates[0]
        zxid = p.zxid + 1
        while zxid in self.outstanding and candidates:
            candidates = [sid for sid in candidates if sid in self.outstanding[zxid].acks]
            if not candidates:
                return best
            best = candidates[0]
            zxid += 1
        return best

    def reconfig_prepared(self, verifier: QuorumVerifier) -> None:
        self.peer.see_config(verifier)

    def _check_link_timeouts(self, link: LearnerLink, now_ms: int) -> None:
        if now_ms >= link.last_received + link.read_timeout:
            log.warning("learner %d sent nothing for %d ms; closing its connection", link.sid, link.read_timeout)
            self._drop(link)
        elif link.state in (Link.AWAIT_EPOCH, Link.AWAIT_ELECTED) and now_ms >= link.wait_deadline:
            log.warning("learner %d: timed out waiting for the epoch to be settled by a quorum", link.sid)
            self._drop(link)

    def _give_up(self, now_ms: int) -> None:
        what = {Phase.DISCOVERY: "a quorum to settle the epoch" if not self.epoch_decided else
                "a quorum to ack the epoch", Phase.SYNCHRONIZATION: "a quorum to ack NEWLEADER"}[self.phase]
        self.peer.role_failed(f"Timeout while waiting for {what}")

    def _drop(self, link: LearnerLink) -> None:
        self.links.pop(link.cid, None)
        self.peer.close(link.cid)

    def close_all(self) -> None:
        for link in list(self.links.values()):
            self._drop(link)

    def logged_unapplied(self) -> list[Proposal]:
        """What this leader logged but did not apply (to be applied when it goes LOOKING)."""
        return [*self.to_be_applied, *self.outstanding.values()]

    # ------------------------------------------------------------ for the operator

    def forwarding(self, observers: bool) -> list[LearnerLink]:
        """Learners that get the broadcast (Apache's forwardingFollowers, or observingLearners)."""
        return [link for link in self.links.values() if link.forwarding and link.observer == observers]

    def learner_count(self) -> int:
        """Every learner connection, synced or not (Apache's learners)."""
        return len(self.links)

    def learner_sids(self, observers: bool) -> list[int]:
        return sorted(link.sid for link in self.links.values() if link.observer == observers and link.sid >= 0)
