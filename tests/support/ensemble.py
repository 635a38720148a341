"""Mixed election ensembles for tests: Apache 3.8 members as processes, ours in the test's loop.

Apache members are real QuorumPeerMain processes (held by PID, logging through log4j to their
log file). Our member is an ElectionRunner (FLE over ElectionNet, no Zab) on the test's event
loop, built from the same server lines. Helpers read what Apache decided without trusting our
own code: a *probe* connects to an Apache election port as an unknown sid (FLE answers a
non-voter at once with its state and current vote), and a *quorum sink* listens on our quorum
port and records the FOLLOWERINFO packets of Apache members that decided to follow us.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port
from tests.support.servers import APACHE_CLASSPATH, APACHE_DEFAULT_PROPS, APACHE_JVM_OPTS, APACHE_MAIN, RunningServer
from zkserver.config import load_config
from zkserver.proto.election_codec import ElectionStreamDecoder, InitialMessage, Notification, encode_frame
from zkserver.shell.election_runner import ElectionRunner

TICK_MS = 200
INIT_LIMIT = 50  # 10 s: an Apache follower waits this long on a leader that never answers
PROBE_SID = 99


@dataclass(frozen=True)
class Seat:
    sid: int
    quorum_port: int = field(default_factory=free_port)
    election_port: int = field(default_factory=free_port)
    client_port: int = field(default_factory=free_port)

    def line(self) -> str:
        return f"server.{self.sid}=127.0.0.1:{self.quorum_port}:{self.election_port}"


def write_member(workdir: Path, seat: Seat, seats: list[Seat], epoch: int | None = None) -> Path:
    """zoo.cfg, myid and (optionally) the epoch files of one member; returns the cfg path."""
    data = workdir / f"m{seat.sid}"
    (data / "version-2").mkdir(parents=True, exist_ok=True)
    (data / "myid").write_text(str(seat.sid))
    if epoch is not None:  # Apache reads both; acceptedEpoch must not be below currentEpoch
        (data / "version-2" / "currentEpoch").write_text(str(epoch))
        (data / "version-2" / "acceptedEpoch").write_text(str(epoch))
    cfg = data / "zoo.cfg"
    cfg.write_text("\n".join([
        f"tickTime={TICK_MS}", f"initLimit={INIT_LIMIT}", "syncLimit=5", f"dataDir={data}",
        f"clientPort={seat.client_port}", "clientPortAddress=127.0.0.1", "admin.enableServer=false",
        "4lw.commands.whitelist=*", *(s.line() for s in seats)]) + "\n")
    return cfg


def start_apache_member(workdir: Path, seat: Seat, seats: list[Seat], epoch: int | None = None) -> RunningServer:
    cfg = write_member(workdir, seat, seats, epoch)
    flags = [f"-D{k}={v}" for k, v in APACHE_DEFAULT_PROPS.items()]
    server = RunningServer(kind="apache", argv=["java", *APACHE_JVM_OPTS, *flags, "-cp", APACHE_CLASSPATH,
                                                APACHE_MAIN, str(cfg)],
                           cwd=cfg.parent, cfg_path=cfg, data_dir=cfg.parent, port=seat.client_port,
                           log_path=cfg.parent / "apache.log")
    server.launch()
    return server


def our_member(workdir: Path, seat: Seat, seats: list[Seat]) -> ElectionRunner:
    return ElectionRunner.from_config(load_config(str(write_member(workdir, seat, seats))))


def _log_has(server: RunningServer, text: str) -> str | None:
    log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    if text in log:
        return log
    if not server.running:
        raise AssertionError(f"Apache member exited ({server.returncode}):\n{server.log_tail()}")
    return None


async def wait_for_log(server: RunningServer, text: str, timeout: float = 30.0) -> str:
    """Poll the member's log (a file another process writes) until it contains `text`; the
    event loop keeps running our member meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = _log_has(server, text)
        if log is not None:
            return log
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log after {timeout} s:\n{server.log_tail()}")


async def probe(seat: Seat, timeout: float = 10.0) -> Notification:
    """Ask an Apache member for its state and vote: as a non-voter, it answers at once."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", seat.election_port), timeout)
    try:
        hello = InitialMessage(PROBE_SID, (("127.0.0.1", free_port()),)).encode()
        writer.write(hello + encode_frame(Notification(0, PROBE_SID, 0, 0, 0).encode()))
        decoder = ElectionStreamDecoder(handshake=False)
        while True:
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                raise AssertionError("the Apache member closed the probe connection")
            for frame in decoder.feed(data):
                return Notification.decode(frame)  # type: ignore[arg-type]
    finally:
        writer.close()


class QuorumSink:
    """Listens on our quorum port and records the sid in each learner's first packet."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.learners: list[int] = []
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.changed = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._learner, "127.0.0.1", self.port)

    async def _learner(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)  # held open and never answered: the learner waits initLimit
        # QuorumPacket{int type, long zxid, buffer data}; FOLLOWERINFO (11) data = LearnerInfo{long sid, ...}
        kind, _zxid, length = struct.unpack(">iqi", await reader.readexactly(16))
        data = await reader.readexactly(length)
        assert kind == 11, f"expected FOLLOWERINFO, got packet type {kind}"
        self.learners.append(struct.unpack(">q", data[:8])[0])
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[int]:
        async def until() -> None:
            while len(self.learners) < count:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), timeout)
        return self.learners

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
