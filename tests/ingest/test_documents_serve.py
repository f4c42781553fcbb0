"""GET /api/documents/{id}/file: the source file of a document or passage, from the shared folders only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("pypdfium2")
pytest.importorskip("fpdf")

from document_fixtures import make_docx, make_pdf
from fastapi.testclient import TestClient

from retrievekit import Collection
from retrievekit.serve.app import create_app


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Collection]:
    root = tmp_path_factory.mktemp("shared")
    docs = root / "docs"
    (docs / "papers").mkdir(parents=True)
    (docs / "papers" / "paper.pdf").write_bytes(make_pdf(3))
    (docs / "report.docx").write_bytes(make_docx())
    col = Collection.create(root / "col", passages="sentences:24")
    col.ingest(docs, progress=False, workers=1)
    (root / "secret.pdf").write_bytes(make_pdf(1))
    col.add([{"id": "escape", "text": "x", "metadata": {"path": "../secret.pdf"}},
             {"id": "absolute", "text": "y", "metadata": {"path": str(root / "secret.pdf")}},
             {"id": "notes", "text": "z", "metadata": {"path": "notes.txt"}}])
    if hasattr(os, "symlink"):
        os.symlink(root / "secret.pdf", docs / "link.pdf")
        col.add([{"id": "linked", "text": "w", "metadata": {"path": "link.pdf"}}])
    return docs, col


def test_a_passage_gives_its_pdf_and_a_word_file_downloads(shared):
    docs, col = shared
    client = TestClient(create_app(col.path, document_roots=[docs]))
    assert client.get("/api/info").json()["document_files"] is True
    response = client.get("/api/documents/papers/paper.pdf%232/file")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content == (docs / "papers" / "paper.pdf").read_bytes()
    assert response.headers["content-disposition"].startswith("inline")
    whole = client.get("/api/documents/papers/paper.pdf").json()  # reassembled from its passages: all its pages
    assert (whole["metadata"]["page"], whole["metadata"]["page_end"]) == (1, 3)
    word = client.get("/api/documents/report.docx%230/file")
    assert word.status_code == 200 and word.headers["content-disposition"].startswith("attachment")


def test_nothing_outside_the_shared_folders_is_served(shared):
    docs, col = shared
    client = TestClient(create_app(col.path, document_roots=[docs]))
    assert client.get("/api/documents/escape/file").status_code == 403
    assert client.get("/api/documents/absolute/file").status_code == 404
    assert client.get("/api/documents/notes/file").status_code == 404  # not a document format
    assert client.get("/api/documents/missing/file").status_code == 404
    if hasattr(os, "symlink"):
        assert client.get("/api/documents/linked/file").status_code == 403
    unshared = TestClient(create_app(col.path))
    assert unshared.get("/api/info").json()["document_files"] is False
    refused = unshared.get("/api/documents/papers/paper.pdf%232/file")
    assert refused.status_code == 404 and "--document-root" in refused.json()["error"]["message"]
