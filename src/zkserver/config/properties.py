"""The java.util.Properties text format of zoo.cfg, and -D system properties from the
command line and zkServer.sh's environment variables."""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Iterator, Mapping
from typing import NamedTuple

from .values import ConfigError, _Bad


class PropertyLine(NamedTuple):
    key: str
    value: str
    line: int  # first physical line of the (possibly continued) logical line


_NEWLINE = re.compile(r"\r\n|\r|\n")  # not str.splitlines: it also splits on \v, \x1c, \u2028
_BLANK = " \t\f"  # the only characters Properties treats as white space
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _odd_trailing_backslashes(text: str) -> bool:
    return (len(text) - len(text.rstrip("\\"))) % 2 == 1


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    natural = _NEWLINE.split(text)
    i = 0
    while i < len(natural):
        first = i + 1
        line = natural[i].lstrip(_BLANK)
        i += 1
        if not line or line[0] in "#!":
            continue  # a comment is never continued, even if it ends with a backslash
        parts = []
        while _odd_trailing_backslashes(line):
            parts.append(line[:-1])
            # At end of file the dangling backslash is dropped, as Properties does.
            line = natural[i].lstrip(_BLANK) if i < len(natural) else ""
            i += 1
        parts.append(line)
        yield first, "".join(parts)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        i += 1
        if c != "\\":
            out.append(c)
            continue
        if i >= len(text):
            break  # a lone trailing backslash is dropped, as Properties does
        c = text[i]
        i += 1
        if c == "u":
            digits = text[i:i + 4]
            if len(digits) < 4 or any(d not in string.hexdigits for d in digits):
                raise _Bad("malformed \\uxxxx escape")
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append(_ESCAPES.get(c, c))
    return "".join(out)


def _split_key_value(line: str) -> tuple[str, str]:
    """Key ends at the first unescaped '=', ':' or blank; one '='/':' may follow blanks."""
    key_end, value_start, has_sep, escaped = len(line), len(line), False, False
    for pos, c in enumerate(line):
        if not escaped and c in "=:":
            key_end, value_start, has_sep = pos, pos + 1, True
            break
        if not escaped and c in _BLANK:
            key_end, value_start = pos, pos + 1
            break
        escaped = c == "\\" and not escaped
    while value_start < len(line):
        c = line[value_start]
        if c not in _BLANK:
            if has_sep or c not in "=:":
                break
            has_sep = True
        value_start += 1
    return _unescape(line[:key_end]), _unescape(line[value_start:])


def parse_properties(text: str, path: str | None = None) -> list[PropertyLine]:
    """Parse java.util.Properties text: entries in file order, duplicates kept.

    Keys and values are trimmed, as Apache trims them before use.
    """
    entries = []
    for number, line in _logical_lines(text):
        try:
            key, value = _split_key_value(line)
        except _Bad as exc:
            raise ConfigError(path, number, str(exc)) from None
        entries.append(PropertyLine(key.strip(), value.strip(), number))
    return entries


# ---------------------------------------------------------------------------------------
# System properties (-D) from the command line and the environment


def _split_define(item: str, source: str) -> tuple[str, str]:
    name, _, value = item[2:].partition("=")  # a bare -Dname is "", as in Java
    if not name:
        raise ConfigError(None, None, f"{source}: {item!r} has no property name")
    return name, value


def parse_system_properties(
    args: list[str], env: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Collect -Dname=value items; return (properties, the other args in order).

    zkServer.sh runs java with "$SERVER_JVMFLAGS $JVMFLAGS", and the JVM keeps the last -D
    of a name, so JVMFLAGS beats SERVER_JVMFLAGS and the command line beats both. Scanning
    stops at "--"; it and everything after it are left in the returned args.
    """
    props: dict[str, str] = {}
    for var in ("SERVER_JVMFLAGS", "JVMFLAGS"):
        try:
            words = shlex.split(env.get(var, ""))
        except ValueError as exc:
            raise ConfigError(None, None, f"{var}: cannot split into words: {exc}") from None
        for word in words:
            if word.startswith("-D"):
                name, value = _split_define(word, var)
                props[name] = value
    rest: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg.startswith("-D"):
            name, value = _split_define(arg, "command line")
            props[name] = value
        else:
            rest.append(arg)
    return props, rest
