"""The operations a differential run performs, as plain data, plus short constructors.

An Op is executed on both servers by tests/differential/harness.py; keeping it data (not a
closure) lets a mismatch report print exactly what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from kazoo.security import ACL, Id, Permissions, make_digest_acl_credential

# Digest users the generator and scenarios authenticate as.
USERS = {"alice": "alice-pw", "bob": "bob-pw"}


def digest_id(user: str, password: str | None = None) -> Id:
    return Id("digest", make_digest_acl_credential(user, password or USERS[user]))


def credential(user: str, password: str | None = None) -> str:
    return f"{user}:{password or USERS[user]}"


WORLD = Id("world", "anyone")
AUTH = Id("auth", "")
LOCALHOST = Id("ip", "127.0.0.1")
OPEN = (ACL(Permissions.ALL, WORLD),)
READ_ONLY = (ACL(Permissions.READ, WORLD),)


@dataclass(frozen=True)
class Op:
    """One client call. ``slot`` picks the session (0..slots-1) that performs it.

    kinds: create, create2, delete, exists, get, set, get_children, get_acls, set_acls, sync,
    transaction (sub-ops: create, delete, set, check), add_auth, close (the session ends and
    a new session takes over the slot).
    """

    kind: str
    slot: int = 0
    path: str = "/"
    data: bytes | None = b""
    acl: tuple[ACL, ...] | None = None  # None: kazoo's default, world:anyone ALL
    version: int = -1
    ephemeral: bool = False
    sequence: bool = False
    watch: bool = False
    include_data: bool = False
    scheme: str = "digest"
    credential: str = ""
    ops: tuple[Op, ...] = ()

    def describe(self, with_slot: bool = True) -> str:
        """Only the fields that differ from the defaults, so reports stay short."""
        parts = [f"slot={self.slot}"] if with_slot else []
        for f in fields(self):
            if f.name in ("kind", "slot"):
                continue
            value = getattr(self, f.name)
            if value != f.default:
                shown = _describe_ops(value) if f.name == "ops" else _short(value)
                parts.append(f"{f.name}={shown}")
        return f"{self.kind}({', '.join(parts)})"


def _short(value: object) -> str:
    if isinstance(value, bytes) and len(value) > 24:
        return f"<{len(value)} bytes {value[:8]!r}...>"
    return repr(value)


def _describe_ops(sub_ops: tuple[Op, ...]) -> str:
    # Sub-ops of a transaction run in the transaction's session; their slot means nothing.
    return "[" + ", ".join(o.describe(with_slot=False) for o in sub_ops) + "]"


# Short constructors, so hand-written scenarios read like client code.


def create(path: str, data: bytes | None = b"", slot: int = 0, **kw: object) -> Op:
    return Op("create", slot, path, data, **kw)  # type: ignore[arg-type]


def create2(path: str, data: bytes | None = b"", slot: int = 0, **kw: object) -> Op:
    return Op("create2", slot, path, data, **kw)  # type: ignore[arg-type]


def delete(path: str, version: int = -1, slot: int = 0) -> Op:
    return Op("delete", slot, path, version=version)


def exists(path: str, watch: bool = False, slot: int = 0) -> Op:
    return Op("exists", slot, path, watch=watch)


def get(path: str, watch: bool = False, slot: int = 0) -> Op:
    return Op("get", slot, path, watch=watch)


def set_data(path: str, data: bytes | None, version: int = -1, slot: int = 0) -> Op:
    return Op("set", slot, path, data, version=version)


def children(path: str, watch: bool = False, include_data: bool = False, slot: int = 0) -> Op:
    return Op("get_children", slot, path, watch=watch, include_data=include_data)


def get_acls(path: str, slot: int = 0) -> Op:
    return Op("get_acls", slot, path)


def set_acls(path: str, acl: tuple[ACL, ...], version: int = -1, slot: int = 0) -> Op:
    return Op("set_acls", slot, path, acl=acl, version=version)


def sync(path: str = "/", slot: int = 0) -> Op:
    return Op("sync", slot, path)


def add_auth(cred: str, scheme: str = "digest", slot: int = 0) -> Op:
    return Op("add_auth", slot, scheme=scheme, credential=cred)


def close(slot: int = 0) -> Op:
    return Op("close", slot)


def transaction(*ops: Op, slot: int = 0) -> Op:
    return Op("transaction", slot, ops=tuple(ops))


def check(path: str, version: int) -> Op:
    return Op("check", path=path, version=version)
