"""`zkserver` command line: start a server in the foreground, ask one for its status, run a local
ensemble (dev-ensemble), and Apache's storage tools."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

from . import ZOOKEEPER_COMPAT_VERSION, __version__
from .config import (
    ConfigError,
    ServerConfig,
    is_standalone,
    load_config,
    parse_system_properties,
)
from .core import CoreSettings
from .security import setup as security
from .shell import gctune
from .shell.election_net import ElectionBindError
from .shell.server import ServerOptions, ServerRunner
from .storage.database import StorageOptions
from .storage.txnlog import StorageError

log = logging.getLogger("zkserver")


def core_settings(cfg: ServerConfig) -> CoreSettings:
    return CoreSettings(
        tick_ms=cfg.tick_time,
        min_session_timeout=cfg.effective_min_session_timeout,
        max_session_timeout=cfg.effective_max_session_timeout,
        server_id=cfg.server_id or 0,
        max_client_cnxns=cfg.max_client_cnxns,
        max_cnxns=cfg.max_cnxns,
        reconfig_enabled=cfg.reconfig_enabled,
        local_sessions=cfg.local_sessions_enabled,
        local_sessions_upgrading=cfg.local_sessions_upgrading_enabled,
        exists_checks_read=cfg.properties.get("zookeeper.existsChecksRead", "true").lower() != "false",
        max_buffer=cfg.jute_max_buffer,
        extended_types=cfg.extended_types_enabled,
        super_digest=cfg.super_digest,
        skip_acl=cfg.skip_acl,
        enforce_quota=cfg.enforce_quota,
        digest_auth_enabled=cfg.digest_auth_enabled,
        container_check_interval_ms=cfg.container_check_interval_ms,
        container_max_per_minute=cfg.container_max_per_minute,
        container_max_never_used_ms=cfg.container_max_never_used_interval_ms,
        election_hold_ms=cfg.election_client_hold_ms,
        **security.core_kwargs(cfg),  # x509/sasl providers, SASL users, enforce.auth
    )


def server_options(cfg: ServerConfig) -> ServerOptions:
    ensemble = None
    if not is_standalone(cfg):
        from .shell.ensemble import EnsembleOptions

        ensemble = EnsembleOptions.from_config(cfg)
    return ServerOptions(
        ensemble=ensemble,
        host=cfg.client_port_address,
        port=cfg.client_port if cfg.client_port is not None else 2181,
        settings=core_settings(cfg),
        four_letter_whitelist=cfg.four_letter_whitelist,
        storage=None if cfg.properties.get("zkserver.storage") == "memory" else storage_options(cfg),
        plain_port=cfg.client_port is not None or cfg.secure_client_port is None,
        secure_host=cfg.secure_client_port_address,
        secure_port=cfg.secure_client_port,
        tls=security.tls_server(cfg),
        listen_backlog=cfg.client_port_listen_backlog,
    )


def storage_options(cfg: ServerConfig) -> StorageOptions:
    return StorageOptions(
        data_dir=cfg.data_dir,
        data_log_dir=cfg.data_log_dir,
        snap_count=cfg.snap_count,
        snap_size_limit_kb=cfg.snap_size_limit_kb,
        pre_alloc_size_kb=cfg.pre_alloc_size_kb,
        force_sync=cfg.force_sync,
        digest_enabled=cfg.digest_enabled,
        snapshot_compression=cfg.snapshot_compression_method,
        serialize_last_processed_zxid=cfg.serialize_last_processed_zxid_enabled,
        autopurge_snap_retain_count=cfg.autopurge_snap_retain_count,
        autopurge_purge_interval=cfg.autopurge_purge_interval,
        autocreate_dirs=cfg.datadir_autocreate,
        commit_log_count=cfg.commit_log_count,
    )


async def serve(cfg: ServerConfig) -> int:
    from .ops.service import OpsServices

    started = time.monotonic()
    gctune.loading()
    try:
        runner = ServerRunner(server_options(cfg))
    except (StorageError, OSError) as e:  # OSError: e.g. a full disk while recovery rewrites a file
        print(f"zkserver: cannot start: {e}", file=sys.stderr)
        return 3
    except ConfigError as e:  # e.g. an unreadable key store or JAAS file
        print(f"zkserver: invalid configuration: {e}", file=sys.stderr)
        return 2
    runner.stats.db_init_time.add(int((time.monotonic() - started) * 1000))
    ops = OpsServices(runner, cfg)
    await ops.start()
    try:
        await runner.start()
    except ElectionBindError as e:
        print(f"zkserver: cannot start: {e}", file=sys.stderr)
        await ops.stop()
        return e.exit_code
    ops.attach()
    gctune.serving()
    log.info("zkserver %s (ZooKeeper %s protocol) serving on port %d; dataDir=%s",
             __version__, ZOOKEEPER_COMPAT_VERSION, runner.port, cfg.data_dir)
    _log_config_summary(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await ops.stop()
    await runner.stop()
    return 0


def _log_config_summary(cfg: ServerConfig) -> None:
    log.info("config: tickTime=%d minSessionTimeout=%d maxSessionTimeout=%d maxClientCnxns=%d dataDir=%s "
             "dataLogDir=%s snapCount=%d forceSync=%s autopurge.snapRetainCount=%d autopurge.purgeInterval=%d "
             "fsync.warningthresholdms=%d jute.maxbuffer=%d", cfg.tick_time, cfg.effective_min_session_timeout,
             cfg.effective_max_session_timeout, cfg.max_client_cnxns, cfg.data_dir, cfg.data_log_dir,
             cfg.snap_count, "yes" if cfg.force_sync else "no", cfg.autopurge_snap_retain_count,
             cfg.autopurge_purge_interval, cfg.fsync_warning_threshold_ms, cfg.jute_max_buffer)
    log.info("config: 4lw.commands.whitelist=%s admin.enableServer=%s admin=%s:%d%s metricsProvider=%s",
             ",".join(sorted(cfg.four_letter_whitelist)), cfg.admin_enable_server, cfg.admin_server_address,
             cfg.admin_server_port, cfg.admin_command_url, cfg.metrics_provider_class)


def _run_loop(coro) -> int:
    try:
        import uvloop
    except ImportError:  # uvloop is optional on platforms without it
        return asyncio.run(coro)
    return uvloop.run(coro)


def _config_or_complain(args: argparse.Namespace, props: dict[str, str]) -> ServerConfig | None:
    try:
        return load_config(args.config, props)
    except ConfigError as e:
        print(f"zkserver: invalid configuration: {e}", file=sys.stderr)
        return None


def cmd_start(args: argparse.Namespace, props: dict[str, str]) -> int:
    cfg = _config_or_complain(args, props)
    if cfg is None:
        return 2
    from .ops.logs import add_file_handler, log_file_path

    path = log_file_path(args.log_dir, cfg.properties, cfg.data_log_dir)
    problem = add_file_handler(path)
    if problem is not None:
        log.warning("not logging to %s: %s", path, problem)
    for warning in cfg.warnings:
        log.warning("%s", warning)
    return _run_loop(serve(cfg))


def cmd_status(args: argparse.Namespace, props: dict[str, str]) -> int:
    from .ops.status import status

    cfg = _config_or_complain(args, props)
    return 2 if cfg is None else status(cfg)


def cmd_storage_tool(args: argparse.Namespace, props: dict[str, str]) -> int:
    from .storage import purge, tools

    try:
        if args.command == "txnlog-dump":
            return tools.dump_txnlog(args.file, sys.stdout)
        if args.command == "snapshot-dump":
            return tools.dump_snapshot(args.file, sys.stdout, args.data)
        if args.retain is not None:  # Apache's PurgeTxnLog usage: dataLogDir snapDir -n count
            removed = purge.purge(os.path.join(args.snap_dir or args.config, "version-2"),
                                  os.path.join(args.config, "version-2"), args.retain)
        else:
            opts = storage_options(load_config(args.config, props))
            removed = purge.purge(opts.snap_dir, opts.log_dir, opts.autopurge_snap_retain_count)
    except (StorageError, ConfigError, ValueError, OSError) as e:
        print(f"zkserver {args.command}: {e}", file=sys.stderr)
        return 2
    print(f"removed {len(removed)} files")
    return 0


def _add_storage_commands(sub: argparse._SubParsersAction) -> None:
    dump = sub.add_parser("txnlog-dump", help="print the txns of a log.<zxid> file")
    dump.add_argument("file")
    snap = sub.add_parser("snapshot-dump", help="print the znodes and sessions of a snapshot.<zxid> file")
    snap.add_argument("file")
    snap.add_argument("--data", action="store_true", help="print node data too")
    purge = sub.add_parser("purge", help="delete old snapshots and logs: `purge zoo.cfg` (autopurge settings) "
                                         "or `purge dataLogDir [snapDir] -n count`")
    purge.add_argument("config")
    purge.add_argument("snap_dir", nargs="?")
    purge.add_argument("-n", dest="retain", type=int)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        props, rest = parse_system_properties(argv, os.environ)
    except ConfigError as e:
        print(f"zkserver: {e}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="zkserver", description="A ZooKeeper-compatible server.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO (default), WARNING or ERROR")
    parser.add_argument("--log-dir", help="where zkserver.log rotates (default: zookeeper.log.dir, "
                                          "$ZOO_LOG_DIR, else dataLogDir)")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="run a server in the foreground (-Dname=value sets a property)")
    start.add_argument("config", nargs="?", help="zoo.cfg (default: port 2181, dataDir ./data)")
    status = sub.add_parser("status", help="ask a server for its mode, as zkServer.sh status does")
    status.add_argument("config", nargs="?", help="zoo.cfg (default: port 2181 on localhost)")
    _add_storage_commands(sub)
    dev = sub.add_parser("dev-ensemble", help="run N members on this machine under one directory until Ctrl-C")
    dev.add_argument("nodes", type=int, help="voting members (2 or more)")
    dev.add_argument("--dir", help="where the members live (default: a temporary dir, removed at the end)")
    dev.add_argument("--observers", type=int, default=0, help="observers besides the voting members")
    dev.add_argument("--base-port", type=int, default=0,
                     help="client ports from here, then the quorum and election ports (default: free ports)")
    args = parser.parse_args(rest)
    from .ops.logs import setup_stderr

    try:
        setup_stderr(args.log_level)
    except ValueError:
        print(f"zkserver: unknown log level {args.log_level!r}", file=sys.stderr)
        return 2
    if args.command == "start":
        return cmd_start(args, props)
    if args.command == "status":
        return cmd_status(args, props)
    if args.command in ("txnlog-dump", "snapshot-dump", "purge"):
        return cmd_storage_tool(args, props)
    if args.command == "dev-ensemble":
        from .devensemble import run

        return run(args, props)
    return 2
