"""kazoo's own tests from kazoo/tests/test_barrier.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_barrier import *  # noqa: F403
