"""kazoo's own tests from kazoo/tests/test_party.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_party import *  # noqa: F403
