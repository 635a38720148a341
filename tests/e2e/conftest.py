from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient


@pytest.fixture
def clients() -> Iterator[list[KazooClient]]:
    """Every kazoo client a test opened through tests.support.kazoo_clients.connect, stopped after it."""
    made: list[KazooClient] = []
    yield made
    for client in made:
        try:
            client.stop()
        finally:
            client.close()
