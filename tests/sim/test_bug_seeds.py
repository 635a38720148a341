"""Each re-introduced ZooKeeper bug is caught by the simulator: its first catching seed, pinned.

For every switch of zkserver.quorum.bugs, docs/testing.md ("Re-introduced ZooKeeper bugs")
gives the first seed of a sweep from 0 that failed with that bug's violation. Here each such
seed runs twice, in its drawn shape and options (the shape is pinned below, so that a change to
how seeds draw shows up here as a changed shape, not as a silently different world): with the
switch on it must fail with the checker that caught it, with every switch off it must pass. A
refactor that removes a safeguard turns the second run red; one that moves the switch out of
the simulator's reach turns the first. Worlds run in this process, with the switch turned on
the way the CLI does (runner.build, from `--bug`); every switch is off again after each test.

When a change to the simulator redraws these worlds, sweep again (`python -m zkserver.sim
--seeds 0-1999 --bug NAME`, stopping at the first failure whose violation is the bug's) and
update this table and the one in docs/testing.md together.
"""

from __future__ import annotations

import pytest

from zkserver.quorum import bugs
from zkserver.sim import __main__ as cli
from zkserver.sim import runner
from zkserver.sim.faults import describe_shape

# switch -> (first catching seed in the drawn mix, its drawn shape, extra CLI arguments, the check)
CATCHES: dict[str, tuple[int, str, tuple[str, ...], str]] = {
    "commit-hole": (40, "3 voters + 2 observers", (), "durability"),
    "diff-not-trunc": (2, "3 voters + 1 observer", (), "history"),
    "fle-receiver-dies": (18, "5 voters", (), "members up"),
    "newleader-ack-early": (1, "5 voters", (), "recovery"),
    "snap-not-durable": (2, "3 voters + 1 observer", (), "durability"),
    "epoch-before-txns": (279, "3 voters + 1 observer", (), "durability"),
    "ack-before-durable": (1058, "3 voters + 1 observer", (), "durability"),
    "leader-ack-before-durable": (428, "3 voters", (), "durability"),
}


@pytest.fixture(autouse=True)
def _switches_off():
    bugs.disable_all()
    yield
    bugs.disable_all()


def test_every_switch_has_a_catching_seed() -> None:
    assert set(CATCHES) == set(bugs.KNOWN)


@pytest.mark.parametrize("switch", sorted(CATCHES))
def test_the_catching_seed_fails_with_the_switch_on_and_passes_with_it_off(switch: str) -> None:
    seed, shape, extra, check = CATCHES[switch]
    on = cli.parse_args(["--seed", str(seed), *extra, "--bug", switch])
    assert describe_shape(runner.options_for(seed, on)) == shape, "the seed draws another world now"
    caught = runner.build(seed, on).run()
    assert switch in bugs.ACTIVE, "the switch was on while the world ran"
    assert check in {v.check for v in caught.violations}, \
        f"{switch}: expected a {check!r} violation, got {[(v.check, v.detail[:120]) for v in caught.violations]}"
    clean = runner.build(seed, cli.parse_args(["--seed", str(seed), *extra])).run()
    assert not bugs.ACTIVE
    assert clean.ok, f"seed {seed} without {switch}: {[(v.check, v.detail[:200]) for v in clean.violations]}"
