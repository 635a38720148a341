"""Quorum verifiers: who votes, what counts as a quorum, and the config string Apache sends.

Theory of operation. A verifier is Apache's QuorumVerifier built from the parsed server.N,
group.N and weight.N lines (config.ServerSpec): the voting members (participants), the
observers, `weight(sid)`, `contains_quorum(sids)` and `version`. Three kinds:

- `QuorumMaj`: more than half of the voting members. Only voters are counted.
- `QuorumHierarchical` (any group/weight line): servers are split into groups, each with
  a weight; a quorum is more than half of the non-zero-weight groups, each holding more than
  half of its own weight. A weight-0 server never wins an election (FLE asks `weight`).
- `QuorumOracleMaj` (oraclePath, two voters): a majority, or, when the leader has no
  followers left, whatever the oracle file says ('1' = go on alone). Reading the file is
  I/O, so the verifier is handed an `ask_oracle` callable by the shell.

`str(verifier)` is `QuorumVerifier.toString()` byte for byte: every FLE notification and
every NEWLEADER packet carries it. Apache iterates HashMaps of server ids there (ascending
for small ids, bucket order otherwise), prints a member's client address only when it came
from its server line (not from clientPort), and ends with `version=<hex>` and no newline.
Host strings are Java's: an IP literal in its canonical form (`[::1]` prints as
`[0:0:0:0:0:0:0:1]`), a name as written.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping

from ..config import ConfigError, ServerConfig, ServerSpec, parse_properties
from ..tree.javaorder import java_hash_map_order, java_long_hash, java_properties_order

_HEX_LONG = re.compile(r"[+-]?[0-9a-fA-F]+\Z")
_LONG_RANGE = range(-(1 << 63), 1 << 63)


def java_hex(value: int) -> str:
    """Long.toHexString: two's complement for negative values."""
    return format(value & 0xFFFFFFFFFFFFFFFF, "x")


def parse_java_hex_long(text: str) -> int | None:
    """Long.parseLong(text, 16), or None where Java throws."""
    if not _HEX_LONG.match(text):
        return None
    value = int(text, 16)
    return value if value in _LONG_RANGE else None


def java_host_string(host: str) -> str:
    """InetSocketAddress(host, port).getHostString(): literals canonical, names as written."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # Java turns ::ffff:a.b.c.d into an Inet4Address
            return str(ip.ipv4_mapped)
        return ":".join(format(int.from_bytes(ip.packed[i:i + 2], "big"), "x") for i in range(0, 16, 2))
    return str(ip)


def delimited_host_string(host: str) -> str:
    """QuorumServer.delimitedHostString: the host string, an IPv6 literal in brackets."""
    text = java_host_string(host)
    return f"[{text}]" if ":" in text else text


def server_string(spec: ServerSpec) -> str:
    """QuorumServer.toString(): addresses sorted by host, the type, the line's client address."""
    ordered = sorted(spec.addresses, key=lambda a: java_host_string(a.host))
    text = "|".join(f"{delimited_host_string(a.host)}:{a.quorum_port}:{a.election_port}" for a in ordered)
    text += ":observer" if spec.is_observer else ":participant"
    if spec.client_port is not None:
        text += f";{delimited_host_string(spec.client_address or '0.0.0.0')}:{spec.client_port}"
    return text


class QuorumVerifier:
    """The part every verifier shares: members in Apache's order, version, the string."""

    uses_oracle = False

    def __init__(self, members: Iterable[ServerSpec], version: int = 0) -> None:
        ordered = java_hash_map_order(members, lambda spec: java_long_hash(spec.sid))
        self.members: dict[int, ServerSpec] = {spec.sid: spec for spec in ordered}
        self.voting = frozenset(sid for sid, spec in self.members.items() if not spec.is_observer)
        self.observers = frozenset(sid for sid, spec in self.members.items() if spec.is_observer)
        self.version = version
        self._text: str | None = None

    def weight(self, sid: int) -> int:
        return 1

    def contains_quorum(self, sids: Iterable[int]) -> bool:
        raise NotImplementedError

    def need_oracle(self) -> bool:
        return False

    def ask_oracle(self) -> bool:
        return False

    def _tail(self) -> str:
        return ""

    def __str__(self) -> str:
        if self._text is None:
            lines = "".join(f"server.{sid}={server_string(spec)}\n" for sid, spec in self.members.items())
            self._text = f"{lines}{self._tail()}version={java_hex(self.version)}"
        return self._text

    def config_bytes(self) -> bytes:
        """What a notification's config field carries: str(self) in UTF-8."""
        return str(self).encode()


class QuorumMaj(QuorumVerifier):
    """More than half of the voting members."""

    def contains_quorum(self, sids: Iterable[int]) -> bool:
        return len(self.voting.intersection(sids)) > len(self.voting) // 2


class QuorumOracleMaj(QuorumMaj):
    """QuorumMaj for two voters with a tie-breaking oracle (a file whose first byte is '1')."""

    uses_oracle = True

    def __init__(self, members: Iterable[ServerSpec], version: int, ask_oracle: Callable[[], bool]) -> None:
        super().__init__(members, version)
        self._ask = ask_oracle
        self._need = True  # until a leader reports its followers (updateNeedOracle)

    def update_need_oracle(self, forwarding_followers: int) -> bool:
        """Leader side: the oracle matters only while it has no follower and two voters."""
        self._need = forwarding_followers == 0 and len(self.voting) == 2
        return self._need

    def need_oracle(self) -> bool:
        return self._need

    def ask_oracle(self) -> bool:
        return bool(self._ask())

    def contains_quorum(self, sids: Iterable[int]) -> bool:
        if len(self.voting) > 2 or super().contains_quorum(sids):
            return super().contains_quorum(sids)
        return self._need and self.ask_oracle()


class QuorumHierarchical(QuorumVerifier):
    """Weighted groups: a majority of the non-empty groups, each by a majority of its weight."""

    def __init__(self, members: Iterable[ServerSpec], groups: Mapping[int, tuple[int, ...]],
                 weights: Mapping[int, int], version: int = 0) -> None:
        super().__init__(members, version)
        group_of: dict[int, int] = {}
        for gid, sids in groups.items():
            for sid in sids:
                if sid in group_of:
                    raise ValueError(f"server {sid} is in several groups")
                group_of[sid] = gid
        weight_of = dict(weights)
        for sid in self.members:
            if sid in self.voting:
                if sid not in group_of:
                    raise ValueError(f"server {sid} is not in a group")
                weight_of.setdefault(sid, 1)
        missing = sorted(sid for sid in group_of if sid not in weight_of)
        if missing:  # Apache fails with a NullPointerException here
            raise ValueError(f"server {missing[0]} is in a group but is neither a participant nor weighted")
        by_sid = lambda item: java_long_hash(item[0])  # noqa: E731
        self._group_of = dict(java_hash_map_order(group_of.items(), by_sid))
        self._weight_of = dict(java_hash_map_order(weight_of.items(), by_sid))
        self._group_weight: dict[int, int] = {}
        for sid, gid in self._group_of.items():
            self._group_weight[gid] = self._group_weight.get(gid, 0) + self._weight_of[sid]
        zero = sum(1 for w in self._group_weight.values() if w == 0)
        self._live_groups = len(groups) - zero

    def weight(self, sid: int) -> int:
        # Apache throws for a server without a weight; no such server can be voted for.
        return self._weight_of.get(sid, 0)

    def contains_quorum(self, sids: Iterable[int]) -> bool:
        got: dict[int, int] = {}
        for sid in set(sids) & self.voting:
            gid = self._group_of.get(sid)
            if gid is not None:
                got[gid] = got.get(gid, 0) + self._weight_of[sid]
        majorities = sum(1 for gid, w in got.items() if w > self._group_weight[gid] // 2)
        return majorities > self._live_groups // 2

    def _tail(self) -> str:
        listed: dict[int, list[str]] = {}
        for sid, gid in self._group_of.items():
            listed.setdefault(gid, []).append(str(sid))
        groups = java_hash_map_order(listed, java_long_hash)
        text = "".join(f"group.{gid}={':'.join(listed[gid])}\n" for gid in groups)
        return text + "".join(f"weight.{sid}={w}\n" for sid, w in self._weight_of.items())


def _file_version(path: str | None) -> int:
    """QuorumPeerConfig.getVersionFromFilename: the hex after the last '.', else 0."""
    if path is None or "." not in path:
        return 0
    return parse_java_hex_long(path.rsplit(".", 1)[1]) or 0


def _static_version(cfg: ServerConfig) -> int:
    # Without a dynamic file the whole zoo.cfg is the Properties Apache reads, version key too.
    raw = cfg.properties.get("zookeeper.version") if "version" in cfg.key_lines else None
    if raw is None:
        return 0
    value = parse_java_hex_long(raw.strip())
    if value is None:
        raise ConfigError(cfg.source_path, cfg.key_lines.get("version"), f"version: {raw!r} is not a hex number")
    return value


def _key_id(key: str) -> int | None:
    # Apache takes the id after the first '.' (server.N, group.N, weight.N).
    _, dot, tail = key.partition(".")
    return int(tail) if dot and tail.isascii() and tail.isdigit() else None


def _in_properties_order(cfg: ServerConfig) -> tuple[list[ServerSpec], dict[int, tuple[int, ...]], dict[int, int]]:
    """Servers, groups and weights in the order Apache's Properties hands them to its HashMaps
    (which decides the order of ids that share a bucket)."""
    if cfg.dynamic_config_file is None:
        keys = sorted(cfg.key_lines, key=cfg.key_lines.__getitem__)
    else:  # the dynamic file's own key order is not kept by the loader; file order per kind is
        keys = [*(f"server.{sid}" for sid in cfg.servers), *(f"group.{g}" for g in cfg.groups),
                *(f"weight.{sid}" for sid in cfg.weights), "version"]
    servers: dict[int, ServerSpec] = {}
    groups: dict[int, tuple[int, ...]] = {}
    weights: dict[int, int] = {}
    for key in java_properties_order(keys):
        ident = _key_id(key)
        if key.startswith("server.") and ident in cfg.servers:
            servers[ident] = cfg.servers[ident]
        elif key.startswith("group") and ident in cfg.groups:
            groups[ident] = cfg.groups[ident]
        elif key.startswith("weight") and ident in cfg.weights:
            weights[ident] = cfg.weights[ident]
    # Anything the key scan missed (it should not) keeps the config's order, after the rest.
    servers.update((sid, spec) for sid, spec in cfg.servers.items() if sid not in servers)
    groups.update((gid, sids) for gid, sids in cfg.groups.items() if gid not in groups)
    weights.update((sid, w) for sid, w in cfg.weights.items() if sid not in weights)
    return list(servers.values()), groups, weights


def verifier_from_config(cfg: ServerConfig, ask_oracle: Callable[[], bool] | None = None) -> QuorumVerifier:
    """The committed verifier Apache builds from this config (QuorumPeerConfig)."""
    members, groups, weights = _in_properties_order(cfg)
    version = _file_version(cfg.dynamic_config_file) if cfg.dynamic_config_file else _static_version(cfg)
    if cfg.oracle_path is not None:
        if ask_oracle is None:
            raise ValueError("oraclePath is set: the shell must pass the oracle reader")
        return QuorumOracleMaj(members, version, ask_oracle)
    if groups or weights:
        try:
            return QuorumHierarchical(members, groups, weights, version)
        except ValueError as exc:
            raise ConfigError(cfg.dynamic_config_file or cfg.source_path, None, str(exc)) from None
    return QuorumMaj(members, version)


def config_version(text: str) -> int | None:
    """The version of a config string from a peer (a notification, NEWLEADER): 0 when it has
    no version line, None when it does not parse (Apache only logs such a config)."""
    try:
        entries = parse_properties(text)
    except ConfigError:
        return None
    raw = {entry.key: entry.value for entry in entries}.get("version")
    return 0 if raw is None else parse_java_hex_long(raw)
