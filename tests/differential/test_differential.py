"""Random differential runs: one seeded operation sequence, in lockstep, on Apache and zkserver.

CI runs 8 seeds x 300 ops. More: ZK_DIFF_SEEDS=50 (seeds 1..50) or ZK_DIFF_SEEDS=7,42
(exactly those), and ZK_DIFF_OPS=5000. A failure names its seed and step; rerun that seed.
"""

from __future__ import annotations

import os

import pytest

from tests.differential.conftest import CANDIDATE_CFG
from tests.differential.harness import DifferentialMismatch, Lockstep, Side, run_random
from tests.differential.ops import create
from tests.support.servers import RunningServer

pytestmark = pytest.mark.apache

DEFAULT_SEEDS = 12
DEFAULT_OPS = 500
HARNESS_SEEDS = (1001, 1002)


def seeds_from_env() -> list[int]:
    raw = os.environ.get("ZK_DIFF_SEEDS", "").strip()
    if not raw:
        return list(range(1, DEFAULT_SEEDS + 1))
    if "," in raw:
        return [int(part) for part in raw.split(",") if part.strip()]
    return list(range(1, int(raw) + 1))


N_OPS = int(os.environ.get("ZK_DIFF_OPS", DEFAULT_OPS))
# pyproject's 300 s default suits the default size; long runs get time in proportion.
RUN_TIMEOUT = max(300, N_OPS // 5)


def _run(reference: RunningServer, candidate: RunningServer, seed: int, n_ops: int) -> None:
    run_random(
        (f"{reference.kind} (reference)", reference.hosts),
        (f"{candidate.kind} (candidate)", candidate.hosts),
        seed,
        n_ops,
    )


@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize("seed", seeds_from_env())
def test_apache_vs_zkserver(seed: int, server_factory) -> None:
    _run(server_factory("apache"), server_factory("zkserver", CANDIDATE_CFG["zkserver"]), seed, N_OPS)


@pytest.mark.parametrize("seed", HARNESS_SEEDS)
def test_harness_apache_vs_apache(seed: int, server_factory) -> None:
    """Two Apache servers must agree exactly: this checks the harness (and that zxids,
    session-id mapping and notification order are deterministic), not zkserver."""
    _run(server_factory("apache"), server_factory("apache"), seed, DEFAULT_OPS)


def test_harness_reports_a_zxid_shift(server_factory) -> None:
    """A harness that cannot fail proves nothing: one extra write on one side must be caught,
    with the seed-style label, the step and both answers in the message."""
    reference, candidate = server_factory("apache"), server_factory("apache")
    ref_side, cand_side = Side("A", reference.hosts, 1), Side("B", candidate.hosts, 1)
    with Lockstep(ref_side, cand_side, label="self-test") as lockstep:
        cand_side.sessions[0].client.create("/extra")  # behind the harness's back
        with pytest.raises(DifferentialMismatch) as caught:
            lockstep.step(create("/x"))
    message = str(caught.value)
    assert "self-test" in message and "step 0" in message and "reply_zxid" in message
