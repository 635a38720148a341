"""kazoo's own tests from kazoo/tests/test_hosts.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_hosts import *  # noqa: F403
