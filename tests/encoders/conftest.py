"""Fixtures shared by the encoder tests: one ONNX export of MiniLM per session (exporting costs ~15 s)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def onnx_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder usable as RETRIEVEKIT_CACHE: the ONNX exports of the encoder tests live in its ``onnx/``."""
    return tmp_path_factory.mktemp("onnx-home")


@pytest.fixture(scope="session")
def onnx_cache(onnx_home: Path) -> Path:
    path = onnx_home / "onnx"
    path.mkdir(exist_ok=True)
    return path
