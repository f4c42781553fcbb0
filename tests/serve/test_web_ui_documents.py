"""The walkthrough's collection in the web UI: a folder of PDFs indexed as whole documents (`retrievekit index
~/papers papers`, no --passages) and served with `--document-root ~/papers`; the Ask page cites the one page that
answers ("long.pdf p. 17", linked to the PDF at #page=17), not the paper's whole page range (headless Chromium
through Playwright; skipped without a Chromium binary)."""

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
    root = tmp_path_factory.mktemp("whole-pdf-ui")
    (root / "papers").mkdir()
    (root / "papers" / "long.pdf").write_bytes(make_pdf(24, title="A long paper"))
    col = Collection.create(root / "col")  # whole documents
    col.ingest(root / "papers", progress=False, workers=1)
    with ServerThread(create_app(Path(col.path), generator=CitesFirstSource(),
                                 document_roots=[root / "papers"])) as s:
        yield s


def test_the_ask_page_cites_the_page_of_a_whole_pdf(page: Page, server: ServerThread) -> None:
    page.goto(server.url + "/ui/ask.html")
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    page.get_by_label("Question").fill("topic17 tenacious rivets")
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.locator("#status")).to_contain_text("round-trip")
    expect(page.locator(".cited-sources")).to_contain_text("[1] long.pdf p. 17")
    expect(page.locator("#context-1 .location")).to_have_text("long.pdf p. 17")
    href = page.locator("#context-1 a.location").get_attribute("href") or ""
    assert href.endswith("/file#page=17")
    served = page.request.get(href.split("#")[0])
    assert served.ok and served.headers["content-type"] == "application/pdf"
