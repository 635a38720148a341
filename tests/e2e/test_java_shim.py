"""tests/support/java-shim/java: QuorumPeerMain becomes `python -m zkserver start`, anything else
runs the real JVM."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.kazoo_cluster import SHIM_DIR

SHIM = SHIM_DIR / "java"


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(SHIM), *argv], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_quorum_peer_main_becomes_zkserver_start_with_the_d_flags(tmp_path: Path) -> None:
    recorder = tmp_path / "python"  # stands in for the interpreter: prints what it was given
    recorder.write_text(f"#!{sys.executable}\nimport sys\nprint(repr(sys.argv[1:]))\n")
    recorder.chmod(0o755)
    env = {**os.environ, "ZKSERVER_SHIM_PYTHON": str(recorder)}
    argv = ["-cp", "/a.jar:/b.jar", "-Xmx512m", "-Dfile.encoding=UTF-8", "-XX:OnOutOfMemoryError=kill -9 %p",
            "-Dzookeeper.log.dir=/x y", "-Dbare", "org.apache.zookeeper.server.quorum.QuorumPeerMain", "/c/zoo.cfg"]
    out = _run(argv, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == repr(["-m", "zkserver", "start", "-Dfile.encoding=UTF-8", "-Dzookeeper.log.dir=/x y",
                                       "-Dbare", "/c/zoo.cfg"])


def test_other_java_commands_run_the_real_jvm() -> None:
    if shutil.which("java", path=os.environ.get("PATH", "").replace(str(SHIM_DIR), "")) is None:
        pytest.skip("no java on PATH")
    env = {**os.environ, "PATH": f"{SHIM_DIR}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = _run(["-version"], env)
    assert out.returncode == 0 and "version" in out.stderr
