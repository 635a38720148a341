"""Fast Leader Election, as Apache ZooKeeper 3.8 runs it, as a pure state machine.

Theory of operation. Each member keeps one `FastLeaderElection` for its whole life: the
logical clock (the election round) survives elections. Apache runs FLE as two threads (the
WorkerReceiver that answers and queues notifications, and lookForLeader that consumes the
queue with a poll timeout); here both are steps of one object, driven by three inputs and
read through three outputs, with time passed in:

    fle = FastLeaderElection(my_sid, verifier, is_participant, settings)
    fle.start(now_ms, last_logged_zxid, current_epoch)  # lookForLeader: clock+1, vote for
                                                        # myself, notify every voter
    fle.receive(sid, notification, now_ms)              # one notification off the network
    fle.timer(now_ms)                                   # call at (or after) fle.deadline()
    fle.take_outbox() -> [(sid, Notification)]          # to send; never to my own sid
    fle.decision -> (ServerState, Vote) | None          # set once decided, until start()
    fle.update_peer_epoch(epoch)                        # after sync (updateElectionVote)
    fle.settle(state, vote)                             # the member changed state itself

Rules (FastLeaderElection.java; each has a script in tests/interaction/):
- A vote (leader, zxid, peer epoch) beats another by peer epoch, then zxid, then sid
  (votes.better); a non-voter votes (MIN, MIN, MIN) and never counts.
- LOOKING notifications of a newer round reset my round and my votes; older rounds are
  answered (by the receiver step) and otherwise ignored; in my round a better vote is
  adopted and re-announced. When the votes equal to mine form a quorum, I wait
  `finalize_wait_ms` for a better one (any other notification restarts the wait), then
  decide: LEADING if I am the leader, else FOLLOWING (OBSERVING for an observer).
- FOLLOWING/LEADING notifications decide when a quorum of them (in my round, or in any
  round: `outofelection`) names a leader that itself said LEADING (checkLeader).
- The receiver step answers at once: a non-voter (observer, unknown sid) always; a LOOKING
  sender of an older round while I look; any LOOKING sender while I am settled.
- With no notification for the poll interval (200 ms, doubling up to 60 s) I re-send my
  notifications: with a send slot per peer (shell/election_net.py) this also dials peers
  that are not connected, which is all Apache's other branch (`connectAll`) does.

My own notifications loop back through the same receiver step, after the step that sent
them, as Apache's loopback queue delivers them: `take_outbox` never holds my own sid.

A notification with a newer config version while LOOKING is logged and kept in
`newer_config`; the member (quorum/peer.py) activates it with reconfigEnabled and looks again
when its members differ, as Apache 3.8 does. `set_config` installs a config the member
activated: the notifications carry it from then on.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, replace

from ..config import ServerConfig
from ..proto.election_codec import CURRENT_VERSION, Notification, ServerState
from .verifier import QuorumVerifier, config_version
from .votes import MIN_LONG, Vote, VoteTracker, better

log = logging.getLogger("zkserver.election")

_QUEUE_CAPACITY = 100  # QuorumCnxManager.RECV_CAPACITY: what waits for a start() at most
_STATES = frozenset(int(s) for s in ServerState)


@dataclass(frozen=True)
class ElectionSettings:
    """FastLeaderElection's timing; the intervals come from zookeeper.fastleader.*."""

    finalize_wait_ms: int = 200
    min_notification_interval_ms: int = 200
    max_notification_interval_ms: int = 60000

    @classmethod
    def from_config(cls, cfg: ServerConfig) -> ElectionSettings:
        # finalizeWait is a constant in Apache; the minimum interval defaults to it.
        return cls(200, cfg.fle_min_notification_interval_ms, cfg.fle_max_notification_interval_ms)


class FastLeaderElection:
    """One member's election: see the module docstring for the protocol and the interface."""

    def __init__(self, my_sid: int, verifier: QuorumVerifier, is_participant: bool = True,
                 settings: ElectionSettings | None = None, last_seen: QuorumVerifier | None = None) -> None:
        self.my_sid = my_sid
        self.verifier = verifier
        self.last_seen = last_seen  # a newer proposed config (reconfig); None without reconfig
        self.is_participant = is_participant
        self.settings = settings or ElectionSettings()
        self.logical_clock = 0
        self.state = ServerState.LOOKING
        self.current_vote: Vote | None = None  # QuorumPeer.currentVote: the settled vote
        self.decision: tuple[ServerState, Vote] | None = None
        self.newer_config: bytes | None = None
        self._config = verifier.config_bytes()
        self._seen_config: tuple[bytes, int | None] | None = None
        self._initial = self._proposal = (-1, -1, 0)  # (leader, zxid, peer epoch)
        self._recvset: dict[int, Vote] = {}
        self._outofelection: dict[int, Vote] = {}
        self._tracker: VoteTracker | None = None  # the last LOOKING count (the oracle rechecks it)
        self._running = False  # lookForLeader is running
        self._finalizing = False
        self._poll_start = 0
        self._not_timeout = self.settings.min_notification_interval_ms
        self._finalize_deadline = 0
        self._queued: deque[tuple[int, Notification]] = deque(maxlen=_QUEUE_CAPACITY)
        self._loopback: deque[Notification] = deque()
        self._outbox: list[tuple[int, Notification]] = []

    # -- inputs

    def start(self, now_ms: int, last_logged_zxid: int, current_epoch: int) -> None:
        """lookForLeader: a new round, my initial vote to every voter (myself included)."""
        if self.current_vote is None:  # QuorumPeer.startLeaderElection, before the first round
            self.current_vote = Vote(self.my_sid, last_logged_zxid, -1, current_epoch)
        self.state = ServerState.LOOKING
        self.decision = None
        self.logical_clock += 1
        voter = self.my_sid in self.verifier.voting
        self._initial = (self.my_sid if voter else MIN_LONG,
                         last_logged_zxid if self.is_participant else MIN_LONG,
                         current_epoch if self.is_participant else MIN_LONG)
        self._proposal = self._initial
        self._recvset.clear()
        self._outofelection.clear()
        self._tracker = None
        self._running, self._finalizing = True, False
        self._poll_start = now_ms
        self._not_timeout = self.settings.min_notification_interval_ms
        log.info("sid %d: new election, round %d, proposing %s", self.my_sid, self.logical_clock,
                 _vote_text(self._proposal))
        self._send_notifications()
        queued, self._queued = list(self._queued), deque(maxlen=_QUEUE_CAPACITY)
        for sid, n in queued:
            if self._running:
                self._consume(sid, n, now_ms)
        self._drain_loopback(now_ms)

    def receive(self, sid: int, notification: Notification, now_ms: int) -> None:
        """A notification from `sid` (the election connection's peer)."""
        self._receive(sid, notification, now_ms)
        self._drain_loopback(now_ms)

    def timer(self, now_ms: int) -> None:
        """Run what is due: the end of a finalize wait, or a poll timeout (re-send, back off)."""
        if not self._running:
            return
        if self._finalizing:
            if now_ms >= self._finalize_deadline:
                self._decide_proposal()
            return
        if now_ms < self._poll_start + self._not_timeout:
            return
        self._send_notifications()
        self._not_timeout = min(self._not_timeout * 2, self.settings.max_notification_interval_ms)
        log.info("sid %d: no notification, next poll timeout %d ms", self.my_sid, self._not_timeout)
        # QuorumOracleMaj.revalidateVoteset: two voters, the oracle may settle it on a timeout.
        timed_out = self._not_timeout != self.settings.min_notification_interval_ms
        if self.verifier.uses_oracle and self._tracker is not None and timed_out and self._tracker.has_all_quorums():
            self._decide_proposal()
            return
        self._poll_start = now_ms
        self._drain_loopback(now_ms)

    def settle(self, state: ServerState, vote: Vote | None = None) -> None:
        """The member's own state change (QuorumPeer.setPeerState/setCurrentVote) outside a
        decision, e.g. LOOKING during an observer's re-election delay: notifications are then
        queued for the next start(). A settled state other than LOOKING ends a running round."""
        self.state = state
        if vote is not None:
            self.current_vote = vote
        if state != ServerState.LOOKING:
            self._running = self._finalizing = False
            self._queued.clear()
            self._loopback.clear()

    def update_peer_epoch(self, epoch: int) -> None:
        """QuorumPeer.updateElectionVote: after sync my settled vote carries the new epoch."""
        if self.current_vote is not None:
            self.current_vote = replace(self.current_vote, peer_epoch=epoch, version=0)

    # -- outputs

    def take_outbox(self) -> list[tuple[int, Notification]]:
        out, self._outbox = self._outbox, []
        return out

    def deadline(self) -> int | None:
        """When timer() next has work, or None (not electing)."""
        if not self._running:
            return None
        return self._finalize_deadline if self._finalizing else self._poll_start + self._not_timeout

    @property
    def phase(self) -> str:
        """"idle" (not electing), "polling" (exchanging votes) or "finalizing" (a quorum
        backs my proposal; waiting finalize_wait_ms for a better vote)."""
        if not self._running:
            return "idle"
        return "finalizing" if self._finalizing else "polling"

    @property
    def proposal(self) -> Vote:
        """My current proposal in this round (getVote, with the round)."""
        leader, zxid, epoch = self._proposal
        return Vote(leader, zxid, self.logical_clock, epoch)

    # -- the receiver step (WorkerReceiver.run, one message)

    def _receive(self, sid: int, n: Notification, now_ms: int) -> None:
        self._note_config(sid, n)
        if not self._is_voter(sid):
            self._answer_non_voter(sid)
            return
        if n.state not in _STATES:
            log.warning("sid %d: notification from %d with unknown state %d dropped", self.my_sid, sid, n.state)
            return
        if self.state == ServerState.LOOKING:
            if n.state == ServerState.LOOKING and n.election_epoch < self.logical_clock:
                leader, zxid, epoch = self._proposal
                self._send(sid, self._notification(ServerState.LOOKING, leader, zxid, self.logical_clock, epoch))
            if self._running:
                self._consume(sid, n, now_ms)
            else:
                self._queued.append((sid, n))
        elif n.state == ServerState.LOOKING and self.current_vote is not None:
            v = self.current_vote
            self._send(sid, self._notification(self.state, v.leader, v.zxid, v.election_epoch, v.peer_epoch))

    def _answer_non_voter(self, sid: int) -> None:
        # Before the first start() there is no settled vote to answer with yet.
        if self.current_vote is not None:
            v = self.current_vote
            self._send(sid, self._notification(self.state, v.leader, v.zxid, self.logical_clock, v.peer_epoch))

    def _note_config(self, sid: int, n: Notification) -> None:
        if n.config is None:
            return
        if self._seen_config is None or self._seen_config[0] != n.config:
            self._seen_config = (n.config, config_version(n.config.decode("utf-8", errors="replace")))
            if self._seen_config[1] is None:
                log.warning("sid %d: unreadable config in a notification from %d", self.my_sid, sid)
        version = self._seen_config[1]
        if version is not None and version > self.verifier.version and self.state == ServerState.LOOKING:
            if self.newer_config != n.config:
                log.info("sid %d: sid %d sent config version %x (mine %x); ignored",
                         self.my_sid, sid, version, self.verifier.version)
            self.newer_config = n.config

    # -- the lookForLeader loop, one dequeued notification

    def _consume(self, sid: int, n: Notification, now_ms: int) -> None:
        self._poll_start = now_ms  # each notification taken from the queue starts a new poll
        if self._finalizing:
            if not better(self.verifier, (n.leader, n.zxid, n.peer_epoch), self._proposal):
                self._finalize_deadline = now_ms + self.settings.finalize_wait_ms
                return
            self._finalizing = False  # a better vote: back to the loop, which takes it next
        if not (self._is_voter(sid) and self._is_voter(n.leader)):
            log.warning("sid %d: notification from %d for %d ignored: not both voters", self.my_sid, sid, n.leader)
            return
        if n.state == ServerState.LOOKING:
            self._on_looking(sid, n, now_ms)
        elif n.state in (ServerState.FOLLOWING, ServerState.LEADING):
            self._on_settled(sid, n)

    def _on_looking(self, sid: int, n: Notification, now_ms: int) -> None:
        if self._initial[1] == -1 or n.zxid == -1:
            return  # Apache ignores LOOKING votes while either side's zxid is -1
        vote = (n.leader, n.zxid, n.peer_epoch)
        if n.election_epoch > self.logical_clock:
            self.logical_clock = n.election_epoch
            self._recvset.clear()
            self._proposal = vote if better(self.verifier, vote, self._initial) else self._initial
            self._send_notifications()
        elif n.election_epoch < self.logical_clock:
            return
        elif better(self.verifier, vote, self._proposal):
            self._proposal = vote
            self._send_notifications()
        self._recvset[sid] = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        self._tracker = VoteTracker.backing(self._verifiers(), self._recvset, self.proposal)
        if self._tracker.has_all_quorums():
            self._finalizing = True
            self._finalize_deadline = now_ms + self.settings.finalize_wait_ms

    def _on_settled(self, sid: int, n: Notification) -> None:
        """receivedFollowingNotification / receivedLeadingNotification."""
        said = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch, ServerState(n.state), n.version)
        end = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        if n.election_epoch == self.logical_clock:
            self._recvset[sid] = replace(said, version=0)  # Apache records it without a version
            if self._backed(self._recvset, said):
                self._decide(n.leader, end)
                return
        self._outofelection[sid] = said  # ZOOKEEPER-1732: every round, this one included
        if self._backed(self._outofelection, said):
            self.logical_clock = n.election_epoch
            self._decide(n.leader, end)
            return
        if n.state == ServerState.LEADING and self.verifier.need_oracle() and not self.verifier.ask_oracle():
            self._decide(n.leader, end)  # two voters: the oracle says the other one leads

    def _backed(self, votes: dict[int, Vote], said: Vote) -> bool:
        """A quorum backs `said` and its leader is really leading (checkLeader)."""
        if not VoteTracker.backing(self._verifiers(), votes, said).has_all_quorums():
            return False
        if said.leader != self.my_sid:
            leader_vote = votes.get(said.leader)
            return leader_vote is not None and leader_vote.state == ServerState.LEADING
        return self.logical_clock == said.election_epoch

    # -- deciding and sending

    def _decide_proposal(self) -> None:
        self._decide(self._proposal[0], self.proposal)

    def _decide(self, leader: int, vote: Vote) -> None:
        if leader == self.my_sid:
            state = ServerState.LEADING
        else:
            state = ServerState.FOLLOWING if self.is_participant else ServerState.OBSERVING
        self.state, self.current_vote, self.decision = state, vote, (state, vote)
        self._running = self._finalizing = False
        self._queued.clear()
        self._loopback.clear()  # leaveInstance empties the receive queue
        log.info("sid %d: decided %s, %s", self.my_sid, state.name, vote)

    def _send_notifications(self) -> None:
        leader, zxid, epoch = self._proposal
        for sid in sorted(self._voters()):
            self._send(sid, self._notification(ServerState.LOOKING, leader, zxid, self.logical_clock, epoch))

    def _notification(self, state: ServerState, leader: int, zxid: int, election_epoch: int,
                      peer_epoch: int) -> Notification:
        return Notification(int(state), leader, zxid, election_epoch, peer_epoch, CURRENT_VERSION, self._config)

    def _send(self, sid: int, n: Notification) -> None:
        if sid == self.my_sid:
            self._loopback.append(n)
        else:
            self._outbox.append((sid, n))

    def _drain_loopback(self, now_ms: int) -> None:
        while self._loopback:
            self._receive(self.my_sid, self._loopback.popleft(), now_ms)

    # -- membership

    def set_config(self, verifier: QuorumVerifier, last_seen: QuorumVerifier | None, is_participant: bool) -> None:
        """A reconfig activated `verifier` (Apache restarts its FLE with the new config): the
        notifications carry it from now on, and the round's voters follow it."""
        self.verifier = verifier
        self.last_seen = last_seen
        self.is_participant = is_participant
        self._config = verifier.config_bytes()
        if self.newer_config is not None and (config_version(self.newer_config.decode("utf-8", "replace")) or 0) \
                <= verifier.version:
            self.newer_config = None

    def _verifiers(self) -> list[QuorumVerifier]:
        if self.last_seen is not None and self.last_seen.version > self.verifier.version:
            return [self.verifier, self.last_seen]
        return [self.verifier]

    def _voters(self) -> frozenset[int]:
        if self.last_seen is None:
            return self.verifier.voting
        return self.verifier.voting | self.last_seen.voting

    def _is_voter(self, sid: int) -> bool:
        return sid in self._voters()


def _vote_text(vote: tuple[int, int, int]) -> str:
    return f"leader={vote[0]} zxid={vote[1]:#x} epoch={vote[2]}"
