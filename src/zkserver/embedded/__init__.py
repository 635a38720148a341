"""Embed zkserver: a ZooKeeper server for test suites and programs, without a JVM.

    from kazoo.client import KazooClient
    from zkserver.embedded import ZkServer

    with ZkServer() as zk:               # this process, a background thread, a free port
        client = KazooClient(zk.hosts)
        client.start()

Theory of operation
-------------------
One launcher (``ZkServer``, or ``AsyncZkServer`` for async code) runs its node in one of
three modes:

* ``thread`` (ZkServer's default): a ServerRunner on a private event loop in a daemon
  thread; the synchronous methods hand coroutines to that loop and wait for them.
* ``loop`` (AsyncZkServer's default): the same ServerRunner on the caller's running loop.
* ``subprocess``: ``python -m zkserver start zoo.cfg`` in a temporary work dir, held by PID.

Every mode reads its settings the way the command line does: we write a zoo.cfg from the
keyword arguments, ``load_config`` validates it together with the -D ``properties``, and
``cli.server_options`` turns it into ServerOptions. So a setting means the same here, in
``python -m zkserver start`` and in Apache ZooKeeper.

Lifecycle. ``stop`` closes the listening socket and every connection (replies already queued
are flushed) but closes no session, as Apache's shutdown does. ``kill`` is a crash: in-process
every connection is aborted (queued bytes are dropped), a subprocess gets SIGKILL.
``start`` after either (or ``restart``) listens on the same port again, with the data:

* storage="memory" (the default), in-process: the ServerCore is kept, so the tree, the
  sessions and the zxid survive; session deadlines restart from now, as they do when Apache
  reloads its sessions from a snapshot.
* storage="disk", in-process: a new ServerRunner recovers from the data dir, as a new process
  would; it gets the old session-password secret, so clients resume their sessions.
* subprocess: the new process recovers from the data dir (storage="disk"); in memory it
  starts empty. Recovered sessions can be resumed by their clients.

``expire_session`` expires a session as its timeout would: in-process the core submits the
closeSession of the expiry path (``ServerCore.expire_session``); a subprocess is reached
only through its client port, so there we need the session's password and close the
session from a second connection, as Curator's KillSession does.

Ensembles. ``nodes=N`` (N > 1) and ``observers=K`` make the launcher an ensemble of N voting
members and K observers on 127.0.0.1, always on disk, in the same three modes: in-process all
members share the launcher's one loop. ``members[i]`` (myid i + 1) is a handle to stop, kill,
restart, isolate and heal one member; every member's peer links go through a userspace proxy
in the launcher's process, which is what isolate() cuts. ``start`` returns once one member
leads and every member has a role. ensemble.py (the engine), members.py (the handles) and
linkproxy.py (the proxy) say how.

Modules: settings (the shared plan: zoo.cfg keys, -D properties), wire (the client port from
outside), nodes (one node in-process or as a subprocess), launcher (ZkServer, AsyncZkServer),
ensemble, members, linkproxy.
"""

from __future__ import annotations

from .launcher import AsyncZkServer, ZkServer
from .members import AsyncMember, Member
from .settings import DEFAULT_CONFIG, ENSEMBLE_CONFIG, ENSEMBLE_PROPERTIES, Mode, Storage, ZkServerError
from .wire import WireSession, close_session_remotely, four_letter

__all__ = [
    "DEFAULT_CONFIG", "ENSEMBLE_CONFIG", "ENSEMBLE_PROPERTIES", "AsyncMember", "AsyncZkServer", "Member", "Mode",
    "Storage", "WireSession", "ZkServer", "ZkServerError", "close_session_remotely", "four_letter",
]
