"""Apache's metric catalogue with our values: mntr / monitor, and the Prometheus endpoint.

Theory of operation. Apache registers one flat namespace of metrics (ServerMetrics plus the
gauges of ZooKeeperServer.registerMetrics); `mntr` prints each as `zk_<name>` (a summary as
avg_/min_/max_/cnt_/sum_ and, when ADVANCED, p50_/p95_/p99_/p999_), and its Prometheus provider
exports each under the bare name (a summary with quantile 0.5, or 0.5/0.9/0.99 when ADVANCED,
plus _count and _sum). The catalogue below lists the names in the order Apache 3.8's mntr
prints them, followed by the per-namespace summary sets (read_per_namespace, write_per_namespace:
`zk_avg_<namespace>_read_per_namespace`, ...; a namespace appears once it was read or
written). An ensemble member adds what its role's ZooKeeperServer adds: `peer_state` (and an
observer's `observer_master_id`) after `server_state`, and the role's gauges (quorum_size; a
leader's learners, synced_followers, proposal sizes, ...) among the others, in the order of
Apache's one ConcurrentHashMap of gauges. The values are ours where we have the concept
(the quorum counters and summaries come from the roles through ServerStats.count/observe),
zero where the concept belongs to a part of Apache we do not have (commit processor threads,
Netty, the quorum metrics in UNMEASURED_QUORUM, ...).

Reading is O(sessions + connections + watchers); the one O(znodes) figure,
approximate_data_size, comes from a cache refreshed by a walk that yields to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..tree.javaorder import java_key_order
from . import FULL_VERSION, quorumview, view
from .stats import NamespaceStats, NamespaceSummarySet, Summary, namespace_summary

if TYPE_CHECKING:
    from ..shell.server import ServerRunner

GAUGE, COUNTER, SUMMARY, SUMMARY_ADV = "gauge", "counter", "summary", "summary_adv"

_GAUGES = (
    "ephemerals_count", "num_alive_connections", "avg_latency", "outstanding_requests", "znode_count",
    "global_sessions", "non_mtls_remote_conn_count", "last_client_response_size", "packets_sent",
    "packets_received", "max_client_response_size", "connection_drop_probability", "watch_count",
    "auth_failed_count", "min_latency", "max_file_descriptor_count", "approximate_data_size",
    "open_file_descriptor_count", "local_sessions", "uptime", "max_latency", "outstanding_tls_handshake",
    "min_client_response_size", "non_mtls_local_conn_count",
)
_COUNTERS = (
    "proposal_count", "watch_bytes", "outstanding_changes_removed", "throttled_ops", "stale_requests_dropped",
    "large_requests_rejected", "insecure_admin_count", "connection_rejected",
    "cnxn_closed_without_zk_server_running", "sessionless_connections_expired", "looking_count",
    "dead_watchers_queued", "stale_requests", "connection_drop_count", "learner_proposal_received_count",
    "digest_mismatches_count", "dead_watchers_cleared", "response_packet_cache_hits", "bytes_received_count",
    "add_dead_watcher_stall_time", "request_throttle_wait_count", "requests_not_forwarded_to_commit_processor",
    "response_packet_cache_misses", "ensemble_auth_success", "prep_processor_request_queued",
    "learner_commit_received_count", "stale_replies", "connection_request_count", "response_bytes",
    "ensemble_auth_fail", "diff_count", "response_packet_get_children_cache_misses",
    "connection_revalidate_count", "quit_leading_due_to_disloyal_voter", "snap_count",
    "unrecoverable_error_count", "unsuccessful_handshake", "commit_count", "stale_sessions_expired",
    "response_packet_get_children_cache_hits", "sync_processor_request_queued", "outstanding_changes_queued",
    "request_commit_queued", "ensemble_auth_skip", "skip_learner_request_to_next_processor_count",
    "tls_handshake_exceeded", "revalidate_count",
    # 3.9 (admin snapshot/restore)
    "snapshot_error_count", "snapshot_rate_limited_count", "restore_error_count", "restore_rate_limited_count",
)
_SUMMARIES = (
    "socket_closing_time", "proposal_process_time", "leader_unavailable_time", "node_created_watch_count",
    "session_queues_drained", "write_commit_proc_req_queued", "connection_token_deficit",
    "read_commit_proc_req_queued", "node_deleted_watch_count", "startup_txns_load_time",
    "sync_processor_queue_size", "follower_sync_time", "prep_processor_queue_size", "fsynctime",
    "inflight_snap_count", "reads_issued_from_session_queue", "learner_request_processor_queue_size",
    "snapshottime", "unavailable_time", "startup_txns_loaded", "reads_after_write_in_session_queue",
    "requests_in_session_queue", "write_commit_proc_issued", "prep_process_time", "pending_session_queue_size",
    "time_waiting_empty_pool_in_commit_processor_read_ms", "commit_process_time", "dbinittime",
    "inflight_diff_count", "netty_queued_buffer_capacity", "election_time", "commit_commit_proc_req_queued",
    "sync_processor_batch_size", "node_children_watch_count", "write_batch_time_in_commit_processor",
    "read_commit_proc_issued", "concurrent_request_processing_in_commit_processor", "observer_sync_time",
    "node_changed_watch_count", "sync_process_time", "startup_snap_load_time",
    "restore_time",  # 3.9
)
_SUMMARIES_ADV = (
    "prep_processor_queue_time_ms", "jvm_pause_time_ms", "close_session_prep_time", "read_commitproc_time_ms",
    "updatelatency", "local_write_committed_time_ms", "request_throttle_queue_time_ms", "readlatency",
    "quorum_ack_latency", "om_commit_process_time_ms", "read_final_proc_time_ms", "commit_propagation_latency",
    "dead_watchers_cleaner_latency", "write_final_proc_time_ms", "proposal_ack_creation_latency",
    "proposal_latency", "om_proposal_process_time_ms", "sync_processor_queue_and_flush_time_ms",
    "propagation_latency", "server_write_committed_time_ms", "sync_processor_queue_time_ms",
    "sync_processor_queue_flush_time_ms", "write_commitproc_time_ms",
)
# Apache's quorum metrics we do not measure: mntr prints them as 0 (its keys are Apache's), the
# Prometheus endpoint leaves them out (docs/operations.md says why for each).
UNMEASURED_QUORUM = frozenset({
    "quit_leading_due_to_disloyal_voter", "skip_learner_request_to_next_processor_count",
    "learner_request_processor_queue_size",
    "om_proposal_process_time_ms", "om_commit_process_time_ms", "quorum_ack_latency",
    "commit_propagation_latency", "proposal_latency", "proposal_ack_creation_latency",
})
# Names Apache 3.9 has and 3.8 does not (tests against the Debian 3.8 allow these extra keys).
SINCE_39 = frozenset({"snapshot_error_count", "snapshot_rate_limited_count", "restore_error_count",
                      "restore_rate_limited_count", "restore_time"})

CATALOGUE: tuple[tuple[str, str], ...] = (
    *((n, GAUGE) for n in _GAUGES), *((n, COUNTER) for n in _COUNTERS),
    *((n, SUMMARY) for n in _SUMMARIES), *((n, SUMMARY_ADV) for n in _SUMMARIES_ADV),
)
_EMPTY = Summary()


def _summaries(server: ServerRunner) -> dict[str, Summary]:
    st = server.stats
    return {**st.summaries, "readlatency": st.read_latency, "updatelatency": st.update_latency,
            "fsynctime": st.fsync_time, "snapshottime": st.snapshot_time, "restore_time": st.restore_time,
            "dbinittime": st.db_init_time, "jvm_pause_time_ms": st.loop_stall}


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the descriptor listdir itself holds
    except OSError:
        return -1


@functools.lru_cache(maxsize=8)
def _gauge_order(extra: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(java_key_order([*_GAUGES, *extra]))


def gauges(server: ServerRunner) -> list[tuple[str, Any]]:
    """Every gauge the server has registered, in the order Apache's metrics provider keeps them
    (one ConcurrentHashMap: the standalone ones, then the ensemble role's); a value is None
    where Apache's gauge answers null."""
    values = gauge_values(server)
    extra = quorumview.gauges(server)
    values.update(extra)
    return [(name, values[name]) for name in _gauge_order(tuple(extra))]


def gauge_values(server: ServerRunner) -> dict[str, Any]:
    """The gauges every server registers (ZooKeeperServer.registerMetrics)."""
    core, st = server.core, server.stats
    tree = core.tree
    return {
        "ephemerals_count": sum(len(s) for s in tree.ephemerals.values()),
        "num_alive_connections": len(core.conns),
        "avg_latency": st.avg_latency(),
        "outstanding_requests": len(core.pipeline),
        "znode_count": len(tree.nodes) + 1,  # Apache's map holds the root as "" and "/"
        "global_sessions": len(core.sessions.sessions),
        "non_mtls_remote_conn_count": 0,
        "last_client_response_size": -1,
        "packets_sent": core.packets_sent,
        "packets_received": core.packets_received,
        "max_client_response_size": -1,
        "connection_drop_probability": 0.0,
        "watch_count": tree.data_watches.count() + tree.child_watches.count(),
        "auth_failed_count": st.auth_failed_count,
        "min_latency": st.min_latency(),
        "max_file_descriptor_count": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "approximate_data_size": data_size(server),
        "open_file_descriptor_count": _open_fds(),
        "local_sessions": 0,
        "uptime": st.uptime_ms(),
        "max_latency": st.max_latency(),
        "outstanding_tls_handshake": 0,
        "min_client_response_size": -1,
        "non_mtls_local_conn_count": 0,
    }


def namespace_sets(stats: NamespaceStats) -> tuple[tuple[str, NamespaceSummarySet], ...]:
    """Apache's per-namespace summary sets in its mntr order (ConcurrentHashMap order of the
    set names: read before write)."""
    return (("read_per_namespace", stats.reads), ("write_per_namespace", stats.writes))


def namespace_values(stats: NamespaceStats) -> Iterator[tuple[str, Any]]:
    """`<avg|min|max|cnt|sum>_<namespace>_<set>`, namespaces in Apache's (hash) order."""
    for set_name, summaries in namespace_sets(stats):
        table = summaries.namespaces
        for namespace in java_key_order(table):
            name = f"{namespace}_{set_name}"
            for label, value in zip(("avg", "min", "max", "cnt", "sum"), namespace_summary(table[namespace]),
                                    strict=True):
                yield f"{label}_{name}", value


def monitor_values(server: ServerRunner) -> Iterator[tuple[str, Any]]:
    """(key, value) in mntr order, without the zk_ prefix; summaries expanded as Apache's."""
    yield "version", FULL_VERSION
    yield "server_state", view.server_state(server)
    if server.ensemble is not None:
        yield from quorumview.monitor_values(server)
    for name, value in gauges(server):
        if value is not None:  # Apache's dump skips a gauge that answers null
            yield name, value
    summaries = _summaries(server)
    counters = server.stats.counters
    for name, kind in CATALOGUE:
        if kind == GAUGE:
            continue
        if kind == COUNTER:
            yield name, counters.get(name, 0)
        else:
            s = summaries.get(name, _EMPTY)
            yield f"avg_{name}", float(s.average())
            yield f"min_{name}", s.minimum()
            yield f"max_{name}", s.max
            yield f"cnt_{name}", s.count
            yield f"sum_{name}", s.total
            if kind == SUMMARY_ADV:
                for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)):
                    yield f"{label}_{name}", int(s.quantile(q))
    yield from namespace_values(server.stats.namespaces)


# ---------------------------------------------------------------- approximate data size

_SYNC_WALK_LIMIT = 50_000  # znodes summed inline; larger trees are walked between loop turns
_WALK_CHUNK = 20_000
_STALE_S = 5.0


class _SizeCache:
    __slots__ = ("at", "value", "walking")

    def __init__(self) -> None:
        self.value = 0
        self.at = 0.0
        self.walking = False


def _node_size(path: str, node: Any) -> int:
    return len(path) + (len(node.data) if node.data else 0)


def data_size(server: ServerRunner) -> int:
    """Sum of path and data lengths (Apache's approximate_data_size), at most a few seconds old."""
    cache: _SizeCache | None = getattr(server.stats, "size_cache", None)
    if cache is None:
        cache = server.stats.size_cache = _SizeCache()  # type: ignore[attr-defined]
    nodes = server.core.tree.nodes
    if len(nodes) <= _SYNC_WALK_LIMIT:
        return sum(_node_size(p, n) for p, n in nodes.items())
    if not cache.walking and time.monotonic() - cache.at > _STALE_S:
        with contextlib.suppress(RuntimeError):  # no running loop: keep the old figure
            asyncio.get_running_loop().create_task(_walk(server, cache))
            cache.walking = True
    return cache.value


async def _walk(server: ServerRunner, cache: _SizeCache) -> None:
    try:
        paths = list(server.core.tree.nodes)  # one C-speed copy; nodes are looked up again below
        total = 0
        for i in range(0, len(paths), _WALK_CHUNK):
            nodes = server.core.tree.nodes
            for p in paths[i:i + _WALK_CHUNK]:
                node = nodes.get(p)
                if node is not None:
                    total += _node_size(p, node)
            await asyncio.sleep(0)
        cache.value, cache.at = total, time.monotonic()
    finally:
        cache.walking = False


def format_mntr(server: ServerRunner) -> str:
    out = []
    for key, value in monitor_values(server):
        out.append(f"zk_{key}\t{value}\n")
    return "".join(out)
