"""The web UI shows page references of PDF passages: "paper.pdf p. 3" on search hits, in the cited sources and on
the contexts of an answer, linked to the PDF at that page when the server shares the indexed folder (headless
Chromium through Playwright; skipped without a Chromium binary)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import CHROMIUM, SKIP_REASON

if CHROMIUM is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)
pytest.importorskip("pypdfium2")
pytest.importorskip("fpdf")

from document_fixtures import CitesFirstSource, make_pdf
from http_helpers import ServerThread
from playwright.sync_api import Page, expect

from retrievekit import Collection
from retrievekit.serve.app import create_app


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("pdf-ui")
    (root / "docs").mkdir()
    (root / "docs" / "paper.pdf").write_bytes(make_pdf(4))
    col = Collection.create(root / "col", passages="sentences:24")
    col.ingest(root / "docs", progress=False, workers=1)
    with ServerThread(create_app(Path(col.path), generator=CitesFirstSource(), document_roots=[root / "docs"])) as s:
        yield s


def test_search_hits_and_answers_show_the_page(page: Page, server: ServerThread) -> None:
    page.goto(server.url + "/")
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    page.get_by_label("Query").fill("topic3 tenacious")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#status")).to_contain_text("round-trip")
    first = page.locator("#result-list > li[data-id]").first
    expect(first.locator(".location")).to_have_text("paper.pdf p. 3")
    href = first.locator("a.location").get_attribute("href") or ""  # the shared file, opened at its page
    assert href.endswith("/file#page=3")
    served = page.request.get(href.split("#")[0])
    assert served.ok and served.headers["content-type"] == "application/pdf"

    page.goto(server.url + "/ui/ask.html")
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    page.get_by_label("Selector").fill("top:1")
    page.get_by_label("Question").fill("topic3 tenacious rivets")
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.locator("#status")).to_contain_text("round-trip")
    expect(page.locator(".cited-sources")).to_contain_text("[1] paper.pdf p. 3")
    expect(page.locator("#context-1 .location")).to_have_text("paper.pdf p. 3")
    assert (page.locator("#context-1 a.location").get_attribute("href") or "").endswith("/file#page=3")
