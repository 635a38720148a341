"""Our Fast Leader Election against live Apache ZooKeeper 3.8 members, on the real wire.

Our member is FLE + ElectionNet only (no Zab), so every check happens before an Apache member
would need our quorum port to work: our own decision, Apache's decision read through a probe
(a non-voter's question, which FLE answers at once) or through the FOLLOWERINFO an Apache
follower sends to our quorum port (a sink that accepts and never answers), Apache's `srvr`
once two Apache members run Zab between them, and Apache's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from tests.support.ensemble import (
    PROBE_SID,
    QuorumSink,
    Seat,
    our_member,
    probe,
    start_apache_member,
    wait_for_log,
)
from tests.support.servers import RunningServer, skip_if_no_apache

from zkserver.proto.election_codec import Notification, ServerState
from zkserver.shell.election_runner import ElectionRunner

pytestmark = pytest.mark.apache
WAIT = 40.0


@pytest.fixture
def apache(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start Apache members; every one is stopped by PID at the end."""
    skip_if_no_apache()
    started: list[RunningServer] = []

    def start(seat: Seat, seats: list[Seat], epoch: int | None = None) -> RunningServer:
        server = start_apache_member(tmp_path, seat, seats, epoch)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 120))


def record_frames(runner: ElectionRunner) -> list[tuple[int, bytes]]:
    """Keep a copy of every frame our member receives, before the runner decodes it."""
    frames: list[tuple[int, bytes]] = []
    assert runner.net is not None
    deliver = runner.net.on_message

    def tap(sid: int, payload: bytes) -> None:
        frames.append((sid, payload))
        deliver(sid, payload)

    runner.net.on_message = tap
    return frames


@contextlib.asynccontextmanager
async def ours(runner: ElectionRunner, zxid: int = 0, epoch: int = 0):  # type: ignore[no-untyped-def]
    assert runner.net is not None
    await runner.net.start()
    runner.start(zxid, epoch)
    try:
        yield runner
    finally:
        runner.close()


async def decided(runner: ElectionRunner) -> tuple[ServerState, int, int]:
    state, vote = await asyncio.wait_for(runner.decided(), WAIT)
    return state, vote.leader, vote.election_epoch


def srvr_mode(server: RunningServer) -> str:
    for line in server.four_letter("srvr").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return "not serving"


async def wait_mode(server: RunningServer, mode: str) -> None:
    async def until() -> None:
        while True:
            with contextlib.suppress(OSError):
                if srvr_mode(server) == mode:
                    return
            await asyncio.sleep(0.1)
    await asyncio.wait_for(until(), WAIT)


# ----------------------------------------------------------------------------------------
# Start order matters: two members of three are a quorum, so whoever is up first elects.
# Each test starts the members in the order that puts all three in the first round.

LISTENING = "New election. My id ="


async def until_connected(runner: ElectionRunner, expected: dict[int, str]) -> None:
    async def spin() -> None:
        while runner.net is None or runner.net.connections() != expected:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(spin(), WAIT)


def test_our_sid_in_the_middle_connection_rule_bytes_and_first_round(
        tmp_path: Path, apache: Callable[..., RunningServer]) -> None:
    """Apache 3 first, then ours (2), then Apache 1: (a) we keep the connection 3 dials to us
    and the one we dial to 1 (after 1 dialled us and we dropped it); (b) Apache's frames are
    exactly 44 + config bytes carrying our own config string, and Apache reads ours (its log);
    (c) everyone settles on 3 in round 1."""
    seats = [Seat(1), Seat(2), Seat(3)]
    runner = our_member(tmp_path / "ours", seats[1], seats)
    frames = record_frames(runner)
    servers: dict[int, RunningServer] = {}

    async def body() -> None:
        servers[3] = apache(seats[2], seats)
        await wait_for_log(servers[3], LISTENING)
        async with ours(runner):
            assert await decided(runner) == (ServerState.FOLLOWING, 3, 1)
            servers[1] = apache(seats[0], seats)
            await until_connected(runner, {1: "dialled", 3: "accepted"})
            await wait_mode(servers[3], "leader")
            await wait_mode(servers[1], "follower")
            for seat, state in ((seats[0], ServerState.FOLLOWING), (seats[2], ServerState.LEADING)):
                answer = await probe(seat)
                assert (answer.state, answer.leader, answer.election_epoch) == (state, 3, 1)
            for server in servers.values():
                log = await wait_for_log(server, "n.sid:2, n.state:LOOKING")
                assert "message format version:0x2" in log
                assert "processing config received from 2" not in log  # it parsed our config string
                assert "malformed response message sent by sid=2" not in log
    run(body)
    config = runner.election.verifier.config_bytes()
    assert {sid for sid, _ in frames} == {1, 3}
    for sid, payload in frames:
        assert len(payload) == 44 + len(config), (sid, payload)
        assert struct.unpack(">ii", payload[36:44]) == (2, len(config))
        assert payload[44:] == config  # Apache's QuorumVerifier string, byte for byte ours


def test_our_sid_largest_apache_follows_us(tmp_path: Path, apache: Callable[..., RunningServer]) -> None:
    """Ours (3) first, then Apache 1 and 2: (a) both Apache sids are smaller: they dial, we
    drop and dial back, so we dialled every connection; (c) both Apache members follow us in
    round 1: each connects to our quorum port with FOLLOWERINFO, and says so to a probe."""
    seats = [Seat(1), Seat(2), Seat(3)]
    runner = our_member(tmp_path / "ours", seats[2], seats)

    async def body() -> None:
        sink = QuorumSink(seats[2].quorum_port)
        await sink.start()
        async with ours(runner):
            first = apache(seats[0], seats)
            assert await decided(runner) == (ServerState.LEADING, 3, 1)
            await wait_for_log(first, "FOLLOWING")
            apache(seats[1], seats)
            assert sorted(await sink.wait_for(2)) == [1, 2]
            await until_connected(runner, {1: "dialled", 2: "dialled"})
            for seat in seats[:2]:
                answer = await probe(seat)
                assert (answer.state, answer.leader, answer.election_epoch) == (ServerState.FOLLOWING, 3, 1)
        sink.close()
    run(body)


def test_our_sid_smallest_but_highest_epoch_wins(tmp_path: Path, apache: Callable[..., RunningServer]) -> None:
    """Ours (1, peer epoch 5) first, then Apache 2 and 3: (a) both Apache sids are larger: we
    keep what they dial; (c) our epoch beats their sids: they follow us in round 1."""
    seats = [Seat(1), Seat(2), Seat(3)]
    runner = our_member(tmp_path / "ours", seats[0], seats)

    async def body() -> None:
        sink = QuorumSink(seats[0].quorum_port)
        await sink.start()
        async with ours(runner, zxid=5 << 32, epoch=5):
            apache(seats[1], seats)
            apache(seats[2], seats)
            assert await decided(runner) == (ServerState.LEADING, 1, 1)
            assert sorted(await sink.wait_for(2)) == [2, 3]
            await until_connected(runner, {2: "accepted", 3: "accepted"})
            for seat in seats[1:]:
                answer = await probe(seat)
                assert (answer.state, answer.leader, answer.peer_epoch) == (ServerState.FOLLOWING, 1, 5)
        sink.close()
    run(body)


def test_apache_with_the_highest_epoch_leads(tmp_path: Path, apache: Callable[..., RunningServer]) -> None:
    """Apache 1 (currentEpoch 3 on disk) first, then ours (3), then Apache 2: (c) its epoch
    beats our larger sid; we follow it in round 1 and the two Apache members run Zab."""
    seats = [Seat(1), Seat(2), Seat(3)]
    runner = our_member(tmp_path / "ours", seats[2], seats)

    async def body() -> None:
        one = apache(seats[0], seats, epoch=3)
        await wait_for_log(one, LISTENING)
        async with ours(runner):
            assert await decided(runner) == (ServerState.FOLLOWING, 1, 1)
            assert runner.election.current_vote is not None and runner.election.current_vote.peer_epoch == 3
            two = apache(seats[1], seats)
            await wait_mode(one, "leader")
            await wait_mode(two, "follower")
    run(body)


def test_late_joiner_follows_the_apache_leader(tmp_path: Path, apache: Callable[..., RunningServer]) -> None:
    """(d) Apache 1 and 2 elect 2 and sync (epoch 1); we start afterwards with the largest sid
    and still end FOLLOWING 2, from their FOLLOWING/LEADING answers (peer epoch 1)."""
    seats = [Seat(1), Seat(2), Seat(3)]
    runner = our_member(tmp_path / "ours", seats[2], seats)

    async def body() -> None:
        one, two = apache(seats[0], seats), apache(seats[1], seats)
        await wait_mode(two, "leader")
        await wait_mode(one, "follower")
        async with ours(runner):
            state, vote = await asyncio.wait_for(runner.decided(), WAIT)
            assert (state, vote.leader, vote.peer_epoch) == (ServerState.FOLLOWING, 2, 1)
            assert runner.election.logical_clock == vote.election_epoch  # took their round
        assert srvr_mode(two) == "leader"  # nothing we did disturbed the running ensemble
    run(body)


def test_bad_bytes_to_our_port_close_only_that_connection(
        tmp_path: Path, apache: Callable[..., RunningServer]) -> None:
    """(e) malformed handshakes and frames sent to our election port while Apache members are
    connected to it: each bad connection is closed; the others and the election go on."""
    seats = [Seat(1), Seat(2), Seat(3)]
    runner = our_member(tmp_path / "ours", seats[2], seats)
    good_hello = struct.pack(">qqi", -65536, 7, 11) + b"127.0.0.1:1"
    bad = [
        struct.pack(">q", -5) + bytes(20),  # unknown protocol version
        struct.pack(">qqi", -65536, 7, 5000) + bytes(10),  # address longer than 2048
        struct.pack(">qqi", -65536, 7, 15) + b"127.0.0.1:99999",  # port out of range
        good_hello + struct.pack(">i", -1),  # frame length
        good_hello + struct.pack(">i", 600000),  # frame over 512 KiB
    ]

    async def body() -> None:
        sink = QuorumSink(seats[2].quorum_port)
        await sink.start()
        async with ours(runner):
            apache(seats[0], seats)
            apache(seats[1], seats)
            await until_connected(runner, {1: "dialled", 2: "dialled"})
            for data in bad:
                reader, writer = await asyncio.open_connection("127.0.0.1", seats[2].election_port)
                writer.write(data)
                await asyncio.wait_for(reader.read(), 10)  # EOF: we closed it
                assert reader.at_eof()
                writer.close()
            assert await decided(runner) == (ServerState.LEADING, 3, 1)
            assert sorted(await sink.wait_for(2)) == [1, 2]
            assert runner.net is not None and runner.net.connections() == {1: "dialled", 2: "dialled"}
        sink.close()
    run(body)


def test_apache_answers_a_non_voter_at_once(tmp_path: Path, apache: Callable[..., RunningServer]) -> None:
    """The probe the other tests rely on, checked on its own: a LOOKING Apache member (alone,
    no quorum) answers an unknown sid with LOOKING, its current vote and its round."""
    seats = [Seat(1), Seat(2), Seat(3)]

    async def body() -> None:
        one = apache(seats[0], seats)
        await wait_for_log(one, LISTENING)
        answer = await probe(seats[0])
        assert isinstance(answer, Notification)
        assert (answer.state, answer.leader) == (ServerState.LOOKING, 1)
        assert answer.election_epoch >= 1 and answer.version == 2
    run(body)
    assert PROBE_SID not in (1, 2, 3)
