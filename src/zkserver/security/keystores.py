"""Key and trust stores as Apache ZooKeeper reads them (X509Util, KeyStoreFileType, *FileLoader).

The store type comes from ssl.keyStore.type / ssl.trustStore.type when set (JKS, PKCS12, PEM,
BCFKS, any case), otherwise from the file name's extension: .jks, .p12, .pem, .bcfks; anything
else is "Unable to auto-detect store file type from file name". As on Java 9+, whose "JKS" and
"PKCS12" key stores are dual-format, a JKS-typed file that is really PKCS#12 loads (and the
reverse). The password of a key entry must be the store password (KeyManagerFactory.init).

- JKS: pyjks (pure Python; its key decryption is the JDK's own scheme), imported only when a
  JKS file is read.
- PKCS12: `cryptography`.
- PEM: one file with the private key (PKCS#8, encrypted with the store password if it has one)
  and its certificate chain; a PEM trust store is every certificate in the file.
BCFKS needs the BouncyCastle FIPS provider and is refused with that reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

EXTENSIONS = {".jks": "JKS", ".pem": "PEM", ".p12": "PKCS12", ".bcfks": "BCFKS"}
JKS_MAGIC = b"\xfe\xed\xfe\xed"
JCEKS_MAGIC = b"\xce\xce\xce\xce"


class StoreError(Exception):
    """A store cannot be used: bad type, unreadable file, wrong password, no key."""


@dataclass(frozen=True)
class KeyMaterial:
    """A private key with its certificate chain (leaf first)."""

    key: Any
    chain: tuple[x509.Certificate, ...]

    def key_pem(self, password: bytes) -> bytes:
        algo = serialization.BestAvailableEncryption(password)
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algo)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)


def store_type(type_prop: str | None, location: str, type_key: str) -> str:
    """KeyStoreFileType.fromPropertyValueOrFileName."""
    if type_prop:
        upper = type_prop.upper()
        if upper not in EXTENSIONS.values():
            raise StoreError(f"Bad value for {type_key}: {type_prop}")
        return upper
    dot = location.rfind(".")
    kind = EXTENSIONS.get(location[dot:]) if dot >= 0 else None
    if kind is None:
        raise StoreError(f"Unable to auto-detect store file type from file name: {location}")
    return kind


def _read(location: str) -> bytes:
    try:
        with open(location, "rb") as f:
            return f.read()
    except OSError as e:
        raise StoreError(f"cannot read {location}: {e.strerror or e}") from None


def _container(kind: str, data: bytes) -> str:
    if kind == "BCFKS":
        raise StoreError("BCFKS stores need the BouncyCastle FIPS provider; convert the store to PKCS12")
    if kind in ("JKS", "PKCS12"):  # Java 9+ key stores of either type read both formats
        return "JKS" if data[:4] in (JKS_MAGIC, JCEKS_MAGIC) else "PKCS12"
    return "PEM"


def load_key_store(location: str, password: str, type_prop: str | None,
                   type_key: str = "ssl.keyStore.type") -> KeyMaterial:
    data = _read(location)
    kind = _container(store_type(type_prop, location, type_key), data)
    try:
        if kind == "JKS":
            return _jks_key(data, password)
        if kind == "PKCS12":
            return _p12_key(data, password)
        return _pem_key(data, password)
    except StoreError as e:
        raise StoreError(f"{location}: {e}") from None
    except Exception as e:  # the parsers' own errors: bad password, corrupt file
        raise StoreError(f"{location}: cannot load {kind} key store: {e or type(e).__name__}") from None


def load_trust_store(location: str, password: str, type_prop: str | None,
                     type_key: str = "ssl.trustStore.type") -> list[x509.Certificate]:
    data = _read(location)
    kind = _container(store_type(type_prop, location, type_key), data)
    try:
        if kind == "JKS":
            certs = _jks_trusted(data, password)
        elif kind == "PKCS12":
            p12 = pkcs12.load_pkcs12(data, password.encode() if password else None)
            certs = [c.certificate for c in p12.additional_certs]
            if p12.key is None and p12.cert is not None:
                certs.insert(0, p12.cert.certificate)
        else:
            certs = x509.load_pem_x509_certificates(data)
    except Exception as e:
        raise StoreError(f"{location}: cannot load {kind} trust store: {e or type(e).__name__}") from None
    if not certs:
        raise StoreError(f"{location}: the trust store holds no trusted certificate")
    return certs


def _jks_module() -> Any:
    try:
        import jks  # pyjks
    except ImportError:
        raise StoreError("JKS stores need pyjks: pip install 'zkserver[tls]'") from None
    return jks


def _jks_load(data: bytes, password: str) -> Any:
    jks = _jks_module()
    try:
        return jks.KeyStore.loads(data, password)
    except jks.util.KeystoreSignatureException:
        raise StoreError("Keystore was tampered with, or password was incorrect") from None


def _jks_key(data: bytes, password: str) -> KeyMaterial:
    store = _jks_load(data, password)
    for alias, entry in sorted(store.private_keys.items()):
        if not entry.is_decrypted():
            raise StoreError(f"key entry {alias!r}: its password is not the store password")
        key = serialization.load_der_private_key(entry.pkey_pkcs8, None)
        chain = tuple(x509.load_der_x509_certificate(der) for _kind, der in entry.cert_chain)
        return KeyMaterial(key, chain)
    raise StoreError("no private key entry in the key store")


def _jks_trusted(data: bytes, password: str) -> list[x509.Certificate]:
    store = _jks_load(data, password)
    return [x509.load_der_x509_certificate(e.cert) for _alias, e in sorted(store.certs.items())]


def _p12_key(data: bytes, password: str) -> KeyMaterial:
    p12 = pkcs12.load_pkcs12(data, password.encode() if password else None)
    if p12.key is None or p12.cert is None:
        raise StoreError("no private key entry in the key store")
    chain = (p12.cert.certificate, *(c.certificate for c in p12.additional_certs))
    return KeyMaterial(p12.key, chain)


def _pem_key(data: bytes, password: str) -> KeyMaterial:
    begin = data.find(b"-----BEGIN")
    key = None
    while begin >= 0:
        end = data.find(b"-----END", begin)
        stop = data.find(b"-----", end + 8) + 5 if end >= 0 else -1
        if stop < 5:
            break
        block = data[begin:stop]
        if b"PRIVATE KEY-----" in block[:40]:
            pw = password.encode() if password and b"ENCRYPTED" in block[:40] else None
            key = serialization.load_pem_private_key(block, pw)
            break
        begin = data.find(b"-----BEGIN", stop)
    if key is None:
        raise StoreError("no private key in the PEM file")
    certs = x509.load_pem_x509_certificates(data)
    return KeyMaterial(key, tuple(certs))


def file_stamp(*paths: str | None) -> tuple[tuple[int, int, int], ...]:
    """What changes when a store file is replaced or rewritten (for certificate reload)."""
    out = []
    for p in paths:
        try:
            st = os.stat(p) if p else None
        except OSError:
            st = None
        out.append((st.st_mtime_ns, st.st_size, st.st_ino) if st else (0, 0, 0))
    return tuple(out)
