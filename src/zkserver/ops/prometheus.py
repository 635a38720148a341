"""The Prometheus endpoint (Apache's PrometheusMetricsProvider): GET /metrics on
metricsProvider.httpHost:httpPort, served by aiohttp on the server's own event loop.

Exposition and parsing are prometheus_client's. Names, types and labels follow Apache's
provider: every catalogue entry under its bare name; summaries with quantile 0.5 (and 0.9,
0.99 when ADVANCED) plus _count/_sum; gauges as gauges. Counters come out as the Python client
writes every counter, with the `_total` sample suffix (Apache's simpleclient 0.9 writes the bare
name; a text parser reads both as the same counter family). Apache's exportJvmInfo analogue is
the client's process and Python platform/GC collectors. Our own additions carry a zkserver_
prefix: per-operation request counts.

An ensemble member exports its role's gauges too (a gauge Apache's role answers null for reads
0, as Apache's wrapper gives it), none while it is electing (Apache's ZooKeeperServer has
unregistered them then), and leaves out the quorum metrics we do not measure
(metrics.UNMEASURED_QUORUM) rather than export a made-up 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from . import view
from .metrics import CATALOGUE, COUNTER, GAUGE, SUMMARY_ADV, UNMEASURED_QUORUM, _summaries, gauges, namespace_sets
from .stats import Summary, namespace_summary

if TYPE_CHECKING:
    from ..shell.server import ServerRunner

log = logging.getLogger("zkserver.metrics")

PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BASIC_QUANTILES = (0.5,)
_ADVANCED_QUANTILES = (0.5, 0.9, 0.99)
_EMPTY = Summary()


class ZkCollector:
    """A prometheus_client collector reading the server's state at scrape time."""

    def __init__(self, server: ServerRunner):
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        if view.server_state(server) is not None:  # Apache unregisters them while electing
            for name, value in gauges(server):
                yield GaugeMetricFamily(name, name, value=float(value or 0))
        summaries = _summaries(server)
        counters = server.stats.counters
        for name, kind in CATALOGUE:
            if kind == GAUGE or name in UNMEASURED_QUORUM:
                continue
            if kind == COUNTER:
                yield CounterMetricFamily(name, name, value=float(counters.get(name, 0)))
            else:
                yield _summary(name, summaries.get(name, _EMPTY), kind == SUMMARY_ADV)
        yield from _namespace_summaries(server)
        ops = CounterMetricFamily("zkserver_requests", "requests answered, by operation", labels=["op"])
        for op, n in server.stats.op_count_items():
            ops.add_metric([op], float(n))
        yield ops


def _summary(name: str, s: Summary, advanced: bool) -> Metric:
    m = Metric(name, name, "summary")
    for q in _ADVANCED_QUANTILES if advanced else _BASIC_QUANTILES:
        m.add_sample(name, {"quantile": str(q)}, s.quantile(q))
    m.add_sample(name + "_count", {}, float(s.count))
    m.add_sample(name + "_sum", {}, float(s.total))
    return m


def _namespace_summaries(server: ServerRunner) -> Iterator[Metric]:
    """Apache's labelled summaries (PrometheusLabelledSummary, label `key` = the namespace). We
    keep count, sum, min and max per namespace, not a window of values: no quantile samples."""
    for set_name, summaries in namespace_sets(server.stats.namespaces):
        m = Metric(set_name, set_name, "summary")
        for namespace, measure in summaries.namespaces.items():
            _, _, _, count, total = namespace_summary(measure)
            m.add_sample(set_name + "_count", {"key": namespace}, float(count))
            m.add_sample(set_name + "_sum", {"key": namespace}, float(total))
        yield m


def make_registry(server: ServerRunner, export_process_info: bool = True) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ZkCollector(server))
    if export_process_info:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


class MetricsServer:
    """GET /metrics on host:port; everything else is 404, as Apache's servlet context."""

    def __init__(self, server: ServerRunner, host: str, port: int, export_process_info: bool = True):
        self.registry = make_registry(server, export_process_info)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0 and site._server is not None:  # an ephemeral port (tests)
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("Starting /metrics HTTP endpoint at host: %s, port: %d", self.host, self.port)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
