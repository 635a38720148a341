"""Whole worlds: determinism, the swarm options and schedule, the CLI, and the CI run of seeds.

The CI run (`test_ci_seeds`) runs ZKSERVER_SIM_SEEDS seeds (default 500, from
ZKSERVER_SIM_FIRST_SEED, default 0), each in the shape it draws (standalone, 3 or 5 voters, 0-2
observers), with the simulated clients and every checker, in two worker processes; any failing
seed fails the test with its reproduction. `test_long_sweep` (marked slow) runs
ZKSERVER_SIM_LONG_SEEDS seeds the same way, when that is set.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from zkserver.sim import __main__ as cli
from zkserver.sim import runner
from zkserver.sim.faults import FAULT_KINDS, SwarmOptions, draw_options, draw_schedule, parse_faults
from zkserver.sim.scheduler import named_stream
from zkserver.sim.world import MIN_LIVE_MS, Violation, World

ROOT = Path(__file__).resolve().parents[2]
BASIC = ["--members", "1", "--workload", "tests.sim.basic:workload", "--check",
         "tests.sim.basic:no_acknowledged_write_lost", "--check", "tests.sim.basic:log_is_contiguous"]


def args(*extra: str) -> object:
    return cli.parse_args(["--seed", "0", *BASIC, *extra])


# ---------------------------------------------------------------- determinism


def test_the_same_seed_gives_the_same_trace_and_result() -> None:
    seen = set()
    for seed in (1, 2, 3):
        a, b = runner.build(seed, args()).run(), runner.build(seed, args()).run()
        assert (a.trace_digest, a.ok, a.ops, a.events, a.virtual_ms) == (b.trace_digest, b.ok, b.ops, b.events,
                                                                          b.virtual_ms)
        seen.add(a.trace_digest)
    assert len(seen) == 3


def test_the_trace_is_the_same_in_another_process_with_another_hash_seed() -> None:
    # Power cuts in the middle of snapshots: the trace then names a snapshot's temp file, which
    # storage names after the writing process.
    faults = ("--faults", "torn=40,power=40", "--set", "snap_count=50")
    world = runner.build(25, args(*faults, "--trace-lines", "100000"))
    here = world.run()
    assert any("tmp.snapshot." in line for line in world.trace.tail("m1"))
    out = _cli("--seed", "25", *faults, *BASIC, env={"PYTHONHASHSEED": "12345"}, code=None)
    assert f"trace {here.trace_digest}" in out


# ---------------------------------------------------------------- options and schedule


def test_options_are_drawn_per_seed_in_calm_mixed_and_storm_flavours() -> None:
    flavours = Counter()
    for seed in range(300):
        o = draw_options(named_stream(seed, "options"), SwarmOptions())
        assert o == draw_options(named_stream(seed, "options"), SwarmOptions())
        assert "bridge" not in o.faults and "ring" not in o.faults, "they need three members"
        assert o.latency_ms <= o.session_timeout_ms / 40 * 5 / 10 + 1e-9 or o.latency_ms <= 5.0
        flavours[o.flavour] += 1
        if o.flavour == "calm":
            assert o.faults == {}
    assert set(flavours) == {"calm", "mixed", "storm"}
    assert flavours["mixed"] > flavours["calm"] > 0 and flavours["storm"] > 0


def test_the_schedule_stays_in_the_fault_phase_and_covers_every_kind() -> None:
    o = SwarmOptions(members=5, clients=4, faults=parse_faults("all"), fault_ms=60_000)
    kinds = set()
    for seed in range(5):
        schedule = draw_schedule(named_stream(seed, "faults"), o, [f"m{i}" for i in range(1, 6)],
                                 [f"c{i}" for i in range(1, 5)])
        assert schedule == sorted(schedule, key=lambda e: (e.at, e.kind, e.target))
        for ev in schedule:
            assert 0 < ev.at < o.fault_ms and (ev.until is None or ev.at <= ev.until <= o.fault_ms)
            kinds.add(ev.kind)
    assert kinds == set(FAULT_KINDS)


def test_a_majorities_ring_lets_every_member_see_a_majority_but_no_two_the_same() -> None:
    o = SwarmOptions(members=5, faults={"ring": 60.0}, fault_ms=10_000)
    members = [f"m{i}" for i in range(1, 6)]
    [ev, *_] = draw_schedule(named_stream(1, "faults"), o, members, [])
    blocked = set(ev.params["pairs"])
    sees = {m: frozenset(x for x in members if (m, x) not in blocked) for m in members}
    assert all(len(v) == 3 for v in sees.values())
    assert len(set(sees.values())) == 5


def test_options_can_be_set_by_hand() -> None:
    o = SwarmOptions().with_overrides({"fault_ms": "5000", "msg_loss": "0.25", "faults": "power=2,reset"})
    assert (o.fault_ms, o.msg_loss, o.faults, o.flavour) == (5000, 0.25, {"power": 2.0, "reset": 3.0}, "set")
    with pytest.raises(ValueError, match="unknown option"):
        SwarmOptions().with_overrides({"nonsense": "1"})
    with pytest.raises(ValueError, match="unknown fault kind"):
        parse_faults("meteor")


# ---------------------------------------------------------------- the command line


def _cli(*argv: str, env: dict[str, str] | None = None, code: int | None = 0) -> str:
    """Run `python -m zkserver.sim` from the repository root; check its exit code (None: any)."""
    proc = subprocess.run([sys.executable, "-m", "zkserver.sim", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})})
    assert code is None or proc.returncode == code, proc.stdout + proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def test_one_seed_prints_its_options_schedule_and_verdict() -> None:
    out = _cli("--seed", "9", "--faults", "kill=30,partition=30", "--set", "fault_ms=10000", *BASIC)
    assert out.startswith("seed 9  (standalone, set)\noptions: members=1 observers=0 clients=3 fault_ms=10000 ")
    assert "faults: kill 30.0/min, partition 30.0/min" in out
    assert re.search(r"^ +\d+ ms  partition \{", out, re.M) and re.search(r"^ +\d+ ms  kill +m1, restart", out, re.M)
    assert re.search(r"^result: ok - \d+ virtual ms, \d+ events, \d+ operations \(\d+ ok\), \d+ faults", out, re.M)
    assert "--- trace" not in out


def always_violated(world: World) -> list[Violation]:
    """A check for the CLI test: always fails, naming the member's last zxid."""
    return [Violation("demo", f"m1 ended at zxid 0x{world.members[0].core.zxid:x}")]


def test_a_failing_seed_prints_the_violation_the_traces_and_a_reproduction() -> None:
    out = _cli("--seed", "3", "--set", "fault_ms=3000", "--trace-lines", "5", *BASIC, "--check",
               "tests.sim.test_world:always_violated", code=1)
    assert "result: FAILED" in out and "violated: demo (1)\n  m1 ended at zxid 0x" in out
    for place in ("faults", "world", "m1", "c1", "c1>m1", "m1>c1"):
        assert f"--- trace of {place} (last 5 lines)" in out
    assert ("reproduce: python -m zkserver.sim --seed 3 --members 1 --set fault_ms=3000 "
            + " ".join(BASIC[2:])) in out


def test_a_sweep_reports_seeds_per_minute() -> None:
    out = _cli("--seeds", "0-5", "--jobs", "2", *BASIC, code=None)
    summary = re.search(r"^6 seeds in [\d.]+ s with 2 jobs: \d+ seeds/minute, [\d.]+ s CPU and \d+ operations per "
                        r"seed; (\d+) failed$", out, re.M)
    assert summary
    assert out.count("  python -m zkserver.sim --seed ") == int(summary.group(1)), "a reproduction per failed seed"


# ---------------------------------------------------------------- the CI run


def _sweep(count: int) -> None:
    """`count` seeds from ZKSERVER_SIM_FIRST_SEED (default 0), each of its drawn shape, with the
    simulated clients and every checker, in two worker processes."""
    first = int(os.environ.get("ZKSERVER_SIM_FIRST_SEED", "0"))
    seeds = range(first, first + count)
    jobs = max(1, min(2, os.cpu_count() or 1))
    outcomes = list(runner.run_seeds(seeds, cli.parse_args(["--seeds", f"{seeds[0]}-{seeds[-1]}"]), jobs))
    failed = sorted((o for o in outcomes if not o.ok), key=lambda o: o.seed)
    shapes = Counter(o.shape for o in outcomes)
    print(f"{count} seeds, {sum(o.cpu_s for o in outcomes) / count:.3f} s CPU per seed; shapes {dict(shapes)}")
    assert not failed, "\n".join(f"{runner.first_line(o)}\n  reproduce: python -m zkserver.sim --seed {o.seed}"
                                 for o in failed)
    assert sum(o.ops for o in outcomes) > 500 * count, "the worlds carried traffic"
    if count >= 100:
        assert shapes["standalone"] and any("3 voters" in s for s in shapes) and any("5 voters" in s for s in shapes)


@pytest.mark.timeout(1800)  # about 4 minutes on two idle cores (docs/testing.md); the limit catches a hang
def test_ci_seeds() -> None:
    _sweep(int(os.environ.get("ZKSERVER_SIM_SEEDS", "500")))


@pytest.mark.slow
@pytest.mark.timeout(0)
@pytest.mark.skipif("ZKSERVER_SIM_LONG_SEEDS" not in os.environ, reason="set ZKSERVER_SIM_LONG_SEEDS=<seeds>")
def test_long_sweep() -> None:
    _sweep(int(os.environ["ZKSERVER_SIM_LONG_SEEDS"]))


def test_an_ensemble_world_replays_exactly_here_and_in_another_process() -> None:
    shape = ["--members", "3", "--observers", "1"]
    a, b = (runner.build(8, cli.parse_args(["--seed", "8", *shape])).run() for _ in range(2))
    assert (a.trace_digest, a.ok, a.ops, a.events, a.virtual_ms) == (b.trace_digest, b.ok, b.ops, b.events,
                                                                      b.virtual_ms)
    assert a.ops > 500 and a.faults_applied > 0
    out = _cli("--seed", "8", *shape, env={"PYTHONHASHSEED": "4242"}, code=None)
    assert out.startswith("seed 8  (3 voters + 1 observer, ") and f"trace {a.trace_digest}" in out


def test_the_seed_draws_the_shape_unless_it_is_given() -> None:
    shapes = Counter(runner.options_for(seed, cli.parse_args(["--seed", str(seed)])).observers * 10
                     + runner.options_for(seed, cli.parse_args(["--seed", str(seed)])).members for seed in range(400))
    assert {1, 3, 5, 13, 15, 23, 25} == set(shapes) and shapes[1] > 50
    given = runner.options_for(5, cli.parse_args(["--seed", "5", "--members", "5"]))
    assert (given.members, given.observers) == (5, 0)


def test_more_than_one_member_needs_an_ensemble_host() -> None:
    with pytest.raises(ValueError, match="ensemble member host"):
        World(1, SwarmOptions(members=3))
    with pytest.raises(ValueError, match="ensemble member host"):
        World(1, SwarmOptions(members=1, observers=1))


def test_the_liveness_phase_leaves_time_to_judge_after_the_grace() -> None:
    """Seeds 180, 181 (3 members): a 4 s session timeout made the grace (two of them) as long
    as the liveness phase, which judged only what was invoked as it ended."""
    w = World(1, SwarmOptions(session_timeout_ms=4000, heal_ms=8000, faults={}))
    assert w.live_from == w.heal_at + 8000
    assert w.live_until - w.live_from >= MIN_LIVE_MS
    short = World(1, SwarmOptions(session_timeout_ms=1000, heal_ms=8000, faults={}))
    assert short.live_until == short.heal_at + 8000


def test_an_ensemble_draws_latencies_a_new_session_fits_in_a_clients_connect_timeout() -> None:
    """Seeds 101, 123, 143, 378 (5 voters + 2 observers): a 400 ms session timeout gives a client
    57 ms per member to get its handshake answered (Java's connectTimeout), and a new session
    is a write through the leader, fsynced on a quorum: with latencies drawn as for one member
    it never fit, and no client could open a session even in a calm world."""
    for seed in range(200):
        standalone = draw_options(named_stream(seed, "options"), SwarmOptions())
        big = draw_options(named_stream(seed, "options"), SwarmOptions(members=5, observers=2))
        connect_ms = big.session_timeout_ms / 7
        assert big.fsync_ms + big.fsync_jitter_ms <= connect_ms / 12 + 0.02  # (drawn values are rounded)
        assert big.latency_ms + big.jitter_ms <= connect_ms / 24 + 0.02
        assert standalone.fsync_ms <= standalone.session_timeout_ms / 40 + 0.01
