"""sslQuorum=true: the election and quorum ports speak TLS only, with mutual authentication.

Real member processes (tests/support/cluster.py) given stores made at test time
(tests/support/pki.py), the same files and zoo.cfg lines for either kind of member. What is
shown: a zkserver ensemble elects, replicates and fails over over TLS; the ports refuse a
plaintext peer and a TLS peer without a certificate, and accept a TLS peer with one; a member
whose certificate is untrusted, or does not name its address, cannot join and crashes nothing;
and mixed ensembles with Apache 3.8 members (both kinds leading and following) agree byte for
byte, which they can only do if our TLS and theirs interoperate.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import mixed
from tests.support.cluster import Cluster
from tests.support.pki import Identity, Pki, make_pki

from zkserver.proto.election_codec import InitialMessage

pytest.importorskip("cryptography")
CFG = {"maxSessionTimeout": "30000"}
STORES = {"jks": lambda i, p: (i.jks, p.trust_jks), "p12": lambda i, p: (i.p12, p.trust_p12),
          "pem": lambda i, p: (i.pem, p.trust_pem)}


@pytest.fixture(scope="module")
def ids(pki: Pki) -> dict[str, Identity]:
    rogue = make_pki(pki.root / "rogue", "/CN=rogue CA")
    return {
        "member": pki.issue("member", "/CN=zk member/O=zkserver tests"),
        "rogue": rogue.issue("rogue", "/CN=rogue member"),
        "elsewhere": pki.issue("elsewhere", "/CN=elsewhere", san="IP:10.9.8.7,DNS:elsewhere.invalid"),
    }


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for cluster in made:
        cluster.close()


def tls_cfg(pki: Pki, ident: Identity, kind: str = "jks") -> dict[str, str]:
    key_store, trust_store = STORES[kind](ident, pki)
    password = "" if kind == "pem" else pki.password
    return {"sslQuorum": "true", "ssl.quorum.keyStore.location": str(key_store),
            "ssl.quorum.keyStore.password": password, "ssl.quorum.trustStore.location": str(trust_store),
            "ssl.quorum.trustStore.password": password}


def make(clusters: list[Cluster], workdir: Path, kinds: list[str], pki: Pki, ident: Identity) -> Cluster:
    cluster = Cluster(workdir, kinds, cfg={**CFG, **tls_cfg(pki, ident)})
    clusters.append(cluster)
    return cluster


def write_and_read_everywhere(c: Cluster, ledger: mixed.Ledger, tag: str, sids: list[int] | None = None) -> None:
    """Writes through one member, then every member (of `sids`) holds them and agrees."""
    sids = sids or c.live()
    zk = mixed.client(c.hosts(sids[:1]))
    try:
        ledger.bulk(zk, f"/{tag}", 20)
    finally:
        mixed.close(zk)
    mixed.agree(c, ledger, sids)


def election_port(c: Cluster, sid: int) -> int:
    return c.seats[sid].election_port


def plaintext_refused(port: int) -> bool:
    """A plaintext peer's initial message gets the connection closed, not an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(InitialMessage(99, (("127.0.0.1", 1),), -65535).encode())
        s.settimeout(15)
        try:
            return s.recv(4096)[:1] in (b"", b"\x15")  # closed, or a TLS alert record
        except ConnectionResetError:
            return True


def tls_handshake(port: int, pki: Pki, ident: Identity | None) -> str | None:
    """None when a TLS client (with `ident`'s certificate, or none) completes the handshake
    with the port, and the server proves to be a member certified by the test CA; else why not."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(pki.trust_pem))
    if ident is not None:
        ctx.load_cert_chain(str(ident.cert), str(ident.key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw) as s:
            s.settimeout(1)
            # TLS 1.3: a refused client certificate shows on the first read, not in the handshake.
            s.sendall(b"\0")
            with contextlib.suppress(TimeoutError):  # still open: accepted (the message is incomplete)
                s.recv(1)
            return None
    except (ssl.SSLError, OSError) as e:
        return str(e)


def test_a_zkserver_ensemble_elects_replicates_and_fails_over_over_tls(
        tmp_path: Path, pki: Pki, ids: dict[str, Identity], clusters: list[Cluster]) -> None:
    c = make(clusters, tmp_path, ["zkserver"] * 3, pki, ids["member"])
    for sid, kind in ((2, "p12"), (3, "pem")):  # every store format Apache reads
        c.member_cfg[sid] = tls_cfg(pki, ids["member"], kind)
    leader = c.start().wait_for_quorum()
    ledger = mixed.Ledger()
    write_and_read_everywhere(c, ledger, "first")

    port = election_port(c, leader)
    mark = c.log_mark(leader)
    assert plaintext_refused(port)
    c.wait_for_log(leader, "TLS handshake failed", mark)
    assert tls_handshake(port, pki, ids["member"]) is None
    assert tls_handshake(port, pki, None) is not None, "a peer without a certificate was let in"
    quorum_port = c.seats[leader].quorum_port
    assert plaintext_refused(quorum_port)
    c.wait_for_log(leader, "quorum connection from 127.0.0.1", mark)

    c.kill(leader)  # kill -9
    survivors = [sid for sid in c.seats if sid != leader]
    c.wait_for_quorum(sids=survivors)
    write_and_read_everywhere(c, ledger, "after")
    c.start([leader])
    c.wait_for_quorum()
    mixed.agree(c, ledger)


@pytest.mark.parametrize("who", ["rogue", "elsewhere"])
def test_a_member_with_an_untrusted_or_misnamed_certificate_cannot_join(
        who: str, tmp_path: Path, pki: Pki, ids: dict[str, Identity], clusters: list[Cluster]) -> None:
    c = make(clusters, tmp_path, ["zkserver"] * 3, pki, ids["member"])
    c.member_cfg[3] = tls_cfg(pki, ids[who])
    c.member_cfg[3]["ssl.quorum.trustStore.location"] = str(pki.trust_jks)  # it trusts the others
    c.start([1, 2])
    marks = {sid: c.log_mark(sid) for sid in (1, 2)}
    c.start([3], wait=False)
    reason = "TLS handshake failed" if who == "rogue" else "does not name 127.0.0.1"
    for sid in (1, 2):
        c.wait_for_log(sid, reason, marks[sid])
    deadline = time.monotonic() + 3.0  # a few election rounds: it would have joined by now
    while time.monotonic() < deadline:
        assert c.mode(3) is None, "a member with a bad certificate joined the ensemble"
        time.sleep(0.2)
    assert all(c.members[sid].running for sid in c.seats), "a TLS failure stopped a member"
    ledger = mixed.Ledger()
    write_and_read_everywhere(c, ledger, "still", [1, 2])  # the two good members serve on
    assert c.mode(3) is None


def test_a_missing_store_or_wrong_password_stops_start_up_naming_the_key(
        tmp_path: Path, pki: Pki, ids: dict[str, Identity]) -> None:
    from zkserver.config import ConfigError, load_config
    from zkserver.shell.election_net import ElectionNetSettings

    base = (f"tickTime=200\ninitLimit=5\nsyncLimit=2\ndataDir={tmp_path}\nclientPort=2181\n"
            "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n")
    (tmp_path / "myid").write_text("1")
    good = tls_cfg(pki, ids["member"])
    cases = {
        "ssl.quorum.keyStore": {**good, "ssl.quorum.keyStore.location": str(tmp_path / "none.jks")},
        "ssl.quorum.trustStore": {**good, "ssl.quorum.trustStore.password": "wrong"},
        "zookeeper.ssl.quorum.trustStore.location": {k: v for k, v in good.items() if "trustStore" not in k},
    }
    for key, cfg in cases.items():
        path = tmp_path / "zoo.cfg"
        path.write_text(base + "".join(f"{k}={v}\n" for k, v in cfg.items()))
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            ElectionNetSettings.from_config(load_config(str(path)))
    path.write_text(base + "".join(f"{k}={v}\n" for k, v in good.items()))
    assert ElectionNetSettings.from_config(load_config(str(path))).tls is not None


@pytest.mark.apache
@pytest.mark.parametrize("kinds", [["apache", "apache", "zkserver"],
                                   pytest.param(["zkserver", "apache", "zkserver"], marks=pytest.mark.slow)],
                         ids=["2apache+1zkserver", "1apache+2zkserver"])
def test_mixed_ensembles_over_tls(kinds: list[str], tmp_path: Path, pki: Pki, ids: dict[str, Identity],
                                  clusters: list[Cluster]) -> None:
    """Fresh members elect the largest sid: zkserver 3 leads first; killed, Apache 2 leads and
    the zkserver members follow it (member 3 rejoins as a follower)."""
    c = make(clusters, tmp_path, kinds, pki, ids["member"])
    assert c.start().wait_for_quorum() == 3
    ledger = mixed.Ledger()
    write_and_read_everywhere(c, ledger, "zkleads")
    assert plaintext_refused(election_port(c, 2))  # the Apache member speaks TLS only too
    c.kill(3)
    assert c.wait_for_quorum(sids=[1, 2]) == 2
    write_and_read_everywhere(c, ledger, "apacheleads")
    c.start([3])
    assert c.wait_for_quorum() == 2
    assert c.mode(3) == "follower"
    write_and_read_everywhere(c, ledger, "rejoined")


def unified_cfg(pki: Pki, ident: Identity, ssl_quorum: bool) -> dict[str, str]:
    """portUnification: TLS or plaintext accepted; dialling in TLS only with sslQuorum."""
    return {**tls_cfg(pki, ident), "sslQuorum": str(ssl_quorum).lower(), "portUnification": "true"}


def test_a_rolling_upgrade_to_tls_with_port_unification_keeps_the_ensemble_serving(
        tmp_path: Path, pki: Pki, ids: dict[str, Identity], clusters: list[Cluster]) -> None:
    """Apache's procedure for moving a running ensemble to quorum TLS: restart every member with
    portUnification, then every one with sslQuorum too, then every one without portUnification;
    a quorum serves throughout and one session outlives every restart."""
    c = Cluster(tmp_path, ["zkserver"] * 3, cfg=CFG)
    clusters.append(c)
    c.start().wait_for_quorum()
    ledger = mixed.Ledger()
    session = mixed.client(c.hosts())
    session_id = session.client_id[0]
    try:
        stages = [("unified", unified_cfg(pki, ids["member"], False)),
                  ("tls+unified", unified_cfg(pki, ids["member"], True)),
                  ("tls", tls_cfg(pki, ids["member"]))]
        for stage, cfg in stages:
            for sid in c.seats:
                c.member_cfg[sid] = cfg
                c.replace(sid, "zkserver")  # stopped, and started again with its new zoo.cfg
                c.start([sid], wait=False)
                c.wait_for_quorum()
                write_and_read_everywhere(c, ledger, f"{stage}-{sid}")
        assert plaintext_refused(election_port(c, 1)) and plaintext_refused(c.seats[c.leader()].quorum_port)
        session.create("/survived", b"yes")
        assert session.client_id[0] == session_id
    finally:
        mixed.close(session)
    mixed.agree(c, ledger)


@pytest.mark.apache
def test_port_unification_interoperates_with_apache_members_either_way(
        tmp_path: Path, pki: Pki, ids: dict[str, Identity], clusters: list[Cluster]) -> None:
    """Mid-upgrade, each kind on either side of it: plaintext Apache members with portUnification
    beside a zkserver member already dialling TLS; then a TLS Apache member beside zkserver members
    still dialling plaintext. Each accepts the other's kind of connection, or there is no quorum."""
    for name, kinds, tls_members in (("apache-plain", ["apache", "apache", "zkserver"], {3}),
                                     ("apache-tls", ["zkserver", "zkserver", "apache"], {3})):
        c = Cluster(tmp_path / name, kinds, cfg=CFG)
        clusters.append(c)
        for sid in c.seats:
            c.member_cfg[sid] = unified_cfg(pki, ids["member"], sid in tls_members)
        c.start().wait_for_quorum()
        ledger = mixed.Ledger()
        write_and_read_everywhere(c, ledger, "mixed")
        c.kill(3)  # the member dialling the other way goes; the other two still agree
        c.wait_for_quorum(sids=[1, 2])
        write_and_read_everywhere(c, ledger, "without3", sids=[1, 2])
        c.start([3])
        c.wait_for_quorum()
        mixed.agree(c, ledger)
        c.close()


def test_sslquorumreloadcertfiles_trusts_a_new_ca_without_a_restart(
        tmp_path: Path, pki: Pki, ids: dict[str, Identity], clusters: list[Cluster]) -> None:
    """The first step of rotating to a new CA: each member's trust store comes to hold both CAs,
    and from its next connection on a member certified by the new CA is let in."""
    new_ca = make_pki(pki.root / "next-ca", "/CN=next CA")
    newcomer = new_ca.issue("newcomer", "/CN=newcomer")
    c = make(clusters, tmp_path, ["zkserver"] * 3, pki, ids["member"])
    trust = tmp_path / "trust-1.pem"
    trust.write_bytes(pki.trust_pem.read_bytes())
    c.member_cfg[1] = {**tls_cfg(pki, ids["member"], "pem"), "ssl.quorum.trustStore.location": str(trust),
                       "sslQuorumReloadCertFiles": "true"}
    c.start().wait_for_quorum()
    port = election_port(c, 1)
    assert tls_handshake(port, pki, newcomer) is not None, "a certificate of the new CA was let in already"
    mark = c.log_mark(1)
    trust.write_bytes(pki.trust_pem.read_bytes() + new_ca.trust_pem.read_bytes())
    time.sleep(1.2)  # the stores' stamps are looked at at most once a second
    assert tls_handshake(port, pki, newcomer) is None  # this connection finds the change
    c.wait_for_log(1, "quorum key or trust store changed: reloaded", mark)
    assert tls_handshake(port, pki, ids["member"]) is None  # the old CA's members still get in
    write_and_read_everywhere(c, mixed.Ledger(), "rotated")
