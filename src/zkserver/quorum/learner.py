"""A follower's or observer's side of Zab (Apache's Learner, Follower and Observer), as a
state machine.

Theory of operation. A member that decided to follow (or observe) builds a `Learner` for the
leader's sid. It asks the peer to dial the leader's quorum port, then:

  FOLLOWERINFO/OBSERVERINFO -> LEADERINFO (a newer epoch is written to acceptedEpoch first)
  -> ACKEPOCH -> DIFF | TRUNC | SNAP (the history is cut or replaced at once, durably) ->
  PROPOSAL/COMMIT pairs and in-flight proposals, held -> NEWLEADER -> UPTODATE -> broadcast.

Persist before acknowledge, by construction (Apache 3.8.5's order, ZOOKEEPER-3911/4643/4646/
4785): at NEWLEADER every held proposal goes to the log; only when the log reports them
durable (`persisted`) is currentEpoch written and then the NEWLEADER ACK sent. No proposal is
acked before UPTODATE has been acked; afterwards each ACK waits for its proposal to be durable.

One apply path: every committed txn (a COMMIT matched to the oldest logged proposal, or an
observer's INFORM) joins one queue with the leader's SYNC answers, and the queue is applied in
order once the log is durable past each txn - so a sync is answered only after everything
committed before it is applied here. Zxids must be contiguous within an epoch and a COMMIT
must name the oldest uncommitted proposal (Apache exits with code 12 there); a violation
drops the connection and the member goes back to LOOKING, never limps on with a hole
(ZOOKEEPER-4925).

Dynamic reconfiguration (reconfigEnabled), as Apache's Learner: a reconfig PROPOSAL makes its
config the last seen one, as does the config NEWLEADER carries; that one is activated at
UPTODATE, and a reconfig is activated by its COMMITANDACTIVATE (followers) or
INFORMANDACTIVATE (observers) just before it is committed here. When the activation changes
this member's role or its leader, it goes back to LOOKING ("changes proposed in reconfig").
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from enum import IntEnum

from ..jute.codes import Op
from ..jute.records import TxnHeader
from ..proto.peer_codec import (
    LearnerInfo,
    PacketType,
    PeerProtocolError,
    QuorumPacket,
    SnapshotPayload,
    decode_revalidate_reply,
    encode_int,
    encode_learner_info,
    encode_request,
    encode_revalidate,
    encode_touches,
    packet_name,
)
from ..storage.txnlog import decode_entry
from . import bugs
from .context import PeerContext
from .leader import ACCEPTED_EPOCH, CURRENT_EPOCH
from .reconfig import verifier_from_string

log = logging.getLogger("zkserver.quorum.learner")


class Stage(IntEnum):
    CONNECTING = 0
    AWAIT_LEADERINFO = 1
    AWAIT_SYNC = 2  # ACKEPOCH sent: DIFF, TRUNC or SNAP next
    AWAIT_SNAPSHOT = 3  # SNAP read: the database follows
    SYNCING = 4  # holding proposals until NEWLEADER
    PERSISTING = 5  # NEWLEADER read: waiting for the held proposals to be durable
    AWAIT_UPTODATE = 6
    BROADCAST = 7


@dataclass(slots=True)
class Txn:
    hdr: TxnHeader
    txn: object
    digest: tuple[int, int] | None  # (version, tree digest), as the leader sent it
    data: bytes
    synced: bool = False  # came with the sync, before NEWLEADER


_SYNC_MARK = None  # in the apply queue: the leader's SYNC for the oldest pending sync


class Learner:
    def __init__(self, peer: PeerContext, leader_sid: int, now_ms: int):
        self.peer = peer
        s = peer.settings
        self.leader_sid = leader_sid
        self.observer = s.observer
        self.init_ms = s.tick_ms * s.init_limit
        self.sync_ms = s.tick_ms * s.sync_limit
        self.stage = Stage.CONNECTING
        self.cid: int | None = None
        self.dials = 0
        self.retry_at: int | None = None
        self.last_received = now_ms
        self.read_timeout = self.init_ms
        self.new_epoch = -1
        self.sync_started_ms: int | None = None  # the epoch agreed (follower/observer_sync_time)
        self.last_queued = 0
        self.held: list[Txn] = []  # during sync
        self.deferred: list[Txn] = []  # bug switch "newleader-ack-early": logged only at UPTODATE
        self.deferred_commits = 0
        self.held_commits = 0  # how many of the held proposals a COMMIT named, in order
        self.persist_target = 0
        self.logged: deque[Txn] = deque()  # logged, not yet committed (Apache's pendingTxns)
        self.to_log: list[Txn] = []  # the newest of `logged`, not yet handed to the log (flush_log)
        self.unacked: deque[Txn] = deque()  # logged, ACK not sent yet (participants)
        self.apply_queue: deque[Txn | None] = deque()
        self.newleader_config = None  # the config NEWLEADER carried, activated at UPTODATE
        self._dial()

    # ------------------------------------------------------------ connection

    def _dial(self) -> None:
        self.dials += 1
        self.retry_at = None
        self.peer.dial(self.leader_sid)

    def connected(self, cid: int, now_ms: int) -> None:
        self.cid = cid
        self.last_received = now_ms
        self.stage = Stage.AWAIT_LEADERINFO
        peer = self.peer
        kind = PacketType.OBSERVERINFO if self.observer else PacketType.FOLLOWERINFO
        info = LearnerInfo(peer.settings.my_sid, config_version=peer.verifier.version)
        self._send(QuorumPacket(kind, peer.accepted_epoch << 32, encode_learner_info(info)))

    def dial_failed(self, now_ms: int) -> None:
        if self.dials >= self.peer.settings.connect_tries:
            self.peer.role_failed(f"could not connect to leader {self.leader_sid} after {self.dials} tries")
            return
        self.retry_at = now_ms + self.peer.settings.connect_retry_ms

    def disconnected(self, now_ms: int) -> None:
        self.cid = None
        if self.stage == Stage.AWAIT_LEADERINFO:
            # Closed before the leader said anything: a member that does not lead (yet) closes
            # its quorum port's connections at once, where Apache's is not listening and the
            # dial is refused. Either way it is a failed dial, retried as Apache does.
            self.stage = Stage.CONNECTING
            self.dial_failed(now_ms)
            return
        self.peer.role_failed(f"connection to leader {self.leader_sid} lost")

    def _send(self, packet: QuorumPacket) -> None:
        if self.cid is not None:
            self.peer.send(self.cid, packet)

    # ------------------------------------------------------------ inputs

    def packet(self, item: QuorumPacket | SnapshotPayload, now_ms: int) -> None:
        self.last_received = now_ms
        try:
            if isinstance(item, SnapshotPayload):
                self._snapshot(item)
            elif self.stage == Stage.BROADCAST:
                self._broadcast(item)
            elif self.stage == Stage.AWAIT_LEADERINFO:
                self._leader_info(item, now_ms)
            elif self.stage == Stage.AWAIT_SYNC:
                self._sync_start(item)
            else:
                self._syncing(item)
        except ValueError as e:  # PeerProtocolError, JuteError, a snapshot that does not decode
            self.peer.role_failed(f"bad {packet_name(item.type) if isinstance(item, QuorumPacket) else 'snapshot'}"
                                  f" from leader {self.leader_sid}: {e}")

    def persisted(self, zxid: int) -> None:
        if self.stage == Stage.PERSISTING and zxid >= self.persist_target:
            self._ack_newleader()
        elif self.stage == Stage.BROADCAST:
            self._ack_durable(zxid)
            self._apply_durable()

    def timer(self, now_ms: int) -> None:
        if self.retry_at is not None:
            if now_ms >= self.retry_at:
                self._dial()
            return
        if self.cid is not None and now_ms >= self.last_received + self.read_timeout:
            self.peer.role_failed(f"no packet from leader {self.leader_sid} for {self.read_timeout} ms")

    def deadline(self) -> int | None:
        if self.retry_at is not None:
            return self.retry_at
        return self.last_received + self.read_timeout if self.cid is not None else None

    def forward(self, requests: list, revalidations: list[tuple[int, int]]) -> None:
        """Client requests and revalidations the ServerCore hands to the leader."""
        for req in requests:
            if req.op == -10:  # createSession: its timeout is the body
                body = encode_int(req.txn.timeout)
            elif req.op == -11:  # closeSession: no body
                body = b""
            else:
                body = memoryview(req.frame)[8:]
            ids = tuple(req.conn.ids) if req.conn is not None else ()
            self._send(QuorumPacket(PacketType.REQUEST, -1, encode_request(req.session_id, req.xid, req.op, body),
                                    ids))
        for sid, timeout in revalidations:
            self._send(QuorumPacket(PacketType.REVALIDATE, -1, encode_revalidate(sid, timeout)))

    # ------------------------------------------------------------ discovery and sync

    def _leader_info(self, pkt: QuorumPacket, now_ms: int) -> None:
        if pkt.type != PacketType.LEADERINFO:
            raise PeerProtocolError(f"{packet_name(pkt.type)} where LEADERINFO was due")
        peer = self.peer
        epoch = pkt.zxid >> 32
        if epoch > peer.accepted_epoch:
            answer = peer.current_epoch
            peer.write_epoch(ACCEPTED_EPOCH, epoch)
        elif epoch == peer.accepted_epoch:
            answer = -1
        else:
            raise PeerProtocolError(f"Leaders epoch, {epoch} is less than accepted epoch, {peer.accepted_epoch}")
        self.new_epoch = epoch
        self.sync_started_ms = now_ms
        self.stage = Stage.AWAIT_SYNC
        self._send(QuorumPacket(PacketType.ACKEPOCH, peer.storage.last_logged_zxid, encode_int(answer)))

    def _sync_start(self, pkt: QuorumPacket) -> None:
        peer = self.peer
        if pkt.type == PacketType.DIFF:
            log.info("Getting a diff from the leader 0x%x", pkt.zxid)
            self.last_queued = peer.storage.last_logged_zxid
        elif pkt.type == PacketType.TRUNC:
            log.warning("Truncating log to get in sync with the leader 0x%x", pkt.zxid)
            peer.truncate(pkt.zxid)
            self.last_queued = pkt.zxid
        elif pkt.type == PacketType.SNAP:
            log.info("Getting a snapshot from leader 0x%x", pkt.zxid)
            self.last_queued = pkt.zxid
            self.stage = Stage.AWAIT_SNAPSHOT
            return
        else:
            raise PeerProtocolError(f"{packet_name(pkt.type)} where DIFF, TRUNC or SNAP was due")
        self.stage = Stage.SYNCING

    def _snapshot(self, payload: SnapshotPayload) -> None:
        if self.stage != Stage.AWAIT_SNAPSHOT:
            raise PeerProtocolError("a snapshot stream without SNAP")
        self.peer.install_snapshot(payload.data, self.last_queued)
        self.stage = Stage.SYNCING

    def _syncing(self, pkt: QuorumPacket) -> None:
        kind = pkt.type
        if self.stage not in (Stage.SYNCING, Stage.PERSISTING, Stage.AWAIT_UPTODATE):
            raise PeerProtocolError(f"{packet_name(kind)} while waiting for the snapshot")
        if kind == PacketType.PROPOSAL:
            txn = self._txn(pkt)
            if self.stage == Stage.SYNCING:
                self.held.append(txn)
            else:
                self._log(txn)
        elif kind == PacketType.COMMIT:
            self._commit_while_syncing(pkt.zxid)
        elif kind == PacketType.COMMITANDACTIVATE:
            pending = self.held[self.held_commits:] if self.stage == Stage.SYNCING else self.logged
            if pending and pending[0].hdr.zxid == pkt.zxid:
                self._activate(pending[0], pkt.data)
            self._commit_while_syncing(pkt.zxid)
        elif kind == PacketType.INFORMANDACTIVATE and self.observer:
            self._informed_while_syncing(self._informed_config(pkt))
        elif kind == PacketType.INFORM and self.observer:
            self._informed_while_syncing(self._txn(pkt))
        elif kind == PacketType.NEWLEADER:
            self._newleader(pkt)
        elif kind == PacketType.UPTODATE:
            self._uptodate()
        elif kind != PacketType.PING:  # Apache's learners ignore pings while syncing
            raise PeerProtocolError(f"{packet_name(kind)} while syncing")

    def _informed_while_syncing(self, txn: Txn) -> None:
        """An observer's INFORM: a committed txn, held until UPTODATE if it comes during sync."""
        if self.stage == Stage.SYNCING:
            self.held.append(txn)
            self.held_commits += 1
        else:
            self._log(txn)
            self._commit(txn.hdr.zxid)

    def _commit_while_syncing(self, zxid: int) -> None:
        if self.stage == Stage.SYNCING:
            if self.held_commits >= len(self.held) or self.held[self.held_commits].hdr.zxid != zxid:
                raise PeerProtocolError(f"COMMIT 0x{zxid:x} does not name the next held proposal")
            self.held_commits += 1
        else:
            self._commit(zxid)

    def _newleader(self, pkt: QuorumPacket) -> None:
        if self.stage != Stage.SYNCING:
            raise PeerProtocolError("a second NEWLEADER")
        if pkt.zxid != self.new_epoch << 32:
            raise PeerProtocolError(f"NEWLEADER 0x{pkt.zxid:x} is not of epoch {self.new_epoch}")
        if self.peer.settings.reconfig_enabled and pkt.data and len(pkt.data) > 1:
            try:
                self.newleader_config = verifier_from_string(pkt.data.decode())
                self.peer.see_config(self.newleader_config)
            except (ValueError, UnicodeDecodeError) as e:  # Apache only logs it too
                log.warning("NEWLEADER carried a config that does not parse: %s", e)
        held, committed = self.held, self.held_commits
        self.held, self.held_commits = [], 0
        for txn in held:
            txn.synced = True
        self.read_timeout = self.sync_ms
        self.stage = Stage.PERSISTING
        if bugs.ACTIVE and "newleader-ack-early" in bugs.ACTIVE:
            self.deferred, self.deferred_commits = held, committed
            self._ack_newleader()
            return
        for txn in held:
            self._log(txn)
        self.flush_log()
        for txn in held[:committed]:
            self._commit(txn.hdr.zxid)
        if bugs.ACTIVE and "epoch-before-txns" in bugs.ACTIVE:
            self.peer.write_epoch(CURRENT_EPOCH, self.new_epoch)
        self.persist_target = held[-1].hdr.zxid if held else 0
        if self.peer.durable_zxid >= self.persist_target:
            self._ack_newleader()

    def _ack_newleader(self) -> None:
        """The held proposals are durable: now currentEpoch, then the ACK (in this order)."""
        self.peer.write_epoch(CURRENT_EPOCH, self.new_epoch)
        self.stage = Stage.AWAIT_UPTODATE
        self._send(QuorumPacket(PacketType.ACK, self.new_epoch << 32))

    def _uptodate(self) -> None:
        if self.stage != Stage.AWAIT_UPTODATE:
            raise PeerProtocolError("UPTODATE before NEWLEADER was acknowledged")
        if self.newleader_config is not None and self.peer.activate(self.newleader_config, None):
            self.peer.role_failed("changes proposed in reconfig")
            return
        self._send(QuorumPacket(PacketType.ACK, self.new_epoch << 32))
        self.peer.write_deferred_snapshot()  # only with the bug switch "snap-not-durable"
        if self.deferred:  # only with the bug switch "newleader-ack-early"
            late, self.deferred = self.deferred, []
            for txn in late:
                self._log(txn)
            for txn in late[:self.deferred_commits]:
                self._commit(txn.hdr.zxid)
        self.stage = Stage.BROADCAST
        self.peer.following(self.new_epoch)
        self._ack_durable(self.peer.durable_zxid)
        self._apply_durable()

    # ------------------------------------------------------------ broadcast

    def _broadcast(self, pkt: QuorumPacket) -> None:
        kind = pkt.type
        if kind == PacketType.PING:
            touches = encode_touches(self.peer.core.take_touches().items())
            self._send(QuorumPacket(PacketType.PING, pkt.zxid, touches, pkt.authinfo))
        elif kind == PacketType.PROPOSAL and not self.observer:
            self.peer.metrics.count("learner_proposal_received_count")
            self._log(self._txn(pkt))
        elif kind == PacketType.COMMIT and not self.observer:
            self.peer.metrics.count("learner_commit_received_count")
            self._commit(pkt.zxid)
            self._apply_durable()
        elif kind == PacketType.INFORM and self.observer:
            self.peer.metrics.count("learner_commit_received_count")
            txn = self._txn(pkt)
            self._log(txn)
            self._commit(txn.hdr.zxid)
            self._apply_durable()
        elif kind == PacketType.COMMITANDACTIVATE and not self.observer:
            self.peer.metrics.count("learner_commit_received_count")
            if self.logged and self.logged[0].hdr.zxid == pkt.zxid:
                self._activate(self.logged[0], pkt.data)
            self._commit(pkt.zxid)
            self._apply_durable()
        elif kind == PacketType.INFORMANDACTIVATE and self.observer:
            self.peer.metrics.count("learner_commit_received_count")
            txn = self._informed_config(pkt)
            self._log(txn)
            self._commit(txn.hdr.zxid)
            self._apply_durable()
        elif kind == PacketType.SYNC:
            self.apply_queue.append(_SYNC_MARK)
            self._apply_durable()
        elif kind == PacketType.REVALIDATE:
            sid, valid = decode_revalidate_reply(pkt.data)
            self.peer.core.revalidated(sid, valid)
        elif kind == PacketType.UPTODATE:
            log.error("Received an UPTODATE message after the learner started")
        elif kind not in (PacketType.PROPOSAL, PacketType.COMMIT, PacketType.COMMITANDACTIVATE):  # observers
            log.warning("unknown quorum packet from the leader: %s", pkt)

    def _txn(self, pkt: QuorumPacket) -> Txn:
        data = pkt.data or b""
        hdr, record, digest = decode_entry(data)
        zxid = hdr.zxid
        if zxid != pkt.zxid and pkt.type != PacketType.INFORM:
            raise PeerProtocolError(f"proposal 0x{pkt.zxid:x} carries txn 0x{zxid:x}")
        last = self.last_queued
        self.last_queued = zxid
        if bugs.ACTIVE and "commit-hole" in bugs.ACTIVE:
            return Txn(hdr, record, digest, data)
        # Within an epoch every zxid follows the last; a new epoch starts anywhere above 0
        # (zookeeper.testingonly.initialZxid starts it high).
        if (zxid >> 32 == last >> 32 and zxid != last + 1) or zxid >> 32 < last >> 32 or zxid & 0xFFFFFFFF == 0:
            raise PeerProtocolError(f"txn 0x{zxid:x} does not follow 0x{last:x} (a hole in the history)")
        if hdr.type == Op.RECONFIG and pkt.type == PacketType.PROPOSAL and self.peer.settings.reconfig_enabled:
            self.peer.see_config(_config_of(record))
        return Txn(hdr, record, digest, data)

    # ------------------------------------------------------------ reconfiguration

    def _informed_config(self, pkt: QuorumPacket) -> Txn:
        """INFORMANDACTIVATE: the designated leader, then the txn as INFORM carries it."""
        data = pkt.data or b""
        if len(data) < 8:
            raise PeerProtocolError("INFORMANDACTIVATE without a designated leader")
        txn = self._txn(QuorumPacket(PacketType.INFORM, pkt.zxid, data[8:]))
        self._activate(txn, data[:8])
        return txn

    def _activate(self, txn: Txn, designated: bytes | None) -> None:
        """A reconfig commits: its config is activated before the txn is applied (Apache's
        processReconfig); a change of role or leader sends this member back to LOOKING."""
        if txn.hdr.type != Op.RECONFIG:
            raise PeerProtocolError(f"an ACTIVATE for txn 0x{txn.hdr.zxid:x}, which is no reconfig")
        if designated is None or len(designated) < 8:
            raise PeerProtocolError("an ACTIVATE without a designated leader")
        if not self.peer.settings.reconfig_enabled:
            return  # Apache's processReconfig does nothing then: a plain commit
        leader = int.from_bytes(designated[:8], "big", signed=True)
        if self.peer.activate(_config_of(txn.txn), leader):
            self.peer.role_failed("changes proposed in reconfig")

    def _log(self, txn: Txn) -> None:
        self.to_log.append(txn)
        self.logged.append(txn)
        if self.observer:
            return
        if bugs.ACTIVE and "ack-before-durable" in bugs.ACTIVE and self.stage == Stage.BROADCAST:
            self._send(QuorumPacket(PacketType.ACK, txn.hdr.zxid))
            return
        self.unacked.append(txn)

    def flush_log(self) -> None:
        """Hand the proposals received so far to the log, in one append: the peer calls this at
        the end of each read, so the proposals of one read cost one write. Nothing of them is
        acked or applied before the log says they are durable, so the wait changes no order."""
        if self.to_log:
            batch, self.to_log = self.to_log, []
            self.peer.storage.append([(t.hdr, t.txn) for t in batch], [t.digest for t in batch])

    def _commit(self, zxid: int) -> None:
        if not self.logged or self.logged[0].hdr.zxid != zxid:
            head = f"0x{self.logged[0].hdr.zxid:x}" if self.logged else "nothing"
            raise PeerProtocolError(f"COMMIT 0x{zxid:x} but the oldest pending proposal is {head}")
        self.apply_queue.append(self.logged.popleft())

    def _ack_durable(self, zxid: int) -> None:
        """ACK each logged proposal once durable (never before UPTODATE: see the module doc)."""
        unacked = self.unacked
        while unacked and unacked[0].hdr.zxid <= zxid:
            self._send(QuorumPacket(PacketType.ACK, unacked.popleft().hdr.zxid))

    def _apply_durable(self) -> None:
        if self.stage != Stage.BROADCAST:
            return
        queue, peer = self.apply_queue, self.peer
        while queue:
            head = queue[0]
            if head is None:
                queue.popleft()
                peer.core.sync_answered()
                continue
            if head.hdr.zxid > peer.durable_zxid:
                return
            queue.popleft()
            peer.core.apply_remote(head.hdr, head.txn)
            if not (head.synced and bugs.ACTIVE and "commit-hole" in bugs.ACTIVE):
                peer.committed_log.add_encoded(head.hdr.zxid, head.data)

    def logged_unapplied(self) -> list[Txn]:
        """What this learner logged but did not apply (to be applied when it goes LOOKING).
        Proposals of a read the role failed in the middle of were never handed to the log: as if
        the connection had broken before they came, they are not part of this member's history."""
        unlogged = {id(t) for t in self.to_log}
        return [t for t in self.apply_queue if t is not None and id(t) not in unlogged] + \
            [t for t in self.logged if id(t) not in unlogged]


def _config_of(record: object):
    """The config a reconfig txn (a SetDataTxn on /zookeeper/config) carries."""
    try:
        return verifier_from_string((record.data or b"").decode())  # type: ignore[attr-defined]
    except (AttributeError, UnicodeDecodeError, ValueError) as e:
        raise PeerProtocolError(f"a reconfig txn whose config does not parse: {e}") from None
