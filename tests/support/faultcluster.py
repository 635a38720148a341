"""A real-process Cluster whose members reach each other only through a FaultNetwork.

Member i's zoo.cfg names its own real ports in its own server line (it binds them) and, for
every other member j, the two listeners of the fault proxy in front of j for i. So every peer
byte between two members passes the proxy's rules for that ordered pair; client ports are
direct. The probes here read what the members say about themselves (srvr, mntr), never our
own code's state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.support.cluster import Cluster
from tests.support.faultproxy import FaultNetwork
from tests.support.lazyfs import LazyMount
from tests.support.ports import free_port_block


class ProxiedCluster(Cluster):
    def __init__(self, workdir: Path, kinds: Iterable[str], network: FaultNetwork, power_loss: bool = False,
                 fsync_delay_ms: float = 0.0, **kw: Any):
        super().__init__(workdir, kinds, **kw)
        # Members are killed and restarted, and must bind their ports again: ports the kernel
        # hands out for outgoing connections (the proxy's, kazoo's) could be sitting on them by
        # then. So they come from a block outside that range.
        base = free_port_block(3 * len(self.seats))
        for i, seat in enumerate(self.seats.values()):
            seat.quorum_port, seat.election_port, seat.client_port = base + 3 * i, base + 3 * i + 1, base + 3 * i + 2
        self.network = network
        self.routes = network.route({sid: (s.quorum_port, s.election_port) for sid, s in self.seats.items()})
        # power_loss: each data dir is a lazyfs mount (tests/support/lazyfs.py) whose unsynced
        # writes `power_cut` loses.
        self.mounts: dict[int, LazyMount] = {}
        if power_loss:
            try:
                for sid in self.seats:
                    self._mount(sid, fsync_delay_ms)
            except BaseException:
                self.close()
                raise

    def _mount(self, sid: int, fsync_delay_ms: float) -> None:
        disk = self.workdir / f"m{sid}" / "disk"
        disk.mkdir(parents=True, exist_ok=True)
        (disk / "myid").write_text(f"{sid}\n")  # on the disk itself: durable before any crash
        self.mounts[sid] = LazyMount(disk, self.data_dir(sid), self.workdir / f"m{sid}" / "lazyfs.log", fsync_delay_ms)
        self.mounts[sid].start()

    def power_cut(self, sids: list[int], keep: float, seed: int) -> dict[int, int]:
        """The members' machines lose power at once: every process is killed, then each disk
        loses its unsynced pages (each kept with probability `keep`); how many each had."""
        for sid in sids:
            self.kill(sid)
        return {sid: self.mounts[sid].crash(keep, seed + sid) for sid in sids}

    def close(self) -> None:
        super().close()
        for mount in self.mounts.values():
            mount.stop()

    def server_lines(self, sid: int) -> list[str]:
        lines = []
        for seat in self.seats.values():
            if seat.sid == sid:
                lines.append(seat.line())
            else:
                route = self.routes[(sid, seat.sid)]
                lines.append(seat.line(route.quorum_port, route.election_port))
        return lines

    def member_of_port(self) -> dict[int, int]:
        """client port -> sid, to say which member answered a client."""
        return {seat.client_port: sid for sid, seat in self.seats.items()}

    # ------------------------------------------------------------ probes

    def mode_and_zxid(self, sid: int) -> tuple[str | None, int | None]:
        """Member `sid`'s Mode and the last zxid it applied, from one srvr answer (None, None
        if it does not answer)."""
        try:
            text = self.four_letter(sid, "srvr", timeout=2.0)
        except OSError:
            return None, None
        fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
        zxid = fields.get("Zxid")
        return fields.get("Mode"), int(zxid, 16) if zxid is not None else None

    def zxid(self, sid: int) -> int | None:
        return self.mode_and_zxid(sid)[1]

    def global_sessions(self, sid: int) -> int | None:
        try:
            value = self.mntr(sid).get("zk_global_sessions")
        except OSError:
            return None
        return int(value) if value is not None else None

    def wait_quiet(self, timeout: float, stable_s: float = 1.0) -> dict[int, int | None]:
        """Wait until one member leads, it holds no session, and every member reports the same
        zxid for `stable_s` seconds; the zxids (raises with them on a timeout)."""
        deadline = time.monotonic() + timeout
        seen: dict[int, int | None] = {}
        since: float | None = None
        while time.monotonic() < deadline:
            leader = self.leader()
            zxids = {sid: self.zxid(sid) for sid in self.seats}
            quiet = (leader is not None and self.global_sessions(leader) == 0 and None not in zxids.values()
                     and len(set(zxids.values())) == 1)
            if quiet and zxids == seen and since is not None:
                if time.monotonic() - since >= stable_s:
                    return zxids
            else:
                since = time.monotonic() if quiet else None
            seen = zxids
            time.sleep(0.1)
        raise AssertionError(f"not quiet within {timeout} s: leader {self.leader()}, zxids "
                             f"{ {s: hex(z) if z is not None else None for s, z in seen.items()} }")
