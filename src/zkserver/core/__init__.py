"""ServerCore: the deterministic heart of a standalone server, driven by inputs, emitting effects.

Theory of operation. The shell feeds the core: `connection_made`, `frames_received` (the
complete frames of one socket read), `connection_lost`, `tick`, and `persisted(zxid)` when the
log is durable up to a zxid. The core never touches sockets, files, clocks or randomness; it
reads time from the injected clock, once per input, and leaves its effects in `Effects`:
frames to write per connection, connections to close, and txns to append to the log.

Requests go through one ordered pipeline (Apache standalone's Prep -> Sync -> Final):
  - a write is validated at once against the tree plus the writes in flight (prep.Pending),
    gets the next zxid and is handed to the log;
  - a write waits in `pipeline` until it is durable; then it is applied to the tree, its watch
    events go out, and the reply follows them;
  - a read waits there only behind requests of its own session (Apache's CommitProcessor holds a
    session's reads behind that session's pending writes); a sync waits behind every write.
So replies of a session come in request order, and a read sees every write its session
submitted before it, and every write acknowledged to anyone before it arrived.

Where each part lives: `model` (settings, connections, requests, roles, effects), `server`
(ServerCore: connections, the pipeline, replies), `auth` (the auth and SASL packets),
`replica` (what an ensemble member adds: roles, forwarding, revalidation, local sessions),
`replies` (write reply bodies), `containers` (the container and TTL sweeper).
"""

from .containers import ContainerSweeper
from .model import BODY_AT, WRITE_OPS, Clock, Conn, ConnStats, CoreSettings, Effects, Request, Role
from .server import ServerCore

__all__ = [
    "BODY_AT", "WRITE_OPS", "Clock", "Conn", "ConnStats", "ContainerSweeper", "CoreSettings", "Effects",
    "Request", "Role", "ServerCore",
]
