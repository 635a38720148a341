"""A tiny world for FLE interaction tests: members, a message pump, and a shared clock.

Every notification a member emits goes on the wire *encoded* (Notification.encode) and is
decoded again on delivery, so the scripts exercise the codec too. Messages wait in flight
until a script (or a scenario test) delivers, drops or reorders them; time moves only when
asked. The same World backs the datadriven scripts (script.py) and the Python scenarios.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from zkserver.config import PeerAddress, ServerSpec
from zkserver.proto.election_codec import Notification, ServerState
from zkserver.quorum.election import ElectionSettings, FastLeaderElection
from zkserver.quorum.verifier import QuorumHierarchical, QuorumMaj, QuorumOracleMaj, QuorumVerifier


def spec(sid: int, observer: bool = False) -> ServerSpec:
    return ServerSpec(sid, (PeerAddress("127.0.0.1", 20000 + sid, 30000 + sid),),
                      "observer" if observer else "participant")


def make_verifier(voters: Iterable[int], observers: Iterable[int] = (), version: int = 0,
                  groups: dict[int, tuple[int, ...]] | None = None, weights: dict[int, int] | None = None,
                  oracle: Callable[[], bool] | None = None) -> QuorumVerifier:
    members = [spec(s) for s in voters] + [spec(s, observer=True) for s in observers]
    if oracle is not None:
        return QuorumOracleMaj(members, version, oracle)
    if groups or weights:
        return QuorumHierarchical(members, groups or {}, weights or {}, version)
    return QuorumMaj(members, version)


def show(n: Notification, standard: bytes | None = None) -> str:
    state = ServerState(n.state).name if n.state in range(4) else f"state={n.state}"
    text = (f"{state} leader={n.leader} zxid={n.zxid:#x} round={n.election_epoch} epoch={n.peer_epoch}")
    if n.version != 2:
        text += f" version={n.version}"
    if n.config != standard:
        text += " config=" + ("none" if n.config is None else repr(n.config.decode(errors="replace")))
    return text


@dataclass
class Wire:
    src: int
    dst: int
    payload: bytes

    def notification(self) -> Notification:
        return Notification.decode(self.payload)


@dataclass
class World:
    verifier: QuorumVerifier
    settings: ElectionSettings = field(default_factory=ElectionSettings)
    now: int = 0
    nodes: dict[int, FastLeaderElection] = field(default_factory=dict)
    flight: list[Wire] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    cut: set[tuple[int, int]] = field(default_factory=set)  # directed links that lose everything
    reported: dict[int, object] = field(default_factory=dict)  # the decision last logged per node

    def add(self, sid: int, verifier: QuorumVerifier | None = None,
            settings: ElectionSettings | None = None) -> FastLeaderElection:
        v = verifier or self.verifier
        participant = sid not in v.observers
        node = FastLeaderElection(sid, v, participant, settings or self.settings)
        self.nodes[sid] = node
        return node

    # -- driving one node, collecting what it did

    def _after(self, sid: int) -> None:
        node = self.nodes[sid]
        for dst, n in node.take_outbox():
            self.log.append(f"send {sid}->{dst} {show(n, node.verifier.config_bytes())}")
            if (sid, dst) in self.cut:
                self.log.append(f"lost {sid}->{dst}")
                continue
            self.flight.append(Wire(sid, dst, n.encode()))
        if node.decision is not None and self.reported.get(sid) is not node.decision:
            state, vote = node.decision
            self.log.append(f"decide {sid} {state.name} {vote}")
            self.reported[sid] = node.decision

    def start(self, sid: int, zxid: int = 0, epoch: int = 0) -> None:
        self.nodes[sid].start(self.now, zxid, epoch)
        self._after(sid)

    def inject(self, dst: int, src: int, n: Notification) -> None:
        self.nodes[dst].receive(src, n, self.now)
        self._after(dst)

    def deliver(self, wire: Wire) -> None:
        self.flight.remove(wire)
        if wire.dst not in self.nodes:
            self.log.append(f"unreachable {wire.src}->{wire.dst}")
            return
        node = self.nodes[wire.dst]
        self.log.append(f"recv {wire.src}->{wire.dst} {show(wire.notification(), node.verifier.config_bytes())}")
        node.receive(wire.src, Notification.decode(wire.payload), self.now)
        self._after(wire.dst)

    def matching(self, src: int | None = None, dst: int | None = None) -> list[Wire]:
        return [w for w in self.flight if (src is None or w.src == src) and (dst is None or w.dst == dst)]

    def drop(self, wire: Wire) -> None:
        self.flight.remove(wire)
        self.log.append(f"drop {wire.src}->{wire.dst} {show(wire.notification(), self.verifier.config_bytes())}")

    def fire_timers(self) -> None:
        for sid in sorted(self.nodes):
            deadline = self.nodes[sid].deadline()
            if deadline is not None and deadline <= self.now:
                self.log.append(f"timer {sid}")
                self.nodes[sid].timer(self.now)
                self._after(sid)

    def advance(self, ms: int) -> None:
        self.now += ms
        self.fire_timers()

    def next_deadline(self) -> int | None:
        deadlines = [d for node in self.nodes.values() if (d := node.deadline()) is not None]
        return min(deadlines) if deadlines else None

    def stabilize(self, rng: random.Random | None = None, within_ms: int = 60000, max_steps: int = 100000) -> None:
        """Deliver everything in flight (FIFO, or in a random order with `rng`); when nothing is
        in flight, jump to the next deadline. Stop when nothing is in flight or due, or when the
        next deadline lies more than `within_ms` after the start (a member that cannot decide)."""
        horizon = self.now + within_ms
        for _ in range(max_steps):
            if self.flight:
                self.deliver(self.flight[rng.randrange(len(self.flight))] if rng else self.flight[0])
                continue
            deadline = self.next_deadline()
            if deadline is None or deadline > horizon:
                return
            self.now = max(self.now, deadline)
            self.fire_timers()
        raise AssertionError(f"no quiescence after {max_steps} steps")

    def take_log(self) -> list[str]:
        out, self.log = self.log, []
        return out

    def decisions(self) -> dict[int, tuple[ServerState, int]]:
        return {sid: (n.decision[0], n.decision[1].leader) for sid, n in self.nodes.items() if n.decision}
