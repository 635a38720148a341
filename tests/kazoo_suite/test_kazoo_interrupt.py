"""kazoo's own tests from kazoo/tests/test_interrupt.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_interrupt import *  # noqa: F403
