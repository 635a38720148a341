"""ZooKeeper's historical consensus bugs, re-introduced on demand: switches for tests only.

Each switch puts one known Apache ZooKeeper bug back into our quorum code, at the place where
our code is written to make it impossible. The simulator must catch every one of them within
2,000 seeds (docs/testing.md has the table), and tests keep them as regressions: a refactor
that silently removes one of our safeguards shows up as a switch that no longer matters.

Nothing sets a switch outside tests and `python -m zkserver.sim --bug NAME`; with none set,
each check below is one test of an empty set.
"""

from __future__ import annotations

KNOWN: dict[str, str] = {
    "ack-before-durable":
        "ZOOKEEPER-4646/4785: a follower ACKs a proposal before its log made it durable",
    "epoch-before-txns":
        "ZOOKEEPER-4643: at NEWLEADER a learner writes currentEpoch before its held txns are durable",
    "newleader-ack-early":
        "ZOOKEEPER-3911: a learner ACKs NEWLEADER before it logged the txns of its DIFF, logging "
        "them only after UPTODATE",
    "snap-not-durable":
        "ZOOKEEPER-3104/3642: a learner acks NEWLEADER after a SNAP while the snapshot is only in "
        "memory (it is written after UPTODATE)",
    "diff-not-trunc":
        "ZOOKEEPER-1154/2832: the leader sends DIFF where the learner holds an uncommitted suffix "
        "that must be truncated",
    "commit-hole":
        "ZOOKEEPER-4925: txns applied during sync skip the committed log, and learners accept a "
        "gap in a DIFF",
    "leader-ack-before-durable":
        "a leader counts itself in a proposal's quorum before its own log made it durable",
    "fle-receiver-dies":
        "ZOOKEEPER-3769: a malformed notification stops the election from taking any further "
        "notification",
}

ACTIVE: set[str] = set()


def enable(*names: str) -> None:
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ValueError(f"unknown bug switch(es) {unknown}; known: {sorted(KNOWN)}")
    ACTIVE.update(names)


def disable_all() -> None:
    ACTIVE.clear()
