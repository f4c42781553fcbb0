"""/api/ask answers with the collection's cached pipeline (Collection.rag), as the CLI and Python do."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient
from http_helpers import ScriptedGenerator

from retrievekit import Collection
from retrievekit.serve.app import create_app
from retrievekit.service.ask import AskRequest


def test_api_ask_reuses_the_cached_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    col = Collection.create(tmp_path / "col", passages="sentences:12")
    col.add([{"id": "bm25", "text": "Okapi BM25 is a ranking function. Robertson and Sparck Jones developed it."}])
    import retrievekit.rag.pipeline as pipeline

    built: list[object] = []
    original = pipeline.RAG.__init__

    def counting(self: pipeline.RAG, *args: object, **kwargs: object) -> None:
        built.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline.RAG, "__init__", counting)
    app = create_app(col.path, generator=ScriptedGenerator("They did [1]."))
    client = TestClient(app)
    for _ in range(3):
        assert client.post("/api/ask", json={"question": "who developed BM25", "selector": "top:2"}).status_code == 200
    assert len(built) == 1  # one pipeline for the three requests
    client.post("/api/ask", json={"question": "who developed BM25", "selector": "top:1"})
    assert len(built) == 2  # other settings, another pipeline
    state = app.state.server
    options = state.asker().rag_options(state.collection(), AskRequest("q", selector="top:2"))
    assert state.collection().rag(generator=state.generator.get(), **options) is built[0]
