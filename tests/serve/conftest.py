"""Fixtures of the web UI's browser tests: one Chromium per test module, and a page per test that screenshots
itself (``browser_helpers.checked_page``). A module that needs other ones defines its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from browser_helpers import launched_browser

    with launched_browser() as b:
        yield b


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    from browser_helpers import checked_page, screenshot_path

    with checked_page(browser, screenshot=screenshot_path(request.node.name)) as pg:
        yield pg
