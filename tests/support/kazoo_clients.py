"""Kazoo clients an end-to-end test opens, and waiting for what they should see."""

from __future__ import annotations

import time
from collections.abc import Callable

from kazoo.client import KazooClient

TIMEOUT = 20.0


def connect(clients: list[KazooClient], hosts: str, **kwargs: object) -> KazooClient:
    """A started client on `hosts`, kept in `clients` (the `clients` fixture stops them)."""
    kwargs.setdefault("timeout", 10.0)
    client = KazooClient(hosts=hosts, **kwargs)
    clients.append(client)
    client.start(timeout=TIMEOUT)
    return client


def wait_for(predicate: Callable[[], object], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
