from __future__ import annotations

from pathlib import Path

import pytest
from paths import DATA, IN_CI


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        message = (f"evaluation data not found at {DATA}; set RETRIEVEKIT_TEST_DATA to the folder holding the "
                   "BEIR sets (scifact, ...)")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return DATA


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedding, ONNX and dataset caches in a per-session temporary folder, never the user's."""
    monkeypatch.setenv("RETRIEVEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "retrievekit-cache"))
