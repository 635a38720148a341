"""What a run prints: the seed, the drawn options, the fault schedule, the verdict, and on a
failure the violated checks and the last trace lines per member, client and link."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from .faults import FaultEvent, SwarmOptions, describe_shape
from .world import Result, Violation, World

SHOWN_PER_CHECK = 5


def header(seed: int, options: SwarmOptions, schedule: list[FaultEvent]) -> list[str]:
    knobs, faults = options.describe()
    lines = [f"seed {seed}  ({describe_shape(options)}, {options.flavour})", f"options: {knobs}", f"  {faults}",
             f"fault schedule ({len(schedule)} events, heal at {options.fault_ms} ms):"]
    lines += [f"  {ev.describe()}" for ev in schedule] or ["  (none)"]
    return lines


def verdict(result: Result) -> list[str]:
    r = result
    stats = (f"{r.virtual_ms} virtual ms, {r.events} events, {r.ops} operations ({r.ops_ok} ok), "
             f"{r.faults_applied} faults, {r.cpu_s:.2f} s CPU, trace {r.trace_digest}")
    if r.ok:
        return [f"result: ok - {stats}"]
    lines = [f"result: FAILED - {stats}"]
    lines += violations(r.violations)
    return lines


def violations(found: Iterable[Violation]) -> list[str]:
    by_check: dict[str, list[str]] = defaultdict(list)
    for v in found:
        by_check[v.check].append(v.detail)
    lines = []
    for check, details in by_check.items():
        lines.append(f"violated: {check} ({len(details)})")
        for d in details[:SHOWN_PER_CHECK]:
            lines += [f"  {line}" for line in d.splitlines()]
        if len(details) > SHOWN_PER_CHECK:
            lines.append(f"  ... and {len(details) - SHOWN_PER_CHECK} more")
    return lines


def traces(world: World, places: Iterable[str] | None = None) -> list[str]:
    """The last trace lines of each place: faults and world first, then members, clients, links."""
    names = list(world.trace.places) if places is None else list(places)
    members = {m.name for m in world.members}

    def order(place: str) -> tuple[int, str]:
        if place in ("faults", "world"):
            return 0, place
        if place in members:
            return 1, place
        return (3 if ">" in place else 2), place

    lines = []
    for place in sorted(names, key=order):
        lines.append(f"--- trace of {place} (last {world.trace.ring} lines)")
        lines += [f"  {line}" for line in world.trace.tail(place)]
    return lines


def reproduce(seed: int, args: list[str]) -> str:
    return " ".join(["python -m zkserver.sim --seed", str(seed), *args])
