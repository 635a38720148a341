"""kazoo's own tests from kazoo/tests/test_lease.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_lease import *  # noqa: F403
