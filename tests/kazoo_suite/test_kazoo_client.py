"""kazoo's own tests from kazoo/tests/test_client.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_client import *  # noqa: F403
