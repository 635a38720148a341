"""server.N, group.N and weight.N lines (QuorumPeerConfig's address syntax)."""

from __future__ import annotations

from ..javastr import host_and_port, java_split
from .model import PeerAddress, ServerSpec
from .values import _DECIMAL, _INT64, _Bad, _in_range, _peer_type, _port

_WRONG_FORMAT = (
    "expected host:quorumPort:electionPort[:participant|observer] (several joined by '|')"
    " and optionally ;[clientHost:]clientPort"
)


def _host_and_port(text: str) -> list[str]:
    try:
        return host_and_port(text)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _server_id(text: str) -> int:
    if not _DECIMAL.match(text) or text.startswith("-"):
        raise _Bad(f"{text!r} is not a server id (a number from 0)")
    return _in_range(int(text), text, _INT64)


def _peer_port(text: str, what: str) -> int:
    if not _DECIMAL.match(text):
        raise _Bad(f"{what} port {text!r} is not a number")
    n = int(text)
    if not 1 <= n <= 65535:
        raise _Bad(f"{what} port {n} is not a port number (1..65535)")
    return n


def _peer_address(chunk: str) -> tuple[PeerAddress, str | None]:
    parts = _host_and_port(chunk.strip())
    if not 3 <= len(parts) <= 4:
        raise _Bad(_WRONG_FORMAT)
    if not parts[0]:
        raise _Bad("empty host")
    quorum = _peer_port(parts[1], "quorum")
    election = _peer_port(parts[2], "election")
    if quorum == election:
        raise _Bad(f"quorum port and election port must differ (both {quorum})")
    peer_type = _peer_type(parts[3].strip()) if len(parts) == 4 else None
    return PeerAddress(parts[0], quorum, election), peer_type


def _client_part(text: str) -> tuple[str | None, int]:
    parts = _host_and_port(text.strip())
    if len(parts) > 2:
        raise _Bad(_WRONG_FORMAT)
    if len(parts) == 2 and not parts[0]:
        raise _Bad("empty client address")
    try:
        port = _port(parts[-1])
    except _Bad as exc:
        raise _Bad(f"client port: {exc}") from None
    return (parts[0] if len(parts) == 2 else None), port


def _parse_server(key: str, value: str, multi_address: bool) -> ServerSpec:
    sid = _server_id(key[len("server."):])
    halves = java_split(value, ";")
    if len(halves) > 2:
        raise _Bad(_WRONG_FORMAT)
    client_address, client_port = _client_part(halves[1]) if len(halves) == 2 else (None, None)
    chunks = java_split(halves[0], "|")
    if len(chunks) > 1 and not multi_address:
        raise _Bad("several addresses need multiAddress.enabled=true")
    parsed = [_peer_address(chunk) for chunk in chunks]
    types = {t for _, t in parsed if t is not None}
    if len(types) > 1:
        raise _Bad("all addresses of one server must have the same type")
    peer_type = types.pop() if types else "participant"
    addresses = tuple(address for address, _ in parsed)
    return ServerSpec(sid, addresses, peer_type, client_address, client_port)


def _dotted_id(key: str, prefix: str) -> int:
    if not key.startswith(prefix + "."):
        raise _Bad(f"expected {prefix}.<id>")
    return _server_id(key[len(prefix) + 1:])


def server_spec(key: str, value: str, multi_address: bool = False) -> ServerSpec:
    """One `server.N=...` line as QuorumPeerConfig reads it (dynamic reconfiguration parses
    joining servers and new member lists with it); ValueError with the reason otherwise."""
    return _parse_server(key, value, multi_address)
