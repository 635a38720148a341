"""The server side of SASL (opcode 102): DIGEST-MD5 as RFC 2831 and the JDK's DigestMD5Server do it.

Theory of operation. A connection's first SASL packet (an empty token: DIGEST-MD5 has no
initial response) gets the challenge `realm="zk-sasl-md5",nonce=...,qop="auth",charset=utf-8,
algorithm=md5-sess`; the second carries the digest-response, which we check (nonce, nc,
digest-uri `zookeeper/zk-sasl-md5`, realm, qop, the response hash from the user's password in
the JAAS Server section) and answer with `rspauth=...`. The authorization id (authzid, or the
user name) becomes the connection's ("sasl", id) identity; ids named by zookeeper.superUser[.*]
also get ("super", ""). Anything else, a third packet, a response over 4096 bytes, an unknown
user, a wrong password, is a `SaslFailure`, which the core answers as ZooKeeperServer.processSasl
does: AuthFailed (or SessionClosedRequireSaslAuth when SASL is enforced) and the connection closes.

A JAAS Server section with Krb5LoginModule selects GSSAPI instead (`new_server`, gssapi_sasl.py),
as Apache's SecurityUtils.createSaslServer does.

No maintained Python package implements the server side of DIGEST-MD5 (pure-sasl is client-only;
the `sasl` package binds Cyrus and needs a sasldb), so this module does, in ~150 lines.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from . import jaas

log = logging.getLogger("zkserver.sasl")

SERVICE = "zookeeper"
SERVER_NAME = "zk-sasl-md5"  # SecurityUtils.createSaslServer(subject, "zookeeper", "zk-sasl-md5", ...)
MAX_RESPONSE_LENGTH = 4096  # DigestMD5Server: "Invalid digest response length"


class SaslFailure(Exception):
    """The client failed to authenticate; the text is the reason for the log."""


class SaslConfigError(Exception):
    """The SASL settings cannot be served (start-up stops with the reason)."""


@dataclass(frozen=True)
class SaslSettings:
    """What the SASL server needs: users, super users, and the server's login section."""

    users: dict[str, str] = field(default_factory=dict)
    super_users: frozenset[str] = frozenset()  # zookeeper.superUser and zookeeper.superUser.*
    super_password: str | None = None  # zookeeper.SASLAuthenticationProvider.superPassword
    allow_failed_clients: bool = False  # zookeeper.allowSaslFailedClients
    # A Krb5LoginModule in the section: GSSAPI is served instead of DIGEST-MD5, as Apache does
    # (security.gssapi_sasl.KerberosSettings).
    kerberos: Any = None

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> SaslSettings | None:
        """None when no JAAS Server section is configured (Apache then has no SASL server).

        As ServerCnxnFactory.configureSaslLogin: a JAAS file that cannot be read or parsed stops
        start-up; a file that parses but has no such section (kazoo's test harness writes an
        empty one) only means there is no SASL server. Without any JAAS file the JDK finds no
        configuration and raises nothing, so zookeeper.sasl.serverconfig alone changes nothing.
        """
        path = props.get("java.security.auth.login.config")
        section = props.get("zookeeper.sasl.serverconfig", "Server")
        if path is None:
            return None
        try:
            sections = jaas.load_jaas(path)
        except jaas.JaasError as e:
            # Apache reports an unreadable or unparsable file with this sentence; ours adds why.
            raise SaslConfigError(f"No JAAS configuration section named '{section}' was found in"
                                  f" '{path}': {e}") from None
        entries = sections.get(section)
        if entries is None:
            log.info("JAAS file %s has no section named '%s': no SASL server, SASL clients get no"
                     " token (as Apache)", path, section)
            return None
        kerberos = None
        if any(e.module == jaas.KRB5_MODULE for e in entries):
            from .gssapi_sasl import load_settings

            kerberos = load_settings(entries, props, f"{path}: section {section}")
        supers = frozenset(v for k, v in props.items()
                           if k == "zookeeper.superUser" or k.startswith("zookeeper.superUser."))
        return cls(
            users=jaas.digest_credentials(entries),
            super_users=supers,
            super_password=props.get("zookeeper.SASLAuthenticationProvider.superPassword"),
            allow_failed_clients=props.get("zookeeper.allowSaslFailedClients", "false").strip().lower() == "true",
            kerberos=kerberos,
        )

    def password(self, user: str) -> str | None:
        if user not in self.users:
            log.warning("User '%s' not found in list of DIGEST-MD5 authenticateable users.", user)
            return None
        if user == "super" and self.super_password is not None:
            return self.super_password
        return self.users[user]


def new_server(settings: SaslSettings) -> Any:
    """A connection's SASL server, chosen as SecurityUtils.createSaslServer does: GSSAPI when the
    JAAS Server section logged in with Kerberos, else DIGEST-MD5."""
    if settings.kerberos is not None:
        from .gssapi_sasl import GssapiServer, NullSaslServer

        if not settings.kerberos.has_host:
            return NullSaslServer()
        try:
            return GssapiServer(settings.kerberos)
        except Exception as e:  # the JDK: "failed to create a SaslServer", then the null path
            log.error("Zookeeper Server failed to create a SaslServer to interact with a client during"
                      " session initiation: %s", e)
            return NullSaslServer()
    return DigestMd5Server(settings)


_DIRECTIVE = re.compile(rb'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,"]*?))\s*(?:,|$)', re.S)


def parse_directives(data: bytes) -> dict[str, bytes]:
    """RFC 2831 `key=value` / `key="quoted"` list; a repeated key is a format violation."""
    out: dict[str, bytes] = {}
    pos = 0
    data = data.strip()
    while pos < len(data):
        if data[pos:pos + 1] in (b",", b" ", b"\t"):
            pos += 1
            continue
        m = _DIRECTIVE.match(data, pos)
        if m is None or m.end() == pos:
            raise SaslFailure("DIGEST-MD5: digest response format violation")
        key = m.group(1).decode("ascii").lower()
        value = re.sub(rb"\\(.)", rb"\1", m.group(2)) if m.group(2) is not None else m.group(3)
        if key in out:
            raise SaslFailure(f"DIGEST-MD5: digest response format violation. Duplicate directive {key}")
        out[key] = value
        pos = m.end()
    return out


def _h(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def _hex(data: bytes) -> bytes:
    return hashlib.md5(data).hexdigest().encode("ascii")


class DigestMd5Server:
    """One connection's DIGEST-MD5 exchange. `step(token)` returns the server's token."""

    def __init__(self, settings: SaslSettings, nonce: bytes | None = None):
        self.settings = settings
        self.nonce = nonce or base64.b64encode(os.urandom(30))
        self.state = 0  # 0: send the challenge, 1: check the response, 2: complete
        self.authorization_id: str | None = None

    @property
    def complete(self) -> bool:
        return self.state == 2

    def step(self, token: bytes) -> bytes:
        if self.state == 0:
            self.state = 1
            return (b'realm="' + SERVER_NAME.encode() + b'",nonce="' + self.nonce
                    + b'",qop="auth",charset=utf-8,algorithm=md5-sess')
        if self.state == 1:
            self.state = 3  # any failure below ends the exchange
            rspauth = self._check(token)
            self.state = 2
            return rspauth
        raise SaslFailure("DIGEST-MD5 authentication already complete" if self.state == 2
                          else "DIGEST-MD5 authentication already failed")

    def _check(self, token: bytes) -> bytes:
        if len(token) > MAX_RESPONSE_LENGTH:
            raise SaslFailure(f"DIGEST-MD5: Invalid digest response length. Got: {len(token)}"
                              f" Expected < {MAX_RESPONSE_LENGTH}")
        d = parse_directives(token)
        for key in ("username", "nonce", "cnonce", "digest-uri", "response"):
            if key not in d:
                raise SaslFailure(f"DIGEST-MD5: digest response format violation. Missing {key}")
        utf8 = d.get("charset", b"").lower() == b"utf-8"
        enc = "utf-8" if utf8 else "latin-1"
        if d["nonce"] != self.nonce:
            raise SaslFailure("DIGEST-MD5: digest response format violation. Mismatched nonce.")
        if d.get("nc", b"00000001") != b"00000001":
            raise SaslFailure("DIGEST-MD5: nonce count is not 00000001")
        qop = d.get("qop", b"auth")
        if qop != b"auth":
            raise SaslFailure(f"DIGEST-MD5: qop {qop.decode('latin-1')!r} was not offered")
        realm = d.get("realm", b"")
        if realm and realm != SERVER_NAME.encode():
            raise SaslFailure(f"DIGEST-MD5: digest response format violation. Nonexistent realm: {realm!r}")
        uri = d["digest-uri"].decode(enc, "replace")
        serv, _, host = uri.partition("/")
        if serv.lower() != SERVICE or host.split("/")[0].lower() != SERVER_NAME:
            raise SaslFailure(f"DIGEST-MD5: digest response format violation. Mismatched URI: {uri};"
                              f" expecting: {SERVICE}/{SERVER_NAME}")
        user = d["username"].decode(enc, "replace")
        password = self.settings.password(user)
        if password is None:
            raise SaslFailure(f"DIGEST-MD5: cannot get password for user {user!r}")
        authzid = d.get("authzid")
        a1 = _h(d["username"] + b":" + realm + b":" + password.encode(enc, "replace"))
        a1 += b":" + self.nonce + b":" + d["cnonce"] + (b":" + authzid if authzid else b"")
        ha1 = _hex(a1)
        tail = b":" + self.nonce + b":" + d.get("nc", b"00000001") + b":" + d["cnonce"] + b":" + qop + b":"
        expected = _hex(ha1 + tail + _hex(b"AUTHENTICATE:" + d["digest-uri"]))
        if d["response"].lower() != expected:
            raise SaslFailure("DIGEST-MD5: digest response format violation. Mismatched response.")
        # SaslServerCallbackHandler authorizes every client and sets the id from the
        # authentication id (KerberosName short name: the user name itself here).
        self.authorization_id = user
        log.info("Successfully authenticated client: authenticationID=%s;  authorizationID=%s.",
                 user, self.authorization_id)
        return b"rspauth=" + _hex(ha1 + tail + _hex(b":" + d["digest-uri"]))
