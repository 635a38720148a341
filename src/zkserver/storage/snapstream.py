"""The snapshot a leader streams after a SNAP packet (Apache's SerializeUtils.serializeSnapshot).

The bytes are a snapshot file's body and nothing else: int session count, {long id, int
timeout}...; the ACL map (int count, {long ref, vector<ACL{int perms, ustring scheme, ustring
id}>}...); the nodes, every parent before its children, from the root (path ""): {ustring path,
buffer data, long acl ref, StatPersisted (60 bytes)}; ustring "/" to end. No file header, no
checksum seal, no digest: `encode_snapshot_stream` and `decode_snapshot_stream` share the body
code of storage/snapshot.py.

Theory of operation (the scanner). The stream has no length prefix, so the quorum-port decoder
must find its end while bytes arrive in chunks of any size. `SnapshotStreamScanner.feed` walks
the layout as a state machine: each step wants either a small fixed-size field (a count, a
length, a path's first byte), gathered across chunks in a buffer of at most 12 bytes, or a run
of bytes to skip (session records, ACL strings, node data, the stat), counted down without
copying. A node that lies whole inside one chunk is stepped over in one go. Every byte is looked
at once, so the work is linear in the stream, whatever the chunking. Lengths are bounded as
jute's reader bounds them, counts must not be negative, and a path must be "" (the root, first)
or start with "/"; anything else is rejected with SnapshotStreamError.
"""

from __future__ import annotations

import struct

from ..jute.codec import DEFAULT_MAX_BUFFER, JuteError, Reader
from ..tree.datatree import DataTree
from .snapshot import read_body, write_body
from .txnlog import StorageError

# jute.maxbuffer plus zookeeper.jute.maxbuffer.extrasize (same default): what BinaryInputArchive
# lets a buffer or string claim.
DEFAULT_MAX_LENGTH = 2 * DEFAULT_MAX_BUFFER

_INT = struct.Struct(">i")
_INT_INT = struct.Struct(">ii")
_LONG_INT = struct.Struct(">qi")
_NODE_TAIL = 8 + 60  # long acl ref + StatPersisted
_SESSION = 12
_SLASH = 0x2F


class SnapshotStreamError(ValueError):
    """The bytes after SNAP are not a snapshot: the leader's fault, not ours."""


class _Chunks:
    """write() sink collecting the body's parts."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, b: bytes | bytearray) -> None:
        self.parts.append(bytes(b))


def encode_snapshot_stream(tree: DataTree, sessions: dict[int, int]) -> bytes:
    """The bytes a leader writes after SNAP for this tree and session table."""
    out = _Chunks()
    write_body(out, tree, sessions)
    return b"".join(out.parts)


def decode_snapshot_stream(data: bytes | bytearray | memoryview, extended_types: bool = False,
                           max_length: int = DEFAULT_MAX_LENGTH) -> tuple[DataTree, dict[int, int]]:
    """The tree and sessions of a whole snapshot stream (exactly its bytes, as the scanner
    delimited them). The tree's last_processed_zxid is 0: the SNAP packet's zxid is the caller's."""
    r = Reader(data, max_len=max_length)
    try:
        tree, sessions, _ = read_body(r, extended_types)
    except (StorageError, JuteError, UnicodeDecodeError) as e:
        raise SnapshotStreamError(f"bad snapshot stream: {e}") from None
    if r.remaining:
        raise SnapshotStreamError(f"{r.remaining} bytes after the end of the snapshot stream")
    return tree, sessions


# Scanner states: what the next field is. Each wants `_WANT[state]` bytes.
(_SESSIONS, _ACLS, _ACL_HEAD, _ACL_ITEM, _ACL_ID, _PATH_LEN, _PATH_FIRST, _DATA_LEN, _DONE) = range(9)
_WANT = {_SESSIONS: 4, _ACLS: 4, _ACL_HEAD: 12, _ACL_ITEM: 8, _ACL_ID: 4, _PATH_LEN: 4, _PATH_FIRST: 1,
         _DATA_LEN: 4}


class SnapshotStreamScanner:
    """Finds where a snapshot stream ends in bytes fed in chunks (the SnapshotScanner of
    proto/peer_codec.py). `size` counts the snapshot's bytes seen so far."""

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH):
        self.max_length = max_length
        self.size = 0
        self._state = _SESSIONS
        self._skip = 0  # bytes to pass over before the next field
        self._field = bytearray()  # the next field's bytes gathered so far (it spans chunks)
        self._acls = 0  # ACL map entries still to come
        self._items = 0  # ACLs of the current entry still to come
        self._path_len = 0
        self._nodes = 0

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes | bytearray | memoryview) -> int | None:
        """Take the next bytes of the stream; the number of them that complete the snapshot, or
        None when all of them belong to it and it goes on."""
        if self._state == _DONE:
            raise SnapshotStreamError("the snapshot stream has already ended")
        pos = self._scan(data, 0, len(data))
        self.size += pos
        return pos if self._state == _DONE else None

    def _scan(self, buf: bytes | bytearray | memoryview, pos: int, end: int) -> int:
        while pos < end:
            if self._skip:
                n = min(self._skip, end - pos)
                self._skip -= n
                pos += n
                continue
            if self._state == _PATH_LEN and not self._field:
                pos = self._whole_nodes(buf, pos, end)
                if pos >= end or self._state == _DONE:
                    break
            want = _WANT[self._state]
            if not self._field and end - pos >= want:
                value = bytes(buf[pos:pos + want])
                pos += want
            else:
                take = min(want - len(self._field), end - pos)
                self._field += buf[pos:pos + take]
                pos += take
                if len(self._field) < want:
                    break
                value = bytes(self._field)
                self._field.clear()
            self._step(value)
            if self._state == _DONE:
                break
        return pos

    def _whole_nodes(self, buf: bytes | bytearray | memoryview, pos: int, end: int) -> int:
        """Step over every node that lies whole in buf[pos:end]; stop at the terminator (state
        _DONE, pos past it) or where a node is cut off (pos at its start)."""
        unpack, limit = _INT.unpack_from, self.max_length
        while end - pos >= 5:
            (plen,) = unpack(buf, pos)
            if plen == 1 and buf[pos + 4] == _SLASH:
                self._state = _DONE
                return pos + 5
            if plen < 0 or plen > limit or (plen and buf[pos + 4] != _SLASH) or (plen == 0) != (self._nodes == 0):
                return pos  # let _step name what is wrong
            at = pos + 4 + plen
            if end - at < 4:
                return pos
            (dlen,) = unpack(buf, at)
            if dlen < -1 or dlen > limit:
                return pos
            after = at + 4 + max(dlen, 0) + _NODE_TAIL
            if after > end:
                return pos
            pos = after
            self._nodes += 1
        return pos

    def _step(self, value: bytes) -> None:
        """A whole field has arrived: check it and decide what comes next."""
        state = self._state
        if state == _SESSIONS:
            self._skip = _SESSION * self._count(value, "session count")
            self._state = _ACLS
        elif state == _ACLS:
            self._acls = self._count(value, "ACL map size")
            self._next_acl_entry()
        elif state == _ACL_HEAD:
            _, items = _LONG_INT.unpack(value)
            if items < 0:
                raise SnapshotStreamError(f"ACL list of {items} entries in the ACL map")
            self._items = items
            self._next_acl_item()
        elif state == _ACL_ITEM:
            _, scheme_len = _INT_INT.unpack(value)
            self._skip = self._length(scheme_len, "ACL scheme")
            self._state = _ACL_ID
        elif state == _ACL_ID:
            self._skip = self._length(_INT.unpack(value)[0], "ACL id")
            self._items -= 1
            self._next_acl_item()
        elif state == _PATH_LEN:
            self._path(_INT.unpack(value)[0])
        elif state == _PATH_FIRST:
            self._path_first(value[0])
        else:  # _DATA_LEN
            self._skip = self._length(_INT.unpack(value)[0], "node data") + _NODE_TAIL
            self._nodes += 1
            self._state = _PATH_LEN

    def _next_acl_entry(self) -> None:
        if self._acls:
            self._acls -= 1
            self._state = _ACL_HEAD
        else:
            self._state = _PATH_LEN

    def _next_acl_item(self) -> None:
        if self._items:
            self._state = _ACL_ITEM
        else:
            self._next_acl_entry()

    def _path(self, n: int) -> None:
        if n < 0 or n > self.max_length:
            raise SnapshotStreamError(f"node path of length {n} (limit {self.max_length})")
        if n != 1 and (n == 0) != (self._nodes == 0):  # length 1: the terminator, checked next
            where = "the first node" if self._nodes == 0 else f"node {self._nodes + 1}"
            raise SnapshotStreamError(f"{where} has a path of length {n}: only the root, first, has the empty path")
        self._path_len = n
        self._state = _PATH_FIRST if n else _DATA_LEN

    def _path_first(self, byte: int) -> None:
        if byte != _SLASH:
            raise SnapshotStreamError(f"node path starts with byte 0x{byte:02x}, not '/'")
        if self._path_len == 1:
            self._state = _DONE  # the "/" that ends the tree
            return
        self._skip = self._path_len - 1
        self._state = _DATA_LEN

    def _count(self, value: bytes, what: str) -> int:
        (n,) = _INT.unpack(value)
        if n < 0:
            raise SnapshotStreamError(f"negative {what} {n}")
        return n

    def _length(self, n: int, what: str) -> int:
        """A buffer's or string's length; -1 (null) takes no bytes."""
        if n < -1 or n > self.max_length:
            raise SnapshotStreamError(f"{what} of length {n} (limit {self.max_length})")
        return max(n, 0)
