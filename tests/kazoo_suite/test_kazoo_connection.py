"""kazoo's own tests from kazoo/tests/test_connection.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_connection import *  # noqa: F403
