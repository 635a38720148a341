"""The embedded ensemble's link proxy over real loopback sockets: forwarding, the election
address rewrite, isolate/heal, down/up.

Nothing sleeps: every wait is for bytes, a connection or a close the code under test produces,
bounded by a timeout that only fails the test. What a cut link must *not* deliver is checked
after heal, when the broken connection has been reset: everything the far side read before the
reset must not hold the dropped bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from zkserver.embedded.linkproxy import HOST, Link, LinkProxy
from zkserver.proto.election_codec import PROTOCOL_VERSION_V2, InitialMessage, encode_frame

WAIT = 10.0
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def run(coro: Callable[[], Awaitable[None]], loop_kind: str = "asyncio") -> None:
    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(coro(), 60))


class Member:
    """A stand-in for a member's real port: records every connection it accepts."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[Conn] = asyncio.Queue()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def listen(self) -> Member:
        self.server = await asyncio.start_server(lambda r, w: self.accepted.put_nowait((r, w)), HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def next(self) -> Conn:
        return await asyncio.wait_for(self.accepted.get(), WAIT)

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


async def setup(kind: str = "quorum") -> tuple[LinkProxy, Member]:
    """A proxy for members 1 and 2 (both directions, both kinds) in front of member 2's `kind` port."""
    target = await Member().listen()
    proxy = LinkProxy(lambda myid, k: target.port if (myid, k) == (2, kind) else None)
    await proxy.open(Link(a, b, k) for a, b in ((1, 2), (2, 1)) for k in ("quorum", "election"))
    return proxy, target


async def dial(proxy: LinkProxy, src: int, dst: int, kind: str = "quorum") -> Conn:
    return await asyncio.wait_for(asyncio.open_connection(HOST, proxy.port(src, dst, kind)), WAIT)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the other side delivered before it closed or reset the connection."""
    chunks = []
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), WAIT)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def until(predicate: Callable[[], bool]) -> None:
    async def spin() -> None:
        while not predicate():
            await asyncio.sleep(0)
    await asyncio.wait_for(spin(), WAIT)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_bytes_flow_both_ways_and_a_close_is_passed_on(loop_kind: str) -> None:
    async def body() -> None:
        proxy, member2 = await setup()
        reader, writer = await dial(proxy, 1, 2)
        far_reader, far_writer = await member2.next()
        writer.write(b"ping")
        assert await asyncio.wait_for(far_reader.readexactly(4), WAIT) == b"ping"
        far_writer.write(b"pong")
        assert await asyncio.wait_for(reader.readexactly(4), WAIT) == b"pong"
        writer.close()
        assert await read_until_closed(far_reader) == b""
        await until(lambda: not proxy.pipes)
        far_writer.close()
        member2.close()
        await proxy.close()
    run(body, loop_kind)


def test_a_large_transfer_arrives_whole_under_flow_control() -> None:
    async def body() -> None:
        proxy, member2 = await setup()
        _, writer = await dial(proxy, 1, 2)
        far_reader, far_writer = await member2.next()
        blob = bytes(range(256)) * 40_000  # ~10 MB: well past every buffer's high-water mark
        writer.write(blob)
        writer.write_eof()
        assert await read_until_closed(far_reader) == blob
        far_writer.close()
        writer.close()
        member2.close()
        await proxy.close()
    run(body)


def test_the_election_dialler_is_named_at_the_proxy_for_the_way_back() -> None:
    async def body() -> None:
        proxy, member2 = await setup("election")
        back = proxy.port(2, 1, "election")
        for message in (InitialMessage(1, (("127.0.0.1", 4001),)),
                        InitialMessage(1, (("127.0.0.1", 4001), ("10.0.0.1", 4002)), PROTOCOL_VERSION_V2)):
            _, writer = await dial(proxy, 1, 2, "election")
            far_reader, far_writer = await member2.next()
            sent = message.encode() + encode_frame(b"vote")
            for i in range(len(sent)):  # a byte at a time: the rewrite waits for the whole message
                writer.write(sent[i:i + 1])
                await writer.drain()
            expected = InitialMessage(1, ((HOST, back),), message.protocol_version).encode() + encode_frame(b"vote")
            assert await asyncio.wait_for(far_reader.readexactly(len(expected)), WAIT) == expected
            writer.close()
            far_writer.close()
        # The pre-3.5 form names no address: passed on as it is.
        _, writer = await dial(proxy, 1, 2, "election")
        far_reader, far_writer = await member2.next()
        old = InitialMessage(7, (), None).encode() + encode_frame(b"x")
        writer.write(old)
        assert await asyncio.wait_for(far_reader.readexactly(len(old)), WAIT) == old
        writer.close()
        far_writer.close()
        member2.close()
        await proxy.close()
    run(body)


def test_isolate_drops_bytes_both_ways_and_heal_resets_what_lost_bytes() -> None:
    async def body() -> None:
        proxy, member2 = await setup()
        reader, writer = await dial(proxy, 1, 2)
        far_reader, far_writer = await member2.next()
        writer.write(b"before")
        assert await asyncio.wait_for(far_reader.readexactly(6), WAIT) == b"before"
        _, untouched = await dial(proxy, 1, 2)  # carries nothing while cut
        untouched_far_reader, untouched_far = await member2.next()
        proxy.isolate(2)
        writer.write(b"lost-1")
        far_writer.write(b"lost-2")
        await until(lambda: any(p.broken for p in proxy.pipes))
        # A connection opened during the cut is accepted and held, with no upstream.
        held_reader, held = await dial(proxy, 1, 2)
        held.write(b"lost-3")
        await until(lambda: sum(p.broken for p in proxy.pipes) == 2)
        proxy.heal(2)
        assert await read_until_closed(far_reader) == b""  # reset, without what was dropped
        assert await read_until_closed(reader) == b""
        assert await read_until_closed(held_reader) == b""
        assert member2.accepted.empty()  # the held connection never reached the member
        untouched.write(b"after")  # no byte lost on it: it carries on
        assert await asyncio.wait_for(untouched_far_reader.readexactly(5), WAIT) == b"after"
        for w in (writer, far_writer, held, untouched, untouched_far):
            w.close()
        member2.close()
        await proxy.close()
    run(body)


def test_a_close_on_a_cut_link_is_not_passed_on_until_heal() -> None:
    async def body() -> None:
        proxy, member2 = await setup()
        _, writer = await dial(proxy, 1, 2)
        far_reader, far_writer = await member2.next()
        proxy.isolate(1)
        writer.close()  # the dialler goes away during the cut
        await until(lambda: any(p.dialler.lost for p in proxy.pipes))
        far_writer.write(b"into-the-void")
        proxy.heal(1)
        assert await read_until_closed(far_reader) == b""
        far_writer.close()
        member2.close()
        await proxy.close()
    run(body)


def test_down_resets_and_refuses_then_up_serves_again() -> None:
    async def body() -> None:
        proxy, member2 = await setup()
        reader, writer = await dial(proxy, 1, 2)
        far_reader, far_writer = await member2.next()
        proxy.set_down(2)
        assert await read_until_closed(reader) == b""
        assert await read_until_closed(far_reader) == b""
        refused_reader, refused = await dial(proxy, 1, 2)
        assert await read_until_closed(refused_reader) == b""
        assert member2.accepted.empty()
        proxy.set_up(2)
        _, again = await dial(proxy, 1, 2)
        again_far_reader, again_far = await member2.next()
        again.write(b"hi")
        assert await asyncio.wait_for(again_far_reader.readexactly(2), WAIT) == b"hi"
        for w in (writer, far_writer, refused, again, again_far):
            w.close()
        member2.close()
        await proxy.close()
    run(body)


def test_down_behind_a_cut_reaches_only_the_members_own_side() -> None:
    """A member that crashes while cut off: its peers must still hear nothing until heal."""
    async def body() -> None:
        proxy, member2 = await setup()
        reader, writer = await dial(proxy, 1, 2)  # member 1 is the dialler here
        far_reader, far_writer = await member2.next()
        proxy.isolate(1)
        proxy.set_down(1)
        assert await read_until_closed(reader) == b""  # member 1's own leg: reset
        far_writer.write(b"still-unanswered")
        pipe = next(iter(proxy.pipes))
        assert pipe.target is not None and not pipe.target.lost
        proxy.set_up(1)
        proxy.heal(1)
        assert await read_until_closed(far_reader) == b""
        for w in (writer, far_writer):
            w.close()
        member2.close()
        await proxy.close()
    run(body)


def test_no_upstream_means_the_dialler_is_reset() -> None:
    async def body() -> None:
        proxy, member2 = await setup()
        member2.close()
        await member2.server.wait_closed()  # type: ignore[union-attr]
        reader, writer = await dial(proxy, 1, 2)
        assert await read_until_closed(reader) == b""
        writer.close()
        await proxy.close()
    run(body)
