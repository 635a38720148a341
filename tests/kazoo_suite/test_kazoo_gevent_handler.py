"""kazoo's own tests from kazoo/tests/test_gevent_handler.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_gevent_handler import *  # noqa: F403
