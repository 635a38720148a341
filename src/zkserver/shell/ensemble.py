"""An ensemble member's shell: the QuorumPeer between a ServerRunner's core and its log, and
the election and quorum ports on the event loop.

Theory of operation. `ServerRunner` keeps serving the client port as it does standalone; in
an ensemble it hands every turn's effects to this shell instead of writing them itself. Each
`pump` takes the peer's Ready and carries it out in order: notifications to the election
net, quorum bytes to their connections, the leader dial, closes, then the client frames.
Inputs come back as calls on the peer (a notification, quorum bytes, a connection made or
lost, the log durable up to a zxid) followed by a pump. One timer, re-armed after every pump
at `peer.deadline()`, drives the election's polls, the roles' ticks and time-outs, and the
core's session ticks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import ServerConfig
from ..core import Role
from ..proto.election_codec import ServerState
from ..quorum.context import PeerSettings
from ..quorum.election import ElectionSettings, FastLeaderElection
from ..quorum.peer import QuorumPeer
from ..quorum.verifier import QuorumVerifier, verifier_from_config
from .election_net import ElectionNet, ElectionNetSettings
from .election_runner import election_addresses, oracle_file_reader
from .quorum_net import QuorumNet

if TYPE_CHECKING:
    from .server import ServerRunner

log = logging.getLogger("zkserver.ensemble")


@dataclass
class EnsembleOptions:
    """What an ensemble member needs beyond a standalone server's options."""

    my_sid: int
    verifier: QuorumVerifier
    peer: PeerSettings
    election: ElectionSettings
    election_net: ElectionNetSettings
    quorum_listen_all: bool = False  # quorumListenOnAllIPs
    config_path: str | None = None  # zoo.cfg: where a reconfig's files go (reconfigEnabled)
    static_membership: bool = False  # the server lines are in zoo.cfg itself (no dynamicConfigFile)

    @classmethod
    def from_config(cls, cfg: ServerConfig) -> EnsembleOptions:
        assert cfg.server_id is not None, "the config loader requires a myid for an ensemble"
        ask = oracle_file_reader(cfg.oracle_path) if cfg.oracle_path else None
        verifier = verifier_from_config(cfg, ask)
        props = cfg.properties
        initial = props.get("zookeeper.testingonly.initialZxid")
        peer = PeerSettings(
            my_sid=cfg.server_id, tick_ms=cfg.tick_time, init_limit=cfg.init_limit, sync_limit=cfg.sync_limit,
            observer=cfg.peer_type == "observer",
            force_snapshot_sync=props.get("zookeeper.forceSnapshotSync", "false").lower() == "true",
            snapshot_size_factor=cfg.snapshot_size_factor,
            initial_zxid=int(initial) if initial else None, read_only=cfg.read_only_mode_enabled,
            reconfig_enabled=cfg.reconfig_enabled, standalone_enabled=cfg.standalone_enabled)
        return cls(cfg.server_id, verifier, peer, ElectionSettings.from_config(cfg),
                   ElectionNetSettings.from_config(cfg), cfg.quorum_listen_on_all_ips, cfg.source_path,
                   cfg.dynamic_config_file is None)


class EnsembleShell:
    def __init__(self, runner: ServerRunner, opts: EnsembleOptions, peer_factory: Callable[[FastLeaderElection],
                 QuorumPeer]):
        self.runner = runner
        self.opts = opts
        election = FastLeaderElection(opts.my_sid, opts.verifier, not opts.peer.observer, opts.election)
        self.peer = peer_factory(election)
        peers = election_addresses(opts.verifier)
        self.election_net = ElectionNet(opts.my_sid, peers.get(opts.my_sid, []), peers, self._notification,
                                        opts.election_net)
        self.quorum = QuorumNet(self._accepted, self._dialed, self._dial_failed, self._quorum_data, self._quorum_closed,
                                opts.election_net.tls)
        self._timer: asyncio.Handle | None = None
        self._timer_at = 0.0  # loop time
        self._loop: asyncio.AbstractEventLoop | None = None
        self._configs_known: tuple = ()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.election_net.start()
        self.peer.start()
        self.runner.schedule_pump()

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.election_net.close()
        await self.quorum.stop()

    # ------------------------------------------------------------ inputs

    def _notification(self, sid: int, payload: bytes) -> None:
        self.peer.election_message(sid, payload)
        self.runner.schedule_pump()

    def _accepted(self, cid: int) -> None:
        self.peer.quorum_accepted(cid)
        self.runner.schedule_pump()

    def _dialed(self, cid: int) -> None:
        self.peer.quorum_dialed(cid)
        self.runner.schedule_pump()

    def _dial_failed(self) -> None:
        self.peer.quorum_dial_failed()
        self.runner.schedule_pump()

    def _quorum_data(self, cid: int, data: bytes) -> None:
        self.peer.quorum_data(cid, data)
        self.runner.schedule_pump()

    def _quorum_closed(self, cid: int) -> None:
        self.peer.quorum_closed(cid)
        self.runner.schedule_pump()

    def persisted(self, zxid: int) -> None:
        self.peer.log_persisted(zxid)

    def storage_failed(self, exc: BaseException) -> None:
        self.peer.log_failed(str(exc))

    def _fire(self) -> None:
        self._timer = None
        self.peer.timer()
        self.runner.pump()

    # ------------------------------------------------------------ the turn

    def pump(self) -> None:
        """Carry out the peer's Ready (called from ServerRunner.pump)."""
        ready = self.peer.take_ready()
        for sid, payload in ready.election:
            self.election_net.send(sid, payload)
        for cid, chunks in ready.quorum.items():
            self.quorum.write(cid, b"".join(chunks))
        self._follow_config()
        for sid in ready.dial:
            spec = self.peer.verifier.members.get(sid) or self.peer.last_seen.members.get(sid)
            if spec is None:
                self.peer.quorum_dial_failed()
                continue
            timeout = self.opts.peer.tick_ms * self.opts.peer.init_limit / 1000
            self.quorum.dial(spec.host, spec.quorum_port, timeout)
        for cid in ready.close:
            self.quorum.close(cid)
        self._listen_while_leading()
        self.runner.write_client(ready.client)
        self._arm()

    def _follow_config(self) -> None:
        """A reconfig named members: their election addresses, for the notifications to them."""
        configs = (self.peer.verifier, self.peer.last_seen)
        if configs == self._configs_known:
            return
        self._configs_known = configs
        for verifier in configs:
            for sid, addresses in election_addresses(verifier).items():  # type: ignore[arg-type]
                if sid != self.opts.my_sid:
                    self.election_net.peers[sid] = addresses

    def _listen_while_leading(self) -> None:
        """The quorum port is bound while the peer leads, as Apache's Leader binds it."""
        leading = self.peer.leader is not None
        if leading and not self.quorum.listening:
            me = self.opts.verifier.members[self.opts.my_sid]
            self.quorum.start_listening(None if self.opts.quorum_listen_all else me.host, me.quorum_port)
        elif not leading and self.quorum.listening:
            self.quorum.stop_listening()

    def _arm(self) -> None:
        if self._loop is None:
            return
        delay = max(0, self.peer.deadline() - self.runner.clock.mono_ms()) / 1000
        at = self._loop.time() + delay
        if self._timer is not None:
            # Our own record of when it fires: for a delay under a millisecond uvloop returns a
            # plain Handle, which has no when().
            if abs(self._timer_at - at) < 0.001:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._fire)

    # ------------------------------------------------------------ for the operator

    @property
    def mode(self) -> str:
        """srvr's Mode: leader, follower, observer, read-only (or nothing while electing)."""
        role = self.peer.core.role
        if role == Role.READ_ONLY:
            return "read-only"
        if role == Role.LOOKING:
            return ""
        return {ServerState.LEADING: "leader", ServerState.FOLLOWING: "follower",
                ServerState.OBSERVING: "observer"}.get(self.peer.state, "")
