"""The simulated network keeps streams.py's contract under every fault it can inject.

Each test builds a network on a fresh scheduler, opens streams between named endpoints with
recording handlers, and runs virtual time; what the handlers saw (and when) is checked
against the contract: bytes in order whatever the chunking, nothing after on_close, refused
and timed-out connects, partitions that stall and then deliver, resets that drop, crashes
that go silent, datagrams in order or lost.
"""

from __future__ import annotations

import pytest

from zkserver.sim.network import LinkProfile, NetConfig, Network
from zkserver.sim.scheduler import Scheduler
from zkserver.sim.trace import Trace


class Rec:
    """A stream handler that records every callback with its virtual time."""

    def __init__(self, sched: Scheduler, name: str = ""):
        self.sched = sched
        self.name = name
        self.events: list[tuple[int, str, bytes]] = []
        self.stream = None

    def on_open(self) -> None:
        self.events.append((self.sched.now, "open", b""))

    def on_data(self, data: bytes) -> None:
        assert self.closed_at is None, "on_data after on_close"
        self.events.append((self.sched.now, "data", data))

    def on_close(self) -> None:
        assert self.closed_at is None, "on_close twice"
        self.events.append((self.sched.now, "close", b""))

    @property
    def data(self) -> bytes:
        return b"".join(d for _, kind, d in self.events if kind == "data")

    @property
    def kinds(self) -> list[str]:
        return [k for _, k, _ in self.events]

    @property
    def closed_at(self) -> int | None:
        return next((t for t, k, _ in self.events if k == "close"), None)

    @property
    def opened(self) -> bool:
        return "open" in self.kinds


def make(seed: int = 1, **cfg) -> tuple[Scheduler, Network]:
    sched = Scheduler(seed)
    link = cfg.pop("link", LinkProfile(base_ms=2, jitter_ms=3))
    net = Network(sched, Trace(lambda: sched.now), NetConfig(link=link, **cfg))
    return sched, net


def serve(net: Network, sched: Scheduler, endpoint: str = "m1", port: str = "client") -> list[Rec]:
    """Listen on endpoint:port; every accepted stream gets a recorder (returned list)."""
    accepted: list[Rec] = []

    def accept(peer: str, stream) -> Rec:
        rec = Rec(sched, peer)
        rec.stream = stream
        accepted.append(rec)
        return rec

    net.listen(endpoint, port, accept)
    return accepted


def dial(net: Network, sched: Scheduler, src: str = "c1", dst: str = "m1", port: str = "client") -> Rec:
    rec = Rec(sched, src)
    rec.stream = net.connect(src, dst, port, rec)
    return rec


# ---------------------------------------------------------------- ordering and framing


def test_bytes_arrive_in_order_whatever_the_chunking_and_merging() -> None:
    sched, net = make(chunk_p=1.0, max_chunks=5, merge_p=0.5,
                      link=LinkProfile(base_ms=1, jitter_ms=20, tail_p=0.2, tail_ms=30))
    server = serve(net, sched)
    client = dial(net, sched)
    sent = b""
    for i in range(300):
        msg = f"<{i}:{'x' * (i % 17)}>".encode()
        sent += msg
        client.stream.send(msg)
        sched.run_until(sched.now + i % 3)
    sched.run_until(sched.now + 10_000)
    assert server[0].data == sent
    deliveries = [d for _, k, d in server[0].events if k == "data"]
    # chunked: some delivery is not a whole message; merged: some carries more than one
    assert any(not (d.startswith(b"<") and d.endswith(b">")) for d in deliveries)
    assert any(d.count(b"<") > 1 for d in deliveries)


def test_bytes_sent_before_the_connection_opens_follow_it_and_replies_follow_open() -> None:
    sched, net = make()
    server: list[Rec] = []
    net.listen("m1", "client", lambda peer, stream: _greeter(server, sched, stream))
    client = dial(net, sched)
    client.stream.send(b"early")
    sched.run_until(1000)
    assert server[0].kinds[0] == "open" and server[0].data == b"early"
    assert client.kinds[:2] == ["open", "data"] and client.data == b"hello"


def _greeter(server: list[Rec], sched: Scheduler, stream) -> Rec:
    """A server end that says hello as soon as it is accepted."""
    class Greeter(Rec):
        def on_open(self) -> None:
            super().on_open()
            stream.send(b"hello")

    rec = Greeter(sched)
    rec.stream = stream
    server.append(rec)
    return rec


# ---------------------------------------------------------------- connecting


def test_a_connect_to_nothing_listening_is_refused_after_a_round_trip() -> None:
    sched, net = make()
    client = dial(net, sched, dst="m1")
    sched.run_until(5000)
    assert client.kinds == ["close"]
    assert client.closed_at < 100  # a RST, not the connect timeout


def test_a_connect_to_a_crashed_process_is_refused_and_to_a_dark_machine_times_out() -> None:
    sched, net = make(connect_timeout_ms=700)
    serve(net, sched, "m1")
    serve(net, sched, "m2")
    net.crash("m1", power=False)
    net.crash("m2", power=True)
    to_m1, to_m2 = dial(net, sched, "c1", "m1"), dial(net, sched, "c2", "m2")
    sched.run_until(5000)
    assert to_m1.kinds == ["close"] and to_m1.closed_at < 100
    assert to_m2.kinds == ["close"] and to_m2.closed_at == 700


def test_a_connect_into_a_partition_times_out_without_reaching_the_listener() -> None:
    sched, net = make(connect_timeout_ms=500)
    server = serve(net, sched)
    net.block([("c1", "m1")])
    client = dial(net, sched)
    sched.run_until(5000)
    assert client.kinds == ["close"] and client.closed_at == 500
    assert server == []


def test_an_accept_callback_may_refuse() -> None:
    sched, net = make()
    net.listen("m1", "client", lambda peer, stream: None)
    client = dial(net, sched)
    sched.run_until(5000)
    assert client.kinds == ["close"]


# ---------------------------------------------------------------- partitions


def test_bytes_wait_in_a_partition_and_arrive_in_order_after_it_heals() -> None:
    sched, net = make()
    server = serve(net, sched)
    client = dial(net, sched)
    sched.run_until(100)
    token = net.block([("c1", "m1"), ("m1", "c1")])
    for i in range(10):
        client.stream.send(b"%d," % i)
    sched.run_until(5000)
    assert server[0].data == b""
    net.unblock(token)
    sched.run_until(5100)
    assert server[0].data == b"".join(b"%d," % i for i in range(10))


def test_a_one_way_partition_blocks_one_direction_only() -> None:
    sched, net = make()
    server = serve(net, sched)
    client = dial(net, sched)
    sched.run_until(100)
    net.block([("m1", "c1")])
    client.stream.send(b"up")
    server[0].stream.send(b"down")
    sched.run_until(2000)
    assert server[0].data == b"up"
    assert client.data == b""


def test_overlapping_partitions_end_separately() -> None:
    sched, net = make()
    server = serve(net, sched)
    client = dial(net, sched)
    sched.run_until(100)
    first = net.block([("c1", "m1")])
    second = net.block([("c1", "m1"), ("c2", "m1")])
    client.stream.send(b"x")
    net.unblock(first)
    sched.run_until(2000)
    assert server[0].data == b"", "the second partition still holds the link"
    net.unblock(second)
    sched.run_until(3000)
    assert server[0].data == b"x"


@pytest.mark.parametrize("hold", ["slow link", "heavy tail"])
def test_the_heal_delivers_at_once_what_a_slow_link_or_a_heavy_tail_held_back(hold: str) -> None:
    sched, net = make(link=LinkProfile(base_ms=2, jitter_ms=1))
    server = serve(net, sched)
    client = dial(net, sched)
    sched.run_until(100)
    if hold == "slow link":
        net.set_slow("c1", "m1", 10_000)
    else:
        net.set_profile("c1", "m1", LinkProfile(base_ms=2, jitter_ms=1, tail_p=1.0, tail_ms=5000))
    client.stream.send(b"late")
    client.stream.send(b" and later")
    sched.run_until(sched.now + 1000)
    assert server[0].data == b""
    net.heal()
    sched.run_until(sched.now + 50)
    assert server[0].data == b"late and later"


# ---------------------------------------------------------------- closing, resets, crashes


def test_a_graceful_close_delivers_what_was_sent_and_ends_the_closer_s_callbacks() -> None:
    sched, net = make()
    server = serve(net, sched)
    client = dial(net, sched)
    sched.run_until(100)
    client.stream.send(b"last words")
    client.stream.close()
    server[0].stream.send(b"too late")
    sched.run_until(2000)
    assert server[0].data == b"last words" and server[0].kinds[-1] == "close"
    assert client.kinds == ["open"], "no callbacks after our own close"


def test_a_reset_closes_both_ends_and_drops_undelivered_bytes() -> None:
    sched, net = make(link=LinkProfile(base_ms=50, jitter_ms=0))
    server = serve(net, sched)
    client = dial(net, sched)
    sched.run_until(1000)
    client.stream.send(b"never")
    server[0].stream.send(b"never either")
    [conn] = net.connections()
    net.reset(conn)
    client.stream.send(b"ignored")
    sched.run_until(2000)
    assert server[0].data == b"" and client.data == b""
    assert server[0].kinds[-1] == "close" and client.kinds[-1] == "close"
    assert net.connections() == []


def test_a_killed_process_s_peer_gets_what_was_sent_then_a_close() -> None:
    sched, net = make()
    server = serve(net, sched)
    client = dial(net, sched)
    sched.run_until(100)
    server[0].stream.send(b"flushed by the kernel")
    net.crash("m1", power=False)
    client.stream.send(b"to nobody")
    sched.run_until(2000)
    assert client.data == b"flushed by the kernel" and client.kinds[-1] == "close"
    assert server[0].data == b"", "a dead process gets no callbacks"


def test_after_a_power_cut_the_peer_hears_nothing_until_the_machine_is_back() -> None:
    sched, net = make()
    server = serve(net, sched)
    client = dial(net, sched)
    sched.run_until(100)
    server[0].stream.send(b"lost with the power")
    net.crash("m1", power=True)
    client.stream.send(b"into the dark")
    sched.run_until(5000)
    assert client.kinds == ["open"], "silence: only the client's own timeout can notice"
    net.revive("m1")
    client.stream.send(b"hello again")
    sched.run_until(6000)
    assert client.kinds == ["open", "close"], "the rebooted machine answers with a RST"
    assert server[0].data == b""


# ---------------------------------------------------------------- datagrams


def test_datagrams_arrive_in_order_per_link() -> None:
    sched, net = make(link=LinkProfile(base_ms=1, jitter_ms=50))
    got: list[tuple[str, bytes]] = []
    net.on_message("m2", "election", lambda src, payload: got.append((src, payload)))
    for i in range(100):
        net.send_message("m1", "m2", "election", b"%d" % i)
    sched.run_until(100_000)
    assert got == [("m1", b"%d" % i) for i in range(100)]


@pytest.mark.parametrize("fault", ["loss", "partition", "no receiver", "down"])
def test_datagrams_are_dropped(fault: str) -> None:
    sched, net = make(link=LinkProfile(base_ms=1, jitter_ms=1, loss=1.0 if fault == "loss" else 0.0))
    got: list[bytes] = []
    if fault != "no receiver":
        net.on_message("m2", "election", lambda src, payload: got.append(payload))
    if fault == "partition":
        net.block([("m1", "m2")])
    if fault == "down":
        net.crash("m2", power=False)
    net.send_message("m1", "m2", "election", b"x")
    sched.run_until(1000)
    assert got == []
    assert net.stats["dropped"] == 1


def test_the_heal_ends_datagram_loss() -> None:
    """Seed 76 (3 members, msg_loss 0.3): a member LOOKING after the heal lost its notification
    rounds to the loss, backed off, and was still LOOKING when the liveness phase ended."""
    sched, net = make(link=LinkProfile(base_ms=1, jitter_ms=1, loss=1.0))
    got: list[bytes] = []
    net.on_message("m2", "election", lambda src, payload: got.append(payload))
    net.send_message("m1", "m2", "election", b"lost")  # a link that exists before the heal
    net.heal()
    net.send_message("m1", "m2", "election", b"x")
    net.send_message("m3", "m2", "election", b"y")  # and one made after it
    sched.run_until(1000)
    assert got == [b"x", b"y"]


@pytest.mark.parametrize("hold", ["slow link", "heavy tail"])
def test_the_heal_delivers_at_once_the_datagrams_a_slow_link_or_a_heavy_tail_held_back(hold: str) -> None:
    """Seed 106 (3 members): a notification held for seconds by a heavy tail before the heal
    held up every later one on its link (they keep their order), and a member stayed LOOKING."""
    sched, net = make(link=LinkProfile(base_ms=2, jitter_ms=1))
    got: list[bytes] = []
    net.on_message("m2", "election", lambda src, payload: got.append(payload))
    if hold == "slow link":
        net.set_slow("m1", "m2", 10_000)
    else:
        net.set_profile("m1", "m2", LinkProfile(base_ms=2, jitter_ms=1, tail_p=1.0, tail_ms=5000))
    for payload in (b"a", b"b"):
        net.send_message("m1", "m2", "election", payload)
    sched.run_until(1000)
    assert got == []
    net.heal()
    net.send_message("m1", "m2", "election", b"c")
    sched.run_until(sched.now + 50)
    assert got == [b"a", b"b", b"c"]


def test_a_partition_that_starts_in_flight_drops_the_datagram() -> None:
    sched, net = make(link=LinkProfile(base_ms=100, jitter_ms=0))
    got: list[bytes] = []
    net.on_message("m2", "election", lambda src, payload: got.append(payload))
    net.send_message("m1", "m2", "election", b"x")
    sched.run_until(50)
    net.block([("m1", "m2")])
    sched.run_until(1000)
    assert got == []


# ---------------------------------------------------------------- determinism


def _busy_network(seed: int) -> str:
    sched, net = make(seed, chunk_p=0.5, merge_p=0.5, link=LinkProfile(base_ms=1, jitter_ms=10, tail_p=0.1))
    server = serve(net, sched)
    clients = [dial(net, sched, f"c{i}") for i in range(5)]
    for step in range(200):
        c = clients[step % 5]
        c.stream.send(b"m%d" % step)
        if step == 100:
            net.reset(net.connections()[2])
        sched.run_until(sched.now + 3)
    sched.run_until(sched.now + 5000)
    assert server
    return net.trace.digest()


def test_the_same_seed_gives_the_same_trace() -> None:
    assert _busy_network(5) == _busy_network(5)
    assert _busy_network(5) != _busy_network(6)
