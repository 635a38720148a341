"""The JAAS login configuration file, as javax.security.auth.login.ConfigFile reads it.

    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
        user_super="adminsecret"
        user_bob="bobsecret";
    };

A file is a list of sections `Name { entries };`; an entry is `LoginModuleClass flag
(key=value)* ;` with the flag one of required, requisite, sufficient, optional. Values are words
or double-quoted strings; // and /* */ comments are skipped. ZooKeeper's server reads the section
named by zookeeper.sasl.serverconfig (default Server); its DIGEST-MD5 users are the options
`user_<name>="<password>"` of every entry in it (ServerCnxnFactory.getDigestMd5Credentials).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FLAGS = ("required", "requisite", "sufficient", "optional")
KRB5_MODULE = "com.sun.security.auth.module.Krb5LoginModule"


class JaasError(Exception):
    """The file cannot be read or parsed (start-up stops with file and reason)."""


@dataclass(frozen=True)
class LoginEntry:
    module: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


_TOKEN = re.compile(r'\s+|//[^\n]*|/\*.*?\*/|"((?:[^"\\]|\\.)*)"|([{};=])|([^\s{};="]+)', re.S)


def _tokens(text: str, path: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            line = text.count("\n", 0, pos) + 1
            raise JaasError(f"{path}:{line}: unexpected {text[pos:pos + 10]!r}")
        pos = m.end()
        if m.group(1) is not None:
            out.append(("str", re.sub(r"\\(.)", r"\1", m.group(1))))
        elif m.group(2) is not None:
            out.append(("sym", m.group(2)))
        elif m.group(3) is not None:
            out.append(("word", m.group(3)))
    return out


def parse_jaas(text: str, path: str = "<jaas>") -> dict[str, list[LoginEntry]]:
    toks = _tokens(text, path)
    sections: dict[str, list[LoginEntry]] = {}
    i = 0

    def expect(kind: str, value: str | None = None) -> str:
        nonlocal i
        if i >= len(toks) or toks[i][0] != kind or (value is not None and toks[i][1] != value):
            got = toks[i][1] if i < len(toks) else "end of file"
            raise JaasError(f"{path}: expected {value or kind}, found {got!r}")
        i += 1
        return toks[i - 1][1]

    while i < len(toks):
        name = expect("word")
        expect("sym", "{")
        entries: list[LoginEntry] = []
        while i < len(toks) and toks[i] != ("sym", "}"):
            module = expect("word")
            flag = expect("word")
            if flag.lower() not in FLAGS:
                raise JaasError(f"{path}: section {name}: {flag!r} is not one of {', '.join(FLAGS)}")
            options: dict[str, str] = {}
            while i < len(toks) and toks[i] != ("sym", ";"):
                key = expect("word")
                expect("sym", "=")
                if i < len(toks) and toks[i][0] in ("str", "word"):
                    options[key] = toks[i][1]
                    i += 1
                else:
                    raise JaasError(f"{path}: section {name}: option {key} has no value")
            expect("sym", ";")
            entries.append(LoginEntry(module, flag.lower(), options))
        expect("sym", "}")
        if i < len(toks) and toks[i] == ("sym", ";"):
            i += 1
        sections.setdefault(name, []).extend(entries)
    return sections


def load_jaas(path: str) -> dict[str, list[LoginEntry]]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise JaasError(f"{path}: cannot read the JAAS configuration: {e.strerror or e}") from None
    return parse_jaas(text, path)


def digest_credentials(entries: list[LoginEntry]) -> dict[str, str]:
    users: dict[str, str] = {}
    for entry in entries:
        for key, value in entry.options.items():
            if key.startswith("user_"):
                users[key[len("user_"):]] = value
    return users
