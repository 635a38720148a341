"""Ensemble A/B benchmark: three zkserver members and three Apache 3.8 members, in one run.

Theory of operation. Each round starts a fresh 3-member ensemble of each kind in turn (Apache
first in odd rounds, zkserver first in even ones) with tests/support/cluster.py, all on this
machine, with the same zoo.cfg (tickTime 2000, initLimit 10, syncLimit 5: the sample config's
values). The C load generator (bench/zkload.c) spreads its sessions over the three members'
client ports, so reads are served by every member and writes enter through the followers and
the leader alike; server CPU is the sum over the three member processes (with their child
processes) from /proc, between the generator's window markers.

Per round and kind: read, write and mixed throughput; one outstanding setData from a client
on a follower, then on the leader (p50/p99); then `failovers` times: a client writes setData
through a follower, one at a time, the leader is killed with SIGKILL, and the failover time
is from the kill to the first write the client sent after the kill and got acknowledged. The
client resumes its session (id, password, last zxid) on the surviving members, alternating
every 5 ms, as a client with a short retry delay would; the killed member is restarted and
the ensemble is whole again before the next kill. Figures are medians over rounds (failover:
over every kill); the table shows the spread too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.cluster import Cluster

from bench.ab import APACHE_JVM_OPTS, Sample, cpu_fields, setup_tree, zkload
from bench.requests import get_body
from zkserver.embedded import WireSession

TICK_MS, INIT_LIMIT, SYNC_LIMIT = 2000, 10, 5
ENSEMBLE_CFG = {"clientPortListenBacklog": "4096"}
MEMBERS = 3
THROUGHPUT = {"getData": "getdata", "setData": "setdata", "create": "create", "mixed": "mixed"}
ONE_WRITE = {"oneWriteFollower": "follower", "oneWriteLeader": "leader"}
ENSEMBLE_WORKLOADS = (*THROUGHPUT, *ONE_WRITE, "failover")
FAILOVER_KEY = "/bench/d/k00"


@dataclass
class EnsembleSettings:
    rounds: int = 3
    warmup: float = 2.0  # per workload, before the measuring window
    duration: float = 5.0
    jit_warmup: float = 3.0  # per op, once after each start
    sessions: int = 12  # four per member
    inflight: int = 16
    size: int = 100
    failovers: int = 3  # leader kills per kind and round
    retry_ms: int = 5  # the failover client's pause between connection attempts
    fsync_count: int = 2000

    @classmethod
    def quick(cls) -> EnsembleSettings:
        return cls(rounds=1, warmup=0.2, duration=0.5, jit_warmup=0.2, failovers=1, fsync_count=200)


def start_ensemble(kind: str, workdir: Path) -> Cluster:
    """Three members of one kind, each granting sessions, before the caller's `with`."""
    cluster = Cluster(workdir, [kind] * MEMBERS, tick_ms=TICK_MS, init_limit=INIT_LIMIT, sync_limit=SYNC_LIMIT,
                      cfg=ENSEMBLE_CFG, jvm_opts=APACHE_JVM_OPTS)
    try:
        cluster.start()
        for seat in cluster.seats.values():
            _until(lambda port=seat.client_port: _session_granted(port), f"member {seat.sid} grants a session")
    except BaseException:
        cluster.close()
        raise
    return cluster


def _session_granted(port: int) -> bool:
    with WireSession("127.0.0.1", port, timeout=1.0):
        return True


def _has_node(port: int, path: str) -> bool:
    with WireSession("127.0.0.1", port, timeout=1.0) as w:
        return w.call(4, get_body(path))[0] == 0


def _until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > end:
            raise RuntimeError(f"bench: timed out waiting until {what}")
        time.sleep(0.05)


def run_ensemble_round(gen: Path, kind: str, workdir: Path, s: EnsembleSettings, wanted: set[str], tag: str,
                       log: Callable[[str], None]) -> dict[str, list[Sample]]:
    """One round of one kind: a fresh ensemble, every wanted workload. Failover gives one
    sample per kill, the others one each."""
    out: dict[str, list[Sample]] = {}
    with start_ensemble(kind, workdir) as cluster:
        leader = cluster.wait_for_quorum()
        ports = {sid: seat.client_port for sid, seat in cluster.seats.items()}
        setup_tree(gen, ports[leader], s.size, 0)
        for sid, port in ports.items():  # every member has applied the set-up before any load
            _until(lambda port=port: _has_node(port, "/bench/d/k99"), f"member {sid} has the benchmark's nodes")
        log(f"  {kind:8} leader is member {leader}")
        spread = ",".join(str(p) for p in ports.values())
        pids = tuple(m.pid for m in cluster.members.values() if m.pid is not None)
        common = ("--sessions", s.sessions, "--inflight", s.inflight, "--size", s.size)
        for name, op in THROUGHPUT.items():  # warm the JIT (and our caches) on every path first
            if name in wanted:
                zkload(gen, spread, "run", "--op", op, "--warmup", 0, "--duration", s.jit_warmup,
                       "--tag", f"{tag}w", *common)
        for name, op in THROUGHPUT.items():
            if name not in wanted:
                continue
            r = zkload(gen, spread, "run", "--op", op, "--warmup", s.warmup, "--duration", s.duration,
                       "--tag", tag, *common, pid=pids)
            sample = Sample(r["ops_per_s"], r["p50_us"], r["p99_us"], **cpu_fields(r, r["ops"]),
                            extra={"errors": r["errors"]})
            out[name] = [sample]
            log(f"  {kind:8} {name:16} {r['ops_per_s']:>10,.0f} ops/s  p50 {r['p50_us']:>6.0f} us"
                f"  p99 {r['p99_us']:>7.0f} us  members {sample.server_cores:.2f} cores"
                f"  gen {sample.gen_cores:.2f}  errors {r['errors']}")
        for name, where in ONE_WRITE.items():
            if name not in wanted:
                continue
            sid = leader if where == "leader" else next(sid for sid in ports if sid != leader)
            r = zkload(gen, ports[sid], "run", "--op", "setdata", "--sessions", 1, "--inflight", 1,
                       "--warmup", s.warmup, "--duration", s.duration, "--size", s.size, pid=pids)
            out[name] = [Sample(r["p50_us"], r["p50_us"], r["p99_us"], **cpu_fields(r, r["ops"]))]
            log(f"  {kind:8} {name:16} p50 {r['p50_us']:.0f} us  p99 {r['p99_us']:.0f} us  (member {sid})")
        if "failover" in wanted:
            out["failover"] = [_failover(gen, cluster, s, log) for _ in range(s.failovers)]
    return out


def _failover(gen: Path, cluster: Cluster, s: EnsembleSettings, log: Callable[[str], None]) -> Sample:
    """Kill the leader under a writing client; the time until a write sent after the kill is
    acknowledged by a surviving member. The killed member is restarted before returning."""
    leader = cluster.wait_for_quorum()
    survivors = [sid for sid in cluster.seats if sid != leader]
    ports = ",".join(str(cluster.seats[sid].client_port) for sid in survivors)
    argv = [str(gen), "failover", "--port", ports, "--path", FAILOVER_KEY, "--size", str(s.size),
            "--retry-ms", str(s.retry_ms)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.strip() == "WRITING":
                break
        else:
            raise RuntimeError(f"zkload failover never wrote steadily: {proc.stderr.read() if proc.stderr else ''}")
        pid = cluster.members[leader].pid
        assert pid is not None
        killed_ns = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)
        proc.stdin.write("killed\n")
        proc.stdin.flush()
        cluster.kill(leader)  # reaps it
        result = _result(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    elected = cluster.wait_for_quorum(sids=survivors)
    took_ms = (result["ack_ns"] - killed_ns) / 1e6
    dropped_ms = (result["drop_ns"] - killed_ns) / 1e6 if result["drop_ns"] else float("nan")
    log(f"  {cluster.seats[leader].kind:8} failover         {took_ms:8.0f} ms  (leader {leader} killed; client cut off"
        f" after {dropped_ms:.0f} ms, {result['attempts']} connection attempts; member {elected} leads)")
    cluster.start([leader])  # whole again before the next kill
    return Sample(took_ms, extra={"dropped_ms": dropped_ms, "attempts": float(result["attempts"])})


def _result(proc: subprocess.Popen) -> dict:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    err = proc.stderr.read() if proc.stderr else ""
    raise RuntimeError(f"zkload failover failed (exit {proc.wait()}): {err.strip()}")
