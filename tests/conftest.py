from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"evaluation data not found at {DATA}")
    return DATA


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedding, ONNX and dataset caches in a per-session temporary folder, never the user's."""
    monkeypatch.setenv("RETRIEVEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "retrievekit-cache"))
