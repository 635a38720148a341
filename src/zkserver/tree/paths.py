"""Znode path rules, as Apache's PathUtils.validatePath applies them (UTF-16 code units)."""

from __future__ import annotations

import re

from ..jute.codes import Err
from .acl import KeeperError

# Control characters, C1 controls, surrogates and private use, specials; characters outside
# the BMP are surrogate pairs in Java and fall under the surrogate range.
_BAD_CHAR = re.compile("[\x01-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\uffff\U00010000-\U0010ffff]")


def path_error(path: str) -> str | None:
    """Why `path` is not a valid znode path, or None."""
    if not path:
        return "path length must be > 0"
    if path[0] != "/":
        return "path must start with / character"
    if path == "/":
        return None
    if path[-1] == "/":
        return "path must not end with / character"
    if "\0" in path:
        return "null character not allowed"
    if "//" in path:
        return "empty node name specified"
    if "/." in path:  # only then can a name be "." or ".."
        for name in path[1:].split("/"):
            if name in (".", ".."):
                return "relative paths not allowed"
    # Printable ASCII holds none of the bad characters: most paths skip the regex.
    if not (path.isascii() and path.isprintable()) and _BAD_CHAR.search(path):
        return "invalid character"
    return None


def validate_path(path: str) -> None:
    if path_error(path) is not None:
        raise KeeperError(Err.BAD_ARGUMENTS, path)
