"""The A/B benchmark keeps working: `python -m bench --quick` and `python -m bench --ensemble --quick`
run to the end and print their tables (the ensemble's with a figure of each kind on every row).

No figure is checked: a benchmark is not a test (timings on a shared CI machine mean nothing).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from tests.support.servers import REPO_ROOT, skip_if_no_apache, zkserver_env

pytestmark = pytest.mark.apache


def test_quick_benchmark_prints_the_table() -> None:
    skip_if_no_apache()
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("the benchmark's load generator needs a C compiler")
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=REPO_ROOT, env=zkserver_env(),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "raw fsync floor" in out
    header = next((line for line in out.splitlines() if line.startswith("workload")), "")
    assert "apache" in header and "zkserver" in header and "ratio" in header
    for workload in ("getData", "setData", "getChildren", "multi", "oneWrite", "fanout", "connect", "restart"):
        assert any(line.startswith(workload) for line in out.splitlines()), f"no {workload} row:\n{out}"


def test_quick_ensemble_benchmark_prints_the_table() -> None:
    skip_if_no_apache()
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("the benchmark's load generator needs a C compiler")
    done = subprocess.run([sys.executable, "-m", "bench", "--ensemble", "--quick"], cwd=REPO_ROOT,
                          env=zkserver_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next((line for line in lines if line.startswith("workload")), "")
    assert "apache" in header and "zkserver" in header and "ratio" in header
    for workload in ("getData", "setData", "create", "mixed", "oneWriteFollower", "oneWriteLeader", "failover"):
        row = next((line for line in lines if line.startswith(workload + " ")), None)
        assert row is not None, f"no {workload} row:\n{done.stdout}"
        assert row.split()[2] != "-" and row.split()[3] != "-", f"{workload} lacks a figure for a kind: {row}"
