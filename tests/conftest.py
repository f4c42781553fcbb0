from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (``browser_helpers.launched_browser``)."""
    from browser_helpers import launched_browser

    with launched_browser() as b:
        yield b


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page per test that screenshots itself (``browser_helpers.checked_page``); a module needing another kind
    defines its own."""
    from browser_helpers import checked_page, screenshot_path

    with checked_page(browser, screenshot=screenshot_path(request.node.name)) as pg:
        yield pg
