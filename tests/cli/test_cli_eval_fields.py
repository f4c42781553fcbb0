"""``retrievekit eval --field-weights``: multi-field BM25 in the evaluation, on a new and on a reused collection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrievekit import Collection
from retrievekit.cli.main import main


def beir(root: Path) -> Path:
    docs = [{"_id": "a", "title": "ParseConfig", "text": "def run(path): return load(path)",
             "signature": "def run(path)"},
            {"_id": "b", "title": "load", "text": "def load(path): parse config, parse config, parse the config",
             "signature": "def load(path)"},
            {"_id": "c", "title": "render", "text": "def render(page): draw the page", "signature": "def render(page)"}]
    root.mkdir()
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "parse config"}) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t1\n")
    return root


def evaluate(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(["eval", *args, "--analyzer", "code", "--metrics", "mrr@10", "--json", "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_with_field_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = beir(tmp_path / "data")
    joined = evaluate(capsys, str(data))
    assert joined["field_weights"] is None and "field_weights" not in joined["config"]
    weighted = evaluate(capsys, str(data), "--field-weights", "title=3,text=1")
    assert weighted["field_weights"] == {"title": 3.0, "text": 1.0}
    assert weighted["config"]["field_weights"] == {"title": 3.0, "text": 1.0}
    assert weighted["mrr@10"] == 1.0 and joined["mrr@10"] < 1.0  # joined, b's body outweighs a's title

    kept = tmp_path / "col"
    evaluate(capsys, str(data), "--collection", str(kept), "--field-weights", "title=3,signature=1,text=1")
    assert Collection(kept).settings.bm25.field_weights == {"title": 3.0, "signature": 1.0, "text": 1.0}
    reused = evaluate(capsys, str(data), "--collection", str(kept), "--field-weights", "title=3,text=1")
    assert reused["index_reused"] and reused["mrr@10"] == weighted["mrr@10"]
    assert evaluate(capsys, str(data), "--collection", str(kept), "--field-weights", "none")["mrr@10"] == \
        joined["mrr@10"]
