"""The tables of zoo.cfg keys and system properties load_config knows, and the warnings for
those this server parses but does not act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .model import DEFAULT_METRICS_PROVIDER, PROMETHEUS_METRICS_PROVIDER, X509_AUTH_PROVIDER
from .values import (
    _bool,
    _client_address,
    _client_auth,
    _election_alg,
    _int,
    _java_bool,
    _java_int,
    _long,
    _nonempty,
    _optional_port,
    _peer_type,
    _port,
    _session_timeout,
    _text,
)

# Properties that Apache reads *without* the "zookeeper." prefix. Written in zoo.cfg they
# become "zookeeper.<key>" and have no effect there, a classic operator surprise.
_UNPREFIXED_PROPERTIES = frozenset({
    "jute.maxbuffer",
    "readonlymode.enabled",
    "znode.container.checkIntervalMs",
    "znode.container.maxPerMinute",
    "znode.container.maxNeverUsedIntervalMs",
})


# zoo.cfg keys QuorumPeerConfig handles itself (they do not become system properties).
_CFG_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "dataDir": ("data_dir", _nonempty),
    "dataLogDir": ("data_log_dir", _nonempty),
    "clientPort": ("client_port", _port),
    "clientPortAddress": ("client_port_address", _client_address),
    "secureClientPort": ("secure_client_port", _port),
    "secureClientPortAddress": ("secure_client_port_address", _client_address),
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
    "reconfigEnabled": ("reconfig_enabled", _bool),  # served in an ensemble: quorum/reconfig.py, docs/compatibility.md
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
    "dynamicConfigFile", "reconfigEnabled", "sslQuorum", "portUnification", "sslQuorumReloadCertFiles",
    "quorum.auth.enableSasl", "quorum.auth.serverRequireSasl", "quorum.auth.learnerRequireSasl",
    "quorum.auth.learner.saslLoginContext", "quorum.auth.server.saslLoginContext",
    "quorum.auth.kerberos.servicePrincipal", "quorum.cnxn.threads.size", "multiAddress.enabled",
    "multiAddress.reachabilityCheckTimeoutMs", "multiAddress.reachabilityCheckEnabled", "oraclePath",
})


def _is_membership_key(key: str) -> bool:
    # QuorumPeerConfig's own test: any key starting with "group" or "weight" is hierarchical.
    return key.startswith(("server.", "group", "weight"))


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
        return _java_int
    return _java_bool if tail in _SSL_BOOLEANS else _text


# Ensemble settings an ensemble member parses but does not act on (docs/compatibility.md).
_UNSERVED_IN_ENSEMBLE = {
    "connectToLearnerMasterLimit": "a learner connects within initLimit ticks; this limit is ignored",
    "observerMasterPort": "observers follow the leader itself (no ObserverMaster); ignored",
    "multiAddress.reachabilityCheckEnabled": "addresses are tried in order, with no reachability check; ignored",
    "multiAddress.reachabilityCheckTimeoutMs": "addresses are tried in order, with no reachability check; ignored",
}


def _key_warning(key: str, distributed: bool, metrics_class: str) -> str | None:
    """The warning for a zoo.cfg key this server parses but does not act on, if any."""
    if key in _ENSEMBLE_KEYS or key.startswith(("group", "weight")):
        if not distributed:
            return "used only by an ensemble; ignored in standalone mode"
        return _UNSERVED_IN_ENSEMBLE.get(key)
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


def _property_warning(name: str, value: str, quorum_tls: bool = False) -> str | None:
    """The warning for a system property this server reads but does not act on, if any."""
    if name.startswith("zookeeper.server.") or name.startswith("zookeeper.multiAddress."):
        return None  # covered by the server.N and ensemble key warnings
    if name.startswith("zookeeper.ssl.quorum.") and not quorum_tls:
        return "used only with sslQuorum=true or portUnification=true; ignored"
    if name.startswith("zookeeper.authProvider.") and value.strip() not in _SERVED_AUTH_PROVIDERS:
        return f"authentication provider {value} is not served yet; ignored"
    if name == "zookeeper.serverCnxnFactory" and value.strip() not in _APACHE_CNXN_FACTORIES:
        return f"{value} is a Java connection factory; zkserver uses its own; ignored"
    if name in ("zookeeper.admin.portUnification", "zookeeper.admin.forceHttps", "zookeeper.admin.needClientAuth"):
        return "the AdminServer serves plain HTTP only; ignored"
    return None
