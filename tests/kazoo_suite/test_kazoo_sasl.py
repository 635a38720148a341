"""kazoo's own tests from kazoo/tests/test_sasl.py, run through kazoo's own harness (see conftest.py)."""

from kazoo.tests.test_sasl import *  # noqa: F403
