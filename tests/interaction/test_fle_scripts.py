"""Every datadriven FLE script in tests/interaction/fle/ (see script.py for the language)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .script import run_script

SCRIPTS = sorted((Path(__file__).parent / "fle").glob("*.txt"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script(path: Path) -> None:
    run_script(path)
