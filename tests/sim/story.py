"""Hand-made histories for the checkers' tests: operations with the times, outcomes and arrival
order a test chooses, and the committed txns the members hold."""

from __future__ import annotations

from typing import Any

from zkserver.jute.codes import Op
from zkserver.jute.records import (
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetDataTxn,
    TxnHeader,
)
from zkserver.sim.checkers.base import MemberState
from zkserver.sim.history import History, Operation, Outcome, Stat

OPEN = ((31, "world", "anyone"),)
T0 = 1_700_000_000_000  # the txn header time of every txn here


def stat(czxid: int, mzxid: int | None = None, version: int = 0, owner: int = 0, data: bytes = b"",
         children: int = 0, cversion: int = 0, pzxid: int | None = None) -> Stat:
    """A client Stat for a node made and changed by the Story (every txn at time T0)."""
    return Stat(czxid, mzxid or czxid, T0, T0, version, cversion, 0, owner, len(data), children, pzxid or czxid)


class Story:
    def __init__(self, epoch: int = 1):
        self.history = History()
        self.txns: list[tuple[int, bytes]] = []
        self.zxid = epoch << 32

    # ------------------------------------------------------------ committed txns

    def commit(self, session: int, kind: int, record: object, cxid: int = 0) -> int:
        """A txn of `session`'s request `cxid` (the xid its operation was sent with)."""
        self.zxid += 1
        self.txns.append((self.zxid, TxnHeader(session, cxid, self.zxid, T0, kind).encode() + record.encode()))
        return self.zxid

    def new_session(self, session: int) -> int:
        return self.commit(session, Op.CREATE_SESSION, CreateSessionTxn(10000))

    def created(self, session: int, path: str, data: bytes, ephemeral: bool = False, cxid: int = 0) -> int:
        return self.commit(session, Op.CREATE, CreateTxn(Op.CREATE, path, data, OPEN, ephemeral, 1), cxid)

    def set(self, session: int, path: str, data: bytes, version: int) -> int:
        return self.commit(session, Op.SET_DATA, SetDataTxn(path, data, version))

    def deleted(self, session: int, path: str) -> int:
        return self.commit(session, Op.DELETE, DeleteTxn(path))

    def failed(self, session: int, err: int, cxid: int = 0) -> int:
        return self.commit(session, Op.ERROR, ErrorTxn(err), cxid)

    def closed(self, session: int, paths: list[str]) -> int:
        return self.commit(session, Op.CLOSE_SESSION, CloseSessionTxn(paths))

    def multi(self, session: int, subs: list[tuple[int, object]], cxid: int = 0) -> int:
        return self.commit(session, Op.MULTI, MultiTxn(subs), cxid)

    def member(self, member: int = 1, txns: list[tuple[int, bytes]] | None = None, **kw: Any) -> MemberState:
        return MemberState(member, list(self.txns if txns is None else txns), **kw)

    # ------------------------------------------------------------ client operations

    def op(self, kind: str, path: str, invoked: int, completed: int | None, outcome: Outcome = Outcome.OK, *,
           client: int = 0, session: int = 1, error: int = 0, result: Any = None, zxid: int | None = None,
           member: int = 1, xid: int | None = None, **args: Any) -> Operation:
        """An operation; its reply (if any) arrives now, after every reply recorded before."""
        o = self.history.invoke(client, session, kind, path, args, invoked)
        o.xid = xid
        if outcome is Outcome.UNKNOWN or completed is None:
            self.history.complete(o, invoked, Outcome.UNKNOWN, member=member)
        else:
            self.history.complete(o, completed, outcome, error=error, result=result, zxid=zxid, member=member)
        return o

    def event(self, etype: int, path: str, zxid: int, *, client: int = 0, session: int = 1, time: int = 0) -> None:
        self.history.event(client, session, time, etype, path, zxid, 1)
