"""currentEpoch / acceptedEpoch files, and Apache's start-up rules for them.

The files live in the snapshot directory (dataDir/version-2) and hold a decimal long with no
newline, as Apache's QuorumPeer.writeLongToFile leaves them. They are replaced atomically through
the Disk (`<name>.tmp`, fsync, rename, directory fsync), so a crash leaves the old value or the
new one; a crash before the rename may leave `currentEpoch.tmp` behind, which the start-up rules
below use, as Apache's do.

Start-up (QuorumPeer.loadDataBase, 3.8), given the last logged zxid after recovery:
- a missing file is created holding the epoch of that zxid;
- currentEpoch below that epoch takes the value of currentEpoch.tmp if that file exists (and is
  rewritten with it) and holds a number (a tmp file a crash left empty is ignored: Apache fails
  on it); else start-up fails (storage.database.recover_member first cuts back the one case a
  crash of ours leaves: a learner's unacknowledged sync);
- acceptedEpoch below currentEpoch fails start-up.
The messages are Apache's.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from .disk import OS_DISK, Disk, replace_durably
from .txnlog import StorageError, fsync_dir

log = logging.getLogger("zkserver.storage.epochs")

CURRENT_EPOCH = "currentEpoch"
ACCEPTED_EPOCH = "acceptedEpoch"
TMP_SUFFIX = ".tmp"  # Apache's AtomicFileOutputStream.TMP_EXTENSION
_JAVA_LONG = re.compile(rb"[+-]?[0-9]+\Z")
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


def write_long(directory: str, name: str, value: int, disk: Disk = OS_DISK) -> None:
    replace_durably(disk, os.path.join(directory, name), str(value).encode("ascii"))


def read_long(directory: str, name: str, disk: Disk = OS_DISK) -> int | None:
    """The stored value, or None when the file does not exist. As Apache's readLongFromFile: the
    first line, parsed as a Java long; anything else is an error naming the file."""
    path = os.path.join(directory, name)
    try:
        data = disk.read_file(path)
    except FileNotFoundError:
        return None
    line = re.split(rb"\r\n|\r|\n", data, maxsplit=1)[0] if data else None
    if line is not None and _JAVA_LONG.match(line) and _LONG_MIN <= int(line) <= _LONG_MAX:
        return int(line)
    shown = "null" if line is None else line[:40].decode("utf-8", "replace")
    raise StorageError(f"Found {shown} in {path}")


@dataclass(frozen=True)
class Epochs:
    current: int
    accepted: int


def load_epochs(directory: str, last_logged_zxid: int, disk: Disk = OS_DISK) -> Epochs:
    """Read (creating if missing) both epoch files under Apache's start-up rules; raise
    StorageError with Apache's message when they contradict each other or the log."""
    zxid_epoch = last_logged_zxid >> 32
    current = _read_or_create(directory, CURRENT_EPOCH, zxid_epoch, disk)
    if zxid_epoch > current:
        tmp = read_pending_current_epoch(directory, disk)
        if tmp is None:
            raise StorageError(f"The current epoch, {_hex(current)}, is older than the last zxid, "
                               f"{last_logged_zxid}")
        log.info("%s found. Setting current epoch to %d.", os.path.join(directory, CURRENT_EPOCH + TMP_SUFFIX), tmp)
        write_long(directory, CURRENT_EPOCH, tmp, disk)
        current = tmp
    accepted = _read_or_create(directory, ACCEPTED_EPOCH, zxid_epoch, disk)
    if accepted < current:
        raise StorageError(f"The accepted epoch, {_hex(accepted)} is less than the current epoch, "
                           f"{_hex(current)}")
    return Epochs(current, accepted)


def read_pending_current_epoch(directory: str, disk: Disk = OS_DISK) -> int | None:
    """currentEpoch.tmp's value; None when it is absent, or holds no number: a crash cut its
    write short, before its fsync and rename, so currentEpoch was never replaced (Apache fails
    to start on it)."""
    try:
        return read_long(directory, CURRENT_EPOCH + TMP_SUFFIX, disk)
    except StorageError as e:
        log.warning("%s; a write of it was cut short: ignored", e)
        return None


def _read_or_create(directory: str, name: str, default: int, disk: Disk) -> int:
    value = read_long(directory, name, disk)
    if value is None:
        log.info("%s not found! Creating with a reasonable default of %d. This should only happen when you "
                 "are upgrading your installation", name, default)
        write_long(directory, name, default, disk)
        value = default
    return value


def _hex(value: int) -> str:
    """Java's Long.toHexString (ZxidUtils.zxidToString): two's complement for negatives."""
    return f"{value & 0xFFFFFFFFFFFFFFFF:x}"


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
