"""A test's prerequisite (a Debian package, a jar, a Python extra) that is missing here."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(why: str, ci_hint: str | None = None) -> NoReturn:
    """Skip the calling test; under CI=true, where .ci/test installs every prerequisite, fail it
    instead (with `ci_hint`, what CI must install), so that a broken install cannot pass as skips."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}; {ci_hint}" if ci_hint else why, pytrace=False)
    pytest.skip(why)
