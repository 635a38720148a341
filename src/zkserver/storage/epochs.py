"""currentEpoch / acceptedEpoch files: an ASCII decimal long, replaced atomically.

As Apache's QuorumPeer.writeLongToFile: write a temp file, fsync it, rename it over the old
one, then fsync the directory, so a crash leaves the old value or the new one, never neither.
"""

from __future__ import annotations

import os

from .txnlog import StorageError, fsync_dir

CURRENT_EPOCH = "currentEpoch"
ACCEPTED_EPOCH = "acceptedEpoch"


def write_long(directory: str, name: str, value: int) -> None:
    path = os.path.join(directory, name)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(str(value).encode("ascii"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(directory)


def read_long(directory: str, name: str) -> int | None:
    """The stored value, or None when the file does not exist."""
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii", "replace").strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        raise StorageError(f"{path} does not hold a number: {text[:40]!r}") from None


SECRET_FILE = "zkserver.secret"


def load_or_create_secret(directory: str) -> bytes:
    """The per-server secret that session passwords derive from. It must outlive the process,
    or a client whose session was restored from disk could not prove it owns it."""
    path = os.path.join(directory, SECRET_FILE)
    try:
        with open(path, "rb") as f:
            secret = f.read()
        if len(secret) >= 16:
            return secret
    except FileNotFoundError:
        pass
    secret = os.urandom(32)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secret)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(directory)
    return secret
