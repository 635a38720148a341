"""kazoo's own tests from kazoo/tests/test_utils.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_utils import *  # noqa: F403
