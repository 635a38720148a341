"""A transaction log kept in memory: the storage interface with nothing durable behind it.

Used until the on-disk log serves the commit step, and by tests that want no files. The
interface: `append(entries)` takes (TxnHeader, txn) pairs in zxid order and calls
`on_durable(zxid)` once they are as durable as this log can make them.
"""

from __future__ import annotations

from collections.abc import Callable

from ..jute.records import TxnHeader


class MemoryTxnLog:
    def __init__(self, on_durable: Callable[[int], None]):
        self.on_durable = on_durable
        self.last_zxid = 0

    def append(self, entries: list[tuple[TxnHeader, object]]) -> None:
        if not entries:
            return
        self.last_zxid = entries[-1][0].zxid
        self.on_durable(self.last_zxid)

    def close(self) -> None:
        """Nothing to flush."""
