"""A standalone member in the simulated world: the real ServerCore over the real storage code.

What shell/server.py does with asyncio, done on virtual time: at every start the process
recovers its tree and sessions from its disk (storage.database.recover), builds a ServerCore
on them (restored sessions expire unless their clients return), opens a DiskStorage whose log
is synced by `DataDir`'s rounds, listens on "client" and ticks the core every tickTime of its
own clock. After each input it pumps: appends go to the log before any reply is sent, and
replies leave only once `persisted` has let the core apply what they depend on.

The session-password secret is the machine's (drawn once, kept across restarts): the real
server keeps it in a file the simulator does not model (storage.epochs.load_or_create_secret
uses the os directly).
"""

from __future__ import annotations

from ..core import CoreSettings, ServerCore
from ..storage.database import StorageOptions
from ..storage.digest import tree_digest
from .disks import DiskProfile
from .member import DOWN, ClientPort, MemberHost, MemberState, SimEnv


class StandaloneHost(MemberHost):
    def __init__(self, env: SimEnv, sid: int, settings: CoreSettings, opts: StorageOptions, disk: DiskProfile):
        super().__init__(env, sid, opts, disk)
        self.settings = settings
        self.secret = env.scheduler.rng(f"{self.name}.secret").randbytes(32)
        self.core: ServerCore | None = None
        self.port: ClientPort | None = None

    def _boot(self) -> None:
        rec = self.data.recover(self.settings.extended_types)
        core = self.core = ServerCore(self.settings, self.clock, self.secret, tree=rec.tree)
        now = self.clock.mono_ms()
        for sid, timeout in rec.sessions.items():
            core.sessions.add(sid, timeout, now)
        sessions = core.sessions.sessions
        self.data.open(rec, lambda: {sid: s.timeout for sid, s in sessions.items()}, self._durable, self._failed)
        self.port = ClientPort(self, core, self.pump)
        self.call_later(self.settings.tick_ms, self._tick)
        self.note(f"serving at 0x{core.zxid:x} with {len(sessions)} restored sessions")

    def _halt(self) -> None:
        self.core = None
        self.port = None

    def _tick(self) -> None:
        assert self.core is not None
        self.core.tick()
        self.pump()
        self.call_later(self.settings.tick_ms, self._tick)

    def pump(self) -> None:
        core, port = self.core, self.port
        assert core is not None and port is not None
        fx = core.take_effects()
        if fx.appends:
            self.data.append(fx.appends)
            self.note(f"log 0x{fx.appends[0][0].zxid:x}..0x{fx.appends[-1][0].zxid:x}")
        port.write(fx)

    def _durable(self, zxid: int) -> None:
        assert self.core is not None
        self.note(f"durable to 0x{zxid:x}")
        self.core.persisted(zxid)
        self.pump()

    def _failed(self, exc: BaseException) -> None:
        assert self.core is not None
        self.note(f"txn log failed: {exc}")
        self.core.storage_failed()
        self.pump()

    def final_state(self) -> MemberState:
        core = self.core
        if self.state == DOWN or core is None:
            return MemberState(self.name, self.sid, self.state, [], None, None)
        return MemberState(self.name, self.sid, self.state, self.data.logged_txns(), core.tree,
                           tree_digest(core.tree), {sid: s.timeout for sid, s in core.sessions.sessions.items()},
                           core.log_failed, history_start=self.data.history_start())
