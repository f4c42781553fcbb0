"""Readers validate every record where they read it: a record that cannot be stored (lone surrogate, CR/LF/NUL in
the id, a 5,000-digit number, NaN, metadata nested too deep) is an ``InputFormatError`` naming the file and line —
not a raw traceback, and not "item 499" (its position in a batch) — in the one-process and the parallel ingest
(issue 12: D2, D3, D4)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from retrievekit import Collection
from retrievekit.core.document import MAX_METADATA_DEPTH
from retrievekit.core.errors import InputFormatError
from retrievekit.ingest import read_beir, read_delimited, read_documents, read_files, read_jsonl


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def jsonl_with(tmp_path: Path, bad_line: str, line: int = 2500, name: str = "c.jsonl") -> Path:
    """A JSONL file of good records with ``bad_line`` (raw JSON text) as line ``line``."""
    lines = [json.dumps({"_id": f"d{i}", "text": f"document {i}"}) for i in range(1, line + 3)]
    lines[line - 1] = bad_line
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


BAD_RECORDS = [
    ('{"_id": "x", "text": "ok", "score": NaN}', r"metadata field 'score' is nan"),
    ('{"_id": "x", "metadata": {"w": [Infinity]}}', r"metadata field 'w\[0\]' is inf"),
    ('{"_id": "x\\ud800", "text": "t"}', r"document id contains a lone surrogate '\\ud800'"),
    ('{"_id": "x", "text": "bad \\udc80 text"}', r"text contains a lone surrogate '\\udc80' at character 4"),
    ('{"_id": "x", "title": "\\ud800"}', r"title contains a lone surrogate"),
    ('{"_id": "x", "tags": {"k": ["\\udfff"]}}', r"metadata field 'tags\.k\[0\]' contains a lone surrogate"),
    ('{"_id": "x\\r"}', r"document id 'x\\r' contains a line break \(CR/LF\) or NUL"),
    ('{"_id": "x\\ny"}', r"contains a line break"),
    ('{"_id": "x\\u0000y"}', r"or NUL character"),
    ('{"_id": ' + "7" * 5000 + "}", r"a number has more than 4,300 digits.*write such a value as a string"),
    ('{"_id": "x", "n": ' + "7" * 5000 + "}", r"more than 4,300 digits"),
    (json.dumps({"_id": "x", "m": deep(MAX_METADATA_DEPTH + 1)}), r"nests lists/objects more than 32 levels deep"),
    (json.dumps({"_id": "x", "m": deep(900)}), r"nests lists/objects more than 32 levels deep"),
]


@pytest.mark.parametrize("bad, expect", BAD_RECORDS)
def test_jsonl_names_file_and_line(tmp_path: Path, bad: str, expect: str) -> None:
    path = jsonl_with(tmp_path, bad)
    with pytest.raises(InputFormatError, match=expect) as info:
        list(read_jsonl(path))
    assert (info.value.path, info.value.line) == (str(path), 2500)
    assert str(info.value).startswith(f"{path}:2500: ")


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("bad, expect", [BAD_RECORDS[0], BAD_RECORDS[3], BAD_RECORDS[6], BAD_RECORDS[9],
                                         BAD_RECORDS[12]])
def test_ingest_names_file_and_line_and_commits_nothing(tmp_path: Path, bad: str, expect: str, workers: int) -> None:
    """Through Collection.ingest, one process or several (batches of 1,000: line 2,500 used to be "item 499")."""
    path = jsonl_with(tmp_path, bad)
    col = Collection.create(tmp_path / "col")
    col.add([{"id": "before", "text": "committed earlier"}])
    with pytest.raises(InputFormatError, match=expect) as info:
        col.ingest(path, progress=False, workers=workers)
    assert info.value.line == 2500 and "item" not in str(info.value)
    assert len(col) == 1 and "before" in col
    col.add([{"id": "after"}])  # the lock was released


def test_numeric_titles_are_text_and_true_is_not(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"_id": "a", "title": 0, "text": 12}\n{"_id": "b", "title": true}\n')
    docs = read_jsonl(path)
    first = next(docs)
    assert (first.title, first.text) == ("0", "12")
    with pytest.raises(InputFormatError, match=r"t\.jsonl:2: field 'title' must be a string, got bool"):
        next(docs)


def test_beir_names_the_corpus_line(tmp_path: Path) -> None:
    folder = tmp_path / "beir"
    folder.mkdir()
    jsonl_with(folder, '{"_id": "x", "text": "\\ud800"}', line=3, name="corpus.jsonl")
    with pytest.raises(InputFormatError, match=r"corpus\.jsonl:3: text contains a lone surrogate"):
        list(read_beir(folder))


def test_csv_id_with_a_line_break_names_the_record_line(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,text\na,first\n"b\nc",second\n', encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"c\.csv:3: document id 'b\\nc' contains a line break"):
        list(read_delimited(path))


@pytest.mark.skipif(sys.platform != "linux", reason="file names of arbitrary bytes are a POSIX thing")
def test_files_whose_names_cannot_be_ids_are_named(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "good.txt").write_text("fine")
    bad = os.path.join(os.fsencode(root), b"bad\xff.txt")
    try:
        with open(bad, "wb") as f:
            f.write(b"text")
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    with pytest.raises(InputFormatError, match=r"bad.*\.txt: document id contains a lone surrogate"):
        list(read_files(root))


def test_read_documents_validates_too(tmp_path: Path) -> None:
    path = jsonl_with(tmp_path, '{"_id": "x", "v": NaN}', line=2)
    with pytest.raises(InputFormatError, match=r"c\.jsonl:2: metadata field 'v' is nan"):
        list(read_documents(path))
