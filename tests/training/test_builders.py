"""Training data builders: qrels, inverse cloze, cropping, title→body, and hard-negative mining with false-negative
protection — on a tiny real collection and on a fake one whose scores the test controls."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import toy_encoder  # noqa: F401  (registers the "toy" encoder)

from retrievekit import Collection
from retrievekit.core.document import Document
from retrievekit.retrieval.base import SearchResults
from retrievekit.training import (
    TrainingDataError,
    TrainingExample,
    TrainingSet,
    from_qrels,
    inverse_cloze,
    mine_negatives,
    random_crops,
    title_body,
)

TOPICS = ["solar panels", "river floods", "bread baking", "chess openings", "whale songs", "glacier melt",
          "bee colonies", "jazz chords", "rust compilers", "tea brewing", "moon phases", "desert plants"]


def documents() -> list[Document]:
    docs = []
    for i, topic in enumerate(TOPICS):
        text = (f"This note is about {topic}. Experts study {topic} every year. Many people enjoy reading about "
                f"{topic} in long articles. The history of {topic} is old and rich. Item {i} ends here.")
        docs.append(Document(id=f"d{i}", title=topic.title(), text=text))
    docs.append(Document(id="short", title="", text="Tiny."))  # too short for every self-supervised builder
    return docs


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    col = Collection.create(tmp_path_factory.mktemp("training") / "col")
    col.add(documents())
    return col


def test_from_qrels(collection: Collection) -> None:
    queries = {"q1": "solar energy", "q2": "floods", "q3": ""}
    qrels = {"q1": {"d0": 2, "d1": 0}, "q2": {"d1": 1, "d5": 1}, "q3": {"d2": 1}}
    data = from_qrels(collection, queries, qrels)
    assert [(e.query_id, e.positive_id) for e in data] == [("q1", "d0"), ("q2", "d1"), ("q2", "d5")]
    assert data[0].positive.startswith("Solar Panels This note is about solar panels.")
    assert data[0].source == "qrels" and data.stats["queries_without_text"] == 1
    assert [e.positive_id for e in from_qrels(collection, queries, qrels, min_grade=2)] == ["d0"]


def test_from_qrels_with_missing_documents(collection: Collection) -> None:
    qrels = {"q1": {"d0": 1, "gone1": 1, "gone2": 1}}
    with pytest.raises(TrainingDataError, match=r"2 of the 3 judged documents .*'gone1', 'gone2'"):
        from_qrels(collection, {"q1": "solar"}, qrels)
    data = from_qrels(collection, {"q1": "solar"}, qrels, missing="skip")
    assert [e.positive_id for e in data] == ["d0"] and data.stats["missing_documents"] == 2


def test_inverse_cloze(collection: Collection) -> None:
    data = inverse_cloze(collection, seed=1, keep_probability=0.0)
    assert len(data) == 12 and data.stats == {"documents": 13, "examples": 12, "too_short": 1}
    for e in data:
        assert e.source == "ict" and e.query.endswith(".")
        assert e.query not in e.positive  # the sentence is removed from its passage
    assert inverse_cloze(collection, seed=1, keep_probability=0.0) == data
    assert inverse_cloze(collection, seed=2, keep_probability=0.0) != data
    kept = inverse_cloze(collection, seed=1, keep_probability=1.0)
    assert all(e.query in e.positive for e in kept)
    assert len(inverse_cloze(collection, seed=1, limit=3)) == 3


def test_random_crops(collection: Collection) -> None:
    data = random_crops(collection, seed=0, min_ratio=0.2, max_ratio=0.4)
    assert len(data) == 12 and data.stats["too_short"] == 1
    for e in data:
        doc_words = len(collection.get(e.positive_id).text.split()) + len(collection.get(e.positive_id).title.split())
        for span in (e.query, e.positive):
            assert 0.2 * doc_words - 1 <= len(span.split()) <= 0.4 * doc_words + 1
            assert span in f"{collection.get(e.positive_id).title} {collection.get(e.positive_id).text}"
    assert random_crops(collection, seed=0, min_ratio=0.2, max_ratio=0.4) == data
    assert random_crops(collection, seed=5, min_ratio=0.2, max_ratio=0.4) != data
    with pytest.raises(TrainingDataError, match="min_ratio"):
        random_crops(collection, min_ratio=0.6, max_ratio=0.5)


def test_title_body(collection: Collection) -> None:
    data = title_body(collection)
    assert len(data) == 12 and data.stats["too_short"] == 1
    assert data[0].query == "Solar Panels" and data[0].positive.startswith("This note is about solar panels.")


def test_empty_collection_is_a_clear_error(tmp_path: Path) -> None:
    empty = Collection.create(tmp_path / "empty")
    with pytest.raises(TrainingDataError, match="no documents"):
        inverse_cloze(empty)


def test_mining_on_a_real_collection(collection: Collection) -> None:
    data = from_qrels(collection, {"q1": "solar panels history", "q2": "jazz chords history"},
                      {"q1": {"d0": 1}, "q2": {"d7": 1}})
    mined = mine_negatives(data, collection, k=20, per_query=3, margin=0.05)
    for e in mined:
        assert len(e.negatives) == 3 and e.positive_id not in e.negative_ids
        assert e.positive_score is not None and e.negative_scores is not None
        assert all(s < e.positive_score * 0.95 for s in e.negative_scores)
        assert e.negative_scores == sorted(e.negative_scores, reverse=True)  # the hardest survivors
    assert mine_negatives(data, collection, k=20, per_query=3) == mined
    assert TrainingSet.load(mined.save(Path(collection.path).parent / "mined.jsonl")) == mined


class FakeCollection:
    """A collection whose ranking and scores the test sets: {query: [(id, score), ...]}."""

    def __init__(self, ranking: dict[str, list[tuple[str, float]]]) -> None:
        self.ranking = ranking
        self.searches = 0

    def iter_documents(self) -> Iterator[Document]:
        return iter([])

    def get_many(self, ids: Sequence[str]) -> list[Document | None]:
        return [Document(id=i, text=f"text of {i}") for i in ids]

    def search(self, queries: str | Sequence[str], k: int = 10, *, mode: str = "bm25", **_: Any) -> SearchResults:
        self.searches += 1
        rows = [self.ranking[q][:k] for q in queries]
        ids = np.full((len(rows), k), None, dtype=object)
        scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
        for i, row in enumerate(rows):
            for j, (doc_id, score) in enumerate(row):
                ids[i, j], scores[i, j] = doc_id, score
        return SearchResults(ids, scores)


def pos(query: str, doc_id: str) -> TrainingExample:
    return TrainingExample(query=query, positive=f"text of {doc_id}", positive_id=doc_id)


def test_false_negative_protection() -> None:
    fake = FakeCollection({"q": [("above", 12.0), ("p", 10.0), ("other_pos", 9.9), ("near", 9.6),
                                 ("n1", 9.4), ("n2", 7.0), ("n3", 5.0)]})
    data = [pos("q", "p"), pos("q", "other_pos")]
    mined = mine_negatives(data, fake, k=10, per_query=2, margin=0.05)
    first = mined[0]
    # dropped: the positive, the query's other positive, "above" and "near" (>= 95% of 10.0)
    assert first.negative_ids == ["n1", "n2"] and first.negative_scores == [pytest.approx(9.4), 7.0]
    assert first.positive_score == 10.0 and first.negatives == ["text of n1", "text of n2"]
    assert mined.stats["dropped_positive"] == 4 and mined.stats["dropped_margin"] >= 2
    assert fake.searches == 1  # one search per distinct query
    # no margin: only positives are protected
    assert mine_negatives(data, fake, k=10, per_query=2, margin=None)[0].negative_ids == ["above", "near"]
    # a judge vetoes candidates it finds relevant
    vetoed = mine_negatives(data[:1], fake, k=10, per_query=2, margin=0.05,
                            judge=lambda q, texts: [1.0 if t == "text of n1" else 0.0 for t in texts],
                            judge_threshold=0.5)
    assert vetoed[0].negative_ids == ["n2", "n3"] and vetoed.stats["dropped_judge"] == 1


def test_positive_not_retrieved_gets_no_mined_negatives() -> None:
    fake = FakeCollection({"q": [("a", 3.0), ("b", 2.0)]})
    mined = mine_negatives([pos("q", "p")], fake, k=10, margin=0.05)
    assert mined[0].negatives == [] and mined.stats["positive_not_retrieved"] == 1
    assert mine_negatives([pos("q", "p")], fake, k=10, margin=None)[0].negative_ids == ["a", "b"]


def test_mining_keeps_existing_negatives_and_checks_arguments() -> None:
    fake = FakeCollection({"q": [("p", 10.0), ("old", 5.0), ("new", 4.0)]})
    start = TrainingExample(query="q", positive="text of p", positive_id="p", negatives=["text of old"],
                            negative_ids=["old"], negative_scores=[5.0], teacher_scores=[1.0, 0.0])
    mined = mine_negatives([start], fake, per_query=1)[0]
    assert mined.negative_ids == ["old", "new"] and mined.negative_scores == [5.0, 4.0]
    assert mined.teacher_scores is None  # no longer covers every negative
    with pytest.raises(TrainingDataError, match="unknown mining mode"):
        mine_negatives([start], fake, mode="sparse")
    with pytest.raises(TrainingDataError, match="judge and judge_threshold"):
        mine_negatives([start], fake, judge=lambda q, t: [0.0] * len(t))
    with pytest.raises(TrainingDataError, match="no examples"):
        mine_negatives([], fake)


def test_dense_mining(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "dense", dense="toy:bow")
    col.add(documents())
    data = title_body(col)
    mined = mine_negatives(data, col, mode="hybrid", k=13, per_query=2, margin=0.05)
    assert all(e.positive_id not in e.negative_ids for e in mined)
    assert sum(len(e.negatives) for e in mined) > 0
