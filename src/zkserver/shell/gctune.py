"""The cyclic garbage collector in a long-running server process.

A server holds millions of long-lived objects (znodes, their dicts, sessions) and makes short-
lived ones per request. CPython's default collector (a gen-0 pass every 700 net allocations,
older generations scanned in proportion) keeps re-walking the tree: it cost a large share of
a write's CPU, and a full collection over a million znodes stalls every client at once.
So: no collection while the data dir is loaded (nothing loaded is garbage), then freeze what
start-up made (the permanent generation is never scanned) and collect the young generation
less often. Request objects are freed by reference counting; the collector only has cycles
to find, and the hot path makes few.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def loading() -> None:
    """Before recovery: nothing loaded from disk is garbage."""
    gc.disable()


def serving() -> None:
    """Once the server listens: freeze the loaded tree out of the collector's sight."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    gc.enable()
