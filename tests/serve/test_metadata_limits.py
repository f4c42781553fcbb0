"""D4 (issue 12): metadata nested past the one limit (``MAX_METADATA_DEPTH``) is refused at every entry point with
a 400 naming the field, so no stored document can make reads fail; a document at the limit is served by
``GET /api/documents``, ``/api/search`` and the MCP tools, whose serialisers (pydantic: ~255 levels) it stays
well below."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient

from retrievekit import Collection
from retrievekit.core.document import MAX_METADATA_DEPTH
from retrievekit.serve.app import create_app
from retrievekit.serve.mcp import CollectionTools


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.fixture
def col(tmp_path: Path) -> Collection:
    col = Collection.create(tmp_path / "col")
    col.add([{"id": "plain", "text": "zebrafish swim", "metadata": {"n": 1}}])
    return col


def test_deep_metadata_is_refused_and_reads_keep_working(col: Collection) -> None:
    client = TestClient(create_app(col.path))
    for levels in (MAX_METADATA_DEPTH + 1, 256):
        r = client.post("/api/documents", json={"documents": [
            {"id": "fine", "text": "zebrafish too"},
            {"id": "deep", "text": "zebrafish deep", "metadata": {"m": deep(levels)}}]})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "bad_document"
        assert "item 1 (id 'deep'): metadata field 'm.a.a" in error["message"]
        assert f"more than {MAX_METADATA_DEPTH} levels deep" in error["message"]
    assert "fine" not in col and "deep" not in col  # the batch is all or nothing
    r = client.put("/api/documents/plain", json={"metadata": {"m": deep(256)}})
    assert r.status_code == 400 and "levels deep" in r.json()["error"]["message"]
    assert client.get("/api/documents/plain").json()["metadata"] == {"n": 1}


def test_a_document_at_the_limit_is_served_everywhere(col: Collection) -> None:
    client = TestClient(create_app(col.path))
    metadata = {"m": deep(MAX_METADATA_DEPTH)}
    r = client.post("/api/documents", json={"documents": [{"id": "edge", "text": "zebrafish", "metadata": metadata}]})
    assert r.status_code == 200, r.text
    r = client.get("/api/documents/edge")
    assert r.status_code == 200 and r.json()["metadata"] == metadata
    r = client.get("/api/search", params={"q": "zebrafish", "k": 5})
    assert r.status_code == 200 and "edge" in [h["id"] for h in r.json()["hits"]]
    r = client.post("/api/search", json={"query": "zebrafish", "k": 5})
    assert r.status_code == 200, r.text
    tools = CollectionTools(Collection(col.path))
    hits = tools.search("zebrafish", k=5)["hits"]
    assert "edge" in [h["id"] for h in hits]
    json.dumps(hits)
    pydantic_core = pytest.importorskip("pydantic_core")
    pydantic_core.to_json(tools.get_document("edge"))  # what the MCP SDK does with a tool's result
