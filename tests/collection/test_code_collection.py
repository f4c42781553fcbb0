"""Code collections: ``Collection.create_code`` (the code analyzer by default), the hint when code goes into a
collection whose analyzer does not split identifiers, and searching indexed code with field weights and filters."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

pytest.importorskip("tree_sitter", reason="needs retrievekit[code]")

from retrievekit import Collection
from retrievekit.code_index import CODE_FIELD_WEIGHTS


def repo(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "http.py").write_text(
        "class HttpClient:\n    def getRetryPolicy(self):\n        return self.retry_policy\n\n\n"
        "def parse_url(url):\n    return url.split('/')\n")
    (root / "cmd").mkdir()
    (root / "cmd" / "main.go").write_text("package main\n\nfunc retryPolicy() int {\n\treturn 3\n}\n")
    return root


def test_create_code_uses_the_code_analyzer_and_keeps_an_existing_one(tmp_path: Path) -> None:
    col = Collection.create_code(tmp_path / "col")
    assert col.settings.bm25.analyzer["name"] == "code"
    assert col.settings.bm25.field_weights == CODE_FIELD_WEIGHTS == {"title": 1.0, "docstring": 1.0, "text": 1.0}
    assert Collection.create_code(tmp_path / "joined", field_weights=None).settings.bm25.field_weights is None
    other = Collection.create(tmp_path / "other", analyzer="identifier")
    again = Collection.create_code(other.path, exist_ok=True)
    assert again.settings.bm25.analyzer["name"] == "identifier"  # the analyzer is part of the manifest
    weighted = Collection.create_code(tmp_path / "w", field_weights={"title": 2, "text": 1})
    assert weighted.settings.bm25.field_weights == {"title": 2.0, "text": 1.0}


def test_ingest_code_hints_at_the_code_analyzer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = repo(tmp_path / "repo")
    with caplog.at_level(logging.WARNING, logger="retrievekit.code_index"):
        Collection.create(tmp_path / "english").ingest_code(source, use_git=False)
    assert "uses the 'lucene-english' analyzer" in caplog.text and "Collection.create_code" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="retrievekit.code_index"):
        Collection.create_code(tmp_path / "code").ingest_code(source, use_git=False)
    assert "analyzer" not in caplog.text


def test_indexed_code_searches_with_weights_and_filters(tmp_path: Path) -> None:
    col = Collection.create_code(tmp_path / "col", field_weights={"title": 2, "signature": 1, "text": 1})
    col.ingest_code(repo(tmp_path / "repo"), use_git=False)
    hits = [d for d, _ in col.search("retry policy", k=5).hits(0)]
    assert hits[:2] == ["cmd/main.go#retryPolicy", "pkg/http.py#HttpClient.getRetryPolicy"]
    only_go = col.search("retry policy", k=5, filter={"language": "go"}).hits(0)
    assert [d for d, _ in only_go] == ["cmd/main.go#retryPolicy"]
    in_pkg = col.search("retry policy", k=5, filter={"path": {"glob": "pkg/**"}, "kind": "method"}).hits(0)
    assert [d for d, _ in in_pkg] == ["pkg/http.py#HttpClient.getRetryPolicy"]
