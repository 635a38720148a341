"""Server statistics kept on the request path, and read by the operator commands.

Theory of operation. Everything here is plain integer bookkeeping that the shell updates once
per finished request (`request_done`) or once per event (fsync, snapshot, loop stall). Nothing
formats, allocates per request beyond the list slot of a ring buffer, or takes a lock: the
event loop is the only writer (the fsync summary too: the syncer's answers arrive on the
loop). Readers (4lw, AdminServer, the Prometheus collector) compute averages
and quantiles when asked.

Names follow Apache's ServerStats, ServerCnxn stats and ServerMetrics summaries: latency in
whole milliseconds, "min" is 0 until something was recorded, averages are doubles.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core import Conn, ConnStats

_RING = 1024  # observations kept per summary for its quantiles (Apache: a 10-minute window)
_MASK = _RING - 1
_NO_MIN = 1 << 62  # core.ConnStats.lat_min starts here too

# FinalRequestProcessor's lastOp strings, by opcode.
LAST_OP_NAMES: dict[int, str] = {
    11: "PING", -10: "SESS", 14: "MULT", 22: "MLTR", 1: "CREA", 15: "CREA", 21: "CREA", 19: "CREA",
    2: "DELE", 20: "DELE", 5: "SETD", 16: "RECO", 7: "SETA", -11: "CLOS", 9: "SYNC", 13: "CHEC",
    3: "EXIS", 4: "GETD", 101: "SETW", 105: "STW2", 106: "ADDW", 6: "GETA", 8: "GETC",
    104: "GETACN", 12: "GETC", 17: "CHKW", 18: "REMW", 107: "HOMI", 103: "GETE",
}

# Apache's OpCode names (ZooDefs.opNames style, camelCase) for our per-op request counts.
OP_NAMES: dict[int, str] = {
    1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData", 6: "getACL", 7: "setACL",
    8: "getChildren", 9: "sync", 11: "ping", 12: "getChildren2", 13: "check", 14: "multi",
    15: "create2", 16: "reconfig", 17: "checkWatches", 18: "removeWatches", 19: "createContainer",
    20: "deleteContainer", 21: "createTTL", 22: "multiRead", 100: "auth", 101: "setWatches",
    102: "sasl", 103: "getEphemerals", 104: "getAllChildrenNumber", 105: "setWatches2",
    106: "addWatch", 107: "whoAmI", -10: "createSession", -11: "closeSession",
}
_OP_OFFSET = 16  # opcodes run from -11 to 107; op + 16 indexes a flat list
_OP_SLOTS = 128


class Summary:
    """Count, sum, min, max and a ring of recent values (for quantiles) of one measure."""

    __slots__ = ("count", "idx", "max", "min", "ring", "total")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.total = 0
        self.min = _NO_MIN
        self.max = 0
        self.ring: list[int] = [0] * _RING
        self.idx = 0

    def add(self, value: int) -> None:
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value
        if value < self.min:
            self.min = value
        self.ring[self.idx & _MASK] = value
        self.idx += 1

    def minimum(self) -> int:
        return 0 if self.min == _NO_MIN else self.min

    def average(self) -> float:
        return self.total / self.count if self.count else 0.0

    def quantile(self, q: float) -> float:
        """The q-quantile of the recent observations (0 when there are none)."""
        n = min(self.idx, _RING)
        if n == 0:
            return 0.0
        values = sorted(self.ring[:n])
        return float(values[min(n - 1, int(q * n))])


# DataTree.STAT_OVERHEAD_BYTES: what Apache adds to every read for the Stat (6 longs, 5 ints).
STAT_OVERHEAD_BYTES = 6 * 8 + 5 * 4
_COUNT, _TOTAL, _MIN, _MAX = range(4)
_PATH_CACHE = 4096  # paths remembered per table; more still count, by the slower way


class NamespaceSummarySet:
    """One of Apache's per-namespace summary sets: namespace -> [count, total, min, max].

    The namespace of a path is its first component ("/app/x" -> "app"; "/" has none and is
    not counted). `add` runs on every read, so the list of a path's namespace is looked up by
    the path itself (its hash is already computed: the tree looked it up) in a bounded cache,
    and updated in place; cutting the namespace out of the path (a new string to hash) is left
    to the first request on each path. That keeps the cost near 0.15 us per request.
    """

    __slots__ = ("by_path", "namespaces", "overhead")

    def __init__(self, overhead: int) -> None:
        self.overhead = overhead
        self.namespaces: dict[str, list[int]] = {}
        self.by_path: dict[str, list[int]] = {}

    def add(self, path: str, nbytes: int) -> None:
        m = self.by_path.get(path)
        if m is None:
            m = self._measure(path)
            if m is None:
                return
        value = len(path) + nbytes + self.overhead
        m[_COUNT] += 1
        m[_TOTAL] += value
        if value < m[_MIN]:
            m[_MIN] = value
        if value > m[_MAX]:
            m[_MAX] = value

    def _measure(self, path: str) -> list[int] | None:
        end = path.find("/", 1)
        namespace = path[1:end] if end > 0 else path[1:]
        if not namespace:
            return None
        m = self.namespaces.get(namespace)
        if m is None:
            m = self.namespaces[namespace] = [0, 0, _NO_MIN, 0]
        if len(self.by_path) < _PATH_CACHE:
            self.by_path[path] = m
        return m

    def reset(self) -> None:
        """srst: Apache resets each namespace's counter and keeps the namespace (it shows zeros)."""
        for m in self.namespaces.values():
            m[:] = (0, 0, _NO_MIN, 0)


class NamespaceStats:
    """Apache's read_per_namespace and write_per_namespace (DataTree.updateReadStat/WriteStat):
    per successful getData / exists / getChildren, the path's length + the bytes read (data, or
    the child names) + STAT_OVERHEAD_BYTES; per applied create, delete and setData, the path's
    length + the bytes written (0 for a delete)."""

    __slots__ = ("read", "reads", "write", "writes")

    def __init__(self) -> None:
        self.reads = NamespaceSummarySet(STAT_OVERHEAD_BYTES)
        self.writes = NamespaceSummarySet(0)
        self.read = self.reads.add  # bound once: the hot path calls these
        self.write = self.writes.add

    def reset(self) -> None:
        self.reads.reset()
        self.writes.reset()


def namespace_summary(m: list[int]) -> tuple[float, int, int, int, int]:
    """avg (Apache rounds it to 4 places), min, max, count, sum; min and max 0 when empty."""
    count, total = m[_COUNT], m[_TOTAL]
    avg = round(total / count, 4) if count else 0.0
    return avg, 0 if m[_MIN] == _NO_MIN else m[_MIN], m[_MAX], count, total


def conn_op_name(st: ConnStats) -> str:
    return LAST_OP_NAMES.get(st.last_opcode, "NA") if st.lat_count else "NA"


def conn_min_latency(st: ConnStats) -> int:
    return 0 if st.lat_min == _NO_MIN else st.lat_min


def conn_avg_latency(st: ConnStats) -> int:
    return st.lat_total // st.lat_count if st.lat_count else 0


def reset_conn_stats(st: ConnStats) -> None:
    """crst: Apache's ServerCnxn.resetStats."""
    st.received = st.sent = 0
    st.last_zxid = st.last_cxid = -1
    st.last_opcode = st.last_latency = st.last_response = 0
    st.lat_count = st.lat_total = st.lat_max = 0
    st.lat_min = _NO_MIN


class ServerStats:
    """Apache's ServerStats plus the ServerMetrics summaries and counters we can feed."""

    def __init__(self) -> None:
        self.started_mono = time.monotonic()
        self.started_wall = time.time()
        self.trace_mask = 306  # ZooTrace's default text trace mask
        # Every request lands in exactly one of these two; the server-wide latency (srvr's
        # Min/avg/max) is derived from both rather than kept as a third summary per request.
        self.read_latency = Summary()
        self.update_latency = Summary()
        self.fsync_time = Summary()
        self.snapshot_time = Summary()
        self.restore_time = Summary()
        self.db_init_time = Summary()
        self.loop_stall = Summary()  # fed as Apache's jvm_pause_time_ms
        self.op_counts = [0] * _OP_SLOTS
        self.fsync_threshold_exceed_count = 0
        self.auth_failed_count = 0
        self.counters: dict[str, int] = {}
        self.summaries: dict[str, Summary] = {}  # by Apache's name: the ensemble's (election_time, ...)
        self.namespaces = NamespaceStats()  # hooked into the DataTree and the read handlers
        # Tree digests every 128 zxids, newest last (Apache's DataTree digest log, max 1024).
        self.digest_log: list[tuple[int, int]] = []

    # ------------------------------------------------------------ hot path

    def request_done(self, conn: Conn, op: int, xid: int, ms: int, write: bool, now_ms: int) -> None:
        """One request answered after `ms`: server, read/update and per-connection latency, op count."""
        if ms < 0:
            return
        (self.update_latency if write else self.read_latency).add(ms)
        self.op_counts[(op + _OP_OFFSET) & 0x7F] += 1
        st = conn.stats
        st.lat_count += 1
        st.lat_total += ms
        if ms > st.lat_max:
            st.lat_max = ms
        if ms < st.lat_min:
            st.lat_min = ms
        st.last_opcode = op
        st.last_cxid = xid
        st.last_latency = ms
        st.last_response = now_ms

    # ------------------------------------------------------------ events

    def count(self, name: str, delta: int = 1) -> None:
        """Bump one of Apache's ServerMetrics counters by name (rare events only)."""
        self.counters[name] = self.counters.get(name, 0) + delta

    def observe(self, name: str, value: int) -> None:
        """One observation of one of Apache's ServerMetrics summaries by name (rare events only)."""
        summary = self.summaries.get(name)
        if summary is None:
            summary = self.summaries[name] = Summary()
        summary.add(value)

    def fsync_done(self, ms: int, threshold_ms: int) -> None:
        self.fsync_time.add(ms)
        if ms > threshold_ms:
            self.fsync_threshold_exceed_count += 1

    def record_digest(self, zxid: int, digest: int) -> None:
        log = self.digest_log
        log.append((zxid, digest))
        if len(log) > 1024:
            del log[0]

    # ------------------------------------------------------------ reads

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self.started_mono) * 1000)

    def min_latency(self) -> int:
        lowest = min(self.read_latency.min, self.update_latency.min)
        return 0 if lowest == _NO_MIN else lowest

    def max_latency(self) -> int:
        return max(self.read_latency.max, self.update_latency.max)

    def avg_latency(self) -> float:
        r, u = self.read_latency, self.update_latency
        count = r.count + u.count
        return round((r.total + u.total) / count, 4) if count else 0.0

    def op_count_items(self) -> list[tuple[str, int]]:
        out = []
        for op, name in OP_NAMES.items():
            n = self.op_counts[(op + _OP_OFFSET) & 0x7F]
            if n:
                out.append((name, n))
        return out

    # ------------------------------------------------------------ resets

    def reset(self) -> None:
        """srst / stat_reset: latency and the ServerMetrics values (Apache's ServerStats.reset)."""
        for s in (self.read_latency, self.update_latency, self.fsync_time,
                  self.snapshot_time, self.restore_time, self.db_init_time, self.loop_stall,
                  *self.summaries.values()):
            s.reset()
        self.counters.clear()
        self.namespaces.reset()
