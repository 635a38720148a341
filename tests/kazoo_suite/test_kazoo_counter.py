"""kazoo's own tests from kazoo/tests/test_counter.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_counter import *  # noqa: F403
