"""Watch tables: which watcher waits on which path, in which modes.

Theory of operation. A DataTree keeps two tables, one for data/exists watches and one for
child watches, as Apache ZooKeeper does. A watcher is any hashable object (the core uses the
connection). A (path, watcher) pair carries a set of mode bits: STANDARD (one-shot, cleared
when it fires), PERSISTENT, and PERSISTENT_RECURSIVE (data table only; also fires for every
descendant). A watcher is notified at most once per trigger, however many modes match.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator

STANDARD = 1
PERSISTENT = 2
RECURSIVE = 4


def path_and_parents(path: str) -> Iterator[str]:
    """`/a/b` -> `/a/b`, `/a`, `/`."""
    yield path
    while path != "/":
        path = path[: path.rfind("/")] or "/"
        yield path


class WatchTable:
    __slots__ = ("by_path", "by_watcher", "recursive_count")

    def __init__(self) -> None:
        self.by_path: dict[str, dict[Hashable, int]] = {}
        self.by_watcher: dict[Hashable, dict[str, int]] = {}
        self.recursive_count = 0

    def add(self, path: str, watcher: Hashable, mode: int = STANDARD) -> None:
        watchers = self.by_path.setdefault(path, {})
        old = watchers.get(watcher, 0)
        if old & mode:
            return
        watchers[watcher] = old | mode
        self.by_watcher.setdefault(watcher, {})[path] = old | mode
        if mode == RECURSIVE:
            self.recursive_count += 1

    def modes(self, path: str, watcher: Hashable) -> int:
        return self.by_path.get(path, {}).get(watcher, 0)

    def _set(self, path: str, watcher: Hashable, new: int) -> None:
        old = self.by_path[path][watcher]
        if old & RECURSIVE and not new & RECURSIVE:
            self.recursive_count -= 1
        if new:
            self.by_path[path][watcher] = new
            self.by_watcher[watcher][path] = new
            return
        del self.by_path[path][watcher]
        if not self.by_path[path]:
            del self.by_path[path]
        del self.by_watcher[watcher][path]
        if not self.by_watcher[watcher]:
            del self.by_watcher[watcher]

    def remove(self, path: str, watcher: Hashable, mode: int | None = None) -> bool:
        """Drop `mode` (all modes when None); True when anything changed."""
        old = self.modes(path, watcher)
        if not old:
            return False
        new = 0 if mode is None else old & ~mode
        if new == old:
            return False
        self._set(path, watcher, new)
        return True

    def remove_watcher(self, watcher: Hashable) -> None:
        for path in list(self.by_watcher.get(watcher, ())):
            self._set(path, watcher, 0)

    def trigger(self, path: str) -> list[Hashable]:
        """Watchers to notify for an event on `path`; one-shot watches on `path` are consumed."""
        out: list[Hashable] = []
        watchers = self.by_path.get(path)
        if watchers:
            for watcher, modes in list(watchers.items()):
                out.append(watcher)
                if modes & STANDARD:
                    self._set(path, watcher, modes & ~STANDARD)
        if self.recursive_count and path != "/":
            parents = path_and_parents(path)
            next(parents)
            for parent in parents:
                for watcher, modes in self.by_path.get(parent, {}).items():
                    if modes & RECURSIVE and watcher not in out:
                        out.append(watcher)
        return out

    def count(self) -> int:
        return sum(len(p) for p in self.by_watcher.values())
