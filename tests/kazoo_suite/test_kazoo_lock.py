"""kazoo's own tests from kazoo/tests/test_lock.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_lock import *  # noqa: F403
