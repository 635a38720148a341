"""Deterministic differential scenarios: each error code and Stat-field edge case, hand-written.

Every step runs on Apache ZooKeeper and on the candidate and must agree exactly (zxids
relative to the scenario's start, since the servers are shared by the module). The
expectations only pin down what each step is there to exercise.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kazoo.security import ACL, Id, Permissions

from tests.differential.conftest import sides
from tests.differential.harness import Lockstep
from tests.differential.ops import (
    AUTH,
    LOCALHOST,
    OPEN,
    WORLD,
    Op,
    add_auth,
    check,
    children,
    close,
    create,
    create2,
    credential,
    delete,
    digest_id,
    exists,
    get,
    get_acls,
    set_acls,
    set_data,
    sync,
    transaction,
)
from tests.differential.scenario import (
    Step,
    at_reply,
    error,
    notified,
    quiet,
    result,
    result_where,
    run_scenario,
    stat,
    step,
    succeeds,
)

pytestmark = pytest.mark.apache

ALICE_ALL = (ACL(Permissions.ALL, digest_id("alice")),)
RB, RI = "RolledBackError", "RuntimeInconsistency"


def tx_errors(*names: str | None) -> Callable[[object], bool]:
    """A transaction result whose entries are these errors (None: any success)."""

    def test(value: object) -> bool:
        if not isinstance(value, list) or len(value) != len(names):
            return False
        return all(
            (name is None and not (isinstance(v, tuple) and v[:1] == ("error",))) or v == ("error", name)
            for v, name in zip(value, names, strict=True)
        )

    return test


def _pzxid_moved(value: dict) -> bool:
    return value["pzxid"] != value["czxid"]


def sequential_numbering(r: str = "/seq") -> list[Step]:
    # Observed on Apache 3.8: the suffix counts the creates under the parent. A delete bumps
    # the parent's cversion but not the suffix; a failed create bumps neither.
    return [
        step(create(r), result(r)),
        step(create(f"{r}/q-", sequence=True), result(f"{r}/q-0000000000")),
        step(create(f"{r}/q-", sequence=True), result(f"{r}/q-0000000001")),
        step(create(f"{r}/q-", sequence=True), result(f"{r}/q-0000000002")),
        step(delete(f"{r}/q-0000000001"), result(True)),
        step(exists(r), stat(cversion=4, numChildren=2)),
        step(create(f"{r}/q-", sequence=True), result(f"{r}/q-0000000003")),
        step(create(f"{r}/plain"), result(f"{r}/plain")),
        step(create(f"{r}/", sequence=True), result(f"{r}/0000000005")),  # the name is just the counter
        step(create(f"{r}/e-", sequence=True, ephemeral=True, slot=1), result(f"{r}/e-0000000006")),
        step(exists(f"{r}/e-0000000006"), stat(ephemeralOwner="session#1", numChildren=0)),
        step(create2(f"{r}/c-", b"xy", sequence=True), result_where("c-7", lambda v: v[0] == f"{r}/c-0000000007")),
        step(children(r, include_data=True), stat(cversion=9, numChildren=7)),
        # A plain node that takes the next sequential name: sequential creates then collide.
        step(create(f"{r}/q-0000000009"), succeeds()),
        step(create(f"{r}/q-", sequence=True), error("NodeExistsError")),
        step(create(f"{r}/q-", sequence=True), error("NodeExistsError")),
        step(children(r, include_data=True), stat(cversion=10, numChildren=8)),
        step(delete(f"{r}/q-0000000009"), result(True)),
        step(create(f"{r}/q-", sequence=True), result(f"{r}/q-0000000009")),
        step(create(f"{r}/missing/q-", sequence=True), error("NoNodeError")),
        step(create(f"{r}/x-", sequence=True, data=None), result(f"{r}/x-0000000010")),
        step(close(1)),  # deletes the ephemeral sequential node
        step(create(f"{r}/q-", sequence=True), result(f"{r}/q-0000000011")),
        step(children(r, include_data=True), stat(numChildren=9)),
    ]


def child_version_and_pzxid(r: str = "/cv") -> list[Step]:
    return [
        step(create(r, b"parent")),
        step(exists(r), stat(cversion=0, numChildren=0, version=0, dataLength=6)),
        step(create(f"{r}/a")),
        step(exists(r), stat(cversion=1, numChildren=1), result_where("pzxid moved", _pzxid_moved)),
        step(set_data(f"{r}/a", b"1"), stat(version=1)),
        step(exists(r), stat(cversion=1, numChildren=1, version=0)),  # child data: parent unchanged
        step(delete(f"{r}/a"), result(True)),
        step(exists(r), stat(cversion=2, numChildren=0)),
        step(delete(f"{r}/a"), error("NoNodeError")),
        step(exists(r), stat(cversion=2, numChildren=0)),  # a failed delete changes nothing
        step(create(f"{r}/b", ephemeral=True, slot=1)),
        step(exists(r), stat(cversion=3, numChildren=1)),
        step(close(1)),  # session end deletes the ephemeral: cversion and pzxid move
        step(exists(r), stat(cversion=4, numChildren=0)),
        step(set_data(r, b"new"), stat(version=1, cversion=4, dataLength=3)),
        step(transaction(create(f"{r}/t1"), create(f"{r}/t2")), result([f"{r}/t1", f"{r}/t2"])),
        step(exists(r), stat(cversion=6, numChildren=2)),
        step(
            transaction(create(f"{r}/t3"), delete(f"{r}/missing")),
            result_where("rolled back", tx_errors(RB, "NoNodeError")),
        ),
        step(exists(r), stat(cversion=6, numChildren=2)),
        step(children(r, include_data=True), result_where("t1, t2", lambda v: v[0] == ["t1", "t2"])),
    ]


def acl_version(r: str = "/aclv") -> list[Step]:
    read_admin = (ACL(Permissions.READ | Permissions.ADMIN, WORLD),)
    return [
        step(create(r, b"d")),
        step(get_acls(r), result_where("open", lambda v: v[0] == [(31, "world", "anyone")]), stat(aversion=0)),
        step(set_acls(r, OPEN, version=0), stat(aversion=1, version=0)),
        step(set_acls(r, OPEN, version=0), error("BadVersionError")),
        step(set_acls(r, OPEN, version=-1), stat(aversion=2)),
        step(set_acls(r, read_admin, version=2), stat(aversion=3)),
        step(get_acls(r), result_where("read+admin", lambda v: v[0] == [(17, "world", "anyone")]), stat(version=0)),
        step(set_data(r, b"x"), error("NoAuthError")),
        step(create(f"{r}/c"), error("NoAuthError")),
        step(get(r), succeeds()),
        step(set_acls(r, ()), error("InvalidACLError")),
        step(set_acls(r, (ACL(Permissions.ALL, AUTH),)), error("InvalidACLError")),  # no auth yet
        step(set_acls(f"{r}/missing", OPEN), error("NoNodeError")),
        step(add_auth(credential("alice"))),
        step(set_acls(r, (ACL(Permissions.ALL, AUTH),)), stat(aversion=4)),
        step(get_acls(r), result_where("auth became alice", lambda v: v[0] == [(31, "digest", digest_id("alice").id)])),
        step(get_acls(r, slot=1), error("NoAuthError")),  # getACL needs READ or ADMIN
        step(set_acls(r, (ACL(Permissions.ALL, WORLD), ACL(Permissions.ALL, WORLD))), stat(aversion=5)),
        step(get_acls(r), result_where("duplicates", lambda v: len(v[0]) >= 1)),
    ]


def data_and_versions(r: str = "/data") -> list[Step]:
    big = bytes(range(256)) * 4
    return [
        step(create(r, None)),
        step(get(r), result_where("null data", lambda v: v[0] is None), stat(dataLength=0)),
        step(create(f"{r}/e", b""), succeeds()),
        step(get(f"{r}/e"), result_where("empty data", lambda v: v[0] == b""), stat(dataLength=0)),
        step(set_data(r, b"abc"), stat(version=1, dataLength=3)),
        step(set_data(r, None), stat(version=2, dataLength=0)),
        step(get(r), result_where("null again", lambda v: v[0] is None)),
        step(set_data(r, big), stat(version=3, dataLength=1024)),
        step(create2(f"{r}/c2", b"xy"), stat(version=0, dataLength=2, numChildren=0, cversion=0)),
        step(children(r, include_data=True), stat(numChildren=2, dataLength=1024)),
        step(set_data(r, b"v", version=3), stat(version=4)),
        step(set_data(r, b"v", version=3), error("BadVersionError")),
        step(set_data(r, b"w", version=-1), stat(version=5, dataLength=1)),
        step(set_data(f"{r}/missing", b"w"), error("NoNodeError")),
        step(create(f"{r}/d")),
        step(set_data(f"{r}/d", b"1"), stat(version=1)),
        step(delete(f"{r}/d", version=0), error("BadVersionError")),
        step(delete(f"{r}/d", version=2), error("BadVersionError")),
        step(delete(f"{r}/d", version=1), result(True)),
        step(delete(r), error("NotEmptyError")),
        step(delete(f"{r}/e", version=-1), result(True)),
        step(delete(f"{r}/c2", version=0), result(True)),
        step(delete(r, version=5), result(True)),
        step(exists(r), result(None)),
    ]


def error_codes(r: str = "/err") -> list[Step]:
    bad_acls = [(), (ACL(Permissions.ALL, Id("digest", "alice")),), (ACL(Permissions.ALL, Id("world", "x")),)]
    return [
        step(get(r), error("NoNodeError")),
        step(create(f"{r}/x"), error("NoNodeError")),
        step(create(r), result(r)),
        step(create(r), error("NodeExistsError")),
        step(create(f"{r}/child")),
        step(delete(r), error("NotEmptyError")),
        step(set_data(r, b"x", version=5), error("BadVersionError")),
        step(exists(f"{r}/missing"), result(None)),
        step(children(f"{r}/missing"), error("NoNodeError")),
        step(get_acls(f"{r}/missing"), error("NoNodeError")),
        step(sync(f"{r}/missing")),
        step(create(f"{r}/eph", ephemeral=True)),
        step(create(f"{r}/eph/x"), error("NoChildrenForEphemeralsError")),
        step(create2(f"{r}/eph/s-", sequence=True), error("NoChildrenForEphemeralsError")),
        step(create(f"{r}/eph/e", ephemeral=True), error("NoChildrenForEphemeralsError")),
        step(create(f"{r}/locked", b"secret", acl=ALICE_ALL)),
        step(get(f"{r}/locked"), error("NoAuthError")),
        step(set_data(f"{r}/locked", b"x"), error("NoAuthError")),
        step(create(f"{r}/locked/x"), error("NoAuthError")),
        step(children(f"{r}/locked"), error("NoAuthError")),
        step(exists(f"{r}/locked"), succeeds()),  # Apache 3.8: exists checks no ACL
        step(get_acls(f"{r}/locked")),
        step(add_auth(credential("alice", "wrong"), slot=2)),
        step(get(f"{r}/locked", slot=2), error("NoAuthError")),
        step(add_auth(credential("alice"))),
        step(get(f"{r}/locked"), result_where("readable now", lambda v: v[0] == b"secret")),
        step(get(f"{r}/locked", slot=1), error("NoAuthError")),
        step(create(f"{r}/ip", acl=(ACL(Permissions.ALL, LOCALHOST),))),
        step(get(f"{r}/ip", slot=1), succeeds()),
        step(create(f"{r}/ip10", acl=(ACL(Permissions.ALL, Id("ip", "10.0.0.0/8")),))),
        step(get(f"{r}/ip10", slot=1), error("NoAuthError")),
        *(step(create(f"{r}/bad", acl=acl), error("InvalidACLError")) for acl in bad_acls),
        step(create(f"{r}/auth", acl=(ACL(Permissions.ALL, AUTH),), slot=1), error("InvalidACLError")),
        step(create(f"{r}/auth", acl=(ACL(Permissions.ALL, AUTH),)), succeeds()),
        step(add_auth(credential("bob"))),
        step(create(f"{r}/auth2", acl=(ACL(Permissions.ALL, AUTH),))),
        step(get_acls(f"{r}/auth2"), result_where("alice and bob", lambda v: len(v[0]) == 2)),
        step(delete(f"{r}/locked", slot=1), result(True)),  # delete needs DELETE on the parent
    ]


def multi(r: str = "/multi") -> list[Step]:
    return [
        step(create(r)),
        step(
            transaction(
                create(f"{r}/a", b"1"),
                set_data(f"{r}/a", b"2"),
                check(f"{r}/a", 1),
                create(f"{r}/a/b"),
                delete(f"{r}/a/b"),
            ),
            result_where("all succeed", tx_errors(None, None, None, None, None)),
        ),
        step(exists(f"{r}/a"), stat(version=1, numChildren=0, cversion=2)),
        step(
            transaction(create(f"{r}/x"), set_data(f"{r}/a", b"z", version=0), delete(f"{r}/a")),
            result_where("failed midway", tx_errors(RB, "BadVersionError", RI)),
        ),
        step(exists(f"{r}/x"), result(None)),
        step(exists(f"{r}/a"), stat(version=1)),
        step(transaction(check(f"{r}/missing", 0)), result_where("check NoNode", tx_errors("NoNodeError"))),
        step(
            transaction(check(f"{r}/a", 0), create(f"{r}/y")),
            result_where("check fails", tx_errors("BadVersionError", RI)),
        ),
        step(
            transaction(delete(f"{r}/a"), create(f"{r}/a", b"again")),
            result_where("re-create", tx_errors(None, None)),
        ),
        step(exists(f"{r}/a"), stat(version=0, dataLength=5)),
        step(
            transaction(create(f"{r}/e", ephemeral=True), create(f"{r}/e/c")),
            result_where("ephemeral parent", tx_errors(RB, "NoChildrenForEphemeralsError")),
        ),
        step(transaction(create(f"{r}/s-", sequence=True), create(f"{r}/s-", sequence=True)), succeeds()),
        step(transaction(), result([])),
        step(transaction(delete(r)), result_where("not empty", tx_errors("NotEmptyError"))),
        step(transaction(create(f"{r}/n", acl=())), result_where("invalid acl", tx_errors("InvalidACLError"))),
        step(
            transaction(set_data(f"{r}/a", b"z"), check(f"{r}/a", 1), set_data(f"{r}/a", b"zz", version=1)),
            result_where("later ops see earlier ones", tx_errors(None, None, None)),
        ),
        step(
            transaction(create(f"{r}/p"), create(f"{r}/p"), create(f"{r}/q")),
            result_where("duplicate create", tx_errors(RB, "NodeExistsError", RI)),
        ),
        step(
            transaction(create(f"{r}/locked", acl=ALICE_ALL), create(f"{r}/locked/c")),
            result_where("no auth inside", tx_errors(RB, "NoAuthError")),
        ),
        step(children(r, include_data=True), stat(numChildren=3)),
    ]


def watches(r: str = "/w") -> list[Step]:
    return [
        step(create(r)),
        step(create(f"{r}/n", b"0")),
        step(get(f"{r}/n", watch=True, slot=1)),
        step(set_data(f"{r}/n", b"1"), notified(1, ("NodeDataChanged", f"{r}/n")), at_reply()),
        step(set_data(f"{r}/n", b"2"), quiet()),  # one-shot: already fired
        step(exists(f"{r}/n", watch=True, slot=1)),
        step(get(f"{r}/n", watch=True, slot=1)),
        step(set_data(f"{r}/n", b"3"), notified(1, ("NodeDataChanged", f"{r}/n"))),  # once per session
        step(exists(f"{r}/new", watch=True, slot=2)),
        step(create(f"{r}/new"), notified(2, ("NodeCreated", f"{r}/new"))),
        step(children(r, watch=True, slot=1)),
        step(set_data(r, b"parent data"), quiet()),  # a child watch ignores data changes
        step(create(f"{r}/c"), notified(1, ("NodeChildrenChanged", r))),
        step(get(f"{r}/c", watch=True, slot=1)),
        step(children(f"{r}/c", watch=True, slot=1)),
        step(children(r, watch=True, slot=2)),
        # data and child watch on the deleted node: one NodeDeleted; the parent's child watch too
        step(delete(f"{r}/c"), notified(1, ("NodeDeleted", f"{r}/c")), notified(2, ("NodeChildrenChanged", r))),
        # the writer's own watch fires before the writer's reply
        step(exists(f"{r}/self", watch=True)),
        step(create(f"{r}/self"), at_reply(("NodeCreated", f"{r}/self"))),
        step(get(f"{r}/self", watch=True)),
        step(set_data(f"{r}/self", b"x"), at_reply(("NodeDataChanged", f"{r}/self"))),
        # notifications keep the order of the writes inside a multi
        step(get(f"{r}/n", watch=True, slot=1)),
        step(exists(f"{r}/self", watch=True, slot=1)),
        step(
            transaction(set_data(f"{r}/self", b"y"), set_data(f"{r}/n", b"4")),
            notified(1, ("NodeDataChanged", f"{r}/self"), ("NodeDataChanged", f"{r}/n")),
        ),
        step(get(f"{r}/nn", watch=True, slot=1), error("NoNodeError")),  # does not arm a watch
        step(children(f"{r}/nn", watch=True, slot=1), error("NoNodeError")),
        step(create(f"{r}/nn"), quiet()),
        step(exists(f"{r}/gone", watch=True, slot=2)),
        step(close(2)),  # the watch dies with its session
        step(create(f"{r}/gone"), quiet()),
        step(create(f"{r}/eph", ephemeral=True, slot=1)),
        step(exists(f"{r}/eph", watch=True)),
        step(children(r, watch=True, slot=2)),
        step(close(1), notified(0, ("NodeDeleted", f"{r}/eph")), notified(2, ("NodeChildrenChanged", r))),
        step(get(f"{r}/n", watch=True, slot=1)),
        step(delete(f"{r}/n"), notified(1, ("NodeDeleted", f"{r}/n"))),
        step(exists(f"{r}/n", watch=True, slot=1)),
        step(transaction(create(f"{r}/n"), create(f"{r}/n")), quiet()),  # rolled back: nothing fires
    ]


def quota_stats(r: str = "/qt") -> list[Step]:
    """Quota nodes written by hand as zkCli's setquota writes them: the server fills in the
    stats node when it is created and keeps it current on every write below the quota root."""
    q = f"/zookeeper/quota{r}"
    stats = f"{q}/zookeeper_stats"
    return [
        step(create(r, b"root")),
        step(create(f"{r}/a", b"12345")),
        step(create(q, b"")),
        step(create(f"{q}/zookeeper_limits", b"count=3,bytes=100")),
        step(create(stats, b"count=0,bytes=0")),
        step(get(stats), result_where("counted", lambda v: v[0] == b"count=2,bytes=9")),
        step(create(f"{r}/b", b"xy")),
        step(set_data(f"{r}/a", b"1")),
        step(create(f"{r}/c")),  # over the soft count limit: logged only
        step(get(stats), result_where("kept current", lambda v: v[0] == b"count=4,bytes=7")),
        step(delete(f"{r}/b")),
        step(get(stats)),
        step(transaction(create(f"{r}/t1", b"abc"), delete(f"{r}/c"))),
        step(get(stats)),
        step(exists(stats)),  # the Stat of the stats node does not move with its data
    ]


SCENARIOS: dict[str, Callable[[], list[Step]]] = {
    "sequential_numbering": sequential_numbering,
    "child_version_and_pzxid": child_version_and_pzxid,
    "acl_version": acl_version,
    "data_and_versions": data_and_versions,
    "error_codes": error_codes,
    "multi": multi,
    "watches": watches,
    "quota_stats": quota_stats,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str, shared_pair) -> None:
    with Lockstep(*sides(shared_pair, rebase_zxids=True), label=f"scenario={name}") as lockstep:
        run_scenario(lockstep, SCENARIOS[name]())


def reserved_tree() -> list[Step]:
    """The built-in nodes and the root: their Stats (zero times, zxid 0) and what writes do there."""
    return [
        step(exists("/"), stat(czxid=0, ctime="zero")),
        step(children("/", include_data=True), result_where("only /zookeeper", lambda v: v[0] == ["zookeeper"])),
        step(children("/zookeeper", include_data=True)),
        step(get("/zookeeper")),
        step(get("/zookeeper/quota")),
        step(get("/zookeeper/config")),
        step(get_acls("/")),
        step(get_acls("/zookeeper")),
        step(get_acls("/zookeeper/config")),
        step(create("/zookeeper/x")),
        step(set_data("/zookeeper/config", b"x")),
        step(set_data("/zookeeper/quota", b"x")),
        step(delete("/zookeeper/quota")),
        step(delete("/zookeeper")),
        step(create("/top"), result("/top")),
        step(exists("/"), result_where("root changed", lambda v: v["numChildren"] >= 2)),
        step(sync("/")),
        step(set_data("/", b"root data")),
        step(get("/")),
        step(Op("create", path="/", data=b"")),
        step(delete("/")),
    ]


def test_reserved_tree_and_root(fresh_pair) -> None:
    # Fresh servers: the root's Stat and every zxid are compared as absolute values.
    with Lockstep(*sides(fresh_pair, rebase_zxids=False), label="scenario=reserved_tree") as lockstep:
        run_scenario(lockstep, reserved_tree())
