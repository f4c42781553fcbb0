"""The web UI of an image collection in a real browser (headless Chromium, Playwright) against the real server:
an image chosen or dropped as the query shows a thumbnail grid, composed with the words of the search box; text
collections keep the plain result list. Skipped, like test_web_ui.py, when no Chromium binary is found."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import CHROMIUM, SKIP_REASON

if CHROMIUM is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)
pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("PIL")
pytest.importorskip("python_multipart")

import toy_encoder  # noqa: F401  (registers the "toy" encoder in this process, where the server runs)
from clip_helpers import make_tiny_clip
from http_helpers import ServerThread
from PIL import Image
from playwright.sync_api import Page, expect

from retrievekit import Collection
from retrievekit.serve.app import create_app

KEY = "image-key"
N_PICTURES = 6


def picture_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray((rng.random((40, 48, 3)) * 255).astype("uint8")).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ui-pictures")
    for i in range(N_PICTURES):
        (folder / f"img{i}.png").write_bytes(picture_bytes(i))
        (folder / f"img{i}.txt").write_text(f"caption {i}")
    return folder


@pytest.fixture(scope="module")
def image_col(tmp_path_factory: pytest.TempPathFactory, pictures: Path) -> Collection:
    clip = make_tiny_clip(tmp_path_factory.mktemp("ui-clip"))
    col = Collection.create(tmp_path_factory.mktemp("ui-images") / "col", dense=f"clip:{clip}")
    assert col.ingest_images(pictures)["documents"] == N_PICTURES
    return col


@pytest.fixture(scope="module")
def server(image_col: Collection) -> Iterator[ServerThread]:
    with ServerThread(create_app(image_col.path)) as s:
        yield s


def open_search(page: Page, base: str) -> None:
    page.goto(base + "/")
    expect(page.locator("body[data-ready=true]")).to_be_attached()


def result_ids(page: Page) -> list[str]:
    return page.locator("#result-list > li[data-id]").evaluate_all("items => items.map(i => i.dataset.id)")


def wait_for_results(page: Page, mode: str) -> None:
    expect(page.locator("#status")).to_contain_text(f"mode {mode} ")
    expect(page.locator("#status")).to_contain_text("round-trip")


def thumbnails_loaded(page: Page) -> None:
    page.wait_for_function("() => { const imgs = [...document.querySelectorAll('#result-list img')];"
                           " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }")


def test_an_image_file_as_the_query_shows_a_thumbnail_grid(page: Page, server: ServerThread,
                                                           pictures: Path) -> None:
    open_search(page, server.url)
    expect(page.locator("#image-query")).to_be_visible()
    page.set_input_files("#image-file", str(pictures / "img3.png"))  # chosen: searched at once
    wait_for_results(page, "image")
    ids = result_ids(page)
    assert ids[0] == "img3.png" and len(ids) == N_PICTURES
    expect(page.locator("#result-list")).to_have_class(re.compile(r"\bimage-grid\b"))
    thumbnails_loaded(page)
    first = page.locator("#result-list > li").first
    expect(first.locator("img")).to_have_attribute("alt", "img3")
    expect(first.locator("figcaption")).to_contain_text("caption 3")
    expect(first.locator(".score")).to_have_text("score 1.0000")
    size = first.locator("img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [48, 40]  # the stored thumbnail of a 48x40 picture
    expect(page.locator("#image-preview")).to_be_visible()
    # the document view shows the picture, not its base64 text
    first.locator("button.thumb").click()
    expect(page.locator("#doc-title")).to_have_text("img3")
    expect(page.locator("#doc-text img.doc-image")).to_be_visible()
    expect(page.locator("#doc-metadata")).not_to_contain_text("base64")
    expect(page.locator("#doc-metadata")).to_contain_text("image_sha256")
    page.locator("#doc-close").click()
    # paging works on image queries too
    page.get_by_label("Results per page").select_option("5")
    wait_for_results(page, "image")
    assert len(result_ids(page)) == 5
    page.locator("#next-page").click()
    expect(page.locator("#page-range")).to_have_text("6–6")


def test_a_dropped_image_composed_with_words(page: Page, server: ServerThread) -> None:
    open_search(page, server.url)
    page.get_by_label("Query").fill("caption 5")
    page.locator("#image-weight").fill("1")  # the words only: the ranking of a dense text search
    expect(page.locator("#weight-value")).to_have_text("1.00")
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        document.getElementById("drop-zone").dispatchEvent(
            new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""", base64.b64encode(picture_bytes(0)).decode())
    wait_for_results(page, "image+text")
    expect(page.locator("#image-name")).to_contain_text("dropped.png")
    dense = page.evaluate("async () => (await (await fetch('/api/search?mode=dense&k=10&query=caption%205')).json())"
                          ".hits.map(h => h.id)")
    assert result_ids(page) == dense
    page.locator("#image-weight").fill("0")  # the image alone again
    wait_for_results(page, "image+text")
    assert result_ids(page)[0] == "img0.png"
    page.locator("#image-clear").click()  # back to words only
    expect(page.locator("#image-preview")).to_be_hidden()
    page.get_by_role("button", name="Search", exact=True).click()
    wait_for_results(page, "bm25")
    assert result_ids(page)[0] == "img5.png"
    expect(page.locator("#result-list")).to_have_class(re.compile(r"\bimage-grid\b"))  # image hits stay a grid


def test_a_file_that_is_no_image_shows_the_error(page: Page, server: ServerThread, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    open_search(page, server.url)
    page.set_input_files("#image-file", str(text))
    expect(page.locator("#error")).to_contain_text("the upload is not an image in a supported format")
    expect(page.locator("#error")).to_contain_text("unsupported_image, HTTP 415")


def test_thumbnails_load_with_an_api_key(page: Page, image_col: Collection, pictures: Path) -> None:
    with ServerThread(create_app(image_col.path, api_key=KEY)) as s:
        page.goto(s.url + "/")
        page.locator("#api-key").fill(KEY)
        page.locator("#key-submit").click()
        expect(page.locator("body[data-ready=true]")).to_be_attached()
        page.set_input_files("#image-file", str(pictures / "img1.png"))
        wait_for_results(page, "image")
        assert result_ids(page)[0] == "img1.png"
        thumbnails_loaded(page)
        src = page.locator("#result-list img").first.get_attribute("src")
        assert src is not None and src.startswith("blob:")  # fetched with the key, not by <img src>


def test_text_collections_keep_the_plain_list(page: Page, tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "text", dense="toy:bow")
    col.add([{"id": f"t{i}", "title": f"Title {i}", "text": f"retrieval text number {i}"} for i in range(3)])
    with ServerThread(create_app(col.path)) as s:
        open_search(page, s.url)
        expect(page.locator("#image-query")).to_be_hidden()
        page.get_by_label("Query").fill("retrieval")
        page.get_by_role("button", name="Search", exact=True).click()
        wait_for_results(page, "bm25")
        assert len(result_ids(page)) == 3
        expect(page.locator("#result-list")).not_to_have_class(re.compile(r"\bimage-grid\b"))
        assert page.locator("#result-list img").count() == 0
