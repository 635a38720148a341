from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient
from tests.support.pki import Pki, make_pki, require_tools


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


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with its trust stores, one per test module that asks (tests/support/pki.py)."""
    require_tools("keytool")
    return make_pki(tmp_path_factory.mktemp("pki"))
