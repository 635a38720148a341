"""`python -m zkserver.sim`: run one simulated world exactly, or sweep many seeds in parallel.

  python -m zkserver.sim --seed 42                      one world: options, schedule, verdict
  python -m zkserver.sim --seeds 0-499 --jobs 2         a sweep: seeds/minute, failing seeds
  ... --set fault_ms=60000 --set msg_loss=0.1           change drawn options
  ... --faults partition,power=10                       choose the fault kinds (per minute)
  ... --workload module:factory --check module:check    the simulated clients and checkers

See docs/testing.md ("The simulator").
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import report
from .faults import SwarmOptions, draw_options
from .scheduler import named_stream
from .world import Check, Violation, WorkloadFactory, World

DEFAULT_WORKLOAD: str | None = None  # the simulated clients' workload, once it is on main


def load(spec: str) -> Any:
    """'package.module:attribute' -> the attribute."""
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"expected module:attribute, got {spec!r}")
    return getattr(importlib.import_module(module), attr)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m zkserver.sim", description=__doc__.splitlines()[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run this seed and print everything about it")
    which.add_argument("--seeds", help="A-B: run seeds A..B (inclusive) and print a summary")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes for --seeds (default 1)")
    p.add_argument("--members", type=int, default=1, help="members (1: standalone)")
    p.add_argument("--clients", type=int, default=3, help="simulated clients")
    p.add_argument("--faults", help="'none', 'all' or kind[=per_minute],... instead of the drawn faults")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="set an option after drawing (repeatable); see the printed options")
    p.add_argument("--workload", default=DEFAULT_WORKLOAD, help="module:factory building the clients")
    p.add_argument("--check", action="append", default=[], metavar="MODULE:FUNCTION",
                   help="a check to run at the end (repeatable)")
    p.add_argument("--trace-lines", type=int, default=40, help="trace lines kept per member/client/link")
    p.add_argument("--trace", action="store_true", help="print the traces even when the run passes")
    return p.parse_args(argv)


def options_for(seed: int, args: argparse.Namespace) -> SwarmOptions:
    """The seed's drawn options, with the command line's changes applied."""
    base = SwarmOptions(members=args.members, clients=args.clients)
    overrides = dict(item.split("=", 1) for item in args.set)
    if args.faults is not None:
        overrides["faults"] = args.faults
    return draw_options(named_stream(seed, "options"), base).with_overrides(overrides)


def build(seed: int, args: argparse.Namespace) -> World:
    workload: WorkloadFactory | None = load(args.workload) if args.workload else None
    checks: list[Check] = [load(spec) for spec in args.check]
    return World(seed, options_for(seed, args), workload, checks, trace_ring=args.trace_lines)


def run_one(seed: int, args: argparse.Namespace) -> int:
    world = build(seed, args)
    print("\n".join(report.header(seed, world.options, world.schedule)))
    if world.workload is None:
        print("workload: none (members and faults only; pass --workload module:factory)")
    result = world.run()
    print("\n".join(report.verdict(result)))
    if not result.ok or args.trace:
        print("\n".join(report.traces(world)))
    if not result.ok:
        print(f"reproduce: {report.reproduce(seed, reproduction_args(args))}")
    return 0 if result.ok else 1


def reproduction_args(args: argparse.Namespace) -> list[str]:
    out = []
    if args.members != 1:
        out += ["--members", str(args.members)]
    if args.clients != 3:
        out += ["--clients", str(args.clients)]
    if args.faults is not None:
        out += ["--faults", args.faults]
    for item in args.set:
        out += ["--set", item]
    if args.workload:
        out += ["--workload", args.workload]
    for spec in args.check:
        out += ["--check", spec]
    return out


# ---------------------------------------------------------------- sweeps

_ARGS: argparse.Namespace | None = None


@dataclass
class SeedOutcome:
    seed: int
    ok: bool
    violations: list[Violation]
    cpu_s: float
    ops: int


def _init_worker(args: argparse.Namespace) -> None:
    global _ARGS
    _ARGS = args


def _sweep_one(seed: int) -> SeedOutcome:
    assert _ARGS is not None
    result = build(seed, _ARGS).run()
    return SeedOutcome(seed, result.ok, result.violations, result.cpu_s, result.ops)


def run_seeds(seeds: Iterable[int], args: argparse.Namespace, jobs: int) -> Iterator[SeedOutcome]:
    """Each seed's outcome, as the `jobs` worker processes finish them (in no fixed order)."""
    with multiprocessing.get_context("fork").Pool(jobs, _init_worker, (args,)) as pool:
        yield from pool.imap_unordered(_sweep_one, seeds, chunksize=4)


def first_line(outcome: SeedOutcome) -> str:
    v = outcome.violations[0]
    return f"{v.check}: {v.detail.splitlines()[0]}"


def sweep(seeds: range, args: argparse.Namespace) -> int:
    started = time.monotonic()
    failed: list[SeedOutcome] = []
    cpu = 0.0
    ops = done = 0
    for outcome in run_seeds(seeds, args, args.jobs):
        done += 1
        cpu += outcome.cpu_s
        ops += outcome.ops
        if not outcome.ok:
            failed.append(outcome)
            print(f"seed {outcome.seed} FAILED: {first_line(outcome)}", flush=True)
        if done % 100 == 0:
            print(f"  {done}/{len(seeds)} seeds, {len(failed)} failed", flush=True)
    wall = time.monotonic() - started
    print(f"{done} seeds in {wall:.1f} s with {args.jobs} jobs: {60 * done / wall:.0f} seeds/minute, "
          f"{cpu / max(done, 1):.3f} s CPU and {ops // max(done, 1)} operations per seed; {len(failed)} failed")
    for outcome in sorted(failed, key=lambda o: o.seed):
        print(f"  {report.reproduce(outcome.seed, reproduction_args(args))}    # {first_line(outcome)}")
    return 1 if failed else 0


def parse_range(text: str) -> range:
    lo, sep, hi = text.partition("-")
    return range(int(lo), int(hi if sep else lo) + 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.seed is not None:
        return run_one(args.seed, args)
    return sweep(parse_range(args.seeds), args)


if __name__ == "__main__":
    sys.exit(main())
