"""Request bodies the benchmarks send, encoded once here with the server's own codec."""

from __future__ import annotations

from zkserver.jute.codec import Writer
from zkserver.jute.records import encode_acl_list
from zkserver.tree.acl import OPEN_ACL_UNSAFE

OPEN_ACL = encode_acl_list(OPEN_ACL_UNSAFE)  # as every benchmark node is created


def create_body(path: str, data: bytes) -> bytes:
    """CreateRequest of a persistent node open to everyone."""
    return Writer().ustring(path).buffer(data).raw(OPEN_ACL).int(0).getvalue()


def set_body(path: str, data: bytes) -> bytes:
    """SetDataRequest with any version."""
    return Writer().ustring(path).buffer(data).int(-1).getvalue()


def get_body(path: str) -> bytes:
    """The body of getData, exists and getChildren without a watch."""
    return Writer().ustring(path).bool(False).getvalue()
