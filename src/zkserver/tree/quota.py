"""Quotas kept in the tree under /zookeeper/quota, in Apache's StatsTrack text format.

`/zookeeper/quota<path>/zookeeper_limits` holds the limits and `.../zookeeper_stats` the
current usage of the subtree at <path>: `count=N,bytes=M` and, when hard limits are set,
`count=..,bytes=..=;byteHardLimit=..;countHardLimit=..`. Soft limits only log; hard limits
fail the write with QuotaExceeded when enforceQuota is on.
"""

from __future__ import annotations

import logging
import re

from ..jute.codes import Err
from .acl import KeeperError

QUOTA_ROOT = "/zookeeper/quota"
LIMIT_NODE = "zookeeper_limits"
STAT_NODE = "zookeeper_stats"

log = logging.getLogger("zkserver.quota")


def parse_stats(data: bytes | None) -> dict[str, int]:
    """StatsTrack's parser: `k=v` pairs split on `,` or `;`; a value's trailing `=` is ignored."""
    out: dict[str, int] = {}
    text = (data or b"").decode("utf-8", "replace")
    for part in re.split("[,;]", text):
        key, sep, value = part.partition("=")
        if not sep:
            continue
        try:
            out[key] = int(value.split("=", 1)[0] or "-1")
        except ValueError:
            continue
    return out


def stat_value(stats: dict[str, int], key: str) -> int:
    return stats.get(key, -1)


def format_stats(stats: dict[str, int]) -> bytes:
    """StatsTrack.toString: count and bytes first; other keys sorted after an extra `=`."""
    text = f"count={stat_value(stats, 'count')},bytes={stat_value(stats, 'bytes')}"
    extra = sorted(k for k in stats if k not in ("count", "bytes"))
    if extra:
        text += "=" + "".join(f";{k}={stats[k]}" for k in extra)
    return text.encode()


def quota_root_for(nodes: dict, path: str) -> str | None:
    """The deepest ancestor-or-self of `path` that has a limits node, if any."""
    quota_root = nodes.get(QUOTA_ROOT)
    if quota_root is None or not quota_root.children or path.startswith("/zookeeper"):
        return None
    best = None
    prefix = ""
    for name in path[1:].split("/"):
        prefix += "/" + name
        if f"{QUOTA_ROOT}{prefix}/{LIMIT_NODE}" in nodes:
            best = prefix
    return best


class QuotaPolicy:
    def __init__(self, tree: object, enforce: bool):
        self.tree = tree
        self.enforce = enforce

    def check(self, path: str, old_data: bytes | None, new_data: bytes) -> None:
        if not self.enforce:
            return
        nodes = self.tree.nodes  # type: ignore[attr-defined]
        root = quota_root_for(nodes, path)
        if root is None:
            return
        limits = parse_stats(nodes[f"{QUOTA_ROOT}{root}/{LIMIT_NODE}"].data)
        stat_node = nodes.get(f"{QUOTA_ROOT}{root}/{STAT_NODE}")
        if stat_node is None:
            return
        current = parse_stats(stat_node.data)
        count_diff = 1 if old_data is None else 0
        bytes_diff = len(new_data) - len(old_data or b"")
        for what, diff, soft, hard in (("count", count_diff, "count", "countHardLimit"),
                                       ("bytes", bytes_diff, "bytes", "byteHardLimit")):
            self._check_one(root, what, diff, stat_value(limits, soft), stat_value(limits, hard),
                            stat_value(current, what))

    def _check_one(self, root: str, what: str, diff: int, soft: int, hard: int, current: int) -> None:
        if diff == 0 or (soft < 0 and hard < 0):
            return
        limit = hard if hard > -1 else soft
        if current + diff <= limit:
            return
        log.warning("Quota exceeded: %s [current %s=%d, %s limit=%d]", root, what, current + diff,
                    "hard" if hard > -1 else "soft", limit)
        if hard > -1 and self.enforce:
            raise KeeperError(Err.QUOTA_EXCEEDED, root)
