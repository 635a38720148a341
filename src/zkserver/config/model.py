"""ServerConfig: every setting the server uses, with Apache's defaults and property accessors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .values import (
    USE_DEFAULT,
    _equals_yes,
    _java_bool,
    _java_int,
    _java_long,
    _Lenient,
    _max_buffer,
    _nonempty,
    _size_factor,
)

DEFAULT_METRICS_PROVIDER = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"
PROMETHEUS_METRICS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
X509_AUTH_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"

# The commands FourLetterCommands knows; "*" in the whitelist enables all of them.
FOUR_LETTER_WORDS: tuple[str, ...] = (
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk",
    "srst", "srvr", "stat", "wchc", "wchp", "wchs", "mntr", "isro", "hash",
)
COMMIT_LOG_COUNT = 500  # ZKDatabase.DEFAULT_COMMIT_LOG_COUNT, also the least it keeps
SNAPSHOT_SIZE_FACTOR = 0.33  # ZKDatabase.DEFAULT_SNAPSHOT_SIZE_FACTOR

# The system properties behind ServerConfig's accessors, each with the reader Apache uses and its
# default. A malformed value never stops Apache: Integer.getInteger/Long.getLong fall back to the
# default, Boolean.parseBoolean/getBoolean read any word but "true" as false, skipACL is on for
# exactly "yes". load_config parses each once and warns; the accessors read them the same way.
ACCESSOR_PROPERTIES: dict[str, tuple[Callable[[str], Any], Any]] = {
    "jute.maxbuffer": (_max_buffer, 0xFFFFF),
    "zookeeper.jute.maxbuffer.extrasize": (_java_int, None),  # None: jute.maxbuffer's value
    "zookeeper.extendedTypesEnabled": (_java_bool, False),
    "zookeeper.emulate353TTLNodes": (_java_bool, False),
    "zookeeper.skipACL": (_equals_yes, False),
    "zookeeper.DigestAuthenticationProvider.digestAlg": (_nonempty, "SHA1"),  # "" stops Apache too
    "zookeeper.DigestAuthenticationProvider.enabled": (_java_bool, True),
    "zookeeper.enforceQuota": (_java_bool, False),
    "zookeeper.sessionRequireClientSASLAuth": (_java_bool, False),
    "zookeeper.enforce.auth.enabled": (_java_bool, False),
    "znode.container.checkIntervalMs": (_java_int, 60000),
    "znode.container.maxPerMinute": (_java_int, 10000),
    "znode.container.maxNeverUsedIntervalMs": (_java_long, 0),
    "readonlymode.enabled": (_java_bool, False),
    "fsync.warningthresholdms": (_java_long, 1000),
    "zookeeper.fsync.warningthresholdms": (_java_long, None),  # None: the bare name's value
    "zookeeper.datadir.autocreate": (_java_bool, True),
    "zookeeper.db.autocreate": (_java_bool, True),
    "zookeeper.snapshot.trust.empty": (_java_bool, False),
    "zookeeper.closeSessionTxn.enabled": (_java_bool, True),
    "zookeeper.serializeLastProcessedZxid.enabled": (_java_bool, True),
    # the election port (QuorumCnxManager) and FastLeaderElection
    "zookeeper.fastleader.minNotificationInterval": (_java_int, 200),
    "zookeeper.fastleader.maxNotificationInterval": (_java_int, 60000),
    "zookeeper.cnxTimeout": (_java_int, 5000),
    "zookeeper.electionPortBindRetry": (_java_int, 3),
    "zookeeper.quorumCnxnTimeoutMs": (_java_int, -1),
    "zookeeper.tcpKeepAlive": (_java_bool, False),
    "zookeeper.commitLogCount": (_java_int, COMMIT_LOG_COUNT),  # ZKDatabase: Integer.getInteger
    "zookeeper.snapshotSizeFactor": (_size_factor, SNAPSHOT_SIZE_FACTOR),  # ZKDatabase: Double.parseDouble
    # zkserver's own (zoo.cfg: electionClientHoldMs): how long a member that elects keeps its
    # idle clients' connections (core.model.CoreSettings.election_hold_ms); 0: Apache's way
    "zookeeper.electionClientHoldMs": (_java_int, 2000),
}

# Apache's command table also holds the telnet close code under this name, so "*" enables it
# too, and without it a telnet close gets the "not in the whitelist" reply.
TELNET_CLOSE = "telnet close"


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

    # -- system properties, by Apache's names, readers and defaults (ACCESSOR_PROPERTIES)

    def _prop(self, name: str) -> Any:
        parser, default = ACCESSOR_PROPERTIES[name]
        raw = self.properties.get(name)
        if raw is None:
            return default
        try:
            return parser(raw.strip())
        except _Lenient as exc:  # load_config warned about it already
            return default if exc.value is USE_DEFAULT else exc.value

    @property
    def jute_max_buffer(self) -> int:
        return self._prop("jute.maxbuffer")

    @property
    def jute_max_buffer_extra_size(self) -> int:
        # BinaryInputArchive: defaults to jute.maxbuffer, never below the old fixed 1024.
        extra = self._prop("zookeeper.jute.maxbuffer.extrasize")
        return max(self.jute_max_buffer if extra is None else extra, 1024)

    @property
    def extended_types_enabled(self) -> bool:
        return self._prop("zookeeper.extendedTypesEnabled")

    @property
    def emulate_353_ttl_nodes(self) -> bool:
        return self._prop("zookeeper.emulate353TTLNodes")

    @property
    def skip_acl(self) -> bool:
        return self._prop("zookeeper.skipACL")

    @property
    def super_digest(self) -> str | None:
        return self.properties.get("zookeeper.DigestAuthenticationProvider.superDigest")

    @property
    def digest_algorithm(self) -> str:
        return self._prop("zookeeper.DigestAuthenticationProvider.digestAlg")

    @property
    def digest_auth_enabled(self) -> bool:
        return self._prop("zookeeper.DigestAuthenticationProvider.enabled")

    @property
    def enforce_quota(self) -> bool:
        return self._prop("zookeeper.enforceQuota")

    @property
    def enforce_auth_enabled(self) -> bool:
        # AuthenticationHelper: sessionRequireClientSASLAuth=true implies enforcement of sasl.
        if self._prop("zookeeper.sessionRequireClientSASLAuth"):
            return True
        return self._prop("zookeeper.enforce.auth.enabled")

    @property
    def enforce_auth_schemes(self) -> tuple[str, ...]:
        if self._prop("zookeeper.sessionRequireClientSASLAuth"):
            return ("sasl",)
        raw = self.properties.get("zookeeper.enforce.auth.schemes")
        return () if raw is None else tuple(s.strip() for s in raw.split(","))

    @property
    def container_check_interval_ms(self) -> int:
        return self._prop("znode.container.checkIntervalMs")

    @property
    def container_max_per_minute(self) -> int:
        return self._prop("znode.container.maxPerMinute")

    @property
    def container_max_never_used_interval_ms(self) -> int:
        return self._prop("znode.container.maxNeverUsedIntervalMs")

    @property
    def read_only_mode_enabled(self) -> bool:
        return self._prop("readonlymode.enabled")

    @property
    def fsync_warning_threshold_ms(self) -> int:
        # FileTxnLog: the zookeeper.-prefixed name wins, the bare one is the old spelling.
        prefixed = self._prop("zookeeper.fsync.warningthresholdms")
        return self._prop("fsync.warningthresholdms") if prefixed is None else prefixed

    @property
    def datadir_autocreate(self) -> bool:
        return self._prop("zookeeper.datadir.autocreate")

    @property
    def db_autocreate(self) -> bool:
        return self._prop("zookeeper.db.autocreate")

    @property
    def snapshot_trust_empty(self) -> bool:
        return self._prop("zookeeper.snapshot.trust.empty")

    @property
    def close_session_txn_enabled(self) -> bool:
        return self._prop("zookeeper.closeSessionTxn.enabled")

    @property
    def serialize_last_processed_zxid_enabled(self) -> bool:
        return self._prop("zookeeper.serializeLastProcessedZxid.enabled")

    # -- the election port (QuorumCnxManager) and FastLeaderElection

    @property
    def fle_min_notification_interval_ms(self) -> int:
        return self._prop("zookeeper.fastleader.minNotificationInterval")

    @property
    def fle_max_notification_interval_ms(self) -> int:
        return self._prop("zookeeper.fastleader.maxNotificationInterval")

    @property
    def election_connect_timeout_ms(self) -> int:
        return self._prop("zookeeper.cnxTimeout")

    @property
    def election_port_bind_retry(self) -> int:
        # 0 retries for ever; Apache replaces a negative count by the default.
        retries = self._prop("zookeeper.electionPortBindRetry")
        return retries if retries >= 0 else 3

    @property
    def election_handshake_timeout_ms(self) -> int:
        """The initial-message read timeout: quorumCnxnTimeoutMs if > 0, else tickTime*syncLimit."""
        configured = self._prop("zookeeper.quorumCnxnTimeoutMs")
        return configured if configured > 0 else self.tick_time * self.sync_limit

    @property
    def commit_log_count(self) -> int:
        # ZKDatabase raises anything below its default to the default (load_config warns).
        return max(self._prop("zookeeper.commitLogCount"), COMMIT_LOG_COUNT)

    @property
    def snapshot_size_factor(self) -> float:
        """What share of the newest snapshot's size a leader may read from its txn log for a
        learner behind its committed log; negative: it never does (it sends a snapshot)."""
        return self._prop("zookeeper.snapshotSizeFactor")

    @property
    def election_client_hold_ms(self) -> int:
        return max(self._prop("zookeeper.electionClientHoldMs"), 0)

    @property
    def tcp_keep_alive(self) -> bool:
        return self._prop("zookeeper.tcpKeepAlive")
