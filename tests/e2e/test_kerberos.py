"""SASL GSSAPI (Kerberos) against a real MIT KDC started here, Apache 3.8 and zkserver side by side.

One realm (tests/support/kdc.py) per module: the service principal zookeeper/localhost@EXAMPLE.TEST
and the client alice@EXAMPLE.TEST, each with a keytab, plus stale keytabs (keys re-randomized
after export). One jaas.conf (Server and Client sections, both Krb5LoginModule with a keytab) and
one krb5.conf go to both servers and to the clients: Apache's Java client, a raw RFC 4752 client
on python-gssapi (to see each step of the exchange), and kazoo through pure-sasl's GSSAPI.
Each test asserts the same outcome for both servers: identities, ACLs, failures.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id
from tests.support import javaclient
from tests.support.kdc import CLIENT_PRINCIPAL, REALM, SERVICE_PRINCIPAL, Kdc, start_kdc
from tests.support.prereq import missing
from tests.support.rawwire import open_session, read_frame, reply_err, send_request, wait_sessions
from tests.support.servers import (
    RunningServer,
    ServerStartError,
    start_server_with_props,
)

KINDS = [pytest.param("apache", marks=pytest.mark.apache), "zkserver"]
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
SASL_PROGRAM = Path(__file__).resolve().parent / "java" / "SaslWhoAmI.java"
SERVICE_CLIENT = f"svc/localhost@{REALM}"  # a two-component client principal


def require(module: str) -> Any:
    """Import a client-side package; missing: skip locally, fail under CI=true (it is in the test extra)."""
    try:
        return __import__(module)
    except ImportError as e:
        why = f"{module} is not installed ({e}); pip install -e '.[test]' (needs libkrb5-dev)"
        missing(why)


@dataclass
class Realm:
    kdc: Kdc
    dir: Path

    def keytab(self, name: str) -> Path:
        return self.dir / f"{name}.keytab"

    def ccache(self, name: str) -> Path:
        return self.dir / f"{name}.ccache"

    @contextlib.contextmanager
    def client_env(self) -> Iterator[None]:
        """MIT krb5 in this process (python-gssapi, pykerberos): this realm, alice's tickets."""
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("KRB5_CONFIG", str(self.kdc.krb5_conf))
            mp.setenv("KRB5CCNAME", f"FILE:{self.ccache('alice')}")
            yield

    def jaas(self, path: Path, server: dict[str, str] | None = None, client: str = "alice") -> Path:
        """The jaas.conf both servers and the Java client read."""
        opts = {"useKeyTab": "true", "keyTab": str(self.keytab("zk")), "storeKey": "true",
                "useTicketCache": "false", "principal": SERVICE_PRINCIPAL, **(server or {})}
        principal = {"alice": CLIENT_PRINCIPAL, "alice-stale": CLIENT_PRINCIPAL, "svc": SERVICE_CLIENT}[client]
        path.write_text(
            "Server {\n    com.sun.security.auth.module.Krb5LoginModule required\n"
            + "".join(f'    {k}="{v}"\n' for k, v in opts.items()) + "    ;\n};\n"
            "Client {\n    com.sun.security.auth.module.Krb5LoginModule required\n"
            f'    useKeyTab=true keyTab="{self.keytab(client)}" storeKey=true useTicketCache=false\n'
            f'    principal="{principal}";\n}};\n')
        return path


@pytest.fixture(scope="module")
def realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    require("gssapi")  # zkserver's side, and the raw client's
    d = tmp_path_factory.mktemp("krb5")
    kdc = start_kdc(d / "kdc")
    try:
        r = Realm(kdc, d)
        # ktadd gives the principal new keys each time: the first export goes stale.
        kdc.add_principal(SERVICE_PRINCIPAL, r.keytab("zk-stale"))
        kdc.ktadd(SERVICE_PRINCIPAL, r.keytab("zk"))
        kdc.add_principal(CLIENT_PRINCIPAL, r.keytab("alice-stale"))
        kdc.ktadd(CLIENT_PRINCIPAL, r.keytab("alice"))
        kdc.add_principal(SERVICE_CLIENT, r.keytab("svc"))
        kdc.add_principal(f"zookeeper@{REALM}", r.keytab("zk-nohost"))
        kdc.kinit(CLIENT_PRINCIPAL, r.keytab("alice"), r.ccache("alice"))
        kdc.kinit(SERVICE_CLIENT, r.keytab("svc"), r.ccache("svc"))
        yield r
    finally:
        kdc.stop()


@contextlib.contextmanager
def kerberos_server(kind: str, realm: Realm, workdir: Path, server_opts: dict[str, str] | None = None,
                    props: dict[str, str] | None = None) -> Iterator[RunningServer]:
    workdir.mkdir(parents=True, exist_ok=True)
    jaas = realm.jaas(workdir / "jaas.conf", server_opts)
    all_props = {"java.security.auth.login.config": str(jaas),
                 "java.security.krb5.conf": str(realm.kdc.krb5_conf), **(props or {})}
    cfg = {"authProvider.1": SASL_PROVIDER}
    server = start_server_with_props(kind, workdir / kind, cfg, all_props)
    try:
        wait_sessions(server.port)
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- a raw RFC 4752 client


def _who_am_i(s: socket.socket, xid: int) -> list[str] | int:
    send_request(s, xid, 107)
    reply = read_frame(s)
    err = reply_err(reply)
    if err:
        return err
    count, pos, out = struct.unpack(">i", reply[16:20])[0], 20, []
    for _ in range(count):
        parts = []
        for _ in range(2):
            n = struct.unpack(">i", reply[pos:pos + 4])[0]
            parts.append(reply[pos + 4:pos + 4 + n].decode())
            pos += 4 + n
        out.append("=".join(parts))
    return sorted(out)


def raw_gssapi_login(realm: Realm, port: int, ccache: str = "alice", authzid: str | None = None,
                     layer: int = 1, tamper: str = "") -> list[Any]:
    """Run the GSSAPI exchange over opcode 102 step by step; then whoAmI. Returns what each step got:
    "token" / "null" (the reply's token), an error code, ("layers", hex of the server's offer),
    "closed", and finally the whoAmI list. tamper: "ack" sends a byte where the empty token after the
    AP-REP belongs; "wrap" sends an unwrappable final reply."""
    gssapi = require("gssapi")
    steps: list[Any] = []
    with realm.client_env():
        creds = gssapi.Credentials(usage="initiate", store={"ccache": f"FILE:{realm.ccache(ccache)}"})
        ctx = gssapi.SecurityContext(
            name=gssapi.Name("zookeeper@localhost", gssapi.NameType.hostbased_service), creds=creds,
            usage="initiate", flags=[gssapi.RequirementFlag.mutual_authentication,
                                     gssapi.RequirementFlag.integrity, gssapi.RequirementFlag.confidentiality])
        with open_session(port) as s:
            token = ctx.step()
            try:
                for xid in range(1, 6):
                    send_request(s, xid, 102, struct.pack(">i", len(token)) + token)
                    reply = read_frame(s)
                    err, n = struct.unpack(">iqii", reply[:20])[2:]
                    data = reply[20:20 + n] if n >= 0 else None
                    steps.append(err or ("null" if data is None else "token"))
                    if err:
                        read_frame(s)  # the server closes: raises
                    if not ctx.complete:
                        if data is None:
                            steps.append("null token before the context is established")
                            break
                        token = ctx.step(data) or b""
                        if ctx.complete and tamper == "ack":
                            token = b"x"
                        continue
                    if data is None:
                        break
                    offer = ctx.unwrap(data).message
                    steps.append(("layers", offer.hex()))
                    who = (authzid or str(ctx.initiator_name)).encode()
                    token = ctx.wrap(bytes([layer, 0, 0, 0]) + who, False).message
                    if tamper == "wrap":
                        token = bytes(b ^ 0x55 for b in token)
                steps.append(_who_am_i(s, 100))
            except OSError:
                steps.append("closed")
    return steps


OK_EXCHANGE = ["token", "token", ("layers", "01010000"), "null"]  # AP-REP, offer: no layer + 64 KiB, done


@pytest.mark.parametrize("kind", KINDS)
def test_gssapi_exchange_and_identities(kind: str, realm: Realm, tmp_path: Path) -> None:
    """Every step as Apache does it: the layer offer, the null final token, the authorization id the
    client sends ignored, the principal kept whole (alice@EXAMPLE.TEST, svc/localhost@EXAMPLE.TEST),
    a client choosing a security layer refused."""
    with kerberos_server(kind, realm, tmp_path) as server:
        assert raw_gssapi_login(realm, server.port) == [*OK_EXCHANGE, ["ip=127.0.0.1", f"sasl={CLIENT_PRINCIPAL}"]]
        assert raw_gssapi_login(realm, server.port, authzid="bob")[-1] == ["ip=127.0.0.1", f"sasl={CLIENT_PRINCIPAL}"]
        assert raw_gssapi_login(realm, server.port, "svc")[-1] == ["ip=127.0.0.1", f"sasl={SERVICE_CLIENT}"]
        for layer in (0, 2, 4):  # no bit for "no security layer": AuthFailed, closed
            assert raw_gssapi_login(realm, server.port, layer=layer) == [*OK_EXCHANGE[:3], -115, "closed"]
        assert raw_gssapi_login(realm, server.port, tamper="ack") == ["token", -115, "closed"]
        assert raw_gssapi_login(realm, server.port, tamper="wrap") == [*OK_EXCHANGE[:3], -115, "closed"]


@pytest.mark.parametrize("kind", KINDS)
def test_remove_host_and_realm_and_auth_to_local(kind: str, realm: Realm, tmp_path: Path) -> None:
    props = {"zookeeper.kerberos.removeRealmFromPrincipal": "true",
             # svc/host@REALM -> "service"; alice@REALM (one component) matches no rule: Apache logs
             # the error and keeps the client's authorization id
             "zookeeper.security.auth_to_local": "RULE:[2:$1@$0](svc@.*)s/svc@.*/service/"}
    with kerberos_server(kind, realm, tmp_path / "a", props=props) as server:
        assert raw_gssapi_login(realm, server.port, "svc")[-1] == ["ip=127.0.0.1", "sasl=service/localhost"]
        assert raw_gssapi_login(realm, server.port, authzid="bob")[-1] == ["ip=127.0.0.1", "sasl=bob"]
    props = {"zookeeper.kerberos.removeRealmFromPrincipal": "true",
             "zookeeper.kerberos.removeHostFromPrincipal": "true", "zookeeper.superUser": "alice"}
    with kerberos_server(kind, realm, tmp_path / "b", props=props) as server:
        assert raw_gssapi_login(realm, server.port)[-1] == ["ip=127.0.0.1", "sasl=alice", "super="]
        assert raw_gssapi_login(realm, server.port, "svc")[-1] == ["ip=127.0.0.1", "sasl=svc"]


@pytest.mark.parametrize("kind", KINDS)
def test_server_keytab_failures(kind: str, realm: Realm, tmp_path: Path) -> None:
    """A stale server keytab: start-up stops (Krb5LoginModule's login is refused by the KDC); as an
    acceptor only (isInitiator=false) the server starts and every client fails with AuthFailed.
    storeKey=false: the server keeps no keys, clients fail the same way. A principal without a host:
    no SaslServer at all, SASL packets are answered OK with a null token."""
    with pytest.raises(ServerStartError, match="authenticate itself properly"), \
            kerberos_server(kind, realm, tmp_path / "stale", {"keyTab": str(realm.keytab("zk-stale"))}):
        pass
    for name, opts in (("acceptor", {"keyTab": str(realm.keytab("zk-stale")), "isInitiator": "false"}),
                       ("nostore", {"storeKey": "false"})):
        with kerberos_server(kind, realm, tmp_path / name, opts) as server:
            assert raw_gssapi_login(realm, server.port) == [-115, "closed"]
    opts = {"keyTab": str(realm.keytab("zk-nohost")), "principal": f"zookeeper@{REALM}"}
    with kerberos_server(kind, realm, tmp_path / "nohost", opts) as server:
        assert raw_gssapi_login(realm, server.port) == [
            "null", "null token before the context is established", ["ip=127.0.0.1"]]


# --------------------------------------------------------------------------- Apache's Java client


@pytest.fixture(scope="module")
def sasl_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    javaclient.require_java()
    classes = tmp_path_factory.mktemp("saslwhoami")
    subprocess.run(["javac", "-nowarn", "-d", str(classes), "-cp", javaclient.client_classpath(),
                    str(SASL_PROGRAM)], check=True, capture_output=True, timeout=120)
    return classes


def java_who_am_i(realm: Realm, classes: Path, server: RunningServer, client: str) -> list[str]:
    jaas = realm.jaas(server.cwd / f"jaas-{client}.conf", client=client)
    props = {"java.security.auth.login.config": jaas, "java.security.krb5.conf": realm.kdc.krb5_conf,
             # what the client would derive from 127.0.0.1 through /etc/hosts; set, so no lookup decides
             "zookeeper.server.principal": SERVICE_PRINCIPAL}
    proc = subprocess.run(
        ["java", *javaclient.JVM_OPTS, *(f"-D{k}={v}" for k, v in props.items()),
         "-cp", f"{classes}:{javaclient.client_classpath()}", "SaslWhoAmI", server.hosts],
        capture_output=True, text=True, timeout=90)
    return [line for line in proc.stdout.splitlines() if line != "state=Closed"]


@pytest.mark.java
@pytest.mark.parametrize("kind", KINDS)
def test_java_client_kerberos(kind: str, realm: Realm, sasl_program: Path, tmp_path: Path) -> None:
    """Krb5LoginModule in the Client section: SaslAuthenticated and the principal as the sasl id; a
    stale client keytab fails the client's own login: AuthFailed, and it goes on without SASL."""
    with kerberos_server(kind, realm, tmp_path) as server:
        assert java_who_am_i(realm, sasl_program, server, "alice") == [
            "state=SyncConnected", "state=SaslAuthenticated", f"sasl={CLIENT_PRINCIPAL}", "ip=127.0.0.1"]
        assert java_who_am_i(realm, sasl_program, server, "svc")[2] == f"sasl={SERVICE_CLIENT}"
        assert java_who_am_i(realm, sasl_program, server, "alice-stale") == [
            "state=AuthFailed", "state=SyncConnected", "ip=127.0.0.1"]


@pytest.mark.java
@pytest.mark.parametrize("kind", KINDS)
def test_java_client_against_stale_server_keytab(kind: str, realm: Realm, sasl_program: Path,
                                                 tmp_path: Path) -> None:
    opts = {"keyTab": str(realm.keytab("zk-stale")), "isInitiator": "false"}
    with kerberos_server(kind, realm, tmp_path, opts) as server:
        out = java_who_am_i(realm, sasl_program, server, "alice")
    # the server answers AuthFailed and closes; the 3.8 client's whoAmI then fails inside the client
    # (a NullPointerException), against both servers alike
    assert out == ["state=SyncConnected", "state=AuthFailed", "error=NullPointerException"], out


# --------------------------------------------------------------------------- kazoo (pure-sasl GSSAPI)


@pytest.mark.parametrize("kind", KINDS)
def test_kazoo_gssapi_acls(kind: str, realm: Realm, tmp_path: Path) -> None:
    """pure-sasl's GSSAPI mechanism (it needs the `kerberos` package, pykerberos on MIT krb5)."""
    require("puresasl")
    require("kerberos")
    with kerberos_server(kind, realm, tmp_path) as server, realm.client_env():
        hosts = f"localhost:{server.port}"  # pure-sasl's service host: zookeeper@localhost
        alice = KazooClient(hosts=hosts, timeout=10, sasl_options={
            "mechanism": "GSSAPI", "service": "zookeeper", "principal": CLIENT_PRINCIPAL})
        anon = KazooClient(hosts=hosts, timeout=10)
        try:
            alice.start(timeout=15)
            anon.start(timeout=15)
            alice.create("/k", b"v", acl=[ACL(31, Id("auth", ""))])
            assert alice.get_acls("/k")[0] == [ACL(31, Id("sasl", CLIENT_PRINCIPAL))]
            assert alice.get("/k")[0] == b"v"
            with pytest.raises(NoAuthError):
                anon.get("/k")
        finally:
            for c in (alice, anon):
                with contextlib.suppress(Exception):
                    c.stop()
                    c.close()
