"""What happened in a simulated world, kept small: bounded rings of trace lines, and one hash.

Every part of the world notes what it does under a place name: a member ("m1"), a client
("c3"), a directed link ("c3>m1"), the world or the fault injector ("world"). Each place keeps
only its last `ring` lines (a failure prints them: the last events per member and per link),
while every line ever noted goes into a running hash: two runs of one seed must give the same
hash, which is how determinism is tested.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable


class Trace:
    def __init__(self, now: Callable[[], int], ring: int = 40):
        self._now = now
        self.ring = ring
        self.places: dict[str, deque[str]] = {}
        self._hash = hashlib.blake2b(digest_size=16)
        self.lines = 0

    def note(self, place: str, text: str) -> None:
        line = f"{self._now():>8} {text}"
        ring = self.places.get(place)
        if ring is None:
            ring = self.places[place] = deque(maxlen=self.ring)
        ring.append(line)
        self._hash.update(f"{place} {line}\n".encode())
        self.lines += 1

    def tail(self, place: str) -> list[str]:
        return list(self.places.get(place, ()))

    def digest(self) -> str:
        return self._hash.hexdigest()
