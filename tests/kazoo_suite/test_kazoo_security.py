"""kazoo's own tests from kazoo/tests/test_security.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_security import *  # noqa: F403
