"""Start-up time of an embedded zkserver, a zkserver subprocess and Apache ZooKeeper, alone
and as 3-member ensembles.

A benchmark, not a test: it prints a table. For each way of starting a server it measures,
from the moment we ask for a server, (a) when the start call returned (a process launcher
returns at once; an ensemble launcher once a leader serves), and (b) when the first request
was served: a new session was granted and getChildren("/") answered (by an ensemble's first
member, whatever its role). The process rows poll the client port every few milliseconds
until that works. Apache ZooKeeper 3.8 runs as tests/support/servers.py runs it (the Debian
package's jars, QuorumPeerMain, the test zoo.cfg); its row is left out when it is missing.

    python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from zkserver.embedded import AsyncZkServer, WireSession, ZkServer  # noqa: E402

POLL_S = 0.005
ATTEMPT_TIMEOUT_S = 0.05
DEADLINE_S = 60.0


def first_request(port: int, timeout: float = 5.0) -> None:
    """A session and one read, as a client's first call needs them."""
    with WireSession("127.0.0.1", port, timeout=timeout) as wire:
        err, _ = wire.call(8, b"\x00\x00\x00\x01/\x00")  # getChildren("/", watch=false)
        assert err == 0, err


def poll_first_request(port: int, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server process exited")
        try:
            # A short time-out: a JVM accepts connections before it serves them.
            first_request(port, ATTEMPT_TIMEOUT_S)
            return
        except OSError:
            time.sleep(POLL_S)
    raise RuntimeError("no answer")


def run_embedded(**kwargs: object) -> tuple[float, float]:
    t0 = time.perf_counter()
    zk = ZkServer(**kwargs).start()  # type: ignore[arg-type]
    t1 = time.perf_counter()
    try:
        first_request(zk.members[0].port if zk.nodes > 1 else zk.port)
        t2 = time.perf_counter()
    finally:
        zk.close()
    return t1 - t0, t2 - t0


def run_loop() -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        t0 = time.perf_counter()
        zk = await AsyncZkServer().start()
        t1 = time.perf_counter()
        try:
            await asyncio.to_thread(first_request, zk.port)
            t2 = time.perf_counter()
        finally:
            await zk.close()
        return t1 - t0, t2 - t0

    return asyncio.run(main())


def run_apache() -> tuple[float, float]:
    from tests.support.servers import APACHE_CLASSPATH, APACHE_DEFAULT_PROPS, APACHE_JVM_OPTS, APACHE_MAIN, write_cfg

    with tempfile.TemporaryDirectory(prefix="bench-apache-") as tmp:
        cfg_path, _, port = write_cfg(Path(tmp), None)
        flags = [f"-D{key}={value}" for key, value in APACHE_DEFAULT_PROPS.items()]
        argv = ["java", *APACHE_JVM_OPTS, *flags, "-cp", APACHE_CLASSPATH, APACHE_MAIN, str(cfg_path)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        t1 = time.perf_counter()
        try:
            poll_first_request(port, lambda: proc.poll() is None)
            t2 = time.perf_counter()
        finally:
            proc.kill()
            proc.wait()
    return t1 - t0, t2 - t0


def run_apache_ensemble() -> tuple[float, float]:
    from tests.support.cluster import Cluster

    with tempfile.TemporaryDirectory(prefix="bench-apache-") as tmp, \
            Cluster(Path(tmp), ["apache"] * 3, tick_ms=2000, init_limit=10, sync_limit=5) as cluster:
        t0 = time.perf_counter()
        cluster.start(wait=False)
        t1 = time.perf_counter()
        try:
            poll_first_request(cluster.seats[1].client_port, lambda: cluster.members[1].running)
        except RuntimeError as e:
            raise RuntimeError(f"{e}:\n{cluster.members[1].log_tail(30)}") from None
        t2 = time.perf_counter()
    return t1 - t0, t2 - t0


def import_time() -> float:
    """Importing zkserver.embedded in a fresh interpreter (paid once per test process)."""
    code = "import time; t = time.perf_counter(); import zkserver.embedded; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": ""})
    return float(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from tests.support.servers import apache_installed

    cases: list[tuple[str, Callable[[], tuple[float, float]]]] = [
        ("zkserver in-process, thread, memory", lambda: run_embedded()),
        ("zkserver in-process, thread, disk (temp dir)", lambda: run_embedded(storage="disk")),
        ("zkserver in-process, caller's loop, memory", run_loop),
        ("zkserver subprocess, memory", lambda: run_embedded(mode="subprocess")),
        ("zkserver subprocess, disk (temp dir)", lambda: run_embedded(mode="subprocess", storage="disk")),
        ("zkserver ensemble of 3, in-process", lambda: run_embedded(nodes=3)),
        ("zkserver ensemble of 3, subprocesses", lambda: run_embedded(nodes=3, mode="subprocess")),
    ]
    if apache_installed():
        cases.append(("Apache ZooKeeper 3.8 (JVM)", run_apache))
        cases.append(("Apache ZooKeeper 3.8, ensemble of 3", run_apache_ensemble))
    else:
        print("(Apache ZooKeeper is not installed: its row is left out)")
    imported = statistics.median(import_time() for _ in range(args.runs))
    print(f"import zkserver.embedded in a fresh interpreter: {imported * 1000:.0f} ms (median of {args.runs})")
    print(f"median (min) of {args.runs} runs, milliseconds from asking for a server:\n")
    print(f"{'how':46} {'start returned':>16} {'first request served':>22}")
    for name, run in cases:
        run()  # warm-up: the first run pays imports and page-cache misses
        results = [run() for _ in range(args.runs)]
        started = [r[0] * 1000 for r in results]
        served = [r[1] * 1000 for r in results]
        print(f"{name:46} {statistics.median(started):9.1f} ({min(started):5.1f})"
              f" {statistics.median(served):13.1f} ({min(served):6.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
