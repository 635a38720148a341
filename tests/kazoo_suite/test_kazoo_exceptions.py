"""kazoo's own tests from kazoo/tests/test_exceptions.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_exceptions import *  # noqa: F403
