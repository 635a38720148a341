"""zoo.cfg and system-property configuration, read the way Apache ZooKeeper reads it.

Theory of operation
-------------------
Apache ZooKeeper has two sources of settings: the config file (a java.util.Properties
file) and JVM system properties (``-Dname=value``). It reads the file key by key. Keys it
knows become fields of its config object. Every other key becomes the system property
``zookeeper.<key>``, which *overwrites* a ``-D`` value of that name. Most components then
read system properties, not the file. So ``snapCount=10`` in zoo.cfg and
``-Dzookeeper.snapCount=10`` mean the same, while ``jute.maxbuffer`` in zoo.cfg becomes
``zookeeper.jute.maxbuffer``, a name nothing reads.

We keep that model, but without global state:

* ``parse_system_properties`` collects ``-D`` items from the command line and from the
  ``SERVER_JVMFLAGS``/``JVMFLAGS`` variables that zkServer.sh passes to the JVM.
* ``load_config`` parses the file, merges the unknown keys into the properties as Apache
  does, validates every value, and returns one frozen ``ServerConfig``. Nothing reads
  ``os.environ`` or a global after that.
* Typed accessors on ``ServerConfig`` read ``properties`` with Apache's property names
  and defaults, so the rest of the server never spells a property name.

Where Apache silently falls back to a default on a malformed value (``Integer.getInteger``),
or treats a misspelt boolean as false (``forceSync=false`` still fsyncs), we stop start-up
with the file, line and reason instead (DESIGN.md §5). A config Apache accepts with
well-formed values is accepted here with the same meaning.
"""

from __future__ import annotations

import os
import re
import shlex
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, NamedTuple

__all__ = [
    "DEFAULT_METRICS_PROVIDER",
    "FOUR_LETTER_WORDS",
    "TELNET_CLOSE",
    "ConfigError",
    "PeerAddress",
    "PropertyLine",
    "ServerConfig",
    "ServerSpec",
    "ensemble_refusal_message",
    "is_standalone",
    "load_config",
    "parse_properties",
    "parse_system_properties",
]

DEFAULT_METRICS_PROVIDER = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"
PROMETHEUS_METRICS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
X509_AUTH_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"

# The commands FourLetterCommands knows; "*" in the whitelist enables all of them.
FOUR_LETTER_WORDS: tuple[str, ...] = (
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk",
    "srst", "srvr", "stat", "wchc", "wchp", "wchs", "mntr", "isro", "hash",
)
# Apache's command table also holds the telnet close code under this name, so "*" enables it
# too, and without it a telnet close gets the "not in the whitelist" reply.
TELNET_CLOSE = "telnet close"

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

# Properties that Apache reads *without* the "zookeeper." prefix. Written in zoo.cfg they
# become "zookeeper.<key>" and have no effect there, a classic operator surprise.
_UNPREFIXED_PROPERTIES = frozenset({
    "jute.maxbuffer",
    "readonlymode.enabled",
    "znode.container.checkIntervalMs",
    "znode.container.maxPerMinute",
    "znode.container.maxNeverUsedIntervalMs",
})


# ---------------------------------------------------------------------------------------
# Errors and value parsers


class ConfigError(Exception):
    """A configuration that must stop start-up; str() is "zoo.cfg:12: reason"."""

    def __init__(self, path: str | None, line: int | None, reason: str) -> None:
        super().__init__(path, line, reason)
        self.path = path
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        if self.path is None:
            return self.reason
        if self.line is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}:{self.line}: {self.reason}"


class _Bad(ValueError):
    """A value that does not parse; the caller adds the file, line and key."""


_DECIMAL = re.compile(r"[+-]?[0-9]+\Z")  # ASCII only: int() also takes "1_000" and non-ASCII digits


def _in_range(n: int, text: str, bits: tuple[int, int]) -> int:
    if not bits[0] <= n <= bits[1]:
        raise _Bad(f"{text!r} is out of range for a {bits[1].bit_length() + 1}-bit number")
    return n


def _int(text: str) -> int:
    """Java Integer.parseInt: decimal only, 32-bit."""
    if not _DECIMAL.match(text):
        raise _Bad(f"{text!r} is not a number")
    return _in_range(int(text), text, _INT32)


def _long(text: str) -> int:
    """Java Long.parseLong: decimal only, 64-bit."""
    if not _DECIMAL.match(text):
        raise _Bad(f"{text!r} is not a number")
    return _in_range(int(text), text, _INT64)


def _decode(text: str, bits: tuple[int, int]) -> int:
    """Java Integer.decode / Long.decode, which Integer.getInteger uses: 0x1F, #1F, 017, -5."""
    body = text[1:] if text.startswith(("+", "-")) else text
    if body.startswith(("0x", "0X")):
        digits, base = body[2:], 16
    elif body.startswith("#"):
        digits, base = body[1:], 16
    elif body.startswith("0") and len(body) > 1:
        digits, base = body[1:], 8
    else:
        digits, base = body, 10
    allowed = string.hexdigits if base == 16 else string.digits[:base]
    if not digits or any(c not in allowed for c in digits):
        raise _Bad(f"{text!r} is not a number")
    n = int(digits, base)
    return _in_range(-n if text.startswith("-") else n, text, bits)


def _decode_int(text: str) -> int:
    return _decode(text, _INT32)


def _decode_long(text: str) -> int:
    return _decode(text, _INT64)


def _positive_decode_int(text: str) -> int:
    n = _decode_int(text)
    if n <= 0:
        raise _Bad(f"{text!r} must be positive")
    return n


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise _Bad(f"{text!r} is not true or false")
    return lowered == "true"


def _yes_no(text: str) -> bool:
    # skipACL and forceSync are switched by the exact words yes/no; Apache reads any other
    # word ("true", "false") as the default, which silently inverts what the operator meant.
    if text not in ("yes", "no"):
        raise _Bad(f"{text!r} is not yes or no")
    return text == "yes"


def _port(text: str) -> int:
    # 0 is allowed: Apache binds an InetSocketAddress, and port 0 asks the OS for a free one.
    n = _int(text)
    if not 0 <= n <= 65535:
        raise _Bad(f"{n} is not a port number (0..65535)")
    return n


def _optional_port(text: str) -> int | None:
    n = _int(text)  # observerMasterPort: Apache treats <= 0 as "not set"
    if n > 65535:
        raise _Bad(f"{n} is not a port number (1..65535)")
    return n if n > 0 else None


def _text(text: str) -> str:
    return text


def _nonempty(text: str) -> str:
    if not text:
        raise _Bad("empty value")
    return text


def _address(text: str) -> str:
    # "[::1]" is how an IPv6 literal is written in zoo.cfg; sockets want it bare.
    return _nonempty(text[1:-1] if text.startswith("[") and text.endswith("]") else text)


def _election_alg(text: str) -> int:
    n = _int(text)
    if n != 3:
        raise _Bad(f"{n} is not supported; only 3 (fast leader election) is")
    return n


def _peer_type(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("participant", "observer"):
        raise _Bad(f"{text!r} is not participant or observer")
    return lowered


def _session_timeout(text: str) -> int:
    n = _int(text)
    if n < -1:
        raise _Bad(f"{n} must be -1 (2x/20x tickTime) or a time in ms")
    return n


def _client_auth(text: str) -> str:
    if text.lower() not in ("", "none", "want", "need"):
        raise _Bad(f"{text!r} is not none, want or need")
    return text


def _compression(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("", "gz", "snappy"):
        raise _Bad(f"{text!r} is not gz, snappy or empty")
    return lowered


# ---------------------------------------------------------------------------------------
# java.util.Properties text format


class PropertyLine(NamedTuple):
    key: str
    value: str
    line: int  # first physical line of the (possibly continued) logical line


_NEWLINE = re.compile(r"\r\n|\r|\n")  # not str.splitlines: it also splits on \v, \x1c, \u2028
_BLANK = " \t\f"  # the only characters Properties treats as white space
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _odd_trailing_backslashes(text: str) -> bool:
    return (len(text) - len(text.rstrip("\\"))) % 2 == 1


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    natural = _NEWLINE.split(text)
    i = 0
    while i < len(natural):
        first = i + 1
        line = natural[i].lstrip(_BLANK)
        i += 1
        if not line or line[0] in "#!":
            continue  # a comment is never continued, even if it ends with a backslash
        parts = []
        while _odd_trailing_backslashes(line):
            parts.append(line[:-1])
            # At end of file the dangling backslash is dropped, as Properties does.
            line = natural[i].lstrip(_BLANK) if i < len(natural) else ""
            i += 1
        parts.append(line)
        yield first, "".join(parts)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        i += 1
        if c != "\\":
            out.append(c)
            continue
        if i >= len(text):
            break  # a lone trailing backslash is dropped, as Properties does
        c = text[i]
        i += 1
        if c == "u":
            digits = text[i:i + 4]
            if len(digits) < 4 or any(d not in string.hexdigits for d in digits):
                raise _Bad("malformed \\uxxxx escape")
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append(_ESCAPES.get(c, c))
    return "".join(out)


def _split_key_value(line: str) -> tuple[str, str]:
    """Key ends at the first unescaped '=', ':' or blank; one '='/':' may follow blanks."""
    key_end, value_start, has_sep, escaped = len(line), len(line), False, False
    for pos, c in enumerate(line):
        if not escaped and c in "=:":
            key_end, value_start, has_sep = pos, pos + 1, True
            break
        if not escaped and c in _BLANK:
            key_end, value_start = pos, pos + 1
            break
        escaped = c == "\\" and not escaped
    while value_start < len(line):
        c = line[value_start]
        if c not in _BLANK:
            if has_sep or c not in "=:":
                break
            has_sep = True
        value_start += 1
    return _unescape(line[:key_end]), _unescape(line[value_start:])


def parse_properties(text: str, path: str | None = None) -> list[PropertyLine]:
    """Parse java.util.Properties text: entries in file order, duplicates kept.

    Keys and values are trimmed, as Apache trims them before use.
    """
    entries = []
    for number, line in _logical_lines(text):
        try:
            key, value = _split_key_value(line)
        except _Bad as exc:
            raise ConfigError(path, number, str(exc)) from None
        entries.append(PropertyLine(key.strip(), value.strip(), number))
    return entries


# ---------------------------------------------------------------------------------------
# System properties (-D) from the command line and the environment


def _split_define(item: str, source: str) -> tuple[str, str]:
    name, _, value = item[2:].partition("=")  # a bare -Dname is "", as in Java
    if not name:
        raise ConfigError(None, None, f"{source}: {item!r} has no property name")
    return name, value


def parse_system_properties(
    args: list[str], env: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Collect -Dname=value items; return (properties, the other args in order).

    zkServer.sh runs java with "$SERVER_JVMFLAGS $JVMFLAGS", and the JVM keeps the last -D
    of a name, so JVMFLAGS beats SERVER_JVMFLAGS and the command line beats both. Scanning
    stops at "--"; it and everything after it are left in the returned args.
    """
    props: dict[str, str] = {}
    for var in ("SERVER_JVMFLAGS", "JVMFLAGS"):
        try:
            words = shlex.split(env.get(var, ""))
        except ValueError as exc:
            raise ConfigError(None, None, f"{var}: cannot split into words: {exc}") from None
        for word in words:
            if word.startswith("-D"):
                name, value = _split_define(word, var)
                props[name] = value
    rest: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg.startswith("-D"):
            name, value = _split_define(arg, "command line")
            props[name] = value
        else:
            rest.append(arg)
    return props, rest


# ---------------------------------------------------------------------------------------
# The configuration


@dataclass(frozen=True)
class PeerAddress:
    host: str
    quorum_port: int
    election_port: int


@dataclass(frozen=True)
class ServerSpec:
    """One server.N line: addr:quorumPort:electionPort[:type][|...][;[clientAddr:]clientPort]."""

    sid: int
    addresses: tuple[PeerAddress, ...]
    peer_type: str = "participant"
    client_address: str | None = None  # None: all addresses
    client_port: int | None = None

    @property
    def host(self) -> str:
        return self.addresses[0].host

    @property
    def quorum_port(self) -> int:
        return self.addresses[0].quorum_port

    @property
    def election_port(self) -> int:
        return self.addresses[0].election_port

    @property
    def is_observer(self) -> bool:
        return self.peer_type == "observer"


@dataclass(frozen=True)
class ServerConfig:
    """Every setting the server uses. Build it with load_config(); defaults are Apache's.

    The defaults here are those of load_config(None) (no config file at all).
    """

    source_path: str | None = None
    source_text: str | None = None  # the file as read, for the icfg admin command
    # Core
    tick_time: int = 2000
    data_dir: str = "./data"
    data_log_dir: str = ""  # "" means the same as data_dir (filled in below)
    client_port: int | None = 2181
    client_port_address: str | None = None  # None: all addresses
    secure_client_port: int | None = None
    secure_client_port_address: str | None = None
    client_port_listen_backlog: int = -1
    max_client_cnxns: int = 60
    max_cnxns: int = 0
    min_session_timeout: int = -1
    max_session_timeout: int = -1
    local_sessions_enabled: bool = False
    local_sessions_upgrading_enabled: bool = False
    # Ensemble
    server_id: int | None = None
    servers: dict[int, ServerSpec] = field(default_factory=dict)
    groups: dict[int, tuple[int, ...]] = field(default_factory=dict)
    weights: dict[int, int] = field(default_factory=dict)
    peer_type: str = "participant"
    init_limit: int = 0
    sync_limit: int = 0
    connect_to_learner_master_limit: int = 0
    election_alg: int = 3
    standalone_enabled: bool = True
    reconfig_enabled: bool = False
    dynamic_config_file: str | None = None
    quorum_listen_on_all_ips: bool = False
    multi_address_enabled: bool = False
    multi_address_reachability_check_enabled: bool = True
    multi_address_reachability_check_timeout_ms: int = 1000
    observer_master_port: int | None = None
    sync_enabled: bool = True
    oracle_path: str | None = None
    ssl_quorum: bool = False
    ssl_quorum_reload_cert_files: bool = False
    port_unification: bool = False
    quorum_enable_sasl: bool = False
    quorum_server_require_sasl: bool = False
    quorum_learner_require_sasl: bool = False
    quorum_service_principal: str = "zkquorum/localhost"
    quorum_learner_login_context: str = "QuorumLearner"
    quorum_server_login_context: str = "QuorumServer"
    quorum_cnxn_threads_size: int = 0
    # Persistence
    snap_count: int = 100000
    snap_size_limit_kb: int = 4194304
    txn_log_size_limit_kb: int = -1
    pre_alloc_size_kb: int = 65536
    force_sync: bool = True
    digest_enabled: bool = True
    snapshot_compression_method: str = ""
    autopurge_snap_retain_count: int = 3
    autopurge_purge_interval: int = 0
    # Serving
    global_outstanding_limit: int = 1000
    four_letter_whitelist: frozenset[str] = frozenset({"srvr"})
    server_cnxn_factory: str | None = None
    auth_providers: dict[str, str] = field(default_factory=dict)
    ssl: dict[str, str] = field(default_factory=dict)
    admin_enable_server: bool = True
    admin_server_address: str = "0.0.0.0"
    admin_server_port: int = 8080
    admin_command_url: str = "/commands"
    admin_idle_timeout_ms: int = 30000
    metrics_provider_class: str = DEFAULT_METRICS_PROVIDER
    metrics_provider_config: dict[str, str] = field(default_factory=dict)
    metrics_http_host: str = "0.0.0.0"
    metrics_http_port: int = 7000
    # Everything else
    properties: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list, compare=False)
    key_lines: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.data_log_dir:
            object.__setattr__(self, "data_log_dir", self.data_dir)

    # -- settings derived from tickTime

    @property
    def effective_min_session_timeout(self) -> int:
        return self.tick_time * 2 if self.min_session_timeout == -1 else self.min_session_timeout

    @property
    def effective_max_session_timeout(self) -> int:
        return self.tick_time * 20 if self.max_session_timeout == -1 else self.max_session_timeout

    # -- system properties, by Apache's names and defaults

    def _prop(self, name: str, parser: Callable[[str], Any], default: Any) -> Any:
        raw = self.properties.get(name)
        return default if raw is None else parser(raw.strip())

    @property
    def jute_max_buffer(self) -> int:
        return self._prop("jute.maxbuffer", _positive_decode_int, 0xFFFFF)

    @property
    def jute_max_buffer_extra_size(self) -> int:
        # BinaryInputArchive: defaults to jute.maxbuffer, never below the old fixed 1024.
        extra = self._prop("zookeeper.jute.maxbuffer.extrasize", _decode_int, self.jute_max_buffer)
        return max(extra, 1024)

    @property
    def extended_types_enabled(self) -> bool:
        return self._prop("zookeeper.extendedTypesEnabled", _bool, False)

    @property
    def emulate_353_ttl_nodes(self) -> bool:
        return self._prop("zookeeper.emulate353TTLNodes", _bool, False)

    @property
    def skip_acl(self) -> bool:
        return self._prop("zookeeper.skipACL", _yes_no, False)

    @property
    def super_digest(self) -> str | None:
        return self.properties.get("zookeeper.DigestAuthenticationProvider.superDigest")

    @property
    def digest_algorithm(self) -> str:
        return self._prop("zookeeper.DigestAuthenticationProvider.digestAlg", _nonempty, "SHA1")

    @property
    def digest_auth_enabled(self) -> bool:
        return self._prop("zookeeper.DigestAuthenticationProvider.enabled", _bool, True)

    @property
    def enforce_quota(self) -> bool:
        return self._prop("zookeeper.enforceQuota", _bool, False)

    @property
    def enforce_auth_enabled(self) -> bool:
        # AuthenticationHelper: sessionRequireClientSASLAuth=true implies enforcement of sasl.
        if self._prop("zookeeper.sessionRequireClientSASLAuth", _bool, False):
            return True
        return self._prop("zookeeper.enforce.auth.enabled", _bool, False)

    @property
    def enforce_auth_schemes(self) -> tuple[str, ...]:
        if self._prop("zookeeper.sessionRequireClientSASLAuth", _bool, False):
            return ("sasl",)
        raw = self.properties.get("zookeeper.enforce.auth.schemes")
        return () if raw is None else tuple(s.strip() for s in raw.split(","))

    @property
    def container_check_interval_ms(self) -> int:
        return self._prop("znode.container.checkIntervalMs", _decode_int, 60000)

    @property
    def container_max_per_minute(self) -> int:
        return self._prop("znode.container.maxPerMinute", _decode_int, 10000)

    @property
    def container_max_never_used_interval_ms(self) -> int:
        return self._prop("znode.container.maxNeverUsedIntervalMs", _decode_long, 0)

    @property
    def read_only_mode_enabled(self) -> bool:
        return self._prop("readonlymode.enabled", _bool, False)

    @property
    def fsync_warning_threshold_ms(self) -> int:
        # FileTxnLog: the zookeeper.-prefixed name wins, the bare one is the old spelling.
        bare = self._prop("fsync.warningthresholdms", _decode_long, 1000)
        return self._prop("zookeeper.fsync.warningthresholdms", _decode_long, bare)

    @property
    def datadir_autocreate(self) -> bool:
        return self._prop("zookeeper.datadir.autocreate", _bool, True)

    @property
    def db_autocreate(self) -> bool:
        return self._prop("zookeeper.db.autocreate", _bool, True)

    @property
    def snapshot_trust_empty(self) -> bool:
        return self._prop("zookeeper.snapshot.trust.empty", _bool, False)

    @property
    def close_session_txn_enabled(self) -> bool:
        return self._prop("zookeeper.closeSessionTxn.enabled", _bool, True)

    @property
    def serialize_last_processed_zxid_enabled(self) -> bool:
        return self._prop("zookeeper.serializeLastProcessedZxid.enabled", _bool, True)


# Properties behind the accessors; load_config parses each once so a bad value stops
# start-up at load time instead of surfacing later inside the running server.
_CHECKED_PROPERTIES: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("jute.maxbuffer", _positive_decode_int),
    ("zookeeper.jute.maxbuffer.extrasize", _decode_int),
    ("zookeeper.extendedTypesEnabled", _bool),
    ("zookeeper.emulate353TTLNodes", _bool),
    ("zookeeper.skipACL", _yes_no),
    ("zookeeper.DigestAuthenticationProvider.digestAlg", _nonempty),
    ("zookeeper.DigestAuthenticationProvider.enabled", _bool),
    ("zookeeper.enforceQuota", _bool),
    ("zookeeper.sessionRequireClientSASLAuth", _bool),
    ("zookeeper.enforce.auth.enabled", _bool),
    ("znode.container.checkIntervalMs", _decode_int),
    ("znode.container.maxPerMinute", _decode_int),
    ("znode.container.maxNeverUsedIntervalMs", _decode_long),
    ("readonlymode.enabled", _bool),
    ("fsync.warningthresholdms", _decode_long),
    ("zookeeper.fsync.warningthresholdms", _decode_long),
    ("zookeeper.datadir.autocreate", _bool),
    ("zookeeper.db.autocreate", _bool),
    ("zookeeper.snapshot.trust.empty", _bool),
    ("zookeeper.closeSessionTxn.enabled", _bool),
    ("zookeeper.serializeLastProcessedZxid.enabled", _bool),
)

# zoo.cfg keys QuorumPeerConfig handles itself (they do not become system properties).
_CFG_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "dataDir": ("data_dir", _nonempty),
    "dataLogDir": ("data_log_dir", _nonempty),
    "clientPort": ("client_port", _port),
    "clientPortAddress": ("client_port_address", _address),
    "secureClientPort": ("secure_client_port", _port),
    "secureClientPortAddress": ("secure_client_port_address", _address),
    "clientPortListenBacklog": ("client_port_listen_backlog", _int),
    "observerMasterPort": ("observer_master_port", _optional_port),
    "tickTime": ("tick_time", _int),
    "maxClientCnxns": ("max_client_cnxns", _int),
    "minSessionTimeout": ("min_session_timeout", _session_timeout),
    "maxSessionTimeout": ("max_session_timeout", _session_timeout),
    "localSessionsEnabled": ("local_sessions_enabled", _bool),
    "localSessionsUpgradingEnabled": ("local_sessions_upgrading_enabled", _bool),
    "initLimit": ("init_limit", _int),
    "syncLimit": ("sync_limit", _int),
    "connectToLearnerMasterLimit": ("connect_to_learner_master_limit", _int),
    "electionAlg": ("election_alg", _election_alg),
    "quorumListenOnAllIPs": ("quorum_listen_on_all_ips", _bool),
    "peerType": ("peer_type", _peer_type),
    "syncEnabled": ("sync_enabled", _bool),
    "dynamicConfigFile": ("dynamic_config_file", _nonempty),
    "autopurge.snapRetainCount": ("autopurge_snap_retain_count", _int),
    "autopurge.purgeInterval": ("autopurge_purge_interval", _int),
    "standaloneEnabled": ("standalone_enabled", _bool),
    "reconfigEnabled": ("reconfig_enabled", _bool),
    "sslQuorum": ("ssl_quorum", _bool),
    "portUnification": ("port_unification", _bool),
    "sslQuorumReloadCertFiles": ("ssl_quorum_reload_cert_files", _bool),
    "quorum.auth.enableSasl": ("quorum_enable_sasl", _bool),
    "quorum.auth.serverRequireSasl": ("quorum_server_require_sasl", _bool),
    "quorum.auth.learnerRequireSasl": ("quorum_learner_require_sasl", _bool),
    "quorum.auth.learner.saslLoginContext": ("quorum_learner_login_context", _text),
    "quorum.auth.server.saslLoginContext": ("quorum_server_login_context", _text),
    "quorum.auth.kerberos.servicePrincipal": ("quorum_service_principal", _text),
    "quorum.cnxn.threads.size": ("quorum_cnxn_threads_size", _int),
    "metricsProvider.className": ("metrics_provider_class", _nonempty),
    "multiAddress.enabled": ("multi_address_enabled", _bool),
    "multiAddress.reachabilityCheckTimeoutMs": ("multi_address_reachability_check_timeout_ms", _int),
    "multiAddress.reachabilityCheckEnabled": ("multi_address_reachability_check_enabled", _bool),
    "oraclePath": ("oracle_path", _nonempty),
}

# Known to QuorumPeerConfig but meaningful only to a JVM: checked, then dropped.
_JVM_ONLY_KEYS: dict[str, Callable[[str], Any]] = {
    "jvm.pause.monitor": _bool,
    "jvm.pause.info-threshold.ms": _long,
    "jvm.pause.warn-threshold.ms": _long,
    "jvm.pause.sleep.time.ms": _long,
}

# Settings only an ensemble uses; in standalone mode Apache parses and then ignores them.
_ENSEMBLE_KEYS = frozenset({
    "initLimit", "syncLimit", "connectToLearnerMasterLimit", "electionAlg",
    "quorumListenOnAllIPs", "peerType", "syncEnabled", "observerMasterPort",
    "dynamicConfigFile", "reconfigEnabled", "sslQuorum", "sslQuorumReloadCertFiles",
    "quorum.auth.enableSasl", "quorum.auth.serverRequireSasl", "quorum.auth.learnerRequireSasl",
    "quorum.auth.learner.saslLoginContext", "quorum.auth.server.saslLoginContext",
    "quorum.auth.kerberos.servicePrincipal", "quorum.cnxn.threads.size", "multiAddress.enabled",
    "multiAddress.reachabilityCheckTimeoutMs", "multiAddress.reachabilityCheckEnabled", "oraclePath",
})


def _is_membership_key(key: str) -> bool:
    # QuorumPeerConfig's own test: any key starting with "group" or "weight" is hierarchical.
    return key.startswith(("server.", "group", "weight"))


# ---------------------------------------------------------------------------------------
# server.N, group.N and weight.N lines

_WRONG_FORMAT = (
    "expected host:quorumPort:electionPort[:participant|observer] (several joined by '|')"
    " and optionally ;[clientHost:]clientPort"
)


def _java_split(text: str, sep: str) -> list[str]:
    # String.split drops trailing empty strings, so "h:1:2;" has no client part.
    parts = text.split(sep)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


def _host_and_port(text: str) -> list[str]:
    """ConfigUtils.getHostAndPort: "[v6::addr]:p:q" or "host:p:q" into its parts."""
    if not text.startswith("["):
        return _java_split(text, ":")
    end = text.find("]")
    if end < 0:
        raise _Bad(f"{text!r} starts with '[' but has no matching ']'")
    rest = text[end + 1:]
    if rest and (not rest.startswith(":") or len(rest) == 1):
        raise _Bad(f"{text!r} needs ':port' after the ']'")
    return [text[1:end], *(_java_split(rest[1:], ":") if rest else [])]


def _server_id(text: str) -> int:
    if not _DECIMAL.match(text) or text.startswith("-"):
        raise _Bad(f"{text!r} is not a server id (a number from 0)")
    return _in_range(int(text), text, _INT64)


def _peer_port(text: str, what: str) -> int:
    if not _DECIMAL.match(text):
        raise _Bad(f"{what} port {text!r} is not a number")
    n = int(text)
    if not 1 <= n <= 65535:
        raise _Bad(f"{what} port {n} is not a port number (1..65535)")
    return n


def _peer_address(chunk: str) -> tuple[PeerAddress, str | None]:
    parts = _host_and_port(chunk.strip())
    if not 3 <= len(parts) <= 4:
        raise _Bad(_WRONG_FORMAT)
    if not parts[0]:
        raise _Bad("empty host")
    quorum = _peer_port(parts[1], "quorum")
    election = _peer_port(parts[2], "election")
    if quorum == election:
        raise _Bad(f"quorum port and election port must differ (both {quorum})")
    peer_type = _peer_type(parts[3].strip()) if len(parts) == 4 else None
    return PeerAddress(parts[0], quorum, election), peer_type


def _client_part(text: str) -> tuple[str | None, int]:
    parts = _host_and_port(text.strip())
    if len(parts) > 2:
        raise _Bad(_WRONG_FORMAT)
    if len(parts) == 2 and not parts[0]:
        raise _Bad("empty client address")
    try:
        port = _port(parts[-1])
    except _Bad as exc:
        raise _Bad(f"client port: {exc}") from None
    return (parts[0] if len(parts) == 2 else None), port


def _parse_server(key: str, value: str, multi_address: bool) -> ServerSpec:
    sid = _server_id(key[len("server."):])
    halves = _java_split(value, ";")
    if len(halves) > 2:
        raise _Bad(_WRONG_FORMAT)
    client_address, client_port = _client_part(halves[1]) if len(halves) == 2 else (None, None)
    chunks = _java_split(halves[0], "|")
    if len(chunks) > 1 and not multi_address:
        raise _Bad("several addresses need multiAddress.enabled=true")
    parsed = [_peer_address(chunk) for chunk in chunks]
    types = {t for _, t in parsed if t is not None}
    if len(types) > 1:
        raise _Bad("all addresses of one server must have the same type")
    peer_type = types.pop() if types else "participant"
    addresses = tuple(address for address, _ in parsed)
    return ServerSpec(sid, addresses, peer_type, client_address, client_port)


def _dotted_id(key: str, prefix: str) -> int:
    if not key.startswith(prefix + "."):
        raise _Bad(f"expected {prefix}.<id>")
    return _server_id(key[len(prefix) + 1:])


# ---------------------------------------------------------------------------------------
# load_config


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(path, None, "file is missing") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror or exc}") from None


def _last_wins(entries: list[PropertyLine]) -> list[PropertyLine]:
    # Properties keeps the last value of a key; keep file order of those last values.
    last: dict[str, PropertyLine] = {}
    for entry in entries:
        last.pop(entry.key, None)
        last[entry.key] = entry
    return list(last.values())


_FIELD_DEFAULTS: dict[str, Any] = {
    f.name: f.default if f.default is not MISSING else f.default_factory()
    for f in fields(ServerConfig)
}


class _Loader:
    """The state of one load_config call, shared by its parsing and validation steps."""

    def __init__(self, path: str | None, properties: Mapping[str, str]) -> None:
        self.path = path
        self.props = dict(properties)
        self.origins: dict[str, str] = {}  # property name -> the zoo.cfg key that set it
        self.lines: dict[str, int] = {}  # zoo.cfg key -> line
        self.membership: list[tuple[PropertyLine, str | None]] = []
        self.metrics_config: dict[str, str] = {}
        self.warnings: list[str] = []
        self.implied: set[str] = set()  # properties Apache sets itself; no warning for those
        self.text: str | None = None
        # Without a file we serve zoo_sample.cfg's settings; with one, Apache's field
        # defaults apply: tickTime 3000 (ZooKeeperServer.DEFAULT_TICK_TIME), no clientPort.
        if path is None:
            self.values: dict[str, Any] = {"tick_time": 2000, "data_dir": "./data", "client_port": 2181}
        else:
            self.values = {"tick_time": 3000, "client_port": None}

    # -- reporting

    def get(self, name: str) -> Any:
        return self.values.get(name, _FIELD_DEFAULTS.get(name))

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.path, self.lines.get(key), f"{key}: {reason}")

    def file_fail(self, reason: str) -> ConfigError:
        return ConfigError(self.path, None, reason)

    def prop_fail(self, name: str, reason: str) -> ConfigError:
        key = self.origins.get(name)
        if key is not None:
            return self.fail(key, reason)
        return ConfigError(None, None, f"system property {name}: {reason}")

    def warn(self, key: str, text: str) -> None:
        line = self.lines.get(key)
        where = "" if self.path is None else f"{self.path}:{line}: " if line else f"{self.path}: "
        self.warnings.append(f"{where}{key}: {text}")

    def warn_prop(self, name: str, text: str) -> None:
        key = self.origins.get(name)
        if key is not None:
            self.warn(key, text)
        else:
            self.warnings.append(f"system property {name}: {text}")

    def parse(self, key: str, value: str, parser: Callable[[str], Any]) -> Any:
        try:
            return parser(value)
        except _Bad as exc:
            raise self.fail(key, str(exc)) from None

    def prop(self, name: str, parser: Callable[[str], Any], default: Any) -> Any:
        raw = self.props.get(name)
        if raw is None:
            return default
        try:
            return parser(raw.strip())
        except _Bad as exc:
            raise self.prop_fail(name, str(exc)) from None

    # -- the file

    def read_file(self, path: str) -> None:
        data = _read_bytes(path)
        self.text = data.decode("utf-8", errors="replace")  # Apache keeps it as UTF-8 for icfg
        # Properties.load(InputStream) reads ISO 8859-1; non-ASCII needs \uXXXX escapes.
        entries = _last_wins(parse_properties(data.decode("latin-1"), path))
        has_dynamic_file = any(e.key == "dynamicConfigFile" for e in entries)
        for entry in entries:
            self.lines[entry.key] = entry.line
        for entry in entries:
            self.take(entry, has_dynamic_file)

    def take(self, entry: PropertyLine, has_dynamic_file: bool) -> None:
        key, value = entry.key, entry.value
        if key in _CFG_KEYS:
            name, parser = _CFG_KEYS[key]
            self.values[name] = self.parse(key, value, parser)
        elif key in _JVM_ONLY_KEYS:
            self.parse(key, value, _JVM_ONLY_KEYS[key])
            if key == "jvm.pause.monitor":  # the thresholds drive our event-loop stall monitor
                self.warn(key, "the event-loop stall monitor (jvm_pause_time_ms) always runs; ignored")
        elif key.startswith("metricsProvider."):
            self.metrics_config[key[len("metricsProvider."):]] = value
        elif _is_membership_key(key) and has_dynamic_file:
            raise self.fail(key, "must be in the dynamic config file when dynamicConfigFile is set")
        else:
            if _is_membership_key(key):
                self.membership.append((entry, self.path))
            # QuorumPeerConfig: an unknown key becomes a system property, overriding any -D.
            self.props["zookeeper." + key] = value
            self.origins["zookeeper." + key] = key

    # -- the steps, in QuorumPeerConfig's order

    def resolve(self) -> None:
        self.check_quorum_sasl()
        self.resolve_retain_count()
        self.resolve_dirs()
        self.resolve_client_ports()
        self.resolve_tick_and_sessions()
        self.resolve_property_fields()
        self.resolve_membership()
        self.read_myid()
        self.apply_server_client_port()
        self.check_some_client_port()
        self.resolve_peer_type()
        self.check_quorum()
        self.check_accessor_properties()
        self.capability_warnings()

    def check_quorum_sasl(self) -> None:
        enabled = self.get("quorum_enable_sasl")
        for key, name in (("quorum.auth.serverRequireSasl", "quorum_server_require_sasl"),
                          ("quorum.auth.learnerRequireSasl", "quorum_learner_require_sasl")):
            if self.get(name) and not enabled:
                raise self.fail(key, "needs quorum.auth.enableSasl=true")
        if self.get("quorum_server_require_sasl") and not self.get("quorum_learner_require_sasl"):
            # A server that demands SASL from learners could not join as a learner itself.
            raise self.fail("quorum.auth.serverRequireSasl", "needs quorum.auth.learnerRequireSasl=true")

    def resolve_retain_count(self) -> None:
        count = self.get("autopurge_snap_retain_count")
        if count < 3:  # PurgeTxnLog never keeps fewer than 3 snapshots
            self.warn("autopurge.snapRetainCount", f"{count} is below the minimum; using 3")
            self.values["autopurge_snap_retain_count"] = 3

    def resolve_dirs(self) -> None:
        if "data_dir" not in self.values:
            raise self.file_fail("dataDir is not set")
        for key, name in (("dataDir", "data_dir"), ("dataLogDir", "data_log_dir")):
            value = self.values.get(name)
            # Apache resolves a relative dataDir against the working directory, and says so.
            if key in self.lines and not os.path.isabs(value) and not value.startswith("./"):
                self.warn(key, f"{value!r} is relative to the working directory {os.getcwd()};"
                               f" write ./{value} to show that is intended")

    def resolve_client_ports(self) -> None:
        pairs = (("clientPort", "clientPortAddress", "client_port", "client_port_address"),
                 ("secureClientPort", "secureClientPortAddress", "secure_client_port",
                  "secure_client_port_address"))
        for port_key, address_key, port_name, address_name in pairs:
            if self.get(address_name) is not None and self.get(port_name) is None:
                raise self.fail(address_key, f"is set but {port_key} is not set")

    def resolve_tick_and_sessions(self) -> None:
        tick = self.get("tick_time")
        if tick <= 0:
            raise self.fail("tickTime", "is not set (0)" if tick == 0 else f"{tick} is not a positive time in ms")
        low = self.get("min_session_timeout")
        high = self.get("max_session_timeout")
        low = tick * 2 if low == -1 else low
        high = tick * 20 if high == -1 else high
        if low > high:
            key = "minSessionTimeout" if "minSessionTimeout" in self.lines else "maxSessionTimeout"
            raise self.fail(key, f"minSessionTimeout ({low}) must not be larger than"
                                 f" maxSessionTimeout ({high})")

    def resolve_property_fields(self) -> None:
        self.resolve_persistence_properties()
        self.resolve_serving_properties()
        self.resolve_admin_properties()
        self.resolve_ssl()
        self.values["auth_providers"] = {
            name[len("zookeeper.authProvider."):]: value
            for name, value in self.props.items() if name.startswith("zookeeper.authProvider.")
        }
        self.resolve_metrics()
        self.resolve_multi_address()

    def resolve_persistence_properties(self) -> None:
        v, p = self.values, self.prop
        v["snap_count"] = p("zookeeper.snapCount", _decode_int, 100000)
        if v["snap_count"] < 2:  # SyncRequestProcessor needs at least 2
            self.warn_prop("zookeeper.snapCount", f"{v['snap_count']} is below 2; using 2")
            v["snap_count"] = 2
        v["snap_size_limit_kb"] = p("zookeeper.snapSizeLimitInKb", _decode_long, 4194304)
        v["txn_log_size_limit_kb"] = p("zookeeper.txnLogSizeLimitInKb", _decode_long, -1)
        v["pre_alloc_size_kb"] = p("zookeeper.preAllocSize", _long, 65536)
        v["force_sync"] = p("zookeeper.forceSync", _yes_no, True)
        v["digest_enabled"] = p("zookeeper.digest.enabled", _bool, True)
        v["snapshot_compression_method"] = p("zookeeper.snapshot.compression.method", _compression, "")

    def resolve_serving_properties(self) -> None:
        v, p = self.values, self.prop
        v["global_outstanding_limit"] = p("zookeeper.globalOutstandingLimit", _decode_int, 1000)
        v["max_cnxns"] = p("zookeeper.maxCnxns", _decode_int, 0)
        v["server_cnxn_factory"] = p("zookeeper.serverCnxnFactory", _nonempty, None)
        v["four_letter_whitelist"] = self.four_letter_whitelist()

    def four_letter_whitelist(self) -> frozenset[str]:
        name = "zookeeper.4lw.commands.whitelist"
        enabled: set[str] = set()
        for item in self.props.get(name, "").split(","):
            command = item.strip()
            if command == "*":
                enabled.update(FOUR_LETTER_WORDS)
                enabled.add(TELNET_CLOSE)
                break
            if command and command not in FOUR_LETTER_WORDS:
                self.warn_prop(name, f"{command!r} is not a four-letter word command")
            if command:
                enabled.add(command)
        # FourLetterCommands compares with "true" exactly, unlike Boolean.getBoolean.
        if self.props.get("readonlymode.enabled", "false") == "true":
            enabled.add("isro")
        enabled.add("srvr")  # always on: zkServer.sh status needs it
        return frozenset(enabled)

    def resolve_admin_properties(self) -> None:
        v, p = self.values, self.prop
        v["admin_enable_server"] = p("zookeeper.admin.enableServer", _bool, True)
        v["admin_server_address"] = p("zookeeper.admin.serverAddress", _address, "0.0.0.0")
        v["admin_server_port"] = p("zookeeper.admin.serverPort", _port, 8080)
        v["admin_command_url"] = p("zookeeper.admin.commandURL", _nonempty, "/commands")
        v["admin_idle_timeout_ms"] = p("zookeeper.admin.idleTimeout", _decode_int, 30000)

    def resolve_ssl(self) -> None:
        ssl: dict[str, str] = {}
        for name, value in list(self.props.items()):
            if name.startswith("zookeeper.ssl."):
                short = name[len("zookeeper."):]
                self.prop(name, _ssl_parser(short), None)
                ssl[short] = value
        self.values["ssl"] = ssl
        if self.get("secure_client_port") is not None:
            self.configure_ssl_auth()

    def configure_ssl_auth(self) -> None:
        # QuorumPeerConfig.configureSSLAuth: a TLS port needs a provider for ssl.authProvider.
        scheme = self.props.get("zookeeper.ssl.authProvider", "x509")
        name = "zookeeper.authProvider." + scheme
        if name in self.props:
            return
        if scheme != "x509":
            raise self.prop_fail("zookeeper.ssl.authProvider",
                                 f"no authProvider is configured for the TLS scheme {scheme!r}")
        self.props[name] = X509_AUTH_PROVIDER
        self.implied.add(name)

    def resolve_metrics(self) -> None:
        config = self.metrics_config
        self.values["metrics_provider_config"] = dict(config)
        self.values["metrics_http_host"] = config.get("httpHost", "0.0.0.0")
        if "httpPort" in config:
            self.values["metrics_http_port"] = self.parse("metricsProvider.httpPort",
                                                          config["httpPort"], _port)

    def resolve_multi_address(self) -> None:
        # QuorumPeerConfig seeds these from system properties; zoo.cfg keys override. (Apache's
        # server.N parser reads only the system property; we honour the zoo.cfg key too.)
        defaults = (("multi_address_enabled", "zookeeper.multiAddress.enabled", _bool, False),
                    ("multi_address_reachability_check_enabled",
                     "zookeeper.multiAddress.reachabilityCheckEnabled", _bool, True),
                    ("multi_address_reachability_check_timeout_ms",
                     "zookeeper.multiAddress.reachabilityCheckTimeoutMs", _int, 1000))
        for field_name, prop_name, parser, default in defaults:
            if field_name not in self.values:
                self.values[field_name] = self.prop(prop_name, parser, default)

    # -- membership and identity

    def resolve_membership(self) -> None:
        dynamic = self.values.get("dynamic_config_file")
        entries = self.read_dynamic_file(dynamic) if dynamic else self.membership
        servers: dict[int, ServerSpec] = {}
        groups: dict[int, tuple[int, ...]] = {}
        weights: dict[int, int] = {}
        for entry, path in entries:
            try:
                self.take_member(entry, servers, groups, weights)
            except _Bad as exc:
                raise ConfigError(path, entry.line, f"{entry.key}: {exc}") from None
        self.values.update(servers=servers, groups=groups, weights=weights)

    def take_member(self, entry: PropertyLine, servers: dict[int, ServerSpec],
                    groups: dict[int, tuple[int, ...]], weights: dict[int, int]) -> None:
        if entry.key.startswith("server."):
            spec = _parse_server(entry.key, entry.value, self.get("multi_address_enabled"))
            if spec.sid in servers:
                raise _Bad(f"server id {spec.sid} is defined twice")
            servers[spec.sid] = spec
        elif entry.key.startswith("group"):
            members = tuple(_server_id(part.strip()) for part in _java_split(entry.value, ":"))
            taken = {sid for group in groups.values() for sid in group}
            if taken.intersection(members):
                raise _Bad(f"server {sorted(taken.intersection(members))[0]} is in several groups")
            groups[_dotted_id(entry.key, "group")] = members
        else:
            weights[_dotted_id(entry.key, "weight")] = _long(entry.value)

    def read_dynamic_file(self, path: str) -> list[tuple[PropertyLine, str | None]]:
        entries = _last_wins(parse_properties(_read_bytes(path).decode("latin-1"), path))
        for entry in entries:
            if entry.key == "version":
                raise ConfigError(path, entry.line, "version: must not be set inside the dynamic"
                                                    " file (its file name carries the version)")
            if not _is_membership_key(entry.key):
                raise ConfigError(path, entry.line, f"{entry.key}: only server.N, group.N and"
                                                    " weight.N belong in a dynamic config file")
        return [(entry, path) for entry in entries]

    def myid_path(self) -> str:
        return os.path.join(self.values["data_dir"], "myid")

    def read_myid(self) -> None:
        path = self.myid_path()
        if not os.path.isfile(path):
            return  # a standalone server needs no myid
        first = _NEWLINE.split(_read_bytes(path).decode("latin-1"), maxsplit=1)[0].strip()
        try:
            self.values["server_id"] = _server_id(first)
        except _Bad as exc:
            raise ConfigError(path, 1, f"myid: {exc}") from None

    def apply_server_client_port(self) -> None:
        """A client port on this server's own server.N line wins over clientPort (Apache)."""
        spec = self.get("servers").get(self.get("server_id"))
        if spec is None or spec.client_port is None:
            return
        port, address = self.get("client_port"), self.get("client_port_address")
        wildcard = address in (None, "0.0.0.0", "::")
        if port is not None and (port != spec.client_port
                                 or (not wildcard and address != spec.client_address)):
            raise self.fail(f"server.{spec.sid}", f"client address {spec.client_address or '0.0.0.0'}:"
                            f"{spec.client_port} differs from clientPortAddress:clientPort"
                            f" {address or '0.0.0.0'}:{port}")
        self.values["client_port"] = spec.client_port
        self.values["client_port_address"] = spec.client_address

    def check_some_client_port(self) -> None:
        # Apache starts such a server anyway, listening for no client; say so at least.
        if self.get("client_port") is None and self.get("secure_client_port") is None:
            self.warnings.append(f"{self.path}: neither clientPort nor secureClientPort is set;"
                                 " no client can connect")

    def resolve_peer_type(self) -> None:
        sid = self.get("server_id")
        spec = self.get("servers").get(sid)
        listed = "observer" if spec is not None and spec.is_observer else "participant"
        configured = self.get("peer_type")
        if configured != listed:
            self.warn("peerType", f"{configured} differs from the server list ({listed}); using {listed}")
        self.values["peer_type"] = listed

    def check_quorum(self) -> None:
        servers: dict[int, ServerSpec] = self.get("servers")
        voting = sorted(sid for sid, spec in servers.items() if not spec.is_observer)
        has_observers = len(voting) < len(servers)
        standalone_enabled = self.get("standalone_enabled")
        if not voting:
            if not standalone_enabled:
                raise self.fail("standaloneEnabled", "false needs at least one participant server.N line")
            if has_observers:
                raise self.file_fail("observers without participants is an invalid configuration")
        elif len(voting) == 1 and standalone_enabled:
            if has_observers:
                raise self.file_fail("observers without a quorum is an invalid configuration")
            self.warn(f"server.{voting[0]}", "the only server line: ZooKeeper runs standalone"
                                             " and ignores it")
        elif len(voting) <= 2:
            self.warnings.append(f"{self.path}: no server failure will be tolerated;"
                                 " you need at least 3 servers")
        elif len(voting) % 2 == 0:
            self.warnings.append(f"{self.path}: non-optimal configuration; consider an odd"
                                 " number of servers")
        if not standalone_enabled or len(voting) > 1:
            self.check_ensemble(servers)

    def check_ensemble(self, servers: dict[int, ServerSpec]) -> None:
        for key, name in (("initLimit", "init_limit"), ("syncLimit", "sync_limit")):
            if self.get(name) == 0:
                raise self.file_fail(f"{key} is not set (an ensemble needs it)")
        sid = self.get("server_id")
        if sid is None:
            raise ConfigError(self.myid_path(), None,
                              "myid file is missing (an ensemble member needs its server id)")
        if sid not in servers:
            raise ConfigError(self.myid_path(), 1, f"myid: server id {sid} has no server.{sid} line")

    def check_accessor_properties(self) -> None:
        for name, parser in _CHECKED_PROPERTIES:
            self.prop(name, parser, None)
        if self.prop("zookeeper.sessionRequireClientSASLAuth", _bool, False):
            return
        schemes = self.props.get("zookeeper.enforce.auth.schemes", "")
        if self.prop("zookeeper.enforce.auth.enabled", _bool, False) and not schemes.strip(" ,"):
            raise self.prop_fail("zookeeper.enforce.auth.enabled",
                                 "is true but zookeeper.enforce.auth.schemes names no scheme")

    # -- what this server does not serve (yet)

    def capability_warnings(self) -> None:
        distributed = not self.get("standalone_enabled") or sum(
            not spec.is_observer for spec in self.get("servers").values()) > 1
        for key in self.lines:
            text = _key_warning(key, distributed, self.get("metrics_provider_class"))
            if text is not None:
                self.warn(key, text)
        for name, value in self.props.items():
            text = None if name in self.implied else _property_warning(name, value)
            if text is not None:
                self.warn_prop(name, text)

    def build(self) -> ServerConfig:
        return ServerConfig(source_path=self.path, source_text=self.text, properties=self.props,
                            warnings=self.warnings, key_lines=self.lines, **self.values)


# security/__init__.py SERVED_PROVIDERS: the authProvider.N classes zkserver serves (x509 on the
# secure port, SASL DIGEST-MD5, and the built-in digest and ip).
_SERVED_AUTH_PROVIDERS = frozenset({
    X509_AUTH_PROVIDER, "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider",
})
# Apache's own connection factories: zkserver serves both plain and secure ports itself.
_APACHE_CNXN_FACTORIES = frozenset({"org.apache.zookeeper.server.NettyServerCnxnFactory",
                                    "org.apache.zookeeper.server.NIOServerCnxnFactory"})
_SSL_BOOLEANS = frozenset({"hostnameVerification", "clientHostnameVerification", "crl", "ocsp",
                           "allowReverseDnsLookup"})


def _ssl_parser(short: str) -> Callable[[str], Any]:
    tail = short.removeprefix("ssl.quorum.") if short.startswith("ssl.quorum.") else short[4:]
    if tail == "clientAuth":
        return _client_auth
    if tail == "handshakeDetectionTimeoutMillis":
        return _decode_int
    return _bool if tail in _SSL_BOOLEANS else _text


def _key_warning(key: str, distributed: bool, metrics_class: str) -> str | None:
    """The warning for a zoo.cfg key this server parses but does not act on, if any."""
    if key in _ENSEMBLE_KEYS:
        return ("ensembles are not served yet; ignored" if distributed
                else "used only by an ensemble; ignored in standalone mode")
    if key.startswith("server.") and distributed:
        return "ensembles are not served yet; ignored"
    if key.startswith(("group", "weight")):
        return "hierarchical quorums are not served yet; ignored"
    if key == "portUnification":
        return "TLS and plaintext on one port (portUnification) is not served; use secureClientPort"
    if key.startswith("metricsProvider.") and metrics_class not in (DEFAULT_METRICS_PROVIDER,
                                                                       PROMETHEUS_METRICS_PROVIDER):
        return f"metrics provider {metrics_class} is not served (only Apache's Prometheus provider); ignored"
    if key.startswith("metricsProvider.") and key != "metricsProvider.className" and (
            metrics_class == DEFAULT_METRICS_PROVIDER):
        return "metrics provider settings are used only by the Prometheus provider; ignored"
    if key in _UNPREFIXED_PROPERTIES:
        return (f"no effect in zoo.cfg: ZooKeeper reads only the system property {key}"
                f" (set it with -D{key}=...)")
    if key.startswith("zookeeper."):
        return f"no effect: zoo.cfg keys get the zookeeper. prefix, so this sets zookeeper.{key}"
    return None


def _property_warning(name: str, value: str) -> str | None:
    """The warning for a system property this server reads but does not act on, if any."""
    if name.startswith("zookeeper.server.") or name.startswith("zookeeper.multiAddress."):
        return None  # covered by the server.N and ensemble key warnings
    if name.startswith("zookeeper.ssl.quorum."):
        return "quorum TLS is not served yet; ignored"
    if name.startswith("zookeeper.authProvider.") and value.strip() not in _SERVED_AUTH_PROVIDERS:
        return f"authentication provider {value} is not served yet; ignored"
    if name == "zookeeper.serverCnxnFactory" and value.strip() not in _APACHE_CNXN_FACTORIES:
        return f"{value} is a Java connection factory; zkserver uses its own; ignored"
    if name in ("zookeeper.admin.portUnification", "zookeeper.admin.forceHttps", "zookeeper.admin.needClientAuth"):
        return "the AdminServer serves plain HTTP only; ignored"
    return None


def load_config(path: str | None, properties: Mapping[str, str] | None = None) -> ServerConfig:
    """Read zoo.cfg at ``path`` (None: built-in defaults) with the given system properties.

    Raises ConfigError naming the file, line and reason for anything ZooKeeper would
    reject, and for malformed values it would silently replace by a default.
    """
    loader = _Loader(path, properties or {})
    if path is not None:
        loader.read_file(path)
    loader.resolve()
    return loader.build()


def _voting_ids(cfg: ServerConfig) -> list[int]:
    return sorted(sid for sid, spec in cfg.servers.items() if not spec.is_observer)


def is_standalone(cfg: ServerConfig) -> bool:
    """True when ZooKeeper would run this config standalone (QuorumPeerConfig.isDistributed)."""
    return cfg.standalone_enabled and len(_voting_ids(cfg)) <= 1


def ensemble_refusal_message(cfg: ServerConfig) -> str:
    """Why the server will not start this (ensemble) config, for the operator."""
    where = cfg.source_path or "configuration"
    voting = _voting_ids(cfg)
    if len(voting) > 1:
        names = ", ".join(f"server.{sid}" for sid in voting)
        why = f"it lists {len(voting)} voting servers ({names})"
    else:
        why = "standaloneEnabled=false asks for a quorum even with one server"
    return (f"{where}: {why}, so ZooKeeper would run it as an ensemble member; zkserver serves"
            " standalone mode only for now. Keep at most one server.N line and leave"
            " standaloneEnabled=true to run this server standalone.")
