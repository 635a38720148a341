"""zoo.cfg parsing and validation (zkserver.config), checked against Apache's rules.

Each test writes a zoo.cfg into a temporary working directory and loads it by the
relative name "zoo.cfg", so error messages can be compared whole ("zoo.cfg:3: ...").
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from zkserver.config import (
    DEFAULT_METRICS_PROVIDER,
    FOUR_LETTER_WORDS,
    TELNET_CLOSE,
    ConfigError,
    PeerAddress,
    ServerConfig,
    is_standalone,
    load_config,
    parse_properties,
    parse_system_properties,
)

BASE = "dataDir=./data"


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    return tmp_path


def write(*lines: str, name: str = "zoo.cfg") -> str:
    Path(name).write_text("\n".join(lines) + "\n", encoding="latin-1")
    return name


def load(*lines: str, props: dict[str, str] | None = None) -> ServerConfig:
    return load_config(write(*lines), props)


def error_of(*lines: str, props: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(*lines, props=props)
    return info.value


def set_myid(sid: int | str) -> None:
    Path("data/myid").write_text(f"{sid}\n")


def ensemble(*extra: str) -> list[str]:
    return [BASE, "initLimit=10", "syncLimit=5", "server.1=h1:2888:3888",
            "server.2=h2:2888:3888", "server.3=h3:2888:3888", *extra]


# -- defaults ---------------------------------------------------------------------------


def test_no_file_gives_the_sample_defaults() -> None:
    cfg = load_config(None)
    assert (cfg.tick_time, cfg.client_port, cfg.data_dir, cfg.data_log_dir) == (2000, 2181, "./data", "./data")
    assert cfg.client_port_address is None
    assert cfg.effective_min_session_timeout == 4000
    assert cfg.effective_max_session_timeout == 40000
    assert cfg.source_path is None and cfg.source_text is None
    assert cfg.warnings == []
    assert is_standalone(cfg)


def test_apache_defaults_of_the_other_settings() -> None:
    cfg = load_config(None)
    assert cfg.max_client_cnxns == 60 and cfg.max_cnxns == 0
    assert cfg.four_letter_whitelist == frozenset({"srvr"})
    assert (cfg.snap_count, cfg.snap_size_limit_kb, cfg.txn_log_size_limit_kb) == (100000, 4194304, -1)
    assert cfg.pre_alloc_size_kb == 65536 and cfg.force_sync is True
    assert (cfg.autopurge_snap_retain_count, cfg.autopurge_purge_interval) == (3, 0)
    assert cfg.global_outstanding_limit == 1000
    assert cfg.digest_enabled is True and cfg.snapshot_compression_method == ""
    assert (cfg.admin_enable_server, cfg.admin_server_address, cfg.admin_server_port,
            cfg.admin_command_url) == (True, "0.0.0.0", 8080, "/commands")
    assert cfg.metrics_provider_class == DEFAULT_METRICS_PROVIDER
    assert (cfg.metrics_http_host, cfg.metrics_http_port) == ("0.0.0.0", 7000)
    assert cfg.server_id is None and cfg.servers == {} and cfg.peer_type == "participant"
    assert cfg.standalone_enabled is True and cfg.reconfig_enabled is False
    assert cfg.election_alg == 3


def test_property_accessor_defaults() -> None:
    cfg = load_config(None)
    assert cfg.jute_max_buffer == 0xFFFFF
    assert cfg.jute_max_buffer_extra_size == 0xFFFFF
    assert cfg.extended_types_enabled is False
    assert cfg.skip_acl is False
    assert cfg.super_digest is None
    assert cfg.enforce_quota is False
    assert cfg.container_check_interval_ms == 60000
    assert cfg.container_max_per_minute == 10000
    assert cfg.container_max_never_used_interval_ms == 0
    assert cfg.read_only_mode_enabled is False
    assert cfg.digest_auth_enabled is True
    assert cfg.enforce_auth_enabled is False and cfg.enforce_auth_schemes == ()
    assert cfg.fsync_warning_threshold_ms == 1000


def test_file_without_tick_time_uses_apaches_3000() -> None:
    # QuorumPeerConfig starts from ZooKeeperServer.DEFAULT_TICK_TIME (3000), not 2000.
    cfg = load(BASE, "clientPort=2181")
    assert cfg.tick_time == 3000
    assert cfg.effective_min_session_timeout == 6000


def test_file_without_client_port_has_none_and_warns() -> None:
    cfg = load(BASE)
    assert cfg.client_port is None
    assert "zoo.cfg: neither clientPort nor secureClientPort is set; no client can connect" in cfg.warnings
    assert not any("neither clientPort" in w for w in load(BASE, "secureClientPort=2281").warnings)


def test_data_log_dir_defaults_to_data_dir() -> None:
    assert load(BASE).data_log_dir == "./data"
    assert load(BASE, "dataLogDir=/var/log/zk").data_log_dir == "/var/log/zk"
    assert ServerConfig(data_dir="/x").data_log_dir == "/x"


def test_source_text_and_path_are_kept() -> None:
    path = write(BASE, "# comment", "clientPort=2181")
    cfg = load_config(path)
    assert cfg.source_path == "zoo.cfg"
    assert cfg.source_text == "dataDir=./data\n# comment\nclientPort=2181\n"


def test_typed_values_are_read() -> None:
    cfg = load(BASE, "tickTime=500", "clientPort=2190", "clientPortAddress=127.0.0.1",
               "maxClientCnxns=0", "minSessionTimeout=1000", "maxSessionTimeout=9000",
               "localSessionsEnabled=TRUE", "autopurge.purgeInterval=24")
    assert (cfg.tick_time, cfg.client_port, cfg.client_port_address) == (500, 2190, "127.0.0.1")
    assert cfg.max_client_cnxns == 0
    assert (cfg.effective_min_session_timeout, cfg.effective_max_session_timeout) == (1000, 9000)
    assert cfg.local_sessions_enabled is True
    assert cfg.autopurge_purge_interval == 24


def test_client_port_zero_is_allowed_like_apache() -> None:
    assert load(BASE, "clientPort=0").client_port == 0


def test_later_keys_override_earlier_ones() -> None:
    cfg = load(BASE, "clientPort=1111", "clientPort=2222")
    assert cfg.client_port == 2222
    assert cfg.key_lines["clientPort"] == 3


# -- errors name file, line and reason -----------------------------------------------------


def test_error_message_names_file_line_and_reason() -> None:
    err = error_of(BASE, "tickTime=2000", "clientPort=abc")
    assert str(err) == "zoo.cfg:3: clientPort: 'abc' is not a number"
    assert (err.path, err.line) == ("zoo.cfg", 3)
    assert err.reason == "clientPort: 'abc' is not a number"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("clientPort=70000", "clientPort: 70000 is not a port number (0..65535)"),
        ("clientPort=-1", "clientPort: -1 is not a port number (0..65535)"),
        ("clientPort= 12 34", "clientPort: '12 34' is not a number"),
        ("tickTime=2147483648", "tickTime: '2147483648' is out of range for a 32-bit number"),
        ("tickTime=\\u0661", "tickTime: '\u0661' is not a number"),
        ("tickTime=1_000", "tickTime: '1_000' is not a number"),
        ("tickTime=0", "tickTime: is not set (0)"),
        ("tickTime=-5", "tickTime: -5 is not a positive time in ms"),
        ("electionAlg=1", "electionAlg: 1 is not supported; only 3 (fast leader election) is"),
        ("peerType=leader", "peerType: 'leader' is not participant or observer"),
        ("standaloneEnabled=yes", "standaloneEnabled: 'yes' is not true or false"),
        ("minSessionTimeout=-2", "minSessionTimeout: -2 must be -1 (2x/20x tickTime) or a time in ms"),
        ("clientPortAddress=127.0.0.1", "clientPortAddress: is set but clientPort is not set"),
        ("secureClientPortAddress=::1", "secureClientPortAddress: is set but secureClientPort is not set"),
        ("jvm.pause.warn-threshold.ms=soon", "jvm.pause.warn-threshold.ms: 'soon' is not a number"),
        ("DigestAuthenticationProvider.digestAlg=", "DigestAuthenticationProvider.digestAlg: empty value"),
        ("metricsProvider.httpPort=x", "metricsProvider.httpPort: 'x' is not a number"),
        ("ssl.clientAuth=maybe", "ssl.clientAuth: 'maybe' is not none, want or need"),
        ("enforce.auth.enabled=true", "enforce.auth.enabled: is true but zookeeper.enforce.auth.schemes"
                                      " names no scheme"),
    ],
)
def test_bad_value_is_reported_at_its_line(line: str, reason: str) -> None:
    err = error_of(BASE, "# filler", line)
    assert str(err) == f"zoo.cfg:3: {reason}"


def test_min_session_timeout_above_max_is_an_error() -> None:
    err = error_of(BASE, "tickTime=1000", "minSessionTimeout=30000", "maxSessionTimeout=20000")
    assert err.line == 3
    assert "must not be larger than maxSessionTimeout" in err.reason
    # Against the 20x tickTime default too.
    err = error_of(BASE, "tickTime=100", "minSessionTimeout=3000")
    assert "(3000) must not be larger than maxSessionTimeout (2000)" in err.reason


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("nope.cfg")
    assert str(info.value) == "nope.cfg: file is missing"


def test_data_dir_is_required_in_a_file() -> None:
    assert str(error_of("clientPort=2181")) == "zoo.cfg: dataDir is not set"


def test_config_error_formats() -> None:
    assert str(ConfigError(None, None, "bad")) == "bad"
    assert str(ConfigError("a.cfg", None, "bad")) == "a.cfg: bad"
    assert str(ConfigError("a.cfg", 7, "bad")) == "a.cfg:7: bad"


# -- java.util.Properties syntax -----------------------------------------------------------


def test_properties_separators_and_comments() -> None:
    text = "a=1\nb: 2\nc   3\n# x=1\n  ! y=2\nd = = v\ne\n\tf\t=\t6  \n"
    got = {e.key: e.value for e in parse_properties(text)}
    assert got == {"a": "1", "b": "2", "c": "3", "d": "= v", "e": "", "f": "6"}


def test_properties_continuation_lines_and_numbers() -> None:
    text = "first=1\nlist=a,\\\n    b,\\\n\tc\n# comment \\\nlast=z\n"
    entries = parse_properties(text)
    assert [(e.key, e.value, e.line) for e in entries] == [
        ("first", "1", 1), ("list", "a,b,c", 2), ("last", "z", 6)]


def test_properties_even_backslashes_do_not_continue() -> None:
    entries = parse_properties("path=c:\\\\\nnext=1\n")
    assert [(e.key, e.value) for e in entries] == [("path", "c:\\"), ("next", "1")]


def test_properties_escapes() -> None:
    entries = parse_properties("k\\=ey\\ 1=v\\tq\nu=\\u0041\\q\n\\#h=i\n")
    assert [(e.key, e.value) for e in entries] == [("k=ey 1", "v\tq"), ("u", "Aq"), ("#h", "i")]


def test_properties_crlf_and_cr_line_ends() -> None:
    entries = parse_properties("a=1\r\nb=2\rc=3")
    assert [(e.key, e.value, e.line) for e in entries] == [("a", "1", 1), ("b", "2", 2), ("c", "3", 3)]


def test_properties_dangling_backslash_at_end_of_file() -> None:
    assert [(e.key, e.value) for e in parse_properties("last=z\\")] == [("last", "z")]


def test_malformed_unicode_escape_names_line() -> None:
    err = error_of(BASE, "x=\\u00g1")
    assert str(err) == "zoo.cfg:2: malformed \\uxxxx escape"


def test_continuation_inside_zoo_cfg() -> None:
    cfg = load(BASE, "4lw.commands.whitelist=ruok,\\", "    mntr", "clientPort=\\", "  2182")
    assert cfg.four_letter_whitelist == {"ruok", "mntr", "srvr"}
    assert cfg.client_port == 2182
    assert cfg.key_lines["clientPort"] == 4


def test_file_is_read_as_latin1_like_properties() -> None:
    Path("zoo.cfg").write_bytes(b"dataDir=./data\nsuperUserName=caf\xe9\n")
    cfg = load_config("zoo.cfg")
    assert cfg.properties["zookeeper.superUserName"] == "caf\u00e9"


# -- unknown keys become zookeeper.* system properties ------------------------------------


def test_unknown_key_becomes_zookeeper_property() -> None:
    cfg = load(BASE, "extendedTypesEnabled=true", "someFutureKnob=42")
    assert cfg.properties["zookeeper.extendedTypesEnabled"] == "true"
    assert cfg.properties["zookeeper.someFutureKnob"] == "42"
    assert cfg.extended_types_enabled is True
    assert "tickTime" not in str(cfg.properties)  # known keys stay out


def test_cfg_key_overrides_the_same_minus_d_property() -> None:
    # Apache calls System.setProperty for the zoo.cfg key after the JVM read -D.
    cfg = load(BASE, "snapCount=10", props={"zookeeper.snapCount": "99"})
    assert cfg.snap_count == 10
    assert load(BASE, props={"zookeeper.snapCount": "99"}).snap_count == 99


def test_given_properties_are_not_mutated() -> None:
    props = {"zookeeper.snapCount": "99"}
    load(BASE, "snapCount=10", props=props)
    assert props == {"zookeeper.snapCount": "99"}


def test_bad_minus_d_value_names_the_property() -> None:
    err = error_of(BASE, props={"jute.maxbuffer": "0"})
    assert err.path is None
    assert str(err) == "system property jute.maxbuffer: '0' must be positive"


@pytest.mark.parametrize(
    ("line", "attribute", "value", "why"),
    [
        # Integer.getInteger, Long.getLong and their try/catch readers: the default.
        ("snapCount=many", "snap_count", 100000, "'many' is not a number; ZooKeeper reads it as 100000"),
        ("preAllocSize=64M", "pre_alloc_size_kb", 65536, "'64M' is not a number; ZooKeeper reads it as 65536"),
        ("globalOutstandingLimit=1k", "global_outstanding_limit", 1000, "reads it as 1000"),
        ("admin.serverPort=80800", "admin_server_port", 8080,
         "80800 is not a port number (0..65535); ZooKeeper reads it as 8080"),
        ("snapshot.compression.method=zip", "snapshot_compression_method", "",
         "'zip' is not gz, snappy or empty; ZooKeeper reads it as ''"),
        ("fsync.warningthresholdms=1s", "fsync_warning_threshold_ms", 1000,
         "'1s' is not a number; ZooKeeper ignores it"),
        # Boolean.parseBoolean / getBoolean: every word but true is false.
        ("extendedTypesEnabled=on", "extended_types_enabled", False,
         "'on' is not true or false; ZooKeeper reads it as false"),
        ("digest.enabled=yes", "digest_enabled", False, "reads it as false"),
        ("admin.enableServer=yes", "admin_enable_server", False, "reads it as false"),
        # equals("yes") and !equals("no"): forceSync=false still fsyncs, skipACL=true still checks.
        ("forceSync=false", "force_sync", True, "'false' is not yes or no; ZooKeeper reads it as true"),
        ("skipACL=true", "skip_acl", False, "'true' is not yes or no; ZooKeeper reads it as false"),
    ],
)
def test_malformed_property_starts_with_apaches_reading_and_a_warning(line: str, attribute: str, value: object,
                                                                      why: str) -> None:
    cfg = load(BASE, line)
    assert getattr(cfg, attribute) == value
    key = line.split("=", 1)[0]
    [warning] = [w for w in cfg.warnings if w.startswith(f"zoo.cfg:2: {key}: ")]
    assert why in warning and warning.endswith(", and so does zkserver")


def test_malformed_minus_d_property_warns_with_the_property_name() -> None:
    cfg = load(BASE, props={"jute.maxbuffer": "1M", "readonlymode.enabled": "yes"})
    assert cfg.jute_max_buffer == 0xFFFFF and cfg.read_only_mode_enabled is False
    assert "system property jute.maxbuffer: '1M' is not a number; ZooKeeper reads it as 1048575, and so does" \
           " zkserver" in cfg.warnings


def test_empty_client_port_address_is_the_loopback_address() -> None:
    # InetAddress.getByName(""): Apache listens on the loopback address.
    assert load(BASE, "clientPort=2181", "clientPortAddress=").client_port_address == "127.0.0.1"


@pytest.mark.parametrize(
    ("cfg_line", "attribute", "value"),
    [
        ("snapCount=5000", "snap_count", 5000),
        ("snapSizeLimitInKb=1024", "snap_size_limit_kb", 1024),
        ("txnLogSizeLimitInKb=2048", "txn_log_size_limit_kb", 2048),
        ("preAllocSize=1024", "pre_alloc_size_kb", 1024),
        ("forceSync=no", "force_sync", False),
        ("globalOutstandingLimit=50", "global_outstanding_limit", 50),
        ("maxCnxns=7", "max_cnxns", 7),
        ("digest.enabled=false", "digest_enabled", False),
        ("snapshot.compression.method=GZ", "snapshot_compression_method", "gz"),
        ("serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory", "server_cnxn_factory",
         "org.apache.zookeeper.server.NettyServerCnxnFactory"),
        ("admin.serverPort=9090", "admin_server_port", 9090),
        ("admin.enableServer=false", "admin_enable_server", False),
        ("admin.commandURL=/cmd", "admin_command_url", "/cmd"),
        ("skipACL=yes", "skip_acl", True),
        ("enforceQuota=true", "enforce_quota", True),
        ("DigestAuthenticationProvider.superDigest=super:abc=", "super_digest", "super:abc="),
        ("DigestAuthenticationProvider.enabled=false", "digest_auth_enabled", False),
        ("fsync.warningthresholdms=50", "fsync_warning_threshold_ms", 50),
    ],
)
def test_prefixed_property_works_from_zoo_cfg_and_from_minus_d(
        cfg_line: str, attribute: str, value: object) -> None:
    key, _, raw = cfg_line.partition("=")
    assert getattr(load(BASE, cfg_line), attribute) == value
    assert getattr(load(BASE, props={"zookeeper." + key: raw}), attribute) == value


@pytest.mark.parametrize(
    ("name", "raw", "attribute", "value"),
    [
        ("jute.maxbuffer", "4194304", "jute_max_buffer", 4194304),
        ("jute.maxbuffer", "0x200000", "jute_max_buffer", 0x200000),  # Integer.decode
        ("jute.maxbuffer", "#400", "jute_max_buffer", 1024),
        ("jute.maxbuffer", "0100", "jute_max_buffer", 64),  # a leading 0 is octal in Java
        ("zookeeper.jute.maxbuffer.extrasize", "10", "jute_max_buffer_extra_size", 1024),
        ("znode.container.checkIntervalMs", "1000", "container_check_interval_ms", 1000),
        ("znode.container.maxPerMinute", "5", "container_max_per_minute", 5),
        ("znode.container.maxNeverUsedIntervalMs", "600000", "container_max_never_used_interval_ms", 600000),
        ("readonlymode.enabled", "true", "read_only_mode_enabled", True),
        ("fsync.warningthresholdms", "20", "fsync_warning_threshold_ms", 20),
    ],
)
def test_unprefixed_properties_come_from_minus_d(name: str, raw: str, attribute: str, value: object) -> None:
    assert getattr(load_config(None, {name: raw}), attribute) == value


@pytest.mark.parametrize("key", ["jute.maxbuffer", "readonlymode.enabled", "znode.container.maxPerMinute"])
def test_unprefixed_property_in_zoo_cfg_has_no_effect_and_warns(key: str) -> None:
    default = load_config(None)
    cfg = load(BASE, f"{key}=7" if "container" in key else f"{key}=true" if "readonly" in key
               else f"{key}=5000")
    attribute = {"jute.maxbuffer": "jute_max_buffer", "readonlymode.enabled": "read_only_mode_enabled",
                 "znode.container.maxPerMinute": "container_max_per_minute"}[key]
    assert getattr(cfg, attribute) == getattr(default, attribute)
    assert any(w.startswith(f"zoo.cfg:2: {key}: no effect in zoo.cfg") for w in cfg.warnings)


def test_fsync_threshold_prefixed_name_wins() -> None:
    cfg = load_config(None, {"fsync.warningthresholdms": "5", "zookeeper.fsync.warningthresholdms": "9"})
    assert cfg.fsync_warning_threshold_ms == 9


def test_zero_jute_maxbuffer_is_rejected() -> None:
    with pytest.raises(ConfigError, match=re.escape("jute.maxbuffer: '0' must be positive")):
        load_config(None, {"jute.maxbuffer": "0"})


def test_enforce_auth_schemes() -> None:
    cfg = load(BASE, "enforce.auth.enabled=true", "enforce.auth.schemes=digest, sasl")
    assert cfg.enforce_auth_enabled is True
    assert cfg.enforce_auth_schemes == ("digest", "sasl")
    cfg = load_config(None, {"zookeeper.sessionRequireClientSASLAuth": "true"})
    assert (cfg.enforce_auth_enabled, cfg.enforce_auth_schemes) == (True, ("sasl",))


def test_zookeeper_prefixed_key_in_zoo_cfg_warns() -> None:
    cfg = load(BASE, "zookeeper.snapCount=5")
    assert cfg.snap_count == 100000
    assert cfg.properties["zookeeper.zookeeper.snapCount"] == "5"
    assert any("zoo.cfg:2: zookeeper.snapCount: no effect" in w for w in cfg.warnings)


def test_snap_count_and_retain_count_minimums_warn() -> None:
    assert load(BASE, "autopurge.snapRetainCount=2").autopurge_snap_retain_count == 3
    assert load(BASE, "autopurge.snapRetainCount=4").autopurge_snap_retain_count == 4
    cfg = load(BASE, "snapCount=1", "autopurge.snapRetainCount=1")
    assert (cfg.snap_count, cfg.autopurge_snap_retain_count) == (2, 3)
    assert "zoo.cfg:2: snapCount: 1 is below 2; using 2" in cfg.warnings
    assert "zoo.cfg:3: autopurge.snapRetainCount: 1 is below the minimum; using 3" in cfg.warnings


def test_commit_log_count_is_read_as_apache_reads_it_and_reaches_the_storage() -> None:
    from zkserver.cli import storage_options

    assert load(BASE).commit_log_count == 500
    cfg = load(BASE, props={"zookeeper.commitLogCount": "800"})
    assert (cfg.commit_log_count, storage_options(cfg).commit_log_count) == (800, 800)
    assert load(BASE, "commitLogCount=900").commit_log_count == 900  # zoo.cfg gives zookeeper.commitLogCount
    # ZKDatabase never keeps fewer than 500; a value that is not a number means 500.
    cfg = load(BASE, props={"zookeeper.commitLogCount": "20"})
    assert (cfg.commit_log_count, storage_options(cfg).commit_log_count) == (500, 500)
    assert ("system property zookeeper.commitLogCount: 20 is below 500; ZooKeeper uses 500, and so does zkserver"
            in cfg.warnings)
    assert load(BASE, props={"zookeeper.commitLogCount": "lots"}).commit_log_count == 500


def test_snapshot_size_factor_is_read_as_apache_reads_it_and_reaches_the_peer() -> None:
    from zkserver.shell.ensemble import EnsembleOptions

    assert load(BASE).snapshot_size_factor == 0.33
    assert load(BASE, props={"zookeeper.snapshotSizeFactor": "-1"}).snapshot_size_factor == -1
    assert load(BASE, "snapshotSizeFactor=0.5").snapshot_size_factor == 0.5  # zoo.cfg gives the property
    assert load(BASE, props={"zookeeper.snapshotSizeFactor": "1e-1d"}).snapshot_size_factor == 0.1  # Java syntax
    assert load(BASE, props={"zookeeper.snapshotSizeFactor": "-Infinity"}).snapshot_size_factor == float("-inf")
    # ZKDatabase: above 1, or not a number, means the default, with a warning
    for bad, why in (("2", "'2' is above 1"), ("lots", "'lots' is not a number")):
        cfg = load(BASE, props={"zookeeper.snapshotSizeFactor": bad})
        assert cfg.snapshot_size_factor == 0.33
        assert (f"system property zookeeper.snapshotSizeFactor: {why}; ZooKeeper reads it as 0.33, and so does "
                "zkserver") in cfg.warnings
    set_myid(1)
    cfg = load(*ensemble("snapshotSizeFactor=-1"))
    assert EnsembleOptions.from_config(cfg).peer.snapshot_size_factor == -1


def test_election_client_hold_is_zkservers_own_key_and_reaches_the_core() -> None:
    from zkserver.cli import core_settings

    assert core_settings(load(BASE)).election_hold_ms == 2000
    assert core_settings(load(BASE, "electionClientHoldMs=0")).election_hold_ms == 0  # Apache's way
    assert load(BASE, props={"zookeeper.electionClientHoldMs": "500"}).election_client_hold_ms == 500
    assert load(BASE, props={"zookeeper.electionClientHoldMs": "-5"}).election_client_hold_ms == 0


# -- parse_system_properties ---------------------------------------------------------------


def test_minus_d_items_are_taken_from_args() -> None:
    props, rest = parse_system_properties(
        ["start", "-Dzookeeper.snapCount=5", "zoo.cfg", "-Dflag", "-Da=b=c"], {})
    assert props == {"zookeeper.snapCount": "5", "flag": "", "a": "b=c"}
    assert rest == ["start", "zoo.cfg"]


def test_minus_d_items_from_environment_with_quotes() -> None:
    env = {"SERVER_JVMFLAGS": "-Xmx512m -Dzookeeper.DigestAuthenticationProvider.superDigest='super:a b' "
                              '-Djute.maxbuffer="4194304"'}
    props, rest = parse_system_properties([], env)
    assert props == {"zookeeper.DigestAuthenticationProvider.superDigest": "super:a b",
                     "jute.maxbuffer": "4194304"}
    assert rest == []


def test_minus_d_precedence_cli_over_jvmflags_over_server_jvmflags() -> None:
    env = {"SERVER_JVMFLAGS": "-Da=server -Db=server -Dc=server", "JVMFLAGS": "-Db=jvm -Dc=jvm"}
    props, _ = parse_system_properties(["-Dc=cli"], env)
    assert props == {"a": "server", "b": "jvm", "c": "cli"}


def test_double_dash_stops_scanning() -> None:
    props, rest = parse_system_properties(["-Da=1", "--", "-Db=2"], {})
    assert props == {"a": "1"}
    assert rest == ["--", "-Db=2"]


def test_unbalanced_quote_in_environment_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"^SERVER_JVMFLAGS: cannot split"):
        parse_system_properties([], {"SERVER_JVMFLAGS": "-Da='x"})


def test_minus_d_without_name_is_an_error() -> None:
    with pytest.raises(ConfigError, match="has no property name"):
        parse_system_properties(["-D=x"], {})


def test_parsed_properties_feed_load_config() -> None:
    props, rest = parse_system_properties(["zoo.cfg"], {"JVMFLAGS": "-Dzookeeper.extendedTypesEnabled=true"})
    write(BASE)
    assert load_config(rest[0], props).extended_types_enabled is True


# -- four-letter-word whitelist -------------------------------------------------------------


def test_whitelist_star_enables_everything() -> None:
    cfg = load(BASE, "4lw.commands.whitelist=*")
    assert cfg.four_letter_whitelist == frozenset(FOUR_LETTER_WORDS) | {TELNET_CLOSE}
    assert len(FOUR_LETTER_WORDS) == 18


def test_whitelist_list_is_trimmed_and_always_has_srvr() -> None:
    cfg = load(BASE, "4lw.commands.whitelist= stat , ,ruok,")
    assert cfg.four_letter_whitelist == {"stat", "ruok", "srvr"}


def test_whitelist_from_minus_d() -> None:
    cfg = load_config(None, {"zookeeper.4lw.commands.whitelist": "mntr"})
    assert cfg.four_letter_whitelist == {"mntr", "srvr"}


def test_whitelist_unknown_command_warns() -> None:
    cfg = load(BASE, "4lw.commands.whitelist=ruok,nope")
    assert "nope" in cfg.four_letter_whitelist
    assert any("zoo.cfg:2: 4lw.commands.whitelist: 'nope'" in w for w in cfg.warnings)


def test_isro_added_only_by_the_readonly_system_property() -> None:
    assert "isro" in load_config(None, {"readonlymode.enabled": "true"}).four_letter_whitelist
    assert "isro" not in load(BASE, "readonlymode.enabled=true").four_letter_whitelist


# -- server.N lines ---------------------------------------------------------------------


def test_ensemble_is_parsed_and_not_standalone() -> None:
    set_myid(2)
    cfg = load(*ensemble())
    assert sorted(cfg.servers) == [1, 2, 3]
    spec = cfg.servers[2]
    assert (spec.host, spec.quorum_port, spec.election_port) == ("h2", 2888, 3888)
    assert spec.peer_type == "participant" and spec.client_port is None
    assert cfg.server_id == 2
    assert (cfg.init_limit, cfg.sync_limit) == (10, 5)
    assert not is_standalone(cfg)


def test_observer_and_client_address() -> None:
    set_myid(1)
    cfg = load(*ensemble("server.4=h4:2888:3888:observer;127.0.0.1:2181"))
    spec = cfg.servers[4]
    assert spec.is_observer and spec.peer_type == "observer"
    assert (spec.client_address, spec.client_port) == ("127.0.0.1", 2181)
    assert not any("server.4" in w for w in cfg.warnings)  # served now: nothing to warn about


def test_client_port_without_host_and_explicit_participant() -> None:
    set_myid(1)
    cfg = load(*ensemble("server.4=h4:2888:3888:PARTICIPANT;2181"))
    assert (cfg.servers[4].peer_type, cfg.servers[4].client_address, cfg.servers[4].client_port) == (
        "participant", None, 2181)


def test_ipv6_server_address() -> None:
    set_myid(1)
    cfg = load(BASE, "initLimit=5", "syncLimit=2", "server.1=[::1]:2888:3888;[::1]:2181",
               "server.2=[fe80::2]:2888:3888")
    assert cfg.servers[1].addresses == (PeerAddress("::1", 2888, 3888),)
    assert cfg.servers[1].client_address == "::1"
    assert cfg.servers[2].host == "fe80::2"


def test_multi_address_needs_the_switch() -> None:
    line = "server.1=a1:2888:3888|a2:2889:3889"
    err = error_of(BASE, line)
    assert str(err) == "zoo.cfg:2: server.1: several addresses need multiAddress.enabled=true"
    cfg = load(BASE, "multiAddress.enabled=true", line)
    assert [a.host for a in cfg.servers[1].addresses] == ["a1", "a2"]
    cfg = load(BASE, line, props={"zookeeper.multiAddress.enabled": "true"})
    assert len(cfg.servers[1].addresses) == 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("server.1=h1:2888", "server.1: expected host:quorumPort:electionPort"),
        ("server.1=h1:x:3888", "server.1: quorum port 'x' is not a number"),
        ("server.1=h1:2888:0", "server.1: election port 0 is not a port number (1..65535)"),
        ("server.1=h1:2888:2888", "server.1: quorum port and election port must differ (both 2888)"),
        ("server.1=h1:2888:3888:leader", "server.1: 'leader' is not participant or observer"),
        ("server.1=h1:2888:3888;a:b:c", "server.1: expected host:quorumPort:electionPort"),
        ("server.1=h1:2888:3888;2181;x", "server.1: expected host:quorumPort:electionPort"),
        ("server.1=h1:2888:3888;99999", "server.1: client port: 99999 is not a port number"),
        ("server.1=:2888:3888", "server.1: empty host"),
        ("server.1=[::1:2888:3888", "server.1: '[::1:2888:3888' starts with '[' but has no matching ']'"),
        ("server.x=h1:2888:3888", "server.x: 'x' is not a server id"),
        ("server.-1=h1:2888:3888", "server.-1: '-1' is not a server id"),
        ("group.1=1:x", "group.1: 'x' is not a server id"),
        ("groupA=1", "groupA: expected group.<id>"),
        ("weight.1=heavy", "weight.1: 'heavy' is not a number"),
    ],
)
def test_bad_server_lines(line: str, reason: str) -> None:
    err = error_of(BASE, "clientPort=2181", line)
    assert err.line == 3
    assert err.reason.startswith(reason)


def test_same_server_id_twice_is_an_error() -> None:
    err = error_of(BASE, "server.1=h1:2888:3888", "server.01=h2:2888:3888")
    assert err.line == 3 and "server id 1 is defined twice" in err.reason


def test_single_server_line_runs_standalone_and_warns() -> None:
    cfg = load(BASE, "clientPort=2181", "server.1=localhost:2888:3888")
    assert is_standalone(cfg)
    assert cfg.server_id is None
    assert any("zoo.cfg:3: server.1: the only server line" in w for w in cfg.warnings)


def test_own_server_line_supplies_the_client_port() -> None:
    set_myid(1)
    cfg = load(BASE, "server.1=localhost:2888:3888;127.0.0.1:2185")
    assert (cfg.client_port, cfg.client_port_address) == (2185, "127.0.0.1")


def test_own_server_line_client_port_must_match_client_port() -> None:
    set_myid(1)
    err = error_of(BASE, "clientPort=2181", "server.1=localhost:2888:3888;2185")
    assert err.line == 3
    assert "differs from clientPortAddress:clientPort 0.0.0.0:2181" in err.reason


def test_ensemble_needs_myid() -> None:
    err = error_of(*ensemble())
    assert err.path == os.path.join("./data", "myid")
    assert "myid file is missing" in err.reason


def test_ensemble_needs_init_and_sync_limit() -> None:
    set_myid(1)
    lines = ensemble()
    assert str(error_of(*[x for x in lines if not x.startswith("initLimit")])) == (
        "zoo.cfg: initLimit is not set (an ensemble needs it)")
    assert str(error_of(*[x for x in lines if not x.startswith("syncLimit")])) == (
        "zoo.cfg: syncLimit is not set (an ensemble needs it)")


def test_myid_must_be_a_number() -> None:
    set_myid("one")
    err = error_of(BASE)
    assert err.path == os.path.join("./data", "myid") and err.line == 1
    assert err.reason == "myid: 'one' is not a server id (a number from 0)"


def test_myid_is_read_in_standalone_mode_too() -> None:
    set_myid(7)
    assert load(BASE).server_id == 7


def test_myid_must_be_listed() -> None:
    set_myid(9)
    err = error_of(*ensemble())
    assert err.reason == "myid: server id 9 has no server.9 line"


def test_standalone_disabled_makes_one_server_an_ensemble() -> None:
    set_myid(1)
    cfg = load(BASE, "standaloneEnabled=false", "initLimit=5", "syncLimit=2", "server.1=h1:2888:3888")
    assert not is_standalone(cfg)


def test_standalone_disabled_one_server_gets_the_ensemble_checks() -> None:
    set_myid(1)
    err = error_of(BASE, "standaloneEnabled=false", "server.1=h1:2888:3888")
    assert str(err) == "zoo.cfg: initLimit is not set (an ensemble needs it)"


def test_standalone_disabled_without_servers_is_an_error() -> None:
    err = error_of(BASE, "standaloneEnabled=false")
    assert err.line == 2 and "needs at least one participant" in err.reason


def test_observers_need_participants() -> None:
    err = error_of(BASE, "server.1=h1:2888:3888:observer")
    assert "observers without participants" in str(err)
    err = error_of(BASE, "server.1=h1:2888:3888", "server.2=h2:2888:3888:observer")
    assert "observers without a quorum" in str(err)


def test_peer_type_follows_the_server_list() -> None:
    set_myid(4)
    cfg = load(*ensemble("peerType=participant", "server.4=h4:2888:3888:observer"))
    assert cfg.peer_type == "observer"
    assert any("peerType: participant differs from the server list (observer)" in w for w in cfg.warnings)


def test_even_ensemble_warns() -> None:
    set_myid(1)
    cfg = load(*ensemble("server.4=h4:2888:3888"))
    assert any("consider an odd number of servers" in w for w in cfg.warnings)


def test_server_lines_also_become_properties_like_apache() -> None:
    cfg = load(BASE, "server.1=h1:2888:3888")
    assert cfg.properties["zookeeper.server.1"] == "h1:2888:3888"


def test_hierarchical_groups_and_weights() -> None:
    set_myid(1)
    cfg = load(*ensemble("group.1=1:2", "group.2=3", "weight.1=2"))
    assert cfg.groups == {1: (1, 2), 2: (3,)}
    assert cfg.weights == {1: 2}
    err = error_of(*ensemble("group.1=1:2", "group.2=2:3"))
    assert "server 2 is in several groups" in err.reason


# -- dynamic config file -----------------------------------------------------------------


def test_servers_come_from_the_dynamic_file() -> None:
    set_myid(1)
    write("server.1=h1:2888:3888;2181", "server.2=h2:2888:3888;2181", name="zoo.cfg.dynamic.100000000")
    cfg = load(BASE, "initLimit=5", "syncLimit=2", "dynamicConfigFile=zoo.cfg.dynamic.100000000")
    assert sorted(cfg.servers) == [1, 2]
    assert cfg.dynamic_config_file == "zoo.cfg.dynamic.100000000"


def test_static_server_lines_conflict_with_a_dynamic_file() -> None:
    write("server.1=h1:2888:3888", name="dyn")
    err = error_of(BASE, "dynamicConfigFile=dyn", "server.2=h2:2888:3888")
    assert err.line == 3 and "must be in the dynamic config file" in err.reason


@pytest.mark.parametrize(("line", "reason"), [
    ("version=1", "version: must not be set inside the dynamic file"),
    ("tickTime=5", "tickTime: only server.N, group.N and weight.N belong"),
])
def test_dynamic_file_holds_membership_only(line: str, reason: str) -> None:
    write("server.1=h1:2888:3888", line, name="dyn")
    err = error_of(BASE, "dynamicConfigFile=dyn")
    assert (err.path, err.line) == ("dyn", 2)
    assert err.reason.startswith(reason)


def test_missing_dynamic_file() -> None:
    assert str(error_of(BASE, "dynamicConfigFile=gone")) == "gone: file is missing"


# -- TLS, auth, admin, metrics, capability warnings -------------------------------------


def test_ssl_keys_are_collected_from_cfg_and_minus_d() -> None:
    cfg = load(BASE, "clientPort=2181", "secureClientPort=2281", "ssl.keyStore.location=/k.jks",
               props={"zookeeper.ssl.trustStore.location": "/t.jks"})
    assert cfg.ssl == {"ssl.trustStore.location": "/t.jks", "ssl.keyStore.location": "/k.jks"}
    assert cfg.secure_client_port == 2281
    # QuorumPeerConfig.configureSSLAuth installs the x509 provider for a TLS port.
    assert cfg.auth_providers["x509"] == "org.apache.zookeeper.server.auth.X509AuthenticationProvider"
    assert not any("authProvider.x509" in w for w in cfg.warnings)


def test_ssl_auth_provider_scheme_needs_a_provider() -> None:
    err = error_of(BASE, "secureClientPort=2281", "ssl.authProvider=custom")
    assert err.line == 3 and "no authProvider is configured for the TLS scheme 'custom'" in err.reason
    cfg = load(BASE, "secureClientPort=2281", "ssl.authProvider=custom", "authProvider.custom=com.x.P")
    assert cfg.auth_providers == {"custom": "com.x.P"}


def test_auth_providers_from_numbered_keys() -> None:
    cfg = load(BASE, "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider")
    assert cfg.auth_providers == {"1": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"}


def test_metrics_provider_settings() -> None:
    cfg = load(BASE, "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
               "metricsProvider.httpHost=127.0.0.1", "metricsProvider.httpPort=7001",
               "metricsProvider.exportJvmInfo=false")
    assert cfg.metrics_provider_class.endswith("PrometheusMetricsProvider")
    assert (cfg.metrics_http_host, cfg.metrics_http_port) == ("127.0.0.1", 7001)
    assert cfg.metrics_provider_config["exportJvmInfo"] == "false"
    assert "zookeeper.metricsProvider.httpPort" not in cfg.properties


@pytest.mark.parametrize(
    ("line", "warning"),
    [
        ("initLimit=10", "zoo.cfg:3: initLimit: used only by an ensemble; ignored in standalone mode"),
        ("syncLimit=5", "zoo.cfg:3: syncLimit: used only by an ensemble; ignored in standalone mode"),
        ("portUnification=true", "zoo.cfg:3: portUnification: used only by an ensemble; ignored in standalone mode"),
        ("ssl.quorum.keyStore.location=/k",
         "zoo.cfg:3: ssl.quorum.keyStore.location: used only with sslQuorum=true or portUnification=true"),
        ("authProvider.1=org.Sasl", "zoo.cfg:3: authProvider.1: authentication provider org.Sasl is not served"),
        ("serverCnxnFactory=org.N", "zoo.cfg:3: serverCnxnFactory: org.N is a Java connection factory"),
        ("metricsProvider.httpPort=7001",
         "zoo.cfg:3: metricsProvider.httpPort: metrics provider settings are used only"),
        ("admin.forceHttps=true", "zoo.cfg:3: admin.forceHttps: the AdminServer serves plain HTTP only"),
        ("jvm.pause.monitor=true", "zoo.cfg:3: jvm.pause.monitor: the event-loop stall monitor"),
        ("group.1=1", "zoo.cfg:3: group.1: used only by an ensemble; ignored in standalone mode"),
    ],
)
def test_capability_warnings(line: str, warning: str) -> None:
    cfg = load(BASE, "clientPort=2181", line)
    assert any(w.startswith(warning) for w in cfg.warnings), cfg.warnings


def test_an_ensemble_member_warns_only_about_the_ensemble_settings_it_does_not_serve(workdir: Path) -> None:
    (workdir / "data" / "myid").write_text("1\n")
    cfg = load(BASE, "clientPort=2181", "initLimit=10", "syncLimit=5", "peerType=participant",
               "quorumListenOnAllIPs=false", "electionAlg=3", "server.1=127.0.0.1:2888:3888",
               "server.2=127.0.0.1:2889:3889", "server.3=127.0.0.1:2890:3890", "reconfigEnabled=true",
               "observerMasterPort=2191")
    assert cfg.warnings == [  # reconfigEnabled is served (quorum/reconfig.py): no warning
        "zoo.cfg:12: observerMasterPort: observers follow the leader itself (no ObserverMaster); ignored"]


def test_plain_standalone_config_has_no_warnings() -> None:
    cfg = load(BASE, "tickTime=2000", "clientPort=2181", "maxClientCnxns=0", "admin.enableServer=false",
               "4lw.commands.whitelist=*", "extendedTypesEnabled=true")
    assert cfg.warnings == []


def test_relative_data_dir_is_relative_to_cwd_and_warns(workdir: Path) -> None:
    (workdir / "rel").mkdir()
    (workdir / "rel" / "myid").write_text("3\n")
    cfg = load("dataDir=rel")
    assert cfg.server_id == 3
    assert any(w.startswith("zoo.cfg:1: dataDir: 'rel' is relative to the working directory")
               for w in cfg.warnings)


def test_quorum_sasl_consistency() -> None:
    err = error_of(BASE, "quorum.auth.serverRequireSasl=true")
    assert err.reason == "quorum.auth.serverRequireSasl: needs quorum.auth.enableSasl=true"
    err = error_of(BASE, "quorum.auth.enableSasl=true", "quorum.auth.serverRequireSasl=true")
    assert err.reason == "quorum.auth.serverRequireSasl: needs quorum.auth.learnerRequireSasl=true"
