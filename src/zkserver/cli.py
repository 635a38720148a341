"""`zkserver` command line: start a server in the foreground (more commands join later)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from . import ZOOKEEPER_COMPAT_VERSION, __version__
from .config import (
    ConfigError,
    ServerConfig,
    ensemble_refusal_message,
    is_standalone,
    load_config,
    parse_system_properties,
)
from .core import CoreSettings
from .shell.server import ServerOptions, ServerRunner

log = logging.getLogger("zkserver")


def core_settings(cfg: ServerConfig) -> CoreSettings:
    return CoreSettings(
        tick_ms=cfg.tick_time,
        min_session_timeout=cfg.effective_min_session_timeout,
        max_session_timeout=cfg.effective_max_session_timeout,
        server_id=cfg.server_id or 0,
        max_client_cnxns=cfg.max_client_cnxns,
        max_buffer=cfg.jute_max_buffer,
        extended_types=cfg.extended_types_enabled,
        super_digest=cfg.super_digest,
        skip_acl=cfg.skip_acl,
        enforce_quota=cfg.enforce_quota,
        digest_auth_enabled=cfg.digest_auth_enabled,
        container_check_interval_ms=cfg.container_check_interval_ms,
        container_max_per_minute=cfg.container_max_per_minute,
        container_max_never_used_ms=cfg.container_max_never_used_interval_ms,
    )


def server_options(cfg: ServerConfig) -> ServerOptions:
    return ServerOptions(
        host=cfg.client_port_address,
        port=cfg.client_port if cfg.client_port is not None else 2181,
        settings=core_settings(cfg),
        four_letter_whitelist=cfg.four_letter_whitelist,
    )


async def serve(cfg: ServerConfig) -> None:
    runner = ServerRunner(server_options(cfg))
    await runner.start()
    log.info("zkserver %s (ZooKeeper %s protocol) serving on port %d; dataDir=%s; "
             "the txn log is kept in memory until durable storage lands",
             __version__, ZOOKEEPER_COMPAT_VERSION, runner.port, cfg.data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.stop()


def _run_loop(coro) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional on platforms without it
        asyncio.run(coro)
        return
    uvloop.run(coro)


def cmd_start(args: argparse.Namespace, props: dict[str, str]) -> int:
    try:
        cfg = load_config(args.config, props)
    except ConfigError as e:
        print(f"zkserver: invalid configuration: {e}", file=sys.stderr)
        return 2
    for warning in cfg.warnings:
        log.warning("%s", warning)
    if not is_standalone(cfg):
        print(f"zkserver: {ensemble_refusal_message(cfg)}", file=sys.stderr)
        return 2
    if cfg.data_dir:
        os.makedirs(cfg.data_dir, exist_ok=True)
    _run_loop(serve(cfg))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        props, rest = parse_system_properties(argv, os.environ)
    except ConfigError as e:
        print(f"zkserver: {e}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="zkserver", description="A ZooKeeper-compatible server.")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="run a server in the foreground (-Dname=value sets a property)")
    start.add_argument("config", nargs="?", help="zoo.cfg (default: port 2181, dataDir ./data)")
    args = parser.parse_args(rest)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "start":
        return cmd_start(args, props)
    return 2
