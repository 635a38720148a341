"""kazoo's own tests from kazoo/tests/test_selectors_select.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_selectors_select import *  # noqa: F403
