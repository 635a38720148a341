"""A certificate subject as Java's X500Principal.getName() prints it (RFC 2253 form).

That string is the x509 scheme's identity, so it must be byte-for-byte what Apache computes:
RDNs last-to-first joined by ',', the AVAs of a multi-valued RDN joined by '+', the keywords
Java knows for RFC 2253 (CN C L ST O OU STREET DC UID) and every other attribute as its dotted
OID with '#' and the lowercase hex of its DER encoding (so emailAddress becomes
1.2.840.113549.1.9.1=#16...). String values escape , = + < > # ; " \\ with a backslash, NUL as
\\00, and leading/trailing spaces. We walk the subject's DER ourselves: cryptography does not
expose an attribute's original encoding.
"""

from __future__ import annotations

import ipaddress

from cryptography import x509

_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
# DerValue.isDerString(value, false): the string types Java prints as text.
_STRING_TAGS = {0x13: "ascii", 0x14: "latin-1", 0x16: "ascii", 0x1B: "latin-1", 0x1E: "utf-16-be", 0x0C: "utf-8"}
_ESCAPEES = ',=+<>#;"\\'


class DerError(ValueError):
    pass


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at pos."""
    if pos + 2 > len(data):
        raise DerError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise DerError("bad DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise DerError("truncated DER")
    return tag, pos, pos + length


def _oid(body: bytes) -> str:
    if not body:
        raise DerError("empty OID")
    parts: list[int] = []
    value = 0
    for b in body:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    first = parts[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(p) for p in head + parts[1:])


def _escape(text: str) -> str:
    out = []
    for c in text:
        if c in _ESCAPEES:
            out.append("\\" + c)
        elif c == "\x00":
            out.append("\\00")
        else:
            out.append(c)
    chars = list("".join(out))
    lead = 0
    while lead < len(chars) and chars[lead] in " \r":
        lead += 1
    trail = len(chars) - 1
    while trail >= 0 and chars[trail] in " \r":
        trail -= 1
    return "".join("\\" + c if i < lead or i > trail else c for i, c in enumerate(chars))


def _ava(data: bytes, pos: int, end: int) -> str:
    tag, start, stop = _tlv(data, pos)
    if tag != 0x30 or stop > end:
        raise DerError("AttributeTypeAndValue is not a SEQUENCE")
    tag, ostart, ostop = _tlv(data, start)
    if tag != 0x06:
        raise DerError("attribute type is not an OID")
    oid = _oid(data[ostart:ostop])
    vtag, vstart, vstop = _tlv(data, ostop)
    keyword = _KEYWORDS.get(oid)
    codec = _STRING_TAGS.get(vtag)
    if keyword is None or codec is None:
        return f"{keyword or oid}=#{data[ostop:vstop].hex()}"
    return f"{keyword}={_escape(data[vstart:vstop].decode(codec, 'replace'))}"


def rfc2253_name(name_der: bytes) -> str:
    """The RFC 2253 string of a DER-encoded X.500 Name, as X500Principal.getName() gives it."""
    tag, pos, end = _tlv(name_der, 0)
    if tag != 0x30:
        raise DerError("Name is not a SEQUENCE")
    rdns: list[str] = []
    while pos < end:
        tag, spos, send = _tlv(name_der, pos)
        if tag != 0x31:
            raise DerError("RDN is not a SET")
        avas = []
        p = spos
        while p < send:
            avas.append(_ava(name_der, p, send))
            p = _tlv(name_der, p)[2]
        rdns.append("+".join(avas))
        pos = send
    return ",".join(reversed(rdns))


def subject_name(cert: x509.Certificate) -> str:
    return rfc2253_name(cert.subject.public_bytes())


def valid_x500_name(text: str) -> bool:
    """X509AuthenticationProvider.isValid: `new X500Principal(id)` parses (approximated by
    cryptography's RFC 4514 parser, which accepts the same grammar for these names)."""
    try:
        x509.Name.from_rfc4514_string(text)
    except (ValueError, TypeError):
        return False
    return True


def ip_in_san(cert: x509.Certificate, ip: str) -> bool:
    """Client hostname verification: the peer address is among the certificate's IP SANs."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        addr = ipaddress.ip_address(ip)
    except (x509.ExtensionNotFound, ValueError):
        return False
    return addr in ext.value.get_values_for_type(x509.IPAddress)


def dns_in_san(cert: x509.Certificate, host: str) -> bool:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    host = host.lower().rstrip(".")
    for name in ext.value.get_values_for_type(x509.DNSName):
        pattern = name.lower().rstrip(".")
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host and host.split(".", 1)[1] == pattern[2:]:
            return True
    return False
