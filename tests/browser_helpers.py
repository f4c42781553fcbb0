"""Headless Chromium for the web UI tests: where its binary is, the browser, and a page that fails its test on any
JavaScript error (optionally leaving a screenshot behind)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from paths import REPO

SKIP_REASON = "no Chromium binary found (install chromium or set RETRIEVEKIT_CHROMIUM)"


def find_chromium() -> str | None:
    for candidate in (os.environ.get("RETRIEVEKIT_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser"), shutil.which("google-chrome"),
                      shutil.which("google-chrome-stable")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = find_chromium()


@contextmanager
def launched_browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def checked_page(browser: Any, screenshot: Path | None = None) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    try:
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


#: where browser tests leave their screenshots (per test, and on failure)
ARTIFACTS = Path(os.environ.get("RETRIEVEKIT_TEST_ARTIFACTS") or REPO / "test-artifacts")


def screenshot_path(test_name: str) -> Path:
    """The screenshot file of a test, named after it."""
    import re

    return ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', test_name)}.png"
