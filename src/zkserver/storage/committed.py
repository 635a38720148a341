"""What a leader brings a lagging learner up to date from (LearnerHandler.syncFollower's inputs).

`CommittedLog` is Apache's ZKDatabase.committedLog: the latest committed proposals, each kept as
the PROPOSAL data the leader sends (TxnHeader + txn + optional TxnDigest, the bytes of a txn-log
entry), with their min and max zxid. Recovery fills it with every txn it replays, uncommitted
tail included, as Apache's loadDataBase does; a leader adds each txn it commits.

`txn_log_from` is ZKDatabase.getProposalsFromTxnLog's view of the disk: the entries of the log
files a learner at some zxid may need, with their size on disk. `proposals_from_txn_log` is what
a leader reads for a learner behind its committed log: those entries, unless the size limit
(zookeeper.snapshotSizeFactor times the newest snapshot's size, calculateTxnLogSizeLimit)
forbids it or the oldest file starts after the learner's zxid. The files are read one at a time,
as the caller iterates: one that stops early stops there.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from ..jute.records import TxnHeader
from .disk import OS_DISK, Disk
from .snapshot import snapshot_files
from .txnlog import LOG_PREFIX, LogFile, encode_proposal, sorted_files

log = logging.getLogger("zkserver.storage")

COMMIT_LOG_COUNT = 500  # zookeeper.commitLogCount


@dataclass(frozen=True, slots=True)
class Proposal:
    zxid: int
    data: bytes  # the PROPOSAL packet's data


class CommittedLog:
    """The latest committed proposals, oldest first. As Apache's, it drops its oldest entry only
    when it holds more than `count` before an add, so it keeps up to count + 1."""

    def __init__(self, count: int = COMMIT_LOG_COUNT):
        self.count = count
        self._entries: deque[Proposal] = deque()

    def add(self, hdr: TxnHeader, txn: object, digest: tuple[int, int] | None = None) -> None:
        """A committed txn with the (version, tree digest) it was proposed with, if any."""
        data = encode_proposal(hdr, txn, None) if digest is None else encode_proposal(hdr, txn, digest[1], digest[0])
        self.add_encoded(hdr.zxid, data)

    def add_encoded(self, zxid: int, data: bytes) -> None:
        """A committed txn whose PROPOSAL data is already encoded (a log entry, a proposal sent)."""
        entries = self._entries
        if entries and zxid <= entries[-1].zxid:
            raise ValueError(f"committed log: zxid 0x{zxid:x} after 0x{entries[-1].zxid:x}")
        if len(entries) > self.count:
            entries.popleft()
        entries.append(Proposal(zxid, data))

    @property
    def min_zxid(self) -> int:
        """The oldest entry's zxid; 0 when empty (ZKDatabase.getminCommittedLog after clear)."""
        return self._entries[0].zxid if self._entries else 0

    @property
    def max_zxid(self) -> int:
        """The newest entry's zxid; 0 when empty."""
        return self._entries[-1].zxid if self._entries else 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Proposal]:
        return iter(self._entries)

    def after(self, zxid: int) -> Iterator[Proposal]:
        """The entries with a zxid greater than `zxid`, oldest first."""
        return (p for p in self._entries if p.zxid > zxid)

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class LogRange:
    """The log files Apache's FileTxnIterator(logDir, zxid) opens: every file starting at or
    after `zxid` and the newest one starting before it."""

    zxid: int
    paths: list[str]
    size: int  # bytes on disk of all but the oldest, preallocation included (TxnIterator.getStorageSize
    # once the iterator opened the oldest)
    first: int  # the zxid the oldest of them starts at (-1: no files)
    disk: Disk

    @property
    def covers(self) -> bool:
        """True when no txn after `zxid` can be missing: the oldest file starts at or before it
        (Apache reads the disk for a learner only then)."""
        return 0 <= self.first <= self.zxid

    def __iter__(self) -> Iterator[Proposal]:
        """Every good entry of the files in order, from the start of the oldest (the entries up
        to `zxid` included, as Apache's iterator gives them; the sync walk skips them). Stops
        at the first bad entry."""
        for path in self.paths:
            lf = LogFile(path, self.disk)
            for zxid, body in lf.proposals():
                yield Proposal(zxid, bytes(body))
            if lf.problem is not None:
                return


def txn_log_from(log_dir: str, zxid: int, disk: Disk = OS_DISK) -> LogRange:
    """The on-disk txns a learner whose last zxid is `zxid` may need (see LogRange)."""
    logs = sorted_files(log_dir, LOG_PREFIX, disk)
    chosen = [(z, p) for z, p in logs if z >= zxid]
    older = [(z, p) for z, p in logs if z < zxid]
    if older:
        chosen.insert(0, older[-1])
    paths = [p for _, p in chosen]
    return LogRange(zxid, paths, sum(disk.getsize(p) for p in paths[1:]), chosen[0][0] if chosen else -1, disk)


def txn_log_size_limit(snap_dir: str, size_factor: float, disk: Disk = OS_DISK) -> int:
    """calculateTxnLogSizeLimit: the newest snapshot's size times the factor (0: no limit)."""
    snaps = snapshot_files(snap_dir, disk)
    return int(disk.getsize(snaps[0][1]) * size_factor) if snaps else 0


def proposals_from_txn_log(snap_dir: str, log_dir: str, zxid: int, size_factor: float,
                           disk: Disk = OS_DISK) -> Iterator[Proposal]:
    """The on-disk entries a leader may send a learner whose last zxid is `zxid`, from the start
    of the oldest file that may hold what follows it; none when reading the txn log is disabled
    (a negative factor), the files reach no further back than `zxid`, or they exceed the size
    limit (ZKDatabase.getProposalsFromTxnLog). The caller checks what it gets (syncplan rule 5)."""
    if size_factor < 0:
        return iter(())
    r = txn_log_from(log_dir, zxid, disk)
    if not r.covers:
        log.info("The txn log does not reach back to 0x%x", zxid)
        return iter(())
    limit = txn_log_size_limit(snap_dir, size_factor, disk)
    if 0 < limit < r.size:
        log.info("Txn log size %d exceeds the limit %d (zookeeper.snapshotSizeFactor)", r.size, limit)
        return iter(())
    return iter(r)

