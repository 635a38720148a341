"""The leader's sweep of empty containers and expired TTL nodes."""

from __future__ import annotations

from collections import deque

from ..tree.datatree import DataTree
from .model import CoreSettings


class ContainerSweeper:
    """Apache's ContainerManager: every check interval, collect empty containers that once had
    children (or were never used for longer than allowed) and expired empty TTL nodes, then
    delete them no faster than maxPerMinute."""

    def __init__(self, settings: CoreSettings, now_ms: int):
        self.interval = settings.container_check_interval_ms
        self.spacing = 60000 / max(1, settings.container_max_per_minute)
        self.max_never_used = settings.container_max_never_used_ms
        self.next_check = now_ms + self.interval
        self.queue: deque[str] = deque()
        self.next_delete = 0.0

    def due(self, now_ms: int, wall_ms: int, tree: DataTree) -> list[str]:
        if now_ms >= self.next_check:
            self.next_check = now_ms + self.interval
            queued = set(self.queue)
            self.queue.extend(p for p in self.candidates(wall_ms, tree) if p not in queued)
        out: list[str] = []
        while self.queue and self.next_delete <= now_ms:
            out.append(self.queue.popleft())
            self.next_delete = max(self.next_delete, now_ms - self.spacing) + self.spacing
        return out

    def candidates(self, wall_ms: int, tree: DataTree) -> list[str]:
        found = []
        for path in tree.containers:
            node = tree.nodes.get(path)
            if node is None or node.children:
                continue
            if node.cversion > 0 or (self.max_never_used and wall_ms - node.mtime > self.max_never_used):
                found.append(path)
        for path in tree.ttls:
            node = tree.nodes.get(path)
            if node is None or node.children:
                continue
            ttl = node.owner & 0x000000FFFFFFFFFF
            if ttl and wall_ms - node.mtime > ttl:
                found.append(path)
        return found
