"""`zkserver dev-ensemble N`: a local ensemble in one command, to try one out.

Theory of operation. N voting members (and K observers) run as `python -m zkserver start`
processes under one directory: DIR/m<myid>/ holds each member's zoo.cfg, its data dir and its
output (zkserver.log). The embedded ensemble engine starts them, without its link proxy: every
member's zoo.cfg has the same server lines, so DIR is an ordinary ensemble that also starts by
hand, member by member. The command prints each member's client port, PID and log and the
connect string, then watches until SIGINT or SIGTERM: it reports a member that exits (kill -9
one to watch the others fail over) and every change of leader. Then it stops every member
(SIGTERM; SIGKILL after 10 s) and exits. A signal during start-up takes effect once the
members are up, so that none is left behind. Without --dir the directory is a temporary one,
removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from .embedded.ensemble import Ensemble
from .embedded.nodes import LoopThread, ProcessNode
from .embedded.settings import START_TIMEOUT, STOP_TIMEOUT, Plan, ZkServerError

WATCH_S = 0.5


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def run(args: argparse.Namespace, props: dict[str, str], out: TextIO = sys.stdout) -> int:
    if args.nodes < 2:
        print("zkserver dev-ensemble: give 2 or more members (`zkserver start` runs one)", file=sys.stderr)
        return 2
    root = Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="zkserver-dev-"))
    try:
        plan = Plan("subprocess", args.nodes, args.base_port, "disk", root, None, props, {}, START_TIMEOUT,
                    args.observers)
    except ValueError as e:
        print(f"zkserver dev-ensemble: {e}", file=sys.stderr)
        if not args.dir:
            root.rmdir()
        return 2
    root.mkdir(parents=True, exist_ok=True)
    procs: list[ProcessNode] = []
    ensemble = Ensemble(plan, root, procs, proxied=False)
    thread = LoopThread()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_stop)
    try:
        return _serve(ensemble, thread, out)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        thread.call(ensemble.stop(), STOP_TIMEOUT * (len(procs) + 1))
        thread.close()
        print("every member stopped", file=out, flush=True)
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def _serve(ensemble: Ensemble, thread: LoopThread, out: TextIO) -> int:
    print(f"zkserver dev-ensemble: {ensemble.plan.nodes} members"
          f"{_observers(ensemble.plan.observers)} in {ensemble.root}",
          file=out, flush=True)
    started = time.monotonic()
    try:
        leader = _start(ensemble, thread)
    except ZkServerError as e:
        print(f"zkserver dev-ensemble: {e}", file=sys.stderr)
        return 1
    if leader is None:
        return 0
    modes = thread.call(ensemble.modes(), STOP_TIMEOUT)
    print(f"serving after {time.monotonic() - started:.1f} s", file=out)
    for seat in ensemble.seats:
        node = ensemble.nodes[seat.index]
        pid = node.pid if isinstance(node, ProcessNode) else None
        print(f"  member {seat.myid}  {modes[seat.index] or 'electing':<8}  client port {seat.client_port}"
              f"  pid {pid}  log {seat.log_path}", file=out)
    print(f"connect string: {ensemble.hosts()}", file=out)
    print("kill -9 a member's pid to watch the others fail over; Ctrl-C stops every member", file=out, flush=True)
    try:
        _watch(ensemble, thread, out, modes)
    except _Stop as e:
        print(f"{e}: stopping every member", file=out, flush=True)
    except KeyboardInterrupt:
        print("stopping every member", file=out, flush=True)
    return 0


def _start(ensemble: Ensemble, thread: LoopThread) -> int | None:
    """Start every member; the leader's index, or None when a signal came meanwhile."""
    future = asyncio.run_coroutine_threadsafe(ensemble.start(), thread.loop)
    stopped = False
    while True:
        try:
            leader = future.result()
        except (_Stop, KeyboardInterrupt):
            stopped = True  # wait for the start to settle: a member started after we stop would stay
            continue
        return None if stopped else leader


def _watch(ensemble: Ensemble, thread: LoopThread, out: TextIO, modes: dict[int, str | None]) -> None:
    reported: set[int] = set()
    leader = _leader_of(modes)
    while True:
        time.sleep(WATCH_S)
        for seat in ensemble.seats:
            node = ensemble.nodes[seat.index]
            if isinstance(node, ProcessNode) and node.proc is not None and not node.running \
                    and seat.index not in reported:
                reported.add(seat.index)
                print(f"member {seat.myid} (pid {node.pid}) exited: {_status(node.proc.returncode)}; start it again"
                      f" with: python -m zkserver start {seat.dir / 'zoo.cfg'}", file=out, flush=True)
        now = _leader_of(thread.call(ensemble.modes(), STOP_TIMEOUT))
        if now != leader:
            leader = now
            text = "none (electing)" if now is None else f"member {ensemble.seats[now].myid}"
            print(f"leader: {text}", file=out, flush=True)


def _leader_of(modes: dict[int, str | None]) -> int | None:
    leaders = [i for i, mode in modes.items() if mode == "leader"]
    return leaders[0] if len(leaders) == 1 else None


def _status(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def _observers(count: int) -> str:
    return "" if not count else f" and {count} observer{'s' if count > 1 else ''}"
