"""The operator surface of ensemble members, side by side: three voters and an observer of
Apache 3.8 and the same of zkserver, the same requests, then every four-letter word and the
AdminServer's commands compared per role (leader, follower, observer, and a member that is
still electing): the same lines and keys in the same order, the same value types, equal values
where the two must agree. `zkServer.sh status` and `zkserver status` name each zkserver
member's role. Documented differences (docs/operations.md) are the only ones allowed.

Each ensemble starts with member 1 alone, so it is electing while we ask it first.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from tests.support.cluster import Cluster
from tests.support.ports import free_port
from tests.support.servers import APACHE_CLASSPATH, RunningServer, zkserver_env

from zkserver.ops.metrics import SINCE_39, UNMEASURED_QUORUM

pytestmark = pytest.mark.apache

SERVLET_API = "/usr/share/java/servlet-api.jar"
ZKSERVER_SH = Path("/usr/share/zookeeper/bin/zkServer.sh")
PROMETHEUS = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
ROLES = ("leader", "follower", "observer")
WORDS = ("srvr", "stat", "conf", "mntr", "cons", "dump", "wchs", "dirs", "isro", "hash", "ruok", "gtmk")
ADMIN = ("leader", "voting_view", "observers", "zabstate", "server_stats", "stats", "monitor", "configuration",
         "is_read_only", "dump", "dirs", "initial_configuration", "ruok", "watch_summary", "connections")
NOT_SERVING = "This ZooKeeper instance is not currently serving requests"
# Keys Apache's leader has that we leave out (docs/operations.md): per-learner queue summaries.
LEARNER_QUEUE = re.compile(r"^zk_(avg|min|max|cnt|sum|p50|p95|p99|p999)_\d+_learner_handler_qp_(size|time_ms)$")


class OpsCluster(Cluster):
    """A Cluster whose members run the AdminServer (Apache: with the servlet API on its
    classpath) and, for zkserver members, the Prometheus endpoint."""

    def __init__(self, workdir: Path, kind: str):
        super().__init__(workdir, [kind] * 4, observers=1)
        self.admin_ports = {sid: free_port() for sid in self.seats}
        self.metrics_ports = {sid: free_port() for sid in self.seats}

    def write_member(self, sid: int) -> Path:
        cfg = super().write_member(sid)
        extra = f"admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={self.admin_ports[sid]}\n"
        if self.seats[sid].kind == "zkserver":
            extra += (f"metricsProvider.className={PROMETHEUS}\nmetricsProvider.httpHost=127.0.0.1\n"
                      f"metricsProvider.httpPort={self.metrics_ports[sid]}\n")
        cfg.write_text(cfg.read_text().replace("admin.enableServer=false\n", extra))
        return cfg

    def _server(self, sid: int) -> RunningServer:
        server = super()._server(sid)
        server.argv = [a.replace(APACHE_CLASSPATH, f"{APACHE_CLASSPATH}:{SERVLET_API}") for a in server.argv]
        return server

    def wait_admin(self, sid: int, timeout: float = 20.0) -> None:
        """Apache starts Jetty after its client port answers: wait until the AdminServer does."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.admin(sid, "ruok")
                return
            except urllib.error.URLError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def admin(self, sid: int, name: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.admin_ports[sid]}/commands/{name}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


@dataclass
class Seen:
    """What one member answered."""

    sid: int
    words: dict[str, str] = field(default_factory=dict)
    admin: dict[str, tuple[int, str]] = field(default_factory=dict)

    def json(self, name: str) -> dict:
        return json.loads(self.admin[name][1])

    def mntr(self) -> list[tuple[str, str]]:
        return [tuple(line.split("\t", 1)) for line in self.words["mntr"].splitlines()]  # type: ignore[misc]


@dataclass
class Ensemble:
    kind: str
    cluster: OpsCluster
    leader: int
    seen: dict[str, Seen]  # by role, and "electing"
    electing_status: list[tuple[int, str]]  # (exit code, last line) of zkserver status, zkServer.sh status


def _status(cfg: Path) -> list[tuple[int, str]]:
    """What `zkserver status` and (when installed) Debian's `zkServer.sh status` say."""
    runs = [subprocess.run([sys.executable, "-m", "zkserver", "status", str(cfg)], env=zkserver_env(),
                           capture_output=True, text=True, timeout=30)]
    if ZKSERVER_SH.exists():
        runs.append(subprocess.run(["bash", str(ZKSERVER_SH), "status", str(cfg)], capture_output=True, text=True,
                                   env={"PATH": "/usr/bin:/bin", "ZOO_LOG_DIR": str(cfg.parent)}, timeout=60))
    return [(run.returncode, (run.stdout.splitlines() or [""])[-1]) for run in runs]


def _capture(cluster: OpsCluster, sid: int) -> Seen:
    seen = Seen(sid)
    for word in WORDS:
        seen.words[word] = cluster.four_letter(sid, word)
    for name in ADMIN:
        seen.admin[name] = cluster.admin(sid, name)
    return seen


def _workload(cluster: OpsCluster, via: int) -> None:
    """Through a follower: a session, a tree, an ephemeral, a data change (five txns)."""
    client = KazooClient(hosts=cluster.hosts([via]), timeout=10)
    client.start()
    client.ensure_path("/a/b")
    client.create("/a/e", b"xyz" * 10, ephemeral=True)
    client.set("/a", b"q" * 100)
    client.exists("/a/b", watch=lambda e: None)
    cluster.clients.append(client)  # type: ignore[attr-defined]


def _wait_applied(cluster: OpsCluster, zxid: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(f"Zxid: {zxid}" in cluster.four_letter(sid, "srvr") for sid in cluster.seats):
            return
        time.sleep(0.05)
    raise AssertionError(f"not every member applied {zxid}")


def _run(kind: str, workdir: Path) -> Ensemble:
    cluster = OpsCluster(workdir, kind)
    cluster.clients = []  # type: ignore[attr-defined]
    cluster.start([1], wait=False)
    cluster.members[1].wait_ready()
    cluster.wait_admin(1)
    seen = {"electing": _capture(cluster, 1)}
    electing_status = _status(cluster.members[1].cfg_path) if kind == "zkserver" else []
    cluster.start()
    leader = cluster.wait_for_quorum()
    modes = cluster.modes()
    follower = min(sid for sid, mode in modes.items() if mode == "follower")
    _workload(cluster, follower)
    _wait_applied(cluster, "0x100000005")
    for role in ROLES:
        sid = min(sid for sid, mode in modes.items() if mode == role)
        seen[role] = _capture(cluster, sid)
    return Ensemble(kind, cluster, leader, seen, electing_status)


@pytest.fixture(scope="module")
def ensembles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Ensemble]]:
    out: dict[str, Ensemble] = {}
    try:
        for kind in ("apache", "zkserver"):
            out[kind] = _run(kind, tmp_path_factory.mktemp(kind))
        yield out
    finally:
        for ens in out.values():
            for client in ens.cluster.clients:  # type: ignore[attr-defined]
                client.stop()
                client.close()
            ens.cluster.close()


def _pair(ensembles: dict[str, Ensemble], role: str) -> tuple[Seen, Seen]:
    return ensembles["apache"].seen[role], ensembles["zkserver"].seen[role]


def _fields(text: str, sep: str) -> list[tuple[str, str]]:
    return [tuple(line.split(sep, 1)) for line in text.splitlines() if sep in line]  # type: ignore[misc]


def _type(value: str) -> str:
    if re.fullmatch(r"-?\d+", value):
        return "int"
    if re.fullmatch(r"-?\d+\.\d+(E-?\d+)?", value):
        return "float"
    return "text"


# ---------------------------------------------------------------- four-letter words


@pytest.mark.parametrize("role", ROLES)
def test_srvr_and_stat_lines_and_values(ensembles: dict[str, Ensemble], role: str) -> None:
    theirs, ours = _pair(ensembles, role)
    for word in ("srvr", "stat"):
        a, z = dict(_fields(theirs.words[word], ": ")), dict(_fields(ours.words[word], ": "))
        assert list(z) == list(a), word
        for key in ("Zxid", "Mode", "Node count", "Outstanding"):
            assert z[key] == a[key], (word, key)
    if role == "leader":
        # The same txns make PROPOSALs of the same sizes (header, txn and digest, as Apache writes them).
        assert dict(_fields(ours.words["srvr"], ": "))["Proposal sizes last/min/max"] == \
            dict(_fields(theirs.words["srvr"], ": "))["Proposal sizes last/min/max"]


@pytest.mark.parametrize("role", ROLES)
def test_conf_keys_values_and_membership(ensembles: dict[str, Ensemble], role: str) -> None:
    theirs, ours = _pair(ensembles, role)
    a_text, z_text = theirs.words["conf"], ours.words["conf"]
    a, z = _fields(a_text.split("membership: ")[0], "="), _fields(z_text.split("membership: ")[0], "=")
    assert [k for k, _ in z] == [k for k, _ in a]
    a, z = dict(a), dict(z)
    for key in ("tickTime", "maxClientCnxns", "minSessionTimeout", "maxSessionTimeout", "clientPortListenBacklog",
                "initLimit", "syncLimit", "electionAlg", "peerType", "secureClientPort"):
        assert z[key] == a[key], key
    assert (a["serverId"], z["serverId"]) == (str(theirs.sid), str(ours.sid))
    cluster = ensembles["zkserver"].cluster
    seat = cluster.seats[ours.sid]
    assert (z["electionPort"], z["quorumPort"]) == (str(seat.election_port), str(seat.quorum_port))
    mask = re.compile(r":\d+")
    assert mask.sub(":P", z_text.split("membership: \n")[1]) == mask.sub(":P", a_text.split("membership: \n")[1])


@pytest.mark.parametrize("role", ROLES)
def test_mntr_keys_order_types_and_values(ensembles: dict[str, Ensemble], role: str) -> None:
    theirs, ours = _pair(ensembles, role)
    a = [(k, v) for k, v in theirs.mntr() if not LEARNER_QUEUE.match(k)]
    z = [(k, v) for k, v in ours.mntr() if re.sub(r"^zk_(avg_|min_|max_|cnt_|sum_)?", "", k) not in SINCE_39]
    assert [k for k, _ in z] == [k for k, _ in a]
    for (key, av), (_, zv) in zip(a, z, strict=True):
        if key != "zk_version":
            assert _type(zv) == _type(av), (key, av, zv)
    a, z = dict(a), dict(z)
    must_agree = ["zk_server_state", "zk_peer_state", "zk_quorum_size", "zk_znode_count", "zk_ephemerals_count",
                  "zk_global_sessions", "zk_watch_count", "zk_approximate_data_size", "zk_outstanding_requests",
                  "zk_proposal_count", "zk_commit_count", "zk_learner_proposal_received_count",
                  "zk_learner_commit_received_count", "zk_cnt_a_write_per_namespace", "zk_sum_a_write_per_namespace"]
    # How often a member looked, synced or was unavailable depends on how the start-up raced.
    if role == "leader":
        must_agree += ["zk_learners", "zk_synced_followers", "zk_synced_non_voting_followers", "zk_synced_observers",
                       "zk_pending_syncs", "zk_last_proposal_size", "zk_min_proposal_size", "zk_max_proposal_size"]
    for key in must_agree:
        assert z[key] == a[key], key
    if role == "observer":
        assert a["zk_observer_master_id"] == str(ensembles["apache"].leader)
        assert z["zk_observer_master_id"] == str(ensembles["zkserver"].leader)


def test_electing_member_answers_as_apache(ensembles: dict[str, Ensemble]) -> None:
    theirs, ours = _pair(ensembles, "electing")
    for word in WORDS:
        if word == "cons":
            continue  # cons lists the asking connection only while serving; both say not serving
        assert ours.words[word] == theirs.words[word], word
    assert ours.words["cons"] == theirs.words["cons"] == NOT_SERVING + "\n"


@pytest.mark.parametrize("role", ROLES)
def test_dump_cons_and_watches_layout(ensembles: dict[str, Ensemble], role: str) -> None:
    theirs, ours = _pair(ensembles, role)

    def mask(text: str) -> set[str]:
        text = re.sub(r"0x[0-9a-f]+", "0xID", text)
        text = re.sub(r"/127\.0\.0\.1:\d+", "/ADDR", text)
        text = re.sub(r"expire at [^:]+:\d\d:\d\d \w+ \d+:", "expire at DATE:", text)
        return set(re.sub(r"\d+", "N", text).splitlines())

    # Which expiry sets exist at a given moment is timing, and Apache's dump can miss a session
    # its follower's ping is moving between sets; the other kinds of lines are fixed.
    timing = {"N expire at DATE:", "\tNxID"}
    assert mask(ours.words["dump"]) - timing == mask(theirs.words["dump"]) - timing
    assert ours.words["wchs"] == theirs.words["wchs"]
    assert ours.words["isro"] == theirs.words["isro"] == "rw"


# ---------------------------------------------------------------- AdminServer


def _shape(value: object) -> object:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


@pytest.mark.parametrize("role", ROLES)
def test_admin_commands_have_apaches_shape(ensembles: dict[str, Ensemble], role: str) -> None:
    theirs, ours = _pair(ensembles, role)
    for name in ADMIN:
        assert ours.admin[name][0] == theirs.admin[name][0] == 200, name
        a, z = theirs.json(name), ours.json(name)
        if name == "monitor":
            missing = {k for k in set(a) - set(z) if not LEARNER_QUEUE.match("zk_" + k)}
            assert not missing and not {k for k in set(z) - set(a) if re.sub(
                r"^(avg_|min_|max_|cnt_|sum_)?", "", k) not in SINCE_39}, name
            continue
        if name in ("server_stats", "stats"):
            # Jackson writes these beans in the JVM's reflection order; compare their keys as sets.
            assert list(z) == list(a) and set(z["server_stats"]) == set(a["server_stats"]), name
            assert z["server_stats"]["server_state"] == a["server_stats"]["server_state"] == role
            assert z.get("proposal_stats") == a.get("proposal_stats"), name
            continue
        if name == "dump":
            assert list(z) == list(a) and (z["expiry_time_to_session_ids"] == {}) == (role != "leader")
            continue
        assert _shape(z) == _shape(a), (name, z, a)


@pytest.mark.parametrize("role", ROLES)
def test_admin_ensemble_values(ensembles: dict[str, Ensemble], role: str) -> None:
    theirs, ours = _pair(ensembles, role)
    for kind, seen in (("apache", theirs), ("zkserver", ours)):
        leader = seen.json("leader")
        assert leader["is_leader"] == (role == "leader") and leader["leader_id"] == ensembles[kind].leader
        assert leader["leader_ip"] == "127.0.0.1"
        view = seen.json("voting_view")["current_config"]
        seats = ensembles[kind].cluster.seats
        assert list(view) == ["1", "2", "3"]
        assert [v["server_addresses"] for v in view.values()] == \
            [[f"127.0.0.1:{seats[s].quorum_port}"] for s in (1, 2, 3)]
        assert [v["client_address"] != "" for v in view.values()] == [s == seen.sid for s in (1, 2, 3)]
        zab = seen.json("zabstate")
        assert (zab["myid"], zab["is_leader"], zab["voting"], zab["zabstate"]) == \
            (seen.sid, role == "leader", role != "observer", "broadcast")
        assert (zab["last_zxid"], zab["zab_epoch"], zab["zab_counter"]) == ("0x100000005", 1, 5)
        assert zab["quorum_address"]["all_addresses"] == [f"127.0.0.1:{seats[seen.sid].quorum_port}"]
        observers = seen.json("observers")
        assert observers["synced_observers"] == (1 if role == "leader" else 0)
        if role == "leader":
            info = observers["observers"][0]
            assert info["sid"] == 4 and info["last_zxid"] == 0x100000005 and info["packets_sent"] > 0
        assert seen.json("initial_configuration")["initial_configuration"] is None


def test_admin_while_electing(ensembles: dict[str, Ensemble]) -> None:
    theirs, ours = _pair(ensembles, "electing")
    for name in ADMIN:
        if name == "monitor":  # Apache fails with a NullPointerException: HTTP 500, an HTML page
            assert ours.admin[name][0] == theirs.admin[name][0] == 500
            continue
        assert ours.admin[name][0] == theirs.admin[name][0] == 200
        assert ours.json(name) == theirs.json(name), name
    assert ours.json("zabstate") == {"voting": False, "zabstate": "", "command": "zabstate", "error": None}
    assert ours.json("ruok")["error"] == NOT_SERVING


# ---------------------------------------------------------------- Prometheus, status


def test_prometheus_families_follow_apaches_mntr_per_role(ensembles: dict[str, Ensemble]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    cluster = ensembles["zkserver"].cluster
    for role in ROLES:
        sid = ensembles["zkserver"].seen[role].sid
        with urllib.request.urlopen(f"http://127.0.0.1:{cluster.metrics_ports[sid]}/metrics", timeout=10) as r:
            families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
        apache = [k[3:] for k, _ in ensembles["apache"].seen[role].mntr()
                  if not LEARNER_QUEUE.match(k) and not k.endswith("_per_namespace")]
        summaries = {k[4:] for k in apache if k.startswith("cnt_")}
        for key in apache:
            prefix, _, rest = key.partition("_")
            base = rest if prefix in ("avg", "min", "max", "cnt", "sum", "p50", "p95", "p99", "p999") and \
                rest in summaries else key
            if key in ("version", "server_state", "peer_state", "observer_master_id") or base in UNMEASURED_QUORUM:
                continue
            assert base in families, (role, key)
        assert not UNMEASURED_QUORUM & set(families)
        if role == "leader":
            assert families["synced_followers"].samples[0].value == 2
            assert families["learners"].samples[0].value == 3
            assert families["proposal_count"].samples[0].value == 5
        else:
            assert "learners" not in families
        assert families["quorum_size"].samples[0].value == 3


def test_status_commands_name_each_members_role(ensembles: dict[str, Ensemble]) -> None:
    ens = ensembles["zkserver"]
    for role in ROLES:
        cfg = ens.cluster.members[ens.seen[role].sid].cfg_path
        assert _status(cfg) == [(0, f"Mode: {role}")] * len(ens.electing_status)
    # While electing srvr says it is not serving: no Mode line, so both report an error.
    assert ens.electing_status and \
        set(ens.electing_status) == {(1, "Error contacting service. It is probably not running.")}
