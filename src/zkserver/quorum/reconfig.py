"""Dynamic reconfiguration: the new configuration a reconfig request asks for, the config
strings peers exchange, and the files a member keeps its configuration in.

Theory of operation. A client's reconfig (opcode 16) reaches the leader, whose ServerCore
asks the leader role (`Leader.check_reconfig`) for the new quorum verifier: the rules are
Apache's PrepRequestProcessor ones, and this module holds the pure parts of them -
`requested_verifier` builds the verifier an incremental (joining/leaving) or non-incremental
(newMembers) request names, raising KeeperError(BadArguments) for bad input as Apache does
(MarshallingError where Apache's parser throws something other than a ConfigException).
The txn is a SetDataTxn on /zookeeper/config whose data is the new verifier's string, its
version the txn's zxid; every member rebuilds the verifier from that string
(`verifier_from_string`, Apache's configFromString) when the txn is proposed (the last
seen config) and when it commits (the committed config, activated).

On disk, a member keeps what Apache 3.8 keeps, so either kind can start from the other's
files: each activated config as `<zoo.cfg>.dynamic.<hex version>` (sorted key=value lines,
no version: `dynamic_file_text`), zoo.cfg rewritten without its membership keys and with
`dynamicConfigFile=` pointing at that file (`edited_static_config`), and a proposed but not
yet committed config in `<zoo.cfg>.dynamic.next` (with its version line). The shell writes
them (shell/dynconfig.py); nothing here touches a file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..config import ConfigError, parse_properties
from ..config.servers import server_spec
from ..javastr import java_split
from ..jute.codes import Err
from ..jute.records import ReconfigRequest
from ..tree.acl import KeeperError
from ..tree.javaorder import java_properties_order
from .verifier import QuorumHierarchical, QuorumMaj, QuorumVerifier, java_hex, parse_java_hex_long

MEMBERSHIP_PREFIXES = ("server.", "group", "weight")


def _bad(reason: str) -> KeeperError:
    return KeeperError(Err.BAD_ARGUMENTS, reason)


def _java_long(text: str) -> int:
    """Long.parseLong(text): anything else is Apache's NumberFormatException, which its
    PrepRequestProcessor answers with MarshallingError."""
    body = text[1:] if text[:1] in "+-" else text
    if not body.isascii() or not body.isdigit() or not -(1 << 63) <= int(text) < (1 << 63):
        raise KeeperError(Err.MARSHALLING_ERROR, f"{text!r} is not a number")
    return int(text)


def split_trimmed(text: str, sep: str) -> list[str]:
    """ZooKeeper's StringUtils.split: split, trim each part, drop the empty ones."""
    return [part.strip() for part in java_split(text, sep) if part.strip()]


def verifier_from_entries(entries: Iterable[tuple[str, str]], version: int | None = None) -> QuorumVerifier:
    """Apache's parseDynamicConfig/createQuorumVerifier over key=value pairs; ConfigError-free:
    raises ValueError with the reason."""
    servers, groups, weights = {}, {}, {}
    parsed_version = 0
    for key, value in entries:
        if key.startswith("server."):
            spec = server_spec(key, value)
            servers[spec.sid] = spec
        elif key.startswith("group"):
            gid = int(key.partition(".")[2])
            groups[gid] = tuple(int(part.strip()) for part in java_split(value, ":"))
        elif key.startswith("weight"):
            weights[int(key.partition(".")[2])] = int(value)
        elif key == "version":
            hexed = parse_java_hex_long(value)
            if hexed is None:
                raise ValueError(f"version {value!r} is not a hex number")
            parsed_version = hexed
        else:
            raise ValueError(f"Unrecognised parameter: {key}")
    members = list(servers.values())
    final = parsed_version if version is None else version
    if groups or weights:
        return QuorumHierarchical(members, groups, weights, final)
    return QuorumMaj(members, final)


def verifier_from_string(text: str) -> QuorumVerifier:
    """A QuorumVerifier string (a reconfig txn's data, NEWLEADER's data, a notification's
    config) back into a verifier (Apache's QuorumPeer.configFromString)."""
    try:
        entries = parse_properties(text)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return verifier_from_entries((e.key, e.value) for e in entries)


def _special(host: str) -> bool:
    """Apache's excludedSpecialAddresses: wildcard and loopback addresses never conflict."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_unspecified or ip.is_loopback


def _addresses(spec) -> set[tuple[str, int]]:
    found = {(a.host, a.quorum_port) for a in spec.addresses} | {(a.host, a.election_port) for a in spec.addresses}
    if spec.client_port is not None:
        found.add((spec.client_address or "0.0.0.0", spec.client_port))
    return {(host, port) for host, port in found if not _special(host)}


def _joining(joiner: str):
    parts = split_trimmed(joiner, "=")
    if len(parts) != 2:
        raise _bad("Wrong format of server string")
    sid = _java_long(parts[0][parts[0].rfind(".") + 1:])
    try:
        spec = server_spec(f"server.{sid}", parts[1])
    except ValueError:
        raise _bad("Reconfiguration failed") from None
    if spec.client_port is None:
        raise _bad("Wrong format of server string - each server should have at least 3 ports specified")
    return spec


def _incremental(req: ReconfigRequest, last_seen: QuorumVerifier, version: int) -> QuorumVerifier:
    if not isinstance(last_seen, QuorumMaj):
        raise _bad("Incremental reconfiguration requested but last configuration seen has a non-majority"
                   " quorum system")
    members = dict(last_seen.members)
    for leaving in split_trimmed(req.leaving, ",") if req.leaving is not None else ():
        members.pop(_java_long(leaving), None)
    for joiner in split_trimmed(req.joining, ",") if req.joining is not None else ():
        spec = _joining(joiner)
        mine = _addresses(spec)
        for other in members.values():
            if other.sid != spec.sid and mine & _addresses(other):
                raise _bad(f"server.{spec.sid} conflicts with the addresses of server.{other.sid}")
        members.pop(spec.sid, None)
        members[spec.sid] = spec
    return QuorumMaj(members.values(), version)


def _non_incremental(new_members: str, version: int) -> QuorumVerifier:
    try:
        entries = parse_properties(new_members.replace(",", "\n"))
        qv = verifier_from_entries(((e.key, e.value) for e in entries), version)
    except (ConfigError, ValueError) as exc:
        raise _bad(str(exc)) from None
    if not qv.voting and qv.observers:  # Apache: IllegalArgumentException, not a ConfigException
        raise KeeperError(Err.MARSHALLING_ERROR, "Observers w/o participants is an invalid configuration")
    return qv


def requested_verifier(req: ReconfigRequest, last_seen: QuorumVerifier, version: int,
                       standalone_enabled: bool = True) -> QuorumVerifier:
    """The configuration a reconfig request asks for, numbered `version` (its txn's zxid)."""
    if req.new_members is not None:
        qv = _non_incremental(req.new_members, version)
    else:
        qv = _incremental(req, last_seen, version)
    if standalone_enabled and len(qv.voting) < 2:
        raise _bad("Reconfig failed - new configuration must include at least 2 followers")
    if len(qv.voting) < 1:
        raise _bad("Reconfig failed - new configuration must include at least 1 follower")
    return qv


def with_version(qv: QuorumVerifier, version: int) -> QuorumVerifier:
    """A copy of `qv` numbered `version` (the first leader of a version-0 config does this)."""
    return verifier_from_entries(_entries(str(qv), keep_version=False), version)


def _entries(text: str, keep_version: bool) -> list[tuple[str, str]]:
    return [(e.key, e.value) for e in parse_properties(text) if keep_version or not e.key.startswith("version")]


def dynamic_file_text(qv: QuorumVerifier, keep_version: bool) -> str:
    """QuorumPeerConfig.writeDynamicConfig: the verifier's lines sorted as strings, joined by
    newlines, no newline at the end; the version line only in the `.next` file."""
    return "\n".join(sorted(f"{k}={v}" for k, v in _entries(str(qv), keep_version)))


def dynamic_file_name(config_path: str, version: int) -> str:
    return f"{config_path}.dynamic.{java_hex(version)}"


def next_file_name(config_path: str) -> str:
    return f"{config_path}.dynamic.next"


def edited_static_config(text: str, dynamic_path: str, erase_client: bool) -> str:
    """QuorumPeerConfig.editStaticConfig: zoo.cfg as Properties reads it, in Properties' own
    order, without its membership keys, peerType and the old pointer (and the client port
    when the member's server line now carries it), then `dynamicConfigFile=` the new file."""
    values: dict[str, str] = {}
    for entry in parse_properties(text):
        values[entry.key] = entry.value
    dropped = (*MEMBERSHIP_PREFIXES, "dynamicConfigFile", "peerType")
    if erase_client:
        dropped += ("clientPort", "clientPortAddress")
    lines = [f"{key}={values[key]}\n" for key in java_properties_order(values) if not key.startswith(dropped)]
    return "".join(lines) + f"dynamicConfigFile={dynamic_path}\n"

