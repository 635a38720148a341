"""`zkserver dev-ensemble`: started as a process, used through kazoo, a member killed with -9,
stopped with SIGINT; afterwards every process it started (members and their own children) is
gone, checked by PID.

The command's output is read line by line by a thread; every wait is for a line it prints,
bounded by a timeout that only fails the test.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from tests.support.ports import free_port_block
from tests.support.servers import zkserver_env

from zkserver.devensemble import run

TIMEOUT = 60.0
MEMBER = re.compile(r"member (\d+)\s+(\w+)\s+client port (\d+)\s+pid (\d+)\s+log (\S+)")


class Output:
    """The process's output lines as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, pattern: str) -> re.Match[str]:
        """Lines up to the first that matches `pattern`."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                seen = "\n".join(self.seen)
                raise AssertionError(f"no line matching {pattern!r} in time; output:\n{seen}") from None
            if line is None:
                raise AssertionError(f"the output ended before {pattern!r}:\n" + "\n".join(self.seen))
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match


def descendants(root: int) -> set[int]:
    """Every live process below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that does not reap is dead too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_dev_ensemble_serves_fails_over_and_stops_everything(tmp_path: Path) -> None:
    base = free_port_block(9)
    root = tmp_path / "dev"
    argv = [sys.executable, "-m", "zkserver", "dev-ensemble", "3", "--dir", str(root), "--base-port", str(base)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=zkserver_env(),
                            start_new_session=True)
    started: set[int] = set()
    client = KazooClient(hosts="127.0.0.1:1")  # replaced once the connect string is known
    try:
        out = Output(proc)
        members = []
        out.until(r"serving after")
        for _ in range(3):
            members.append(out.until(MEMBER.pattern))
        hosts = out.until(r"connect string: (\S+)").group(1)
        out.until(r"Ctrl-C stops every member")
        ports = [int(m.group(3)) for m in members]
        assert ports == [base, base + 1, base + 2]
        assert hosts == ",".join(f"127.0.0.1:{port}" for port in ports)
        pids = {int(m.group(1)): int(m.group(4)) for m in members}
        started = descendants(proc.pid)  # the members and their syncer processes
        assert set(pids.values()) <= started
        for m in members:
            assert Path(m.group(5)) == root / f"m{m.group(1)}" / "zkserver.log"
            assert (root / f"m{m.group(1)}" / "data" / "myid").read_text().strip() == m.group(1)

        client = KazooClient(hosts=hosts, timeout=10.0)
        client.start(timeout=TIMEOUT)
        client.create("/tried", b"it")
        leader = next(int(m.group(1)) for m in members if m.group(2) == "leader")
        os.kill(pids[leader], signal.SIGKILL)
        out.until(rf"member {leader} \(pid {pids[leader]}\) exited: killed by SIGKILL")
        new = int(out.until(r"leader: member (\d+)").group(1))
        assert new != leader
        client.retry(client.set, "/tried", b"after the failover")
        assert client.get("/tried")[0] == b"after the failover"
        client.stop()

        proc.send_signal(signal.SIGINT)
        out.until(r"every member stopped")
        assert proc.wait(TIMEOUT) == 0
        left = sorted(pid for pid in started | {proc.pid} if alive(pid))
        assert not left, f"processes left behind: {left}"
        assert (root / "m1" / "zoo.cfg").exists()  # a --dir is kept
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_dev_ensemble_refuses_a_single_member(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(nodes=1, dir=None, observers=0, base_port=0)
    assert run(args, {}) == 2
    assert "2 or more" in capsys.readouterr().err
