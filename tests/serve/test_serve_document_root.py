"""`retrievekit serve COLLECTION --document-root DIR` hands the folder to the server, which then serves the indexed
files (the web UI's page links, tests/serve/test_web_ui_documents.py); a folder that does not exist is refused."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("fastapi")

from retrievekit import Collection
from retrievekit.cli.main import main


def test_document_root_reaches_the_server_and_must_be_a_folder(tmp_path, monkeypatch, capsys):
    import retrievekit.serve.app as app

    col = Collection.create(tmp_path / "col")
    col.add([{"id": "d1", "text": "x"}])
    (tmp_path / "papers").mkdir()
    seen: dict[str, Any] = {}
    monkeypatch.setattr(app, "run", lambda collection, **options: seen.update(options, collection=collection))
    assert main(["serve", str(col.path), "--document-root", str(tmp_path / "papers"),
                 "--document-root", str(tmp_path)]) == 0
    assert seen["collection"] == str(col.path)
    assert seen["document_roots"] == [str(tmp_path / "papers"), str(tmp_path)]
    assert main(["serve", str(col.path), "--document-root", str(tmp_path / "missing")]) == 2
    assert f"--document-root '{tmp_path / 'missing'}' is not a folder" in capsys.readouterr().err
