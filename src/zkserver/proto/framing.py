"""Client-port framing, without I/O: 4-byte big-endian length prefixes, or a four-letter word.

The first four bytes of a connection may be a four-letter word instead of a length (Apache
checks them before the ConnectRequest only). A length that is negative or over
jute.maxbuffer is the peer's error: the connection is closed, never buffered.
"""

from __future__ import annotations

import struct

_LEN = struct.Struct(">i")

FOUR_LETTER_WORDS = frozenset({
    "conf", "cons", "crst", "dump", "envi", "ruok", "srst", "srvr", "stat", "wchs", "wchc",
    "wchp", "dirs", "mntr", "isro", "hash", "gtmk", "stmk",
})


class FrameError(Exception):
    """The peer broke the framing rules; close the connection."""


class FrameSplitter:
    __slots__ = ("_buf", "_first", "max_len")

    def __init__(self, max_len: int):
        self._buf = bytearray()
        self._first = True
        self.max_len = max_len

    def four_letter_word(self, data: bytes) -> str | None:
        """The command if this connection opens with a known four-letter word."""
        if not self._first:
            return None
        head = bytes(self._buf[:4]) + data[: max(0, 4 - len(self._buf))]
        if len(head) < 4:
            return None
        word = head.decode("latin-1")
        return word if word in FOUR_LETTER_WORDS else None

    def feed(self, data: bytes) -> list[bytes]:
        """Every complete frame now buffered, in order."""
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data  # the common case: frames are sliced out of the read itself, no copy
        frames: list[bytes] = []
        pos = 0
        end = len(view)
        unpack = _LEN.unpack_from
        while end - pos >= 4:
            (n,) = unpack(view, pos)
            if n < 0 or n > self.max_len:
                raise FrameError(f"Len error: advertised length {n} is negative or over jute.maxbuffer={self.max_len}")
            stop = pos + 4 + n
            if stop > end:
                break
            frames.append(bytes(view[pos + 4 : stop]) if view is buf else view[pos + 4 : stop])
            pos = stop
        if pos:
            self._first = False
        if view is buf:
            del buf[:pos]
        elif pos < end:
            buf += view[pos:]
        return frames
