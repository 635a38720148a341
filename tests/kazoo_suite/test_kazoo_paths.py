"""kazoo's own tests from kazoo/tests/test_paths.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_paths import *  # noqa: F403
