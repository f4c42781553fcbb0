"""A tiny trained reranker as teacher: its scores fill ``teacher_scores``, MarginMSE distils them into a bi-encoder
(the loss falls and the student's margins move to the teacher's), and as a mining judge it drops exactly the
candidates it scores at or above the threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")

from tiny_models import PAIRS, doc, tiny_bert, tiny_bi_encoder, train_examples

from retrievekit import Collection
from retrievekit.encoders import get_encoder
from retrievekit.retrieval.rerank import Reranker, get_reranker
from retrievekit.training import TrainingDataError, TrainingExample, TrainingSet, mine_negatives
from retrievekit.training._deps import read_card
from retrievekit.training.encoder_training import train_encoder
from retrievekit.training.reranker_training import train_reranker
from retrievekit.training.teacher import reranker_judge, score_with_teacher


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a wide initialisation: the default one gives near-constant scores (spread ~1e-5), nothing to distil
    base = tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", init_range=0.5)
    return train_reranker(str(base), train_examples(2)[:12], tmp_path_factory.mktemp("teacher") / "reranker",
                          epochs=1, batch_size=8, learning_rate=3e-3, progress=False, seed=0)


def examples() -> TrainingSet:
    return TrainingSet(TrainingExample(str(e["query"]), str(e["positive"]), negatives=list(e["negatives"]),  # type: ignore[call-overload]
                                       source="toy") for e in train_examples(2))


def test_teacher_scores_are_the_rerankers_scores(teacher: Path, tmp_path: Path) -> None:
    data = examples()
    scored = score_with_teacher(data, str(teacher), batch_size=7)  # chunks that cut through examples
    reranker = get_reranker(str(teacher))
    for e, s in zip(data, scored):
        assert s.teacher_scores is not None and len(s.teacher_scores) == 3
        expected = reranker.score([e.query] * 3, [e.positive, *e.negatives])
        np.testing.assert_allclose(s.teacher_scores, expected, atol=1e-4)  # batches pad differently
        assert (s.query, s.positive, s.negatives, s.source) == (e.query, e.positive, e.negatives, e.source)
    # 36 examples x 3 texts, each (query, text) pair scored once
    assert scored.stats == {"examples": 36, "pairs_scored": 108, "without_negatives": 0}
    assert np.std([e.teacher_scores for e in scored]) > 0.1  # scores that say something
    assert TrainingSet.load(scored.save(tmp_path / "scored.jsonl")) == scored
    again = score_with_teacher([*data, *data], reranker)  # an instance works too; duplicates are scored once
    assert again.stats["pairs_scored"] == 108 and len(again) == 72
    for first, second, once in zip(again[:36], again[36:], scored):
        assert first.teacher_scores == second.teacher_scores == pytest.approx(once.teacher_scores, abs=1e-4)


def test_bad_teacher_input(teacher: Path) -> None:
    with pytest.raises(TrainingDataError, match="no examples"):
        score_with_teacher([], str(teacher))
    with pytest.raises(TrainingDataError, match="batch_size must be >= 1"):
        score_with_teacher(examples(), str(teacher), batch_size=0)

    class Broken(Reranker):
        def _score_pairs(self, queries, documents, query_index, doc_index):  # type: ignore[no-untyped-def]
            return np.full(len(query_index), np.nan, dtype=np.float32)

    with pytest.raises(TrainingDataError, match="non-finite scores"):
        score_with_teacher(examples()[:2], Broken())


def margins(folder: Path, data: TrainingSet) -> np.ndarray:
    """The bi-encoder's dot-product margins s(q, p) - s(q, n), one row per example."""
    encoder = get_encoder(str(folder))
    q = encoder.encode([e.query for e in data])
    texts = [encoder.encode([e.positive for e in data])] + [encoder.encode([e.negatives[j] for e in data])
                                                             for j in range(2)]
    scores = np.stack([(q * t).sum(axis=1) for t in texts], axis=1)
    return scores[:, :1] - scores[:, 1:]


def test_margin_mse_distils_the_teacher(teacher: Path, tmp_path: Path) -> None:
    scored = score_with_teacher(examples(), str(teacher))
    base = tiny_bi_encoder(tmp_path / "student")
    out = train_encoder(str(base), scored, tmp_path / "distilled", loss="margin-mse", epochs=8, batch_size=4,
                        learning_rate=3e-3, progress=False, seed=0)
    losses = read_card(out)["loss_curve"]
    third = len(losses) // 3
    assert np.mean(losses[-third:]) < 0.5 * np.mean(losses[:third]), losses
    target = np.array([[s[0] - n for n in s[1:]] for s in (e.teacher_scores or () for e in scored)])
    before = float(np.mean((margins(base, scored) - target) ** 2))
    after = float(np.mean((margins(out, scored) - target) ** 2))
    # the student's margins approach the teacher's: well below where it started and below the error of the best
    # constant guess (the targets' variance), so it learned per-example margins, not their mean
    assert after < 0.5 * min(before, float(target.var())), (before, after, float(target.var()))


def test_judge_drops_what_the_threshold_says(teacher: Path, tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "col")
    col.add([{"id": city, "text": doc(city)} for _, city in PAIRS])
    query = "the capital city of france"  # shares "city" with every document: BM25 ranks them all
    ranked = [d for d, _ in col.search([query], k=20).hits(0)]
    candidates = [d for d in ranked if d != "paris"]
    assert len(candidates) == 11
    judge = reranker_judge(str(teacher))
    verdicts = dict(zip(candidates, judge(query, [doc(d) for d in candidates])))
    threshold = float(np.median(list(verdicts.values())))
    start = [TrainingExample(query, doc("paris"), positive_id="paris")]
    mined = mine_negatives(start, col, k=20, per_query=11, margin=None, judge=judge, judge_threshold=threshold)
    kept = [d for d in candidates if verdicts[d] < threshold]
    assert mined[0].negative_ids == kept and 0 < len(kept) < 11
    assert mined.stats["dropped_judge"] == 11 - len(kept)
    # a threshold above every score keeps every candidate
    everything = mine_negatives(start, col, k=20, per_query=11, margin=None, judge=judge,
                                judge_threshold=max(verdicts.values()) + 1.0)
    assert everything[0].negative_ids == candidates and everything.stats["dropped_judge"] == 0
