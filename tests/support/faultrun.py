"""One fault run: a real zkserver ensemble behind the fault proxy, kazoo clients recording a
History, the nemesis for a while, then heal, settle and judge with the simulator's checkers.

The phases:
  1. start the ensemble (every peer link through the proxy) and the recording workload;
  2. the nemesis draws faults from the seed until `seconds` have passed, each healed and the
     ensemble recovered before the next (no recovery within the nemesis' limit fails the run);
  3. heal everything, stop the workload (what is in flight completes or becomes UNKNOWN) and
     close every session;
  4. wait until the ensemble is quiet: one leader, no session left, every member at the same
     zxid (a member that cannot catch up fails the run);
  5. stop the members (SIGTERM), read each data dir (memberdisk.py) and run `check_all`.
The result carries the seed, the schedule as carried out, the History's numbers and the
violations; `report()` is what a failing test prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.archive import HistoryArchive
from tests.support.faultcluster import ProxiedCluster
from tests.support.faultproxy import FaultNetwork
from tests.support.kazooload import KazooWorkload, LoadOptions
from tests.support.memberdisk import read_member
from tests.support.nemesis import Fault, Nemesis, Step
from tests.support.recorder import Recorder
from zkserver.sim.checkers import Violation, check_all

QUIET_TIMEOUT_S = 60.0
# 1 MB log files instead of 64: the archive reads the logs whole after every fault.
MEMBER_PROPS = {"zookeeper.preAllocSize": "1024"}
SHOWN_VIOLATIONS = 20


@dataclass
class FaultRunConfig:
    members: int
    seed: int
    seconds: float  # how long the nemesis runs
    clients: int = 5
    session_timeout_s: float = 4.0
    tick_ms: int = 200  # a 4 s session timeout is 20 ticks, Apache's maximum
    power_loss: bool = False  # data dirs on lazyfs; the nemesis also cuts power
    fsync_delay_ms: float = 0.0  # lazyfs answers every fsync this late (a slow disk)
    script: tuple[Fault, ...] = ()  # these faults after `seconds` of load, instead of the seed's schedule


@dataclass
class FaultRunResult:
    config: FaultRunConfig
    workdir: Path
    steps: list[Step] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds each phase took
    error: str | None = None  # the run could not finish (no recovery, not quiet, ...)
    logged_errors: list[str] = field(default_factory=list)  # exceptions in the members' logs

    @property
    def failed(self) -> bool:
        return bool(self.violations) or self.error is not None or bool(self.logged_errors)

    def report(self) -> str:
        cfg = self.config
        disks = ", data dirs on lazyfs (power loss)" if cfg.power_loss else ""
        lines = [f"fault run: {cfg.members} zkserver members{disks}, seed {cfg.seed} (ZKSERVER_FAULT_SEED={cfg.seed}), "
                 f"nemesis {cfg.seconds:g} s, {cfg.clients} clients, session timeout {cfg.session_timeout_s:g} s",
                 "  phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.phases.items()),
                 "  history: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())),
                 f"  nemesis: {len(self.steps)} faults"]
        lines += [f"    {s.describe()}" for s in self.steps]
        lines += [f"  note: {n}" for n in self.notes]
        if self.error:
            lines.append(f"  ERROR: {self.error}")
        if self.logged_errors:
            lines.append(f"  {len(self.logged_errors)} exceptions in member logs (a loop must never raise):")
            lines += [f"    {e}" for e in self.logged_errors[:SHOWN_VIOLATIONS]]
        if self.violations:
            lines.append(f"  {len(self.violations)} violations:")
            lines += [f"    {v}" for v in self.violations[:SHOWN_VIOLATIONS]]
        lines.append(f"  member logs and data dirs: {self.workdir}")
        return "\n".join(lines)


def run_fault_test(workdir: Path, cfg: FaultRunConfig, log: Callable[[str], None] = print) -> FaultRunResult:
    result = FaultRunResult(cfg, workdir)
    clock = _Phases(result)
    with FaultNetwork(seed=cfg.seed) as net, ProxiedCluster(workdir, ["zkserver"] * cfg.members, net,
                                                           tick_ms=cfg.tick_ms, props=MEMBER_PROPS,
                                                           power_loss=cfg.power_loss,
                                                           fsync_delay_ms=cfg.fsync_delay_ms) as cluster:
        cluster.start()
        clock.done("start")
        recorder = Recorder(cluster.member_of_port())
        load = KazooWorkload(recorder, cluster.hosts(), cfg.clients, cfg.seed, cfg.session_timeout_s, LoadOptions())
        load.start()
        archive = HistoryArchive(cluster)
        nemesis = Nemesis(cluster, cfg.seed, cfg.session_timeout_s, log=log, on_recovered=archive.sample)
        stopped = False
        try:
            try:
                if cfg.script:
                    nemesis.run_script(cfg.script, warmup_s=cfg.seconds)
                else:
                    nemesis.run(cfg.seconds)
            finally:
                result.steps = nemesis.steps
                nemesis.heal_all()
            clock.done("nemesis")
            cluster.wait_for_quorum(timeout=QUIET_TIMEOUT_S, sids=sorted(cluster.seats))
            stopped = True
            if not load.stop(timeout=2 * cfg.session_timeout_s + 10):
                result.notes.append("some clients were still waiting for answers when stopped")
            clock.done("drain")
            cluster.wait_quiet(QUIET_TIMEOUT_S)
            archive.sample()
            clock.done("quiet")
        except AssertionError as e:
            result.error = str(e)
        finally:
            if not stopped:
                load.stop(timeout=5)
            result.counts = recorder.counts()
        if result.error is not None:
            return result
        for sid in sorted(cluster.seats):
            cluster.stop(sid)
        readings = [read_member(sid, cluster.data_dir(sid)) for sid in sorted(cluster.seats)]
        result.notes += [f"member {r.state.member}: {n}" for r in readings for n in r.notes]
        result.notes += [f"member {r.state.member}: {len(r.state.txns)} txns on disk, complete from "
                         f"0x{r.state.complete_from:x}" for r in readings]
        result.logged_errors = logged_exceptions(workdir, sorted(cluster.seats))
        states = [r.state for r in readings]
        result.notes.append(f"history witness: {len(archive.txns)} txns from {archive.samples} samples")
        result.violations = archive.conflicts + check_all(recorder.history, [*states, archive.witness(states)])
        clock.done("check")
    return result


class _Phases:
    def __init__(self, result: FaultRunResult):
        self.result = result
        self.last = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.result.phases[name] = now - self.last
        self.last = now


def logged_exceptions(workdir: Path, sids: list[int]) -> list[str]:
    """'member N: <the exception line>' for every traceback in the members' logs."""
    out = []
    for sid in sids:
        path = workdir / f"m{sid}" / "zkserver.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith((" ", "\t"))), i)
                out.append(f"member {sid}: {lines[end]}")
    return out
