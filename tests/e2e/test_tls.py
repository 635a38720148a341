"""secureClientPort: TLS with Apache's key stores, x509 identities, bad input; Apache 3.8 beside us.

Every store is made at test time (tests/support/pki.py); each server kind is given the very same
files and zoo.cfg lines, and the tests assert the same outcomes of both. Apache needs its Netty
connection factory for TLS (tests/support/servers.py puts netty-codec/-resolver on its classpath).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id
from tests.support.pki import Identity, Pki, make_pki, server_ssl_cfg
from tests.support.ports import free_port
from tests.support.rawwire import CONNECT_REQUEST
from tests.support.servers import RunningServer, skip_if_no_apache, start_apache, start_zkserver

pytest.importorskip("cryptography")
KINDS = [pytest.param("apache", marks=pytest.mark.apache), "zkserver"]
NETTY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
ALICE = "/CN=alice/OU=eng/O=Acme, Inc./C=US"
ALICE_NAME = "C=US,O=Acme\\, Inc.,OU=eng,CN=alice"
BOB = "/CN=bob/O=Acme, Inc./C=US"
BOB_NAME = "C=US,O=Acme\\, Inc.,CN=bob"


@pytest.fixture(scope="module")
def ids(pki: Pki) -> dict[str, Identity]:
    out = {
        "server": pki.issue("server", "/CN=localhost/O=zk server"),
        "alice": pki.issue("alice", ALICE),
        "bob": pki.issue("bob", BOB),
    }
    rogue = make_pki(pki.root / "rogue", "/CN=rogue CA")
    out["mallory"] = rogue.issue("mallory", "/CN=mallory")
    return out


def start(kind: str, workdir: Path, ssl_cfg: dict[str, str], props: dict[str, str] | None = None,
          plain: bool = True) -> RunningServer:
    secure = free_port()
    cfg: dict[str, str | None] = {"secureClientPort": str(secure), "secureClientPortAddress": "127.0.0.1",
                                  "serverCnxnFactory": NETTY, **ssl_cfg}
    if kind == "apache":
        skip_if_no_apache()
        server = start_apache(workdir, cfg, props)
    else:
        server = start_zkserver(workdir, cfg, props)
    server.secure_port = secure  # type: ignore[attr-defined]
    return server


@contextlib.contextmanager
def serving(kind: str, workdir: Path, ssl_cfg: dict[str, str], props: dict[str, str] | None = None
            ) -> Iterator[RunningServer]:
    server = start(kind, workdir, ssl_cfg, props)
    try:
        wait_secure(server)
        yield server
    finally:
        server.stop()


def wait_secure(server: RunningServer, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.secure_port), 1):
            return
        time.sleep(0.1)
    raise AssertionError(f"secure port {server.secure_port} never listened:\n{server.log_tail()}")


def kazoo(server: RunningServer, pki: Pki, who: Identity | None, timeout: float = 10.0) -> KazooClient:
    client = KazooClient(
        hosts=f"127.0.0.1:{server.secure_port}", use_ssl=True, ca=str(pki.ca_cert), verify_certs=True,
        certfile=str(who.cert) if who else None, keyfile=str(who.key) if who else None, timeout=timeout)
    client.start(timeout=timeout)
    return client


def tls_session(port: int, pki: Pki, who: Identity | None) -> bool:
    """True when a TLS client (with `who`'s certificate, if any) gets a session from the server."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.check_hostname = False
    if who is not None:
        ctx.load_cert_chain(str(who.cert), str(who.key))
    try:
        with socket.create_connection(("127.0.0.1", port), 5) as raw, ctx.wrap_socket(raw) as s:
            s.sendall(CONNECT_REQUEST)
            reply = s.recv(4096)
            return len(reply) >= 4 + 36
    except (OSError, ssl.SSLError):
        return False


def plain_ok(server: RunningServer) -> bool:
    return server.four_letter("ruok") == "imok"


# ----------------------------------------------------------------------------- the stores


@pytest.mark.parametrize("store", ["jks", "p12", "pem"])
@pytest.mark.parametrize("kind", KINDS)
def test_stores_and_x509_identity(kind: str, store: str, pki: Pki, ids: dict[str, Identity],
                                  tmp_path: Path) -> None:
    """Each store format serves TLS; the client certificate's RFC 2253 name is its x509 id."""
    with serving(kind, tmp_path / kind, server_ssl_cfg(pki, ids["server"], store)) as server:
        alice = kazoo(server, pki, ids["alice"])
        bob = kazoo(server, pki, ids["bob"])
        try:
            alice.create("/private", b"a", acl=[ACL(31, Id("x509", ALICE_NAME))])
            assert alice.get("/private")[0] == b"a"
            with pytest.raises(NoAuthError):
                bob.get("/private")
            # the 'auth' scheme expands to the caller's x509 id (an authenticated scheme)
            bob.create("/bobs", b"b", acl=[ACL(31, Id("auth", ""))])
            assert bob.get_acls("/bobs")[0] == [ACL(31, Id("x509", BOB_NAME))]
            with pytest.raises(NoAuthError):
                alice.get("/bobs")
        finally:
            for c in (alice, bob):
                c.stop()
                c.close()
        assert plain_ok(server)


@pytest.mark.parametrize("kind", KINDS)
def test_type_by_property_and_password_files(kind: str, pki: Pki, ids: dict[str, Identity],
                                             tmp_path: Path) -> None:
    """ssl.*.type overrides the extension (a .bin PKCS12 store); passwordPath reads a file."""
    tmp_path.mkdir(exist_ok=True)
    key_store = tmp_path / "server-store.bin"
    key_store.write_bytes(ids["server"].p12.read_bytes())
    pw = tmp_path / "pw.txt"
    pw.write_text(pki.password + "\n")
    cfg = {"ssl.keyStore.location": str(key_store), "ssl.keyStore.type": "pkcs12",
           "ssl.keyStore.passwordPath": str(pw), "ssl.trustStore.location": str(pki.trust_jks),
           "ssl.trustStore.password": pki.password}
    with serving(kind, tmp_path / kind, cfg) as server:
        assert tls_session(server.secure_port, pki, ids["alice"])


@pytest.mark.parametrize("kind", KINDS)
def test_stores_that_cannot_be_loaded_fail_tls_clients_not_the_start(kind: str, pki: Pki, ids: dict[str, Identity],
                                                                      tmp_path: Path) -> None:
    """Apache's Netty factory builds its SSL context per connection: a key store that is missing at
    start-up (or of a type no one can guess) fails the TLS clients, and the plain port serves."""
    stores = tmp_path / kind / "stores"
    stores.mkdir(parents=True)
    missing = stores / "later.p12"
    unguessable = stores / "server-store.bin"
    unguessable.write_bytes(ids["server"].p12.read_bytes())
    for location in (missing, unguessable):
        cfg = server_ssl_cfg(pki, ids["server"], "p12", **{"ssl.keyStore.location": str(location)})
        with serving(kind, tmp_path / kind / location.suffix[1:], cfg) as server:
            assert plain_ok(server)
            assert not tls_session(server.secure_port, pki, ids["alice"])
            if location is not missing:
                continue
            missing.write_bytes(ids["server"].p12.read_bytes())  # the store arrives: next connections work
            deadline = time.monotonic() + 10
            while not tls_session(server.secure_port, pki, ids["alice"]):
                assert time.monotonic() < deadline, "the key store was never loaded"
                time.sleep(0.3)
            if kind == "zkserver":
                assert "TLS connections are closed until the key and trust stores can be loaded" in \
                    server.log_path.read_text()


# ----------------------------------------------------------------------------- client auth


@pytest.mark.parametrize("kind", KINDS)
def test_client_auth_need_want_none(kind: str, pki: Pki, ids: dict[str, Identity], tmp_path: Path) -> None:
    outcomes = {}
    for mode in ("need", "want", "none"):
        cfg = server_ssl_cfg(pki, ids["server"], "jks", **{"ssl.clientAuth": mode})
        with serving(kind, tmp_path / f"{kind}-{mode}", cfg) as server:
            outcomes[mode] = (tls_session(server.secure_port, pki, None),
                              tls_session(server.secure_port, pki, ids["alice"]),
                              tls_session(server.secure_port, pki, ids["mallory"]))
            assert plain_ok(server)
    # (no certificate, trusted certificate, certificate of an unknown CA)
    assert outcomes == {"need": (False, True, False), "want": (True, True, False), "none": (True, True, True)}


@pytest.mark.parametrize("kind", KINDS)
def test_want_without_certificate_has_no_x509_id(kind: str, pki: Pki, ids: dict[str, Identity],
                                                  tmp_path: Path) -> None:
    cfg = server_ssl_cfg(pki, ids["server"], "pem", **{"ssl.clientAuth": "want"})
    with serving(kind, tmp_path / kind, cfg) as server:
        alice = kazoo(server, pki, ids["alice"])
        anon = kazoo(server, pki, None)
        try:
            alice.create("/a", b"", acl=[ACL(31, Id("x509", ALICE_NAME))])
            with pytest.raises(NoAuthError):
                anon.get("/a")
        finally:
            for c in (alice, anon):
                c.stop()
                c.close()


@pytest.mark.parametrize("kind", KINDS)
def test_x509_super_user(kind: str, pki: Pki, ids: dict[str, Identity], tmp_path: Path) -> None:
    props = {"zookeeper.X509AuthenticationProvider.superUser": BOB_NAME}
    with serving(kind, tmp_path / kind, server_ssl_cfg(pki, ids["server"], "p12"), props) as server:
        alice = kazoo(server, pki, ids["alice"])
        bob = kazoo(server, pki, ids["bob"])
        try:
            alice.create("/locked", b"x", acl=[ACL(31, Id("x509", ALICE_NAME))])
            assert bob.get("/locked")[0] == b"x"  # super bypasses every ACL
            bob.set_acls("/locked", [ACL(1, Id("world", "anyone"))])
        finally:
            for c in (alice, bob):
                c.stop()
                c.close()


@pytest.mark.parametrize("kind", KINDS)
def test_protocols_and_ciphersuites(kind: str, pki: Pki, ids: dict[str, Identity], tmp_path: Path) -> None:
    cfg = server_ssl_cfg(pki, ids["server"], "jks", **{
        "ssl.enabledProtocols": "TLSv1.2",
        "ssl.ciphersuites": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"})
    with serving(kind, tmp_path / kind, cfg) as server:
        for version, cipher, ok in ((ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES256-GCM-SHA384", True),
                                    (ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-GCM-SHA256", False),
                                    (ssl.TLSVersion.TLSv1_3, None, False)):
            ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
            ctx.check_hostname = False
            ctx.load_cert_chain(str(ids["alice"].cert), str(ids["alice"].key))
            ctx.minimum_version = ctx.maximum_version = version
            if cipher:
                ctx.set_ciphers(cipher)
            try:
                with socket.create_connection(("127.0.0.1", server.secure_port), 5) as raw, \
                        ctx.wrap_socket(raw) as s:
                    s.sendall(CONNECT_REQUEST)
                    got = len(s.recv(4096)) > 0
            except (OSError, ssl.SSLError):
                got = False
            assert got is ok, (version, cipher)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_protocol_on_each_port_closes_only_that_connection(kind: str, pki: Pki, ids: dict[str, Identity],
                                                                  tmp_path: Path) -> None:
    with serving(kind, tmp_path / kind, server_ssl_cfg(pki, ids["server"], "jks")) as server:
        good = kazoo(server, pki, ids["alice"])
        try:
            good.create("/n", b"1")
            # a plaintext ZooKeeper client on the TLS port
            with socket.create_connection(("127.0.0.1", server.secure_port), 5) as s:
                s.sendall(CONNECT_REQUEST)
                s.settimeout(15)
                assert _drain(s) is not None  # closed (possibly after a TLS alert)
            # a TLS client on the plain port
            assert not tls_session(server.port, pki, ids["alice"])
            # garbage, then a half handshake that never finishes
            with socket.create_connection(("127.0.0.1", server.secure_port), 5) as s:
                s.sendall(os.urandom(2048))
                s.settimeout(15)
                assert _drain(s) is not None
            assert good.get("/n")[0] == b"1"
            assert plain_ok(server)
        finally:
            good.stop()
            good.close()
    if kind == "zkserver":
        text = server.log_path.read_text()
        assert "handshake failed" in text


def _drain(s: socket.socket) -> bytes | None:
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        return None if isinstance(s, TimeoutError) else data
    return data


def test_stalled_handshake_times_out(pki: Pki, ids: dict[str, Identity], tmp_path: Path) -> None:
    with serving("zkserver", tmp_path / "zk", server_ssl_cfg(pki, ids["server"], "jks")) as server:
        with socket.create_connection(("127.0.0.1", server.secure_port), 5) as s:
            s.settimeout(30)
            started = time.monotonic()
            assert _drain(s) == b""
            assert 5 < time.monotonic() - started < 25
        assert "no TLS handshake within" in server.log_path.read_text()


def test_certificate_reload(pki: Pki, ids: dict[str, Identity], tmp_path: Path) -> None:
    """A key store replaced on disk is used from the next connection on (Apache's Netty factory
    reads its stores for every new connection)."""
    tmp_path.mkdir(exist_ok=True)
    live = tmp_path / "live.p12"
    live.write_bytes(ids["server"].p12.read_bytes())
    cfg = server_ssl_cfg(pki, ids["server"], "p12", **{"ssl.keyStore.location": str(live)})
    renewed = pki.issue("server2", "/CN=localhost/O=zk renewed")
    with serving("zkserver", tmp_path / "zk", cfg) as server:
        assert _server_cert_org(server.secure_port, pki) == "zk server"
        live.write_bytes(renewed.p12.read_bytes())
        deadline = time.monotonic() + 10
        while _server_cert_org(server.secure_port, pki) != "zk renewed":
            assert time.monotonic() < deadline, "the renewed certificate was never served"
            time.sleep(0.3)


def _server_cert_org(port: int, pki: Pki) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), 5) as raw, ctx.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value)
