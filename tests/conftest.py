from __future__ import annotations

from pathlib import Path

import pytest
from paths import shared_data


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared evaluation data folder (skips without it; fails under CI=true)."""
    return shared_data()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedding, ONNX and dataset caches in a per-session temporary folder, never the user's."""
    monkeypatch.setenv("RETRIEVEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "retrievekit-cache"))
