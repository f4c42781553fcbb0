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


def test_train_reranker_tunes_its_blend_with_a_first_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training.tiny_models import PAIRS, doc

    from retrievekit.retrieval.rerank import get_reranker

    col = tmp_path / "cities"
    Collection.create(col).add([Document(id=city, text=doc(city)) for _, city in PAIRS])
    cities = {doc(city): city for _, city in PAIRS}
    records = [{**e, "positive_id": cities[str(e["positive"])], "query_id": f"q{i}"}
               for i, e in enumerate(train_examples())]
    data = _save(tmp_path / "d.jsonl", records)
    base = str(tiny_bert(tmp_path / "bert"))
    out = tmp_path / "rr"
    assert main(["train", "reranker", str(col), "--data", str(data), "--out", str(out), "--base", base,
                 "--dev-fraction", "0.34", "--tune-blend", "bm25", "--tune-depth", "12", *FAST]) == 0
    captured = capsys.readouterr()
    assert "rerank blend" in captured.out and "blend with bm25" in captured.err
    card = json.loads((out / "model_card.json").read_text())
    assert card["blend_tuning"]["queries"] == card["data"]["dev_examples"] > 0
    assert card["blend_tuning"]["depth"] == 12 and get_reranker(str(out)).blend == card["rerank_blend"]
    # nothing held out to tune on, or a dense model: refused before training
    for kind, flags, message in (("reranker", ["--dev-fraction", "0"], "--tune-blend needs held-out examples"),
                                 ("dense", [], "--tune-blend is for reranker training")):
        assert main(["train", kind, str(col), "--data", str(data), "--out", str(tmp_path / "m"), "--base", base,
                     "--tune-blend", "bm25", *flags, *FAST]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "m").exists()


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


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny reranker with a wide initialisation, so its scores spread (the default one scores all pairs alike)."""
    from retrievekit.training.reranker_training import train_reranker

    folder = tmp_path_factory.mktemp("cli_teacher")
    return train_reranker(str(tiny_bert(folder / "bert", init_range=0.5)), train_examples(2)[:12], folder / "rr",
                          epochs=1, batch_size=8, learning_rate=3e-3, progress=False, seed=0)


def test_short_negatives(col: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tiny_bi_encoder(tmp_path / "base")
    examples = train_examples()
    examples[5] = {**examples[5], "negatives": []}
    data = _save(tmp_path / "short.jsonl", examples)
    out = tmp_path / "model"
    args = ["train", "dense", str(col), "--data", str(data), "--out", str(out), "--base", str(base),
            "--dev-fraction", "0", *FAST]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"1 of 36 examples have fewer than 2 negatives (the first: {data}:6)" in err and "--short-negatives" in err
    assert not out.exists() and not (tmp_path / "model.partial").exists()
    assert main([*args, "--max-negatives", "0"]) == 0  # in-batch negatives only: nothing is short
    assert json.loads((out / "model_card.json").read_text())["data"]["negatives_per_example"] == 0
    assert main([*args, "--short-negatives", "drop", "--loss", "decoupled", "--overwrite"]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["data"]["dropped_short"] == 1 and card["data"]["examples"] == 35
    assert card["recipe"]["loss"] == "decoupled" and card["recipe"]["short_negatives"] == "drop"
    assert main(["train", "reranker", str(col), "--data", str(data), "--out", str(tmp_path / "rr"),
                 "--short-negatives", "pad"]) == 2
    assert "--short-negatives is for dense training" in capsys.readouterr().err


def test_score_teacher_then_margin_mse(col: Path, teacher: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = _save(tmp_path / "d.jsonl", train_examples(2))
    scored = tmp_path / "scored.jsonl"
    assert main(["score-teacher", "--data", str(data), "--teacher", str(teacher), "--out", str(scored),
                 "--no-progress"]) == 0
    assert f"wrote 36 examples to {scored} (examples: 36, pairs scored: 108" in capsys.readouterr().out
    assert all(e.teacher_scores is not None and len(e.teacher_scores) == 3 for e in TrainingSet.load(scored))
    out = tmp_path / "student"
    assert main(["train", "dense", str(col), "--data", str(scored), "--out", str(out), "--loss", "margin-mse",
                 "--base", str(tiny_bi_encoder(tmp_path / "base")), "--dev-fraction", "0", "--epochs", "2",
                 *FAST]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["recipe"]["loss"] == "margin-mse" and card["loss_curve"][-1] < card["loss_curve"][0]
    # unscored data cannot train margin-mse; a missing teacher fails clearly and writes nothing
    assert main(["train", "dense", str(col), "--data", str(data), "--out", str(tmp_path / "x"), "--loss",
                 "margin-mse", *FAST]) == 2
    assert "no teacher scores" in capsys.readouterr().err
    assert main(["score-teacher", "--data", str(data), "--teacher", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "y.jsonl")]) == 2
    assert "cannot load the cross-encoder" in capsys.readouterr().err and not (tmp_path / "y.jsonl").exists()


def test_mine_negatives_with_a_judge(teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training.tiny_models import PAIRS, doc

    col = tmp_path / "cities"
    Collection.create(col).add([{"id": city, "text": doc(city)} for _, city in PAIRS])
    data = _save(tmp_path / "d.jsonl", [{"query": "the capital city of peru", "positive": doc("lima"),
                                         "positive_id": "lima"}])
    common = ["mine-negatives", str(col), "--data", str(data), "--per-query", "11", "--margin", "-1"]
    assert main([*common, "--out", str(tmp_path / "all.jsonl"), "--judge", str(teacher),
                 "--judge-threshold", "1e9"]) == 0
    printed = capsys.readouterr().out
    assert "mined: 11" in printed and "dropped judge: 0" in printed
    assert main([*common, "--out", str(tmp_path / "none.jsonl"), "--judge", str(teacher),
                 "--judge-threshold=-1e9"]) == 0
    printed = capsys.readouterr().out
    assert "mined: 0" in printed and "dropped judge: 11" in printed
    assert TrainingSet.load(tmp_path / "none.jsonl")[0].negatives == []
    assert main([*common, "--out", str(tmp_path / "bad.jsonl"), "--judge", str(teacher)]) == 2
    assert "--judge and --judge-threshold go together" in capsys.readouterr().err
