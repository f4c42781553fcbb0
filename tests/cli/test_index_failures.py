"""A failed first ``retrievekit index`` leaves nothing behind (no manifest.json + write.lock, no empty folder that
later answers every search with "no match"); a failure on an existing collection or folder removes nothing that was
there before (issue 12)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from retrievekit import Collection
from retrievekit.cli.main import main


def index(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["index", *args, "--no-progress"])
    return code, capsys.readouterr().err


def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_text('{"_id": "a", "text": "alpha"}\n{"_id": "b", "text": "beta"}\n')
    return path


def bad_json(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"_id": "a", "text": "alpha"}\n{"_id": "b", "text": \n')
    return path


def surrogate_late(tmp_path: Path) -> Path:
    """Fails inside the ingest, after the collection was created and the first batches read."""
    path = tmp_path / "late.jsonl"
    lines = [json.dumps({"_id": f"d{i}", "text": f"doc {i}"}) for i in range(3000)]
    lines[2500] = '{"_id": "x", "text": "\\ud800"}'
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("make_source, extra, expect", [
    (bad_json, [], r"bad\.jsonl:2: malformed JSON"),
    (surrogate_late, ["--workers", "1"], r"late\.jsonl:2501: text contains a lone surrogate"),
    (surrogate_late, ["--workers", "2"], r"late\.jsonl:2501: text contains a lone surrogate"),
    (lambda p: p / "missing.jsonl", [], r"no such file or folder"),
    (lambda p: good(p).rename(p / "docs.unknown"), [], r"format"),
    (good, ["--format", "csv"], r"header|id column"),
    (good, ["--passages", "nonsense"], r"nonsense"),
])
def test_a_failed_first_index_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             make_source: Callable[[Path], Path], extra: list[str],
                                             expect: str) -> None:
    source = make_source(tmp_path)
    target = tmp_path / "new" / "parents" / "col"
    code, err = index(capsys, str(source), str(target), *extra)
    assert code == 2 and "Traceback" not in err
    assert re.search(expect, err), err
    assert not (tmp_path / "new").exists()


def test_an_existing_empty_folder_is_kept_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "col"
    target.mkdir()
    code, _ = index(capsys, str(bad_json(tmp_path)), str(target))
    assert code == 2 and target.is_dir() and list(target.iterdir()) == []


def test_an_existing_collection_is_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "col"
    assert index(capsys, str(good(tmp_path)), str(target))[0] == 0
    before = sorted(p.name for p in target.iterdir())
    code, err = index(capsys, str(surrogate_late(tmp_path)), str(target), "--workers", "2")
    assert code == 2 and "late.jsonl:2501" in err
    assert sorted(p.name for p in target.iterdir()) == before
    col = Collection(target)
    assert len(col) == 2 and [h[0] for h in col.search("alpha").hits(0)] == ["a"]
    assert index(capsys, str(good(tmp_path)), str(target))[0] == 0  # no lock was left behind


def test_a_successful_first_index_keeps_the_collection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "new" / "col"
    assert index(capsys, str(good(tmp_path)), str(target))[0] == 0
    assert len(Collection(target)) == 2
