"""Our QuorumVerifier strings, byte for byte against Apache 3.8's own, for generated configs.

Apache's QuorumPeerConfig parses each zoo.cfg (tests/e2e/java/QvString.java prints
getQuorumVerifier().toString()); we parse the same file with load_config and compare with
str(verifier_from_config(...)). The configs vary what the string depends on: server ids that
share a HashMap bucket (1/17/33, 0/16), how many other keys the Properties table holds, client
addresses on server lines, IPv6 literals, observers, hierarchical groups and weights, and a
dynamic config file's version.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from tests.support.javaclient import require_java
from tests.support.servers import skip_if_no_apache

from zkserver.config import load_config
from zkserver.quorum.verifier import verifier_from_config

pytestmark = [pytest.mark.apache, pytest.mark.java]

SOURCE = Path(__file__).parent / "java" / "QvString.java"
CLASSPATH = ":".join(f"/usr/share/java/{jar}" for jar in ("zookeeper.jar", "zookeeper-jute.jar", "slf4j-nop.jar"))
HOSTS = ["127.0.0.1", "localhost", "::1", "10.0.0.7", "fe80::1:2"]
SID_POOLS = [[1, 2, 3], [1, 17, 33, 2], [0, 16, 32, 5, 21], list(range(1, 15)), [3, 19, 35, 51, 67, 83, 99]]


def _server_line(rng: random.Random, sid: int, observer: bool, port: int, myid: int) -> str:
    host = rng.choice(HOSTS)
    host = f"[{host}]" if ":" in host else host
    line = f"server.{sid}={host}:{port}:{port + 1}"
    if observer or rng.random() < 0.3:
        line += ":observer" if observer else ":participant"
    if sid != myid and rng.random() < 0.4:
        client = rng.choice(["", "127.0.0.1:", "0.0.0.0:", "[::1]:"])
        line += f";{client}{port + 2}"
    return line


def _config(rng: random.Random, workdir: Path, index: int) -> Path:
    d = workdir / f"c{index}"
    d.mkdir()
    sids = rng.choice(SID_POOLS)[:]
    rng.shuffle(sids)
    observers = set(rng.sample(sids[2:], k=rng.randint(0, max(0, len(sids) - 3))))
    myid = sids[0]
    (d / "myid").write_text(str(myid))
    servers = [_server_line(rng, sid, sid in observers, 20000 + 10 * i, myid) for i, sid in enumerate(sids)]
    membership = list(servers)
    voters = [s for s in sids if s not in observers]
    if rng.random() < 0.3:  # hierarchical: split the voters into groups, weigh a few
        cut = max(1, len(voters) // 2)
        halves = [voters[:cut], voters[cut:]]
        membership += [f"group.{7 - i}={':'.join(map(str, g))}" for i, g in enumerate(halves) if g]
        membership += [f"weight.{s}={rng.randint(0, 3)}" for s in rng.sample(voters, k=len(voters) // 2)]
    filler = [f"{key}=1" for key in ("maxClientCnxns", "globalOutstandingLimit", "snapCount",
                                     "autopurge.purgeInterval", "preAllocSize", "minSessionTimeout", "cnxTimeout")]
    base = ["tickTime=500", f"dataDir={d}", "clientPort=2181", "initLimit=5", "syncLimit=2",
            *rng.sample(filler, k=rng.randint(0, len(filler)))]
    if rng.random() < 0.25:
        dynamic = d / f"zoo.cfg.dynamic.{rng.choice(['0', '100000000', 'abc', '7fffffff00000001'])}"
        dynamic.write_text("\n".join(membership) + "\n")
        lines = [*base, f"dynamicConfigFile={dynamic}"]
    else:
        lines = base + membership
        rng.shuffle(lines)
    path = d / "zoo.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def _apache_strings(paths: list[Path]) -> list[str]:
    proc = subprocess.run(["java", "-cp", CLASSPATH, str(SOURCE), *map(str, paths)],
                          capture_output=True, text=True, timeout=180, check=True)
    return proc.stdout.split("\0")[:-1]


def test_verifier_strings_match_apache(tmp_path: Path) -> None:
    skip_if_no_apache()
    require_java()
    rng = random.Random(1729)
    paths = [_config(rng, tmp_path, i) for i in range(120)]
    compared = 0
    for path, expected in zip(paths, _apache_strings(paths), strict=True):
        if expected.startswith("ERROR"):
            continue  # a config Apache refuses (e.g. a group of observers only); not our subject here
        ours = str(verifier_from_config(load_config(str(path))))
        assert ours == expected, f"{path}:\n{path.read_text()}"
        compared += 1
    assert compared >= 100
