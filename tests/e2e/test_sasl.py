"""SASL (opcode 102) DIGEST-MD5 with a JAAS file: kazoo (pure-sasl) against Apache 3.8 and zkserver.

The same jaas.conf, zoo.cfg lines and -D properties go to both servers; the tests assert the
same outcomes: identities in ACLs, super users, failed logins, enforcement.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id
from tests.support.rawwire import open_session, read_frame, reply_err, send_request, wait_sessions
from tests.support.servers import (
    RunningServer,
    start_server_with_props,
)

pytest.importorskip("puresasl")
KINDS = [pytest.param("apache", marks=pytest.mark.apache), "zkserver"]
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
SERVER_JAAS = """
// the server's users; the Client section is for Apache's Java client
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="bobsecret"
    user_carol="carol secret, with \\"quotes\\"";
};
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="bob"
    password="bobsecret";
};
"""


def write_jaas(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "jaas.conf"
    path.write_text(SERVER_JAAS)
    return path


@contextlib.contextmanager
def sasl_server(kind: str, tmp_path: Path, props: dict[str, str] | None = None) -> Iterator[RunningServer]:
    jaas = write_jaas(tmp_path)
    cfg = {"authProvider.1": SASL_PROVIDER}
    all_props = {"java.security.auth.login.config": str(jaas), **(props or {})}
    server = start_server_with_props(kind, tmp_path / kind, cfg, all_props)
    try:
        wait_sessions(server.port)
        yield server
    finally:
        server.stop()


def sasl_client(server: RunningServer, user: str, password: str) -> KazooClient:
    client = KazooClient(hosts=server.hosts, timeout=10,
                         sasl_options={"mechanism": "DIGEST-MD5", "username": user, "password": password})
    client.start(timeout=10)
    return client


def close(*clients: KazooClient) -> None:
    for c in clients:
        with contextlib.suppress(Exception):
            c.stop()
            c.close()


@pytest.mark.parametrize("kind", KINDS)
def test_digest_md5_identities_in_acls(kind: str, tmp_path: Path) -> None:
    with sasl_server(kind, tmp_path) as server:
        bob = sasl_client(server, "bob", "bobsecret")
        carol = sasl_client(server, "carol", 'carol secret, with "quotes"')
        anon = KazooClient(hosts=server.hosts, timeout=10)
        anon.start(timeout=10)
        try:
            bob.create("/bob", b"b", acl=[ACL(31, Id("sasl", "bob"))])
            assert bob.get("/bob")[0] == b"b"
            for other in (carol, anon):
                with pytest.raises(NoAuthError):
                    other.get("/bob")
            carol.create("/carol", b"c", acl=[ACL(31, Id("auth", ""))])
            assert carol.get_acls("/carol")[0] == [ACL(31, Id("sasl", "carol"))]
        finally:
            close(bob, carol, anon)


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_password_and_unknown_user_fail(kind: str, tmp_path: Path) -> None:
    with sasl_server(kind, tmp_path) as server:
        assert raw_sasl_login(server.port, "bob", "bobsecret") == [0, 0]
        for user, password in (("bob", "wrong"), ("nobody", "x")):
            # AuthFailed on the response step, and the connection closes
            assert raw_sasl_login(server.port, user, password) == [0, -115, "closed"]
        bob = sasl_client(server, "bob", "bobsecret")  # the server serves on
        close(bob)


@pytest.mark.parametrize("kind", KINDS)
def test_super_users(kind: str, tmp_path: Path) -> None:
    props = {"zookeeper.superUser": "carol", "zookeeper.SASLAuthenticationProvider.superPassword": "override"}
    with sasl_server(kind, tmp_path, props) as server:
        bob = sasl_client(server, "bob", "bobsecret")
        carol = sasl_client(server, "carol", 'carol secret, with "quotes"')
        root = sasl_client(server, "super", "override")  # user_super's password is replaced
        try:
            bob.create("/bob", b"b", acl=[ACL(31, Id("sasl", "bob"))])
            assert carol.get("/bob")[0] == b"b"  # zookeeper.superUser
            assert root.get("/bob")[0] == b"b"  # the sasl id "super" matches every sasl ACL
        finally:
            close(bob, carol, root)


@pytest.mark.parametrize("kind", KINDS)
def test_session_require_client_sasl_auth(kind: str, tmp_path: Path) -> None:
    props = {"zookeeper.sessionRequireClientSASLAuth": "true"}
    with sasl_server(kind, tmp_path, props) as server:
        bob = sasl_client(server, "bob", "bobsecret")
        try:
            bob.create("/x", b"1")
            # a client without SASL gets SessionClosedRequireSaslAuth (-124) on its first request
            assert raw_first_reply_err(server.port) == -124
            assert bob.get("/x")[0] == b"1"
        finally:
            close(bob)


def raw_first_reply_err(port: int) -> int:
    with open_session(port) as s:
        path = b"/x"
        send_request(s, 1, 4, struct.pack(">i", len(path)) + path + b"\x00")  # getData
        return reply_err(read_frame(s))


@pytest.mark.parametrize("kind", KINDS)
def test_oversized_and_flooded_tokens_close_only_that_connection(kind: str, tmp_path: Path) -> None:
    with sasl_server(kind, tmp_path) as server:
        bob = sasl_client(server, "bob", "bobsecret")
        try:
            for tokens in ([b"", b"x" * 5000], [b""] * 50):
                assert sasl_flood(server.port, tokens) in ("closed", -115)
            assert bob.exists("/") is not None
        finally:
            close(bob)


def raw_sasl_login(port: int, user: str, password: str) -> list[int | str]:
    """Run DIGEST-MD5 with pure-sasl over a raw connection: the error code of each step."""
    from puresasl.client import SASLClient

    sasl = SASLClient("zk-sasl-md5", "zookeeper", mechanism="DIGEST-MD5", username=user, password=password)
    errs: list[int | str] = []
    with open_session(port) as s:
        token = b""
        try:
            for xid in (1, 2):
                send_request(s, xid, 102, struct.pack(">i", len(token)) + token)
                reply = read_frame(s)
                errs.append(reply_err(reply))
                if errs[-1]:
                    read_frame(s)  # the server closes: this raises
                n = struct.unpack(">i", reply[16:20])[0]
                token = sasl.process(reply[20:20 + n]) or b""
        except (ConnectionError, OSError):
            errs.append("closed")
    return errs


def sasl_flood(port: int, tokens: list[bytes]) -> str | int:
    """Send SASL packets until the server answers an error or closes; return which."""
    with open_session(port) as s:
        try:
            for xid, token in enumerate(tokens, 1):
                send_request(s, xid, 102, struct.pack(">i", len(token)) + token)
                err = reply_err(read_frame(s))
                if err:
                    return err
        except (ConnectionError, OSError):
            return "closed"
    return "answered all"
