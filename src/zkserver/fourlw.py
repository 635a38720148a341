"""Four-letter words answered on the client port, in Apache's text layouts.

Every command Apache 3.9 knows is here, behind `4lw.commands.whitelist` (Apache's default:
srvr only; a refused command gets Apache's one-line refusal). Scripts parse these layouts
(zkServer.sh status greps srvr's Mode line; monitoring checks split mntr on tabs), so the text
is Apache's byte for byte where the values allow.

The big dumps (cons, dump, wchc, wchp) are generators: `respond` writes one chunk per event-
loop turn, so a tree with millions of watches never stalls the requests of other clients.
They iterate over a copy of the keys and read each entry when its turn comes (the weakly
consistent view a Java ConcurrentHashMap iterator gives Apache).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from .ops import FULL_VERSION, quorumview, view
from .ops.metrics import format_mntr
from .ops.stats import reset_conn_stats

if TYPE_CHECKING:
    from .shell.server import ClientProtocol, ServerRunner

log = logging.getLogger("zkserver.fourlw")

_LONG = struct.Struct(">q")
_PAUSE_ABOVE = 1 << 20  # bytes buffered for a slow reader before the next chunk waits

Output = str | Iterable[str]


def _ruok(server: ServerRunner) -> str:
    return "imok"


def _isro(server: ServerRunner) -> str:
    return "rw"


def _gtmk(server: ServerRunner) -> str:
    return str(server.stats.trace_mask)


def _envi(server: ServerRunner) -> str:
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in view.environment())


def _conf(server: ServerRunner) -> str:
    text = "".join(f"{k}={v}\n" for k, v in view.conf(server))
    if server.ensemble is None:
        return text
    # QuorumZooKeeperServer.dumpConf: the member's lines, then the verifier's string as it is
    text += "".join(f"{k}={v}\n" for k, v in quorumview.conf(server))
    return text + "membership: \n" + quorumview.membership(server)


def _dirs(server: ServerRunner) -> str:
    data_dir, log_dir = view.dirs(server)
    return f"datadir_size: {view.dir_size(data_dir)}\nlogdir_size: {view.dir_size(log_dir)}\n"


def _server_stats(server: ServerRunner) -> str:
    """ServerStats.toString plus the node count and, on a leader, its proposal sizes (StatCommand)."""
    st = server.stats
    core = server.core
    sizes = quorumview.proposal_sizes(server)
    tail = f"Proposal sizes last/min/max: {sizes}\n" if sizes is not None else ""
    return (
        f"Latency min/avg/max: {st.min_latency()}/{st.avg_latency()}/{st.max_latency()}\n"
        f"Received: {core.packets_received}\n"
        f"Sent: {core.packets_sent}\n"
        f"Connections: {len(core.conns)}\n"
        f"Outstanding: {len(core.pipeline)}\n"
        f"Zxid: 0x{core.tree.last_processed_zxid:x}\n"
        f"Mode: {view.server_state(server)}\n"
        f"Node count: {len(core.tree.nodes) + 1}\n"  # Apache counts the root twice ("" and "/")
    ) + tail


def _srvr(server: ServerRunner) -> str:
    return f"Zookeeper version: {FULL_VERSION}\n" + _server_stats(server)


def _connection_lines(server: ServerRunner, brief: bool) -> Iterator[str]:
    queued = view.outstanding_by_conn(server)
    batch: list[str] = []
    for cid in list(server.core.conns):
        conn = server.core.conns.get(cid)
        if conn is None:
            continue
        batch.append(view.connection_line(server, conn, brief, queued.get(cid, 0)) + "\n")
        if len(batch) >= view.CHUNK:
            yield "".join(batch)
            batch = []
    yield "".join(batch)


def _stat(server: ServerRunner) -> Iterator[str]:
    yield f"Zookeeper version: {FULL_VERSION}\nClients:\n"
    yield from _connection_lines(server, True)
    yield "\n" + _server_stats(server)


def _cons(server: ServerRunner) -> Iterator[str]:
    yield from _connection_lines(server, False)
    yield "\n"


def _crst(server: ServerRunner) -> str:
    for conn in server.core.conns.values():
        reset_conn_stats(conn.stats)
    return "Connection stats reset.\n"


def _srst(server: ServerRunner) -> str:
    """ServerStats.reset (latency, packet counts, every metric) and a leader's proposal sizes
    (the AdminServer's stat_reset leaves those, as Apache's does)."""
    server.stats.reset()
    server.core.packets_received = 0
    server.core.packets_sent = 0
    sizes = quorumview.proposal_sizes(server)
    if sizes is not None:
        sizes.reset()
    return "Server stats reset.\n"


def _expiry_sets(server: ServerRunner, sets: list[tuple[int, list[str]]], total: int) -> Iterator[str]:
    yield f"Sets ({len(sets)})/({total}):\n"
    for at, items in sets:
        when = view.java_date(view.mono_to_wall_s(server, at))
        yield f"{len(items)} expire at {when}:\n"
        for i in range(0, len(items), view.CHUNK):
            yield "".join(f"\t{item}\n" for item in items[i:i + view.CHUNK])


def _connection_sets(server: ServerRunner) -> list[tuple[int, list[str]]]:
    """Connections grouped by when they expire: their session's expiry, or the next tick."""
    core = server.core
    tick = core.settings.tick_ms
    soon = (core.clock.mono_ms() // tick + 1) * tick
    sets: dict[int, list[str]] = {}
    for conn in list(core.conns.values()):
        session = core.sessions.sessions.get(conn.session_id) if conn.session_id else None
        at = session.expire_at if session is not None else soon
        sid = view.hex_id(conn.session_id or 0)
        sets.setdefault(at, []).append(f"ip: /{server.peer_of(conn.cid)} sessionId: 0x{sid}")
    return sorted(sets.items())


def _session_dump(server: ServerRunner) -> Iterator[str]:
    """The session tracker's dump: a leader's (or standalone server's) expiry sets, or a
    learner's global sessions with their timeouts (LearnerSessionTracker)."""
    learner = quorumview.learner_sessions(server)
    if learner is not None:
        yield f"Global Sessions({len(learner)}):\n"
        for i in range(0, len(learner), view.CHUNK):
            yield "".join(f"0x{view.hex_id(sid)}\t{timeout}ms\n" for sid, timeout in learner[i:i + view.CHUNK])
        return
    yield "Session "
    buckets = view.session_buckets(server)
    sets = [(at, [f"0x{view.hex_id(sid)}" for sid in sids]) for at, sids in buckets]
    yield from _expiry_sets(server, sets, len(server.core.sessions.sessions))


def _dump(server: ServerRunner) -> Iterator[str]:
    yield "SessionTracker dump:\n"
    yield from _session_dump(server)
    eph = view.ephemerals(server)
    yield f"ephemeral nodes dump:\nSessions with Ephemerals ({len(eph)}):\n"
    for sid, paths in eph:
        yield f"0x{view.hex_id(sid)}:\n" + "".join(f"\t{p}\n" for p in paths)
    yield "Connections dump:\nConnections "
    conn_sets = _connection_sets(server)
    yield from _expiry_sets(server, conn_sets, sum(len(c) for _, c in conn_sets))


def _wchs(server: ServerRunner) -> str:
    conns, paths, total = view.watch_summary(server)
    return f"{conns} connections watching {paths} paths\nTotal watches:{total}\n"


def _chunked_watch_dump(entries: Iterator[tuple[str, list[str]]]) -> Iterator[str]:
    """`head` then a tab-indented line per item, sent in chunks so a huge dump never holds
    the loop for long."""
    batch: list[str] = []
    for head, items in entries:
        batch.append(f"{head}\n" + "".join(f"\t{item}\n" for item in items))
        if len(batch) >= view.CHUNK:
            yield "".join(batch)
            batch = []
    yield "".join(batch) + "\n"


def _wchc(server: ServerRunner) -> Iterator[str]:
    return _chunked_watch_dump(
        (f"0x{view.hex_id(sid)}", list(paths)) for sid, paths in view.iter_watches_by_session(server))


def _wchp(server: ServerRunner) -> Iterator[str]:
    return _chunked_watch_dump(
        (path, [f"0x{view.hex_id(s)}" for s in sids]) for path, sids in view.iter_watches_by_path(server))


def _hash(server: ServerRunner) -> str:
    return "".join(f"{zxid:x}: {digest}\n" for zxid, digest in list(server.stats.digest_log))


COMMANDS: dict[str, Callable[[ServerRunner], Output]] = {
    "conf": _conf, "cons": _cons, "crst": _crst, "dump": _dump, "envi": _envi, "ruok": _ruok,
    "srst": _srst, "srvr": _srvr, "stat": _stat, "wchs": _wchs, "wchc": _wchc, "wchp": _wchp,
    "dirs": _dirs, "mntr": format_mntr, "isro": _isro, "hash": _hash, "gtmk": _gtmk,
}


def refusal(word: str) -> str | None:
    """Apache's reply to a command outside the whitelist (NopCommand, println)."""
    return f"{word} is not executed because it is not in the whitelist.\n"


def enabled(word: str, server: ServerRunner) -> bool:
    wl = server.four_letter_whitelist
    return word in wl or "*" in wl


# Apache's commands that answer only while the server serves (its isZKServerRunning checks).
_NEED_SERVING = frozenset({"srvr", "stat", "mntr", "cons", "crst", "dump", "wchc", "wchp", "wchs", "srst",
                           "conf", "dirs", "hash"})
NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"
# The two that answer otherwise: isro prints "null", hash prints the line without a newline.
_NOT_SERVING_ANSWERS = {"isro": "null", "hash": NOT_SERVING.rstrip("\n")}


def output(word: str, server: ServerRunner, extra: bytes = b"") -> Output:
    """The answer to `word` (text, or chunks of text for the big dumps)."""
    if not enabled(word, server):
        return refusal(word) or ""
    if (word in _NEED_SERVING or word in _NOT_SERVING_ANSWERS) and view.server_state(server) is None:
        return _NOT_SERVING_ANSWERS.get(word, NOT_SERVING)
    if word == "stmk":
        if len(extra) < _LONG.size:
            return ""  # Apache fails reading the mask and closes without an answer
        (server.stats.trace_mask,) = _LONG.unpack_from(extra, 0)
        return str(server.stats.trace_mask)
    return COMMANDS[word](server)


def run(word: str, server: ServerRunner, extra: bytes = b"") -> str:
    """The whole answer as one string (tests, embedding)."""
    out = output(word, server, extra)
    return out if isinstance(out, str) else "".join(out)


def respond(server: ServerRunner, proto: ClientProtocol, word: str, data: bytes) -> None:
    """Answer a four-letter word on its connection, then close it (Apache's cleanupWriterSocket)."""
    transport = proto.transport
    assert transport is not None
    transport.pause_reading()  # nothing after the command is read, as Apache cancels the key
    if enabled(word, server):
        log.info("Processing %s command from %s", word, server.peer_of(proto.cid))
    out = output(word, server, data[4:])
    server.core.packets_sent += 1  # Apache counts the command's answer as one packet sent
    if isinstance(out, str):
        transport.write(out.encode())
        transport.close()
        return
    _write_chunks(transport, iter(out))


def _write_chunks(transport: asyncio.Transport, chunks: Iterator[str]) -> None:
    """Write one chunk now and the rest on later loop turns, waiting while the reader lags."""
    loop = asyncio.get_running_loop()

    def step() -> None:
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > _PAUSE_ABOVE:
            loop.call_later(0.01, step)
            return
        try:
            chunk = next(chunks)
        except StopIteration:
            transport.close()
            return
        except Exception:
            log.exception("four-letter word output failed")
            transport.close()
            return
        if chunk:
            transport.write(chunk.encode())
        loop.call_soon(step)

    step()
