"""Building worlds from command-line arguments, and running many seeds in worker processes.

What `python -m zkserver.sim` and the test suite share. Workers are spawned, not forked: a
sweep may start inside a process with threads (a test session), and a forked child can inherit
a lock one of them held; so what they run lives here, in a module a spawned child can import.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .ensemble import ensemble_member
from .faults import SwarmOptions, draw_options
from .scheduler import named_stream
from .world import Check, Violation, WorkloadFactory, World


def load(spec: str) -> Any:
    """'package.module:attribute' -> the attribute."""
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"expected module:attribute, got {spec!r}")
    return getattr(importlib.import_module(module), attr)


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
    options = options_for(seed, args)
    factory = None if options.members == 1 and not options.observers else ensemble_member
    return World(seed, options, workload, checks, member_factory=factory, trace_ring=args.trace_lines)


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
    with multiprocessing.get_context("spawn").Pool(jobs, _init_worker, (args,)) as pool:
        yield from pool.imap_unordered(_sweep_one, seeds, chunksize=4)


def first_line(outcome: SeedOutcome) -> str:
    v = outcome.violations[0]
    return f"{v.check}: {v.detail.splitlines()[0]}"
