"""Datadriven FLE scripts, in the style of etcd raft's interaction tests.

A script is a list of cases. Each case is one command line, a line `----`, and the output
the command must produce, ended by a blank line:

    start 1 zxid=0x0 epoch=0
    ----
    send 1->2 LOOKING leader=1 zxid=0x0 round=1 epoch=0

Commands (ids are server ids, numbers decimal or 0x hex):
    ensemble voters=1,2,3 [observers=4] [version=0] [groups=1:2:3/4:5:6] [weights=3:0,4:2]
             [oracle=0|1] [min=200] [max=60000]   new world with these members, no nodes yet
    oracle 0|1                                    what the oracle file says from now on
    node 1 2 3                                    an election object per member
    start <sid> [zxid=0x..] [epoch=N]             lookForLeader
    recv <sid> from=<sid> <STATE> leader= zxid= round= epoch= [version=N] [config=none|vN]
                                                  hand a notification to a node directly
    deliver [from=] [to=] [count=N]               deliver the matching messages in flight
    drop [from=] [to=]                            lose the matching messages in flight
    cut <a> <b> / heal                            lose everything a->b from now on / stop
    advance <ms>                                  move the clock, run the timers that are due
    stabilize [quiet] [within=ms]                 deliver / advance until nothing is due (or
                                                  only deadlines later than `within`)
    settle <sid> <STATE> [leader= zxid= round= epoch=]
    update-epoch <sid> <epoch>
    status [sid...]                               round, state, proposal, vote, deadline

Run with ZK_REWRITE=1 to write the actual output into the script (review it as a diff).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from zkserver.proto.election_codec import Notification, ServerState
from zkserver.quorum.election import ElectionSettings
from zkserver.quorum.votes import Vote

from .world import World, make_verifier


def _num(text: str) -> int:
    return int(text, 0)


def _ids(text: str) -> list[int]:
    return [_num(part) for part in text.split(",") if part]


def _args(words: list[str]) -> tuple[list[str], dict[str, str]]:
    bare = [w for w in words if "=" not in w]
    keyed = dict(w.split("=", 1) for w in words if "=" in w)
    return bare, keyed


class Runner:
    def __init__(self) -> None:
        self.world: World | None = None
        self.oracle = True

    @property
    def w(self) -> World:
        assert self.world is not None, "the script must start with 'ensemble'"
        return self.world

    def run(self, line: str) -> list[str]:
        command, *rest = shlex.split(line)
        bare, kw = _args(rest)
        handler = getattr(self, "do_" + command.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {command!r}")
        out = handler(bare, kw)
        return self.w.take_log() + (out or [])

    def do_ensemble(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        groups = {i + 1: tuple(_ids(g.replace(":", ","))) for i, g in enumerate(kw["groups"].split("/"))} \
            if "groups" in kw else None
        weights = {_num(a): _num(b) for a, b in (p.split(":") for p in kw["weights"].split(","))} \
            if "weights" in kw else None
        oracle = None
        if "oracle" in kw:
            self.oracle = kw["oracle"] == "1"
            oracle = lambda: self.oracle  # noqa: E731
        verifier = make_verifier(_ids(kw["voters"]), _ids(kw.get("observers", "")), _num(kw.get("version", "0")),
                                 groups, weights, oracle)
        settings = ElectionSettings(200, _num(kw.get("min", "200")), _num(kw.get("max", "60000")))
        self.world = World(verifier, settings)
        return []

    def do_oracle(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        self.oracle = bare[0] == "1"
        return []

    def do_node(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        for sid in bare:
            self.w.add(_num(sid))
        return []

    def do_start(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        self.w.start(_num(bare[0]), _num(kw.get("zxid", "0")), _num(kw.get("epoch", "0")))
        return []

    def do_recv(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        dst, state = _num(bare[0]), bare[1]
        config: bytes | None = self.w.verifier.config_bytes()
        if "config" in kw:
            config = None if kw["config"] == "none" else f"version={kw['config'][1:]}".encode()
        state_value = ServerState[state] if state in ServerState.__members__ else _num(state)
        n = Notification(int(state_value), _num(kw["leader"]), _num(kw["zxid"]), _num(kw["round"]),
                         _num(kw["epoch"]), _num(kw.get("version", "2")), config)
        self.w.inject(dst, _num(kw["from"]), n)
        return []

    def _select(self, kw: dict[str, str]) -> list:
        src = _num(kw["from"]) if "from" in kw else None
        dst = _num(kw["to"]) if "to" in kw else None
        wires = self.w.matching(src, dst)
        return wires[:_num(kw["count"])] if "count" in kw else wires

    def do_deliver(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        for wire in self._select(kw):
            self.w.deliver(wire)
        return []

    def do_drop(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        for wire in self._select(kw):
            self.w.drop(wire)
        return []

    def do_cut(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        self.w.cut.add((_num(bare[0]), _num(bare[1])))
        return []

    def do_heal(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        self.w.cut.clear()
        return []

    def do_advance(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        self.w.advance(_num(bare[0]))
        return []

    def do_stabilize(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        self.w.stabilize(within_ms=_num(kw.get("within", "60000")))
        if "quiet" in bare:
            return [line for line in self.w.take_log() if line.startswith("decide")]
        return []

    def do_settle(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        vote = None
        if "leader" in kw:
            vote = Vote(_num(kw["leader"]), _num(kw["zxid"]), _num(kw["round"]), _num(kw["epoch"]))
        self.w.nodes[_num(bare[0])].settle(ServerState[bare[1]], vote)
        return []

    def do_update_epoch(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        self.w.nodes[_num(bare[0])].update_peer_epoch(_num(bare[1]))
        return []

    def do_status(self, bare: list[str], kw: dict[str, str]) -> list[str]:
        sids = [_num(s) for s in bare] or sorted(self.w.nodes)
        out = []
        for sid in sids:
            n = self.w.nodes[sid]
            deadline = n.deadline()
            due = "-" if deadline is None else f"{deadline - self.w.now}ms"
            out.append(f"{sid} {n.state.name} {n.phase} round={n.logical_clock} proposal=({n.proposal}) "
                       f"vote=({n.current_vote}) due={due}")
        return out


def parse(text: str) -> list[tuple[list[str], list[str]]]:
    """[(the comment and command lines, expected output lines)] in file order."""
    cases: list[tuple[list[str], list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        head: list[str] = []
        while i < len(lines) and lines[i] != "----":
            if lines[i].strip() or head:
                head.append(lines[i])
            i += 1
        if i >= len(lines):
            if any(h.strip() and not h.startswith("#") for h in head):
                raise ValueError(f"a command without '----': {head}")
            break
        i += 1
        expected = []
        while i < len(lines) and lines[i].strip():
            expected.append(lines[i])
            i += 1
        cases.append((head, expected))
    return cases


def run_script(path: Path) -> None:
    """Run every case; compare, or rewrite the file with ZK_REWRITE=1."""
    runner = Runner()
    rewrite = os.environ.get("ZK_REWRITE") == "1"
    out_text: list[str] = []
    for head, expected in parse(path.read_text()):
        commands = [h for h in head if h.strip() and not h.startswith("#")]
        assert len(commands) == 1, f"{path.name}: one command per case, got {commands}"
        actual = runner.run(commands[0])
        out_text += [*head, "----", *actual, ""]
        if not rewrite:
            assert actual == expected, (
                f"{path.name}: {commands[0]}\n--- expected\n" + "\n".join(expected)
                + "\n--- actual\n" + "\n".join(actual))
    if rewrite:
        path.write_text("\n".join(out_text))
