"""A seeded random generator of client operations for differential runs.

Paths come from a tiny namespace (three names, depth three, under /d) plus paths the run has
seen succeed, so collisions and the interesting errors (NoNode, NodeExists, NotEmpty,
BadVersion, NoChildrenForEphemerals, NoAuth, InvalidACL) happen often. The sequence depends
only on the seed and on the results fed back through ``observe`` (which both servers must
have agreed on), so a failing seed replays exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from kazoo.security import ACL, Id, Permissions

from tests.differential import ops
from tests.differential.ops import AUTH, LOCALHOST, OPEN, READ_ONLY, WORLD, Op, digest_id

ROOT = "/d"
NAMES = ("a", "b", "c")
MAX_DEPTH = 3
VERSIONS = (0, 0, 1, 2, 3)
RECENT_WATCHES = 8

KIND_WEIGHTS = {
    "create": 16,
    "create2": 6,
    "delete": 10,
    "exists": 8,
    "get": 8,
    "set": 10,
    "get_children": 8,
    "get_acls": 4,
    "set_acls": 5,
    "sync": 2,
    "transaction": 8,
    "add_auth": 3,
    "close": 2,
}

# ACL lists, valid and not: most nodes stay open so the run does not lock itself out.
ACL_MENU: tuple[tuple[ACL, ...], ...] = (
    OPEN,
    READ_ONLY,
    (ACL(Permissions.ALL, digest_id("alice")), ACL(Permissions.READ, WORLD)),
    (ACL(Permissions.READ | Permissions.CREATE | Permissions.DELETE, digest_id("bob")),),
    (ACL(Permissions.READ, WORLD), ACL(Permissions.ADMIN, digest_id("alice"))),
    (ACL(Permissions.ALL, AUTH),),  # InvalidACL unless the session has authenticated
    (ACL(Permissions.ALL, LOCALHOST),),  # every local session has this ip identity
    (ACL(Permissions.ALL, Id("ip", "10.0.0.0/8")),),  # valid but matches nobody here
    (ACL(Permissions.ALL, WORLD), ACL(Permissions.ALL, WORLD)),  # duplicates
    (),  # empty: InvalidACL
    (ACL(Permissions.ALL, Id("digest", "alice")),),  # malformed digest id: InvalidACL
    (ACL(Permissions.ALL, Id("world", "someone")),),  # world has only "anyone"
)
CREDENTIALS = (
    ops.credential("alice"),
    ops.credential("bob"),
    ops.credential("alice", "wrong"),  # authenticates, but as an identity no ACL names
)


class OpGenerator:
    def __init__(self, seed: int, slots: int = 3) -> None:
        self.rng = random.Random(seed)
        self.slots = slots
        # Paths believed to exist; a dict, not a set, so iteration order (and with it the
        # generated sequence) does not depend on the process's string hash seed.
        self.known: dict[str, None] = {}
        self.versions: dict[str, int] = {}  # data version last seen per path
        self.watched: dict[str, None] = {}  # paths a watch was asked for (it may have fired)
        self._makers: dict[str, Callable[[int], Op]] = {
            kind: getattr(self, f"_make_{kind}") for kind in KIND_WEIGHTS
        }

    def setup(self) -> list[Op]:
        """An open backbone, so the run does not start by locking itself out of a tiny tree."""
        return [ops.create(ROOT), *(ops.create(f"{ROOT}/{name}") for name in NAMES)]

    def next_op(self) -> Op:
        kind = self.rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        return self._makers[kind](self.rng.randrange(self.slots))

    # ------------------------------------------------------------------ feedback

    def observe(self, op: Op, result: Any) -> None:
        """Learn which paths exist, and their versions, from a (normalized, agreed) result."""
        self._observe_version(op, result)
        if op.watch:
            # The most recent few only: old watches have mostly fired already.
            self.watched.pop(op.path, None)
            self.watched[op.path] = None
            if len(self.watched) > RECENT_WATCHES:
                del self.watched[next(iter(self.watched))]
        if op.kind in ("create", "create2") and not _is_error(result):
            self._learn(result[0] if op.kind == "create2" else result)
        elif op.kind == "delete" and result is True:
            self.known.pop(op.path, None)
        elif op.kind == "get_children" and not _is_error(result):
            names = result[0] if op.include_data else result
            for name in names:
                self._learn(_join(op.path, name))
        elif op.kind == "transaction" and isinstance(result, list):
            self._observe_transaction(op, result)
        if op.kind not in ("create", "create2", "transaction") and (
            result == ("error", "NoNodeError") or (op.kind == "exists" and result is None)
        ):
            self.known.pop(op.path, None)

    def _observe_version(self, op: Op, result: Any) -> None:
        stat = _stat_in(result)
        if stat is None:
            return
        path = result[0] if op.kind == "create2" else op.path
        self.versions[path] = stat["version"]

    def _observe_transaction(self, op: Op, results: list[Any]) -> None:
        if any(_is_error(r) for r in results):
            return  # rolled back: nothing changed
        for sub, result in zip(op.ops, results, strict=True):
            if sub.kind == "create":
                self._learn(result)
            elif sub.kind == "delete":
                self.known.pop(sub.path, None)

    def _learn(self, path: str) -> None:
        if path.startswith(ROOT + "/"):
            self.known[path] = None

    # ------------------------------------------------------------------ random parts

    def _path(self) -> str:
        roll = self.rng.random()
        if roll < 0.45 and self.watched:
            # Hit watched paths often, or few watches would ever fire.
            return self.rng.choice(list(self.watched))
        if roll < 0.75 and self.known:
            return self.rng.choice(list(self.known))
        if roll < 0.85:
            return self._static_path()
        if roll < 0.95:
            return _join(self._parent(), self.rng.choice(NAMES))
        return self.rng.choice((ROOT, ROOT + "/missing/x"))

    def _static_path(self) -> str:
        depth = self.rng.randint(1, MAX_DEPTH)
        return ROOT + "".join("/" + self.rng.choice(NAMES) for _ in range(depth))

    def _parent(self) -> str:
        if self.watched and self.rng.random() < 0.5:
            return self.rng.choice(list(self.watched))
        if self.known and self.rng.random() < 0.7:
            return self.rng.choice(list(self.known))
        return ROOT

    def _create_path(self, sequence: bool) -> str:
        if not sequence:
            return self._path() if self.rng.random() < 0.4 else _join(self._parent(), self.rng.choice(NAMES))
        # A sequential name may be just the counter: "/d/a/" becomes "/d/a/0000000003".
        return self._parent() + "/" + self.rng.choice(("q-", "q-", ""))

    def _data(self, allow_none: bool = True) -> bytes | None:
        roll = self.rng.random()
        if roll < 0.12 and allow_none:
            return None
        if roll < 0.3:
            return b""
        if roll < 0.92:
            return self.rng.randbytes(self.rng.randint(1, 16))
        return self.rng.randbytes(self.rng.randint(100, 2000))

    def _acl(self) -> tuple[ACL, ...] | None:
        if self.rng.random() < 0.6:
            return None
        if self.rng.random() < 0.1:
            return (ACL(self.rng.randint(0, Permissions.ALL), WORLD),)
        return self.rng.choice(ACL_MENU)

    def _version(self, path: str) -> int:
        """-1, the version last seen for the path (so versioned writes often succeed), or a guess."""
        roll = self.rng.random()
        if roll < 0.35:
            return -1
        if roll < 0.75 and path in self.versions:
            return self.versions[path]
        return self.rng.choice(VERSIONS)

    def _coin(self, p: float) -> bool:
        return self.rng.random() < p

    # ------------------------------------------------------------------ one maker per kind

    def _make_create(self, slot: int, kind: str = "create") -> Op:
        sequence = self._coin(0.3)
        path = self._create_path(sequence)
        return Op(kind, slot, path, self._data(), self._acl(), ephemeral=self._coin(0.2), sequence=sequence)

    def _make_create2(self, slot: int) -> Op:
        return self._make_create(slot, kind="create2")

    def _make_delete(self, slot: int) -> Op:
        path = self._path()
        return ops.delete(path, self._version(path), slot=slot)

    def _make_exists(self, slot: int) -> Op:
        return ops.exists(self._path(), watch=self._coin(0.75), slot=slot)

    def _make_get(self, slot: int) -> Op:
        return ops.get(self._path(), watch=self._coin(0.75), slot=slot)

    def _make_set(self, slot: int) -> Op:
        path = self._path()
        return ops.set_data(path, self._data(), self._version(path), slot=slot)

    def _make_get_children(self, slot: int) -> Op:
        path = self._path() if self._coin(0.8) else ROOT
        return ops.children(path, watch=self._coin(0.75), include_data=self._coin(0.5), slot=slot)

    def _make_get_acls(self, slot: int) -> Op:
        return ops.get_acls(self._path(), slot=slot)

    def _make_set_acls(self, slot: int) -> Op:
        path, acl = self._path(), self._acl()
        # setACL checks the ACL version (aversion), which we do not track: mostly -1.
        version = -1 if self._coin(0.6) else self.rng.choice(VERSIONS)
        return ops.set_acls(path, OPEN if acl is None else acl, version, slot=slot)

    def _make_sync(self, slot: int) -> Op:
        return ops.sync(self._path(), slot=slot)

    def _make_add_auth(self, slot: int) -> Op:
        return ops.add_auth(self.rng.choice(CREDENTIALS), slot=slot)

    def _make_close(self, slot: int) -> Op:
        return ops.close(slot)

    def _make_transaction(self, slot: int) -> Op:
        count = self.rng.choice((0, 1, 2, 2, 3, 3, 4))
        return ops.transaction(*(self._transaction_sub() for _ in range(count)), slot=slot)

    def _transaction_sub(self) -> Op:
        kind = self.rng.choice(("create", "create", "delete", "set", "check"))
        if kind == "create":
            sequence = self._coin(0.2)
            path = self._create_path(sequence)
            # kazoo's transaction create takes bytes only (no None).
            data = self._data(allow_none=False)
            ephemeral = self._coin(0.2)
            return Op("create", path=path, data=data, acl=self._acl(), ephemeral=ephemeral, sequence=sequence)
        path = self._path()
        if kind == "set":
            return Op("set", path=path, data=self._data(allow_none=False), version=self._version(path))
        return Op(kind, path=path, version=self._version(path))


def _stat_in(result: Any) -> dict[str, Any] | None:
    """The Stat in an exists/get/set/create2/getChildren2/getACL result, if any."""
    if isinstance(result, dict):
        return result
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        return result[1]
    return None


def _is_error(result: Any) -> bool:
    return isinstance(result, tuple) and len(result) == 2 and result[0] == "error"


def _join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name
