"""The simulated clients' workload: a stream of operations per client from a named rng.

Theory of operation. Each client gets a driver with its own random stream
(`workload/<client>`), so adding a client or a fault leaves the others' choices as they were.
A driver first makes sure the parents of the key space exist (persistent creates it repeats
until the answer is definite), then keeps up to `max_outstanding` operations in flight (the
client pipelines them) until it has issued its quota, with a drawn think time between issues.

The key space is small on purpose - a few parents with a few keys each, plus sequential
children under each parent - so that clients conflict: creates race, versions go stale,
multis fail. Every value written is unique (`c<client>.<n>`), so a value names its write
and the checkers can find it in the members' logs. Parents are never deleted, and no key
ever gets children: the checkers' models rely on both.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..jute.codes import AddWatchMode, CreateMode, Err
from .client import SimClient
from .history import Operation, Outcome
from .scheduler import Scheduler

SEQ_PREFIX = "q-"
_SEQUENTIAL = (CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL,
               CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL)


@dataclass
class WorkloadOptions:
    ops_per_client: int | None = 150  # None: until stop()
    parents: int = 3
    keys_per_parent: int = 8
    max_outstanding: int = 3
    think_ms: tuple[int, int] = (0, 40)
    ttl_ms: tuple[int, int] = (200, 3000)
    close_every: int = 120  # on average, one session close per this many operations
    reopen_ms: tuple[int, int] = (10, 500)
    max_persistent_watches: int = 2  # addWatch calls per session


def parent_paths(opts: WorkloadOptions) -> list[str]:
    return [f"/w{i}" for i in range(opts.parents)]


def key_paths(opts: WorkloadOptions) -> list[str]:
    return [f"{p}/k{j}" for p in parent_paths(opts) for j in range(opts.keys_per_parent)]


class Workload:
    def __init__(self, scheduler: Scheduler, clients: list[SimClient], opts: WorkloadOptions | None = None):
        self.scheduler = scheduler
        self.opts = opts or WorkloadOptions()
        self.drivers = [_Driver(self, c) for c in clients]

    def start(self) -> None:
        for d in self.drivers:
            d.start()

    @property
    def done(self) -> bool:
        """Every driver issued its quota (or was stopped) and saw every answer."""
        return all(d.done for d in self.drivers)

    @property
    def idle(self) -> bool:
        """No operation outstanding on any client, a new session's included."""
        return all(d.client.outstanding == 0 and not d.client.opening_session for d in self.drivers)

    def stop(self) -> None:
        """No more operations (the world's quiet phase); what is in flight completes."""
        for d in self.drivers:
            d.stopped = True


class _Driver:
    def __init__(self, workload: Workload, client: SimClient):
        self.w = workload
        self.opts = workload.opts
        self.client = client
        self.rng: random.Random = workload.scheduler.rng(f"workload/{client.number}")
        self.issued = 0
        self.values = 0
        self.ready = False  # the parents are known to exist
        self.stopped = False
        self.timer_set = False
        self.parents_left: set[str] = set()
        self.known = ClientKnowledge(parent_paths(self.opts), self.opts.keys_per_parent, self.rng, self._value)
        self.persistent_watches = 0

    @property
    def done(self) -> bool:
        return (self.stopped or self._quota_met()) and self.client.outstanding == 0

    def _quota_met(self) -> bool:
        return self.opts.ops_per_client is not None and self.issued >= self.opts.ops_per_client

    def start(self) -> None:
        self.client.listener = self._on_state
        self.client.start()
        self.parents_left = set(parent_paths(self.opts))
        for p in sorted(self.parents_left):
            self._setup(p)

    # ------------------------------------------------------------ set-up and pacing

    def _setup(self, parent: str) -> None:
        self._submit("create", parent, {"data": self._value(), "flags": CreateMode.PERSISTENT}, self._setup_done)

    def _setup_done(self, op: Operation) -> None:
        if op.outcome is Outcome.OK or op.error == Err.NODE_EXISTS:
            self.parents_left.discard(op.path)
            if not self.parents_left and not self.ready:
                self.ready = True
                self._schedule()
        elif not self.stopped:
            self.w.scheduler.call_later(self.rng.randint(10, 200), self._retry_setup, op.path)

    def _retry_setup(self, parent: str) -> None:
        if self._can_submit():
            self._setup(parent)
        else:
            self.w.scheduler.call_later(100, self._retry_setup, parent)

    def _on_state(self, what: str) -> None:
        if what == "closed" and not self.stopped:
            self.w.scheduler.call_later(self.rng.randint(*self.opts.reopen_ms), self._reopen)
        elif what == "expired":
            self.persistent_watches = 0

    def _reopen(self) -> None:
        self.persistent_watches = 0
        self.client.start()
        self._schedule()

    def _schedule(self) -> None:
        if not self.timer_set:
            self.timer_set = True
            self.w.scheduler.call_later(self.rng.randint(*self.opts.think_ms), self._tick)

    def _can_submit(self) -> bool:
        c = self.client
        return c.state in ("connecting", "connected") and not c.closing

    def _tick(self) -> None:
        self.timer_set = False
        if not self.ready or self.stopped or self._quota_met() or not self._can_submit():
            return
        if self.client.outstanding < self.opts.max_outstanding:
            self._issue()
            self._schedule()

    def _after(self, op: Operation) -> None:
        self.known.learn(op)
        self._schedule()

    def _submit(self, kind: str, path: str, args: dict[str, Any], on_done=None) -> Operation:
        return self.client.submit(kind, path, args, on_done or self._after)

    def _value(self) -> bytes:
        self.values += 1
        return f"c{self.client.number}.{self.values}".encode()

    # ------------------------------------------------------------ choosing operations

    def _issue(self) -> None:
        self.issued += 1
        rng = self.rng
        if self.client.outstanding == 0 and rng.randrange(self.opts.close_every) == 0:
            self._submit("close", "/", {})
            return
        roll = rng.randrange(100)
        if roll < 18:
            self._create()
        elif roll < 36:
            path = self._target()
            self._submit("set", path, {"data": self._value(), "version": self._version(path)})
        elif roll < 46:
            path = self._target()
            self._submit("delete", path, {"version": self._version(path)})
        elif roll < 54:
            self._multi()
        elif roll < 68:
            self._read("get", self._target())
        elif roll < 76:
            self._read("exists", self._target())
        elif roll < 85:
            parent = rng.choice(parent_paths(self.opts))
            self._read("children", parent, stat=rng.random() < 0.5)
        elif roll < 87 and self.persistent_watches < self.opts.max_persistent_watches:
            self.persistent_watches += 1
            mode = rng.choice((AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE))
            self._submit("add_watch", rng.choice(parent_paths(self.opts) + key_paths(self.opts)), {"mode": mode})
        else:
            self._read("get", self._target(), sync=True)

    def _read(self, kind: str, path: str, stat: bool = False, sync: bool = False) -> None:
        if sync or self.rng.random() < 0.15:
            self._submit("sync", path, {})  # FIFO per session: the read below goes after it
        args: dict[str, Any] = {"watch": self.rng.random() < 0.3}
        if stat:
            args["stat"] = True
        self._submit(kind, path, args)

    def _target(self) -> str:
        return self.known.target()

    def _version(self, path: str) -> int:
        return self.known.version(path)

    def _create_args(self) -> tuple[str, dict[str, Any]]:
        rng = self.rng
        parent = rng.choice(parent_paths(self.opts))
        roll = rng.randrange(100)
        args: dict[str, Any] = {"data": self._value(), "stat": rng.random() < 0.5}
        ttl = rng.randint(*self.opts.ttl_ms)
        if roll < 35:
            args["flags"] = CreateMode.PERSISTENT
        elif roll < 60:
            args["flags"] = CreateMode.EPHEMERAL
        elif roll < 68:
            args["flags"] = CreateMode.CONTAINER
        elif roll < 76:
            args.update(flags=CreateMode.PERSISTENT_WITH_TTL, ttl=ttl)
        elif roll < 88:
            return f"{parent}/{SEQ_PREFIX}", {**args, "flags": CreateMode.PERSISTENT_SEQUENTIAL}
        elif roll < 96:
            return f"{parent}/{SEQ_PREFIX}", {**args, "flags": CreateMode.EPHEMERAL_SEQUENTIAL}
        else:
            return f"{parent}/{SEQ_PREFIX}", {**args, "flags": CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL, "ttl": ttl}
        return f"{parent}/k{rng.randrange(self.opts.keys_per_parent)}", args

    def _create(self) -> None:
        path, args = self._create_args()
        self._submit("create", path, args)

    def _multi(self) -> None:
        parent = self.rng.choice(parent_paths(self.opts))
        self._submit("multi", parent, {"ops": self.known.multi_ops(parent)})


class ClientKnowledge:
    """What one client learned from its own replies - which keys exist, their last versions,
    the newest sequential names under each parent - and the targets it picks from that. The
    simulated workload and the real-process kazoo workload (tests/support/kazooload.py) share it."""

    def __init__(self, parents: list[str], keys_per_parent: int, rng: random.Random,
                 value: Callable[[], bytes]):
        self.parents = parents
        self.keys_per_parent = keys_per_parent
        self.rng = rng
        self.value = value  # the next unique value this client writes
        self.versions: dict[str, int] = {}  # last version seen per path
        self.present: dict[str, bool] = {}  # whether a path existed when last heard of
        self.seq_nodes: dict[str, list[str]] = {p: [] for p in parents}

    def target(self) -> str:
        """A key, or now and then a sequential node this client has heard of."""
        rng = self.rng
        parent = rng.choice(self.parents)
        known = self.seq_nodes[parent]
        if known and rng.random() < 0.2:
            return rng.choice(known)
        return f"{parent}/k{rng.randrange(self.keys_per_parent)}"

    def version(self, path: str) -> int:
        if self.rng.random() < 0.5:
            return -1
        return self.versions.get(path, self.rng.randrange(3))

    def multi_ops(self, parent: str) -> list[dict[str, Any]]:
        """Two or three ops on keys of `parent`; a stale version or a taken key fails them."""
        rng = self.rng
        ops: list[dict[str, Any]] = []
        for k in rng.sample(range(self.keys_per_parent), rng.randint(2, 3)):
            path = f"{parent}/k{k}"
            # Mostly what should succeed as far as this client knows, so that some multis do.
            likely = ("set", "check", "delete", "set") if self.present.get(path) else ("create", "create", "check")
            kind = rng.choice(likely)
            sub: dict[str, Any] = {"kind": kind, "path": path}
            if kind == "create":
                sub.update(data=self.value(), flags=rng.choice((CreateMode.PERSISTENT, CreateMode.EPHEMERAL)))
            elif kind == "set":
                sub.update(data=self.value(), version=self.version(path))
            else:
                sub["version"] = self.version(path)
            ops.append(sub)
        return ops

    def learn(self, op: Operation) -> None:
        if op.outcome is Outcome.ERROR and op.error in (Err.NODE_EXISTS, Err.NO_NODE) and op.kind != "multi":
            self.present[op.path] = op.error == Err.NODE_EXISTS
        if op.outcome is not Outcome.OK:
            return
        kind, result = op.kind, op.result
        if kind in ("create", "set", "get", "exists", "delete"):
            self.present[result[0] if kind == "create" else op.path] = kind != "delete"
        if kind == "create":
            path = result[0]
            self.versions[path] = 0
            if op.args["flags"] in _SEQUENTIAL:
                self._note_seq(path)
        elif kind == "set" or kind == "exists":
            self.versions[op.path] = result.version
        elif kind == "get":
            self.versions[op.path] = result[1].version
        elif kind == "children":
            names = result[0] if op.args.get("stat") else result
            for name in names:
                if name.startswith(SEQ_PREFIX):
                    self._note_seq(f"{op.path}/{name}")

    def _note_seq(self, path: str) -> None:
        known = self.seq_nodes[path[: path.rfind("/")]]
        if path not in known:
            known.append(path)
            del known[:-8]  # the newest few: older ones are mostly gone
