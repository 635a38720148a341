"""ACL checks and the built-in authentication schemes (world, auth, digest, ip, super).

An identity is an `(scheme, id)` pair held by a connection. The rules follow Apache
ZooKeeper's ZooKeeperServer.checkACL, PrepRequestProcessor.fixupACL and the digest/ip
providers: super bypasses everything, world:anyone matches all, digest ids compare exactly,
ip ids match by address prefix.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence

from ..jute.codes import Err, Perm
from ..jute.records import ACL, ACLList
from .javaorder import java_id_order

Identity = tuple[str, str]
SUPER_IDENTITY: Identity = ("super", "")
OPEN_ACL_UNSAFE: tuple[ACL, ...] = ((Perm.ALL, "world", "anyone"),)
READ_ACL_UNSAFE: tuple[ACL, ...] = ((Perm.READ, "world", "anyone"),)
_OPEN_ACL_REQUEST: list[ACL] = list(OPEN_ACL_UNSAFE)  # as a request decodes it


def shared_acl(acl: ACLList) -> ACLList:
    """The one world:anyone tuple for an ACL equal to it: `check` passes that tuple on an
    identity test. Every node's ACL goes through here (tree changes, snapshot loading)."""
    return OPEN_ACL_UNSAFE if acl == OPEN_ACL_UNSAFE else acl


class KeeperError(Exception):
    """A request fails with a ZooKeeper error code; `path` is for logs only."""

    def __init__(self, code: int, path: str | None = None):
        super().__init__(code, path)
        self.code = code
        self.path = path


def digest_id(user_password: str) -> str:
    """`user:password` -> `user:base64(sha1(user:password))`, as the digest scheme stores it."""
    user = user_password.split(":", 1)[0]
    raw = hashlib.sha1(user_password.encode("utf-8")).digest()
    return f"{user}:{base64.b64encode(raw).decode('ascii')}"


def _java_split_count(s: str, sep: str) -> int:
    """Number of parts Java's String.split gives: trailing empty strings are dropped."""
    parts = s.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return len(parts)


_JAVA_INT = re.compile(r"[+-]?[0-9]+")


def _parse_ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as Apache's IP provider reads it: IPv4 octets go through Integer.parseInt,
    so `10.0.0.01` is 10.0.0.1."""
    parts = addr.split(".")
    if len(parts) == 4 and all(_JAVA_INT.fullmatch(p) for p in parts):
        octets = [int(p) for p in parts]
        if all(0 <= o <= 255 for o in octets):
            return ipaddress.IPv4Address(bytes(octets))
        return None
    if ":" not in addr:
        return None
    try:
        return ipaddress.IPv6Address(addr)
    except ValueError:
        return None


def ip_acl_valid(expr: str) -> bool:
    addr_text, slash, bits_text = expr.partition("/")
    addr = _parse_ip(addr_text)
    if addr is None:
        return False
    if slash:
        if not _JAVA_INT.fullmatch(bits_text):
            return False
        return 0 <= int(bits_text) <= addr.max_prefixlen
    return True


def ip_matches(client_ip: str, expr: str) -> bool:
    if not ip_acl_valid(expr):
        return False
    addr_text, slash, bits_text = expr.partition("/")
    client = _parse_ip(client_ip)
    acl_addr = _parse_ip(addr_text)
    if client is None or acl_addr is None or client.version != acl_addr.version:
        return False
    bits = int(bits_text) if slash else acl_addr.max_prefixlen
    net = ipaddress.ip_network(f"{acl_addr}/{bits}", strict=False)
    return client in net


class AuthPolicy:
    """The server-wide auth settings: which schemes exist, super digest, skipACL."""

    def __init__(self, super_digest: str | None = None, skip_acl: bool = False, digest_enabled: bool = True,
                 *, x509: bool = False, x509_super_user: str | None = None, sasl: bool = False,
                 sasl_any_user: str | None = None):
        self.super_digest = super_digest
        self.skip_acl = skip_acl
        self.digest_enabled = digest_enabled
        # x509 / sasl: providers registered (secureClientPort, authProvider.N=...SASLAuthenticationProvider)
        self.x509 = x509
        self.x509_super_user = x509_super_user  # zookeeper.X509AuthenticationProvider.superUser
        self.sasl = sasl
        self.sasl_any_user = sasl_any_user  # zookeeper.letAnySaslUserDoX

    def schemes(self) -> set[str]:
        s = {"ip"}
        if self.digest_enabled:
            s.add("digest")
        if self.x509:
            s.add("x509")
        if self.sasl:
            s.add("sasl")
        return s

    def _matches_other(self, scheme: str, id_value: str, ident: str) -> bool:
        """X509AuthenticationProvider.matches and SASLAuthenticationProvider.matches."""
        if scheme == "x509":
            return self.x509 and (id_value == ident or id_value == self.x509_super_user)
        if scheme == "sasl":
            return self.sasl and (id_value in ("super", ident) or ident == self.sasl_any_user)
        return False

    def authenticate(self, scheme: str, auth: bytes, client_ip: str) -> list[Identity] | None:
        """Identities an AuthPacket grants, or None for AuthFailed (unknown scheme)."""
        if scheme == "digest" and self.digest_enabled:
            ident = digest_id(auth.decode("utf-8", "replace"))
            granted: list[Identity] = []
            if self.super_digest is not None and ident == self.super_digest:
                granted.append(SUPER_IDENTITY)
            granted.append(("digest", ident))
            return granted
        if scheme == "ip":
            return [("ip", client_ip)]
        return None

    def check(self, acl: Sequence[ACL] | None, perm: int, identities: Iterable[Identity]) -> bool:
        # Most nodes share the one world:anyone tuple (`fixup` returns it), which grants every
        # permission to everyone: an identity test spares the loop on every request.
        if acl is OPEN_ACL_UNSAFE or self.skip_acl or not acl:
            return True
        ids = list(identities)
        if SUPER_IDENTITY in ids:
            return True
        for perms, scheme, ident in acl:
            if not perms & perm:
                continue
            if scheme == "world" and ident == "anyone":
                return True
            for id_scheme, id_value in ids:
                if id_scheme != scheme:
                    continue
                if scheme == "digest" and self.digest_enabled and id_value == ident:
                    return True
                if scheme == "ip" and ip_matches(id_value, ident):
                    return True
                if self._matches_other(scheme, id_value, ident):
                    return True
        return False

    def require(self, acl: Sequence[ACL] | None, perm: int, identities: Iterable[Identity], path: str) -> None:
        if acl is not OPEN_ACL_UNSAFE and not self.check(acl, perm, identities):  # spares a call
            raise KeeperError(Err.NO_AUTH, path)

    def _valid_id(self, scheme: str, ident: str) -> bool:
        if scheme == "digest":
            return self.digest_enabled and _java_split_count(ident, ":") == 2
        if scheme == "x509" and self.x509:
            from ..security.x509 import valid_x500_name
            return valid_x500_name(ident)
        if scheme == "sasl" and self.sasl:
            return _kerberos_name_valid(ident)
        return scheme == "ip" and ip_acl_valid(ident)

    def _authenticated_schemes(self) -> tuple[str, ...]:
        # Providers whose isAuthenticated() is true, besides digest (ip's is false).
        return (("x509",) if self.x509 else ()) + (("sasl",) if self.sasl else ())

    def fixup(self, path: str, acl: list[ACL] | None, identities: Sequence[Identity]) -> tuple[ACL, ...]:
        """Validate a client-given ACL and expand the `auth` scheme to the caller's identities."""
        if acl == _OPEN_ACL_REQUEST:
            return OPEN_ACL_UNSAFE  # the shared tuple, so that `check` can recognise it
        unique: list[ACL] = []
        for a in acl or ():
            if a not in unique:
                unique.append(a)
        if not unique:
            raise KeeperError(Err.INVALID_ACL, path)
        out: list[ACL] = []
        for perms, scheme, ident in unique:
            if scheme is None or (ident is None and scheme != "auth"):
                raise KeeperError(Err.INVALID_ACL, path)
            if scheme == "world" and ident == "anyone":
                out.append((perms, scheme, ident))
            elif scheme == "auth":
                # Only schemes whose providers say "authenticated" count; ip does not.
                granted = [(perms, s, i) for s, i in java_id_order(identities)
                           if (s == "digest" and self.digest_enabled) or s in self._authenticated_schemes()]
                if not granted:
                    raise KeeperError(Err.INVALID_ACL, path)
                out.extend(granted)
            elif self._valid_id(scheme, ident):
                out.append((perms, scheme, ident))
            else:
                raise KeeperError(Err.INVALID_ACL, path)
        return tuple(out)


_KERBEROS_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


def _kerberos_name_valid(ident: str) -> bool:
    """SASLAuthenticationProvider.isValid: `new KerberosName(id)` accepts a simple name, or a
    name@REALM / service/host@REALM principal; anything else with an '@' is rejected."""
    return "@" not in ident or _KERBEROS_NAME.fullmatch(ident) is not None


def mask_digests(acl: Sequence[ACL]) -> list[ACL]:
    """getACL without ADMIN hides digest hashes (CVE-2019-0201)."""
    return [(p, s, i.split(":", 1)[0] + ":x" if s == "digest" else i) for p, s, i in acl]


def client_infos(identities: Iterable[Identity]) -> list[tuple[str, str]]:
    """whoAmI: (scheme, user) per identity; digest users lose their hash."""
    out = []
    for scheme, ident in java_id_order(identities):
        if scheme == "digest":
            user = ident.split(":", 1)[0]
        elif scheme == "super":
            user = ""  # no provider answers for "super"; Apache reports an empty user
        else:
            user = ident
        out.append((scheme, user))
    return out
