"""Bi-encoder training on a tiny BERT built here: the loss falls, the model learns a toy task it cannot do untrained,
checkpoints resume, the folder loads everywhere a model name does, and bad input fails clearly before any training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")

from tiny_models import DOC_TEMPLATE, PAIRS, doc, encoder_held_out_recall, held_out, tiny_bi_encoder, train_examples

from retrievekit.encoders import get_encoder
from retrievekit.training._deps import TrainingError, read_card
from retrievekit.training.encoder_training import train_encoder

FAST = {"batch_size": 4, "learning_rate": 3e-3, "progress": False, "seed": 0}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bi_encoder(tmp_path_factory.mktemp("tiny") / "bi-encoder")


@pytest.fixture(scope="module")
def trained(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_encoder(str(base), train_examples(), tmp_path_factory.mktemp("out") / "model", epochs=3,
                         dev=train_examples()[:12], **FAST)


def test_loss_falls_and_trained_model_beats_its_untrained_self(base: Path, trained: Path) -> None:
    card = read_card(trained)
    losses = card["loss_curve"]
    third = len(losses) // 3
    assert np.mean(losses[-third:]) < np.mean(losses[:third]) - 0.2, losses
    before, after = encoder_held_out_recall(base), encoder_held_out_recall(trained)
    assert before <= 0.25 and after >= 0.5, (before, after)  # 12 held-out queries: chance is 1/12


def test_model_card_and_folder(trained: Path) -> None:
    card = read_card(trained)
    assert card["base_model"].endswith("bi-encoder") and card["recipe"]["loss"] == "mnrl"
    assert card["data"] == {"examples": 36, "pairs": 36, "negatives_per_example": 2, "dev_examples": 12}
    assert card["global_step"] == 27 and card["epochs_done"] == 3.0
    assert set(card["metrics"]) >= {"recall@1", "mrr@10", "ndcg@10"}
    assert "| recall@1 |" in (trained / "MODEL_CARD.md").read_text()
    assert (trained / "checkpoints" / "checkpoint-27").is_dir()
    assert not trained.with_name("model.partial").exists()


def test_trained_folder_serves_a_dense_collection(trained: Path, tmp_path: Path) -> None:
    from retrievekit.collection import Collection

    queries, _ = held_out()
    documents = [{"id": city, "text": doc(city)} for _, city in PAIRS]
    created = Collection.create(tmp_path / "c", dense=str(trained))
    created.add(documents)
    later = Collection.create(tmp_path / "later")  # a dense index added to a collection that has documents
    later.add(documents)
    later.add_dense_index(str(trained), progress=False)
    for c in (created, later):
        hits = c.search(queries, k=1, mode="dense")
        found = sum(hits.hits(i)[0][0] == city for i, (_, city) in enumerate(PAIRS))
        assert found >= 6, found  # as good as the encoder alone


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_trained_folder_runs_as_onnx(trained: Path, backend: str) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    queries, documents = held_out()
    texts = queries + documents + [e["query"] for e in train_examples()[:12]]  # type: ignore[misc]
    torch_vectors = get_encoder(str(trained)).encode(texts)
    exported = get_encoder(f"{backend}:{trained}")
    assert exported.spec()["backend"] == backend and exported.dim == 32
    onnx_vectors = exported.encode(texts)
    cosine = (torch_vectors * onnx_vectors).sum(axis=1) / (
        np.linalg.norm(torch_vectors, axis=1) * np.linalg.norm(onnx_vectors, axis=1))
    assert cosine.min() > (0.99 if backend == "onnx" else 0.98), cosine.min()
    q, d = len(queries), len(documents)
    torch_rank = np.argsort(-(torch_vectors[:q] @ torch_vectors[q:q + d].T), axis=1)[:, :3]
    onnx_rank = np.argsort(-(onnx_vectors[:q] @ onnx_vectors[q:q + d].T), axis=1)[:, :3]
    assert (torch_rank[:, 0] == onnx_rank[:, 0]).mean() >= (1.0 if backend == "onnx" else 0.9)


def test_resume_continues_the_step_count(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    train_encoder(str(base), train_examples(), out, epochs=1, **FAST)
    assert read_card(out)["global_step"] == 9
    with pytest.raises(TrainingError, match="already exists"):
        train_encoder(str(base), train_examples(), out, epochs=1, **FAST)
    train_encoder(str(base), train_examples(), out, epochs=2, resume=True, **FAST)
    card = read_card(out)
    assert card["global_step"] == 18 and card["resumed_from"] == "checkpoint-9"
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("checkpoint")] == ["checkpoint-18"]


def test_same_seed_same_model_and_the_other_losses(base: Path, tmp_path: Path) -> None:
    text = ["capital of peru"]
    a = train_encoder(str(base), train_examples(), tmp_path / "a", epochs=1, **FAST)
    b = train_encoder(str(base), train_examples(), tmp_path / "b", epochs=1, **FAST)
    np.testing.assert_array_equal(get_encoder(str(a)).encode(text), get_encoder(str(b)).encode(text))

    cached = train_encoder(str(base), train_examples(), tmp_path / "cached", loss="cached-mnrl", epochs=1,
                           mini_batch_size=2, matryoshka_dims=[32, 16], **FAST)
    assert read_card(cached)["recipe"]["mini_batch_size"] == 2
    assert get_encoder(str(cached)).dim == 32
    from retrievekit.training.data import TrainingExample, TrainingSet

    scored = TrainingSet(TrainingExample(str(e["query"]), str(e["positive"]), negatives=list(e["negatives"]),
                                         teacher_scores=[5.0, 1.0, 0.5]) for e in train_examples())
    mse = train_encoder(str(base), scored, tmp_path / "mse", loss="margin-mse", epochs=1, temperature=0.1,
                        dev=scored[:6], **FAST)
    assert read_card(mse)["recipe"]["loss"] == "margin-mse" and "mrr@10" in read_card(mse)["metrics"]


class Record:  # examples may be objects with attributes (e.g. a TrainingExample), not only dicts
    def __init__(self, query: str, positive: str, negatives: list[str]) -> None:
        self.query, self.positive, self.negatives, self.scores = query, positive, negatives, None


@pytest.mark.parametrize(("examples", "options", "message"), [
    ([], {}, "no examples to train on"),
    ([{"query": "q", "positive": "p"}, {"query": "q2", "positive": ""}], {}, r"examples\[1\].*no positive"),
    ([Record("", "p", [])], {}, r"examples\[0\] has no query"),
    ([{"query": "q", "positive": "p", "negatives": "n"}], {}, "negatives must be a list"),
    ([{"query": "q", "positive": "p", "negatives": ["n"], "scores": [1.0]}], {}, "1 scores for 1 positive and 1"),
    ([{"query": "q", "positive": "p", "negatives": ["n"]}], {"loss": "margin-mse"}, "no teacher scores"),
    ([{"query": "q", "positive": "p"}], {"loss": "triplet"}, "unknown encoder loss 'triplet'"),
    ([{"query": "q", "positive": "p"}], {"batch_size": 0}, "batch_size must be > 0"),
    ([{"query": "q", "positive": "p"}], {"matryoshka_dims": [64]}, r"matryoshka_dims \[64\] outside 1..32"),
])
def test_bad_input_fails_clearly_and_writes_nothing(base: Path, tmp_path: Path, examples: list, options: dict,
                                                    message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        train_encoder(str(base), examples, tmp_path / "m", **{**FAST, **options})
    assert list(tmp_path.iterdir()) == []


def test_out_of_memory_becomes_advice(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentence_transformers import SentenceTransformerTrainer

    def oom(self, **_):  # type: ignore[no-untyped-def]
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(SentenceTransformerTrainer, "train", oom)
    with pytest.raises(TrainingError, match="batch_size=4.*cached-mnrl") as info:
        train_encoder(str(base), train_examples(), tmp_path / "m", **FAST)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert not (tmp_path / "m").exists()  # only the work folder, which the next run clears or resumes


def test_card_is_json_beside_the_weights(trained: Path) -> None:
    assert json.loads((trained / "model_card.json").read_text())["kind"] == "dense encoder"
    assert DOC_TEMPLATE.format("x") == doc("x")


def short_examples() -> list[dict[str, object]]:
    """The toy examples with two negatives, except examples[3] (none) and examples[7] (one)."""
    examples = train_examples()
    examples[3] = {**examples[3], "negatives": []}
    examples[7] = {**examples[7], "negatives": list(examples[7]["negatives"])[:1]}  # type: ignore[call-overload]
    return examples


def test_short_negatives_error_names_them_before_training(base: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"2 of 36 examples have fewer than 2 negatives \(the first is "
                                            r"examples\[3\], query 'capital of spain', with 0\).*'drop'.*'pad'"):
        train_encoder(str(base), short_examples(), tmp_path / "m", **FAST)
    assert list(tmp_path.iterdir()) == []
    # max_negatives=1 makes examples[7] whole; examples[3] is still short
    with pytest.raises(TrainingError, match=r"1 of 36 examples have fewer than 1 negatives"):
        train_encoder(str(base), short_examples(), tmp_path / "m", max_negatives=1, **FAST)
    with pytest.raises(TrainingError, match="unknown short_negatives 'skip'"):
        train_encoder(str(base), short_examples(), tmp_path / "m", short_negatives="skip", **FAST)  # type: ignore[arg-type]


def test_short_negatives_drop_and_pad_keep_the_hard_negatives(base: Path, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="retrievekit.training.encoder_training"):
        dropped = train_encoder(str(base), short_examples(), tmp_path / "drop", short_negatives="drop", epochs=1,
                                **FAST)
    assert "dropping 2 of 36 examples with fewer than 2 negatives" in caplog.text
    card = read_card(dropped)
    assert card["data"] == {"examples": 34, "pairs": 34, "negatives_per_example": 2, "dev_examples": 0,
                            "dropped_short": 2}
    assert card["recipe"]["short_negatives"] == "drop" and "dropped short: 2" in (dropped / "MODEL_CARD.md").read_text()
    padded = read_card(train_encoder(str(base), short_examples(), tmp_path / "pad", short_negatives="pad", epochs=1,
                                     **FAST))
    assert padded["data"] == {"examples": 36, "pairs": 36, "negatives_per_example": 2, "dev_examples": 0,
                              "padded_examples": 2, "padded_negatives": 3}


def test_padding_draws_other_examples_negatives_under_the_seed() -> None:
    from retrievekit.training._deps import normalise_examples
    from retrievekit.training.encoder_training import even_negatives

    records = normalise_examples(short_examples())
    padded, k, notes = even_negatives(records, None, "pad", seed=1)
    assert k == 2 and notes == {"padded_examples": 2, "padded_negatives": 3}
    assert all(len(r.negatives) == 2 for r in padded)
    assert padded[7].negatives[0] == records[7].negatives[0]  # its own negative stays first
    pool = {n for r in records for n in r.negatives}
    positives_of = {r.positive for r in records if r.query == records[3].query}
    for i in (3, 7):
        assert set(padded[i].negatives) <= pool and len(set(padded[i].negatives)) == 2
        assert not set(padded[i].negatives) & positives_of and padded[i].positive not in padded[i].negatives
    assert [r.negatives for r in padded] == [r.negatives for r in even_negatives(records, None, "pad", seed=1)[0]]
    draws = {even_negatives(records, None, "pad", seed=s)[0][3].negatives for s in range(8)}
    assert len(draws) > 1  # the seed chooses the draw
    untouched = [i for i in range(len(records)) if i not in (3, 7)]
    assert all(padded[i] == records[i] for i in untouched)
    # the longest example sets k; max_negatives caps it and trims longer ones to their first (hardest) negatives
    trimmed, k, notes = even_negatives(records, 1, "drop")
    assert k == 1 and notes == {"dropped_short": 1} and all(len(r.negatives) == 1 for r in trimmed)
    assert even_negatives(records, 0, "error")[1:] == (0, {})  # in-batch negatives only: nothing is short


def test_short_negatives_with_teacher_scores() -> None:
    from retrievekit.training._deps import normalise_examples
    from retrievekit.training.encoder_training import even_negatives

    scored = normalise_examples([
        {"query": "q1", "positive": "p1", "negatives": ["a", "b"], "scores": [3.0, 1.0, 0.5]},
        {"query": "q2", "positive": "p2", "negatives": ["c"], "scores": [2.0, 1.5]}])
    with pytest.raises(TrainingError, match="'pad' cannot be used with margin-mse"):
        even_negatives(scored, None, "pad", loss="margin-mse")
    kept, k, _ = even_negatives(scored, None, "drop", loss="margin-mse")
    assert k == 2 and [r.query for r in kept] == ["q1"]
    trimmed, k, _ = even_negatives(scored, 1, "error", loss="margin-mse")
    assert k == 1 and trimmed[0].negatives == ("a",) and trimmed[0].scores == (3.0, 1.0)  # scores cut alike
    with pytest.raises(TrainingError, match="at least one scored negative"):
        even_negatives(scored, 0, "error", loss="margin-mse")


def test_max_length_shortens_training_not_the_saved_window(base: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    window = SentenceTransformer(str(base), device="cpu").max_seq_length
    out = train_encoder(str(base), train_examples(), tmp_path / "short", epochs=1, max_length=8, **FAST)
    assert read_card(out)["recipe"]["max_length"] == 8
    assert window > 8 and SentenceTransformer(str(out), device="cpu").max_seq_length == window
    assert get_encoder(str(out)).max_length == window


def test_margin_mse_puts_teacher_scores_on_a_unit_vector_models_scale(tmp_path: Path) -> None:
    """A model with unit-length output has cosine margins within [-2, 2]: "auto" fits the factor that puts the
    teacher's margins there, so teacher scores 50x the model's own come back at exactly 1/50, and a teacher ranking
    against the model's own order fails instead of being distilled upside down."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize

    from retrievekit.training.data import TrainingExample

    model = SentenceTransformer(str(tiny_bi_encoder(tmp_path / "plain")), device="cpu")
    model.append(Normalize())
    model.save(str(tmp_path / "unit"))
    rows = train_examples()[:16]
    q = model.encode([str(e["query"]) for e in rows])
    texts = [model.encode([str(e["positive"]) for e in rows])] + [
        model.encode([str(e["negatives"][j]) for e in rows]) for j in range(2)]
    own = np.stack([(q * t).sum(axis=1) for t in texts], axis=1)

    def scored(factor: float) -> list[TrainingExample]:
        return [TrainingExample(str(e["query"]), str(e["positive"]), negatives=list(e["negatives"])[:2],
                                teacher_scores=[factor * float(v) for v in own[i]]) for i, e in enumerate(rows)]

    options = {**FAST, "loss": "margin-mse", "epochs": 1}
    a = train_encoder(str(tmp_path / "unit"), scored(50.0), tmp_path / "a", **options)
    assert read_card(a)["recipe"]["teacher_scale"] == pytest.approx(1 / 50, rel=1e-3)
    b = train_encoder(str(tmp_path / "unit"), scored(5000.0), tmp_path / "b", **options)
    assert read_card(b)["recipe"]["teacher_scale"] == pytest.approx(1 / 5000, rel=1e-3)
    text = ["capital of peru"]  # the same targets after scaling: the same model
    np.testing.assert_allclose(get_encoder(str(a)).encode(text), get_encoder(str(b)).encode(text), atol=1e-5)
    raw = train_encoder(str(tmp_path / "unit"), scored(50.0), tmp_path / "raw", teacher_scale=None, **options)
    assert "teacher_scale" not in read_card(raw)["recipe"]
    with pytest.raises(TrainingError, match="run against the model's own"):
        train_encoder(str(tmp_path / "unit"), scored(-50.0), tmp_path / "upside-down", **options)
    assert not (tmp_path / "upside-down").exists()
    for bad in (0, -1.0, "raw"):
        with pytest.raises(TrainingError, match="teacher_scale must be"):
            train_encoder(str(tmp_path / "unit"), scored(50.0), tmp_path / "bad", teacher_scale=bad, **options)
    # a model without Normalize scores by raw dot product, GPL's setting: the scores stay as they are
    plain = train_encoder(str(tmp_path / "plain"), scored(50.0), tmp_path / "dot", **options)
    assert read_card(plain)["recipe"]["teacher_scale"] == 1.0
