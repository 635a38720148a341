"""kazoo's own tests from kazoo/tests/test_retry.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_retry import *  # noqa: F403
