"""The txn log's syncer: a small process that fdatasyncs the log for the server.

Why a process. The server writes each batch of log entries to the page cache itself; making it
durable is one fdatasync. Done on a thread of the server, every round of that thread needs the
interpreter lock several times (to wake, after the write, after the sync, to signal), and each
time the event loop had to hand it over: on a 2-core machine that cost the loop a quarter of
its write throughput. This process has its own interpreter, so the loop never waits for it.

Protocol, over the SOCK_SEQPACKET socket whose descriptor is argv[1], one request in flight:
  ready    first, unasked: an ANSWER with gen READY_GEN. Until it arrives the server syncs on
           its own, so that its first writes do not wait for this interpreter to start;
  request  (gen, zxid, pos) as REQUEST: sync log file `gen`, written up to `pos` (its last
           entry `zxid`); when the file is new to this process, its descriptor comes along
           (SCM_RIGHTS) and replaces the previous one, which the server synced when it rolled;
  answer   (gen, zxid, pos, microseconds the sync took, errno or 0) as ANSWER.
End of file on the socket: every request has been answered; exit.

Run as a script (`python -I -S syncer.py FD`), so it imports nothing but the standard library.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import time

REQUEST = struct.Struct(">qqq")
ANSWER = struct.Struct(">qqqqi")
READY_GEN = -1  # the gen of the answer that says this process is up


def _sync(fd: int) -> int:
    """fdatasync `fd`; 0 or the errno it failed with."""
    try:
        os.fdatasync(fd)
    except OSError as e:
        return e.errno or 5  # EIO when the kernel gives no number
    return 0


def serve(sock: socket.socket) -> None:
    try:
        sock.send(ANSWER.pack(READY_GEN, 0, 0, 0, 0))
    except OSError:  # the server is gone already
        return
    current = -1
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, REQUEST.size, 1)
        except OSError:  # the server is gone
            return
        if not msg:
            return
        gen, zxid, pos = REQUEST.unpack(msg)
        if fds:
            if current >= 0:
                os.close(current)
            current = fds[0]
        started = time.perf_counter()
        err = _sync(current)
        micros = int((time.perf_counter() - started) * 1e6)
        try:
            sock.send(ANSWER.pack(gen, zxid, pos, micros, err))
        except OSError:  # the server stopped waiting (it failed or is gone)
            return


if __name__ == "__main__":
    # A terminal's Ctrl-C, or a service manager's SIGTERM to the whole group, is for the server:
    # it stops this process (end of file) once the last sync is answered.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    serve(socket.socket(fileno=int(sys.argv[1])))
