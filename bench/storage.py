"""Storage benchmarks: zkserver beside Apache ZooKeeper 3.8 on the same machine, same data.

A benchmark, not a test: it prints figures. Three measurements:

restart   Build a tree of N znodes once (through the wire protocol, pipelined creates into a
          zkserver with the default snapCount, so the data dir holds snapshots and a log tail
          as a real one does), stop it, then for each server and each run copy that data dir
          and time from process start to the first served getData. Both servers read the same
          files (Apache's version-2 formats). RSS after start-up is printed too.
latency   One session, one write outstanding at a time (setData of 100 bytes): per-write
          latency beside the raw latency of pwrite(100 B) + fdatasync on the same file
          system (the floor any durable write pays), and beside a getData on the same
          session (the round trip without the disk).
snapshot  A steady paced load (one session doing setData, one doing getData, one request
          outstanding each, on random znodes of a 1M-znode tree) while the server snapshots
          the whole tree (a snapCount picked from the measured write rate so that the first
          snapshot starts some seconds in), beside the same load on a run without snapshots.
          Latencies of requests sent while a snapshot file was being written, p50/p99/max.

    python bench/storage.py [restart|latency|snapshot|all] [--sizes 200000,1000000] [--runs 3]
                            [--workdir DIR] [--keep] [--apache-heap 3g]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from tests.support.servers import (  # noqa: E402
    APACHE_CLASSPATH,
    APACHE_MAIN,
    RunningServer,
    apache_installed,
    write_cfg,
    zkserver_env,
)

from bench.ab import proc_rss_mb  # noqa: E402
from bench.requests import create_body, get_body, set_body  # noqa: E402

# ---------------------------------------------------------------- a raw client

_I = struct.Struct(">i")
_II = struct.Struct(">ii")
_REPLY = struct.Struct(">iqi")  # xid, zxid, err
CREATE, GET_DATA, SET_DATA = 1, 4, 5


class Wire:
    """One session over a blocking socket: single calls, or many requests pipelined."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.xid = 0
        connect = _I.pack(0) + struct.pack(">qiq", 0, 30000, 0) + _I.pack(16) + bytes(16) + b"\0"
        self.sock.sendall(_I.pack(len(connect)) + connect)
        resp = self._frame()
        if len(resp) < 16 or _II.unpack_from(resp, 0)[1] <= 0:
            raise ConnectionError("session refused")

    def _frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                n = _I.unpack_from(self.buf, 0)[0]
                if len(self.buf) >= 4 + n:
                    frame = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    return frame
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk

    def _request(self, op: int, body: bytes) -> bytes:
        self.xid += 1
        payload = _II.pack(self.xid, op) + body
        return _I.pack(len(payload)) + payload

    def call(self, op: int, body: bytes) -> int:
        self.sock.sendall(self._request(op, body))
        while True:
            xid, _, err = _REPLY.unpack_from(self._frame(), 0)
            if xid == self.xid:
                return err

    def pipeline(self, requests: list[tuple[int, bytes]], window: int = 2000) -> list[int]:
        """Send every request, at most `window` unanswered; return the error codes."""
        errs: list[int] = []
        sent = 0
        while sent < len(requests) or len(errs) < len(requests):
            if sent < len(requests) and sent - len(errs) < window:
                batch = requests[sent:sent + window - (sent - len(errs))]
                self.sock.sendall(b"".join(self._request(op, body) for op, body in batch))
                sent += len(batch)
            frame = self._frame()
            xid = _I.unpack_from(frame, 0)[0]
            if xid > 0:
                errs.append(_REPLY.unpack_from(frame, 0)[2])
        return errs

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# ---------------------------------------------------------------- servers


def node_path(i: int) -> str:
    return f"/b/d{i // 1000:04d}/n{i % 1000:03d}"


@dataclass
class Server:
    kind: str
    run: RunningServer
    started: float = 0.0

    @property
    def port(self) -> int:
        return self.run.port

    def rss_mb(self) -> float:
        return proc_rss_mb(self.run.pid or 0)

    def stop(self) -> None:
        self.run.stop(timeout=120)


def launch(kind: str, workdir: Path, data_dir: Path, cfg: dict[str, str] | None = None,
           apache_heap: str = "3g") -> Server:
    """Start a server on `data_dir` without waiting; `started` is the moment of the fork."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path, _, port = write_cfg(workdir, {"dataDir": str(data_dir), **(cfg or {})})
    if kind == "zkserver":
        argv, env = [sys.executable, "-m", "zkserver", "start", str(cfg_path)], zkserver_env()
    else:
        argv = ["java", f"-Xmx{apache_heap}", f"-Xms{apache_heap}", "-Djava.awt.headless=true",
                "-Dzookeeper.root.logger=INFO,CONSOLE", "-Dzookeeper.log.dir=.", "-cp", APACHE_CLASSPATH,
                APACHE_MAIN, str(cfg_path)]
        env = None
    run = RunningServer(kind=kind, argv=argv, cwd=workdir, cfg_path=cfg_path, data_dir=data_dir, port=port,
                        log_path=workdir / f"{kind}.log", env=env, ready_timeout=600)
    started = time.perf_counter()
    run.launch()
    return Server(kind, run, started)


def first_read(server: Server, path: str, deadline_s: float = 900) -> float:
    """Poll until a new session's getData(path) is served; seconds since the process started."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not server.run.running:
            raise RuntimeError(f"{server.kind} exited:\n{server.run.log_tail()}")
        try:
            w = Wire(server.port, timeout=0.5)
            try:
                if w.call(GET_DATA, get_body(path)) == 0:
                    return time.perf_counter() - server.started
            finally:
                w.close()
        except OSError:
            pass
        time.sleep(0.02)  # not faster: each refused attempt costs a loading Apache a logged stack trace
    raise RuntimeError(f"{server.kind} served nothing in {deadline_s} s")


def build_tree(dest: Path, n: int, workdir: Path) -> None:
    """Populate a zkserver with n znodes under 1000-child parents, stop it, keep its data dir."""
    print(f"building a tree of {n} znodes through the wire protocol ...", flush=True)
    data = dest / "data"
    server = launch("zkserver", workdir / "build", data)
    first_read(server, "/")
    t0 = time.perf_counter()
    w = Wire(server.port)
    payload = b"x" * 32
    parents = [(CREATE, create_body("/b", b""))] + [
        (CREATE, create_body(f"/b/d{p:04d}", b"")) for p in range((n + 999) // 1000)]
    assert not any(w.pipeline(parents))
    step = 50000
    for start in range(0, n, step):
        errs = w.pipeline([(CREATE, create_body(node_path(i), payload)) for i in range(start, min(n, start + step))])
        assert not any(errs), set(errs)
    w.close()
    print(f"  {n} creates in {time.perf_counter() - t0:.1f} s", flush=True)
    server.stop()


def tree_dir(workdir: Path, n: int) -> Path:
    dest = workdir / f"tree-{n}"
    if not (dest / "data" / "version-2").is_dir():
        shutil.rmtree(dest, ignore_errors=True)
        build_tree(dest, n, workdir)
    return dest / "data"


def fresh_copy(src: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)
    return dest


def kinds() -> list[str]:
    if apache_installed():
        return ["zkserver", "apache"]
    print("(Apache ZooKeeper is not installed: only zkserver is measured)")
    return ["zkserver"]


# ---------------------------------------------------------------- restart


def bench_restart(workdir: Path, sizes: list[int], runs: int, heap: str) -> None:
    for n in sizes:
        src = tree_dir(workdir, n)
        files = sorted(p.name for p in (src / "version-2").iterdir())
        size_mb = sum(p.stat().st_size for p in (src / "version-2").iterdir()) / 1e6
        print(f"\nrestart with {n} znodes (data dir {size_mb:.0f} MB: {', '.join(files)})")
        times: dict[str, list[float]] = {k: [] for k in kinds()}
        rss: dict[str, list[float]] = {k: [] for k in kinds()}
        for r in range(runs + 1):  # the first round warms the page cache (and the JVM's files)
            for kind in times:  # the servers take turns, so that load from elsewhere hits both
                data = fresh_copy(src, workdir / f"restart-{kind}" / "data")
                server = launch(kind, workdir / f"restart-{kind}", data, apache_heap=heap)
                try:
                    took = first_read(server, node_path(n - 1))
                    mem = server.rss_mb()
                finally:
                    server.stop()
                if r:
                    times[kind].append(took)
                    rss[kind].append(mem)
        for kind, t in times.items():
            print(f"  {kind:9} first getData after {statistics.median(t):6.2f} s "
                  f"(min {min(t):.2f}, max {max(t):.2f}, {runs} runs); RSS {statistics.median(rss[kind]):6.0f} MB",
                  flush=True)


# ---------------------------------------------------------------- write latency


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))] if s else float("nan")


def fmt(lat_s: list[float]) -> str:
    ms = [v * 1000 for v in lat_s]
    return (f"p50 {pct(ms, 0.5):7.3f}  p90 {pct(ms, 0.9):7.3f}  p99 {pct(ms, 0.99):7.3f}  "
            f"max {max(ms):8.3f} ms  (n={len(ms)})")


def fsync_floor(directory: Path, n: int) -> list[float]:
    """pwrite 100 bytes at the end, then fdatasync, into a preallocated file: what a log append pays."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, 64 << 20)
        os.fsync(fd)
        out = []
        rec = b"r" * 100
        for i in range(n):
            t = time.perf_counter()
            os.pwrite(fd, rec, 16 + i * 100)
            os.fdatasync(fd)
            out.append(time.perf_counter() - t)
        return out
    finally:
        os.close(fd)
        path.unlink()


def bench_latency(workdir: Path, ops: int, heap: str) -> None:
    print(f"\nsingle-outstanding write latency ({ops} setData of 100 bytes, one session)")
    floor = fsync_floor(workdir, ops)
    print(f"  {'fsync floor':9} {fmt(floor)}   (pwrite 100 B + fdatasync, same file system)")
    for kind in kinds():
        data = workdir / f"latency-{kind}" / "data"
        shutil.rmtree(data, ignore_errors=True)
        server = launch(kind, workdir / f"latency-{kind}", data, apache_heap=heap)
        try:
            first_read(server, "/")
            w = Wire(server.port)
            w.call(CREATE, create_body("/lat", b""))
            body = set_body("/lat", b"v" * 100)
            for _ in range(200):  # warm-up (the JIT, the page cache, the log's first file)
                w.call(SET_DATA, body)
            lat, reads = [], []
            read = get_body("/lat")
            for _ in range(ops):
                t = time.perf_counter()
                err = w.call(SET_DATA, body)
                t1 = time.perf_counter()
                w.call(GET_DATA, read)  # the same round trip without the disk: client, TCP, server
                reads.append(time.perf_counter() - t1)
                lat.append(t1 - t)
                assert err == 0, err
            w.close()
        finally:
            server.stop()
        print(f"  {kind:9} {fmt(lat)}", flush=True)
        print(f"  {'  getData':9} {fmt(reads)}   (no disk: the round trip's floor)", flush=True)
    print(f"  {'fsync':9} {fmt(fsync_floor(workdir, ops))}   (again, after the servers)")


# ---------------------------------------------------------------- latency during a snapshot


@dataclass
class Sample:
    sent: float  # time.time() when sent
    latency: float
    write: bool


def _load_worker(port: int, n: int, write: bool, rate: float, seconds: float, seed: int, out) -> None:
    rng = random.Random(seed)
    w = Wire(port)
    samples = []
    gap = 1.0 / rate
    end = time.time() + seconds
    due = time.time()
    while True:
        now = time.time()
        if now >= end:
            break
        if now < due:
            time.sleep(due - now)
        due += gap
        path = node_path(rng.randrange(n))
        body = set_body(path, b"y" * 32) if write else get_body(path)
        t = time.time()
        t0 = time.perf_counter()
        err = w.call(SET_DATA if write else GET_DATA, body)
        samples.append((t, time.perf_counter() - t0, err))
    w.close()
    out.send(samples)


def run_load(port: int, n: int, seconds: float, write_rate: float, read_rate: float) -> list[Sample]:
    ctx = mp.get_context("fork")
    pipes, procs = [], []
    for i, (write, rate) in enumerate(((True, write_rate), (False, read_rate))):
        rx, tx = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_load_worker, args=(port, n, write, rate, seconds, i, tx), daemon=True)
        p.start()
        pipes.append((rx, write))
        procs.append(p)
    out = []
    for rx, write in pipes:
        samples = rx.recv()
        warm = samples[0][0] + 1.0 if samples else 0  # the first second: sessions, JIT, caches
        for t, lat, err in samples:
            assert err == 0, err
            if t >= warm:
                out.append(Sample(t, lat, write))
    for p in procs:
        p.join()
    return out


@dataclass
class SnapWatch:
    """Polls version-2 for snapshot files being written: (start, end) wall times of each.

    zkserver writes tmp.snapshot.<zxid>.<pid> and renames it when done (the window ends at the
    rename); Apache writes snapshot.<zxid> in place (the window ends at its last growth).
    """

    directory: Path
    known: set[str] = field(default_factory=set)
    windows: list[list[float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.known = {p.name for p in self.directory.iterdir() if "snapshot" in p.name}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _sizes(self) -> dict[str, int]:
        out = {}
        for p in self.directory.iterdir():
            if "snapshot" in p.name:
                with contextlib.suppress(FileNotFoundError):
                    out[p.name] = p.stat().st_size
        return out

    def _run(self) -> None:
        growing: dict[str, tuple[int, int]] = {}  # name -> (size, index of its window)
        while not self._stop.is_set():
            now = time.time()
            sizes = self._sizes()
            for name, size in sizes.items():
                if name in self.known:
                    continue
                self.known.add(name)
                if name.startswith("snapshot.") and any(k.startswith("tmp.") for k in growing):
                    continue  # a temp file renamed: the same snapshot
                self.windows.append([now, now])
                growing[name] = (size, len(self.windows) - 1)
            for name, (old, w) in list(growing.items()):
                if name not in sizes:  # a temp file renamed (or removed): done
                    del growing[name]
                    self.windows[w][1] = now
                elif sizes[name] != old:
                    growing[name] = (sizes[name], w)
                    self.windows[w][1] = now
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


def bench_snapshot(workdir: Path, n: int, seconds: float, heap: str) -> None:
    src = tree_dir(workdir, n)
    print(f"\nrequest latency during a snapshot of {n} znodes ({seconds:.0f} s of paced load: "
          "setData and getData, one outstanding each)")
    for kind in kinds():
        rows = {}
        base = workdir / f"snap-{kind}"
        # Probe the closed-loop write rate to pick a pace and a snapCount.
        data = fresh_copy(src, base / "data")
        server = launch(kind, base, data, {"snapCount": "100000000"}, apache_heap=heap)
        try:
            first_read(server, node_path(0))
            w = Wire(server.port)
            t0 = time.perf_counter()
            for i in range(300):
                w.call(SET_DATA, set_body(node_path(i), b"z"))
            per_write = (time.perf_counter() - t0) / 300
            w.close()
        finally:
            server.stop()
        write_rate = min(400.0, 0.5 / per_write)
        read_rate = 400.0
        # snapCount/2 + rand(snapCount/2) txns until the roll: the first snapshot starts
        # between ~1/3 and ~2/3 of the run.
        snap_count = max(100, int(write_rate * seconds * 2 / 3))
        for label, snaps in (("no snapshot", "100000000"), ("with snapshot", str(snap_count))):
            data = fresh_copy(src, base / "data")
            server = launch(kind, base, data, {"snapCount": snaps}, apache_heap=heap)
            try:
                first_read(server, node_path(0))
                time.sleep(2.0)  # let the start-up snapshot (Apache takes one) and GC settle
                watch = SnapWatch(data / "version-2")
                watch.start()
                samples = run_load(server.port, n, seconds, write_rate, read_rate)
                time.sleep(0.2)
                watch.stop()
            finally:
                server.stop()
            rows[label] = (samples, [w for w in watch.windows if w[0] > samples[0].sent] if samples else [])
            text = server.run.log_path.read_text(errors="replace").rsplit("=== launch", 1)[-1]
            forks = re.findall(r"fork took ([0-9.]+) ms", text)
        print(f"  {kind} (writes paced at {write_rate:.0f}/s, reads at {read_rate:.0f}/s, snapCount {snap_count})")
        base_samples, _ = rows["no snapshot"]
        for write in (True, False):
            what = "setData" if write else "getData"
            print(f"    {what} no snapshot   : {fmt([s.latency for s in base_samples if s.write == write])}")
        samples, windows = rows["with snapshot"]
        if not windows:
            print("    (no snapshot started during the run)")
            continue
        print("    snapshots written: " + ", ".join(f"{e - s:.2f} s" for s, e in windows)
              + (f" (fork: {', '.join(forks)} ms)" if forks else ""))
        for write in (True, False):
            what = "setData" if write else "getData"
            during = [s.latency for s in samples if s.write == write and any(a <= s.sent <= b for a, b in windows)]
            outside = [s.latency for s in samples if s.write == write
                       and not any(a - 1 <= s.sent <= b + 1 for a, b in windows)]
            if during:
                print(f"    {what} during snapshot: {fmt(during)}")
            if outside:
                print(f"    {what} same run, away : {fmt(outside)}")
        sys.stdout.flush()


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="all", choices=["restart", "latency", "snapshot", "all"])
    parser.add_argument("--sizes", default="200000,1000000", help="znode counts for restart")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ops", type=int, default=3000, help="writes for the latency figure")
    parser.add_argument("--snapshot-nodes", type=int, default=1000000)
    parser.add_argument("--seconds", type=float, default=30.0, help="load duration around a snapshot")
    parser.add_argument("--apache-heap", default="3g")
    parser.add_argument("--workdir", help="where data dirs go (default: a temp dir); trees are reused")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-storage-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work dir {workdir}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
          f"java: {subprocess.run(['java', '-version'], capture_output=True, text=True).stderr.splitlines()[0]}")
    try:
        if args.what in ("latency", "all"):
            bench_latency(workdir, args.ops, args.apache_heap)
        if args.what in ("restart", "all"):
            bench_restart(workdir, [int(s) for s in args.sizes.split(",")], args.runs, args.apache_heap)
        if args.what in ("snapshot", "all"):
            bench_snapshot(workdir, args.snapshot_nodes, args.seconds, args.apache_heap)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
