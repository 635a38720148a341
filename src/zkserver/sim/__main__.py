"""`python -m zkserver.sim`: run one simulated world exactly, or sweep many seeds in parallel.

  python -m zkserver.sim --seed 42                      one world: shape, options, schedule, verdict
  python -m zkserver.sim --seeds 0-499 --jobs 2         a sweep: seeds/minute, failing seeds
  ... --members 3 --observers 1                         this shape instead of the drawn one
  ... --set fault_ms=60000 --set msg_loss=0.1           change drawn options
  ... --faults partition,power=10                       choose the fault kinds (per minute)
  ... --bug diff-not-trunc                              re-introduce a known ZooKeeper bug
  ... --workload module:factory --check module:check    other simulated clients and checkers

See docs/testing.md ("The simulator").
"""

from __future__ import annotations

import argparse
import sys
import time

from ..quorum import bugs
from . import report
from .runner import DEFAULT_WORKLOAD, SeedOutcome, build, checks_of, first_line, run_seeds


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m zkserver.sim", description=__doc__.splitlines()[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run this seed and print everything about it")
    which.add_argument("--seeds", help="A-B: run seeds A..B (inclusive) and print a summary")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes for --seeds (default 1)")
    p.add_argument("--members", type=int, help="voting members (1: standalone); default: drawn by the seed "
                                               "(standalone, 3 or 5 voters with 0-2 observers)")
    p.add_argument("--observers", type=int, help="observers (default: drawn with the shape, or 0 with --members)")
    p.add_argument("--clients", type=int, default=3, help="simulated clients")
    p.add_argument("--faults", help="'none', 'all' or kind[=per_minute],... instead of the drawn faults")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="set an option after drawing (repeatable); see the printed options")
    p.add_argument("--workload", default=DEFAULT_WORKLOAD,
                   help=f"module:factory building the clients, or none (default {DEFAULT_WORKLOAD})")
    p.add_argument("--check", action="append", metavar="MODULE:FUNCTION",
                   help="a check to run at the end (repeatable); default: every checker")
    p.add_argument("--bug", action="append", default=[], choices=sorted(bugs.KNOWN), metavar="NAME",
                   help="turn on a zkserver.quorum.bugs switch in the worlds' processes (repeatable): "
                        + ", ".join(sorted(bugs.KNOWN)))
    p.add_argument("--trace-lines", type=int, default=40, help="trace lines kept per member/client/link")
    p.add_argument("--trace", action="store_true", help="print the traces even when the run passes")
    return p.parse_args(argv)


def run_one(seed: int, args: argparse.Namespace) -> int:
    world = build(seed, args)
    print("\n".join(report.header(seed, world.options, world.schedule)))
    if world.workload is None:
        print("workload: none (members and faults only)")
    if args.bug:
        print(f"bug switches on: {', '.join(args.bug)}")
    result = world.run()
    print("\n".join(report.verdict(result)))
    if not result.ok or args.trace:
        print("\n".join(report.traces(world)))
    if not result.ok:
        print(f"reproduce: {report.reproduce(seed, reproduction_args(args))}")
    return 0 if result.ok else 1


def reproduction_args(args: argparse.Namespace) -> list[str]:
    out = []
    if args.members is not None:
        out += ["--members", str(args.members)]
    if args.observers is not None:
        out += ["--observers", str(args.observers)]
    if args.clients != 3:
        out += ["--clients", str(args.clients)]
    if args.faults is not None:
        out += ["--faults", args.faults]
    for item in args.set:
        out += ["--set", item]
    for name in args.bug:
        out += ["--bug", name]
    if args.workload != DEFAULT_WORKLOAD:
        out += ["--workload", args.workload]
    if args.check is not None:
        for spec in checks_of(args):
            out += ["--check", spec]
    return out


# ---------------------------------------------------------------- sweeps


def sweep(seeds: range, args: argparse.Namespace) -> int:
    started = time.monotonic()
    failed: list[SeedOutcome] = []
    cpu = 0.0
    ops = done = 0
    by_shape: dict[str, tuple[int, float]] = {}
    for outcome in run_seeds(seeds, args, args.jobs):
        done += 1
        cpu += outcome.cpu_s
        ops += outcome.ops
        n, shape_cpu = by_shape.get(outcome.shape, (0, 0.0))
        by_shape[outcome.shape] = (n + 1, shape_cpu + outcome.cpu_s)
        if not outcome.ok:
            failed.append(outcome)
            print(f"seed {outcome.seed} FAILED: {first_line(outcome)}", flush=True)
        if done % 100 == 0:
            print(f"  {done}/{len(seeds)} seeds, {len(failed)} failed", flush=True)
    wall = time.monotonic() - started
    print(f"{done} seeds in {wall:.1f} s with {args.jobs} jobs: {60 * done / wall:.0f} seeds/minute, "
          f"{cpu / max(done, 1):.3f} s CPU and {ops // max(done, 1)} operations per seed; {len(failed)} failed")
    for shape, (n, shape_cpu) in sorted(by_shape.items()):
        print(f"  {shape}: {n} seeds, {shape_cpu / n:.3f} s CPU per seed")
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
