"""kazoo's own tests from kazoo/tests/test_build.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_build import *  # noqa: F403
