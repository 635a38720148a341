"""Config errors, and the parsers of single values (Apache's Integer.decode, booleans, ports...)."""

from __future__ import annotations

import re
import string

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


def _choice(text: str, words: tuple[str, ...], expected: str) -> str:
    """`text` lowercased, if it is one of `words` (case-insensitive, as Java's equalsIgnoreCase)."""
    lowered = text.lower()
    if lowered not in words:
        raise _Bad(f"{text!r} is not {expected}")
    return lowered


def _bool(text: str) -> bool:
    return _choice(text, ("true", "false"), "true or false") == "true"


def _yes_no(text: str) -> bool:
    # skipACL and forceSync are switched by the exact words yes/no; Apache reads any other
    # word ("true", "false") as the default, which silently inverts what the operator meant.
    if text not in ("yes", "no"):
        raise _Bad(f"{text!r} is not yes or no")
    return text == "yes"


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
