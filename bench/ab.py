"""A/B benchmark: Apache ZooKeeper 3.8 and zkserver, same zoo.cfg, same load, same run.

Theory of operation. For each round the two servers take turns (A then B, the next round B
then A), each started fresh on a new data dir with the same zoo.cfg. A lean C load generator
(bench/zkload.c, built here with gcc) drives each workload with pipelined requests over
several sessions; it prints markers when its measuring window opens and closes, and at those
moments we read the server's CPU time from /proc/<pid>/stat (with its child processes'),
the machine's from /proc/stat, and the generator reports its own from getrusage, so a reader
can see who was the bottleneck and whether anything else on the machine was busy. The figures
of each server are the medians over rounds; ratios are zkserver / Apache.

The restart rows populate a server with 200k and then 1M znodes, stop it (SIGTERM) and time
a new process until it serves its first read; RSS with 1M znodes is read after that restart.

    python -m bench [--quick] [--rounds N] [--workloads getData,setData,...] [--json out.json]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (str(REPO / "src"), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

from tests.support.servers import (  # noqa: E402
    APACHE_CLASSPATH,
    APACHE_MAIN,
    RunningServer,
    write_cfg,
    zkserver_env,
)

from zkserver.embedded import WireSession  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# Upstream zkEnv.sh gives the server -Xmx1000m (ZK_SERVER_HEAP); Debian's script sets none.
APACHE_JVM_OPTS = ["-Xmx1000m", "-Djava.awt.headless=true"]
APACHE_PROPS = {"zookeeper.root.logger": "INFO,CONSOLE", "zookeeper.log.dir": "."}
KINDS = ("apache", "zkserver")

# The zoo.cfg both servers get (dataDir and clientPort are added per run).
BENCH_CFG: dict[str, str | None] = {
    "tickTime": "2000",
    "maxClientCnxns": "0",
    "4lw.commands.whitelist": "*",
    "admin.enableServer": "false",
    # Room for the 2,000-session storm in the accept queue (Apache's default is Java's 50): the
    # connect row then measures the servers, not the kernel's SYN retransmission timer.
    "clientPortListenBacklog": "4096",
    "extendedTypesEnabled": None,  # left out: the stock configuration
}


# ---------------------------------------------------------------- settings


@dataclass
class Settings:
    rounds: int = 3
    warmup: float = 2.0  # per workload, before the measuring window
    duration: float = 5.0
    jit_warmup: float = 3.0  # per op, once after each start (Apache's JIT; zkserver's caches)
    sessions: int = 8
    inflight: int = 16
    size: int = 100
    children: int = 1000
    watchers: int = 200
    fanout_iterations: int = 50
    storm_sessions: int = 2000
    restart_counts: tuple[int, ...] = (200_000, 1_000_000)
    restart_rounds: int = 1
    populate_size: int = 64
    fsync_count: int = 2000

    @classmethod
    def quick(cls) -> Settings:
        return cls(rounds=1, warmup=0.2, duration=0.5, jit_warmup=0.2, children=1000, watchers=200,
                   fanout_iterations=10, storm_sessions=500, restart_counts=(2_000, 10_000), fsync_count=200)


THROUGHPUT = {  # name -> zkload op
    "getData": "getdata",
    "exists": "exists",
    "setData": "setdata",
    "create": "create",
    "getChildren": "children",
    "mixed": "mixed",
    "multi": "multi",
}
OTHERS = ("oneWrite", "fanout", "connect", "restart")
ALL_WORKLOADS = (*THROUGHPUT, *OTHERS)


# ---------------------------------------------------------------- measuring


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) of a server process and its children, live or
    exited: zkserver's txn-log syncer and snapshot children work for the server, as Apache's
    sync and snapshot threads do."""
    ticks = 0
    for p in (pid, *_children(pid)):
        stat = _proc_file(p, "stat")  # empty once exited: its parent's cutime has it then
        if stat:
            ticks += sum(int(x) for x in stat.rsplit(b")", 1)[1].split()[11:15])  # utime stime cutime cstime
    return ticks / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    """RSS of a server process and of the helper programs it runs (zkserver's syncer). Forked
    children (snapshots) are left out: they share the parent's pages."""
    total = 0
    own = _proc_file(pid, "cmdline")
    for p in (pid, *_children(pid)):
        if p != pid and _proc_file(p, "cmdline") in (own, b""):
            continue
        statm = _proc_file(p, "statm")
        if statm:
            total += int(statm.split()[1])
    return total * PAGE / 2**20


def _children(pid: int) -> list[int]:
    """Every live descendant of a process."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        for kid in _proc_file(pid, f"task/{task}/children").split():
            found += (int(kid), *_children(int(kid)))
    return found


def _proc_file(pid: int, name: str) -> bytes:
    """/proc/<pid>/<name>; empty once the process is gone."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (every core) since boot."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts[:8]) - idle) / CLK_TCK


class Window:
    """CPU of the server (summed over an ensemble's members) and of the whole machine between
    two moments."""

    def __init__(self, pids: Sequence[int]):
        self.pids = pids
        self.t0 = self.cpu0 = self.busy0 = 0.0
        self.elapsed = self.server_cpu = self.busy = 0.0

    def _cpu(self) -> float:
        return sum(proc_cpu(pid) for pid in self.pids)

    def start(self) -> None:
        self.t0, self.cpu0, self.busy0 = time.perf_counter(), self._cpu(), machine_busy()

    def stop(self) -> None:
        self.elapsed = time.perf_counter() - self.t0
        self.server_cpu = self._cpu() - self.cpu0
        self.busy = machine_busy() - self.busy0


def zkload(gen: Path, port: int | str, mode: str, *args: object, pid: int | Sequence[int] | None = None,
           on_connected: Callable[[], None] | None = None, timeout: float = 3600) -> dict:
    """Run the generator; sample the server between its markers. Returns its RESULT dict plus
    server_cpu_s / busy_s / window_s when a server pid (or an ensemble's pids) is given. `port`
    may be a comma-separated list: the sessions are spread over those ports."""
    argv = [str(gen), mode, "--port", str(port), *map(str, args)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    win = Window((pid,) if isinstance(pid, int) else pid) if pid else None
    result: dict = {}
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None and proc.stdin is not None
    for line in proc.stdout:
        line = line.strip()
        if line == "MEASURE_START" and win:
            win.start()
        elif line == "MEASURE_END" and win:
            win.stop()
        elif line == "CONNECTED":
            if win:
                win.stop()
            if on_connected:
                on_connected()
            proc.stdin.write("go\n")
            proc.stdin.flush()
        elif line.startswith("RESULT "):
            result = json.loads(line[7:])
        if time.monotonic() > deadline:
            proc.kill()
            break
    err = proc.stderr.read() if proc.stderr else ""
    rc = proc.wait()
    if not result or rc not in (0, 1):
        raise RuntimeError(f"zkload {mode} failed (exit {rc}): {err.strip()}")
    if win:
        result.update(server_cpu_s=win.server_cpu, busy_s=win.busy, window_s=win.elapsed)
    return result


def build_generator(out_dir: Path) -> Path:
    exe = out_dir / "zkload"
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise SystemExit("bench: needs gcc (or cc) to build bench/zkload.c")
    subprocess.run([cc, "-O2", "-Wall", "-o", str(exe), str(REPO / "bench" / "zkload.c")], check=True)
    return exe


def fsync_floor(gen: Path, directory: Path, count: int) -> dict:
    return zkload(gen, 0, "fsync", "--dir", directory, "--count", count)


# ---------------------------------------------------------------- servers


def launch(kind: str, workdir: Path, data_dir: Path | None = None, port: int | None = None) -> RunningServer:
    cfg = dict(BENCH_CFG)
    if data_dir is not None:
        cfg["dataDir"] = str(data_dir)
    if port is not None:
        cfg["clientPort"] = str(port)
    cfg_path, data, port = write_cfg(workdir, cfg)
    if kind == "apache":
        flags = [f"-D{k}={v}" for k, v in APACHE_PROPS.items()]
        argv = ["java", *APACHE_JVM_OPTS, *flags, "-cp", APACHE_CLASSPATH, APACHE_MAIN, str(cfg_path)]
        env = None
    else:
        argv = [sys.executable, "-m", "zkserver", "start", str(cfg_path)]
        env = zkserver_env()
    server = RunningServer(kind=kind, argv=argv, cwd=workdir, cfg_path=cfg_path, data_dir=data, port=port,
                           log_path=workdir / f"{kind}.log", env=env, ready_timeout=60)
    server.launch()
    server.wait_ready()
    # Apache answers ruok before its ZooKeeperServer runs: wait until a session is granted.
    end = time.monotonic() + 60
    while True:
        try:
            with WireSession("127.0.0.1", port, timeout=1.0):
                return server
        except OSError:
            if time.monotonic() > end or not server.running:
                raise
            time.sleep(0.02)


def first_read(port: int, attempt_timeout: float = 0.25) -> None:
    with WireSession("127.0.0.1", port, timeout=attempt_timeout) as wire:
        err, _ = wire.call(4, b"\x00\x00\x00\x06/bench\x00")  # getData("/bench")
        if err:
            raise OSError(f"getData answered {err}")


def restart_until_first_read(server: RunningServer, deadline_s: float = 300) -> float:
    """Stop, start a new process on the same data dir, time it until a read is served."""
    server.stop(timeout=60)
    t0 = time.perf_counter()
    server.launch()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not server.running:
            raise RuntimeError(f"{server.kind} exited during restart:\n{server.log_tail()}")
        try:
            first_read(server.port)
            return time.perf_counter() - t0
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"{server.kind} served no read {deadline_s} s after a restart")


def setup_tree(gen: Path, port: int, size: int, children: int) -> None:
    """The nodes every workload uses: 100 keys of `size` bytes, and `children` under /bench/kids."""
    with WireSession("127.0.0.1", port) as w:
        for p in ("/bench", "/bench/d", "/bench/c", "/bench/m", "/bench/kids", "/bench/w", "/bench/p"):
            w.create(p)
        for i in range(100):
            w.create(f"/bench/d/k{i:02d}", b"x" * size)
    if children:
        zkload(gen, port, "populate", "--prefix", "/bench/kids", "--count", children,
               "--sessions", 4, "--inflight", 32, "--size", 0)


# ---------------------------------------------------------------- one server, one round


@dataclass
class Sample:
    """One workload on one server in one round."""

    value: float  # the headline figure (ops/s, ms, sessions/s, s, MB)
    p50_us: float | None = None
    p99_us: float | None = None
    server_cores: float | None = None  # CPU cores the server used in the window
    server_us_per_op: float | None = None
    gen_cores: float | None = None
    other_cores: float | None = None  # busy CPU of everything else on the machine
    extra: dict = field(default_factory=dict)


def cpu_fields(r: dict, ops: float | None) -> dict:
    win = r.get("window_s") or r.get("seconds") or 1.0
    gen = r.get("gen_cpu_s", 0.0)
    return {
        "server_cores": r["server_cpu_s"] / win,
        "server_us_per_op": r["server_cpu_s"] / ops * 1e6 if ops else None,
        "gen_cores": gen / win,
        "other_cores": max(0.0, (r["busy_s"] - r["server_cpu_s"] - gen) / win),
    }


def run_round(gen: Path, kind: str, workdir: Path, s: Settings, wanted: set[str], tag: str,
              log: Callable[[str], None]) -> dict[str, Sample]:
    out: dict[str, Sample] = {}
    server = launch(kind, workdir)
    try:
        pid = server.pid
        assert pid is not None
        setup_tree(gen, server.port, s.size, s.children)
        if "connect" in wanted:  # first, while the process's memory is fresh
            out["connect"] = _connect_storm(gen, server, s, log)
        common = ("--sessions", s.sessions, "--inflight", s.inflight, "--size", s.size)
        ops = [op for name, op in THROUGHPUT.items() if name in wanted]
        for op in ops:  # warm the JIT (and our caches) on every path before any window
            zkload(gen, server.port, "run", "--op", op, "--warmup", 0, "--duration", s.jit_warmup,
                   "--tag", f"{tag}w", *common)
        for name, op in THROUGHPUT.items():
            if name not in wanted:
                continue
            r = zkload(gen, server.port, "run", "--op", op, "--warmup", s.warmup, "--duration", s.duration,
                       "--tag", tag, *common, pid=pid)
            out[name] = Sample(r["ops_per_s"], r["p50_us"], r["p99_us"], **cpu_fields(r, r["ops"]),
                               extra={"errors": r["errors"]})
            log(f"  {kind:8} {name:12} {r['ops_per_s']:>10,.0f} ops/s  p50 {r['p50_us']:>6.0f} us"
                f"  p99 {r['p99_us']:>7.0f} us  server {out[name].server_cores:.2f} cores")
        if "oneWrite" in wanted:
            r = zkload(gen, server.port, "run", "--op", "setdata", "--sessions", 1, "--inflight", 1,
                       "--warmup", s.warmup, "--duration", s.duration, "--size", s.size, pid=pid)
            out["oneWrite"] = Sample(r["p50_us"], r["p50_us"], r["p99_us"], **cpu_fields(r, r["ops"]))
            log(f"  {kind:8} oneWrite     p50 {r['p50_us']:.0f} us  p99 {r['p99_us']:.0f} us")
        if "fanout" in wanted:
            r = zkload(gen, server.port, "fanout", "--watchers", s.watchers, "--iterations", s.fanout_iterations,
                       "--warmup-iterations", max(3, s.fanout_iterations // 5), "--path", "/bench/w",
                       "--size", s.size, pid=pid)
            out["fanout"] = Sample(r["p50_us"], r["p50_us"], r["p99_us"],
                                   **cpu_fields(r, r["iterations"]), extra={"mean_notify_us": r["mean_notify_us"]})
            log(f"  {kind:8} fanout       all {s.watchers} notified: p50 {r['p50_us']:.0f} us"
                f"  p99 {r['p99_us']:.0f} us")
    finally:
        server.stop(timeout=60)
    return out


def _connect_storm(gen: Path, server: RunningServer, s: Settings, log: Callable[[str], None]) -> Sample:
    pid = server.pid
    assert pid is not None
    zkload(gen, server.port, "connect", "--sessions", min(200, s.storm_sessions))  # warm the path
    time.sleep(0.5)
    before = proc_rss_mb(pid)
    rss: list[float] = []
    r = zkload(gen, server.port, "connect", "--sessions", s.storm_sessions, pid=pid,
               on_connected=lambda: rss.append(proc_rss_mb(pid)))
    per_session_kb = (rss[0] - before) * 1024 / s.storm_sessions if rss else float("nan")
    sample = Sample(r["sessions_per_s"], r["p50_us"], r["p99_us"], **cpu_fields(r, s.storm_sessions),
                    extra={"failed": r["failed"], "rss_kb_per_session": per_session_kb, "seconds": r["seconds"]})
    log(f"  {server.kind:8} connect      {r['sessions_per_s']:>10,.0f} sessions/s  ({r['failed']} failed)"
        f"  RSS +{per_session_kb:.1f} KB/session")
    return sample


def run_restart(gen: Path, kind: str, workdir: Path, s: Settings, log: Callable[[str], None]) -> dict[str, Sample]:
    out: dict[str, Sample] = {}
    server = launch(kind, workdir)
    try:
        with WireSession("127.0.0.1", server.port) as w:
            w.create("/bench")
            w.create("/bench/p")
        done = 0
        for count in s.restart_counts:
            r = zkload(gen, server.port, "populate", "--prefix", "/bench/p", "--start", done,
                       "--count", count - done, "--sessions", 8, "--inflight", 64, "--size", s.populate_size,
                       pid=server.pid)
            done = count
            live_rss = proc_rss_mb(server.pid or 0)
            seconds = restart_until_first_read(server)
            time.sleep(1.0)  # let the new process settle (JIT threads, our loop) before reading RSS
            rss = proc_rss_mb(server.pid or 0)
            label = _count_label(count)
            out[f"restart{label}"] = Sample(seconds, extra={"populate_ops_per_s": r["ops_per_s"]})
            out[f"rss{label}"] = Sample(rss, extra={"rss_live_mb": live_rss})
            log(f"  {kind:8} {count:>9,} znodes: populated at {r['ops_per_s']:,.0f}/s, restart to first read"
                f" {seconds:.2f} s, RSS {rss:.0f} MB after restart ({live_rss:.0f} MB before)")
    finally:
        server.stop(timeout=60)
    return out


def _count_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"
