"""FLE over real election connections in one process: ElectionRunner + ElectionNet members."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop
from tests.support.ports import free_port

from zkserver.config import PeerAddress, ServerSpec, load_config
from zkserver.proto.election_codec import Notification, ServerState
from zkserver.quorum.election import ElectionSettings, FastLeaderElection
from zkserver.quorum.verifier import QuorumMaj
from zkserver.shell.election_net import ElectionNet, ElectionNetSettings
from zkserver.shell.election_runner import ElectionRunner, election_addresses, oracle_file_reader

WAIT = 20.0


def ensemble(voters: list[int], observers: tuple[int, ...] = ()) -> QuorumMaj:
    specs = [ServerSpec(s, (PeerAddress("127.0.0.1", free_port(), free_port()),),
                        "observer" if s in observers else "participant") for s in [*voters, *observers]]
    return QuorumMaj(specs)


async def member(sid: int, verifier: QuorumMaj) -> ElectionRunner:
    runner = ElectionRunner(FastLeaderElection(sid, verifier, sid in verifier.voting, ElectionSettings()))
    peers = election_addresses(verifier)
    runner.attach(ElectionNet(sid, peers[sid], peers, runner.deliver, ElectionNetSettings(handshake_timeout_ms=2000)))
    await runner.net.start()  # type: ignore[union-attr]
    return runner


def run(loop_kind: str, coro: Callable[[], Awaitable[None]]) -> None:
    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(coro(), 60))


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_three_voters_and_an_observer_elect_over_sockets(loop_kind: str) -> None:
    async def body() -> None:
        verifier = ensemble([1, 2, 3], (4,))
        runners = {sid: await member(sid, verifier) for sid in (1, 2, 3, 4)}
        for sid, runner in runners.items():
            runner.start(0x100000000 | sid, 1)  # 4 has the largest zxid but is an observer
        decisions = {sid: await asyncio.wait_for(r.decided(), WAIT) for sid, r in runners.items()}
        assert {sid: (state, vote.leader) for sid, (state, vote) in decisions.items()} == {
            1: (ServerState.FOLLOWING, 3), 2: (ServerState.FOLLOWING, 3), 3: (ServerState.LEADING, 3),
            4: (ServerState.OBSERVING, 3)}
        for runner in runners.values():
            runner.close()
    run(loop_kind, body)


def test_a_late_joiner_follows_the_settled_leader() -> None:
    async def body() -> None:
        verifier = ensemble([1, 2, 3])
        first = {sid: await member(sid, verifier) for sid in (1, 2)}
        for runner in first.values():
            runner.start(0, 0)
        for runner in first.values():
            await asyncio.wait_for(runner.decided(), WAIT)
            runner.election.update_peer_epoch(1)
        late = await member(3, verifier)
        late.start(0x2ff, 0)  # a stale round 1 and a larger zxid: still follows 2
        state, vote = await asyncio.wait_for(late.decided(), WAIT)
        assert (state, vote.leader, vote.peer_epoch) == (ServerState.FOLLOWING, 2, 1)
        for runner in [*first.values(), late]:
            runner.close()
    run("asyncio", body)


def test_a_payload_that_is_not_a_notification_is_dropped_not_the_connection() -> None:
    async def body() -> None:
        verifier = ensemble([1, 2, 3])
        runners = {sid: await member(sid, verifier) for sid in (1, 2)}
        for runner in runners.values():
            runner.start(0, 0)
        for runner in runners.values():
            await asyncio.wait_for(runner.decided(), WAIT)
        net1, net2 = runners[1].net, runners[2].net
        assert net1 is not None and net2 is not None
        for count in (1, 2):
            net2.send(1, b"x" * 36)  # the 3.4.0 form: Apache skips it, and so do we

            async def dropped(n: int = count) -> None:
                while runners[1].dropped < n:
                    await asyncio.sleep(0)
            await asyncio.wait_for(dropped(), WAIT)
            assert net1.connections() == {2: "accepted"}  # the same connection carries on
        for runner in runners.values():
            runner.close()
    run("asyncio", body)


def test_from_config_wires_the_configured_member(tmp_path: Path) -> None:
    (tmp_path / "myid").write_text("2")
    ports = [free_port() for _ in range(6)]
    (tmp_path / "zoo.cfg").write_text(
        f"tickTime=100\ninitLimit=5\nsyncLimit=2\ndataDir={tmp_path}\nclientPort={free_port()}\n"
        + "".join(f"server.{i + 1}=127.0.0.1:{ports[2 * i]}:{ports[2 * i + 1]}\n" for i in range(3))
        + "fastleader.minNotificationInterval=50\n")
    cfg = load_config(str(tmp_path / "zoo.cfg"))
    runner = ElectionRunner.from_config(cfg)
    assert runner.election.my_sid == 2
    assert runner.election.settings.min_notification_interval_ms == 50
    assert runner.net.my_addresses == [("127.0.0.1", ports[3])]  # type: ignore[union-attr]
    assert runner.net.settings.handshake_timeout_ms == 200  # type: ignore[union-attr]
    refused = tmp_path / "tls.cfg"
    refused.write_text((tmp_path / "zoo.cfg").read_text() + "quorum.auth.enableSasl=true\n")
    with pytest.raises(Exception, match=r"quorum\.auth\.enableSasl: SASL on the quorum and election ports"):
        ElectionRunner.from_config(load_config(str(refused)))


def test_oracle_file_reader(tmp_path: Path) -> None:
    path = tmp_path / "oracle"
    ask = oracle_file_reader(str(path))
    assert ask() is False  # missing: no
    path.write_text("1\n")
    assert ask() is True
    path.write_text("0")
    assert ask() is False


def test_notification_from_the_net_is_what_the_election_sent() -> None:
    """The runner encodes the outbox with the 3.8 form (44 bytes + config)."""
    async def body() -> None:
        verifier = ensemble([1, 2])
        got: list[tuple[int, bytes]] = []
        peers = election_addresses(verifier)
        sink = ElectionNet(2, peers[2], peers, lambda sid, p: got.append((sid, p)))
        await sink.start()
        runner = await member(1, verifier)
        runner.start(7, 0)

        async def first() -> None:
            while not got:
                await asyncio.sleep(0)
        await asyncio.wait_for(first(), WAIT)
        sid, payload = got[0]
        assert sid == 1 and len(payload) == 44 + len(verifier.config_bytes())
        assert Notification.decode(payload) == Notification(0, 1, 7, 1, 0, 2, verifier.config_bytes())
        runner.close()
        sink.close()
    run("asyncio", body)
