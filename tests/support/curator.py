"""Apache Curator (Debian's 5.4) from tests: one LeaderLatch participant per Java process
(java/CuratorLatch.java), whose connection states and leadership changes the test reads as lines."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from pathlib import Path

from tests.support import javaclient
from tests.support.prereq import missing

SOURCE = Path(__file__).resolve().parent / "java" / "CuratorLatch.java"
CURATOR_JARS = ("curator-client.jar", "curator-framework.jar", "curator-recipes.jar", "guava.jar")


def classpath() -> str:
    jars = (javaclient.JAR_DIR / jar for jar in CURATOR_JARS)
    return os.pathsep.join([javaclient.client_classpath(), *map(str, jars)])


def require_curator() -> None:
    """Skip without Java or Curator's jars; under CI=true fail instead."""
    javaclient.require_java()
    absent = [jar for jar in CURATOR_JARS if not (javaclient.JAR_DIR / jar).exists()]
    if not absent:
        return
    why = f"Curator's jars are missing from {javaclient.JAR_DIR}: {', '.join(absent)}"
    missing(why, "CI must install libcurator-recipes-java")


class Latch:
    """A LeaderLatch on `path` through `hosts`; `lines` fills as the Java process prints."""

    def __init__(self, hosts: str, path: str, participant: str, session_timeout_ms: int = 4000):
        require_curator()
        cp = os.pathsep.join([str(javaclient.compile_java(SOURCE, classpath())), classpath()])
        self.proc = subprocess.Popen(
            ["java", *javaclient.JVM_OPTS, "-cp", cp, SOURCE.stem, hosts, path, participant, str(session_timeout_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._new.put(line.strip())

    def wait_for(self, line: str, timeout: float = 30.0) -> None:
        """Until the process prints `line` (from now on); AssertionError after `timeout`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                got = self._new.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            self.lines.append(got)
            if got == line:
                return
        raise AssertionError(f"no {line!r} within {timeout} s; the latch printed {self.lines}")

    def drain(self) -> list[str]:
        """What it printed since the last call."""
        new = []
        while not self._new.empty():
            new.append(self._new.get())
        self.lines.extend(new)
        return new

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
