"""The web UI's vendored syntax highlighter is served from the package (no CDN): every asset a page names is local
and answers 200, and highlight.js ships with its license."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient

from retrievekit import Collection
from retrievekit.serve.app import STATIC_DIR, create_app

VENDOR = "vendor/highlight"
PAGES = ("index.html", "ask.html", "eval.html")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    col = Collection.create(tmp_path_factory.mktemp("ui") / "col")
    col.add([{"id": "a", "text": "x"}])
    return TestClient(create_app(col.path))


def test_the_highlighter_is_served_with_its_license(client: TestClient) -> None:
    js = client.get(f"/ui/{VENDOR}/highlight.min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.text.startswith("/*!\n  Highlight.js v11.") and "grmr_python" in js.text and "grmr_go" in js.text
    for theme in ("github.min.css", "github-dark.min.css"):
        css = client.get(f"/ui/{VENDOR}/{theme}")
        assert css.status_code == 200 and "text/css" in css.headers["content-type"] and ".hljs" in css.text
    license_text = client.get(f"/ui/{VENDOR}/LICENSE")
    assert license_text.status_code == 200 and "BSD 3-Clause License" in license_text.text
    assert "@highlightjs/cdn-assets@11.12.0" in (STATIC_DIR / VENDOR / "README.md").read_text()


@pytest.mark.parametrize("page", PAGES)
def test_pages_name_only_local_assets_and_they_exist(client: TestClient, page: str) -> None:
    html = client.get(f"/ui/{page}").text
    assets = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', html)
    assert assets, page
    for asset in assets:
        assert not re.match(r"(?i)^(?:[a-z]+:)?//", asset), f"{page} loads {asset} from elsewhere"
        assert client.get(f"/ui/{asset}").status_code == 200, asset
    if page == "index.html":  # the search page highlights code hits, before app.js runs
        assert assets.index(f"{VENDOR}/highlight.min.js") < assets.index("app.js")


def test_the_package_data_includes_the_vendor_folder() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"serve/static/vendor/*/*"' in pyproject
