"""Config errors, and the parsers of single values (Apache's Integer.decode, booleans, ports...)."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Any

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class ConfigError(Exception):
    """A configuration that must stop start-up; str() is "zoo.cfg:12: reason"."""

    def __init__(self, path: str | None, line: int | None, reason: str) -> None:
        super().__init__(path, line, reason)
        self.path = path
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        if self.path is None:
            return self.reason
        if self.line is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}:{self.line}: {self.reason}"


class _Bad(ValueError):
    """A value that does not parse; the caller adds the file, line and key."""


USE_DEFAULT = object()  # _Lenient.value: what the property's accessor would return if it were unset


class _Lenient(ValueError):
    """A malformed value that Apache reads without refusing to start (Integer.getInteger,
    Boolean.parseBoolean, an equals("yes") test): start-up goes on with `value`, what Apache
    makes of it, and the loader warns with `reason`."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason


_DECIMAL = re.compile(r"[+-]?[0-9]+\Z")  # ASCII only: int() also takes "1_000" and non-ASCII digits


def _in_range(n: int, text: str, bits: tuple[int, int]) -> int:
    if not bits[0] <= n <= bits[1]:
        raise _Bad(f"{text!r} is out of range for a {bits[1].bit_length() + 1}-bit number")
    return n


def _int(text: str) -> int:
    """Java Integer.parseInt: decimal only, 32-bit."""
    if not _DECIMAL.match(text):
        raise _Bad(f"{text!r} is not a number")
    return _in_range(int(text), text, _INT32)


def _long(text: str) -> int:
    """Java Long.parseLong: decimal only, 64-bit."""
    if not _DECIMAL.match(text):
        raise _Bad(f"{text!r} is not a number")
    return _in_range(int(text), text, _INT64)


def _decode(text: str, bits: tuple[int, int]) -> int:
    """Java Integer.decode / Long.decode, which Integer.getInteger uses: 0x1F, #1F, 017, -5."""
    body = text[1:] if text.startswith(("+", "-")) else text
    if body.startswith(("0x", "0X")):
        digits, base = body[2:], 16
    elif body.startswith("#"):
        digits, base = body[1:], 16
    elif body.startswith("0") and len(body) > 1:
        digits, base = body[1:], 8
    else:
        digits, base = body, 10
    allowed = string.hexdigits if base == 16 else string.digits[:base]
    if not digits or any(c not in allowed for c in digits):
        raise _Bad(f"{text!r} is not a number")
    n = int(digits, base)
    return _in_range(-n if text.startswith("-") else n, text, bits)


def _decode_int(text: str) -> int:
    return _decode(text, _INT32)


def _decode_long(text: str) -> int:
    return _decode(text, _INT64)


def _positive_decode_int(text: str) -> int:
    n = _decode_int(text)
    if n <= 0:
        raise _Bad(f"{text!r} must be positive")
    return n


def _max_buffer(text: str) -> int:
    """jute.maxbuffer: malformed means the default, as Integer.getInteger; a number that is not
    positive stops start-up (Apache would start and then refuse every packet as too long)."""
    try:
        n = _decode_int(text)
    except _Bad as exc:
        raise _Lenient(USE_DEFAULT, str(exc)) from None
    if n <= 0:
        raise _Bad(f"{text!r} must be positive")
    return n


def _or_default(parser: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parser`, but a value it cannot parse means the property's default, as Apache's
    Integer.getInteger, Long.getLong and their try/catch-default readers do."""

    def lenient(text: str) -> Any:
        try:
            return parser(text)
        except _Bad as exc:
            raise _Lenient(USE_DEFAULT, str(exc)) from None

    return lenient


# Integer.getInteger / Long.getLong: Integer.decode syntax, the default for a malformed value.
_java_int = _or_default(_decode_int)
_java_long = _or_default(_decode_long)

# Double.parseDouble: decimal or exponent notation, NaN, Infinity, an optional f/d suffix.
_JAVA_DOUBLE = re.compile(r"[+-]?(NaN|Infinity|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[fFdD]?)\Z")


def _size_factor(text: str) -> float:
    """zookeeper.snapshotSizeFactor as ZKDatabase reads it: a double; malformed or above 1
    means the default (negative turns reading the txn log for a learner off)."""
    if not _JAVA_DOUBLE.match(text):
        raise _Lenient(USE_DEFAULT, f"{text!r} is not a number")
    value = float(text.rstrip("fFdD").replace("Infinity", "inf"))
    if value > 1:
        raise _Lenient(USE_DEFAULT, f"{text!r} is above 1")
    return value


def _java_bool(text: str) -> bool:
    """Boolean.parseBoolean / Boolean.getBoolean: "true" in any case, every other word is false."""
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise _Lenient(False, f"{text!r} is not true or false")
    return lowered == "true"


def _equals_yes(text: str) -> bool:
    """skipACL: Apache skips ACLs only for exactly "yes" (any other word keeps them)."""
    if text not in ("yes", "no"):
        raise _Lenient(False, f"{text!r} is not yes or no")
    return text == "yes"


def _not_no(text: str) -> bool:
    """forceSync: Apache stops fsyncing only for exactly "no" (forceSync=false still fsyncs)."""
    if text not in ("yes", "no"):
        raise _Lenient(True, f"{text!r} is not yes or no")
    return text == "yes"


def _choice(text: str, words: tuple[str, ...], expected: str) -> str:
    """`text` lowercased, if it is one of `words` (case-insensitive, as Java's equalsIgnoreCase)."""
    lowered = text.lower()
    if lowered not in words:
        raise _Bad(f"{text!r} is not {expected}")
    return lowered


def _bool(text: str) -> bool:
    return _choice(text, ("true", "false"), "true or false") == "true"


def _port(text: str) -> int:
    # 0 is allowed: Apache binds an InetSocketAddress, and port 0 asks the OS for a free one.
    n = _int(text)
    if not 0 <= n <= 65535:
        raise _Bad(f"{n} is not a port number (0..65535)")
    return n


def _optional_port(text: str) -> int | None:
    n = _int(text)  # observerMasterPort: Apache treats <= 0 as "not set"
    if n > 65535:
        raise _Bad(f"{n} is not a port number (1..65535)")
    return n if n > 0 else None


def _text(text: str) -> str:
    return text


def _nonempty(text: str) -> str:
    if not text:
        raise _Bad("empty value")
    return text


def _address(text: str) -> str:
    # "[::1]" is how an IPv6 literal is written in zoo.cfg; sockets want it bare.
    return _nonempty(text[1:-1] if text.startswith("[") and text.endswith("]") else text)


def _client_address(text: str) -> str:
    # InetAddress.getByName("") is the loopback address: `clientPortAddress=` listens there.
    return _address(text) if text else "127.0.0.1"


def _election_alg(text: str) -> int:
    n = _int(text)
    if n != 3:
        raise _Bad(f"{n} is not supported; only 3 (fast leader election) is")
    return n


def _peer_type(text: str) -> str:
    return _choice(text, ("participant", "observer"), "participant or observer")


def _session_timeout(text: str) -> int:
    n = _int(text)
    if n < -1:
        raise _Bad(f"{n} must be -1 (2x/20x tickTime) or a time in ms")
    return n


def _client_auth(text: str) -> str:
    _choice(text, ("", "none", "want", "need"), "none, want or need")
    return text  # kept as written; the TLS setup lowercases it


def _compression(text: str) -> str:
    return _choice(text, ("", "gz", "snappy"), "gz, snappy or empty")
