"""The ensemble member's shell (shell/ensemble.py) around a fake peer: its one timer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
import uvloop
from tests.support.ports import free_port

from zkserver.config import PeerAddress, ServerSpec
from zkserver.quorum.context import PeerSettings
from zkserver.quorum.election import ElectionSettings
from zkserver.quorum.peer import Ready
from zkserver.quorum.verifier import QuorumMaj
from zkserver.shell.election_net import ElectionNetSettings
from zkserver.shell.ensemble import EnsembleOptions, EnsembleShell


@dataclass
class Clock:
    now: int = 1_000

    def mono_ms(self) -> int:
        return self.now


@dataclass
class FakePeer:
    due: int  # what deadline() says
    fired: asyncio.Event = field(default_factory=asyncio.Event)
    leader: None = None  # it never leads: the shell binds no quorum port
    verifier: QuorumMaj = field(default_factory=lambda: QuorumMaj([]))  # what the shell dials and notifies
    last_seen: QuorumMaj = field(default_factory=lambda: QuorumMaj([]))

    def deadline(self) -> int:
        return self.due

    def take_ready(self) -> Ready:
        return Ready()

    def timer(self) -> None:
        self.fired.set()


@dataclass
class FakeRunner:
    clock: Clock = field(default_factory=Clock)
    pumps: int = 0

    def write_client(self, fx: object) -> None:
        pass

    def pump(self) -> None:
        self.pumps += 1


def options() -> EnsembleOptions:
    specs = [ServerSpec(s, (PeerAddress("127.0.0.1", free_port(), free_port()),), "participant") for s in (1, 2, 3)]
    return EnsembleOptions(1, QuorumMaj(specs), PeerSettings(1), ElectionSettings(), ElectionNetSettings())


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_deadline_already_due_arms_the_timer_and_pumping_again_before_it_fires_is_fine(loop_kind: str) -> None:
    # uvloop gives a plain Handle, without when(), for a delay under a millisecond: a second pump
    # before that handle ran used to raise AttributeError out of the pump.
    async def body() -> None:
        runner = FakeRunner()
        peer = FakePeer(due=runner.clock.now - 5)
        shell = EnsembleShell(runner, options(), lambda election: peer)  # type: ignore[arg-type,return-value]
        shell._loop = asyncio.get_running_loop()
        shell.pump()
        shell.pump()
        await asyncio.wait_for(peer.fired.wait(), 5)
        assert runner.pumps == 1  # the timer pumps once it has run the peer's timer
        peer.fired.clear()
        peer.due = runner.clock.now + 10_000  # far: armed, not fired
        shell.pump()
        assert shell._timer is not None and not peer.fired.is_set()
        shell._timer.cancel()

    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as r:
        r.run(body())
