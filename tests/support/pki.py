"""Test PKI made at test time with openssl and keytool: a CA, server and client certificates,
and the same keys as JKS, PKCS12 and PEM stores, so Apache and zkserver read identical files."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "testpass"


def require_tools(*tools: str) -> None:
    missing = [t for t in ("openssl", *tools) if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")


def _run(*argv: str | Path, cwd: Path) -> None:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed:\n{proc.stdout}\n{proc.stderr}")


@dataclass
class Identity:
    """One key pair signed by the CA, in every store format."""

    name: str
    subject: str  # as given to openssl (-subj)
    key: Path  # PKCS#8 PEM, unencrypted
    cert: Path  # PEM
    pem: Path  # key + cert + CA cert (Apache's PEM key store format)
    p12: Path
    jks: Path


@dataclass
class Pki:
    root: Path
    ca_cert: Path
    ca_key: Path
    trust_pem: Path
    trust_p12: Path
    trust_jks: Path
    password: str = PASSWORD

    def issue(self, name: str, subject: str, san: str = "IP:127.0.0.1,DNS:localhost",
              ca: tuple[Path, Path] | None = None, days: int = 2) -> Identity:
        d = self.root
        key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
        ext = d / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n"
                       "keyUsage=digitalSignature,keyEncipherment\n")
        ca_cert, ca_key = ca or (self.ca_cert, self.ca_key)
        _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
             "-subj", subject, cwd=d)
        _run("openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
             "-out", cert, "-days", str(days), "-extfile", ext, "-sha256", cwd=d)
        pem = d / f"{name}.pem"
        pem.write_bytes(key.read_bytes() + cert.read_bytes() + ca_cert.read_bytes())
        p12 = d / f"{name}.p12"
        _run("openssl", "pkcs12", "-export", "-in", cert, "-inkey", key, "-certfile", ca_cert,
             "-name", name, "-out", p12, "-passout", f"pass:{self.password}", cwd=d)
        jks = d / f"{name}.jks"
        if shutil.which("keytool"):
            _run("keytool", "-importkeystore", "-noprompt", "-srckeystore", p12, "-srcstoretype", "PKCS12",
                 "-srcstorepass", self.password, "-destkeystore", jks, "-deststoretype", "JKS",
                 "-deststorepass", self.password, cwd=d)
        return Identity(name, subject, key, cert, pem, p12, jks)


def make_pki(root: Path, ca_subject: str = "/CN=zk test CA/O=zkserver tests") -> Pki:
    root.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = root / "ca.key", root / "ca.crt"
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_cert,
         "-days", "2", "-subj", ca_subject, cwd=root)
    trust_pem = root / "trust.pem"
    trust_pem.write_bytes(ca_cert.read_bytes())
    trust_jks, trust_p12 = root / "trust.jks", root / "trust.p12"
    if shutil.which("keytool"):
        for path, kind in ((trust_jks, "JKS"), (trust_p12, "PKCS12")):
            _run("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", ca_cert, "-keystore", path,
                 "-storetype", kind, "-storepass", PASSWORD, cwd=root)
    return Pki(root, ca_cert, ca_key, trust_pem, trust_p12, trust_jks)


def server_ssl_cfg(pki: Pki, server: Identity, kind: str = "jks", **extra: str) -> dict[str, str]:
    """zoo.cfg ssl.* lines for a key store and trust store of one format (jks, p12, pem)."""
    stores = {"jks": (server.jks, pki.trust_jks), "p12": (server.p12, pki.trust_p12),
              "pem": (server.pem, pki.trust_pem)}
    key_store, trust_store = stores[kind]
    cfg = {
        "ssl.keyStore.location": str(key_store),
        "ssl.keyStore.password": pki.password if kind != "pem" else "",
        "ssl.trustStore.location": str(trust_store),
        "ssl.trustStore.password": pki.password if kind != "pem" else "",
    }
    cfg.update(extra)
    return cfg
