"""load_config: zoo.cfg plus system properties, merged as Apache merges them, validated into
one ServerConfig."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from typing import Any

from ..javastr import java_split
from .keys import (
    _CFG_KEYS,
    _JVM_ONLY_KEYS,
    _is_membership_key,
    _key_warning,
    _property_warning,
    _ssl_parser,
)
from .model import (
    ACCESSOR_PROPERTIES,
    COMMIT_LOG_COUNT,
    FOUR_LETTER_WORDS,
    TELNET_CLOSE,
    X509_AUTH_PROVIDER,
    ServerConfig,
    ServerSpec,
)
from .properties import _NEWLINE, PropertyLine, parse_properties
from .servers import _dotted_id, _parse_server, _server_id
from .values import (
    USE_DEFAULT,
    ConfigError,
    _address,
    _Bad,
    _compression,
    _int,
    _java_bool,
    _java_int,
    _java_long,
    _Lenient,
    _long,
    _nonempty,
    _not_no,
    _or_default,
    _port,
    _text,
)


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


def _shown(value: Any) -> str:
    """A property value as the operator would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


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
        except _Lenient as exc:
            value = default if exc.value is USE_DEFAULT else exc.value
            reading = "ignores it" if value is None else f"reads it as {_shown(value)}"
            self.warn_prop(name, f"{exc.reason}; ZooKeeper {reading}, and so does zkserver")
            return value
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
        # ZooKeeperServer.getSnapCount: Integer.parseInt, 100000 when that fails.
        v["snap_count"] = p("zookeeper.snapCount", _or_default(_int), 100000)
        if v["snap_count"] < 2:  # SyncRequestProcessor needs at least 2
            self.warn_prop("zookeeper.snapCount", f"{v['snap_count']} is below 2; using 2")
            v["snap_count"] = 2
        v["snap_size_limit_kb"] = p("zookeeper.snapSizeLimitInKb", _java_long, 4194304)
        v["txn_log_size_limit_kb"] = p("zookeeper.txnLogSizeLimitInKb", _java_long, -1)
        v["pre_alloc_size_kb"] = p("zookeeper.preAllocSize", _or_default(_long), 65536)
        v["force_sync"] = p("zookeeper.forceSync", _not_no, True)
        v["digest_enabled"] = p("zookeeper.digest.enabled", _java_bool, True)
        # SnapStream.StreamMode.fromString: an unknown method means none.
        v["snapshot_compression_method"] = p("zookeeper.snapshot.compression.method", _or_default(_compression), "")

    def resolve_serving_properties(self) -> None:
        v, p = self.values, self.prop
        v["global_outstanding_limit"] = p("zookeeper.globalOutstandingLimit", _java_int, 1000)
        v["max_cnxns"] = p("zookeeper.maxCnxns", _java_int, 0)
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
        v["admin_enable_server"] = p("zookeeper.admin.enableServer", _java_bool, True)
        v["admin_server_address"] = p("zookeeper.admin.serverAddress", _address, "0.0.0.0")
        v["admin_server_port"] = p("zookeeper.admin.serverPort", _or_default(_port), 8080)
        v["admin_command_url"] = p("zookeeper.admin.commandURL", _text, "/commands")  # "": commands at /<name>
        v["admin_idle_timeout_ms"] = p("zookeeper.admin.idleTimeout", _java_int, 30000)

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
        defaults = (("multi_address_enabled", "zookeeper.multiAddress.enabled", _java_bool, False),
                    ("multi_address_reachability_check_enabled",
                     "zookeeper.multiAddress.reachabilityCheckEnabled", _java_bool, True),
                    ("multi_address_reachability_check_timeout_ms",
                     "zookeeper.multiAddress.reachabilityCheckTimeoutMs", _or_default(_int), 1000))
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
            members = tuple(_server_id(part.strip()) for part in java_split(entry.value, ":"))
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
        for name, (parser, default) in ACCESSOR_PROPERTIES.items():
            value = self.prop(name, parser, default)
            if name == "zookeeper.commitLogCount" and value < COMMIT_LOG_COUNT:
                self.warn_prop(name, f"{value} is below {COMMIT_LOG_COUNT}; ZooKeeper uses {COMMIT_LOG_COUNT}, "
                                     "and so does zkserver")
        if self.prop("zookeeper.sessionRequireClientSASLAuth", _java_bool, False):
            return
        schemes = self.props.get("zookeeper.enforce.auth.schemes", "")
        if self.prop("zookeeper.enforce.auth.enabled", _java_bool, False) and not schemes.strip(" ,"):
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
        quorum_tls = bool(self.get("ssl_quorum") or self.get("port_unification"))
        for name, value in self.props.items():
            text = None if name in self.implied else _property_warning(name, value, quorum_tls)
            if text is not None:
                self.warn_prop(name, text)

    def build(self) -> ServerConfig:
        return ServerConfig(source_path=self.path, source_text=self.text, properties=self.props,
                            warnings=self.warnings, key_lines=self.lines, **self.values)


# security/__init__.py SERVED_PROVIDERS: the authProvider.N classes zkserver serves (x509 on the
# secure port, SASL DIGEST-MD5, and the built-in digest and ip).


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
