"""Operations only the Java client sends, run through ZkDriver against Apache and zkserver.

Every scenario is a ZkDriver script (see tests/support/javaclient.py for the language) plus a
check of what Apache ZooKeeper 3.8 answers. ``test_apache_behaviour`` runs the check against
Apache alone (it documents the reference and keeps the scripts honest);
``test_zkserver_matches_apache`` runs the script against both servers and compares the outputs
after normalizing wall-clock times and session ids — zxids, versions, paths, error codes and the
order of watch events must be identical.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.javaclient import (
    all_ok,
    compare_runs,
    events_of,
    normalize,
    require_java,
    run_script,
    step,
)
from tests.support.servers import RunningServer, start_server

Out = list[dict[str, Any]]


@pytest.fixture
def java_ready() -> None:
    require_java()


def needs_java(test: Callable) -> Callable:
    """Marks java + apache; java_ready runs first, so a machine without Java skips (or, under
    CI=true, fails) before any server is started."""
    for mark in (pytest.mark.java, pytest.mark.apache, pytest.mark.usefixtures("java_ready")):
        test = mark(test)
    return test


@dataclass(frozen=True)
class Scenario:
    name: str
    script: tuple[str, ...]
    check: Callable[[Out], None]
    cfg: dict[str, str] | None = None
    timeout: float = 60.0


def ev(event: str, path: str | None, watcher: str = "default", state: str = "SyncConnected") -> tuple:
    return (event, state, path, watcher)


def err(out: Out, text: str, nth: int = 0) -> str | None:
    """The error name of a command (None when it succeeded)."""
    return step(out, text, nth).get("error")


# --------------------------------------------------------------------------- TTL


TTL_SCRIPT = (
    "connect 10000",
    "create /ttl data PERSISTENT_WITH_TTL 5000",
    "get /ttl",
    "create /ttl/child - PERSISTENT",
    "create /tp - PERSISTENT",
    "create /tp/s- x PERSISTENT_SEQUENTIAL_WITH_TTL 5000",
    "create /tp/s- y PERSISTENT_SEQUENTIAL_WITH_TTL 5000",
    "create /ttl x PERSISTENT_WITH_TTL 5000",
    "create /nope/x x PERSISTENT_WITH_TTL 5000",
    "getChildren2 /tp",
    "multi create /tm x PERSISTENT_WITH_TTL 7000 | create /tm/c - PERSISTENT",
    "exists /tm",
    "multi create /tm2 x PERSISTENT_WITH_TTL 7000 | create /tm2 - PERSISTENT",
    "exists /tm2",
)


def check_ttl(out: Out) -> None:
    created = step(out, "create /ttl data PERSISTENT_WITH_TTL 5000")
    assert created["ok"] and created["path"] == "/ttl"
    # Apache hides the TTL encoding: the client sees ephemeralOwner 0 for TTL nodes.
    assert created["stat"]["ephemeralOwner"] == 0
    assert step(out, "get /ttl")["data"] == "data"
    assert step(out, "create /tp/s- x PERSISTENT_SEQUENTIAL_WITH_TTL 5000")["path"] == "/tp/s-0000000000"
    assert step(out, "create /tp/s- y PERSISTENT_SEQUENTIAL_WITH_TTL 5000")["path"] == "/tp/s-0000000001"
    assert err(out, "create /ttl x PERSISTENT_WITH_TTL 5000") == "NODEEXISTS"
    assert err(out, "create /nope/x x PERSISTENT_WITH_TTL 5000") == "NONODE"
    assert step(out, "exists /tm")["stat"]["numChildren"] == 1
    assert err(out, "multi create /tm2 x PERSISTENT_WITH_TTL 7000 | create /tm2 - PERSISTENT") == "NODEEXISTS"
    assert step(out, "exists /tm2")["stat"] is None


TTL_DISABLED_SCRIPT = (
    "connect 10000",
    "create /ttl data PERSISTENT_WITH_TTL 5000",
    "create /ttls data PERSISTENT_SEQUENTIAL_WITH_TTL 5000",
    "multi create /m x PERSISTENT_WITH_TTL 5000",
    "exists /ttl",
    "create /plain x PERSISTENT",
)


def check_ttl_disabled(out: Out) -> None:
    assert err(out, "create /ttl data PERSISTENT_WITH_TTL 5000") == "UNIMPLEMENTED"
    assert step(out, "create /ttl data PERSISTENT_WITH_TTL 5000")["code"] == -6
    assert err(out, "create /ttls data PERSISTENT_SEQUENTIAL_WITH_TTL 5000") == "UNIMPLEMENTED"
    assert err(out, "multi create /m x PERSISTENT_WITH_TTL 5000") is not None
    assert step(out, "exists /ttl")["stat"] is None
    assert step(out, "create /plain x PERSISTENT")["ok"]


# --------------------------------------------------------------------------- containers


CONTAINER_SCRIPT = (
    "connect 10000",
    "create /c data CONTAINER",
    "get /c",
    "create /c/child - PERSISTENT",
    "create /c/eph - EPHEMERAL",
    "create /c/sub - CONTAINER",
    "getChildren2 /c",
    "delete /c/child",
    "multi create /mc - CONTAINER | create /mc/x - PERSISTENT",
    "get /mc",
    "create /e - EPHEMERAL",
    "create /e/c - CONTAINER",
    "create /c data CONTAINER",
)


def check_container(out: Out) -> None:
    created = step(out, "create /c data CONTAINER")
    # Apache reports ephemeralOwner 0 for containers (the tree stores Long.MIN_VALUE).
    assert created["ok"] and created["stat"]["ephemeralOwner"] == 0
    assert step(out, "getChildren2 /c")["children"] == ["child", "eph", "sub"]
    assert step(out, "get /mc")["stat"]["numChildren"] == 1
    assert err(out, "create /e/c - CONTAINER") == "NOCHILDRENFOREPHEMERALS"
    assert err(out, "create /c data CONTAINER", nth=1) == "NODEEXISTS"


# --------------------------------------------------------------------------- persistent watches


PERSISTENT_WATCH_SCRIPT = (
    "connect 10000",
    "@b connect 10000",
    "create /p - PERSISTENT",
    "events",
    "addWatch /p PERSISTENT",
    "create /p/a - PERSISTENT",
    "set /p v1",
    "set /p/a v",
    "delete /p/a",
    "waitevents 3",
    "sleep 200",
    "events",
    "delete /p",
    "create /p x PERSISTENT",
    "@b set /p fromb",
    "waitevents 3",
    "sleep 200",
    "events",
    "addWatch /missing PERSISTENT",
    "@b create /missing - PERSISTENT",
    "waitevents 1",
    "events",
)


def check_persistent_watch(out: Out) -> None:
    assert not all_ok(out)
    assert events_of(out, "events", 1) == [
        ev("NodeChildrenChanged", "/p"),
        ev("NodeDataChanged", "/p"),
        ev("NodeChildrenChanged", "/p"),
    ]
    assert events_of(out, "events", 2) == [
        ev("NodeDeleted", "/p"),
        ev("NodeCreated", "/p"),
        ev("NodeDataChanged", "/p"),
    ]
    assert events_of(out, "events", 3) == [ev("NodeCreated", "/missing")]


RECURSIVE_WATCH_SCRIPT = (
    "connect 10000",
    "@b connect 10000",
    "create /r - PERSISTENT",
    "create /other - PERSISTENT",
    "events",
    "addWatch /r PERSISTENT_RECURSIVE",
    "create /r/a - PERSISTENT",
    "create /r/a/b x PERSISTENT",
    "set /r/a/b y",
    "create /r/a/e - EPHEMERAL_SEQUENTIAL",
    "delete /r/a/b",
    "set /r z",
    "create /other/x - PERSISTENT",
    "create /rr - PERSISTENT",
    "waitevents 6",
    "sleep 200",
    "events",
    "@b create /r/a/fromb x EPHEMERAL",
    "@b close",
    "waitevents 2",
    "events",
    "get /r/a watch",
    "set /r/a q",
    "waitevents 1",
    "sleep 200",
    "events",
    "addWatch /r/a PERSISTENT w=pa",
    "getChildren /r/a w=kids",
    "set /r/a q2",
    "create /r/a/n - PERSISTENT",
    "waitevents 6",
    "sleep 200",
    "events",
)


def check_recursive_watch(out: Out) -> None:
    assert not all_ok(out)
    assert events_of(out, "events", 1) == [
        ev("NodeCreated", "/r/a"),
        ev("NodeCreated", "/r/a/b"),
        ev("NodeDataChanged", "/r/a/b"),
        ev("NodeCreated", "/r/a/e0000000001"),
        ev("NodeDeleted", "/r/a/b"),
        ev("NodeDataChanged", "/r"),
    ]
    assert events_of(out, "events", 2) == [ev("NodeCreated", "/r/a/fromb"), ev("NodeDeleted", "/r/a/fromb")]
    # The one-shot data watch and the recursive watch share the default watcher: called once.
    assert events_of(out, "events", 3) == [ev("NodeDataChanged", "/r/a")]
    # The server sends NodeChildrenChanged for the child watches only; the 3.8 client then also
    # hands it to every recursive watcher above the path (client-side fan-out).
    assert events_of(out, "events", 4) == [
        ev("NodeDataChanged", "/r/a", "default"),
        ev("NodeDataChanged", "/r/a", "pa"),
        ev("NodeCreated", "/r/a/n", "default"),
        ev("NodeChildrenChanged", "/r/a", "default"),
        ev("NodeChildrenChanged", "/r/a", "kids"),
        ev("NodeChildrenChanged", "/r/a", "pa"),
    ]


# --------------------------------------------------------------------------- removing watches


REMOVE_WATCHES_SCRIPT = (
    "connect 10000",
    "create /w - PERSISTENT",
    "create /w/c - PERSISTENT",
    "events",
    "exists /w watch",
    "get /w w=data1",
    "getChildren /w w=kids",
    "removeWatches /w Data w=data1",
    "removeWatches /w Data w=data1",
    "removeWatches /w Children w=kids",
    "removeWatches /w Children w=kids",
    "removeAllWatches /w Data",
    "removeAllWatches /w Data",
    "removeAllWatches /nowhere Any",
    "events",
    "exists /ghost w=g",
    "removeWatches /ghost Data w=g",
    "get /w watch",
    "getChildren /w watch",
    "removeAllWatches /w Any",
    "events",
    "get /w watch",
    "removeAllWatches /w Any local",
    "set /w x",
    "sleep 300",
    "events",
)


def check_remove_watches(out: Out) -> None:
    assert err(out, "removeWatches /w Data w=data1") is None
    assert err(out, "removeWatches /w Data w=data1", nth=1) == "NOWATCHER"
    assert step(out, "removeWatches /w Data w=data1", nth=1)["code"] == -121
    assert err(out, "removeWatches /w Children w=kids", nth=1) == "NOWATCHER"
    assert err(out, "removeAllWatches /w Data") is None
    assert err(out, "removeAllWatches /w Data", nth=1) == "NOWATCHER"
    assert err(out, "removeAllWatches /nowhere Any") == "NOWATCHER"
    # the driver sorts adjacent watch-removed events of one path by (type, watcher)
    assert events_of(out, "events", 1) == [
        ev("ChildWatchRemoved", "/w", "kids"),
        ev("DataWatchRemoved", "/w", "data1"),
        ev("DataWatchRemoved", "/w", "default"),
    ]
    assert events_of(out, "events", 2) == [
        ev("DataWatchRemoved", "/ghost", "g"),
        ev("ChildWatchRemoved", "/w"),
        ev("DataWatchRemoved", "/w"),
    ]
    assert events_of(out, "events", 3) == [ev("DataWatchRemoved", "/w")]


CHECK_WATCHES_PERSISTENT_SCRIPT = (
    "connect 10000",
    "create /q - PERSISTENT",
    "events",
    "addWatch /q PERSISTENT w=pw",
    "removeWatches /q Children w=pw",
    "removeWatches /q Data w=pw",
    "removeWatches /q Any w=pw",
    "removeWatches /q Any w=pw",
    "addWatch /q PERSISTENT_RECURSIVE",
    "removeAllWatches /q Data",
    "removeAllWatches /q Any",
    "removeAllWatches /q Any",
    "set /q gone",
    "sleep 300",
    "events",
)


def check_check_watches_persistent(out: Out) -> None:
    assert err(out, "removeWatches /q Any w=pw") is None
    assert err(out, "removeWatches /q Any w=pw", nth=1) == "NOWATCHER"
    assert err(out, "removeAllWatches /q Any") is None
    assert err(out, "removeAllWatches /q Any", nth=1) == "NOWATCHER"
    assert ev("PersistentWatchRemoved", "/q", "pw") in events_of(out, "events", 1)
    assert ev("PersistentWatchRemoved", "/q") in events_of(out, "events", 1)


# --------------------------------------------------------------------------- multi / multiRead


MULTI_SCRIPT = (
    "connect 10000",
    "create /mr data PERSISTENT",
    "create /mr/a - PERSISTENT",
    "create /mr/b x EPHEMERAL",
    "create /secret s PERSISTENT acl=digestpw:u:p:cdrwa",
    "multiRead get /mr | getChildren /mr | get /no | getChildren /no | get /mr/b | getChildren /mr/b",
    "multiRead get /zookeeper | getChildren /zookeeper | get /",
    "multiRead get /secret | getChildren /secret | get /mr",
    "multi create /t1 - PERSISTENT | create /t1/x - PERSISTENT | set /mr nv 0 | check /mr 1 | delete /mr/a",
    "multi create /t2 - PERSISTENT | set /mr q 99 | delete /mr/a",
    "multi check /mr 5",
    "multi delete /mr",
    "multi create /s/ - PERSISTENT_SEQUENTIAL",
    "multi create /t1/s- - PERSISTENT_SEQUENTIAL | create /t1/s- - EPHEMERAL_SEQUENTIAL",
    "get /mr",
    "exists /t2",
)


def check_multi(out: Out) -> None:
    mixed = step(out, MULTI_SCRIPT[5])
    assert mixed["ok"]
    kinds = [(r["type"], r.get("error")) for r in mixed["results"]]
    assert kinds == [
        ("getData", None),
        ("getChildren", None),
        ("error", "NONODE"),
        ("error", "NONODE"),
        ("getData", None),
        ("getChildren", None),
    ]
    assert [r.get("error") for r in step(out, MULTI_SCRIPT[7])["results"]] == ["NOAUTH", "NOAUTH", None]
    assert step(out, MULTI_SCRIPT[8])["ok"]
    failed = step(out, MULTI_SCRIPT[9])
    assert failed["error"] == "BADVERSION"
    assert [r["code"] for r in failed["results"]] == [0, -103, -2]
    assert err(out, "multi check /mr 5") == "BADVERSION"
    assert err(out, "multi delete /mr") == "NOTEMPTY"
    assert [r["path"] for r in step(out, MULTI_SCRIPT[13])["results"]] == [
        "/t1/s-0000000001",
        "/t1/s-0000000002",
    ]
    assert step(out, "exists /t2")["stat"] is None


# --------------------------------------------------------------------------- sessions and auth


EPHEMERALS_SCRIPT = (
    "connect 10000",
    "@b connect 10000",
    "create /e1 - EPHEMERAL",
    "create /app - PERSISTENT",
    "create /app/e2 - EPHEMERAL",
    "create /app/s- - EPHEMERAL_SEQUENTIAL",
    "create /app/p - PERSISTENT",
    "create /apple - EPHEMERAL",
    "@b create /app/b1 - EPHEMERAL",
    "getEphemerals",
    "getEphemerals /",
    "getEphemerals /app",
    "getEphemerals /ap",
    "getEphemerals /nothing",
    "@b getEphemerals",
    "@b getEphemerals /app",
    "get /app/e2",
    "@b get /app/b1",
    "@b close",
    "exists /app/b1",
    "getEphemerals",
)


def check_ephemerals(out: Out) -> None:
    assert step(out, "getEphemerals")["ephemerals"] == ["/app/e2", "/app/s-0000000001", "/apple", "/e1"]
    assert step(out, "getEphemerals /app")["ephemerals"] == ["/app/e2", "/app/s-0000000001", "/apple"]
    assert step(out, "getEphemerals /ap")["ephemerals"] == ["/app/e2", "/app/s-0000000001", "/apple"]
    assert step(out, "getEphemerals /nothing")["ephemerals"] == []
    assert step(out, "@b getEphemerals")["ephemerals"] == ["/app/b1"]
    owners = normalize(out)
    by_text = {r.get("text"): r for r in owners}
    assert by_text["get /app/e2"]["stat"]["ephemeralOwner"] == "<session main>"
    assert by_text["@b get /app/b1"]["stat"]["ephemeralOwner"] == "<session b>"
    assert step(out, "exists /app/b1")["stat"] is None


CHILDREN_NUMBER_SCRIPT = (
    "connect 10000",
    "getAllChildrenNumber /",
    "getAllChildrenNumber /zookeeper",
    "create /n - PERSISTENT",
    "create /n/a - PERSISTENT",
    "create /n/a/b - PERSISTENT",
    "create /n/c - EPHEMERAL",
    "getAllChildrenNumber /n",
    "getAllChildrenNumber /n/a/b",
    "getAllChildrenNumber /missing",
    "getAllChildrenNumber /",
)


def check_children_number(out: Out) -> None:
    assert step(out, "getAllChildrenNumber /n")["count"] == 3
    assert step(out, "getAllChildrenNumber /n/a/b")["count"] == 0
    assert step(out, "getAllChildrenNumber /", nth=1)["count"] == step(out, "getAllChildrenNumber /")["count"] + 4


WHOAMI_SCRIPT = (
    "connect 10000",
    "whoAmI",
    "addAuth digest alice:secret",
    "whoAmI",
    "addAuth digest bob:pw",
    "whoAmI",
    "addAuth digest alice:secret",
    "whoAmI",
    "create /a x PERSISTENT acl=auth::cdrwa",
    "getACL /a",
    "@b connect 10000",
    "@b whoAmI",
    "@b get /a",
    "@b addAuth digest bob:pw",
    "@b get /a",
)


def check_whoami(out: Out) -> None:
    ip = {"authScheme": "ip", "user": "127.0.0.1"}
    assert step(out, "whoAmI")["clientInfo"] == [ip]
    # the driver sorts clientInfo by (scheme, user): Apache keeps auth ids in a hash set
    users = [c["user"] for c in step(out, "whoAmI", nth=1)["clientInfo"]]
    assert users == ["alice", "127.0.0.1"]
    assert [c["user"] for c in step(out, "whoAmI", nth=2)["clientInfo"]] == ["alice", "bob", "127.0.0.1"]
    assert step(out, "whoAmI", nth=3)["clientInfo"] == step(out, "whoAmI", nth=2)["clientInfo"]
    assert step(out, "@b whoAmI")["clientInfo"] == [ip]
    assert err(out, "@b get /a") == "NOAUTH"
    assert step(out, "@b get /a", nth=1)["data"] == "x"


RECONFIG_SCRIPT = (
    "connect 10000",
    "reconfig - - server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181",
    "reconfig server.2=127.0.0.1:2889:3889;2182 - -",
    "reconfig - 1 -",
    "getConfig",
    "exists /zookeeper/config",
    "getChildren /zookeeper",
    "create /after - PERSISTENT",
)


def check_reconfig(out: Out) -> None:
    for text in RECONFIG_SCRIPT[1:4]:
        assert err(out, text) == "RECONFIGDISABLED"
        assert step(out, text)["code"] == -123


# --------------------------------------------------------------------------- reconnects


SET_WATCHES_SCRIPT = (
    "connect 10000 proxy",
    "@b connect 10000",
    "create /sw - PERSISTENT",
    "create /sw/data d PERSISTENT",
    "create /sw/gone g PERSISTENT",
    "create /sw/kids - PERSISTENT",
    "create /sw/same s PERSISTENT",
    "get /sw/data watch",
    "get /sw/gone watch",
    "exists /sw/new watch",
    "exists /sw/never watch",
    "getChildren /sw/kids watch",
    "get /sw/same watch",
    "events",
    "partition",
    "@b set /sw/data d2",
    "@b delete /sw/gone",
    "@b create /sw/new n PERSISTENT",
    "@b create /sw/kids/k - PERSISTENT",
    "heal",
    "waitconnected",
    "waitevents 6",
    "sleep 300",
    "events",
    "@b set /sw/same s2",
    "@b create /sw/never - PERSISTENT",
    "waitevents 2",
    "sleep 200",
    "events",
)


def check_set_watches(out: Out) -> None:
    catch_up = events_of(out, "events", 1)
    assert catch_up[:2] == [ev("None", None, state="Disconnected"), ev("None", None)]
    assert sorted(catch_up[2:]) == sorted(
        [
            ev("NodeDataChanged", "/sw/data"),
            ev("NodeDeleted", "/sw/gone"),
            ev("NodeCreated", "/sw/new"),
            ev("NodeChildrenChanged", "/sw/kids"),
        ]
    )
    assert events_of(out, "events", 2) == [ev("NodeDataChanged", "/sw/same"), ev("NodeCreated", "/sw/never")]


SET_WATCHES2_SCRIPT = (
    "connect 10000 proxy",
    "@b connect 10000",
    "create /s2 - PERSISTENT",
    "create /s2/data d PERSISTENT",
    "create /s2/p - PERSISTENT",
    "create /elsewhere - PERSISTENT",
    "addWatch /s2 PERSISTENT_RECURSIVE w=rec",
    "addWatch /s2/p PERSISTENT w=pers",
    "get /s2/data watch",
    "exists /elsewhere/new watch",
    "events",
    "partition",
    "@b set /s2/data d2",
    "@b create /s2/quiet - PERSISTENT",
    "@b set /s2/p changed",
    "@b create /elsewhere/new - PERSISTENT",
    "heal",
    "waitconnected",
    "waitevents 5",
    "sleep 300",
    "events",
    "@b set /s2/p again",
    "@b create /s2/p/kid - PERSISTENT",
    "@b delete /s2/quiet",
    "waitevents 6",
    "sleep 200",
    "events",
)


def check_set_watches2(out: Out) -> None:
    catch_up = events_of(out, "events", 1)
    assert catch_up[:2] == [ev("None", None, state="Disconnected"), ev("None", None)]
    # Persistent watches get no catch-up events of their own (the quiet create and the set on
    # /s2/p are not reported); the recursive watcher sees the one-shot catch-up on /s2/data
    # because the client hands a notification to every watcher registered for the path.
    assert sorted(catch_up[2:]) == sorted(
        [
            ev("NodeDataChanged", "/s2/data", "default"),
            ev("NodeDataChanged", "/s2/data", "rec"),
            ev("NodeCreated", "/elsewhere/new", "default"),
        ]
    )
    assert events_of(out, "events", 2) == [
        ev("NodeDataChanged", "/s2/p", "pers"),
        ev("NodeDataChanged", "/s2/p", "rec"),
        ev("NodeCreated", "/s2/p/kid", "rec"),
        ev("NodeChildrenChanged", "/s2/p", "pers"),
        ev("NodeChildrenChanged", "/s2/p", "rec"),
        ev("NodeDeleted", "/s2/quiet", "rec"),
    ]


DROP_CONNECTION_SCRIPT = (
    "connect 10000",
    "create /d x PERSISTENT",
    "get /d watch",
    "addWatch /d PERSISTENT w=p",
    "events",
    "dropconnection",
    "waitconnected",
    "set /d y",
    "waitevents 4",
    "sleep 200",
    "events",
    "get /d",
)


def check_drop_connection(out: Out) -> None:
    assert events_of(out, "events", 1) == [
        ev("None", None, state="Disconnected"),
        ev("None", None),
        ev("NodeDataChanged", "/d", "default"),
        ev("NodeDataChanged", "/d", "p"),
    ]
    assert step(out, "get /d")["data"] == "y"


EXPIRY_SCRIPT = (
    "connect 2000 proxy",
    "@b connect 10000",
    "create /x - EPHEMERAL",
    "get /x watch",
    "events",
    "partition",
    "@b exists /x",
    "sleep 4000",
    "@b exists /x",
    "heal",
    "waitstate Expired",
    "get /x",
    "events",
)


def check_expiry(out: Out) -> None:
    assert step(out, "connect 2000 proxy")["sessionTimeout"] == 2000
    assert step(out, "@b exists /x")["stat"] is not None
    assert step(out, "@b exists /x", nth=1)["stat"] is None
    assert err(out, "get /x") == "SESSIONEXPIRED"
    assert events_of(out, "events", 1) == [
        ev("None", None, state="Disconnected"),
        ev("None", None, state="Expired"),
    ]


SCENARIOS = [
    Scenario("ttl", TTL_SCRIPT, check_ttl),
    Scenario("ttl_disabled", TTL_DISABLED_SCRIPT, check_ttl_disabled, cfg={"extendedTypesEnabled": "false"}),
    Scenario("container", CONTAINER_SCRIPT, check_container),
    Scenario("persistent_watch", PERSISTENT_WATCH_SCRIPT, check_persistent_watch),
    Scenario("recursive_watch", RECURSIVE_WATCH_SCRIPT, check_recursive_watch),
    Scenario("remove_watches", REMOVE_WATCHES_SCRIPT, check_remove_watches),
    Scenario("check_watches_persistent", CHECK_WATCHES_PERSISTENT_SCRIPT, check_check_watches_persistent),
    Scenario("multi_read", MULTI_SCRIPT, check_multi),
    Scenario("get_ephemerals", EPHEMERALS_SCRIPT, check_ephemerals),
    Scenario("all_children_number", CHILDREN_NUMBER_SCRIPT, check_children_number),
    Scenario("who_am_i", WHOAMI_SCRIPT, check_whoami),
    Scenario("reconfig_standalone", RECONFIG_SCRIPT, check_reconfig),
    Scenario("set_watches", SET_WATCHES_SCRIPT, check_set_watches),
    Scenario("set_watches2", SET_WATCHES2_SCRIPT, check_set_watches2),
    Scenario("drop_connection", DROP_CONNECTION_SCRIPT, check_drop_connection),
    Scenario("session_expiry", EXPIRY_SCRIPT, check_expiry),
]
SCENARIO_PARAMS = [pytest.param(s, id=s.name) for s in SCENARIOS]


# --------------------------------------------------------------------------- servers


@pytest.fixture
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """``servers(kind, cfg)``: the standard fixture server, or a fresh one with cfg overrides."""
    with contextlib.ExitStack() as stack:

        def get(kind: str, cfg: dict[str, str] | None = None) -> RunningServer:
            if cfg is None:
                return request.getfixturevalue("apache_server" if kind == "apache" else "zk_server")
            server = start_server(kind, tmp_path / f"{kind}-cfg", cfg)
            stack.callback(server.stop)
            return server

        yield get


def run_on(server: RunningServer, scenario: Scenario) -> Out:
    return run_script(server.hosts, scenario.script, timeout=scenario.timeout)


# --------------------------------------------------------------------------- tests


@needs_java
@pytest.mark.parametrize("scenario", SCENARIO_PARAMS)
def test_apache_behaviour(scenario: Scenario, servers: Callable[..., RunningServer]) -> None:
    """The reference: what Apache 3.8 answers to the script (also validates the driver)."""
    out = run_on(servers("apache", scenario.cfg), scenario)
    scenario.check(out)


@needs_java
@pytest.mark.parametrize("scenario", SCENARIO_PARAMS)
def test_zkserver_matches_apache(scenario: Scenario, servers: Callable[..., RunningServer]) -> None:
    apache_out = run_on(servers("apache", scenario.cfg), scenario)
    scenario.check(apache_out)
    zk_out = run_on(servers("zkserver", scenario.cfg), scenario)
    compare_runs(apache_out, zk_out)


NORMALIZATION_SCRIPT = (
    *EPHEMERALS_SCRIPT,
    "@c connect 10000",
    "@c create /wt - PERSISTENT",
    "get /wt watch",
    "@c set /wt v",
    "@c create /wt/eph x EPHEMERAL_SEQUENTIAL",
    "@c multi create /ttl x PERSISTENT_WITH_TTL 1000 | create /con - CONTAINER | set /wt w",
    "@c getChildren2 /wt",
    "waitevents 2",
    "events",
)


@needs_java
def test_normalization_apache_vs_apache(tmp_path: Path) -> None:
    """Two Apache servers, one script: identical after normalization (sessions and times differ)."""
    with (
        start_server("apache", tmp_path / "one") as first,
        start_server("apache", tmp_path / "two") as second,
    ):
        out1 = run_script(first.hosts, NORMALIZATION_SCRIPT)
        out2 = run_script(second.hosts, NORMALIZATION_SCRIPT)
    assert not [r for r in all_ok(out1) if r["cmd"] != "close"], all_ok(out1)
    assert out1 != out2  # session ids and times really differ ...
    compare_runs(out1, out2, labels=("apache-1", "apache-2"))  # ... and normalize away


def test_compare_runs_explains_a_zxid_difference() -> None:
    """A zxid difference is not normalized away and the message points at the field."""
    base = [
        {"line": 1, "text": "connect", "session": "main", "cmd": "connect", "ok": True, "sessionId": 7},
        {
            "line": 2,
            "text": "create /a - EPHEMERAL",
            "session": "main",
            "cmd": "create",
            "ok": True,
            "stat": {"czxid": 2, "ctime": 123, "ephemeralOwner": 7},
        },
    ]
    other = [dict(base[0], sessionId=9), dict(base[1], stat={"czxid": 3, "ctime": 456, "ephemeralOwner": 9})]
    with pytest.raises(AssertionError) as info:
        compare_runs(base, other)
    message = str(info.value)
    assert "stat.czxid: apache=2 zkserver=3" in message
    assert "ctime" not in message.split("\n")[2]
    same_but_times = [
        dict(base[0], sessionId=9),
        dict(base[1], stat={"czxid": 2, "ctime": 456, "ephemeralOwner": 9}),
    ]
    compare_runs(base, same_but_times)
