"""Event-loop stall monitor: our analogue of Apache's JvmPauseMonitor.

A timer asks to run every `sleep_ms`; how late it runs is time the event loop could not serve
anyone (a long callback, a GC pass, the host pausing us). Each lateness feeds the
jvm_pause_time_ms summary (Apache's name for the same concept); one over the info threshold is
logged. Apache's keys set the thresholds: jvm.pause.sleep.time.ms (500),
jvm.pause.info-threshold.ms (1000), jvm.pause.warn-threshold.ms (10000). A stall of a whole
second already holds up every client, so we log it at WARNING from the info threshold on.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from .stats import Summary

log = logging.getLogger("zkserver.loopmon")


class LoopMonitor:
    def __init__(self, summary: Summary, sleep_ms: int = 500, info_ms: int = 1000, warn_ms: int = 10000):
        self.summary = summary
        self.sleep_ms = sleep_ms
        self.info_ms = info_ms
        self.warn_ms = warn_ms
        self.info_count = 0
        self.warn_count = 0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._gc_before = 0

    def start(self) -> None:
        log.info("Starting event-loop stall monitor with infoThresholdMs:%d warnThresholdMs:%d and sleepTimeMs:%d",
                 self.info_ms, self.warn_ms, self.sleep_ms)
        self._arm()

    def _arm(self) -> None:
        self._due = time.monotonic() + self.sleep_ms / 1000
        self._gc_before = sum(s["collections"] for s in gc.get_stats())
        self._handle = asyncio.get_running_loop().call_later(self.sleep_ms / 1000, self._wake)

    def _wake(self) -> None:
        stall = int((time.monotonic() - self._due) * 1000)
        if stall >= 0:
            self.summary.add(stall)
        if stall > self.info_ms:
            if stall > self.warn_ms:
                self.warn_count += 1
            else:
                self.info_count += 1
            gcs = sum(s["collections"] for s in gc.get_stats()) - self._gc_before
            log.warning("Detected pause in event loop or host machine: pause of approximately %d ms, "
                        "total pause: info level: %d, warn level: %d; %s", stall, self.info_count,
                        self.warn_count, f"{gcs} GC collection(s)" if gcs else "No GCs detected")
        self._arm()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
