"""Unit tests of security/: DIGEST-MD5 against pure-sasl, the JAAS parser, RFC 2253 names, store types."""

from __future__ import annotations

from pathlib import Path

import pytest

from zkserver.security import jaas
from zkserver.security.sasl import DigestMd5Server, SaslConfigError, SaslFailure, SaslSettings, parse_directives

SETTINGS = SaslSettings(users={"bob": "bobsecret", "super": "s"}, super_password="override")


def _client(user: str, password: str):
    puresasl = pytest.importorskip("puresasl.client")
    return puresasl.SASLClient("zk-sasl-md5", "zookeeper", mechanism="DIGEST-MD5", username=user,
                               password=password)


def test_digest_md5_with_pure_sasl() -> None:
    client, server = _client("bob", "bobsecret"), DigestMd5Server(SETTINGS)
    challenge = server.step(b"")
    assert b'realm="zk-sasl-md5"' in challenge and b"qop=\"auth\"" in challenge
    rspauth = server.step(client.process(challenge))
    assert server.complete and server.authorization_id == "bob"
    client.process(rspauth)  # pure-sasl checks rspauth: raises if it is wrong
    assert client.complete
    with pytest.raises(SaslFailure):
        server.step(b"")


@pytest.mark.parametrize(("user", "password"), [("bob", "nope"), ("eve", "x"), ("super", "s")])
def test_digest_md5_failures(user: str, password: str) -> None:
    client, server = _client(user, password), DigestMd5Server(SETTINGS)
    with pytest.raises(SaslFailure):
        server.step(client.process(server.step(b"")))


def test_super_password_override_and_oversized_response() -> None:
    client, server = _client("super", "override"), DigestMd5Server(SETTINGS)
    server.step(client.process(server.step(b"")))
    assert server.authorization_id == "super"
    server = DigestMd5Server(SETTINGS)
    server.step(b"")
    with pytest.raises(SaslFailure, match="length"):
        server.step(b"x" * 5000)


def test_directives() -> None:
    assert parse_directives(b'a=1,b="x\\"y, z",c=w') == {"a": b"1", "b": b'x"y, z', "c": b"w"}
    with pytest.raises(SaslFailure):
        parse_directives(b"a=1,a=2")


def test_jaas_parser() -> None:
    text = """
    /* comment */ Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
        user_bob="bob's, pw" // trailing comment
        user_al=plain;
    };
    Client { x.Y optional username="u"; };
    """
    sections = jaas.parse_jaas(text)
    assert jaas.digest_credentials(sections["Server"]) == {"bob": "bob's, pw", "al": "plain"}
    assert sections["Client"][0].flag == "optional"
    with pytest.raises(jaas.JaasError):
        jaas.parse_jaas("Server { m bogus; };")


def test_jaas_file_without_the_server_section_means_no_sasl_server(tmp_path: Path) -> None:
    # ServerCnxnFactory.configureSaslLogin: only a file that cannot be read or parsed stops start-up;
    # kazoo's test harness always passes a JAAS file, empty unless a SASL test asks for a section.
    empty, client_only, broken = tmp_path / "empty.conf", tmp_path / "client.conf", tmp_path / "broken.conf"
    empty.write_text("")
    client_only.write_text('Client { x.Y required username="u" password="p"; };')
    broken.write_text("Server { this is not ; right")
    for path in (empty, client_only):
        assert SaslSettings.from_properties({"java.security.auth.login.config": str(path)}) is None
    assert SaslSettings.from_properties({"zookeeper.sasl.serverconfig": "Other"}) is None  # no file at all
    props = {"java.security.auth.login.config": str(client_only), "zookeeper.sasl.serverconfig": "Client"}
    assert SaslSettings.from_properties(props).users == {}  # the named section is used
    for path in (broken, tmp_path / "missing.conf"):
        with pytest.raises(SaslConfigError, match="No JAAS configuration section named 'Server' was found in"):
            SaslSettings.from_properties({"java.security.auth.login.config": str(path)})


def test_rfc2253_names() -> None:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.x509.oid import NameOID

    from zkserver.security.x509 import rfc2253_name

    name = x509.Name([
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, " Acme, Inc.#")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "alice+bob")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b")]),
    ])
    expected = "1.2.840.113549.1.9.1=#1603614062,CN=alice\\+bob,O=\\ Acme\\, Inc.\\#,C=US"
    assert rfc2253_name(name.public_bytes()) == expected


def test_store_type_guessing() -> None:
    pytest.importorskip("cryptography")
    from zkserver.security.keystores import StoreError, store_type

    assert store_type(None, "/x/a.p12", "k") == "PKCS12"
    assert store_type("pem", "/x/a.jks", "k") == "PEM"
    with pytest.raises(StoreError, match="auto-detect"):
        store_type(None, "/x/a.pfx", "k")
    with pytest.raises(StoreError, match="Bad value"):
        store_type("JCEKS", "/x/a.jks", "k")
