"""In-process CPU per request: the core, the txn-log encoding and the digest, without sockets or fsync.

A ServerCore with a DiskStorage (forceSync off, no sync thread: each batch is written and
reported durable inline) takes batches of pre-encoded request frames from 8 connections, as
`data_received` would hand them over; the replies are joined per connection as `pump` would
write them. The figure is process CPU time per request, so it leaves out what the kernel does
for sockets and the disk: use it to compare changes to the Python hot path (run it a few
times and take the minimum on a shared machine), and `python -m bench` to compare servers.

    python -m bench.micro [setdata|getdata|exists|create|children|multi|mixed] [--n 50000] [--gc default|freeze]
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from zkserver.core import CoreSettings, ServerCore
from zkserver.jute.codec import Writer
from zkserver.shell.clock import SystemClock
from zkserver.storage.database import DiskStorage, StorageOptions, prepare_dirs

OPS = ("setdata", "getdata", "exists", "create", "children", "multi", "mixed")
ACL = Writer().int(1).int(31).ustring("world").ustring("anyone").getvalue()
PAYLOAD = b"x" * 100
BATCH = 128
CONNS = 8


def create_body(path: str, data: bytes = PAYLOAD) -> bytes:
    return Writer().ustring(path).buffer(data).raw(ACL).int(0).getvalue()


def request(op: str, i: int) -> tuple[int, bytes]:
    key = f"/bench/d/k{i % 100:02d}"
    if op == "getdata" or (op == "mixed" and i % 10):
        return 4, Writer().ustring(key).bool(False).getvalue()
    if op == "exists":
        return 3, Writer().ustring(key).bool(False).getvalue()
    if op in ("setdata", "mixed"):
        return 5, Writer().ustring(key).buffer(PAYLOAD).int(-1).getvalue()
    if op == "create":
        return 1, create_body(f"/bench/c/n{i}")
    if op == "children":
        return 8, Writer().ustring("/bench/kids").bool(False).getvalue()
    w = Writer().int(1).bool(False).int(-1).raw(create_body(f"/bench/m/n{i}"))
    w.int(5).bool(False).int(-1).ustring(key).buffer(PAYLOAD).int(-1)
    return 14, w.int(-1).bool(True).int(-1).getvalue()


class Harness:
    def __init__(self, data_dir: str):
        opts = StorageOptions(data_dir=data_dir, force_sync=False)
        prepare_dirs(opts)
        self.core = ServerCore(CoreSettings(), SystemClock(), os.urandom(32))
        self.store = DiskStorage(opts, self.core.tree, lambda: {}, self.core.persisted)
        self.xid = 1
        self.out_bytes = 0

    def pump(self) -> None:
        core = self.core
        fx = core.take_effects()
        if fx.appends:
            self.store.append(fx.appends)
            for cid, frames in core.take_effects().out.items():
                fx.out.setdefault(cid, []).extend(frames)
        for frames in fx.out.values():
            self.out_bytes += len(b"".join(frames))

    def send(self, cid: int, op: int, body: bytes) -> None:
        self.core.frame_received(cid, struct.pack(">ii", self.xid, op) + body)
        self.xid += 1

    def setup(self) -> None:
        core = self.core
        for cid in range(1, CONNS + 1):
            core.connection_made(cid, "127.0.0.1")
            core.frame_received(cid, Writer().int(0).long(0).int(30000).long(0).buffer(bytes(16))
                                .bool(False).getvalue())
        self.pump()
        for path in ("/bench", "/bench/d", "/bench/c", "/bench/m", "/bench/kids"):
            self.send(1, 1, create_body(path))
        for i in range(100):
            self.send(1, 1, create_body(f"/bench/d/k{i:02d}"))
        for i in range(1000):
            self.send(1, 1, create_body(f"/bench/kids/{i:010d}", b""))
        self.pump()

    def run(self, reqs: list[tuple[int, bytes]]) -> float:
        t0 = time.process_time()
        for start in range(0, len(reqs), BATCH):
            for j in range(start, min(len(reqs), start + BATCH)):
                op, body = reqs[j]
                self.send(1 + j % CONNS, op, body)
            self.pump()
        return time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__.split("\n\n")[0])
    p.add_argument("ops", nargs="*", metavar="op", help=f"any of {', '.join(OPS)} (default: all)")
    p.add_argument("--n", type=int, default=50000, help="requests per op")
    p.add_argument("--gc", choices=("default", "freeze"), default="freeze",
                   help="freeze: as `zkserver start` runs (gc.freeze() and a gen-0 threshold of 50,000)")
    args = p.parse_args(argv)
    unknown = set(args.ops) - set(OPS)
    if unknown:
        p.error(f"unknown ops: {', '.join(sorted(unknown))}")
    logging.disable(logging.WARNING)
    for op in args.ops or OPS:
        with tempfile.TemporaryDirectory(prefix="zkmicro-") as tmp:
            h = Harness(tmp)
            h.setup()
            reqs = [request(op, i) for i in range(args.n)]
            if args.gc == "freeze":
                gc.freeze()
                gc.set_threshold(50_000, 10, 10)
            seconds = h.run(reqs)
            gc.unfreeze()
            gc.set_threshold(700, 10, 10)
            print(f"{op:9} {seconds / args.n * 1e6:7.2f} us CPU per request (gc {args.gc})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
