"""Incremental folder indexing (retrievekit.folder_index): a re-run parses only new and changed files, removes
what is gone, leaves other sources alone, and ends with exactly what a fresh index of the folder holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("docx")
pytest.importorskip("fpdf")

from document_fixtures import make_docx, make_email, make_mbox, make_pdf

from retrievekit import Collection
from retrievekit.cli.main import main


def stored(col: Collection) -> dict[str, tuple[str, str, dict]]:
    """id -> (title, text, metadata without the folder stamp, which names the folder read)."""
    return {d.id: (d.title, d.text, {k: v for k, v in d.metadata.items() if k != "folder"})
            for d in col.iter_documents()}


def fill(folder: Path) -> None:
    folder.mkdir()
    (folder / "paper.pdf").write_bytes(make_pdf(3))
    (folder / "report.docx").write_bytes(make_docx())
    (folder / "notes.txt").write_text("Rivets hold the girders.\n")
    make_mbox(folder / "list.mbox", [("one", "first cable"), ("two", "second cable"), ("three", "third cable")])


@pytest.mark.parametrize("passages", [None, "sentences:24"])
def test_a_rerun_parses_only_what_changed_and_ends_equal_to_a_fresh_index(tmp_path, passages):
    folder = tmp_path / "docs"
    fill(folder)
    col = Collection.create(tmp_path / "col", passages=passages)
    first = col.ingest(folder, incremental=True, progress=False, workers=1)
    assert first["files"]["added"] == 4 and first["documents"] == 6  # 1 + 1 + 1 + 3 messages

    again = col.ingest(folder, incremental=True, progress=False, workers=1)
    assert again["files"] == {"seen": 4, "added": 0, "updated": 0, "unchanged": 4, "deleted": 0,
                              "entries_deleted": 0}
    assert again["documents"] == 0 and again["generation"] == first["generation"]  # nothing committed

    (folder / "notes.txt").unlink()
    (folder / "report.docx").write_bytes((folder / "report.docx").read_bytes())  # rewritten, same bytes
    (folder / "list.mbox").unlink()
    make_mbox(folder / "list.mbox", [("one", "first cable"), ("two", "second cable, repainted")])
    (folder / "paper.pdf").write_bytes(make_pdf(4))
    (folder / "inspection.eml").write_bytes(make_email())
    third = col.ingest(folder, incremental=True, progress=False, workers=1)
    assert third["files"]["added"] == 1 and third["files"]["updated"] == 2 and third["files"]["deleted"] == 1
    assert third["files"]["unchanged"] == 1
    assert third["documents"] == 1 + 2 + 1  # the new e-mail, the two messages, the PDF

    fresh = Collection.create(tmp_path / "fresh", passages=passages)
    fresh.ingest(folder, incremental=True, progress=False, workers=1)
    assert stored(col) == stored(fresh)
    assert "notes.txt" not in {d.metadata.get("passage_of", d.id) for d in col.iter_documents()}
    assert not any(d.id.startswith("list.mbox#3") for d in col.iter_documents())
    hits = col.search(["repainted"], k=1, mode="bm25").hits(0)
    assert hits and hits[0][0].startswith("list.mbox#2")


def test_other_folders_and_other_sources_are_left_alone(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    fill(one)
    two.mkdir()
    (two / "other.txt").write_text("A different folder about ferries.\n")
    col = Collection.create(tmp_path / "col")
    col.add([{"id": "manual", "text": "Added by hand, not from a folder."}])
    col.ingest(one, incremental=True, progress=False, workers=1)
    col.ingest(two, incremental=True, progress=False, workers=1)
    shutil.rmtree(one)
    one.mkdir()
    (one / "notes.txt").write_text("Only this file is left.\n")
    report = col.ingest(one, incremental=True, progress=False, workers=1)
    assert report["files"]["deleted"] == 3 and report["files"]["updated"] == 1
    assert {d.id for d in col.iter_documents()} == {"manual", "other.txt", "notes.txt"}


def test_a_file_that_became_unreadable_loses_its_documents_with_the_reason(tmp_path):
    folder = tmp_path / "docs"
    fill(folder)
    col = Collection.create(tmp_path / "col")
    col.ingest(folder, incremental=True, progress=False, workers=1)
    (folder / "paper.pdf").write_bytes(make_pdf(3, password="now-locked"))
    report = col.ingest(folder, incremental=True, progress=False, workers=1)
    assert [(Path(p).name, r) for p, r in report["skipped"]] == [("paper.pdf", "encrypted PDF (needs a password)")]
    assert report["files"]["deleted"] == 1 and col.get("paper.pdf") is None


def test_cli_incremental_reindex(tmp_path, capsys):
    folder = tmp_path / "docs"
    fill(folder)
    args = ["index", str(folder), str(tmp_path / "col"), "--incremental", "--no-progress", "--workers", "1"]
    assert main(args) == 0
    capsys.readouterr()
    (folder / "notes.txt").unlink()
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"]["deleted"] == 1 and summary["files"]["unchanged"] == 3
    assert summary["documents"] == 5
