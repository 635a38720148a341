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

from ..quorum import bugs
from .ensemble import ensemble_member
from .faults import SwarmOptions, describe_shape, draw_options, draw_shape
from .scheduler import named_stream
from .world import Check, Violation, WorkloadFactory, World

DEFAULT_WORKLOAD = "zkserver.sim.defaults:workload"  # the simulated clients
DEFAULT_CHECK = "zkserver.sim.defaults:checks"  # every checker


def load(spec: str) -> Any:
    """'package.module:attribute' -> the attribute."""
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"expected module:attribute, got {spec!r}")
    return getattr(importlib.import_module(module), attr)


def options_for(seed: int, args: argparse.Namespace) -> SwarmOptions:
    """The seed's drawn shape (unless --members says) and options, with the command line's
    changes applied."""
    members, observers = args.members, args.observers
    if members is None:
        members, drawn = draw_shape(named_stream(seed, "shape"))
        observers = drawn if observers is None else observers
    base = SwarmOptions(members=members, observers=observers or 0, clients=args.clients)
    overrides = dict(item.split("=", 1) for item in args.set)
    if args.faults is not None:
        overrides["faults"] = args.faults
    return draw_options(named_stream(seed, "options"), base).with_overrides(overrides)


def checks_of(args: argparse.Namespace) -> list[str]:
    """--check as given; by default every checker, when the simulated clients run."""
    if args.check is not None:
        return args.check
    return [DEFAULT_CHECK] if workload_of(args) is not None else []


def workload_of(args: argparse.Namespace) -> str | None:
    return None if args.workload == "none" else args.workload


def build(seed: int, args: argparse.Namespace) -> World:
    """The seed's world, with exactly the bug switches of --bug on in this process."""
    bugs.disable_all()
    bugs.enable(*args.bug)
    spec = workload_of(args)
    workload: WorkloadFactory | None = load(spec) if spec else None
    checks: list[Check] = [load(spec) for spec in checks_of(args)]
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
    shape: str = ""


def _init_worker(args: argparse.Namespace) -> None:
    global _ARGS
    _ARGS = args


def _sweep_one(seed: int) -> SeedOutcome:
    assert _ARGS is not None
    result = build(seed, _ARGS).run()
    return SeedOutcome(seed, result.ok, result.violations, result.cpu_s, result.ops, describe_shape(result.options))


def run_seeds(seeds: Iterable[int], args: argparse.Namespace, jobs: int) -> Iterator[SeedOutcome]:
    """Each seed's outcome, as the `jobs` worker processes finish them (in no fixed order)."""
    with multiprocessing.get_context("spawn").Pool(jobs, _init_worker, (args,)) as pool:
        yield from pool.imap_unordered(_sweep_one, seeds, chunksize=4)


def first_line(outcome: SeedOutcome) -> str:
    v = outcome.violations[0]
    return f"{v.check}: {v.detail.splitlines()[0]}"
