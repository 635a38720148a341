"""kazoo's own tests from kazoo/tests/test_election.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_election import *  # noqa: F403
