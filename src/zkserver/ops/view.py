"""Read-only views of the server's state shared by the four-letter words and the AdminServer.

Every function returns plain data (lists, dicts, tuples); `fourlw` renders Apache's text
layouts from it and `admin` Apache's JSON. Session ids are Java longs (signed); text renders
them as Long.toHexString does (two's complement).
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import FULL_VERSION
from .stats import conn_avg_latency, conn_min_latency, conn_op_name

if TYPE_CHECKING:
    from ..core import Conn
    from ..shell.server import ServerRunner

_MASK64 = (1 << 64) - 1
CHUNK = 2000  # items rendered per event-loop turn by the large dumps


def hex_id(sid: int) -> str:
    return f"{sid & _MASK64:x}"


def java_date(epoch_s: float) -> str:
    """java.util.Date.toString(): "Fri Nov 27 03:22:46 UTC 2026"."""
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(epoch_s))


def mono_to_wall_s(server: ServerRunner, mono_ms: int) -> float:
    """Apache's Time.elapsedTimeToDate: a monotonic ms figure as a wall-clock time."""
    clock = server.clock
    return (clock.wall_ms() - clock.mono_ms() + mono_ms) / 1000


# ---------------------------------------------------------------- configuration and dirs


def server_state(server: ServerRunner) -> str | None:
    """Apache's ZooKeeperServer.getState(): standalone, leader, follower, observer or read-only;
    None while an ensemble member is electing and serves no client."""
    ensemble = server.ensemble
    if ensemble is None:
        return "standalone"
    return ensemble.mode or None


def read_only(server: ServerRunner) -> bool:
    """Serving as Apache's ReadOnlyZooKeeperServer (readonlymode.enabled, no quorum)."""
    return server_state(server) == "read-only"


def dirs(server: ServerRunner) -> tuple[str, str]:
    opts = server.options.storage
    if opts is None:
        return "", ""
    return os.path.abspath(opts.snap_dir), os.path.abspath(opts.log_dir)


def dir_size(path: str) -> int:
    """Total size of the regular files directly in `path` (Apache's getDirSize)."""
    total = 0
    if not path:
        return 0
    try:
        with os.scandir(path) as it:
            for entry in it:
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    except OSError:
        return 0
    return total


def conf(server: ServerRunner) -> list[tuple[str, Any]]:
    """ZooKeeperServer.dumpConf, in its order (camelCase keys)."""
    s = server.core.settings
    data_dir, log_dir = dirs(server)
    return [
        ("clientPort", server.port),
        ("secureClientPort", -1),
        ("dataDir", data_dir),
        ("dataDirSize", dir_size(data_dir)),
        ("dataLogDir", log_dir),
        ("dataLogSize", dir_size(log_dir)),
        ("tickTime", s.tick_ms),
        ("maxClientCnxns", s.max_client_cnxns),
        ("minSessionTimeout", s.min_session_timeout),
        ("maxSessionTimeout", s.max_session_timeout),
        ("clientPortListenBacklog", -1),
        ("serverId", s.server_id),
    ]


def conf_json(server: ServerRunner) -> dict[str, Any]:
    """ZooKeeperServerConf.toMap."""
    c = dict(conf(server))
    return {
        "client_port": c["clientPort"], "data_dir": c["dataDir"], "data_log_dir": c["dataLogDir"],
        "tick_time": c["tickTime"], "max_client_cnxns": c["maxClientCnxns"],
        "min_session_timeout": c["minSessionTimeout"], "max_session_timeout": c["maxSessionTimeout"],
        "server_id": c["serverId"], "client_port_listen_backlog": c["clientPortListenBacklog"],
    }


# ---------------------------------------------------------------- environment


def _meminfo_mb(key: str) -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return f"{int(line.split()[1]) // 1024}MB"
    except OSError:
        pass
    return "<NA>"


def _rss_mb() -> str:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return f"{pages * os.sysconf('SC_PAGE_SIZE') // (1024 * 1024)}MB"
    except (OSError, ValueError, IndexError):
        return "<NA>"


def environment() -> list[tuple[str, str]]:
    """Apache's Environment.list() keys; the java.* ones say what stands in for the JVM."""
    return [
        ("zookeeper.version", FULL_VERSION),
        ("host.name", socket.getfqdn()),
        ("java.version", f"<NA: zkserver runs on Python {platform.python_version()}>"),
        ("java.vendor", "<NA>"),
        ("java.home", sys.prefix),
        ("java.class.path", os.pathsep.join(p for p in sys.path if p)),
        ("java.library.path", "<NA>"),
        ("java.io.tmpdir", os.environ.get("TMPDIR", "/tmp")),
        ("java.compiler", "<NA>"),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", getpass.getuser()),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
        ("os.memory.free", _meminfo_mb("MemAvailable")),
        ("os.memory.max", _meminfo_mb("MemTotal")),
        ("os.memory.total", _rss_mb()),
    ]


# ---------------------------------------------------------------- connections


def outstanding_by_conn(server: ServerRunner) -> dict[int, int]:
    counts: dict[int, int] = {}
    for req in server.core.pipeline:
        if req.conn is not None:
            counts[req.conn.cid] = counts.get(req.conn.cid, 0) + 1
    return counts


def _interest_ops(server: ServerRunner, conn: Conn) -> int:
    # NIO interest ops: the asking 4lw connection shows 0, a reading connection OP_READ (1).
    return 0 if conn.cid == server.asking_cid else 1


def connection_line(server: ServerRunner, conn: Conn, brief: bool, queued: int) -> str:
    """ServerCnxn.dumpConnectionInfo."""
    st = conn.stats
    received = st.received + (1 if conn.cid == server.asking_cid else 0)  # its 4-byte command
    out = (f" /{server.peer_of(conn.cid)}[{_interest_ops(server, conn):x}](queued={queued},"
           f"recved={received},sent={st.sent}")
    sid = conn.session_id or 0
    if not brief and sid:
        out += (f",sid=0x{hex_id(sid)},lop={conn_op_name(st)},est={st.established},to={conn.timeout}")
        if st.last_cxid >= 0:
            out += f",lcxid=0x{st.last_cxid & 0xFFFFFFFF:x}"
        out += (f",lzxid=0x{hex_id(st.last_zxid)},lresp={st.last_response},llat={st.last_latency},"
                f"minlat={conn_min_latency(st)},avglat={conn_avg_latency(st)},maxlat={st.lat_max}")
    return out + ")"


def connection_info(server: ServerRunner, conn: Conn, brief: bool, queued: int) -> dict[str, Any]:
    """ServerCnxn.getConnectionInfo (JSON field names)."""
    st = conn.stats
    info: dict[str, Any] = {
        "remote_socket_address": server.peer_of(conn.cid),
        "interest_ops": _interest_ops(server, conn),
        "outstanding_requests": queued,
        "packets_received": st.received,
        "packets_sent": st.sent,
    }
    if not brief:
        info.update({
            "session_id": conn.session_id or 0,
            "last_operation": conn_op_name(st),
            "established": st.established,  # Jackson writes a Date as epoch ms
            "session_timeout": conn.timeout,
            "last_cxid": st.last_cxid,
            "last_zxid": st.last_zxid,
            "last_response_time": st.last_response,
            "last_latency": st.last_latency,
            "min_latency": conn_min_latency(st),
            "avg_latency": conn_avg_latency(st),
            "max_latency": st.lat_max,
        })
    return info


def connections(server: ServerRunner, brief: bool) -> list[dict[str, Any]]:
    queued = outstanding_by_conn(server)
    return [connection_info(server, c, brief, queued.get(c.cid, 0)) for c in list(server.core.conns.values())]


# ---------------------------------------------------------------- sessions and ephemerals


def session_buckets(server: ServerRunner) -> list[tuple[int, list[int]]]:
    """(expiry time in monotonic ms, session ids) oldest first (SessionTrackerImpl's sets)."""
    return [(at, sorted(ids)) for at, ids in sorted(server.core.sessions.buckets.items())]


def ephemerals(server: ServerRunner) -> list[tuple[int, list[str]]]:
    return [(sid, list(paths)) for sid, paths in list(server.core.tree.ephemerals.items())]


# ---------------------------------------------------------------- watches (data watches, as Apache)


def _session_of(watcher: object) -> int:
    return getattr(watcher, "session_id", None) or 0


def watch_summary(server: ServerRunner) -> tuple[int, int, int]:
    """(connections, paths, total watches) of the data-watch table (WatchManager.toString)."""
    table = server.core.tree.data_watches
    return len(table.by_watcher), len(table.by_path), sum(len(p) for p in table.by_watcher.values())


def iter_watches_by_session(server: ServerRunner) -> Iterator[tuple[int, list[str]]]:
    """Weakly consistent: the watcher list is copied once, each entry read when its turn comes."""
    table = server.core.tree.data_watches
    for watcher in list(table.by_watcher):
        paths = table.by_watcher.get(watcher)
        if paths:
            yield _session_of(watcher), list(paths)


def iter_watches_by_path(server: ServerRunner) -> Iterator[tuple[str, list[int]]]:
    table = server.core.tree.data_watches
    for path in list(table.by_path):
        watchers = table.by_path.get(path)
        if watchers:
            yield path, [_session_of(w) for w in list(watchers)]


# ---------------------------------------------------------------- snapshots


def last_snapshot(server: ServerRunner) -> tuple[int, int]:
    """(zxid, mtime in seconds) of the newest snapshot file, or (-1, -1)."""
    from ..storage.snapshot import snapshot_files

    opts = server.options.storage
    if opts is None:
        return -1, -1
    snaps = snapshot_files(opts.snap_dir)
    if not snaps:
        return -1, -1
    zxid, path = snaps[0]
    try:
        return zxid, int(os.stat(path).st_mtime)
    except OSError:
        return zxid, -1
