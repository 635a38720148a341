"""Operator surface, side by side: the same state on Apache ZooKeeper 3.8 and zkserver, then
every four-letter word's lines/keys and every AdminServer command's JSON field names compared.

Apache's AdminServer runs from the Debian package once the servlet API jar is on the classpath
(the package's manifest omits it), so the admin JSON is compared live, not from the source.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from tests.support.ports import free_port
from tests.support.servers import (
    APACHE_CLASSPATH,
    APACHE_DEFAULT_PROPS,
    APACHE_JVM_OPTS,
    APACHE_MAIN,
    RunningServer,
    _start,
    skip_if_no_apache,
    start_apache,
    start_zkserver,
)

from zkserver.ops.metrics import SINCE_39, UNMEASURED_QUORUM

pytestmark = pytest.mark.apache

SERVLET_API = "/usr/share/java/servlet-api.jar"
# Commands 3.8 serves; snapshot/restore (3.9) are tested against zkserver alone.
APACHE38_COMMANDS = [
    "configuration", "connection_stat_reset", "connections", "dirs", "dump", "environment", "get_trace_mask",
    "hash", "initial_configuration", "is_read_only", "last_snapshot", "leader", "monitor",
    "observer_connection_stat_reset", "observers", "ruok", "server_stats", "set_trace_mask", "stat_reset",
    "stats", "system_properties", "voting_view", "watch_summary", "watches", "watches_by_path", "zabstate",
]


def _admin_cfg(port: int) -> dict[str, str]:
    return {"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1", "admin.serverPort": str(port)}


def start_apache_with_admin(workdir: Path, admin_port: int) -> RunningServer:
    skip_if_no_apache()

    def argv(cfg_path: Path) -> list[str]:
        flags = [f"-D{k}={v}" for k, v in APACHE_DEFAULT_PROPS.items()]
        return ["java", *APACHE_JVM_OPTS, *flags, "-cp", f"{APACHE_CLASSPATH}:{SERVLET_API}", APACHE_MAIN,
                str(cfg_path)]

    return _start("apache", workdir, _admin_cfg(admin_port), argv)


class Pair:
    def __init__(self, apache: RunningServer, zk: RunningServer, admin: dict[str, int], metrics_port: int):
        self.servers = {"apache": apache, "zkserver": zk}
        self.admin = admin
        self.metrics_port = metrics_port

    def fl(self, kind: str, cmd: str) -> str:
        return self.servers[kind].four_letter(cmd)

    def admin_json(self, kind: str, name: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin[kind]}/commands/{name}", timeout=10) as r:
            return json.loads(r.read())


def _make_state(server: RunningServer) -> list[KazooClient]:
    """Two sessions, an ephemeral, data watches on two paths (one watched twice), a child watch."""
    a = KazooClient(hosts=server.hosts, timeout=10)
    a.start()
    a.ensure_path("/a/b")
    a.create("/a/e", b"x", ephemeral=True)
    a.get("/a", watch=lambda e: None)
    a.get_children("/a", watch=lambda e: None)
    a.exists("/a/b", watch=lambda e: None)
    b = KazooClient(hosts=server.hosts, timeout=10)
    b.start()
    b.get("/a", watch=lambda e: None)
    return [a, b]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    admin = {"apache": free_port(), "zkserver": free_port()}
    metrics_port = free_port()
    apache = start_apache_with_admin(tmp_path_factory.mktemp("apache"), admin["apache"])
    zk_cfg = {**_admin_cfg(admin["zkserver"]), "metricsProvider.httpHost": "127.0.0.1",
              "metricsProvider.className": "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
              "metricsProvider.httpPort": str(metrics_port)}
    zk = start_zkserver(tmp_path_factory.mktemp("zkserver"), zk_cfg)
    clients: list[KazooClient] = []
    try:
        clients = _make_state(apache) + _make_state(zk)
        yield Pair(apache, zk, admin, metrics_port)
    finally:
        for c in clients:
            c.stop()
            c.close()
        apache.stop()
        zk.stop()


def _keys(text: str, sep: str) -> list[str]:
    return [line.split(sep, 1)[0] for line in text.splitlines() if sep in line]


def _mask_ids(text: str) -> str:
    """Session ids, ports, dates and numbers differ between servers; the layout must not."""
    text = re.sub(r"0x[0-9a-f]+", "0xID", text)
    text = re.sub(r"/127\.0\.0\.1:\d+", "/ADDR", text)
    text = re.sub(r"expire at [^:]+:\d\d:\d\d \w+ \d+:", "expire at DATE:", text)
    return re.sub(r"\d+", "N", text)


def test_conf_dirs_envi_keys(pair: Pair) -> None:
    assert _keys(pair.fl("zkserver", "conf"), "=") == _keys(pair.fl("apache", "conf"), "=")
    assert _keys(pair.fl("zkserver", "dirs"), ":") == _keys(pair.fl("apache", "dirs"), ":")
    assert _keys(pair.fl("zkserver", "envi"), "=") == _keys(pair.fl("apache", "envi"), "=")
    conf = dict(line.split("=", 1) for line in pair.fl("zkserver", "conf").splitlines())
    assert conf["tickTime"] == "500" and conf["minSessionTimeout"] == "1000" and conf["dataDir"].endswith("version-2")


def test_srvr_and_stat_same_lines_and_deterministic_values(pair: Pair) -> None:
    out = {k: pair.fl(k, "srvr") for k in pair.servers}
    assert _keys(out["zkserver"], ":") == _keys(out["apache"], ":")
    fields = {k: dict(line.split(": ", 1) for line in v.splitlines()[1:]) for k, v in out.items()}
    for key in ("Zxid", "Mode", "Node count", "Connections", "Outstanding"):
        assert fields["zkserver"][key] == fields["apache"][key], key
    stat = {k: pair.fl(k, "stat") for k in pair.servers}
    assert _mask_ids(stat["zkserver"]).splitlines()[1:] == _mask_ids(stat["apache"]).splitlines()[1:] or \
        sorted(_mask_ids(stat["zkserver"]).splitlines()[1:]) == sorted(_mask_ids(stat["apache"]).splitlines()[1:])


def test_cons_dump_and_watch_dumps_have_apaches_layout(pair: Pair) -> None:
    for cmd in ("cons", "dump", "wchs", "wchc", "wchp"):
        ours, theirs = (_mask_ids(pair.fl(k, cmd)) for k in ("zkserver", "apache"))
        if cmd == "dump":
            # Sessions are grouped by expiry tick, and whether two sessions opened a few ms
            # apart share a tick is timing: compare the kinds of lines, not how many groups.
            assert set(ours.splitlines()) == set(theirs.splitlines()), cmd
            continue
        assert sorted(ours.splitlines()) == sorted(theirs.splitlines()), cmd
    assert pair.fl("zkserver", "wchs") == pair.fl("apache", "wchs")  # data watches only, as Apache


def test_mntr_keys_are_apaches(pair: Pair) -> None:
    ours = _keys(pair.fl("zkserver", "mntr"), "\t")
    theirs = _keys(pair.fl("apache", "mntr"), "\t")
    assert set(theirs) <= set(ours), set(theirs) - set(ours)
    extra = {re.sub(r"^zk_(avg_|min_|max_|cnt_|sum_)?", "", k) for k in set(ours) - set(theirs)}
    assert extra <= SINCE_39, extra
    values = {k: dict(line.split("\t") for line in pair.fl(k, "mntr").splitlines()) for k in pair.servers}
    for key in ("zk_server_state", "zk_znode_count", "zk_ephemerals_count", "zk_global_sessions",
                "zk_watch_count", "zk_approximate_data_size", "zk_outstanding_requests"):
        assert values["zkserver"][key] == values["apache"][key], key


def test_per_namespace_metrics_are_apaches(pair: Pair) -> None:
    # The same requests on both (_make_state): the same reads and writes of namespace "a",
    # the same bytes by DataTree.updateReadStat/updateWriteStat, in the same mntr order.
    lines = {k: [line for line in pair.fl(k, "mntr").splitlines() if "_per_namespace" in line]
             for k in pair.servers}
    assert lines["zkserver"] == lines["apache"]
    assert "zk_cnt_a_read_per_namespace\t4" in lines["apache"]  # get, get_children, exists; b's get
    assert "zk_cnt_a_write_per_namespace\t3" in lines["apache"]  # /a, /a/b, /a/e


def _namespace_workload(server: RunningServer) -> list[str]:
    """Every operation Apache's DataTree counts (and some it does not), then mntr's per-namespace lines."""
    client = KazooClient(hosts=server.hosts, timeout=10)
    client.start()
    try:
        client.ensure_path("/app/x")
        client.set("/app/x", b"hello")
        client.get("/app/x")
        client.get_children("/app", include_data=True)
        client.exists("/app/x")
        client.exists("/app/missing")  # NoNode: not counted
        client.get_acls("/app/x")  # not counted
        client.delete("/app/x")
        client.create("/other", "\u00e9t\u00e9".encode())  # data bytes, not characters
        client.get("/")  # the root: no namespace
        client.exists("/zookeeper")
        client.get_children("/zookeeper")
        with client.transaction() as txn:
            txn.create("/app/m", b"12")
            txn.set_data("/other", b"")
        client.create("/app/e", b"x", ephemeral=True)
    finally:
        client.stop()  # its ephemeral goes: a delete
        client.close()
    return [line for line in server.four_letter("mntr").splitlines() if "_per_namespace" in line]


def test_per_namespace_metrics_follow_apache_for_each_operation(tmp_path: Path) -> None:
    skip_if_no_apache()
    lines = {}
    for kind, starter in (("apache", start_apache), ("zkserver", start_zkserver)):
        server = starter(tmp_path / kind)
        try:
            lines[kind] = _namespace_workload(server)
        finally:
            server.stop()
    assert lines["zkserver"] == lines["apache"]
    assert "zk_cnt_app_write_per_namespace\t7" in lines["apache"]


def test_small_words(pair: Pair) -> None:
    for cmd in ("ruok", "isro", "crst", "hash"):
        assert pair.fl("zkserver", cmd) == pair.fl("apache", cmd), cmd
    assert pair.fl("zkserver", "gtmk") == pair.fl("apache", "gtmk") == "306"


def test_admin_json_field_names_match_apache(pair: Pair) -> None:
    for name in APACHE38_COMMANDS:
        if name in ("stat_reset", "connection_stat_reset", "set_trace_mask"):
            continue  # mutating; checked below
        ours, theirs = pair.admin_json("zkserver", name), pair.admin_json("apache", name)
        if name in ("environment", "system_properties"):
            assert "command" in ours and ours["error"] is None
            if name == "environment":
                assert set(ours) == set(theirs)
            continue
        if name == "monitor":
            missing = set(theirs) - set(ours)
            assert not missing, missing
            continue
        assert list(ours) == list(theirs), name
        for key in ("server_stats", "client_response"):
            # Apache serializes these two from Java beans, in the JVM's reflection order,
            # which changes between its runs; only the top level is an ordered map.
            if key in theirs:
                assert set(ours[key]) == set(theirs[key]), (name, key)
        assert ours["command"] == theirs["command"] == name


def test_admin_aliases_connections_and_errors(pair: Pair) -> None:
    for alias, primary in (("srvr", "server_stats"), ("cons", "connections"), ("wchp", "watches_by_path"),
                           ("conf", "configuration"), ("config", "configuration"), ("lsnp", "last_snapshot")):
        assert pair.admin_json("zkserver", alias)["command"] == primary
    ours, theirs = (pair.admin_json(k, "cons")["connections"] for k in ("zkserver", "apache"))
    assert len(ours) == len(theirs) == 2
    assert list(ours[0]) == list(theirs[0])
    assert pair.admin_json("zkserver", "nosuch") == pair.admin_json("apache", "nosuch")
    assert pair.admin_json("zkserver", "stmk") == pair.admin_json("apache", "stmk")
    dump = pair.admin_json("zkserver", "dump")
    assert list(dump["session_id_to_ephemeral_paths"].values()) == [["/a/e"]]


def test_prometheus_names_types_from_apache_mntr(pair: Pair) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{pair.metrics_port}/metrics", timeout=10) as r:
        families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
    apache_keys = [k[3:] for k in _keys(pair.fl("apache", "mntr"), "\t") if not k.endswith("_per_namespace")]
    # The quorum metrics we do not measure are left out rather than exported as a made-up 0.
    apache_keys = [k for k in apache_keys if re.sub(r"^(avg|min|max|cnt|sum|p50|p95|p99|p999)_", "", k)
                   not in UNMEASURED_QUORUM]
    summaries = {k[4:] for k in apache_keys if k.startswith("avg_") and f"cnt_{k[4:]}" in apache_keys}
    for name in summaries:
        assert families[name].type == "summary", name
        assert {s.name for s in families[name].samples} >= {name, f"{name}_count", f"{name}_sum"}
    for key in apache_keys:
        if key in ("version", "server_state") or key.split("_", 1)[-1] in summaries:
            continue
        assert key in families, key
    for gauge in ("znode_count", "watch_count", "outstanding_requests", "global_sessions", "num_alive_connections"):
        assert families[gauge].type == "gauge"
    assert families["znode_count"].samples[0].value == 8
    assert families["readlatency"].samples[-2].value > 0  # _count: the kazoo reads above
    ops = {s.labels["op"]: s.value for s in families["zkserver_requests"].samples}
    assert ops["getData"] >= 2 and ops["create"] >= 1
    # Apache's labelled summaries: label key = the namespace (count and sum; no quantile kept)
    reads = {(s.name, s.labels["key"]): s.value for s in families["read_per_namespace"].samples}
    assert reads[("read_per_namespace_count", "a")] >= 4 and reads[("read_per_namespace_sum", "a")] > 0
