"""Swarm options and the fault schedule of one simulated world.

Theory of operation (swarm testing, as FoundationDB's simulator and TigerBeetle's VOPR do
it). Each seed first draws its options: the network's latency profile and chunking, the disk's
fsync latency, the timing knobs, and which fault kinds are on at what rate. Most seeds get a
few kinds, some none (calm), some nearly all at five times the rate (storms): a fault that
masks another in one seed is absent in the next, so every combination gets seeds of its own.

The schedule is then drawn whole, before the world runs: for each kind that is on, events
arrive as a Poisson process over the fault phase, each with its target and parameters (who
is cut from whom, for how long, which reboot mode a power cut gets). It is printed and, being
a function of the seed and the options only, replays exactly. Choices that depend on the
world's state at that moment (which connection a reset hits) are made when the event runs,
from their own random stream. At the end of the fault phase everything is healed: partitions
and slow links end, every member is resumed or restarted (a member whose log failed is
restarted, as an operator would), clocks run at rate 1 and disks are fast and have room; a
liveness phase without faults follows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .world import World

# kind -> the fewest members it makes sense with
FAULT_KINDS: dict[str, int] = {
    "partition": 1,  # a symmetric split (members in two groups; clients on either side)
    "one_way": 1,  # the same, one direction only
    "bridge": 3,  # two halves that both see one bridge member
    "ring": 3,  # majorities ring: every member sees a majority, no two the same one
    "isolate": 1,  # one endpoint cut from everyone
    "slow_link": 1,  # a directed link 10-100x slower
    "reset": 1,  # a live connection reset (undelivered bytes dropped)
    "kill": 1,  # the process is killed (the page cache survives), restarted later
    "power": 1,  # a power cut (unsynced data lost per the reboot mode), restarted later
    "torn": 1,  # a power cut inside one of the next few disk operations
    "pause": 1,  # SIGSTOP for up to 3 session timeouts
    "skew": 1,  # the member's clock runs 0.8-1.25x for a while
    "wall_jump": 1,  # its wall clock jumps (only ctime/mtime see it)
    "fsync_eio": 1,  # the next fdatasync fails: the log fail-stops until a restart
    "disk_full": 1,  # ENOSPC on every write for a while
    "slow_disk": 1,  # fsyncs 10-1000x slower for a while
    "garbage": 3,  # malformed election notifications reach a member
    "sync_cut": 3,  # a learner dies at a point of its next sync with a leader
}
SYNC_POINTS = {  # where a sync_cut strikes, and how
    "persisting": "power",  # NEWLEADER read, its txns logged, not yet durable
    "acked": "kill",  # the NEWLEADER ACK just sent (a kill: the ACK still reaches the leader)
}
REBOOT_MODES = ("drop", "keep", "torn", "pages", "flip", "random")
SYNC_CUT_LEADER_P = 0.5  # of sync cuts where the leader's machine loses power too, a moment later
RACK_P = 0.25  # of power cuts (3+ members) that take a majority or more of the members at once


@dataclass
class SwarmOptions:
    members: int = 1  # voting members (1: standalone)
    observers: int = 0  # observers, beside them (ensemble hosts only)
    clients: int = 3
    fault_ms: int = 20000  # the fault phase; then heal
    heal_ms: int = 8000  # the liveness phase after the heal
    quiesce_ms: int = 5000  # at most this long for the workload and the disks to go quiet
    tick_ms: int = 200
    init_limit: int = 10  # ticks (ensemble members)
    sync_limit: int = 5
    fle_max_ms: int = 2000  # zookeeper.fastleader.maxNotificationInterval (ensemble members)
    session_timeout_ms: int = 2000  # what clients ask for
    snap_count: int = 100000
    pre_alloc_kb: int = 64
    commit_log_count: int = 500  # zookeeper.commitLogCount (ensemble members; the simulator may go below 500)
    election_hold_ms: int = 2000  # electionClientHoldMs (ensemble members)
    # the network: latency base + exponential jitter, heavy tail, datagram loss, chunking
    latency_ms: float = 1.0
    jitter_ms: float = 1.0
    tail_p: float = 0.0
    tail_ms: float = 50.0
    msg_loss: float = 0.0
    connect_timeout_ms: int = 1000
    chunk_p: float = 0.3
    merge_p: float = 0.5
    # the disk: fsync latency
    fsync_ms: float = 1.0
    fsync_jitter_ms: float = 1.0
    fsync_tail_p: float = 0.0
    # fault kind -> events per minute of virtual time (absent: off)
    faults: dict[str, float] = field(default_factory=dict)
    flavour: str = "set"  # how the faults were drawn: calm, mixed, storm, or set by hand

    def describe(self) -> list[str]:
        d = asdict(self)
        faults = d.pop("faults")
        knobs = " ".join(f"{k}={_fmt(v)}" for k, v in d.items())
        kinds = ", ".join(f"{k} {v:.1f}/min" for k, v in sorted(faults.items())) or "none"
        return [knobs, f"faults: {kinds}"]

    def with_overrides(self, overrides: dict[str, str]) -> SwarmOptions:
        """A copy with `name=value` settings (from the command line) applied."""
        kinds = {f.name: f.type for f in fields(self)}
        out = SwarmOptions(**{**asdict(self), "faults": dict(self.faults)})
        for key, text in overrides.items():
            if key == "faults":
                out.faults = parse_faults(text)
                out.flavour = "set"
            elif key in kinds:
                current = getattr(out, key)
                setattr(out, key, type(current)(text))
            else:
                raise ValueError(f"unknown option {key!r}; options: {', '.join(sorted(kinds))}")
        return out


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def parse_faults(text: str) -> dict[str, float]:
    """'none', 'all', or 'kind[=per_minute],...'."""
    if text in ("", "none"):
        return {}
    if text == "all":
        return dict.fromkeys(FAULT_KINDS, 3.0)
    out = {}
    for item in text.split(","):
        kind, _, rate = item.partition("=")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(FAULT_KINDS)}")
        out[kind] = float(rate) if rate else 3.0
    return out


# (voters, weight) and (observers, weight) of an ensemble: a seed's shape unless given
SHAPES = ((1, 25), (3, 45), (5, 30))
OBSERVERS = ((0, 50), (1, 30), (2, 20))


def draw_shape(rng: random.Random) -> tuple[int, int]:
    """(voters, observers): standalone (one member, no observer), or 3 or 5 voters with 0-2
    observers."""
    voters = rng.choices([v for v, _ in SHAPES], [w for _, w in SHAPES])[0]
    if voters == 1:
        return 1, 0
    return voters, rng.choices([n for n, _ in OBSERVERS], [w for _, w in OBSERVERS])[0]


def describe_shape(o: SwarmOptions) -> str:
    if o.members == 1 and not o.observers:
        return "standalone"
    shape = f"{o.members} voter{'s' if o.members != 1 else ''}"
    return shape + (f" + {o.observers} observer{'s' if o.observers != 1 else ''}" if o.observers else "")


def draw_options(rng: random.Random, base: SwarmOptions | None = None) -> SwarmOptions:
    """A seed's options: `base` (its member/client counts and durations are kept) with the
    network, disk, timing and faults drawn."""
    o = SwarmOptions(**asdict(base)) if base is not None else SwarmOptions()
    o.tick_ms = rng.choice((50, 100, 200))
    o.session_timeout_ms = o.tick_ms * rng.choice((4, 10, 20))
    # Small counts roll the log and snapshot often (every snapshot writes the whole tree, and
    # nothing purges old files in the simulator, so not too often).
    o.snap_count = rng.choice((50, 200, 1000, 100000))
    o.pre_alloc_kb = rng.choice((1, 4, 64))
    # Latencies in proportion to the session timeout: a calm world answers well within the
    # clients' timeouts, so a liveness failure after the heal is the server's, not the dice's.
    # A client waits session timeout / members for a connection's handshake (as Java's does),
    # and in an ensemble a new session is a write: forwarded, fsynced on a quorum (waiting
    # for a group commit round in flight), committed, fsynced again on an observer: some six
    # deliveries and four fsyncs, each with its exponential jitter.
    budget = min(o.session_timeout_ms / 40, o.session_timeout_ms / (o.members + o.observers) / 24)
    o.latency_ms = round(rng.uniform(0.1, 5.0) * min(1.0, budget / 10), 2)
    o.jitter_ms = round(rng.uniform(0.1, 5.0) * min(1.0, budget / 10), 2)
    o.tail_p = rng.choice((0.0, 0.0, 0.001, 0.01, 0.05))
    o.tail_ms = rng.choice((20.0, 100.0, 500.0))
    o.msg_loss = rng.choice((0.0, 0.0, 0.01, 0.1, 0.3))
    o.chunk_p = rng.choice((0.0, 0.2, 0.8))
    o.merge_p = rng.choice((0.0, 0.5, 0.9))
    o.fsync_ms = round(min(rng.choice((0.1, 1.0, 5.0, 20.0)) * rng.uniform(0.5, 1.5), budget), 2)
    o.fsync_jitter_ms = round(min(o.fsync_ms * rng.uniform(0.1, 2.0), budget), 2)
    o.fsync_tail_p = rng.choice((0.0, 0.0, 0.01, 0.05))
    kinds = [k for k, need in FAULT_KINDS.items() if o.members >= need]
    roll = rng.random()
    if roll < 0.15:
        o.flavour, o.faults = "calm", {}
    elif roll < 0.9:
        o.flavour = "mixed"
        o.faults = {k: round(rng.uniform(1.0, 8.0), 1) for k in kinds if rng.random() < 0.3}
    else:
        o.flavour = "storm"
        o.faults = {k: round(rng.uniform(5.0, 40.0), 1) for k in kinds if rng.random() < 0.7}
    # A member LOOKING through a long partition backs off up to this between notification
    # rounds (Apache's default is a minute); the liveness phase waits for it (World.live_from).
    o.fle_max_ms = rng.choice((400, 1000, 2000))
    # A short committed log puts rejoining learners behind it, so that leaders sync them from
    # their txn logs (syncplan rule 5); drawn last, so that nothing drawn before it changes.
    o.commit_log_count = rng.choice((8, 40, 500))
    # Members that keep their idle clients' connections through an election, or close them
    # at once as Apache's do (electionClientHoldMs=0).
    o.election_hold_ms = rng.choice((0, 2000))
    return o


# ---------------------------------------------------------------- the schedule


@dataclass
class FaultEvent:
    at: int
    kind: str
    target: str  # an endpoint, a link "a>b", or "" (see `what`)
    what: str  # human-readable: who is cut from whom, the factor, the reboot mode
    until: int | None = None  # when it ends (durational faults)
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self, at: bool = True) -> str:
        span = f" for {self.until - self.at} ms" if self.until is not None else ""
        return (f"{self.at:>7} ms  " if at else "") + f"{self.kind:<9} {self.what}{span}"


def draw_schedule(rng: random.Random, o: SwarmOptions, members: list[str], clients: list[str]) -> list[FaultEvent]:
    """Every fault event of the fault phase, in time order; none lasts past the heal."""
    events: list[FaultEvent] = []
    start = min(500, o.fault_ms // 10)  # let the first sessions start
    for kind, per_minute in sorted(o.faults.items()):
        if per_minute <= 0 or FAULT_KINDS[kind] > len(members):
            continue
        t = start + rng.expovariate(per_minute / 60000.0)
        while t < o.fault_ms:
            ev = _DRAW[kind](rng, int(t), o, members, clients)
            if ev.until is not None:
                ev.until = min(ev.until, o.fault_ms)
            events.append(ev)
            t += rng.expovariate(per_minute / 60000.0)
    events.sort(key=lambda e: (e.at, e.kind, e.target))
    return events


def _span(rng: random.Random, o: SwarmOptions, lo: float = 0.2, hi: float = 3.0) -> int:
    """A duration in session timeouts."""
    return int(o.session_timeout_ms * rng.uniform(lo, hi))


def _sides(rng: random.Random, members: list[str], clients: list[str]) -> tuple[list[str], list[str]]:
    """Two non-empty sides; with one member, some clients against the member and the rest."""
    if len(members) > 1:
        shuffled = rng.sample(members, len(members))
        cut = rng.randint(1, len(members) - 1)
        a, b = shuffled[:cut], shuffled[cut:]
    else:
        a, b = list(members), []
    for c in clients:
        (a if rng.random() < 0.5 else b).append(c)
    if not b:
        b.append(a.pop())  # one member and every client on its side: cut the last client off
    return sorted(a), sorted(b)


def _draw_partition(rng, t, o, members, clients) -> FaultEvent:
    a, b = _sides(rng, members, clients)
    pairs = [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]
    return FaultEvent(t, "partition", "", f"{{{','.join(a)}}} | {{{','.join(b)}}}", t + _span(rng, o),
                      {"pairs": pairs})


def _draw_one_way(rng, t, o, members, clients) -> FaultEvent:
    a, b = _sides(rng, members, clients)
    return FaultEvent(t, "one_way", "", f"{{{','.join(a)}}} -/-> {{{','.join(b)}}}", t + _span(rng, o),
                      {"pairs": [(x, y) for x in a for y in b]})


def _draw_bridge(rng, t, o, members, clients) -> FaultEvent:
    shuffled = rng.sample(members, len(members))
    bridge, rest = shuffled[0], shuffled[1:]
    half = len(rest) // 2
    a, b = sorted(rest[:half]), sorted(rest[half:])
    pairs = [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]
    return FaultEvent(t, "bridge", bridge, f"{{{','.join(a)}}} | {{{','.join(b)}}} bridged by {bridge}",
                      t + _span(rng, o), {"pairs": pairs})


def _draw_ring(rng, t, o, members, clients) -> FaultEvent:
    ring = rng.sample(members, len(members))
    n = len(ring)
    reach = (n // 2 + 1) // 2  # itself and `reach` neighbours each side make a majority
    pairs = [(ring[i], ring[j]) for i in range(n) for j in range(n)
             if i != j and min((i - j) % n, (j - i) % n) > reach]
    return FaultEvent(t, "ring", "", f"ring {'-'.join(ring)}, each sees {reach} each side", t + _span(rng, o),
                      {"pairs": pairs})


def _draw_isolate(rng, t, o, members, clients) -> FaultEvent:
    who = rng.choice(members + clients)
    others = [x for x in members + clients if x != who]
    return FaultEvent(t, "isolate", who, who, t + _span(rng, o),
                      {"pairs": [(who, x) for x in others] + [(x, who) for x in others]})


def _draw_slow_link(rng, t, o, members, clients) -> FaultEvent:
    """A link that carries traffic: from or to a member (clients do not talk to each other)."""
    member = rng.choice(members)
    other = rng.choice([x for x in members + clients if x != member] or [member])
    src, dst = (member, other) if rng.random() < 0.5 else (other, member)
    factor = rng.choice((10, 30, 100))
    return FaultEvent(t, "slow_link", f"{src}>{dst}", f"{src}>{dst} x{factor}", t + _span(rng, o),
                      {"factor": factor})


def _draw_reset(rng, t, o, members, clients) -> FaultEvent:
    return FaultEvent(t, "reset", "", "a random live connection")


def _draw_crash(kind: str) -> Callable[..., FaultEvent]:
    def draw(rng, t, o, members, clients) -> FaultEvent:
        who = rng.choice(members)
        mode = rng.choice(REBOOT_MODES)
        down = int(rng.uniform(50, 2.0 * o.session_timeout_ms))
        if kind == "kill":
            return FaultEvent(t, kind, who, f"{who}, restart after {down} ms", t + down)
        again = rng.randint(1, 3) if rng.random() < 0.3 else 0
        restart = f"restart after {down} ms" + (f", cut again in start-up disk op {again}" if again else "")
        if kind == "power":
            rack = _draw_rack(rng, o, who, members)
            also = "".join(f"; {m} too (reboot: {m_mode}), restart after {m_down} ms" for m, m_mode, m_down in rack)
            return FaultEvent(t, kind, who, f"{who} (reboot: {mode}), {restart}{also}", t + down,
                              {"mode": mode, "again": again, "rack": rack})
        ops = rng.randint(1, 8)
        return FaultEvent(t, kind, who, f"{who} in disk op {ops} from now (reboot: {mode}), {restart}",
                          t + down, {"mode": mode, "ops": ops, "window": min(down // 2, 200), "again": again})
    return draw


def _draw_rack(rng: random.Random, o: SwarmOptions, who: str, members: list[str]) -> list[tuple[str, str, int]]:
    """Some power cuts (with 3+ members) take a rack: a majority or more of the members at the
    same instant, each back after its own delay. Whatever a quorum acknowledged must survive
    it: this is the fault that loses a txn acked before it was durable, once the members that
    come back first elect a leader among themselves."""
    if len(members) < 3 or rng.random() >= RACK_P:
        return []
    others = rng.sample([m for m in members if m != who], rng.randint(len(members) // 2, len(members) - 1))
    return [(m, rng.choice(REBOOT_MODES), int(rng.uniform(50, 2.0 * o.session_timeout_ms))) for m in sorted(others)]


def _draw_pause(rng, t, o, members, clients) -> FaultEvent:
    who = rng.choice(members)
    return FaultEvent(t, "pause", who, who, t + _span(rng, o, 0.1, 3.0))


def _draw_skew(rng, t, o, members, clients) -> FaultEvent:
    who = rng.choice(members)
    rate = rng.choice((0.8, 0.9, 0.95, 1.05, 1.1, 1.25))
    return FaultEvent(t, "skew", who, f"{who} clock x{rate}", t + _span(rng, o, 1.0, 10.0), {"rate": rate})


def _draw_wall_jump(rng, t, o, members, clients) -> FaultEvent:
    who = rng.choice(members)
    delta = rng.choice((-1, 1)) * rng.choice((1000, 60000, 3600000))
    return FaultEvent(t, "wall_jump", who, f"{who} wall clock {delta:+d} ms", None, {"delta": delta})


def _draw_fsync_eio(rng, t, o, members, clients) -> FaultEvent:
    who = rng.choice(members)
    down = int(rng.uniform(100, 2.0 * o.session_timeout_ms))
    power = rng.random() < 0.5
    return FaultEvent(t, "fsync_eio", who,
                      f"{who} next fdatasync fails, then {'power-cycled' if power else 'restarted'} after {down} ms",
                      t + down, {"power": power})


def _draw_disk_full(rng, t, o, members, clients) -> FaultEvent:
    who = rng.choice(members)
    return FaultEvent(t, "disk_full", who, who, t + _span(rng, o, 0.2, 2.0))


def _draw_slow_disk(rng, t, o, members, clients) -> FaultEvent:
    who = rng.choice(members)
    factor = rng.choice((10, 100, 1000))
    return FaultEvent(t, "slow_disk", who, f"{who} fsync x{factor}", t + _span(rng, o), {"factor": factor})


def _draw_garbage(rng, t, o, members, clients) -> FaultEvent:
    who = rng.choice(members)
    src = rng.choice([m for m in members if m != who])
    sizes = [rng.randint(0, 27) for _ in range(rng.randint(1, 3))]  # shorter than any notification
    return FaultEvent(t, "garbage", who, f"{src}>{who} malformed notifications of {sizes} bytes", None,
                      {"src": src, "sizes": sizes})


def _draw_sync_cut(rng, t, o, members, clients) -> FaultEvent:
    who = rng.choice(members)
    point = rng.choice(sorted(SYNC_POINTS))
    mode = rng.choice(REBOOT_MODES)
    down = int(rng.uniform(50, 2.0 * o.session_timeout_ms))
    how = "power cut (reboot: " + mode + ")" if SYNC_POINTS[point] == "power" else "killed"
    leader = None
    if rng.random() < SYNC_CUT_LEADER_P:
        leader = {"mode": rng.choice(REBOOT_MODES), "after": rng.randint(0, 20),
                  "down": down + int(rng.uniform(50, 2.0 * o.session_timeout_ms))}  # back after the learner
    also = (f"; its leader's power too {leader['after']} ms later (reboot: {leader['mode']}), restart after "
            f"{leader['down']} ms" if leader else "")
    return FaultEvent(t, "sync_cut", who, f"{who} {how} at its next sync's {point}, restart after {down} ms{also}",
                      t + _span(rng, o, 1.0, 5.0), {"point": point, "mode": mode, "down": down, "leader": leader})


_DRAW: dict[str, Callable[..., FaultEvent]] = {
    "partition": _draw_partition, "one_way": _draw_one_way, "bridge": _draw_bridge, "ring": _draw_ring,
    "isolate": _draw_isolate, "slow_link": _draw_slow_link, "reset": _draw_reset,
    "kill": _draw_crash("kill"), "power": _draw_crash("power"), "torn": _draw_crash("torn"),
    "pause": _draw_pause, "skew": _draw_skew, "wall_jump": _draw_wall_jump, "fsync_eio": _draw_fsync_eio,
    "disk_full": _draw_disk_full, "slow_disk": _draw_slow_disk, "garbage": _draw_garbage,
    "sync_cut": _draw_sync_cut,
}


# ---------------------------------------------------------------- running it


class FaultInjector:
    """Applies a schedule to a world: each event at its time, its end at `until`."""

    def __init__(self, world: World, schedule: list[FaultEvent]):
        self.world = world
        self.schedule = schedule
        self.rng = world.scheduler.rng("faults.apply")
        self.applied = 0

    def arm(self) -> None:
        sched = self.world.scheduler
        for ev in self.schedule:
            sched.call_at(ev.at, self._begin, ev)

    def _begin(self, ev: FaultEvent) -> None:
        self.applied += 1
        self.world.trace.note("faults", ev.describe(at=False))
        token = _BEGIN[ev.kind](self, ev)
        if ev.until is not None:
            self.world.scheduler.call_at(ev.until, self._end, ev, token)

    def _end(self, ev: FaultEvent, token: Any) -> None:
        self.world.trace.note("faults", f"end of {ev.kind} {ev.what}")
        _END[ev.kind](self, ev, token)

    def member(self, name: str):
        return self.world.member(name)

    # ------------------------------------------------------------ kinds

    def block(self, ev: FaultEvent) -> int:
        return self.world.network.block(ev.params["pairs"])

    def unblock(self, ev: FaultEvent, token: int) -> None:
        self.world.network.unblock(token)

    def slow_link(self, ev: FaultEvent) -> None:
        src, dst = ev.target.split(">")
        self.world.network.set_slow(src, dst, ev.params["factor"])

    def fast_link(self, ev: FaultEvent, _: Any) -> None:
        src, dst = ev.target.split(">")
        self.world.network.set_slow(src, dst, 1.0)

    def reset(self, ev: FaultEvent) -> None:
        conns = self.world.network.connections()
        if conns:
            self.world.network.reset(self.rng.choice(conns))

    def kill(self, ev: FaultEvent) -> None:
        self.member(ev.target).crash(power=False)

    def power(self, ev: FaultEvent) -> None:
        self.member(ev.target).crash(power=True, reboot_mode=ev.params["mode"])
        for name, mode, down in ev.params.get("rack", ()):
            m = self.member(name)
            m.crash(power=True, reboot_mode=mode)
            self.world.scheduler.call_at(min(ev.at + down, self.world.heal_at), m.start)

    def torn(self, ev: FaultEvent) -> None:
        m = self.member(ev.target)
        if not m.arm_power_cut(ev.params["ops"], ev.params["mode"]):
            return
        # a member that does no disk work meanwhile loses its power anyway, before its restart
        window = min(ev.params["window"], (ev.until - ev.at) // 2) if ev.until is not None else ev.params["window"]
        self.world.scheduler.call_later(window, m.crash, True, ev.params["mode"])

    def restart(self, ev: FaultEvent, _: Any) -> None:
        m = self.member(ev.target)
        again = ev.params.get("again", 0)
        m.start(again)
        if again and m.state == "down":  # the cut landed in the start-up: try again a little later
            self.world.scheduler.call_later(50, m.start)

    def fsync_eio(self, ev: FaultEvent) -> None:
        self.member(ev.target).data.disk.eio_next = True

    def cycle(self, ev: FaultEvent, _: Any) -> None:
        m = self.member(ev.target)
        m.data.disk.eio_next = False
        if m.state != "down":
            m.crash(power=ev.params["power"], reboot_mode="random")
        m.start()

    def pause(self, ev: FaultEvent) -> None:
        self.member(ev.target).pause()

    def resume(self, ev: FaultEvent, _: Any) -> None:
        self.member(ev.target).resume()

    def skew(self, ev: FaultEvent) -> None:
        self.member(ev.target).set_clock_rate(ev.params["rate"])

    def unskew(self, ev: FaultEvent, _: Any) -> None:
        self.member(ev.target).set_clock_rate(1.0)

    def wall_jump(self, ev: FaultEvent) -> None:
        self.member(ev.target).jump_wall_clock(ev.params["delta"])

    def disk_full(self, ev: FaultEvent) -> None:
        self.member(ev.target).data.disk.full = True

    def disk_freed(self, ev: FaultEvent, _: Any) -> None:
        self.member(ev.target).data.disk.full = False

    def slow_disk(self, ev: FaultEvent) -> None:
        self.member(ev.target).data.slow = ev.params["factor"]

    def fast_disk(self, ev: FaultEvent, _: Any) -> None:
        self.member(ev.target).data.slow = 1.0

    def garbage(self, ev: FaultEvent) -> None:
        for size in ev.params["sizes"]:
            self.world.network.send_message(ev.params["src"], ev.target, "election", self.rng.randbytes(size))

    def sync_cut(self, ev: FaultEvent) -> None:
        m = self.member(ev.target)
        m.arm_sync_cut(ev.params["point"], lambda: self._cut_in_sync(ev))

    def _cut_in_sync(self, ev: FaultEvent) -> None:
        m = self.member(ev.target)
        point = ev.params["point"]
        self.world.trace.note("faults", f"sync_cut: {ev.target} at {point}")
        m.crash(power=SYNC_POINTS[point] == "power", reboot_mode=ev.params["mode"])
        self.world.scheduler.call_later(ev.params["down"], m.start)
        leader = ev.params.get("leader")
        if leader is not None:
            self.world.scheduler.call_later(leader["after"], self._cut_leader, leader)

    def _cut_leader(self, leader: dict[str, Any]) -> None:
        """The leader's machine goes too (one rack): the members that come back first elect a
        leader among themselves, on what the cut learner's epoch files and log claim."""
        for m in self.world.members:
            if m.state != "down" and getattr(m.peer, "leader", None) is not None:  # established or not
                self.world.trace.note("faults", f"sync_cut: {m.name}, the leader, loses power too")
                m.crash(power=True, reboot_mode=leader["mode"])
                self.world.scheduler.call_later(leader["down"], m.start)

    def sync_uncut(self, ev: FaultEvent, _: Any) -> None:
        self.member(ev.target).arm_sync_cut(None)

    def heal(self) -> None:
        """End every fault: the network whole, every member up with a working log, sane
        clocks, fast disks with room."""
        w = self.world
        w.trace.note("faults", "heal: partitions, slow links and latency tails end; every member up, clocks and "
                               "disks sane")
        w.network.heal()
        # A healed disk keeps well within syncLimit: an exponential jitter's rare long fsync
        # would otherwise make the leader drop a follower (as Apache's does) after the heal.
        o = w.options
        max_fsync = max(1, o.tick_ms * o.sync_limit // 5)
        for m in w.members:
            m.arm_sync_cut(None)
            m.resume()
            m.set_clock_rate(1.0)
            m.data.calm(max_fsync)
            if m.log_failed:
                m.crash(power=False)
            m.start()


_BEGIN: dict[str, Callable[[FaultInjector, FaultEvent], Any]] = {
    "partition": FaultInjector.block, "one_way": FaultInjector.block, "bridge": FaultInjector.block,
    "ring": FaultInjector.block, "isolate": FaultInjector.block, "slow_link": FaultInjector.slow_link,
    "reset": FaultInjector.reset, "kill": FaultInjector.kill, "power": FaultInjector.power,
    "torn": FaultInjector.torn, "pause": FaultInjector.pause, "skew": FaultInjector.skew,
    "wall_jump": FaultInjector.wall_jump, "fsync_eio": FaultInjector.fsync_eio,
    "disk_full": FaultInjector.disk_full, "slow_disk": FaultInjector.slow_disk, "garbage": FaultInjector.garbage,
    "sync_cut": FaultInjector.sync_cut,
}
_END: dict[str, Callable[[FaultInjector, FaultEvent, Any], None]] = {
    "partition": FaultInjector.unblock, "one_way": FaultInjector.unblock, "bridge": FaultInjector.unblock,
    "ring": FaultInjector.unblock, "isolate": FaultInjector.unblock, "slow_link": FaultInjector.fast_link,
    "kill": FaultInjector.restart, "power": FaultInjector.restart, "torn": FaultInjector.restart,
    "pause": FaultInjector.resume, "skew": FaultInjector.unskew, "fsync_eio": FaultInjector.cycle,
    "disk_full": FaultInjector.disk_freed, "slow_disk": FaultInjector.fast_disk, "sync_cut": FaultInjector.sync_uncut,
}
