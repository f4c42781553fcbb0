"""`retrievekit train`: a tiny BERT trained from the command line gives a folder `get_encoder`/`get_reranker` load;
bad --data fails clearly before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")

from training.tiny_models import tiny_bert, tiny_bi_encoder, train_examples

from retrievekit import Collection
from retrievekit.cli.main import main
from retrievekit.cli.training import load_data_spec
from retrievekit.core.document import Document
from retrievekit.core.errors import InputFormatError
from retrievekit.encoders import get_encoder
from retrievekit.training import TrainingSet
from retrievekit.training.data import TrainingExample

FAST = ["--batch-size", "4", "--learning-rate", "3e-3", "--seed", "0"]


@pytest.fixture(scope="module")
def col(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli_train") / "col"
    Collection.create(path).add([Document(id="d0", text="paris city")])
    return path


def _save(path: Path, records: list[dict[str, object]]) -> Path:
    return TrainingSet([TrainingExample.from_json(r) for r in records]).save(path)


def test_train_dense_writes_a_loadable_model_and_a_table(col: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    base = tiny_bi_encoder(tmp_path / "base")
    examples = train_examples()
    a, b = _save(tmp_path / "a.jsonl", examples[:24]), _save(tmp_path / "b.jsonl", examples[24:])
    out = tmp_path / "model"
    assert main(["train", "dense", str(col), "--data", f"{a}:1,{b}:1", "--out", str(out), "--base", str(base),
                 "--dev-fraction", "0.25", *FAST]) == 0
    table = capsys.readouterr().out
    for row in ("steps", "seconds", "final loss", "dev ndcg@10"):
        assert row in table
    card = json.loads((out / "model_card.json").read_text())
    assert card["data"]["examples"] + card["data"]["dev_examples"] == 36 and card["data"]["dev_examples"] > 0
    assert get_encoder(str(out)).encode(["capital of france"]).shape == (1, 32)
    # an existing folder is kept unless --overwrite or --resume
    assert main(["train", "dense", str(col), "--data", str(a), "--out", str(out), "--base", str(base), *FAST]) == 2
    assert "already exists" in capsys.readouterr().err


def test_train_reranker(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from retrievekit.retrieval.rerank import get_reranker

    data = _save(tmp_path / "d.jsonl", train_examples())
    out = tmp_path / "rr"
    assert main(["train", "reranker", str(col), "--data", str(data), "--out", str(out), "--base",
                 str(tiny_bert(tmp_path / "bert")), "--loss", "listwise", "--dev-fraction", "0", *FAST]) == 0
    assert "steps" in capsys.readouterr().out
    assert get_reranker(str(out)) is not None


@pytest.mark.parametrize(("spec", "message"), [
    ("{missing}", "no such training data file"),
    ("{good}:x", "is not a number"),
    ("{good}:-1", "must be a number >= 0"),
    ("{bad}", "bad.jsonl:2"),
    ("{empty}", "has no examples"),
])
def test_bad_data_fails_clearly_and_leaves_nothing(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   spec: str, message: str) -> None:
    good = _save(tmp_path / "good.jsonl", train_examples()[:4])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text().splitlines()[0] + "\n{not json\n")
    (tmp_path / "empty.jsonl").write_text("")
    paths = {name: tmp_path / f"{name}.jsonl" for name in ("missing", "good", "bad", "empty")}
    out = tmp_path / "model"
    assert main(["train", "dense", str(col), "--data", spec.format(**paths), "--out", str(out), *FAST]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "model.partial").exists()


def test_bad_loss_or_collection(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _save(tmp_path / "d.jsonl", train_examples()[:4])
    assert main(["train", "reranker", str(col), "--data", str(data), "--out", str(tmp_path / "m"),
                 "--loss", "mnrl"]) == 2
    assert "unknown --loss 'mnrl' for reranker" in capsys.readouterr().err
    assert main(["train", "dense", str(tmp_path / "nope"), "--data", str(data), "--out", str(tmp_path / "m")]) == 2
    assert "no such collection" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_data_spec_mixes_by_weight(tmp_path: Path) -> None:
    examples = train_examples()
    a, b = _save(tmp_path / "a.jsonl", examples[:12]), _save(tmp_path / "b.jsonl", examples[12:18])
    assert len(load_data_spec(str(a))) == 12
    assert len(load_data_spec(f"{a},{b}")) == 18
    mixed = load_data_spec(f"{a}:1,{b}:2", seed=1)
    assert len(mixed) == 18 and sum(e.query in {x["query"] for x in examples[12:18]} for e in mixed) == 12
    with pytest.raises(InputFormatError, match="empty file name"):
        load_data_spec(f"{a},")
