"""The shared evaluation data is reached only through ``paths.shared_data`` (or the ``data_dir`` fixture built on
it): without the data a test skips in a plain clone and fails under CI, never skips there unnoticed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from paths import REPO, TESTS

# One test per way of reaching the data: the fixture, and shared_data() called in a test.
DATA_TESTS = ["tests/rag/test_rag_safety.py::test_real_documents_rarely_flagged",
              "tests/evaluation/test_beir_datasets.py::test_shared_scifact_folder"]


def test_no_test_reads_the_data_folder_directly() -> None:
    """``DATA``, ``shared/data`` or a skip decided by the test itself would bypass the CI check."""
    direct = re.compile(r"\bDATA\s*/|from paths import[^\n]*\bDATA\b|shared[\"']?\s*/\s*[\"']?data|"
                        r"RETRIEVEKIT_TEST_DATA")
    offenders = [str(path.relative_to(TESTS)) for path in TESTS.rglob("*.py")
                 if path.name not in ("paths.py", "test_shared_data.py") and direct.search(path.read_text("utf-8"))]
    assert offenders == []


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_data_fails_under_ci_and_skips_otherwise(tmp_path, ci: str) -> None:
    env = {**os.environ, "RETRIEVEKIT_TEST_DATA": str(tmp_path / "no-such-folder"), "CI": ci}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *DATA_TESTS],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    summary = proc.stdout.strip().splitlines()[-1]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (failed|errors?|skipped|passed)", summary)}
    failed = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
    assert (failed, counts.get("skipped", 0)) == ((2, 0) if ci else (0, 2)), summary
    assert "no-such-folder" in proc.stdout and "RETRIEVEKIT_TEST_DATA" in proc.stdout
