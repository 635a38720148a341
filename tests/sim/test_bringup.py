"""Bring-up: SimClients and the workload against a standalone ServerCore, every checker run
on the outcome. Clean runs and runs with injected faults must pass; the same runs with a bug
planted (in the recorded outcome, or in the host itself) must not."""

from __future__ import annotations

import copy
import hashlib
from collections import Counter

import pytest

from zkserver.jute.codes import XID_NOTIFICATION, CreateMode, Err, EventType
from zkserver.sim.checkers import check_all
from zkserver.sim.checkers.base import MemberState
from zkserver.sim.history import History, Outcome
from zkserver.sim.workload import WorkloadOptions

from .corehost import BringUp, CoreHost, HostOptions, build, inject_faults, run


def _run(seed: int, faults: bool, clients: int = 6, ops: int = 300) -> BringUp:
    world = build(seed, clients=clients, workload=WorkloadOptions(ops_per_client=ops), request_timeout=1500,
                  host=HostOptions(persist_ms=(0, 30)))
    if faults:
        inject_faults(world)
    run(world)
    assert world.workload.done
    return world


@pytest.fixture(scope="module")
def clean() -> BringUp:
    return _run(11, faults=False, clients=8)


def test_a_log_durable_at_once_passes_too():
    world = build(13, clients=5, workload=WorkloadOptions(ops_per_client=200), host=HostOptions(persist_ms=(0, 0)))
    inject_faults(world)
    run(world)
    assert world.workload.done and len(world.history.ops) > 1000
    assert check_all(world.history, [world.host.state()]) == []


@pytest.fixture(scope="module")
def faulty() -> BringUp:
    return _run(12, faults=True)


def _kinds(history: History) -> Counter:
    return Counter((o.kind, o.outcome) for o in history.ops)


def test_many_clients_thousands_of_operations_pass_every_checker(clean: BringUp):
    h = clean.history
    assert check_all(h, [clean.host.state()]) == []
    kinds = _kinds(h)
    assert len(h.ops) >= 2800 and len(clean.host.committed) >= 1000
    for kind in ("create", "set", "delete", "multi", "get", "exists", "children", "sync", "close", "add_watch"):
        assert kinds[(kind, Outcome.OK)] > 0, kind
    for kind in ("create", "set", "delete", "multi"):
        assert kinds[(kind, Outcome.ERROR)] > 0, kind
    flags = {o.args["flags"] for o in h.ops if o.kind == "create" and o.outcome is Outcome.OK}
    assert flags == set(CreateMode)
    assert h.events and not h.anomalies


def test_faults_make_unknown_outcomes_and_expiries_and_every_checker_still_passes(faulty: BringUp):
    h = faulty.history
    assert check_all(h, [faulty.host.state()]) == []
    kinds = _kinds(h)
    assert sum(n for (kind, outcome), n in kinds.items() if outcome is Outcome.UNKNOWN and kind != "session") > 50
    assert kinds[("expired", Outcome.ERROR)] > 5
    assert any(e.zxid == -1 for e in h.events)  # SetWatches caught up after a reconnect
    assert len(h.ops) >= 2000


def _fingerprint(world: BringUp) -> str:
    h = world.history
    rows = [(o.op_id, o.client, o.session_id, o.kind, o.path, o.invoked, o.completed, o.outcome, o.error,
             repr(o.result), o.zxid, o.seq) for o in h.ops]
    return hashlib.sha256(repr((rows, h.events, world.host.state().txns)).encode()).hexdigest()


def test_a_seed_replays_exactly():
    def fingerprint(seed: int) -> str:
        return _fingerprint(_run(seed, faults=True, clients=3, ops=80))

    assert fingerprint(5) == fingerprint(5)
    assert fingerprint(5) != fingerprint(6)


# ---------------------------------------------------------------- planted bugs


def _mutated(world: BringUp) -> tuple[History, MemberState]:
    return copy.deepcopy(world.history), world.host.state()


def _checks(history: History, members: list[MemberState]) -> set[str]:
    return {v.check for v in check_all(history, members)}


def test_a_lost_acknowledged_write_is_caught(faulty: BringUp):
    h, m = _mutated(faulty)
    acked = next(o for o in reversed(h.ops) if o.kind == "set" and o.outcome is Outcome.OK)
    m.txns = [t for t in m.txns if t[0] != acked.zxid]
    assert "durability" in _checks(h, [m])


def test_a_stale_read_is_caught(clean: BringUp):
    h, m = _mutated(clean)
    read = next(o for o in h.ops if o.kind == "get" and o.outcome is Outcome.OK and o.result[1].version > 0)
    read.result = (b"an older value", read.result[1])
    assert _checks(h, [m]) == {"reads"}


def test_a_reordered_reply_is_caught(clean: BringUp):
    h, m = _mutated(clean)
    a, b = next((a, b) for a, b in zip(h.ops, h.ops[1:], strict=False)
                if a.session_id == b.session_id and a.seq and b.seq and a.zxid and b.zxid == a.zxid)
    a.seq, b.seq = b.seq, a.seq
    assert "session-order" in _checks(h, [m])


def test_a_double_fired_watch_is_caught(clean: BringUp):
    h, _ = _mutated(clean)
    ev = next(e for e in h.events if e.type == EventType.NODE_DATA_CHANGED)
    h.events.append(ev._replace(seq=h.next_seq()))
    assert "watches" in _checks(h, [clean.host.state()])


def test_a_reused_sequence_number_is_caught(clean: BringUp):
    h, m = _mutated(clean)
    seq = [o for o in h.ops if o.kind == "create" and o.outcome is Outcome.OK and o.result[0][-10:].isdigit()]
    first, later = seq[0], next(o for o in seq[1:] if o.path == seq[0].path)
    later.result = (first.result[0], later.result[1])
    assert "sequential" in _checks(h, [m])


def test_diverged_replicas_are_caught(clean: BringUp):
    h, m = _mutated(clean)
    twin = copy.deepcopy(m)
    twin.member = 2
    zxid, data = twin.txns[len(twin.txns) // 2]
    twin.txns[len(twin.txns) // 2] = (zxid, data[:-1] + bytes([data[-1] ^ 1]))
    assert "replicas" in _checks(h, [m, twin])


def test_a_write_that_should_have_failed_is_caught(clean: BringUp):
    h, m = _mutated(clean)
    refused = next(o for o in h.ops if o.kind == "create" and o.error == Err.NODE_EXISTS and o.path.count("/") == 2)
    refused.outcome, refused.error, refused.result = Outcome.OK, 0, (refused.path, None)
    assert "linearizable" in _checks(h, [m])


class _LateEvents(CoreHost):
    """A host with a bug: in each batch of frames for a connection, notifications go last."""

    def send(self, conn, frames: list[bytes]) -> None:
        super().send(conn, sorted(frames, key=lambda f: int.from_bytes(f[4:8], "big", signed=True) == XID_NOTIFICATION))


def test_a_host_that_sends_an_event_after_the_reply_is_caught(monkeypatch):
    import tests.sim.corehost as corehost

    monkeypatch.setattr(corehost, "CoreHost", _LateEvents)
    world = _run(11, faults=False, clients=8)
    assert isinstance(world.host, _LateEvents)
    problems = [v for v in check_all(world.history, [world.host.state()]) if v.check == "watches"]
    assert problems and "arrived before the event" in problems[0].message


def test_an_open_ended_workload_runs_until_stopped_then_goes_idle():
    world = build(14, clients=4, workload=WorkloadOptions(ops_per_client=None))
    world.workload.start()
    s = world.scheduler
    s.run_until(3000)
    assert not world.workload.done and len(world.history.ops) > 300
    world.workload.stop()
    s.run_until(s.now + 3000, stop=lambda: world.workload.idle)
    assert world.workload.idle and world.workload.done
    issued = len(world.history.ops)
    s.run_until(s.now + 3000)
    assert len(world.history.ops) == issued  # nothing new once stopped
    assert check_all(world.history, [world.host.state()]) == []
