"""kazoo's own tests from kazoo/tests/test_watchers.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_watchers import *  # noqa: F403
