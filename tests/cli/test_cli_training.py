"""`retrievekit build-data` and `retrievekit mine-negatives` on a tiny collection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrievekit import Collection
from retrievekit.cli.main import main
from retrievekit.core.document import Document
from retrievekit.training import TrainingSet

TOPICS = ["solar panels", "river floods", "bread baking", "chess openings", "whale songs", "glacier melt",
          "bee colonies", "jazz chords", "rust compilers", "tea brewing", "moon phases", "desert plants"]


@pytest.fixture(scope="module")
def col(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli_training") / "col"
    Collection.create(path).add(
        Document(id=f"d{i}", title=t.title(), text=f"This note is about {t}. Experts study {t} every year. The "
                 f"history of {t} is old and rich. Many people enjoy reading about {t}.") for i, t in enumerate(TOPICS))
    return path


@pytest.mark.parametrize("source", ["ict", "crop", "title"])
def test_build_data_self_supervised(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    source: str) -> None:
    out = tmp_path / f"{source}.jsonl"
    assert main(["build-data", str(col), "--from", source, "--out", str(out), "--seed", "3"]) == 0
    assert f"wrote 12 examples to {out}" in capsys.readouterr().out
    data = TrainingSet.load(out)
    assert len(data) == 12 and {e.source for e in data} == {source}
    again = tmp_path / "again.jsonl"
    main(["build-data", str(col), "--from", source, "--out", str(again), "--seed", "3"])
    assert again.read_bytes() == out.read_bytes()


def test_build_data_from_qrels_and_mine(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qrels, queries = tmp_path / "qrels.txt", tmp_path / "queries.tsv"
    qrels.write_text("q1 0 d0 1\nq2 0 d7 1\nq2 0 d8 0\n")
    queries.write_text("q1\tsolar panels history\nq2\tjazz chords history\n")
    data = tmp_path / "train.jsonl"
    assert main(["build-data", str(col), "--from", f"qrels:{qrels}", "--queries", str(queries),
                 "--out", str(data)]) == 0
    assert [e.positive_id for e in TrainingSet.load(data)] == ["d0", "d7"]
    mined = tmp_path / "mined.jsonl"
    assert main(["mine-negatives", str(col), "--data", str(data), "--out", str(mined), "--per-query", "2",
                 "--margin", "0.1"]) == 0
    assert "mined: 4" in capsys.readouterr().out
    for line in mined.read_text().splitlines():
        e = json.loads(line)
        assert len(e["negatives"]) == 2 and e["positive_id"] not in e["negative_ids"]
        assert max(e["negative_scores"]) < 0.9 * e["positive_score"]


def test_build_data_from_a_beir_folder(col: Path, tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text('{"_id": "d0", "text": "x"}\n')
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "solar"}\n')
    (beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\n")
    out = tmp_path / "out.jsonl"
    assert main(["build-data", str(col), "--from", f"qrels:{beir}", "--out", str(out)]) == 0
    assert [e.query for e in TrainingSet.load(out)] == ["solar"]


def test_errors(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qrels, queries = tmp_path / "qrels.txt", tmp_path / "queries.tsv"
    qrels.write_text("q1 0 d0 1\nq1 0 nowhere 1\n")
    queries.write_text("q1\tsolar\n")
    out = tmp_path / "out.jsonl"
    args = ["build-data", str(col), "--from", f"qrels:{qrels}", "--queries", str(queries), "--out", str(out)]
    assert main(args) == 2
    assert "1 of the 2 judged documents are not in the collection: 'nowhere'" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written
    assert main([*args, "--skip-missing"]) == 0 and len(TrainingSet.load(out)) == 1
    assert main(["build-data", str(col), "--from", "magic", "--out", str(out)]) == 2
    assert "unknown --from 'magic'" in capsys.readouterr().err
    assert main(["build-data", str(col), "--from", f"qrels:{qrels}", "--out", str(out)]) == 2
    assert "pass --queries FILE" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "positive": "p"}\n{oops\n')
    assert main(["mine-negatives", str(col), "--data", str(bad), "--out", str(out)]) == 2
    assert f"{bad}:2: invalid JSON" in capsys.readouterr().err


def test_build_data_from_docstrings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = ('def area(width, height):\n    """Return the area of a rectangle from its sides."""\n'
            '    return width * height\n\n\ndef tiny():\n    """Tiny."""\n    return 0\n')
    go = '// Sum adds up all the numbers in a slice.\nfunc Sum(xs []int) int {\n\ttotal := 0\n\treturn total\n}\n'
    path = tmp_path / "code"
    Collection.create(path).add([Document(id="geometry.py", text=code, metadata={"path": "geometry.py"}),
                                 Document(id="sum.go", text=go, metadata={"path": "sum.go"}),
                                 Document(id="notes", text="Plain notes about nothing in particular.")])
    out = tmp_path / "docstrings.jsonl"
    assert main(["build-data", str(path), "--from", "docstring", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 2 examples to {out}" in printed and "too short: 1" in printed and "not code: 1" in printed
    data = TrainingSet.load(out)
    assert [(e.positive_id, e.query) for e in data] == [
        ("geometry.py#area", "Return the area of a rectangle from its sides."),
        ("sum.go#Sum", "Sum adds up all the numbers in a slice.")]
    assert data[0].positive == "def area(width, height):\n    return width * height"
    assert main(["build-data", str(path), "--from", "docstring", "--out", str(out), "--languages", "go",
                 "--min-doc-words", "10"]) == 0
    assert "wrote 0 examples" in capsys.readouterr().out
    assert main(["build-data", str(path), "--from", "docstring", "--out", str(out), "--languages", "cobol"]) == 2
    assert "unknown language(s) cobol" in capsys.readouterr().err
    assert main(["build-data", str(path), "--from", "ict", "--out", str(out), "--languages", "go"]) == 2
    assert "--languages applies to --from docstring only" in capsys.readouterr().err
