"""In-process CPU per request: the shell's framing and stats, the core, the txn-log encoding and
the digest, without sockets or fsync.

A ServerRunner with a DiskStorage (forceSync off, no syncer: each batch is written and
reported durable inline) gets rounds of pre-encoded requests: each of 8 connections' protocols
receives its share of a round as one read, then one `pump` runs, as one loop turn would, and
writes the replies to stand-in transports. The figure is process CPU time per request, so it
leaves out what the kernel does for sockets and the disk: use it to compare changes to the
Python hot path (run it a few times and take the minimum on a shared machine), and
`python -m bench` to compare servers.

    python -m bench.micro [setdata|getdata|exists|create|children|multi|mixed] [--n 50000] [--gc default|freeze]
"""

from __future__ import annotations

import argparse
import gc
import logging
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench.requests import create_body, get_body, set_body
from zkserver.jute.codec import Writer
from zkserver.shell.server import ClientProtocol, ServerOptions, ServerRunner
from zkserver.storage.database import StorageOptions

OPS = ("setdata", "getdata", "exists", "create", "children", "multi", "mixed")
PAYLOAD = b"x" * 100
BATCH = 128
CONNS = 8


def request(op: str, i: int) -> tuple[int, bytes]:
    key = f"/bench/d/k{i % 100:02d}"
    if op == "getdata" or (op == "mixed" and i % 10):
        return 4, get_body(key)
    if op == "exists":
        return 3, get_body(key)
    if op in ("setdata", "mixed"):
        return 5, set_body(key, PAYLOAD)
    if op == "create":
        return 1, create_body(f"/bench/c/n{i}", PAYLOAD)
    if op == "children":
        return 8, get_body("/bench/kids")
    w = Writer().int(1).bool(False).int(-1).raw(create_body(f"/bench/m/n{i}", PAYLOAD))
    w.int(5).bool(False).int(-1).raw(set_body(key, PAYLOAD))
    return 14, w.int(-1).bool(True).int(-1).getvalue()


class _Transport:
    """Stands in for a uvloop transport: counts what would be written."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str) -> tuple[str, int]:
        return ("127.0.0.1", 1)

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def _frame(xid: int, op: int, body: bytes) -> bytes:
    return struct.pack(">iii", 8 + len(body), xid, op) + body


class Harness:
    """A ServerRunner without a loop: each connection's protocol gets its requests as one
    read, as `data_received` would, then one `pump` per round, as one loop turn would."""

    def __init__(self, data_dir: str):
        opts = StorageOptions(data_dir=data_dir, force_sync=False)
        self.runner = ServerRunner(ServerOptions(storage=opts))
        self.protos = []
        for _ in range(CONNS):
            proto = ClientProtocol(self.runner)
            proto.connection_made(_Transport())  # type: ignore[arg-type]
            self.protos.append(proto)

    def setup(self) -> None:
        connect = Writer().int(0).long(0).int(30000).long(0).buffer(bytes(16)).bool(False).getvalue()
        for proto in self.protos:
            proto.data_received(struct.pack(">i", len(connect)) + connect)
        self.runner.pump()
        paths = ["/bench", "/bench/d", "/bench/c", "/bench/m", "/bench/kids"]
        bodies = [create_body(p, PAYLOAD) for p in paths]
        bodies += [create_body(f"/bench/d/k{i:02d}", PAYLOAD) for i in range(100)]
        bodies += [create_body(f"/bench/kids/{i:010d}", b"") for i in range(1000)]
        self.protos[0].data_received(b"".join(_frame(i + 1, 1, b) for i, b in enumerate(bodies)))
        self.runner.pump()

    def rounds(self, reqs: list[tuple[int, bytes]]) -> list[list[bytes]]:
        """Each round: BATCH requests, dealt to the connections in turn, one read each."""
        out = []
        for start in range(0, len(reqs), BATCH):
            chunk = list(enumerate(reqs[start:start + BATCH], start))
            out.append([b"".join(_frame(x, op, body) for x, (op, body) in chunk[c::CONNS]) for c in range(CONNS)])
        return out

    def run(self, rounds: list[list[bytes]]) -> float:
        t0 = time.process_time()
        for reads in rounds:
            for proto, data in zip(self.protos, reads, strict=True):
                proto.data_received(data)
            self.runner.pump()
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
            rounds = h.rounds([request(op, i) for i in range(args.n)])
            if args.gc == "freeze":
                gc.freeze()
                gc.set_threshold(50_000, 10, 10)
            seconds = h.run(rounds)
            gc.unfreeze()
            gc.set_threshold(700, 10, 10)
            print(f"{op:9} {seconds / args.n * 1e6:7.2f} us CPU per request (gc {args.gc})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
