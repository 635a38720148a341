"""`python -m bench`: Apache ZooKeeper 3.8 vs zkserver, A/B in one run (see bench/ab.py); `--ensemble`:
three members of each beside each other (see bench/ensemble.py)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from tests.support.servers import apache_installed

from bench.ab import ALL_WORKLOADS, KINDS, Sample, Settings, build_generator, fsync_floor, run_restart, run_round
from bench.ensemble import ENSEMBLE_WORKLOADS, EnsembleSettings, run_ensemble_round
from bench.report import ensemble_table, merge, table


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} x {cpu}, {mem:.0f} GB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--ensemble", action="store_true",
                   help="three zkserver members beside three Apache members (bench/ensemble.py)")
    p.add_argument("--quick", action="store_true", help="a short smoke run (under a minute): small counts, 1 round")
    p.add_argument("--rounds", type=int, help="A/B rounds (default 3; --quick 1)")
    p.add_argument("--workloads", help=f"comma-separated subset of: {','.join(ALL_WORKLOADS)}; with --ensemble: "
                   f"{','.join(ENSEMBLE_WORKLOADS)}")
    p.add_argument("--duration", type=float, help="seconds measured per throughput workload (default 5)")
    p.add_argument("--warmup", type=float, help="seconds of load before each window (default 2)")
    p.add_argument("--sessions", type=int, help="sessions of the throughput workloads (default 8; ensemble 12)")
    p.add_argument("--inflight", type=int, help="requests in flight per session (default 16)")
    p.add_argument("--failovers", type=int, help="--ensemble: leader kills per kind and round (default 3)")
    p.add_argument("--servers", default="apache,zkserver", help="which servers to run (default both)")
    p.add_argument("--json", help="also write every sample to this file")
    p.add_argument("--keep", action="store_true", help="keep the work dir (server logs, data dirs)")
    args = p.parse_args(argv)

    s: Settings | EnsembleSettings
    if args.ensemble:
        s, workloads = (EnsembleSettings.quick() if args.quick else EnsembleSettings()), ENSEMBLE_WORKLOADS
    else:
        s, workloads = (Settings.quick() if args.quick else Settings()), ALL_WORKLOADS
        if args.failovers is not None:
            p.error("--failovers needs --ensemble")
    for name in ("rounds", "duration", "warmup", "sessions", "inflight", "failovers"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    wanted = set(args.workloads.split(",")) if args.workloads else set(workloads)
    unknown = wanted - set(workloads)
    if unknown:
        p.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    kinds = [k for k in KINDS if k in args.servers.split(",")]
    if "apache" in kinds and not apache_installed():
        print("bench: Apache ZooKeeper is not installed (apt-get install zookeeper); running zkserver only",
              file=sys.stderr)
        kinds.remove("apache")

    work = Path(tempfile.mkdtemp(prefix="zkbench-"))
    print(f"machine: {machine()}")
    print(f"load: {s.sessions} sessions x {s.inflight} in flight, {s.size}-byte values; "
          f"{s.warmup:g} s warm-up + {s.duration:g} s measured per workload; work dir {work}", flush=True)
    t_start = time.monotonic()
    gen = build_generator(work)
    fsync = fsync_floor(gen, work, s.fsync_count)
    if isinstance(s, EnsembleSettings):
        samples = _ensemble(gen, kinds, s, wanted, work)
        print()
        print(ensemble_table(samples, fsync, s.rounds, os.cpu_count() or 1))
    else:
        samples = _standalone(gen, kinds, s, wanted, work)
        print()
        print(table({kind: {name: merge(xs) for name, xs in by.items()} for kind, by in samples.items()},
                    fsync, s.rounds))
    print(f"\ntotal {time.monotonic() - t_start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine(), "mode": "ensemble" if args.ensemble else "standalone", "settings": asdict(s),
            "fsync": fsync,
            "samples": {k: {n: [asdict(x) for x in xs] for n, xs in by.items()} for k, by in samples.items()},
        }, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


Samples = dict[str, dict[str, list[Sample]]]


def _log(msg: str) -> None:
    print(msg, flush=True)


def _alternating(samples: Samples, rounds: int, label: str,
                 run: Callable[[int, str], dict[str, list[Sample]]]) -> None:
    """`rounds` rounds of every kind, the first kind first in even rounds and last in odd ones
    (so that neither always runs on a machine the other just warmed), samples gathered by kind."""
    kinds = list(samples)
    for rnd in range(rounds):
        for kind in kinds if rnd % 2 == 0 else list(reversed(kinds)):
            print(f"{label} {rnd + 1}/{rounds}: {kind}", flush=True)
            for name, xs in run(rnd, kind).items():
                samples[kind].setdefault(name, []).extend(xs)


def _standalone(gen: Path, kinds: list[str], s: Settings, wanted: set[str], work: Path) -> Samples:
    samples: Samples = {k: {} for k in kinds}

    def a_round(rnd: int, kind: str) -> dict[str, list[Sample]]:
        res = run_round(gen, kind, work / f"r{rnd}-{kind}", s, wanted, f"r{rnd}", _log)
        return {name: [sample] for name, sample in res.items()}

    def a_restart(rnd: int, kind: str) -> dict[str, list[Sample]]:
        return {name: [sample] for name, sample in run_restart(gen, kind, work / f"restart{rnd}-{kind}", s,
                                                                 _log).items()}

    _alternating(samples, s.rounds, "round", a_round)
    if "restart" in wanted:
        _alternating(samples, s.restart_rounds, "restart round", a_restart)
    return samples


def _ensemble(gen: Path, kinds: list[str], s: EnsembleSettings, wanted: set[str], work: Path) -> Samples:
    samples: Samples = {k: {} for k in kinds}
    _alternating(samples, s.rounds, "ensemble round",
                 lambda rnd, kind: run_ensemble_round(gen, kind, work / f"e{rnd}-{kind}", s, wanted, f"r{rnd}", _log))
    return samples


if __name__ == "__main__":
    sys.exit(main())
