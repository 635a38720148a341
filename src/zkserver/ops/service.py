"""Start and stop the operator services beside a running ServerRunner.

`OpsServices` wires what the request path cannot see: fsync and snapshot timings, the digest
history behind `hash`, the event-loop stall monitor, and the two HTTP servers (AdminServer,
Prometheus) when the configuration asks for them. A port that is taken is logged and the
server keeps serving clients, as Apache does when Jetty cannot start.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..config import ServerConfig
from ..storage.database import DiskStorage
from .loopmon import LoopMonitor
from .snapshots import install_hooks, record_digests

if TYPE_CHECKING:
    from ..shell.server import ServerRunner

log = logging.getLogger("zkserver.ops")

def _jvm_pause(cfg: ServerConfig, key: str, default: int) -> int:
    raw = cfg.properties.get("zkserver." + key) or _cfg_value(cfg, key)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def _cfg_value(cfg: ServerConfig, key: str) -> str | None:
    """A zoo.cfg key the config layer checks and drops (the jvm.pause.* ones)."""
    if cfg.source_text is None or key not in cfg.key_lines:
        return None
    for line in cfg.source_text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            return value.strip()
    return None


def install_storage_hooks(server: ServerRunner, cfg: ServerConfig) -> None:
    """fsync timings and threshold, snapshot timings, the digest history and digest mismatches."""
    storage = server.log
    if not isinstance(storage, DiskStorage):
        return
    stats = server.stats
    threshold = cfg.fsync_warning_threshold_ms
    storage.log.warn_threshold_ms = threshold
    storage.log.on_fsync = lambda ms: stats.fsync_done(int(ms), threshold)
    storage.on_digest_mismatch = lambda: stats.count("digest_mismatches_count")
    record_digests(server)
    install_hooks(server)


class OpsServices:
    def __init__(self, server: ServerRunner, cfg: ServerConfig):
        self.server = server
        self.cfg = cfg
        self.admin = None
        self.metrics = None
        self.monitor = LoopMonitor(server.stats.loop_stall, _jvm_pause(cfg, "jvm.pause.sleep.time.ms", 500),
                                   _jvm_pause(cfg, "jvm.pause.info-threshold.ms", 1000),
                                   _jvm_pause(cfg, "jvm.pause.warn-threshold.ms", 10000))

    def attach(self) -> None:
        """After ServerRunner.start (the storage threads exist): hooks and the stall monitor."""
        install_storage_hooks(self.server, self.cfg)
        self.monitor.start()

    async def start(self) -> None:
        """The HTTP servers; before the client port opens, so `ruok` means they are up."""
        cfg = self.cfg
        if cfg.admin_enable_server:
            from .admin import AdminServer

            admin = AdminServer(self.server, cfg)
            try:
                await admin.start()
                self.admin = admin
            except OSError as e:
                log.error("Unable to start AdminServer on %s:%d: %s", admin.host, admin.port, e)
        from .prometheus import PROMETHEUS_PROVIDER

        if cfg.metrics_provider_class == PROMETHEUS_PROVIDER:
            from .prometheus import MetricsServer

            export = cfg.metrics_provider_config.get("exportJvmInfo", "true").lower() == "true"
            metrics = MetricsServer(self.server, cfg.metrics_http_host, cfg.metrics_http_port, export)
            try:
                await metrics.start()
                self.metrics = metrics
            except OSError as e:
                log.error("Cannot start /metrics server on %s:%d: %s", metrics.host, metrics.port, e)

    async def stop(self) -> None:
        self.monitor.stop()
        for svc in (self.admin, self.metrics):
            if svc is not None:
                await svc.stop()
