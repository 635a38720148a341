"""The nemesis: faults drawn from a seed, carried out on a real ensemble behind the fault proxy.

Theory of operation. The schedule is a stream of `Fault`s drawn from `random.Random(seed)`:
a kind, which member it aims at ("leader", "follower", "any", or every link), its parameters
and how long it holds. Drawing never looks at the ensemble, so a seed always gives the same
schedule. Carrying a fault out resolves its aim against the live ensemble (who leads now, with
a second stream from the same seed for the choices), applies it, holds it, heals it, and then
waits for the ensemble to have a leader and every member a role again (liveness: a failure
to recover fails the run) before a short gap and the next fault. Every step is logged with
its resolved members and times, to print with a failure.

Kinds (Jepsen's vocabulary where it has one):
  isolate       one member cut off from the rest, both ways (often the leader)
  halves        a random minority and majority, both ways
  ring          majorities-ring: members in a random ring, each hears only the majority
                that starts at it, so every member sees a majority and no two the same one
  one-way       one member's bytes out (or in) blackholed, the other direction open
  slow          delay ± jitter on every link, or on one member's links
  lossy         loss (retransmission delay, see faultproxy.py) on every link
  reset         one member's peer connections reset, a few times over the hold
  kill          kill -9 of the leader or a follower, restarted after the hold
  kill-majority kill -9 of a majority (the leader among them), all restarted after the hold
  pause         SIGSTOP of the leader or a follower for up to 2x the session timeout, then SIGCONT
  power-loss    (data dirs on lazyfs only) kill -9 of the leader, a follower or a majority, and
                their unsynced writes lost (none, or half the pages, kept: a torn tail)
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.support.faultcluster import ProxiedCluster

KINDS: dict[str, int] = {  # weights
    "isolate": 4, "halves": 3, "ring": 2, "one-way": 3, "slow": 2, "lossy": 2, "reset": 2,
    "kill": 4, "kill-majority": 1, "pause": 3,
}
POWER_KINDS = {"power-loss": 4}  # only with lazyfs-mounted data dirs (faultcluster power_loss=True)
RECOVERY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Fault:
    kind: str
    aim: str  # "leader" | "follower" | "any" | "all" | "every" (process faults: all members, never drawn)
    hold_s: float
    gap_s: float
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, name: str) -> Any:
        return dict(self.params)[name]

    def describe(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.params)
        return f"{self.kind} aim={self.aim} hold={self.hold_s:.1f}s{extra}"


def draw_fault(rng: random.Random, members: int, session_timeout_s: float, power_loss: bool = False) -> Fault:
    """The next fault of a schedule (pure: the same rng state gives the same fault)."""
    kinds = {**KINDS, **POWER_KINDS} if power_loss else KINDS
    kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
    hold = round(rng.uniform(1.0, 5.0), 1)
    gap = round(rng.uniform(0.5, 2.0), 1)
    aim, params = "any", ()
    if kind in ("isolate", "one-way", "kill", "pause", "reset"):
        aim = rng.choice(("leader", "leader", "follower"))
    if kind == "one-way":
        params = (("direction", rng.choice(("out", "in"))),)
    elif kind == "slow":
        delay = rng.choice((20, 50, 100, 300))
        aim = rng.choice(("all", "any"))
        params = (("delay_ms", delay), ("jitter_ms", delay // 2))
    elif kind == "lossy":
        aim = "all"
        params = (("loss", rng.choice((0.05, 0.1, 0.2, 0.3))),)
    elif kind == "reset":
        params = (("times", rng.randint(1, 4)),)
    elif kind == "pause":
        hold = round(rng.uniform(0.25, 2.0) * session_timeout_s, 1)
    elif kind in ("halves", "ring", "kill-majority"):
        aim = "all"
    elif kind == "power-loss":
        aim = rng.choice(("leader", "follower", "all"))  # all: a majority, the leader first
        params = (("keep", rng.choice((0.0, 0.0, 0.5))),)
    return Fault(kind, aim, hold, gap, params)


def schedule(seed: int, members: int, session_timeout_s: float, power_loss: bool = False) -> Callable[[], Fault]:
    """The seed's schedule, one fault per call."""
    rng = random.Random(f"nemesis/{seed}")
    return lambda: draw_fault(rng, members, session_timeout_s, power_loss)


def ring_blocks(order: list[int]) -> list[tuple[int, int]]:
    """majorities-ring: (src, dst) pairs to blackhole so that each member hears only the
    majority of the ring starting at itself."""
    n = len(order)
    majority = n // 2 + 1
    blocks = []
    for i, member in enumerate(order):
        hears = {order[(i + k) % n] for k in range(majority)}
        blocks += [(src, member) for src in order if src not in hears]
    return blocks


def halves(order: list[int]) -> tuple[list[int], list[int]]:
    """A minority and a majority of the members in `order` (already shuffled)."""
    cut = max(1, (len(order) - 1) // 2)
    return order[:cut], order[cut:]


@dataclass
class Step:
    index: int
    fault: Fault
    started: float  # seconds since the run started
    targets: list[int] = field(default_factory=list)
    healed: float | None = None
    recovered: float | None = None  # when a leader and every role were back
    leader_before: int | None = None
    note: str = ""

    def describe(self) -> str:
        rec = f" recovered +{self.recovered - self.healed:.1f}s" if self.recovered and self.healed else ""
        note = f" ({self.note})" if self.note else ""
        return (f"#{self.index} t={self.started:.1f}s {self.fault.describe()} targets={self.targets} "
                f"leader_before={self.leader_before}{rec}{note}")


class Nemesis:
    def __init__(self, cluster: ProxiedCluster, seed: int, session_timeout_s: float,
                 log: Callable[[str], None] = print, on_recovered: Callable[[], None] | None = None):
        self.cluster = cluster
        self.net = cluster.network
        self.members = sorted(cluster.seats)
        self.next_fault = schedule(seed, len(self.members), session_timeout_s, power_loss=bool(cluster.mounts))
        self.rng = random.Random(f"nemesis-targets/{seed}")
        self.log = log
        self.on_recovered = on_recovered
        self.steps: list[Step] = []
        self._t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def run(self, seconds: float) -> list[Step]:
        """Faults one after another until `seconds` have passed; each healed and recovered."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step(self.next_fault())
        return self.steps

    def run_script(self, faults: Iterable[Fault], warmup_s: float) -> list[Step]:
        """Given faults, in order, after `warmup_s` of load (scenario tests)."""
        time.sleep(warmup_s)
        for fault in faults:
            self.step(fault)
        return self.steps

    def step(self, fault: Fault) -> Step:
        leader = self.cluster.leader()
        step = Step(len(self.steps) + 1, fault, self.elapsed(), leader_before=leader)
        self.steps.append(step)
        step.targets = self._aim(fault, leader)
        self.log(f"nemesis: {step.describe()}")
        try:
            self._apply(fault, step)
        finally:
            self.heal_all()
            step.healed = self.elapsed()
        self.cluster.wait_for_quorum(timeout=RECOVERY_TIMEOUT_S, sids=self.members)
        step.recovered = self.elapsed()
        if self.on_recovered is not None:
            self.on_recovered()
        time.sleep(fault.gap_s)
        return step

    def _aim(self, fault: Fault, leader: int | None) -> list[int]:
        order = list(self.members)
        self.rng.shuffle(order)
        if fault.aim == "leader" and leader is not None:
            return [leader]
        if fault.aim == "follower" or (fault.aim == "leader" and leader is None):
            others = [m for m in order if m != leader]
            return others[:1]
        if fault.aim == "any":
            return order[:1]
        return order

    def _apply(self, fault: Fault, step: Step) -> None:
        net, targets, others = self.net, step.targets, [m for m in self.members if m not in step.targets]
        kind = fault.kind
        if kind == "isolate":
            net.partition([targets, others])
        elif kind == "halves":
            minority, majority = halves(targets)
            step.note = f"{minority} | {majority}"
            net.partition([minority, majority])
        elif kind == "ring":
            blocks = ring_blocks(targets)
            step.note = f"ring {targets}"
            for src, dst in blocks:
                net.blackhole(src, dst)
        elif kind == "one-way":
            pairs = self._pairs(targets, others, fault.param("direction"))
            for src, dst in pairs:
                net.blackhole(src, dst)
        elif kind == "slow":
            pairs = self._all_pairs() if fault.aim == "all" else self._pairs(targets, others, "both")
            net.slow(pairs, fault.param("delay_ms"), fault.param("jitter_ms"))
        elif kind == "lossy":
            net.lossy(self._all_pairs(), fault.param("loss"))
        elif kind == "reset":
            self._resets(fault, targets, others)
            return
        elif kind in ("kill", "kill-majority", "pause", "power-loss"):
            self._process_fault(fault, step)
            return
        time.sleep(fault.hold_s)

    def _resets(self, fault: Fault, targets: list[int], others: list[int]) -> None:
        times = fault.param("times")
        for _ in range(times):
            time.sleep(fault.hold_s / times)
            self.net.reset(self._pairs(targets, others, "both"))

    def _process_fault(self, fault: Fault, step: Step) -> None:
        cluster = self.cluster
        if fault.kind == "pause":
            cluster.pause(step.targets[0])
            time.sleep(fault.hold_s)
            cluster.resume(step.targets[0])
            return
        victims = step.targets[:1]
        if fault.aim == "every":
            victims = step.targets
        elif fault.kind == "kill-majority" or (fault.kind == "power-loss" and fault.aim == "all"):
            majority = len(self.members) // 2 + 1
            first = [step.leader_before] if step.leader_before is not None else []
            victims = (first + [m for m in step.targets if m not in first])[:majority]
            step.targets = victims
        if fault.kind == "power-loss":
            lost = cluster.power_cut(victims, fault.param("keep"), self.rng.randrange(1 << 30))
            step.note = "unsynced pages lost: " + ", ".join(f"m{sid} {n}" for sid, n in lost.items())
        for sid in victims:
            cluster.kill(sid)
        time.sleep(fault.hold_s)
        cluster.start(victims, wait=False)

    def _pairs(self, targets: list[int], others: list[int], direction: str) -> list[tuple[int, int]]:
        out = [(t, o) for t in targets for o in others] if direction in ("out", "both") else []
        return out + ([(o, t) for t in targets for o in others] if direction in ("in", "both") else [])

    def _all_pairs(self) -> list[tuple[int, int]]:
        return list(itertools.permutations(self.members, 2))

    def heal_all(self) -> None:
        """Network clear, every paused member resumed, every stopped member started."""
        self.net.heal()
        for sid in self.members:
            self.cluster.resume(sid)
        down = [sid for sid in self.members if not self.cluster.members[sid].running]
        if down:
            self.cluster.start(down, wait=False)
