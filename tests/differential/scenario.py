"""Hand-written differential scenarios: a list of steps, each an Op plus optional expectations.

Correctness comes from the comparison with Apache (every step, exactly as in random runs).
The expectations are checked on the reference server's answer and only prove that a scenario
really reaches the case it is named after (e.g. that the error is NoChildrenForEphemerals),
so a scenario cannot silently drift into testing nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.differential.harness import Event, Lockstep, Outcome
from tests.differential.ops import Op

Settled = list[tuple[Event, ...]]


@dataclass(frozen=True)
class Expect:
    what: str
    test: Callable[[Outcome, Settled], bool]

    def __and__(self, other: Expect) -> Expect:
        return Expect(f"{self.what}; {other.what}", lambda o, s: self.test(o, s) and other.test(o, s))


@dataclass(frozen=True)
class Step:
    op: Op
    expect: Expect | None = None


def step(op: Op, *expects: Expect) -> Step:
    combined = None
    for expect in expects:
        combined = expect if combined is None else combined & expect
    return Step(op, combined)


def run_scenario(lockstep: Lockstep, steps: Sequence[Step]) -> None:
    for number, s in enumerate(steps):
        outcome = lockstep.step(s.op)  # raises DifferentialMismatch first
        settled = lockstep.history[-1].settled
        if s.expect is not None and not s.expect.test(outcome, settled):
            raise AssertionError(
                f"scenario step {number} ({s.op.describe()}) on {lockstep.reference.name}:"
                f" expected {s.expect.what}\n got result={outcome.result!r}\n"
                f" events at reply={outcome.events!r}\n settled={settled!r}"
            )


# --------------------------------------------------------------------------- expectations


def error(name: str) -> Expect:
    return Expect(f"error {name}", lambda o, s: o.result == ("error", name))


def succeeds() -> Expect:
    return Expect("success", lambda o, s: not _is_error(o.result))


def result(value: Any) -> Expect:
    return Expect(f"result {value!r}", lambda o, s: o.result == value)


def result_where(what: str, test: Callable[[Any], bool]) -> Expect:
    return Expect(what, lambda o, s: test(o.result))


def stat(**fields: Any) -> Expect:
    """The Stat in the result has these field values (other fields unchecked)."""

    def test(o: Outcome, s: Settled) -> bool:
        found = stat_of(o.result)
        return found is not None and all(found.get(k) == v for k, v in fields.items())

    return Expect(f"stat with {fields}", test)


def at_reply(*events: tuple[str, str]) -> Expect:
    """The acting session had exactly these (type, path) notifications when its reply came."""
    return Expect(f"notifications before the reply {events}", lambda o, s: _brief(o.events) == list(events))


def notified(slot: int, *events: tuple[str, str]) -> Expect:
    """After the step (and a sync), session ``slot`` got exactly these (type, path) notifications."""
    return Expect(f"session slot {slot} notified {events}", lambda o, s: _brief(s[slot]) == list(events))


def quiet() -> Expect:
    """No session got any notification from this step."""
    return Expect("no notifications", lambda o, s: not o.events and not any(s))


def stat_of(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        return value[1]
    return None


def _brief(events: tuple[Event, ...]) -> list[tuple[str, str]]:
    return [(kind, path) for kind, _state, path in events]


def _is_error(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and value[0] == "error"
