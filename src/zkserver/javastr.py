"""Java's string splitting, where Apache's parsing of server addresses depends on it.

The server.N lines of zoo.cfg and the addresses in an election-port initial message are both
read by Apache with String.split and ConfigUtils.getHostAndPort; reading them the same way
keeps what we accept, and how we split it, equal to what Apache does.
"""

from __future__ import annotations


def java_split(text: str, sep: str) -> list[str]:
    """String.split(sep) with a literal separator: when one is found, trailing empty parts go
    (so "h:1:2;" has no client part, and "::" splits into nothing)."""
    parts = text.split(sep)
    if len(parts) == 1:
        return parts
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def host_and_port(text: str) -> list[str]:
    """ConfigUtils.getHostAndPort: "[v6::addr]:p:q" or "host:p:q" into its parts, with its
    leniency (the one character after ']' is skipped unread). ValueError when it cannot."""
    if not text.startswith("["):
        return java_split(text, ":")
    end = text.find("]")
    if end < 0:
        raise ValueError(f"{text!r} starts with '[' but has no matching ']'")
    if end + 2 == len(text):
        raise ValueError(f"{text!r} has no port after the ']'")
    if end + 2 < len(text):
        return [text[1:end], *java_split(text[end + 2:], ":")]
    return [text.replace("[", "").replace("]", "")]
