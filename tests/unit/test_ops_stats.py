"""ops.stats summaries, the admin rate limiter and the loop stall monitor, in-process."""

from __future__ import annotations

import asyncio
import time

from zkserver.ops.admin import RateLimiter
from zkserver.ops.loopmon import LoopMonitor
from zkserver.ops.metrics import CATALOGUE, SINCE_39, namespace_values
from zkserver.ops.stats import NamespaceStats, Summary, namespace_summary


def test_summary_min_max_avg_quantiles_and_reset() -> None:
    s = Summary()
    assert (s.minimum(), s.max, s.average(), s.quantile(0.5)) == (0, 0, 0.0, 0.0)
    for v in range(1, 101):
        s.add(v)
    assert (s.count, s.total, s.minimum(), s.max) == (100, 5050, 1, 100)
    assert s.average() == 50.5
    assert 49 <= s.quantile(0.5) <= 52 and s.quantile(0.99) >= 99
    s.reset()
    assert (s.count, s.minimum()) == (0, 0)


def test_per_namespace_summaries_follow_apaches_data_tree() -> None:
    ns = NamespaceStats()
    ns.read("/app/x", 5)  # path 6 + data 5 + the Stat's 68
    ns.read("/app", 0)
    ns.read("/", 0)  # the root has no namespace
    ns.write("/app/x", 5)
    ns.write("/zookeeper/quota", 0)
    assert namespace_summary(ns.reads.namespaces["app"]) == (75.5, 72, 79, 2, 151)
    assert set(ns.reads.namespaces) == {"app"} and set(ns.writes.namespaces) == {"app", "zookeeper"}
    assert list(namespace_values(ns))[:5] == [("avg_app_read_per_namespace", 75.5),
                                              ("min_app_read_per_namespace", 72), ("max_app_read_per_namespace", 79),
                                              ("cnt_app_read_per_namespace", 2), ("sum_app_read_per_namespace", 151)]
    ns.reset()  # srst: Apache keeps the namespaces and shows zeros
    assert namespace_summary(ns.reads.namespaces["app"]) == (0.0, 0, 0, 0, 0)
    ns.read("/app/y", 1)
    assert namespace_summary(ns.reads.namespaces["app"]) == (75.0, 75, 75, 1, 75)


def test_per_namespace_counts_past_the_path_cache() -> None:
    ns = NamespaceStats()
    for i in range(5000):  # more distinct paths than the cache keeps
        ns.write(f"/n{i % 3}/k{i}", 0)
    assert sum(m[0] for m in ns.writes.namespaces.values()) == 5000
    assert len(ns.writes.by_path) == 4096


def test_rate_limiter_allows_one_per_interval() -> None:
    rl = RateLimiter(50)
    assert rl.allow() and not rl.allow()
    time.sleep(0.06)
    assert rl.allow() and not rl.allow()


def test_catalogue_has_unique_names_and_39_extras() -> None:
    names = [n for n, _ in CATALOGUE]
    assert len(names) == len(set(names))
    assert set(names) >= SINCE_39
    assert {"readlatency", "updatelatency", "fsynctime", "snapshottime", "jvm_pause_time_ms"} <= set(names)


def test_loop_monitor_records_a_stall() -> None:
    s = Summary()

    async def main() -> None:
        mon = LoopMonitor(s, sleep_ms=10, info_ms=50, warn_ms=1000)
        mon.start()
        await asyncio.sleep(0.03)
        time.sleep(0.12)  # block the loop
        await asyncio.sleep(0.03)
        mon.stop()
        assert mon.info_count == 1

    asyncio.run(main())
    assert s.count >= 2 and s.max >= 80
