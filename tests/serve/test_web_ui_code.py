"""Code hits in the web UI, in a real browser (headless Chromium): ``path:start-end``, numbered lines from the
file's line numbers, syntax highlighting by the vendored highlight.js, query terms marked, markup in code shown as
text; other documents keep the plain snippet; the glob filter operator.

Skipped when no Chromium binary is found (set RETRIEVEKIT_CHROMIUM to point at one)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import CHROMIUM, SKIP_REASON, checked_page, launched_browser

if CHROMIUM is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from http_helpers import ServerThread
from playwright.sync_api import Browser, Page, expect

from retrievekit import Collection
from retrievekit.serve.app import create_app

BACKOFF = ("    def backoff(self, attempt: int) -> float:\n"
           '        """Seconds to wait before the next retry."""\n'
           "        delay = self.base * 2 ** attempt\n"
           "        return min(delay, self.cap)\n")
LONG = "def render(items):\n" + "".join(f"    step_{i} = {i}\n" for i in range(30)) + \
    "    retry_later = True  # the retry flag\n    return items\n"


def code_doc(doc_id: str, path: str, start: int, text: str, language: str, **meta: Any) -> dict[str, Any]:
    return {"id": doc_id, "title": doc_id.split("#")[1], "text": text,
            "metadata": {"path": path, "language": language, "kind": "function", "start_line": start,
                         "end_line": start + text.count("\n") - 1, **meta}}


DOCS = [
    code_doc("src/retry.py#Retry.backoff", "src/retry.py", 40, BACKOFF, "python"),
    code_doc("src/render.py#render", "src/render.py", 3, LONG, "python"),
    code_doc("web/x.ts#inject", "web/x.ts", 7,
             'function inject(): void {\n  el.innerHTML = "<img src=x onerror=\\"window.__xss=1\\">"; // retry\n}\n',
             "tsx"),
    code_doc("lib/odd.zz#odd", "lib/odd.zz", 1, "odd retry thing\n", "zz-unknown"),
    {"id": "notes", "title": "Retry notes", "text": "Plain prose about retry policies.", "metadata": {"path": "n.md"}},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    col = Collection.create_code(tmp_path_factory.mktemp("code-ui") / "col")
    col.add(DOCS)
    with ServerThread(create_app(col.path)) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_browser() as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with checked_page(browser) as pg:
        yield pg


def run_query(page: Page, base: str, text: str) -> None:
    page.goto(base + "/ui/")
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    page.get_by_label("Query").fill(text)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#status")).to_contain_text("round-trip")


def hit(page: Page, doc_id: str) -> Any:
    return page.locator(f'#result-list > li[data-id="{doc_id}"]')


def test_code_hits_show_location_and_highlighted_lines(page: Page, server: ServerThread) -> None:
    run_query(page, server.url, "wait before retry")
    item = hit(page, "src/retry.py#Retry.backoff")
    expect(item.locator(".location")).to_have_text("src/retry.py:40-43")
    block = item.locator("pre.code-block")
    expect(block).to_be_visible()
    assert block.get_attribute("data-language") == "python"
    assert item.locator(".line-numbers").inner_text().split() == ["40", "41", "42", "43"]
    assert item.locator("code").inner_text() == BACKOFF.rstrip("\n")
    assert item.locator("code .hljs-keyword").count() >= 2  # def, return: highlight.js ran
    marked = {m.lower() for m in item.locator("code mark").all_inner_texts()}
    assert {"wait", "retry"} <= marked
    assert item.locator(".chip").all_inner_texts() == ["language: python", "kind: function"]
    # a plain document in the same results keeps its snippet
    notes = hit(page, "notes")
    expect(notes.locator(".snippet mark").first).to_be_visible()
    assert notes.locator("pre").count() == 0


def test_long_code_shows_the_lines_that_match(page: Page, server: ServerThread) -> None:
    run_query(page, server.url, "retry flag")
    item = hit(page, "src/render.py#render")
    expect(item.locator("pre.code-block")).to_be_visible()
    numbers = [int(n) for n in item.locator(".line-numbers").inner_text().split()]
    assert len(numbers) == 12 and 3 + 31 in numbers  # the retry_later line (file line 34) is in the window
    assert "retry_later" in item.locator("code").inner_text()


def test_markup_in_code_stays_text_and_unknown_languages_are_plain(page: Page, server: ServerThread) -> None:
    run_query(page, server.url, "retry")
    ts = hit(page, "web/x.ts#inject")
    expect(ts.locator("pre.code-block")).to_be_visible()
    assert ts.locator("pre.code-block").get_attribute("data-language") == "typescript"  # tsx -> typescript
    assert '"<img src=x onerror=' in ts.locator("code").inner_text()
    assert ts.locator("code img").count() == 0 and page.evaluate("window.__xss") is None
    odd = hit(page, "lib/odd.zz#odd")
    expect(odd.locator("pre.code-block")).to_be_visible()
    assert odd.locator("code").get_attribute("class") == "hljs nohighlight"
    assert odd.locator("code").inner_text() == "odd retry thing"


def test_document_view_shows_the_whole_symbol_highlighted(page: Page, server: ServerThread) -> None:
    run_query(page, server.url, "retry")
    hit(page, "src/render.py#render").locator(".hit-title").click()
    dialog = page.locator("#doc-dialog")
    expect(dialog.locator("#doc-id")).to_have_text("src/render.py:3-35")
    numbers = dialog.locator(".line-numbers").inner_text().split()
    assert numbers[0] == "3" and numbers[-1] == "35"
    assert dialog.locator("code .hljs-keyword").count() >= 2


def test_glob_filter_in_the_filter_builder(page: Page, server: ServerThread) -> None:
    page.goto(server.url + "/ui/")
    expect(page.locator("body[data-ready=true]")).to_be_attached()
    page.get_by_role("button", name="+ Add filter").click()
    page.locator("#filter-field-1").fill("path")
    page.locator("#filter-op-1").select_option("glob")
    assert page.locator("#filter-value-1").get_attribute("placeholder") == "src/**/*.py"
    page.locator("#filter-value-1").fill("src/**")
    page.get_by_label("Query").fill("retry")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#status")).to_contain_text("round-trip")
    ids = page.locator("#result-list > li[data-id]").evaluate_all("items => items.map(i => i.dataset.id)")
    assert ids and all(i.startswith("src/") for i in ids)
    assert re.search(r"filter=.*glob", page.url)
