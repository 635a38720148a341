"""One simulated world: members, clients, network and faults under one seed, run to a verdict.

Theory of operation. `World(seed, options)` builds everything from the seed: the scheduler
(virtual time, named random streams), the network, the members (standalone hosts today; an
ensemble host plugs in through `member_factory`), the fault schedule, and the workload (the
simulated clients, built by `workload(world)`; they reach members through `world.connect`
and record what they saw in `world.history`). `run()` then goes through four phases:

1. faults: the workload runs while the schedule's events fire;
2. heal: every fault ends at once (faults.FaultInjector.heal);
3. liveness: the workload goes on in a fault-free world, for heal_ms (and at least
   MIN_LIVE_MS after `live_from`, when the operations it judges start);
4. quiesce: the workload stops issuing; the run continues until it has no operation
   outstanding and every member's disk is quiet (or a time limit passes).

Then every check is called with the world, whose history and `final_states()` it judges.
Checks built in: no member raised an exception or refused to recover (noted when it
happens; the run stops there), every member is up at the end, and liveness (every operation
invoked a grace period after the heal completed). The simulated clients' checkers (writes
linearizable, no acknowledged write lost, ...) come in as `checks`.

Logging of the server code under test goes into the trace of the member it runs on.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..core import CoreSettings
from ..storage.database import StorageOptions
from ..storage.txnlog import StorageError
from .disks import DiskProfile
from .faults import FaultEvent, FaultInjector, SwarmOptions, draw_schedule
from .history import History, Outcome
from .member import MemberHost, MemberState, SimEnv
from .network import LinkProfile, NetConfig, Network
from .scheduler import Scheduler
from .standalone import StandaloneHost
from .streams import Stream, StreamHandler
from .trace import Trace


@dataclass
class Violation:
    check: str
    detail: str


MIN_LIVE_MS = 3000  # the least time operations are invoked and judged for liveness


class Workload(Protocol):
    """The simulated clients, as the world drives them."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """Issue no new operations from now on; outstanding ones may still complete."""
        ...

    @property
    def idle(self) -> bool:
        """Nothing outstanding."""
        ...


Check = Callable[["World"], Iterable[Violation]]
WorkloadFactory = Callable[["World"], Workload]
MemberFactory = Callable[["World", int], MemberHost]  # (world, sid): sids above options.members are observers


@dataclass
class Result:
    seed: int
    options: SwarmOptions
    schedule: list[FaultEvent]
    violations: list[Violation] = field(default_factory=list)
    trace_digest: str = ""
    virtual_ms: int = 0
    events: int = 0
    ops: int = 0
    ops_ok: int = 0
    cpu_s: float = 0.0
    faults_applied: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations


class World:
    def __init__(self, seed: int, options: SwarmOptions, workload: WorkloadFactory | None = None,
                 checks: Sequence[Check] = (), member_factory: MemberFactory | None = None, trace_ring: int = 40):
        self.seed = seed
        self.options = options
        self.scheduler = Scheduler(seed)
        self.trace = Trace(lambda: self.scheduler.now, trace_ring)
        o = options
        net = NetConfig(LinkProfile(o.latency_ms, o.jitter_ms, o.tail_p, o.tail_ms, o.msg_loss),
                        o.connect_timeout_ms, o.chunk_p, 4, o.merge_p)
        self.network = Network(self.scheduler, self.trace, net)
        self.env = SimEnv(self.scheduler, self.network, self.trace, self._bug)
        self.violations: list[Violation] = []
        self._final: list[MemberState] | None = None
        if member_factory is None and (o.members != 1 or o.observers):
            raise ValueError("more than one member needs an ensemble member host (member_factory); the "
                             "standalone host runs one member")
        factory = member_factory or standalone_member
        self.members = [factory(self, sid) for sid in range(1, o.members + o.observers + 1)]
        self._by_name = {m.name: m for m in self.members}
        self.client_names = [f"c{i}" for i in range(1, o.clients + 1)]
        self.history = History()
        self.schedule = draw_schedule(self.scheduler.rng("faults"), o, [m.name for m in self.members],
                                      self.client_names)
        self.injector = FaultInjector(self, self.schedule)
        self.checks = list(checks)
        self.workload = workload(self) if workload is not None else None
        self.heal_at = o.fault_ms
        # Clients give up on a dead connection and find a member within these. An ensemble
        # settles within docs/testing.md's bound: a member still LOOKING from the fault phase
        # notifies again within fle_max_ms, a round may take a few of those (a member with the
        # best vote stays silent while worse ones keep arriving within its poll interval, as in
        # Apache), and a leader elected without a quorum behind it waits initLimit ticks.
        grace = [2 * o.session_timeout_ms, 2 * o.connect_timeout_ms]
        if o.members + o.observers > 1:
            grace.append(3 * o.fle_max_ms + o.init_limit * o.tick_ms)
        self.live_from = self.heal_at + max(grace)
        # The liveness phase lasts heal_ms, and long enough after live_from to judge something.
        self.live_until = max(self.heal_at + o.heal_ms, self.live_from + MIN_LIVE_MS)

    # ------------------------------------------------------------ what clients and faults use

    def member(self, name: str) -> MemberHost:
        return self._by_name[name]

    def connect(self, client: str, member: str, handler: StreamHandler) -> Stream:
        """A client's connection to a member's client port."""
        return self.network.connect(client, member, "client", handler)

    def final_states(self) -> list[MemberState]:
        """What each member holds: at the end of `run`, the one reading every check shares;
        before that, read now."""
        if self._final is not None:
            return self._final
        return [m.final_state() for m in self.members]

    def _bug(self, place: str, exc: BaseException) -> None:
        if isinstance(exc, StorageError):
            self.violations.append(Violation("recovery", f"{place} cannot recover its data dir: {exc}"))
        else:
            tb = "".join(traceback.format_exception(exc)).rstrip()
            self.violations.append(Violation("exception", f"{place} raised {exc!r}\n{tb}"))
        self.trace.note(place, f"STOPPED: {exc!r}")

    # ------------------------------------------------------------ running

    def run(self) -> Result:
        started = time.process_time()
        with _logs_into(self):
            self._run_phases()
        result = Result(self.seed, self.options, self.schedule, list(self.violations), self.trace.digest(),
                        self.scheduler.now, self.scheduler.events_run, len(self.history.ops),
                        sum(op.outcome is Outcome.OK for op in self.history.ops), 0.0, self.injector.applied)
        result.cpu_s = time.process_time() - started
        return result

    def start(self) -> None:
        """Start the members and the workload, and arm the fault schedule and the heal (what
        `run` begins with; tests that drive the scheduler themselves call it alone)."""
        for m in self.members:
            m.start()
        if self.workload is not None:
            self.workload.start()
        self.injector.arm()
        self.scheduler.call_at(self.heal_at, self.injector.heal)

    def _run_phases(self) -> None:
        sched, o = self.scheduler, self.options
        stop = self._stopped
        self.start()
        sched.run_until(self.live_until, stop)
        if stop():
            return
        self.trace.note("world", "quiesce: the workload stops issuing")
        if self.workload is not None:
            self.workload.stop()
        sched.run_until(sched.now + o.quiesce_ms, lambda: stop() or self._quiet())
        if stop():
            return
        self.trace.note("world", "quiet" if self._quiet() else "not quiet after the quiesce limit")
        self._final = [m.final_state() for m in self.members]
        for check in [members_up, liveness, *self.checks]:
            self.violations.extend(check(self))

    def _stopped(self) -> bool:
        return bool(self.violations)

    def _quiet(self) -> bool:
        return (self.workload is None or self.workload.idle) and all(m.quiet for m in self.members)


def standalone_member(world: World, sid: int) -> MemberHost:
    o = world.options
    settings = CoreSettings(tick_ms=o.tick_ms, min_session_timeout=2 * o.tick_ms,
                            max_session_timeout=20 * o.tick_ms, server_id=sid)
    opts = StorageOptions(data_dir=f"/m{sid}/data", snap_count=o.snap_count, pre_alloc_size_kb=o.pre_alloc_kb)
    disk = DiskProfile(o.fsync_ms, o.fsync_jitter_ms, o.fsync_tail_p)
    return StandaloneHost(world.env, sid, settings, opts, disk)


# ---------------------------------------------------------------- built-in checks


def members_up(world: World) -> list[Violation]:
    """Every member is up at the end, with a working log, and an ensemble member is back in the
    ensemble: one still LOOKING after the heal, the grace and the quiesce never rejoined it."""
    out = [Violation("members up", f"{m.name} is {m.state}{' with a failed log' if m.log_failed else ''} "
                                   "at the end, after the heal")
           for m in world.members if m.state != "up" or m.log_failed]
    return out + [Violation("members up", f"{m.name} is still LOOKING at the end, after the heal: it never "
                                          "rejoined the ensemble")
                  for m in world.members if m.state == "up" and getattr(m, "role", "") == "looking"]


def liveness(world: World) -> list[Violation]:
    """Every operation invoked once the healed world had time to settle (two session or connect
    timeouts after the heal) completed, OK or with a definite error; and some succeeded."""
    late = [op for op in world.history.ops if op.invoked >= world.live_from]
    stuck = [op for op in late if op.outcome in (None, Outcome.UNKNOWN)]
    out = []
    if stuck:
        op = stuck[0]
        out.append(Violation("liveness", f"{len(stuck)} of {len(late)} operations invoked after "
                                         f"{world.live_from} ms (healed at {world.heal_at} ms) did not complete; "
                                         f"first: op {op.op_id} {op.kind} {op.path} by c{op.client} at {op.invoked} ms "
                                         f"({op.outcome.value if op.outcome else 'pending'})"))
    if world.workload is not None and world.client_names and late and not any(
            op.outcome is Outcome.OK for op in late):
        out.append(Violation("liveness", f"no operation invoked after {world.live_from} ms succeeded"))
    return out


# ---------------------------------------------------------------- logs into the trace


class _TraceHandler(logging.Handler):
    def __init__(self, world: World):
        super().__init__(logging.INFO)
        self.world = world

    def emit(self, record: logging.LogRecord) -> None:
        self.world.trace.note(self.world.env.running, f"log {record.levelname.lower()}: {record.getMessage()}")


class _logs_into:
    """While a world runs, the zkserver loggers write into its trace (and nowhere else)."""

    def __init__(self, world: World):
        self.handler = _TraceHandler(world)
        self.logger = logging.getLogger("zkserver")

    def __enter__(self) -> None:
        self.saved = (self.logger.level, self.logger.propagate)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self.handler)

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.saved[0])
        self.logger.propagate = self.saved[1]
