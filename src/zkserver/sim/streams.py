"""The contract between the simulated network and whatever talks over it (clients, members).

A stream is one simulated TCP connection, seen from one end. Bytes sent on it arrive at the
other end in order, in chunks whose boundaries the network chooses (never assume a frame
arrives whole), until the connection closes. A close by either end, a reset, or a refused
connect ends it: the handler's `on_close` is called once and nothing is called after it.
A graceful `close()` delivers what was already sent before the other end sees `on_close`; a
reset (a fault, a crashed machine) drops whatever was not yet delivered. While a partition
separates the two ends, bytes wait (as TCP retransmits) and are delivered after it heals,
unless the connection is reset meanwhile: an end that must notice a silent peer does so with
its own timeout, as the real server does with its socket timeouts.
"""

from __future__ import annotations

from typing import Protocol


class StreamHandler(Protocol):
    def on_open(self) -> None:
        """The connection is established (dialing end: the connect succeeded)."""
        ...

    def on_data(self, data: bytes) -> None: ...

    def on_close(self) -> None:
        """The connection is gone (closed, reset, or the connect failed); the last callback."""
        ...


class Stream(Protocol):
    def send(self, data: bytes) -> None:
        """Queue bytes for the other end; ignored once the stream is closed."""
        ...

    def close(self) -> None:
        """Close our end: what was sent is still delivered, then the other end's on_close runs.
        Our own handler gets no further callbacks."""
        ...
