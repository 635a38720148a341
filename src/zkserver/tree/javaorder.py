"""Java hash-table iteration orders, for the few places where Apache's order shows.

Apache deletes a closing session's ephemerals in the iteration order of a java.util.HashSet
(it is the order of the paths in the closeSession txn, and so of the NodeDeleted events
clients see). That order is the bucket order of String.hashCode spread by HashMap.hash, with
insertion order inside a bucket, under a table size that depends on the set's history
(it grows, never shrinks; a clone is sized from the current size). This class keeps exactly
that state. Buckets that Java would turn into trees (8+ colliding names) are not modelled.

The quorum verifier's string (the config every FLE notification carries) iterates a
HashMap<Long, ...> of server ids filled from a java.util.Properties, whose own order (a
ConcurrentHashMap inside, since Java 9) decides which of two colliding ids comes first:
`java_hash_map_order` and `java_properties_order` model those two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

K = TypeVar("K")

_LOAD_FACTOR = 0.75
T = TypeVar("T")


def java_string_hash(s: str) -> int:
    """String.hashCode over UTF-16 code units, as a signed 32-bit int."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _spread(h: int) -> int:
    u = h & 0xFFFFFFFF
    return u ^ (u >> 16)


def _table_size_for(c: int) -> int:
    n = 1
    while n < c:
        n <<= 1
    return n


class JavaHashSet:
    """An insertion-ordered set that iterates as Java's HashSet<String> would."""

    __slots__ = ("_cap", "_items", "_threshold")

    def __init__(self, initial_capacity: int | None = None):
        self._items: dict[str, int] = {}  # path -> spread hash, in insertion order
        self._cap = 0
        # A table is allocated on first insert: default 16, or the requested size.
        self._threshold = _table_size_for(initial_capacity) if initial_capacity else 0

    def _resize(self) -> None:
        old_cap, old_thr = self._cap, self._threshold
        new_thr = 0
        if old_cap > 0:
            new_cap = old_cap << 1
            if old_cap >= 16:
                new_thr = old_thr << 1
        elif old_thr > 0:
            new_cap = old_thr
        else:
            new_cap, new_thr = 16, 12
        if new_thr == 0:
            new_thr = int(new_cap * _LOAD_FACTOR)
        self._cap, self._threshold = new_cap, new_thr

    def add(self, s: str) -> None:
        if s in self._items:
            return
        if self._cap == 0:
            self._resize()
        self._items[s] = _spread(java_string_hash(s))
        if len(self._items) > self._threshold:
            self._resize()

    def discard(self, s: str) -> None:
        self._items.pop(s, None)

    def __contains__(self, s: object) -> bool:
        return s in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        """Membership equality with any set-like collection of paths (order is not content)."""
        if isinstance(other, JavaHashSet | set | frozenset | dict):
            return set(self._items) == set(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __iter__(self) -> Iterator[str]:
        mask = self._cap - 1
        # sorted() is stable: inside a bucket, insertion order is kept, as Java's lists do.
        return iter(sorted(self._items, key=lambda s: self._items[s] & mask))

    def clone(self) -> JavaHashSet:
        """HashSet.clone(): a fresh table sized from the current size, filled in our order."""
        copy = JavaHashSet()
        if self._items:
            copy._threshold = _table_size_for(int(len(self._items) / _LOAD_FACTOR + 1.0))
        for s in self:
            copy.add(s)
        return copy

    @classmethod
    def of(cls, items: Iterable[str]) -> JavaHashSet:
        out = cls()
        for s in items:
            out.add(s)
        return out


def _chm_order(items: list[T], hash_of: Callable[[T], int]) -> list[T]:
    """Bucket order of a ConcurrentHashMap holding `items`, insertion order inside a bucket.
    Tables start at 16 and double once 3/4 full; the reordering a Java resize does inside a
    bucket is not modelled (it needs many keys sharing a bucket)."""
    table = 16
    while len(items) >= table - table // 4:
        table <<= 1

    def bucket(item: T) -> int:
        h = hash_of(item) & 0xFFFFFFFF
        return ((h ^ (h >> 16)) & 0x7FFFFFFF) & (table - 1)

    return sorted(items, key=bucket)


def java_long_hash(value: int) -> int:
    """Long.hashCode of a signed 64-bit value, as an unsigned 32-bit int."""
    u = value & 0xFFFFFFFFFFFFFFFF
    return (u ^ (u >> 32)) & 0xFFFFFFFF


def java_hash_map_order(keys: Iterable[K], hash_of: Callable[[K], int]) -> list[K]:
    """The iteration order of a `new HashMap<>()` filled by put() in this order.

    A HashMap keeps insertion order inside a bucket through every resize (it splits each
    bucket's list in order), so the final order is a stable sort by the final bucket."""
    items = list(dict.fromkeys(keys))
    cap = 16
    while len(items) > cap * 3 // 4:
        cap <<= 1
    mask = cap - 1
    return sorted(items, key=lambda k: _spread(hash_of(k)) & mask)


def java_properties_order(keys: Iterable[str]) -> list[str]:
    """The iteration order of a java.util.Properties that was load()ed with these keys in order.

    Java 9+ keeps a Properties in a ConcurrentHashMap(8): a 16-bin table that doubles when
    the count reaches 3/4 of it. Its resize moves the tail run of a bin that goes one way
    as it is and prepends the other nodes one by one (ConcurrentHashMap.transfer), which
    reverses part of the bin; that is modelled, treeified bins (8+ collisions) are not."""
    n, limit = 16, 12
    table: list[list[tuple[int, str]]] = [[] for _ in range(n)]
    count = 0
    for key in keys:
        h = _spread(java_string_hash(key)) & 0x7FFFFFFF
        chain = table[h & (n - 1)]
        if any(k == key for _, k in chain):
            continue  # put() on a present key replaces the value in place
        chain.append((h, key))
        count += 1
        if count >= limit:
            table = _chm_transfer(table, n)
            n, limit = n << 1, (n << 1) - (n >> 1)
    return [key for chain in table for _, key in chain]


def _chm_transfer(table: list[list[tuple[int, str]]], n: int) -> list[list[tuple[int, str]]]:
    grown: list[list[tuple[int, str]]] = [[] for _ in range(2 * n)]
    for i, chain in enumerate(table):
        if not chain:
            continue
        run_bit, last_run = chain[0][0] & n, 0
        for j in range(1, len(chain)):
            if chain[j][0] & n != run_bit:
                run_bit, last_run = chain[j][0] & n, j
        low: list[tuple[int, str]] = list(chain[last_run:]) if run_bit == 0 else []
        high: list[tuple[int, str]] = list(chain[last_run:]) if run_bit != 0 else []
        for node in chain[:last_run]:
            (high if node[0] & n else low).insert(0, node)
        grown[i], grown[i + n] = low, high
    return grown
def java_id_order(ids: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The order in which Apache iterates a connection's auth ids: a ConcurrentHashMap-backed
    set of Id, hashed as jute's Id.hashCode (37*(37*17+scheme)+id)."""
    return _chm_order(list(ids), lambda i: 37 * (37 * 17 + java_string_hash(i[0])) + java_string_hash(i[1]))


def java_key_order(keys: Iterable[str]) -> list[str]:
    """The iteration order of a ConcurrentHashMap with these String keys (inserted in this order)."""
    return _chm_order(list(keys), java_string_hash)
