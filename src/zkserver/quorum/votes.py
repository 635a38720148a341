"""Votes as Apache's FastLeaderElection compares and counts them (Vote.java, SyncedLearnerTracker).

- `Vote.matches` is Apache's `Vote.equals`: when either vote is LOOKING, leader, zxid,
  election epoch and peer epoch must all agree; between two settled votes only the leader
  and peer epoch must, and only the leader when exactly one of the two has format version 0
  (a pre-3.4.6 sender, or a vote Apache built without a version).
- `better` is `totalOrderPredicate`: (peer epoch, zxid, sid) compared as signed longs,
  and a weight-0 server (hierarchical quorums) never wins.
- `VoteTracker` counts the sids whose vote matches, per verifier, voters only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..proto.election_codec import ServerState
from .verifier import QuorumVerifier

MIN_LONG = -(1 << 63)  # Long.MIN_VALUE: the vote of a server that cannot be elected


@dataclass(frozen=True, slots=True)
class Vote:
    """A proposal (leader, its zxid, its epoch) in an election round, as a sender stated it."""

    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    state: ServerState = ServerState.LOOKING
    version: int = 0

    def matches(self, other: Vote) -> bool:
        if self.state == ServerState.LOOKING or other.state == ServerState.LOOKING:
            return (self.leader == other.leader and self.zxid == other.zxid
                    and self.election_epoch == other.election_epoch and self.peer_epoch == other.peer_epoch)
        if (self.version > 0) != (other.version > 0):
            return self.leader == other.leader  # ZOOKEEPER-1732: a mixed ensemble
        return self.leader == other.leader and self.peer_epoch == other.peer_epoch

    def __str__(self) -> str:
        return (f"leader={self.leader} zxid={self.zxid:#x} round={self.election_epoch} "
                f"epoch={self.peer_epoch}")


def better(verifier: QuorumVerifier, new: tuple[int, int, int], cur: tuple[int, int, int]) -> bool:
    """totalOrderPredicate: does (leader, zxid, peer epoch) `new` beat `cur`?"""
    new_sid, new_zxid, new_epoch = new
    cur_sid, cur_zxid, cur_epoch = cur
    if verifier.weight(new_sid) == 0:
        return False
    return (new_epoch, new_zxid, new_sid) > (cur_epoch, cur_zxid, cur_sid)


class VoteTracker:
    """SyncedLearnerTracker: the voters that back one vote, checked against every verifier."""

    __slots__ = ("_acks",)

    def __init__(self, verifiers: Iterable[QuorumVerifier]) -> None:
        self._acks: list[tuple[QuorumVerifier, set[int]]] = [(v, set()) for v in verifiers]

    def add(self, sid: int) -> None:
        for verifier, acks in self._acks:
            if sid in verifier.voting:
                acks.add(sid)

    def has_all_quorums(self) -> bool:
        return all(verifier.contains_quorum(acks) for verifier, acks in self._acks)

    @classmethod
    def backing(cls, verifiers: Iterable[QuorumVerifier], votes: Mapping[int, Vote], vote: Vote) -> VoteTracker:
        """getVoteTracker: every sid whose recorded vote matches `vote`."""
        tracker = cls(verifiers)
        for sid, recorded in votes.items():
            if vote.matches(recorded):
                tracker.add(sid)
        return tracker
