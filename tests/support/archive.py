"""The ensemble's committed history, gathered from the members' logs while the run goes on.

Why. The checkers replay the committed history from zxid 0 (reads, ephemerals, the trees,
the session closes behind linearizability), so some live MemberState must hold all of it. A
real member does not keep it: a learner brought up to date by SNAP has every log removed and
holds only what followed the snapshot, and under a busy nemesis every member gets one sooner
or later. So the history is sampled while the members still hold it.

How. `sample()` asks each member for its mode and last applied zxid (srvr, one answer), and
if it is leading or following, reads its txn logs (zkserver's LogFile) and keeps every entry
up to that zxid: a member in a role applies only committed txns, and nothing in its log at or
below what it applied is other than what it applied. A member electing is skipped: leaving a
role applies what it logged, committed or not. The nemesis samples after each recovery, and
once more before the members stop. An entry seen twice must be the same bytes; a difference
is kept as a conflict, which the run reports as a violation of its own.

`witness(states)` is that history as one more live MemberState (member 0), completed with the
final logs of the members (all committed once the ensemble is quiet), with no tree, digest or
sessions of its own. The checkers then hold it to everything a live member is held to: no
gap inside an epoch, the same bytes as every member at every zxid, every acknowledged write,
and a replay that ends in each member's final tree. A sample that missed committed txns shows
up there, never silently.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.faultcluster import ProxiedCluster
from zkserver.sim.checkers import MemberState, Violation
from zkserver.storage.database import VERSION_DIR
from zkserver.storage.txnlog import LOG_PREFIX, LogFile, sorted_files

WITNESS = 0
ROLES = ("leader", "follower")


class HistoryArchive:
    def __init__(self, cluster: ProxiedCluster):
        self.cluster = cluster
        self.txns: dict[int, tuple[bytes, int]] = {}  # zxid -> (entry bytes, the member it was read from)
        self.conflicts: list[Violation] = []
        self.samples = 0

    def sample(self) -> None:
        for sid in sorted(self.cluster.seats):
            mode, zxid = self.cluster.mode_and_zxid(sid)
            if mode in ROLES and zxid is not None:
                self._read(sid, self.cluster.data_dir(sid) / VERSION_DIR, zxid)
        self.samples += 1

    def _read(self, sid: int, log_dir: Path, applied: int) -> None:
        for _, path in sorted_files(str(log_dir), LOG_PREFIX):
            try:
                entries = [(e.hdr.zxid, bytes(e.body)) for e in LogFile(path)]
            except FileNotFoundError:
                continue  # removed under us by a rewrite: the next sample reads what replaced it
            for zxid, body in entries:
                if zxid <= applied:
                    self._add(zxid, body, sid)

    def _add(self, zxid: int, body: bytes, sid: int) -> None:
        held = self.txns.get(zxid)
        if held is None:
            self.txns[zxid] = (body, sid)
        elif held[0] != body:
            self.conflicts.append(Violation("replicas", f"zxid 0x{zxid:x}: member {held[1]} had applied one txn "
                                            f"there and member {sid} another (seen in their logs during the run)"))

    def witness(self, states: list[MemberState]) -> MemberState:
        """The sampled history plus every member's final log, as live member 0."""
        merged = {zxid: body for zxid, (body, _) in self.txns.items()}
        for state in states:
            for zxid, body in state.txns:
                merged.setdefault(zxid, body)
        return MemberState(WITNESS, sorted(merged.items()), 0, tree=None, digest=None, sessions=None, live=True)
