"""The server side of SASL GSSAPI (RFC 4752): Kerberos logins on opcode 102, as Apache serves them.

Theory of operation. Apache offers GSSAPI instead of DIGEST-MD5 when the JAAS Server section
logs in with `com.sun.security.auth.module.Krb5LoginModule` (its Subject then has a principal;
SecurityUtils.createSaslServer). We read the same section: `principal` (service/host@REALM),
`keyTab`, `useKeyTab`, `storeKey`, `isInitiator`. At start-up, as Krb5LoginModule.login does, an
initiator (the default) gets a ticket-granting ticket from the KDC with the keytab's key, so a
stale keytab or an unknown principal stops start-up; then the acceptor credentials (the
principal's keys in the keytab) are acquired once through python-gssapi (MIT krb5).

Per connection, `GssapiServer.step(token)` does what the JDK's GssKrb5Server does:
  1. GSS context establishment (`SecurityContext(usage='accept')`); the client's initial token
     comes in the first packet; with mutual authentication the AP-REP goes back.
  2. once established, the security-layer offer: wrap (integrity, no confidentiality) of four
     bytes, layer bitmask 1 (no security layer: ZooKeeper uses SASL for authentication only)
     and the maximum buffer 65536, as the JDK sends them;
  3. the client's reply, unwrapped: the selected layer (it must include "no security layer"),
     its buffer size, and an optional authorization id. The exchange is complete; the reply
     token is null.
The identity is SaslServerCallbackHandler's: the authenticated principal shortened by the
KerberosName rules (zookeeper.security.auth_to_local, DEFAULT: the first component when the
realm is the default realm), then "/host" unless zookeeper.kerberos.removeHostFromPrincipal=true
and "@REALM" unless zookeeper.kerberos.removeRealmFromPrincipal=true. When no rule applies,
Apache logs the error and keeps the client's authorization id (AuthorizeCallback's fallback);
so do we. Every failure is a `SaslFailure`, answered by the core as for DIGEST-MD5.

`gssapi` (python-gssapi, binds the system's MIT krb5) is imported only when a Kerberos Server
section is configured: `pip install 'zkserver[kerberos]'` brings it (it builds against libkrb5-dev).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from . import jaas
from .sasl import SaslConfigError, SaslFailure

log = logging.getLogger("zkserver.sasl")

NO_SECURITY_LAYER = 1  # RFC 4752 bitmask; 2 = integrity, 4 = confidentiality
MAX_BUFFER = 65536  # javax.security.sasl.maxbuffer default, what the JDK's server offers
JDK_KRB5_CONF = "java.security.krb5.conf"


def _flag(options: dict[str, str], key: str, default: bool) -> bool:
    """Krb5LoginModule reads booleans with "true".equalsIgnoreCase(value)."""
    value = options.get(key)
    return default if value is None else value.strip().lower() == "true"


# --------------------------------------------------------------------------- KerberosName


class NoMatchingRule(Exception):
    """KerberosName.getShortName: no auth_to_local rule applies (or one yields a non-simple name)."""


_RULE = re.compile(r"\s*((DEFAULT)|(RULE:\[(\d*):([^\]]*)](\(([^)]*)\))?(s/([^/]*)/([^/]*)/(g)?)?))")
_PARAM = re.compile(r"([^$]*)(\$(\d*))?")
_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


def _java_replacement(to: str) -> Any:
    """Java's Matcher replacement string ($n groups, backslash escapes) as a Python re.sub callable."""
    def expand(m: re.Match[str]) -> str:
        out, i = [], 0
        while i < len(to):
            c = to[i]
            if c == "\\" and i + 1 < len(to):
                out.append(to[i + 1])
                i += 2
            elif c == "$" and i + 1 < len(to) and to[i + 1].isdigit():
                j = i + 1
                while j < len(to) and to[j].isdigit():
                    j += 1
                out.append(m.group(int(to[i + 1:j])) or "")
                i = j
            else:
                out.append(c)
                i += 1
        return "".join(out)
    return expand


@dataclass(frozen=True)
class Rule:
    """One auth_to_local rule: DEFAULT, or RULE:[n:format](match)s/from/to/g."""

    default: bool = True
    components: int = 0
    fmt: str = ""
    match: str | None = None
    from_pattern: str | None = None
    to_pattern: str = ""
    repeat: bool = False

    def apply(self, params: list[str], default_realm: str) -> str | None:
        result: str | None = None
        if self.default:
            if params[0] == default_realm:
                result = params[1]
        elif len(params) - 1 == self.components:
            base = _replace_parameters(self.fmt, params)
            if self.match is None or re.fullmatch(self.match, base):
                if self.from_pattern is None:
                    result = base
                else:
                    result = re.sub(self.from_pattern, _java_replacement(self.to_pattern), base,
                                    count=0 if self.repeat else 1)
        if result is not None and re.search(r"[/@]", result):
            raise NoMatchingRule(f"Non-simple name {result} after auth_to_local rule {self}")
        return result


def _replace_parameters(fmt: str, params: list[str]) -> str:
    out, start = [], 0
    while start < len(fmt):
        m = _PARAM.match(fmt, start)
        if m is None or m.end() == start:
            break
        out.append(m.group(1))
        if m.group(3) is not None:
            if not m.group(3).isdigit():
                raise NoMatchingRule(f"bad format in username mapping in {m.group(3)}")
            num = int(m.group(3))
            if num < 0 or num > len(params):
                raise NoMatchingRule(f"index {num} from {fmt} is outside of the valid range 0 to {len(params) - 1}")
            if num == len(params):  # Java: ArrayIndexOutOfBounds past the check; treat as no match
                raise NoMatchingRule(f"index {num} from {fmt} is outside of the valid range")
            out.append(params[num])
        start = m.end()
    return "".join(out)


def parse_rules(text: str) -> tuple[Rule, ...]:
    """KerberosName.parseRules (zookeeper.security.auth_to_local); a bad rule stops start-up."""
    rules: list[Rule] = []
    remaining = text.strip()
    while remaining:
        m = _RULE.match(remaining)
        if m is None:
            raise SaslConfigError(f"zookeeper.security.auth_to_local: Invalid rule: {remaining}")
        if m.group(2) is not None:
            rules.append(Rule())
        else:
            try:
                for pattern in (m.group(7), m.group(9)):
                    if pattern is not None:
                        re.compile(pattern)
            except re.error as e:
                raise SaslConfigError(f"zookeeper.security.auth_to_local: {e}: {remaining}") from None
            rules.append(Rule(False, int(m.group(4) or 0), m.group(5), m.group(7), m.group(9), m.group(10) or "",
                              m.group(11) == "g"))
        remaining = remaining[m.end():]
    return tuple(rules)


@dataclass(frozen=True)
class KerberosName:
    """org.apache.zookeeper.server.auth.KerberosName: service[/host][@REALM]."""

    service: str
    host: str | None
    realm: str | None

    @classmethod
    def parse(cls, name: str) -> KerberosName:
        m = _NAME.fullmatch(name)
        if m is None:
            if "@" in name:
                raise ValueError(f"Malformed Kerberos name: {name}")
            return cls(name, None, None)
        return cls(m.group(1), m.group(3), m.group(4))

    def short_name(self, rules: tuple[Rule, ...], default_realm: str) -> str:
        if self.host is None:
            if self.realm is None:
                return self.service
            params = [self.realm, self.service]
        else:
            params = [self.realm or "", self.service, self.host]
        for rule in rules:
            result = rule.apply(params, default_realm)
            if result is not None:
                return result
        raise NoMatchingRule(f"No rules applied to {self}")

    def __str__(self) -> str:
        return self.service + (f"/{self.host}" if self.host is not None else "") + (
            f"@{self.realm}" if self.realm is not None else "")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class KerberosSettings:
    """The Kerberos side of the JAAS Server section, with the acceptor credentials acquired."""

    principal: str  # as the section names it
    keytab: str | None
    service: str  # the principal's first component ("zookeeper")
    host: str  # its host component
    creds: Any = field(repr=False, default=None)  # gssapi.Credentials; None: no keys (storeKey not true)
    has_host: bool = True  # False: the principal has no "/host", Apache creates no SaslServer
    remove_host: bool = False  # zookeeper.kerberos.removeHostFromPrincipal
    remove_realm: bool = False  # zookeeper.kerberos.removeRealmFromPrincipal
    rules: tuple[Rule, ...] = (Rule(),)  # zookeeper.security.auth_to_local
    default_realm: str = ""

    def authorize(self, peer: str, authzid: str) -> str:
        """SaslServerCallbackHandler.handleAuthorizeCallback: the id the connection gets."""
        log.info("Successfully authenticated client: authenticationID=%s;  authorizationID=%s.", peer, authzid)
        name = KerberosName.parse(peer)
        try:
            user = name.short_name(self.rules, self.default_realm)
        except NoMatchingRule as e:
            log.error("Failed to set name based on Kerberos authentication rules. %s", e)
            return authzid  # AuthorizeCallback.getAuthorizedID falls back to the authorization id
        if not self.remove_host and name.host is not None:
            user += "/" + name.host
        if not self.remove_realm and name.realm is not None:
            user += "@" + name.realm
        log.info("Setting authorizedID: %s", user)
        return user


def _gssapi() -> Any:
    try:
        import gssapi
    except ImportError as e:
        raise SaslConfigError("a Krb5LoginModule Server section needs the gssapi package (python-gssapi on"
                              " MIT krb5: pip install 'zkserver[kerberos]', which builds against libkrb5-dev):"
                              f" {e}") from None
    return gssapi


def _props_true(props: dict[str, str], key: str) -> bool:
    return props.get(key) == "true"  # "true".equals(System.getProperty(key)): case matters


def default_realm(gssapi: Any) -> str:
    """krb5.conf's default_realm (KerberosUtil.getDefaultRealm); "" when there is none."""
    try:
        name = gssapi.Name("x", gssapi.NameType.kerberos_principal).canonicalize(gssapi.MechType.kerberos)
    except gssapi.exceptions.GSSError:
        return ""
    text = str(name)
    return text.rpartition("@")[2] if "@" in text else ""


def load_settings(entries: list[jaas.LoginEntry], props: dict[str, str], where: str) -> KerberosSettings:
    """The Krb5LoginModule entry of the Server section -> settings; log in as Krb5LoginModule would."""
    entry = next(e for e in entries if e.module == jaas.KRB5_MODULE)
    opts = entry.options
    krb5_conf = props.get(JDK_KRB5_CONF)
    if krb5_conf is not None:
        # The JDK reads -Djava.security.krb5.conf; MIT reads KRB5_CONFIG. This process is the server's.
        os.environ["KRB5_CONFIG"] = krb5_conf
    for key in ("java.security.krb5.realm", "java.security.krb5.kdc"):
        if key in props:
            log.warning("%s is not read by zkserver (MIT krb5): put the realm and KDC in krb5.conf", key)
    gssapi = _gssapi()
    principal = opts.get("principal")
    if not principal or principal == "*":
        raise SaslConfigError(f"{where}: Krb5LoginModule needs principal=\"service/host@REALM\" for zkserver"
                              " (no principal, or '*', is not served)")
    use_keytab = _flag(opts, "useKeyTab", False)
    keytab = opts.get("keyTab") if use_keytab else None
    if use_keytab and keytab is not None and not os.path.exists(keytab):
        raise SaslConfigError(f"{where}: Could not configure server because SASL configuration did not allow the"
                              f" ZooKeeper server to authenticate itself properly: keyTab {keytab} does not exist")
    if not use_keytab:
        raise SaslConfigError(f"{where}: Krb5LoginModule without useKeyTab=true: zkserver reads the server's keys"
                              " from a keytab only (a ticket cache holds no keys to accept with)")
    try:
        name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
    except gssapi.exceptions.GSSError as e:
        raise SaslConfigError(f"{where}: principal {principal!r}: {e}") from None
    store = {"keytab": keytab} if keytab else None
    if _flag(opts, "isInitiator", True):
        # Krb5LoginModule.login: an initiator gets a TGT with the keytab's key (useKeyTab); a stale
        # keytab or an unknown principal fails here, and Apache's start-up stops.
        init_store = {"ccache": f"MEMORY:zkserver-login-{os.getpid()}"}
        if keytab:
            init_store["client_keytab"] = keytab
        try:
            creds = gssapi.Credentials(name=name, usage="initiate", store=init_store)
            creds.lifetime  # noqa: B018 - makes MIT obtain the TGT now
        except gssapi.exceptions.GSSError as e:
            raise SaslConfigError(f"{where}: Could not configure server because SASL configuration did not allow"
                                  f" the ZooKeeper server to authenticate itself properly: {e}") from None
    service, sep, rest = principal.partition("/")
    host = rest.partition("@")[0]
    acceptor = None
    if not sep:
        # SecurityUtils.createSaslServer cannot split service/host: no SaslServer for any connection.
        log.error("server principal name/hostname determination error: %s has no '/'", principal)
    elif not _flag(opts, "storeKey", False):
        # Without storeKey the Subject holds no keys: the JDK's server fails every client's AP-REQ.
        log.error("Krb5LoginModule storeKey is not true: the server keeps no keys, every GSSAPI client will fail")
    else:
        try:
            acceptor = gssapi.Credentials(name=name, usage="accept", store=store)
        except gssapi.exceptions.GSSError as e:
            raise SaslConfigError(f"{where}: no keys for {principal} in keytab {keytab}: {e}") from None
    rules = parse_rules(props.get("zookeeper.security.auth_to_local", "DEFAULT"))
    realm = default_realm(gssapi)
    if not realm and props.get("zookeeper.requireKerberosConfig") == "true":
        raise SaslConfigError("Can't get Kerberos configuration (no default_realm)")
    log.info("SASL GSSAPI for %s (keytab %s)", principal, keytab)
    return KerberosSettings(
        principal=principal, keytab=keytab, service=service, host=host, creds=acceptor, has_host=bool(sep),
        remove_host=_props_true(props, "zookeeper.kerberos.removeHostFromPrincipal"),
        remove_realm=_props_true(props, "zookeeper.kerberos.removeRealmFromPrincipal"),
        rules=rules, default_realm=realm,
    )


# --------------------------------------------------------------------------- the exchange


class NullSaslServer:
    """Apache's connection whose SaslServer could not be created: every SASL packet is answered
    OK with a null token (the NullPointerException path of ZooKeeperServer.processSasl)."""

    complete = False
    authorization_id: str | None = None

    def step(self, token: bytes) -> bytes | None:
        log.error("cnxn.saslServer is null: cnxn object did not initialize its saslServer properly.")
        return None


class GssapiServer:
    """One connection's GSSAPI exchange. `step(token)` returns the server's token (None: null)."""

    def __init__(self, settings: KerberosSettings):
        import gssapi

        self._gssapi = gssapi
        self.settings = settings
        # creds None (storeKey not true): no context; the first step fails as the JDK's does.
        self.ctx = gssapi.SecurityContext(creds=settings.creds, usage="accept") if settings.creds else None
        self.stage = 0  # 0: establishing, 1: offer layers, 2: read the choice, 3: complete, 4: failed
        self.peer = ""
        self.authorization_id: str | None = None

    @property
    def complete(self) -> bool:
        return self.stage == 3

    def step(self, token: bytes) -> bytes | None:
        stage, self.stage = self.stage, 4  # any failure below ends the exchange
        if stage == 0:
            out = self._accept(token)
        elif stage == 1:
            if token:
                raise SaslFailure("Handshake expecting no response data from server")
            out = self._offer_layers()
        elif stage == 2:
            out = self._read_choice(token)
        else:
            raise SaslFailure("Authentication exchange already completed" if stage == 3
                              else "GSSAPI authentication already failed")
        return out

    def _accept(self, token: bytes) -> bytes | None:
        if self.ctx is None:
            raise SaslFailure("GSS initiate failed: Cannot find key of appropriate type to decrypt AP-REQ"
                              " (Krb5LoginModule storeKey is not true)")
        try:
            out = self.ctx.step(token)
            # python-gssapi returns an error token (KRB-ERROR) for the peer and raises the error on
            # the next use of the context; the JDK sends no token, the failure is all the client gets.
            complete = self.ctx.complete
        except self._gssapi.exceptions.GSSError as e:
            raise SaslFailure(f"GSS initiate failed: {e}") from None
        if not complete:
            self.stage = 0
            return out or b""
        self.peer = str(self.ctx.initiator_name)
        self.stage = 1
        if out is None:  # no mutual authentication asked: the layer offer goes now
            return self._offer_layers()
        return out

    def _offer_layers(self) -> bytes:
        offer = bytes([NO_SECURITY_LAYER]) + MAX_BUFFER.to_bytes(3, "big")
        try:
            wrapped = self.ctx.wrap(offer, False).message
        except self._gssapi.exceptions.GSSError as e:
            raise SaslFailure(f"Problem wrapping handshake: {e}") from None
        self.stage = 2
        return wrapped

    def _read_choice(self, token: bytes) -> None:
        try:
            plain = self.ctx.unwrap(token).message
        except self._gssapi.exceptions.GSSError as e:
            raise SaslFailure(f"Final handshake failed: {e}") from None
        if len(plain) < 4:
            raise SaslFailure("Final handshake response not long enough")
        if plain[0] & NO_SECURITY_LAYER == 0:
            raise SaslFailure(f"Client selected unsupported protection: {plain[0]}")
        authzid = plain[4:].decode("utf-8", "replace") if len(plain) > 4 else self.peer
        try:
            self.authorization_id = self.settings.authorize(self.peer, authzid)
        except ValueError as e:  # a principal KerberosName cannot parse
            raise SaslFailure(str(e)) from None
        self.stage = 3
        return None
