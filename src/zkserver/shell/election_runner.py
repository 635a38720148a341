"""Runs a FastLeaderElection over an ElectionNet on the event loop: the glue, nothing more.

Frames from the net are decoded and given to the election (a payload that is not a
notification is dropped with a log line, as Apache's WorkerReceiver skips it; the connection
stays up); whatever the election put in its outbox is encoded and sent; one loop timer is
kept at the election's deadline. `decided()` waits for the next decision. The member (the
QuorumPeer) owns both objects and calls `start` again after its role ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..config import ServerConfig
from ..proto.election_codec import Notification, NotificationError, ServerState
from ..quorum.election import ElectionSettings, FastLeaderElection
from ..quorum.verifier import QuorumVerifier, verifier_from_config
from ..quorum.votes import Vote
from .clock import SystemClock
from .election_net import Address, ElectionNet, ElectionNetSettings

log = logging.getLogger("zkserver.election")


def oracle_file_reader(path: str) -> Callable[[], bool]:
    """QuorumOracleMaj.askOracle: the oracle file's first character is '1'; unreadable: no."""
    def ask() -> bool:
        try:
            with open(path, "rb") as f:
                return f.read(1) == b"1"
        except OSError:
            return False
    return ask


def election_addresses(verifier: QuorumVerifier) -> dict[int, list[Address]]:
    """Every member's election addresses, from the config the verifier was built from."""
    return {sid: [(a.host, a.election_port) for a in spec.addresses] for sid, spec in verifier.members.items()}


class ElectionRunner:
    """An election and its net on the running loop; see the module docstring."""

    def __init__(self, election: FastLeaderElection, clock_ms: Callable[[], int] | None = None) -> None:
        self.election = election
        self.net: ElectionNet | None = None
        self._clock = clock_ms or SystemClock().mono_ms
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[tuple[ServerState, Vote]]] = []
        self._reported: object = None
        self.dropped = 0  # payloads that were not notifications

    @classmethod
    def from_config(cls, cfg: ServerConfig) -> ElectionRunner:
        """The election of a configured member, with its net (call `await runner.net.start()`)."""
        ask = oracle_file_reader(cfg.oracle_path) if cfg.oracle_path else None
        verifier = verifier_from_config(cfg, ask)
        sid = cfg.server_id
        assert sid is not None, "an ensemble member has a myid"
        election = FastLeaderElection(sid, verifier, cfg.peer_type != "observer", ElectionSettings.from_config(cfg))
        runner = cls(election)
        peers = election_addresses(verifier)
        runner.attach(ElectionNet(sid, peers.get(sid, []), peers, runner.deliver,
                                  ElectionNetSettings.from_config(cfg)))
        return runner

    def attach(self, net: ElectionNet) -> None:
        self.net = net

    # -- inputs

    def start(self, last_logged_zxid: int, current_epoch: int) -> None:
        self.election.start(self._clock(), last_logged_zxid, current_epoch)
        self._flush()

    def deliver(self, sid: int, payload: bytes) -> None:
        """ElectionNet's on_message: one frame from `sid`."""
        try:
            notification = Notification.decode(payload)
        except NotificationError as exc:
            self.dropped += 1
            log.warning("sid %d: dropped a notification from %d: %s", self.election.my_sid, sid, exc)
            return
        self.election.receive(sid, notification, self._clock())
        self._flush()

    def _fire(self) -> None:
        self._timer = None
        self.election.timer(self._clock())
        self._flush()

    # -- outputs

    async def decided(self) -> tuple[ServerState, Vote]:
        """The next decision (at once if one is waiting to be taken)."""
        if self.election.decision is not None and self._reported is not self.election.decision:
            self._reported = self.election.decision
            return self.election.decision
        future: asyncio.Future[tuple[ServerState, Vote]] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return await future

    def _flush(self) -> None:
        assert self.net is not None, "attach a net first"
        for sid, notification in self.election.take_outbox():
            self.net.send(sid, notification.encode())
        self._reschedule()
        decision = self.election.decision
        if decision is not None and self._reported is not decision and self._waiters:
            self._reported = decision
            waiters, self._waiters = self._waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(decision)

    def _reschedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.election.deadline()
        if deadline is not None:
            delay = max(0, deadline - self._clock()) / 1000
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.net is not None:
            self.net.close()
