"""``retrievekit index --code REPOSITORY COLLECTION``: the report (with skipped files and why), incremental runs,
the code analyzer, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tree_sitter", reason="needs retrievekit[code]")

from retrievekit import Collection
from retrievekit.cli.main import main


def repo(root: Path) -> Path:
    files: dict[str, str | bytes] = {
        "src/http_client.py": 'class HttpClient:\n    """Talks HTTP."""\n\n    def getRetryPolicy(self):\n'
                              "        return self.retry_policy\n",
        "src/util.js": "// Joins paths.\nfunction joinPaths(a, b) {\n  return a + '/' + b;\n}\n",
        "broken.py": "def broken(:\n    pass\n",
        "image.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        "vendor/lib.go": "package lib\n",
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["index", "--code", *args, "--no-progress", "--no-git"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_index_code_prints_the_report_and_reindexes_incrementally(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    source = repo(tmp_path / "repo")
    col = tmp_path / "col"
    code, out, err = run(capsys, str(source), str(col))
    assert code == 0 and err == ""
    assert "3 files (3 added, 0 updated, 0 unchanged, 0 renamed), 0 deleted" in out
    assert "symbols: 4 indexed (4 added," in out
    assert "skipped 2:\n  binary: 1 (image.png)\n  vendored: 1 (vendor/)\n" in out
    assert "warnings: 1\n  broken.py:1: syntax error" in out
    assert Collection(col).info()["analyzer"]["name"] == "code"
    hits = Collection(col).search("retry policy", k=1)  # camelCase split by the code analyzer
    assert hits.hits(0)[0][0] == "src/http_client.py#HttpClient.getRetryPolicy"

    (source / "src/util.js").write_text("// Joins paths.\nfunction joinPaths(a, b) {\n  return a + b;\n}\n")
    code, out, _ = run(capsys, str(source), str(col), "--json")
    report = json.loads(out)
    assert code == 0 and report["collection"] == str(col)
    assert (report["files_updated"], report["files_unchanged"], report["symbols_updated"]) == (1, 2, 1)
    assert report["skipped"] == {"binary": 1, "vendored": 1} and report["documents"] == 4


def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = repo(tmp_path / "repo")
    code, _, err = run(capsys, str(source / "src/util.js"), str(tmp_path / "col"))
    assert code == 2 and "util.js: code indexing reads a folder or repository, but this is a file" in err
    code, _, err = run(capsys, str(tmp_path / "missing"), str(tmp_path / "col"))
    assert code == 2 and "no such file or folder" in err
    code, _, err = run(capsys, str(source), str(tmp_path / "col"), "--passages", "sentences")
    assert code == 2 and "--passages is for documents, not --code" in err
    assert not (tmp_path / "col").exists()  # nothing was created


def test_the_command_line_entry_point(tmp_path: Path) -> None:
    source = repo(tmp_path / "repo")
    proc = subprocess.run([sys.executable, "-m", "retrievekit", "index", "--code", str(source), str(tmp_path / "col"),
                           "--no-progress", "--no-git", "--json"], capture_output=True, text=True, timeout=300,
                          env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files_added"] == 3
