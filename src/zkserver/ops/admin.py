"""The AdminServer: Apache's HTTP JSON commands, served by aiohttp on the server's event loop.

Theory of operation. `GET <commandURL>` lists the primary command names as links;
`GET <commandURL>/<name>?k=v` runs a command (any of its names) and answers its JSON: the
command's fields, then "command" (the primary name) and "error" (null unless it failed), with
Apache's status codes (200 even for an unknown command). `snapshot` streams a fresh snapshot
file; `restore` (POST) loads one. Both need an Authorization header ("digest user:password" or
"ip") whose identities hold every permission of the root znode's ACL, and each is allowed
once per admin.rateLimiterIntervalInMS, as Apache's RateLimiter does.

Field names and command names are Apache 3.9's (server/admin/Commands.java); handlers read the
server state through `ops.view`, as the four-letter words do.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..config import ServerConfig
from ..jute.codes import Perm
from . import FULL_VERSION, quorumview, view
from .metrics import monitor_values
from .snapshots import SnapshotError, restore_snapshot, take_snapshot

if TYPE_CHECKING:
    from ..shell.server import ServerRunner

log = logging.getLogger("zkserver.admin")

Result = tuple[dict[str, Any], int]  # (fields, HTTP status)
Handler = Callable[["AdminServer", web.Request], Awaitable[Result] | Result]


NOT_SERVING = "This ZooKeeper instance is not currently serving requests"


@dataclass(frozen=True)
class Command:
    names: tuple[str, ...]
    handler: Handler
    post: bool = False
    auth: bool = False  # Apache's AuthRequest(ALL, "/")
    server_required: bool = True  # Apache's CommandBase.serverRequired: refused while not serving

    @property
    def primary(self) -> str:
        return self.names[0]


class RateLimiter:
    """Apache's util.RateLimiter(rate=1): one call per interval, measured from the last reset."""

    def __init__(self, interval_ms: float):
        self.interval_ms = interval_ms
        self.last_reset = time.monotonic() * 1000
        self.remaining = 1

    def allow(self) -> bool:
        now = time.monotonic() * 1000
        if now > self.last_reset + self.interval_ms:
            self.remaining = 1
            self.last_reset = now
        if self.remaining > 0:
            self.remaining -= 1
            return True
        return False


# ---------------------------------------------------------------- command handlers


def _ok(fields: dict[str, Any] | None = None) -> Result:
    return fields or {}, 200


def _crst(a: AdminServer, r: web.Request) -> Result:
    from .stats import reset_conn_stats

    for conn in a.server.core.conns.values():
        reset_conn_stats(conn.stats)
    return _ok()


def _server_stats_fields(a: AdminServer) -> dict[str, Any]:
    """SrvrCommand: ServerStats serialized by Jackson (getter names in snake case)."""
    s, core = a.server.stats, a.server.core
    data_dir, log_dir = view.dirs(a.server)
    client_response = {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1}
    stats = {
        "packets_sent": core.packets_sent,
        "packets_received": core.packets_received,
        "fsync_threshold_exceed_count": s.fsync_threshold_exceed_count,
        "client_response_stats": dict(client_response),
        "data_dir_size": view.dir_size(data_dir),
        "log_dir_size": view.dir_size(log_dir),
        "provider_null": False,
        "server_state": view.server_state(a.server),
        "last_processed_zxid": core.tree.last_processed_zxid,
        "outstanding_requests": len(core.pipeline),
        "avg_latency": s.avg_latency(),
        "max_latency": s.max_latency(),
        "min_latency": s.min_latency(),
        "num_alive_client_connections": len(core.conns),
        "auth_failed_count": s.auth_failed_count,
        "non_mtlsremote_conn_count": 0,
        "non_mtlslocal_conn_count": 0,
        "uptime": s.uptime_ms(),
    }
    fields: dict[str, Any] = {"version": FULL_VERSION, "read_only": False, "server_stats": stats,
                              "client_response": client_response}
    sizes = quorumview.proposal_sizes(a.server)
    if sizes is not None:
        fields["proposal_stats"] = {"last_buffer_size": sizes.last, "min_buffer_size": sizes.min,
                                    "max_buffer_size": sizes.max}
    fields["node_count"] = len(core.tree.nodes) + 1
    return fields


def _srvr(a: AdminServer, r: web.Request) -> Result:
    return _ok(_server_stats_fields(a))


def _stat(a: AdminServer, r: web.Request) -> Result:
    fields = _server_stats_fields(a)
    fields["connections"] = view.connections(a.server, brief=True)
    fields["secure_connections"] = []
    return _ok(fields)


def _cons(a: AdminServer, r: web.Request) -> Result:
    return _ok({"connections": view.connections(a.server, brief=False), "secure_connections": []})


def _dump(a: AdminServer, r: web.Request) -> Result:
    # A learner's session tracker has no expiry sets (LearnerSessionTracker.getSessionExpiryMap).
    learner = quorumview.learner_sessions(a.server) is not None
    expiry = {} if learner else {str(at): sids for at, sids in view.session_buckets(a.server)}
    eph = {str(sid): paths for sid, paths in view.ephemerals(a.server)}
    return _ok({"expiry_time_to_session_ids": expiry, "session_id_to_ephemeral_paths": eph})


def _dirs(a: AdminServer, r: web.Request) -> Result:
    data_dir, log_dir = view.dirs(a.server)
    return _ok({"datadir_size": view.dir_size(data_dir), "logdir_size": view.dir_size(log_dir)})


def _srst(a: AdminServer, r: web.Request) -> Result:
    a.server.stats.reset()
    a.server.core.packets_received = a.server.core.packets_sent = 0
    return _ok()


def _stmk(a: AdminServer, r: web.Request) -> Result:
    raw = r.query.get("traceMask")
    if raw is None:
        return _ok({"error": "setTraceMask requires long traceMask argument"})
    try:
        mask = int(raw, 10)
        if not -(2**63) <= mask < 2**63:
            raise ValueError(raw)
    except ValueError:
        return _ok({"error": f"setTraceMask requires long traceMask argument, got {raw}"})
    a.server.stats.trace_mask = mask
    return _ok({"tracemask": mask})


def _last_snapshot(a: AdminServer, r: web.Request) -> Result:
    zxid, ts = view.last_snapshot(a.server)
    return _ok({"zxid": f"{zxid & ((1 << 64) - 1):x}", "timestamp": ts})


def _hash(a: AdminServer, r: web.Request) -> Result:
    return _ok({"digests": [{"zxid": z, "digest_version": 2, "digest": d} for z, d in a.server.stats.digest_log]})


def _sysp(a: AdminServer, r: web.Request) -> Result:
    return _ok(dict(sorted(a.config.properties.items())))


def _monitor(a: AdminServer, r: web.Request) -> Result:
    if view.server_state(a.server) is None:
        # Apache runs it without a server and fails (HTTP 500 from a NullPointerException).
        return {"error": NOT_SERVING}, 500
    return _ok(dict(monitor_values(a.server)))


def _leader(a: AdminServer, r: web.Request) -> Result:
    if a.server.ensemble is None:
        return _ok({"error": "server is not initialized"})
    return _ok(quorumview.leader_fields(a.server))


def _voting_view(a: AdminServer, r: web.Request) -> Result:
    return _ok({"current_config": quorumview.voting_view(a.server) if a.server.ensemble is not None else {}})


def _observers(a: AdminServer, r: web.Request) -> Result:
    return _ok(quorumview.observers(a.server))


def _orst(a: AdminServer, r: web.Request) -> Result:
    quorumview.reset_observer_stats(a.server)
    return _ok()


_GET_COMMANDS: tuple[Command, ...] = (
    Command(("connection_stat_reset", "crst"), _crst),
    Command(("configuration", "conf", "config"), lambda a, r: _ok(view.conf_json(a.server))),
    Command(("connections", "cons"), _cons),
    Command(("hash",), _hash),
    Command(("dirs",), _dirs),
    Command(("dump",), _dump),
    Command(("environment", "env", "envi"), lambda a, r: _ok(dict(view.environment())), server_required=False),
    Command(("get_trace_mask", "gtmk"), lambda a, r: _ok({"tracemask": a.server.stats.trace_mask}),
            server_required=False),
    # An ensemble member's is null: Apache's QuorumPeerMain never hands the file text on.
    Command(("initial_configuration", "icfg"), lambda a, r: _ok(
        {"initial_configuration": a.config.source_text if a.server.ensemble is None else None})),
    Command(("is_read_only", "isro"), lambda a, r: _ok({"read_only": False})),
    Command(("last_snapshot", "lsnp"), _last_snapshot),
    Command(("leader", "lead"), _leader),
    Command(("monitor", "mntr"), _monitor, server_required=False),
    Command(("observer_connection_stat_reset", "orst"), _orst),
    Command(("ruok",), lambda a, r: _ok()),
    Command(("set_trace_mask", "stmk"), _stmk, server_required=False),
    Command(("server_stats", "srvr"), _srvr),
    Command(("stats", "stat"), _stat),
    Command(("stat_reset", "srst"), _srst),
    Command(("observers", "obsr"), _observers),
    Command(("system_properties", "sysp"), _sysp, server_required=False),
    Command(("voting_view",), _voting_view),
    Command(("watches", "wchc"), lambda a, r: _ok({"session_id_to_watched_paths": {
        str(sid): paths for sid, paths in view.iter_watches_by_session(a.server)}})),
    Command(("watches_by_path", "wchp"), lambda a, r: _ok({"path_to_session_ids": {
        path: sids for path, sids in view.iter_watches_by_path(a.server)}})),
    Command(("watch_summary", "wchs"), lambda a, r: _ok(dict(zip(
        ("num_connections", "num_paths", "num_total_watches"), view.watch_summary(a.server), strict=True)))),
    Command(("zabstate",), lambda a, r: _ok(quorumview.zabstate(a.server)), server_required=False),
)


def _refused(a: AdminServer, name: str, label: str, limiter: RateLimiter) -> web.StreamResponse | None:
    """The 503 of a disabled snapshot/restore command or the 429 of a rate-limited one."""
    if a.config.properties.get(f"zookeeper.admin.{name}.enabled", "true").lower() != "true":
        log.warning("%s command is disabled", label)
        return a.json_response(name, {}, 503)
    if not limiter.allow():
        a.server.stats.count(f"{name}_rate_limited_count")
        log.warning("%s request was rate limited", label)
        return a.json_response(name, {}, 429)
    return None


async def _snapshot(a: AdminServer, r: web.Request) -> web.StreamResponse:
    """Take a snapshot now and stream the file (`?streaming=false`: headers only)."""
    name = "snapshot"
    refused = _refused(a, name, "Snapshot", a.snapshot_limiter)
    if refused is not None:
        return refused
    streaming = r.query.get("streaming", "true").lower() == "true"
    try:
        zxid, path, size = await take_snapshot(a.server)
    except SnapshotError as e:
        a.server.stats.count("snapshot_error_count")
        log.warning("Taking a snapshot for the snapshot admin command failed: %s", e)
        return a.json_response(name, {}, 500)
    headers = {"last_zxid": f"0x{zxid & ((1 << 64) - 1):016x}", "snapshot_size": str(size)}
    if not streaming:
        return a.json_response(name, {}, 200, headers)
    return web.FileResponse(path, headers={**headers, "Content-Type": "application/octet-stream"})


async def _restore(a: AdminServer, r: web.Request) -> web.StreamResponse:
    name = "restore"
    refused = _refused(a, name, "Restore", a.restore_limiter)
    if refused is not None:
        return refused
    body = await r.read()
    try:
        last_zxid = await restore_snapshot(a.server, body)
    except SnapshotError as e:
        a.server.stats.count("restore_error_count")
        log.warning("Restoring the database from a snapshot failed: %s", e)
        return a.json_response(name, {}, 500)
    return a.json_response(name, {"last_zxid": last_zxid}, 200)


_STREAM_COMMANDS: dict[str, tuple[tuple[str, ...], bool]] = {
    "snapshot": (("snapshot", "snap"), False),
    "restore": (("restore", "rest"), True),
}


# ---------------------------------------------------------------- the HTTP server


class AdminServer:
    def __init__(self, server: ServerRunner, config: ServerConfig):
        self.server = server
        self.config = config
        self.host = config.admin_server_address
        self.port = config.admin_server_port
        self.url = "/" + config.admin_command_url.strip("/")
        interval = int(config.properties.get("zookeeper.admin.rateLimiterIntervalInMS", "300000"))
        self.restore_limiter = RateLimiter(interval)
        # Apache builds the snapshot limiter with TimeUnit.MICROSECONDS: its interval is
        # rateLimiterIntervalInMS microseconds (300 ms by default). We keep that behaviour.
        self.snapshot_limiter = RateLimiter(interval / 1000)
        self.commands: dict[str, Command] = {}
        for cmd in _GET_COMMANDS:
            for n in cmd.names:
                self.commands[n] = cmd
        for primary, (names, post) in _STREAM_COMMANDS.items():
            handler = _snapshot if primary == "snapshot" else _restore
            cmd = Command(names, handler, post=post, auth=True)  # type: ignore[arg-type]
            for n in names:
                self.commands[n] = cmd
        self._runner: web.AppRunner | None = None

    def primary_names(self) -> list[str]:
        return sorted({c.primary for c in self.commands.values()})

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 31)
        app.router.add_route("*", self.url, self._links)
        app.router.add_route("*", self.url + "/", self._links)
        app.router.add_route("*", self.url + "/{name}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0 and site._server is not None:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("Started AdminServer on address %s, port %d and command URL %s", self.host, self.port, self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _links(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "POST"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        text = "".join(f'<a href="{self.url}/{n}">{n}</a>\n<br/>\n' for n in self.primary_names())
        return web.Response(text=text, content_type="text/html")

    def json_response(self, name: str, fields: dict[str, Any], status: int,
                      headers: dict[str, str] | None = None, error: str | None = None) -> web.Response:
        """CommandResponse.toMap: the fields, then "command" and "error" unless a field set them."""
        out = dict(fields)
        out.setdefault("command", name)
        out.setdefault("error", error)
        body = json.dumps(out, indent=2, default=str)
        return web.Response(text=body, status=status, content_type="application/json", headers=headers)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if request.method not in ("GET", "POST"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        cmd = self.commands.get(name)
        if cmd is None:
            log.warning("Unknown command")
            return self.json_response(name, {}, 200, error=f"Unknown command: {name}")
        wants_post = request.method == "POST"
        if wants_post != cmd.post:
            return self.json_response(cmd.primary, {}, 405,
                                      error=f"{cmd.primary} takes {'POST' if cmd.post else 'GET'} requests")
        if cmd.server_required and view.server_state(self.server) is None:
            return self.json_response(name, {}, 200, error=NOT_SERVING)  # Apache names it as asked
        if cmd.auth:
            refusal = self._check_auth(request, name)
            if refusal is not None:
                return refusal
        result = cmd.handler(self, request)
        if hasattr(result, "__await__"):
            result = await result  # type: ignore[misc]
        if isinstance(result, web.StreamResponse):
            return result
        fields, status = result  # type: ignore[misc]
        return self.json_response(cmd.primary, fields, status)

    def _check_auth(self, request: web.Request, name: str) -> web.Response | None:
        """Commands.handleAuthentication + handleAuthorization: ALL on "/", bit by bit."""
        info = request.headers.get("Authorization")
        if info is None:
            log.warning("Auth info is missing for command")
            return self.json_response(name, {}, 401, error="Auth info is missing for the command")
        parts = info.split(" ")
        if len(parts) not in (1, 2):
            return self.json_response(name, {}, 401, error="Not authenticated")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        ip = peer[0] if peer else "0.0.0.0"
        auth = parts[1].encode() if len(parts) == 2 else b""
        core = self.server.core
        ids = core.auth.authenticate(parts[0], auth, ip)
        if not ids:
            self.server.stats.auth_failed_count += 1
            return self.json_response(name, {}, 401, error="Not authenticated")
        root = core.tree.nodes["/"]
        for bit in (Perm.READ, Perm.WRITE, Perm.CREATE, Perm.DELETE, Perm.ADMIN):
            if not core.auth.check(root.acl, int(bit), ids):
                return self.json_response(name, {}, 403, error="Not authorized")
        return None
