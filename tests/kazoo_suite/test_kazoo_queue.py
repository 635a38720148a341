"""kazoo's own tests from kazoo/tests/test_queue.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_queue import *  # noqa: F403
