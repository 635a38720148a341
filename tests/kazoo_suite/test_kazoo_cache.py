"""kazoo's own tests from kazoo/tests/test_cache.py, run against zkserver (see conftest.py)."""

from tests.kazoo_suite.harness import count_objects, kazoo_imports

with kazoo_imports():
    import kazoo.tests.test_cache as _kazoo_test_cache
    from kazoo.tests.test_cache import *  # noqa: F403

# The tests look for leaks with objgraph.count("TreeNode"), which counts every class of that
# short name; hypothesis, which other tests in this process use, has one too. Count kazoo's.
_kazoo_test_cache.count_refs_by_type = lambda typename: count_objects(f"kazoo.recipe.cache.{typename}")
