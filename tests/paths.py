"""Where tests find their files: fixtures beside the tests, and the shared evaluation data.

The shared BEIR data defaults to ``../shared/data`` beside the repository; point ``RETRIEVEKIT_TEST_DATA`` at any
folder holding the same sets to use another copy. Under CI (``CI=true``) missing data fails the tests that need it
instead of skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FIXTURES = TESTS / "data"
DATA = Path(os.environ.get("RETRIEVEKIT_TEST_DATA") or REPO.parent / "shared" / "data")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def shared_data(*parts: str) -> Path:
    """``DATA/parts...``, the way every test reaches the shared evaluation data: when it is missing the test skips,
    or fails under CI, so no data test can pass unnoticed by skipping there."""
    import pytest

    path = DATA.joinpath(*parts)
    if not path.exists():
        message = (f"evaluation data not found at {path}; set RETRIEVEKIT_TEST_DATA to the folder holding the BEIR "
                   "sets (scifact, ...)")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def required_program(name: str, install: str) -> str:
    """The path of program ``name`` that some tests need (``install``: how to get it): when it is missing the test
    skips, or fails under CI, where ``.ci/run`` installs it."""
    import shutil

    import pytest

    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({install})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path
