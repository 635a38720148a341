"""Building an ensemble member's QuorumPeer from what a ServerRunner recovered at start-up.

The peer gets the runner's core and disk storage, the committed log and epochs recovery left
(Apache's loadDataBase: the epoch files are created, or refused, by the same rules), and the
snapshot-stream codec for SNAP. In an ensemble, session passwords are Apache's derivation so
that every member, of either kind, accepts every member's sessions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..quorum.election import FastLeaderElection
from ..quorum.peer import QuorumPeer
from ..storage.database import Recovered
from ..storage.epochs import Epochs
from ..storage.snapstream import SnapshotStreamScanner, decode_snapshot_stream
from .dynconfig import DynamicConfigFiles

if TYPE_CHECKING:
    from .ensemble import EnsembleOptions
    from .server import ServerRunner

log = logging.getLogger("zkserver.ensemble")


def build_peer(runner: ServerRunner, opts: EnsembleOptions, rec: Recovered,
               epochs: Epochs) -> Callable[[FastLeaderElection], QuorumPeer]:
    storage = runner.log
    core = runner.core
    core.sessions.apache_passwords = True
    extended = core.settings.extended_types
    config = core.tree.get("/zookeeper/config")
    if config is not None:  # Apache's initConfigInZKDatabase: the static config, for getConfig
        config.data = str(opts.verifier).encode()
        if opts.peer.reconfig_enabled:  # with reconfig on, Apache's setData: version -1, mzxid the version
            config.version, config.mzxid, config.mtime = -1, opts.verifier.version, runner.clock.wall_ms()
        if core.tree.namespace_stats is not None:  # a setData there: mntr's "zookeeper" namespace
            core.tree.namespace_stats.write("/zookeeper/config", len(config.data))
    store, pending = None, None
    if opts.peer.reconfig_enabled and opts.config_path is not None:
        store = DynamicConfigFiles(opts.config_path, opts.my_sid)
        if opts.static_membership:
            store.backup_static()
        pending = store.pending()

    def factory(election: FastLeaderElection) -> QuorumPeer:
        return QuorumPeer(opts.peer, core, storage, opts.verifier, election, rec.committed,  # type: ignore[arg-type]
                          runner.clock, accepted_epoch=epochs.accepted, current_epoch=epochs.current,
                          decode_snapshot=lambda data: decode_snapshot_stream(data, extended),
                          snapshot_scanner=SnapshotStreamScanner, metrics=runner.stats, config_store=store,
                          last_seen=pending)

    log.info("ensemble member %d: last logged zxid 0x%x, accepted epoch %d, current epoch %d", opts.my_sid,
             rec.last_logged_zxid, epochs.accepted, epochs.current)
    return factory
