"""Each re-introduced ZooKeeper bug breaks the scripted scenario our code is written to pass.

The scenarios live in test_zab_scenarios.py; here each runs again with one switch of
zkserver.quorum.bugs on, and must fail: proof that the safeguard it exercises is what keeps
the scenario safe, and that the switch still reaches that safeguard.
"""

from __future__ import annotations

import pytest

from tests.interaction import test_zab_scenarios as scenarios
from zkserver.quorum import bugs


@pytest.fixture(autouse=True)
def _switches_off():
    bugs.disable_all()
    yield
    bugs.disable_all()


@pytest.mark.parametrize(("switch", "scenario"), [
    ("ack-before-durable", scenarios.test_follower_acks_a_proposal_only_once_durable),
    ("epoch-before-txns", scenarios.test_follower_persists_held_proposals_before_current_epoch_and_newleader_ack),
    ("newleader-ack-early", scenarios.test_follower_persists_held_proposals_before_current_epoch_and_newleader_ack),
    ("diff-not-trunc", scenarios.test_uncommitted_suffix_is_truncated_when_the_new_leader_has_not_written_yet),
])
def test_switch_breaks_its_scenario(switch, scenario):
    scenario()  # passes with every switch off
    bugs.enable(switch)
    with pytest.raises(AssertionError):
        scenario()


def test_unknown_switch_is_refused():
    with pytest.raises(ValueError):
        bugs.enable("no-such-bug")
