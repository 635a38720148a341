"""kazoo's own tests from kazoo/tests/test_connection.py, run against zkserver (see conftest.py)."""

from tests.kazoo_suite.harness import kazoo_imports

with kazoo_imports():
    from kazoo.tests.test_connection import *  # noqa: F403
