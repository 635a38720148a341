"""The generator must replay a seed exactly, or a failing seed could not be rerun."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from tests.differential.opgen import OpGenerator
from tests.support.servers import REPO_ROOT


def fingerprint(seed: int, n_ops: int = 400) -> str:
    """Hash of the op sequence, fed a fixed fake result for every op."""
    generator = OpGenerator(seed)
    digest = hashlib.sha256()
    for op in generator.setup():
        generator.observe(op, op.path)
    for i in range(n_ops):
        op = generator.next_op()
        digest.update(op.describe().encode())
        # Pretend every third create succeeded, so feedback paths are exercised too.
        generator.observe(op, op.path if op.kind == "create" and i % 3 == 0 else ("error", "NoNodeError"))
    return digest.hexdigest()


def test_same_seed_same_sequence() -> None:
    assert fingerprint(5) == fingerprint(5)
    assert fingerprint(5) != fingerprint(6)


def test_sequence_does_not_depend_on_the_hash_seed() -> None:
    code = "from tests.differential.test_opgen import fingerprint; print(fingerprint(5))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == fingerprint(5)


def test_every_kind_is_generated() -> None:
    generator = OpGenerator(1)
    kinds = {generator.next_op().kind for _ in range(2000)}
    assert kinds == set(generator._makers)
