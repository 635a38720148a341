"""Server pairs for differential tests: Apache ZooKeeper is always the reference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.differential.harness import Side
from tests.support.servers import RunningServer, start_server

SLOTS = 3  # sessions per server

# "apache" as the candidate checks the harness itself: two Apache servers must agree.
CANDIDATES = [
    pytest.param("zkserver", id="apache-vs-zkserver"),
    pytest.param("apache", id="apache-vs-apache"),
]


# The reference is Apache 3.8, whose exists() does not check READ; zkserver follows 3.9 by
# default (docs/compatibility.md) and has this documented switch for 3.8's behaviour, so the
# rest of the comparison stays exact (3.8 also registers the watch of a refused exists).
CANDIDATE_CFG = {"zkserver": {"existsChecksRead": "false"}, "apache": None}


def start_pair(candidate: str, reference_dir: Path, candidate_dir: Path) -> tuple[RunningServer, RunningServer]:
    reference = start_server("apache", reference_dir)
    try:
        return reference, start_server(candidate, candidate_dir, CANDIDATE_CFG[candidate])
    except BaseException:
        reference.stop()
        raise


def sides(pair: tuple[RunningServer, RunningServer], rebase_zxids: bool) -> tuple[Side, Side]:
    """Open SLOTS sessions on each server, reference first (same order, same zxids)."""
    reference, candidate = pair
    ref_side = Side(f"{reference.kind} (reference)", reference.hosts, SLOTS, rebase_zxids)
    try:
        return ref_side, Side(f"{candidate.kind} (candidate)", candidate.hosts, SLOTS, rebase_zxids)
    except BaseException:
        ref_side.shutdown()
        raise


@pytest.fixture(scope="module", params=CANDIDATES)
def shared_pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Reference + candidate shared by a module; tests must rebase zxids and use own roots."""
    pair = start_pair(request.param, tmp_path_factory.mktemp("reference"), tmp_path_factory.mktemp("candidate"))
    try:
        yield pair
    finally:
        for server in pair:
            server.stop()


@pytest.fixture(params=CANDIDATES)
def fresh_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Reference + candidate started for this test only: zxids can be compared absolutely."""
    pair = start_pair(request.param, tmp_path / "reference", tmp_path / "candidate")
    try:
        yield pair
    finally:
        for server in pair:
            server.stop()
