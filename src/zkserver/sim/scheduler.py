"""The simulator's event loop: a virtual clock and a heap of timed callbacks.

Theory of operation. Nothing in a simulated world reads the real clock or the global `random`:
time is `Scheduler.now` (integer milliseconds since the world began), advanced only by
`run_until`/`step` as events are taken from the heap in (time, sequence) order, so two events
due at the same millisecond run in the order they were scheduled. Randomness comes from named
streams (`rng(name)`), each seeded from the world's seed and its name, so drawing more numbers
in one part of the world (say, the network) does not shift what another part (the workload)
draws: a change in one component leaves the others' choices, and most of a trace, as they were.
A seed therefore replays exactly, on any machine.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from typing import Any


def named_stream(seed: int, name: str) -> random.Random:
    """The random stream called `name` of a world with this seed."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class Timer:
    """A scheduled callback; `cancel()` makes it a no-op when its time comes."""

    __slots__ = ("args", "at", "callback", "cancelled")

    def __init__(self, at: int, callback: Callable[..., Any], args: tuple[Any, ...]):
        self.at = at
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    def __init__(self, seed: int):
        self.seed = seed
        self.now = 0
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = 0
        self._streams: dict[str, random.Random] = {}
        self.events_run = 0

    def rng(self, name: str) -> random.Random:
        """The random stream called `name`: the same seed and name always give the same numbers."""
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = named_stream(self.seed, name)
        return stream

    def call_at(self, at: int, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run `callback(*args)` at virtual time `at` (never earlier than now)."""
        timer = Timer(max(at, self.now), callback, args)
        self._seq += 1
        heapq.heappush(self._heap, (timer.at, self._seq, timer))
        return timer

    def call_later(self, delay: int, callback: Callable[..., Any], *args: Any) -> Timer:
        return self.call_at(self.now + max(0, delay), callback, *args)

    def next_time(self) -> int | None:
        """When the next live event is due, or None when nothing is scheduled."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def step(self) -> bool:
        """Run the next live event; False when there is none."""
        heap = self._heap
        while heap:
            at, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self.now = at
            self.events_run += 1
            timer.callback(*timer.args)
            return True
        return False

    def run_until(self, at: int, stop: Callable[[], bool] | None = None) -> None:
        """Run every event due up to `at`, then set the clock to `at`; `stop()` ends it early."""
        while True:
            due = self.next_time()
            if due is None or due > at:
                break
            self.step()
            if stop is not None and stop():
                return
        self.now = max(self.now, at)


class SimClock:
    """The core's Clock protocol over a scheduler, for one simulated machine: its monotonic
    clock may run at a skewed rate and its wall clock may jump (which moves only ctime/mtime)."""

    def __init__(self, scheduler: Scheduler, wall_origin_ms: int = 1_700_000_000_000):
        self.scheduler = scheduler
        self.wall_offset = wall_origin_ms
        self.rate = 1.0  # monotonic ms per virtual ms (skew)
        self._mono_base = 0.0
        self._mono_at = 0

    def mono_ms(self) -> int:
        now = self.scheduler.now
        return int(self._mono_base + (now - self._mono_at) * self.rate)

    def wall_ms(self) -> int:
        return self.scheduler.now + self.wall_offset

    def set_rate(self, rate: float) -> None:
        self._mono_base = self._mono_base + (self.scheduler.now - self._mono_at) * self.rate
        self._mono_at = self.scheduler.now
        self.rate = rate

    def jump_wall(self, delta_ms: int) -> None:
        self.wall_offset += delta_ms
