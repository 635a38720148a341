"""Apache's Java client (3.8) on the secure port (ClientCnxnSocketNetty, key stores) and with SASL
DIGEST-MD5 from a JAAS Client section, against Apache 3.8 and zkserver: same whoAmI answers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tests.e2e.test_sasl import sasl_server
from tests.e2e.test_tls import ALICE_NAME, ids, serving  # noqa: F401 - fixtures
from tests.support import javaclient
from tests.support.pki import Identity, Pki, server_ssl_cfg

KINDS = [pytest.param("apache", marks=pytest.mark.apache), "zkserver"]
NETTY_JARS = ("netty-handler.jar", "netty-transport.jar", "netty-buffer.jar", "netty-common.jar",
              "netty-codec.jar", "netty-resolver.jar", "netty-transport-native-epoll.jar",
              "netty-transport-native-unix-common.jar")
pytestmark = pytest.mark.java
SASL_PROGRAM = Path(__file__).resolve().parent / "java" / "SaslWhoAmI.java"


def run_java(hosts: str, script: list[str], props: dict[str, str]) -> list[dict]:
    javaclient.require_java()
    classes = javaclient.build()
    jars = [str(javaclient.JAR_DIR / j) for j in NETTY_JARS if (javaclient.JAR_DIR / j).exists()]
    cp = ":".join([str(classes), javaclient.client_classpath(), *jars])
    argv = ["java", *javaclient.JVM_OPTS, *(f"-D{k}={v}" for k, v in props.items()), "-cp", cp,
            javaclient.MAIN_CLASS, hosts]
    proc = subprocess.run(argv, input="\n".join(script) + "\n", capture_output=True, text=True, timeout=90)
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert out, f"no output from the Java client:\n{proc.stdout}\n{proc.stderr}"
    return out


def tls_props(pki: Pki, who: Identity) -> dict[str, str]:
    return {
        "zookeeper.client.secure": "true",
        "zookeeper.clientCnxnSocket": "org.apache.zookeeper.ClientCnxnSocketNetty",
        "zookeeper.ssl.keyStore.location": str(who.jks),
        "zookeeper.ssl.keyStore.password": pki.password,
        "zookeeper.ssl.trustStore.location": str(pki.trust_p12),
        "zookeeper.ssl.trustStore.password": pki.password,
    }


def who_am_i(out: list[dict]) -> list[dict]:
    for rec in out:
        if rec.get("cmd") == "whoAmI":
            assert rec.get("ok"), rec
            return rec["clientInfo"]
    raise AssertionError(out)


@pytest.mark.parametrize("kind", KINDS)
def test_java_client_over_tls_gets_x509_identity(kind: str, pki: Pki, ids: dict[str, Identity],  # noqa: F811
                                                 tmp_path: Path) -> None:
    with serving(kind, tmp_path / kind, server_ssl_cfg(pki, ids["server"], "pem")) as server:
        out = run_java(f"127.0.0.1:{server.secure_port}", ["connect 10000", "whoAmI", "close"],
                       tls_props(pki, ids["alice"]))
    infos = who_am_i(out)
    assert {"authScheme": "x509", "user": ALICE_NAME} in infos, infos
    assert {i["authScheme"] for i in infos} == {"ip", "x509"}


@pytest.mark.parametrize("kind", KINDS)
def test_java_client_sasl_digest(kind: str, tmp_path: Path) -> None:
    """The Java client authenticates from its JAAS Client section (ZkDriver turns SASL off, so a
    small program of our own, compiled here)."""
    javaclient.require_java()
    classes = tmp_path / "classes"
    cp = javaclient.client_classpath()
    subprocess.run(["javac", "-nowarn", "-d", str(classes), "-cp", cp, str(SASL_PROGRAM)], check=True,
                   capture_output=True, timeout=120)
    with sasl_server(kind, tmp_path) as server:
        proc = subprocess.run(
            ["java", *javaclient.JVM_OPTS, f"-Djava.security.auth.login.config={tmp_path / 'jaas.conf'}",
             "-cp", f"{classes}:{cp}", "SaslWhoAmI", server.hosts],
            capture_output=True, text=True, timeout=90)
    lines = proc.stdout.splitlines()
    assert "state=SaslAuthenticated" in lines, proc.stdout + proc.stderr
    assert "sasl=bob" in lines, proc.stdout + proc.stderr
