"""Jute binary encoding: big-endian ints and longs, length-prefixed buffers, strings and vectors.

A length of -1 means null. Every length read is checked against the bytes actually left and
against a caller-given cap, so a hostile frame can neither over-read nor make us allocate more
than it carries.
"""

from __future__ import annotations

import struct

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_BOOL = struct.Struct(">?")
_INT_LONG = struct.Struct(">iq")

DEFAULT_MAX_BUFFER = 0xFFFFF


class JuteError(ValueError):
    """The peer sent bytes that do not decode: its fault, not ours."""


class Reader:
    __slots__ = ("_buf", "_end", "max_len", "pos")

    def __init__(self, buf: bytes | bytearray | memoryview, pos: int = 0, max_len: int = DEFAULT_MAX_BUFFER):
        self._buf = buf
        self._end = len(buf)
        self.pos = pos
        self.max_len = max_len

    @property
    def remaining(self) -> int:
        return self._end - self.pos

    # The readers below inline their bounds checks: they run several times per request.

    def _truncated(self, n: int) -> JuteError:
        return JuteError(f"record truncated: need {n} bytes at offset {self.pos}, have {self._end - self.pos}")

    def int(self) -> int:
        pos = self.pos
        if pos + 4 > self._end:
            raise self._truncated(4)
        self.pos = pos + 4
        return _INT.unpack_from(self._buf, pos)[0]

    def long(self) -> int:
        pos = self.pos
        if pos + 8 > self._end:
            raise self._truncated(8)
        self.pos = pos + 8
        return _LONG.unpack_from(self._buf, pos)[0]

    def bool(self) -> bool:
        pos = self.pos
        if pos >= self._end:
            raise self._truncated(1)
        self.pos = pos + 1
        return self._buf[pos] != 0

    def _length(self) -> int:
        """A buffer's or string's length, -1 for null; the bytes it claims are there."""
        n = self.int()
        if n < -1 or n > self.max_len or n > self._end - self.pos:
            raise self._bad_length(n)
        return n

    def _bad_length(self, n: int) -> JuteError:
        if n < -1:
            return JuteError(f"negative length {n}")
        if n > self.max_len:
            return JuteError(f"length {n} exceeds the limit {self.max_len}")
        return self._truncated(n)

    def buffer(self) -> bytes | None:
        n = self._length()
        if n == -1:
            return None
        pos = self.pos
        self.pos = pos + n
        return bytes(self._buf[pos : pos + n])

    def ustring(self) -> str | None:
        # The length is read inline: every request that names a znode comes through here.
        pos = self.pos
        if pos + 4 > self._end:
            raise self._truncated(4)
        n = _INT.unpack_from(self._buf, pos)[0]
        self.pos = pos = pos + 4
        if n == -1:
            return None
        if n < -1 or n > self.max_len or n > self._end - pos:
            raise self._bad_length(n)
        try:
            v = str(self._buf[pos : pos + n], "utf-8")
        except UnicodeDecodeError as e:
            raise JuteError(f"string is not UTF-8: {e}") from None
        self.pos = pos + n
        return v

    def path(self) -> str:
        """A ustring that must not be null: the znode path of a request."""
        p = self.ustring()
        if p is None:
            raise JuteError("null path")
        return p

    def unpack(self, st: struct.Struct) -> tuple:
        """A fixed-size group of fields in one step (a multi's op header)."""
        pos = self.pos
        if pos + st.size > self._end:
            raise self._truncated(st.size)
        self.pos = pos + st.size
        return st.unpack_from(self._buf, pos)

    def skip_if(self, expected: bytes) -> bool:
        """Step over the next bytes if they are exactly `expected` (a common encoded value)."""
        pos = self.pos
        if self._buf[pos : pos + len(expected)] != expected:
            return False
        self.pos = pos + len(expected)
        return True

    def vector_count(self) -> int:
        """Element count of a vector; -1 for null. Each element takes at least one byte, which
        bounds the count by the bytes left."""
        n = self.int()
        if n < -1 or n > self._end - self.pos:
            raise JuteError(f"vector length {n} impossible with {self._end - self.pos} bytes left")
        return n

    def ustring_vector(self) -> list[str] | None:
        n = self.vector_count()
        if n == -1:
            return None
        return [self.ustring() or "" for _ in range(n)]


class Writer:
    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def int(self, v: int) -> Writer:
        self.buf += _INT.pack(v)
        return self

    def long(self, v: int) -> Writer:
        self.buf += _LONG.pack(v)
        return self

    def bool(self, v: bool) -> Writer:
        self.buf += b"\x01" if v else b"\x00"
        return self

    def buffer(self, v: bytes | None) -> Writer:
        if v is None:
            self.buf += b"\xff\xff\xff\xff"
        else:
            self.buf += _INT.pack(len(v))
            self.buf += v
        return self

    def ustring(self, v: str | None) -> Writer:
        if v is None:
            self.buf += b"\xff\xff\xff\xff"
        else:
            self.buf += encode_ustring(v)
        return self

    def raw(self, v: bytes | bytearray | memoryview) -> Writer:
        self.buf += v
        return self

    def ustring_vector(self, v: list[str] | None) -> Writer:
        if v is None:
            return self.int(-1)
        self.buf += _INT.pack(len(v))
        for s in v:
            b = s.encode("utf-8")
            self.buf += _INT.pack(len(b))
            self.buf += b
        return self

    def getvalue(self) -> bytes:
        return bytes(self.buf)


pack_int = _INT.pack


NULL_LENGTH = _INT.pack(-1)  # a null buffer, string or vector


def encode_buffer(v: bytes | None) -> bytes:
    """A jute buffer on its own: length, then bytes; null as length -1."""
    return NULL_LENGTH if v is None else _INT.pack(len(v)) + v


def encode_ustring(v: str) -> bytes:
    """A non-null jute ustring on its own (replies that are just a path)."""
    b = v.encode("utf-8")
    return _INT.pack(len(b)) + b


pack_long = _LONG.pack
unpack_int_from = _INT.unpack_from
pack_int_long = _INT_LONG.pack
BOOL = _BOOL
