"""A workload of several recording kazoo clients, each on its own thread, from a seed.

Theory of operation. Each client gets a driver thread with its own random stream (seed and
client number), so the choices of one client do not depend on another's. A driver first
makes sure the parents `/w0..` exist (persistent creates, repeated until the answer is
definite), then keeps up to `max_outstanding` requests in flight with a short think time:
creates (persistent, ephemeral, sequential, ephemeral-sequential), setData and delete with
and without a version, multis of two or three ops on keys of one parent, getData / exists /
getChildren with and without a watch and now and then a sync before them, and, rarely, a
session close followed by a new session. The key space is small so that clients conflict.
Every value written is unique (`c<client>.<n>`). Parents are never deleted and keys never get
children, as the checkers' models assume (sim/workload.py keeps the same rules).

What a client learns (versions, which keys exist, sequential names) comes from its own
recorded replies. Requests kazoo fails without sending (disconnected, session expired) are
not recorded; the driver backs off briefly after one.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kazoo.exceptions import NodeExistsError

from tests.support.recorder import Invocation, Recorder, RecordingClient
from zkserver.jute.codes import CreateMode
from zkserver.sim.workload import SEQ_PREFIX, ClientKnowledge

LOCAL_FAILURE_BACKOFF_S = 0.05
_SEQUENTIAL = (CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL)


@dataclass
class LoadOptions:
    parents: int = 3
    keys_per_parent: int = 6
    max_outstanding: int = 3
    think_ms: tuple[int, int] = (0, 20)
    close_every: int = 300  # on average one session close per this many issues


def parent_paths(opts: LoadOptions) -> list[str]:
    return [f"/w{i}" for i in range(opts.parents)]


class Driver:
    def __init__(self, client: RecordingClient, rng: random.Random, opts: LoadOptions):
        self.client = client
        self.rng = rng
        self.opts = opts
        self.slots = threading.BoundedSemaphore(opts.max_outstanding)
        self.lock = threading.Lock()
        self.outstanding = 0
        self.idle = threading.Event()
        self.idle.set()
        self.stopping = threading.Event()
        self.values = 0
        self.known = ClientKnowledge(parent_paths(opts), opts.keys_per_parent, rng, self._value)
        self.thread = threading.Thread(target=self._run, name=f"load-{client.number}", daemon=True)

    def start(self) -> None:
        self.client.zk.start_async()
        self.thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop issuing; wait for the thread and every outstanding request (True if idle)."""
        self.stopping.set()
        self.thread.join(timeout)
        return self.idle.wait(timeout)

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        for parent in parent_paths(self.opts):
            self._ensure(parent)
        while not self.stopping.is_set():
            if not self.slots.acquire(timeout=0.2):
                continue
            if not self._issue():
                time.sleep(LOCAL_FAILURE_BACKOFF_S)
            time.sleep(self.rng.uniform(*self.opts.think_ms) / 1000)

    def _ensure(self, parent: str) -> None:
        """Create a parent until the answer is definite (OK or NodeExists)."""
        zk = self.client.zk
        while not self.stopping.is_set():
            data = self._value()
            _, result = self.client.invoke("create", parent, {"data": data, "flags": CreateMode.PERSISTENT},
                                           lambda d=data: zk.create_async(parent, d))
            try:
                result.get(timeout=5)
                return
            except NodeExistsError:
                return
            except Exception:  # anything else is retried, as an application would
                time.sleep(0.1)

    def _issue(self) -> bool:
        """Issue one operation (or a sync and its read) in the slot taken; False if kazoo
        refused it at once (not connected), so the caller backs off."""
        rng = self.rng
        if self.outstanding == 0 and rng.randrange(self.opts.close_every) == 0:
            self._close_and_reopen()
            self.slots.release()
            return True
        roll = rng.randrange(100)
        if roll < 22:
            return self._submit(*self._create())
        if roll < 40:
            path = self._target()
            data = self._value()
            version = self._version(path)
            return self._submit("set", path, {"data": data, "version": version},
                                lambda: self.client.zk.set_async(path, data, version))
        if roll < 50:
            path = self._target()
            version = self._version(path)
            return self._submit("delete", path, {"version": version},
                                lambda: self.client.zk.delete_async(path, version))
        if roll < 60:
            return self._submit(*self._multi())
        return self._read(roll)

    def _read(self, roll: int) -> bool:
        zk = self.client.zk
        watch = self._watcher if self.rng.random() < 0.3 else None
        args: dict[str, Any] = {"watch": watch is not None}
        if roll < 75:
            path = self._target()
            call: Callable[[], Any] = lambda: zk.get_async(path, watch)  # noqa: E731
            kind = "get"
        elif roll < 85:
            path = self._target()
            call, kind = (lambda: zk.exists_async(path, watch)), "exists"
        else:
            path = self.rng.choice(parent_paths(self.opts))
            stat = self.rng.random() < 0.5
            args["stat"] = stat
            call, kind = (lambda: zk.get_children_async(path, watch, include_data=stat)), "children"
        if self.rng.random() < 0.3:  # sync first: FIFO per session puts the read after it
            self._submit("sync", path, {}, lambda: zk.sync_async(path), slot=False)
        return self._submit(kind, path, args, call)

    def _submit(self, kind: str, path: str, args: dict[str, Any], call: Callable[[], Any], slot: bool = True) -> bool:
        with self.lock:
            self.outstanding += 1
            self.idle.clear()
        try:
            inv, result = self.client.invoke(kind, path, args, call)
        except Exception:
            self._finished(None, slot)
            raise
        result.rawlink(lambda _r: self._finished(inv, slot))
        return not (result.ready() and inv.op is None)

    def _finished(self, inv: Invocation | None, slot: bool) -> None:
        if inv is not None and inv.op is not None:
            with self.lock:
                self.known.learn(inv.op)
        with self.lock:
            self.outstanding -= 1
            if self.outstanding == 0:
                self.idle.set()
        if slot:
            self.slots.release()

    def _close_and_reopen(self) -> None:
        self.client.close_session()
        if not self.stopping.is_set():
            self.client.zk.start_async()

    @staticmethod
    def _watcher(_event: object) -> None:
        """Watches are armed only so that notifications flow; the recorder sees them."""

    # ------------------------------------------------------------ choosing

    def _value(self) -> bytes:
        self.values += 1
        return f"c{self.client.number}.{self.values}".encode()

    def _target(self) -> str:
        with self.lock:  # replies are learned on kazoo's threads
            return self.known.target()

    def _version(self, path: str) -> int:
        with self.lock:
            return self.known.version(path)

    def _create(self) -> tuple[str, str, dict[str, Any], Callable[[], Any]]:
        rng, zk = self.rng, self.client.zk
        parent = rng.choice(parent_paths(self.opts))
        flags = rng.choice((CreateMode.PERSISTENT, CreateMode.PERSISTENT, CreateMode.EPHEMERAL, CreateMode.EPHEMERAL,
                            CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL))
        if flags in _SEQUENTIAL:
            path = f"{parent}/{SEQ_PREFIX}"
        else:
            path = f"{parent}/k{rng.randrange(self.opts.keys_per_parent)}"
        data, stat = self._value(), rng.random() < 0.5
        ephemeral, sequence = flags in (CreateMode.EPHEMERAL, CreateMode.EPHEMERAL_SEQUENTIAL), flags in _SEQUENTIAL
        return "create", path, {"data": data, "flags": flags, "stat": stat}, lambda: zk.create_async(
            path, data, ephemeral=ephemeral, sequence=sequence, include_data=stat)

    def _multi(self) -> tuple[str, str, dict[str, Any], Callable[[], Any]]:
        rng, zk = self.rng, self.client.zk
        parent = rng.choice(parent_paths(self.opts))
        with self.lock:
            ops = self.known.multi_ops(parent)

        def commit() -> Any:
            t = zk.transaction()
            for sub in ops:
                if sub["kind"] == "create":
                    t.create(sub["path"], sub["data"], ephemeral=sub["flags"] == CreateMode.EPHEMERAL)
                elif sub["kind"] == "set":
                    t.set_data(sub["path"], sub["data"], sub["version"])
                elif sub["kind"] == "delete":
                    t.delete(sub["path"], sub["version"])
                else:
                    t.check(sub["path"], sub["version"])
            return t.commit_async()

        return "multi", parent, {"ops": ops}, commit


class KazooWorkload:
    """`clients` recording kazoo clients driven from `seed`, all in one History."""

    def __init__(self, recorder: Recorder, hosts: str, clients: int, seed: int, session_timeout_s: float,
                 opts: LoadOptions | None = None):
        self.recorder = recorder
        self.opts = opts or LoadOptions()
        self.drivers = [Driver(RecordingClient(n, recorder, hosts, session_timeout_s),
                               random.Random(f"{seed}/client/{n}"), self.opts) for n in range(1, clients + 1)]

    def start(self) -> None:
        for d in self.drivers:
            d.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop issuing, wait for what is in flight, close every session; True if every client
        went idle in time (what did not is recorded UNKNOWN)."""
        for d in self.drivers:
            d.stopping.set()
        idle = all([d.stop(timeout) for d in self.drivers])
        for d in self.drivers:
            d.client.close_session()
            d.client.zk.close()
        self.recorder.finish()
        return idle
