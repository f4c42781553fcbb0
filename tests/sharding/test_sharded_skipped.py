"""A sharded ingest of a folder reports the files it left out, with their reasons, exactly as ``Collection.ingest``
does (``skipped``/``warnings`` in its summary), and ``index --shards N`` lists them as the plain ``index`` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2")
pytest.importorskip("fpdf")

from document_fixtures import make_pdf

from retrievekit import Collection
from retrievekit.cli.main import main
from retrievekit.sharding import ShardedCollection


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        (docs / f"good-{i}.pdf").write_bytes(make_pdf(2 + i % 2, title=f"Good paper {i}"))
    (docs / "notes.txt").write_text("plain notes about tenacious rivets", encoding="utf-8")
    (docs / "corrupt.pdf").write_bytes(make_pdf(3)[:700])  # truncated: the header is right, the rest is gone
    (docs / "empty.pdf").write_bytes(b"")
    (docs / "scan.pdf").write_bytes(make_pdf(2, blank_pages=(2,)))  # indexed; page 2 (no text, no image) reported
    return docs


def test_sharded_ingest_reports_skipped_files_like_a_plain_collection(folder, tmp_path):
    plain = Collection.create(tmp_path / "plain").ingest(folder, progress=False, workers=1)
    with ShardedCollection.create(tmp_path / "sharded", 2) as col:
        report = col.ingest(folder)
        assert len(col) == plain["documents"] == 6  # the good PDFs, the notes and the scan
    assert sorted(report["skipped"]) == sorted(plain["skipped"])
    assert sorted(report["warnings"]) == sorted(plain["warnings"])
    skipped = {Path(path).name: reason for path, reason in report["skipped"]}
    assert set(skipped) == {"corrupt.pdf", "empty.pdf"} and all(skipped.values())
    assert [Path(path).name for path, _ in report["warnings"]] == ["scan.pdf"]
    assert all(isinstance(row, list) and len(row) == 2 for row in report["skipped"] + report["warnings"])


def test_index_shards_lists_the_skipped_files(folder, tmp_path, capsys):
    target = tmp_path / "cli"
    assert main(["index", str(folder), str(target), "--shards", "3", "--no-progress"]) == 0
    out = capsys.readouterr()
    for name in ("corrupt.pdf", "empty.pdf"):
        assert f"skipped: {folder / name}: " in out.err
    assert "2 files skipped (listed above)" in out.out and "sharded collection" in out.out
    assert main(["index", str(folder), str(tmp_path / "json"), "--shards", "2", "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(Path(path).name for path, _ in summary["skipped"]) == ["corrupt.pdf", "empty.pdf"]
    assert summary["added"] == summary["documents"] == 6


def test_index_shards_takes_the_folder_options_of_the_plain_index(folder, tmp_path, capsys):
    assert main(["index", str(folder), str(tmp_path / "bounded"), "--shards", "2", "--max-pages", "2",
                 "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    reasons = {Path(path).name: reason for path, reason in summary["skipped"]}
    assert reasons["good-1.pdf"] == reasons["good-3.pdf"] == "3 pages (over max_pages 2)"
    assert summary["added"] == 4 and {"corrupt.pdf", "empty.pdf"} <= set(reasons)
    source = tmp_path / "docs.jsonl"
    source.write_text('{"id": "d1", "text": "x"}\n', encoding="utf-8")
    assert main(["index", str(source), str(tmp_path / "jsonl"), "--shards", "2", "--no-ocr"]) == 2
    assert "--no-ocr apply to a folder of files" in capsys.readouterr().err
    assert not (tmp_path / "jsonl").exists()  # refused before anything was created
