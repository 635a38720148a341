"""kazoo's own tests from kazoo/tests/test_partitioner.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_partitioner import *  # noqa: F403
