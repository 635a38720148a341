"""The ensemble shell's peer timer on uvloop (the loop `zkserver start` runs)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import uvloop

from zkserver.shell.ensemble import EnsembleShell


def test_the_peer_timer_is_rearmed_when_its_deadline_has_already_passed():
    # Found by the real-process fault runs: uvloop's call_later(0, ...) returns a plain Handle,
    # which has no when(); the next _arm of the same turn raised AttributeError out of every
    # pump (and out of the txn log's durability callback that called it).
    async def main() -> int:
        fired: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        shell = EnsembleShell.__new__(EnsembleShell)  # only what the timer uses
        shell._loop = asyncio.get_running_loop()
        shell._timer = None
        shell.peer = SimpleNamespace(deadline=lambda: 900, timer=lambda: None)
        shell.runner = SimpleNamespace(clock=SimpleNamespace(mono_ms=lambda: 1000),
                                       pump=lambda: fired.done() or fired.set_result(1))
        shell._arm()  # due already: uvloop schedules it as call_soon
        shell._arm()  # the pump after the next input arms it again
        return await asyncio.wait_for(fired, 5)

    assert uvloop.run(main()) == 1
