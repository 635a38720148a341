"""kazoo's own tests from kazoo/tests/test_cache.py, run through kazoo's own harness (see conftest.py)."""

import kazoo.tests.test_cache as _kazoo_test_cache
import objgraph
from kazoo.tests.test_cache import *  # noqa: F403

# The tests look for leaks with objgraph.count("TreeNode"), which counts every class of that
# short name; hypothesis, which other tests in this pytest process use, has one too. objgraph
# counts kazoo's alone when given the qualified name. (kazoo runs its suite in a process of its own.)
_kazoo_test_cache.count_refs_by_type = lambda typename: objgraph.count(f"kazoo.recipe.cache.{typename}")
