"""Multi-field BM25: per-field inverted indexes built with the collection, score = sum of weight x the field's BM25.

The oracle is the Lucene-exact single-field path: a collection indexing only field f scores BM25_f, so a weighted sum
of such collections' scores is what multi-field BM25 must return, document by document."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrievekit import Collection
from retrievekit.core.config import BM25Config, CollectionConfig
from retrievekit.core.errors import CollectionError, RetrievekitError

DOCS = [
    {"id": "retry", "title": "Retry.backoff",
     "text": "def backoff(self, attempt):\n    return self.base * 2 ** attempt",
     "metadata": {"signature": "def backoff(self, attempt)", "decorators": ["@cached", "@retry_policy"]}},
    {"id": "policy", "title": "load_retry_policy", "text": "def load_retry_policy(path):\n    return parse(path)",
     "metadata": {"signature": "def load_retry_policy(path)"}},
    {"id": "parse", "title": "parse", "text": "def parse(path):\n    # retry reading a retry policy file\n    pass",
     "metadata": {"signature": "def parse(path)", "decorators": []}},
    {"id": "client", "title": "HttpClient", "text": "class HttpClient:\n    retries = 3\n    policy = None",
     "metadata": {}},
    {"id": "empty", "title": "", "text": "", "metadata": {"signature": "def nothing()"}},
    {"id": "cfg", "title": "Config.path", "text": "def path(self):\n    return self.config_path  # path of the config",
     "metadata": {"signature": "def path(self)"}},
]
QUERIES = ["retry policy", "parse path", "backoff attempt", "config path", "http client retries", "nothing here"]
WEIGHTS = {"title": 3.0, "signature": 2.0, "text": 1.0}


def collection(path: Path, fields: list[str], weights: dict[str, float] | None = None, *, split: bool = True,
               replace: bool = True, analyzer: str = "code") -> Collection:
    """DOCS in two segments (two commits) with one document replaced, so statistics span segments and deletions."""
    col = Collection.create(path, analyzer=analyzer, fields=fields, field_weights=weights)
    if split:
        col.add(DOCS[:3])
        col.add(DOCS[3:])
        if replace:
            col.add([DOCS[1]])  # replaced: the old copy is a deleted document of the first segment
    else:
        col.add(DOCS)
    return col


def all_scores(col: Collection, query: str, **options: object) -> dict[str, float]:
    return dict(col.search(query, k=100, **options).hits(0))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fielded(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    return collection(tmp_path_factory.mktemp("mf") / "col", ["title", "text"], WEIGHTS)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Collection]:
    """One collection per field, each scoring that field alone on the Lucene-exact joined path."""
    root = tmp_path_factory.mktemp("single")
    return {f: collection(root / f, [f]) for f in WEIGHTS}


@pytest.mark.parametrize("query", QUERIES)
def test_score_is_the_weighted_sum_of_single_field_bm25(fielded: Collection, single: dict[str, Collection],
                                                        query: str) -> None:
    got = all_scores(fielded, query)
    expected: dict[str, float] = {}
    for field, weight in WEIGHTS.items():
        for doc, score in all_scores(single[field], query).items():
            expected[doc] = expected.get(doc, 0.0) + weight * score
    assert set(got) == set(expected)
    for doc, score in expected.items():
        assert got[doc] == pytest.approx(score, rel=1e-5, abs=1e-5), doc
    ranked = [d for d, _ in fielded.search(query, k=100).hits(0)]
    assert ranked == sorted(expected, key=lambda d: (-expected[d], ranked.index(d)))


@pytest.mark.parametrize("scorer", [{"scorer": "lucene"}, {"scorer": "robertson"}, {"scorer": "bm25l"},
                                    {"scorer": "bm25+"}, {"scorer": "dirichlet", "mu": 50.0},
                                    {"scorer": "lucene", "k1": 1.2, "b": 0.75}])
def test_one_field_of_weight_one_equals_the_joined_kernel_path(tmp_path: Path, scorer: dict[str, object]) -> None:
    col = collection(tmp_path / "col", ["text"], {"text": 1.0})
    for query in QUERIES:
        fielded = col.search(query, k=100, **scorer)  # type: ignore[arg-type]
        joined = col.search(query, k=100, field_weights={}, **scorer)  # type: ignore[arg-type]
        assert [d for d, _ in fielded.hits(0)] == [d for d, _ in joined.hits(0)], query
        np.testing.assert_allclose(fielded.scores[0, :len(fielded.hits(0))], joined.scores[0, :len(joined.hits(0))],
                                   rtol=1e-5, atol=1e-6)


def test_weights_per_search_override_the_collection_defaults(fielded: Collection,
                                                             single: dict[str, Collection]) -> None:
    title_only = all_scores(fielded, "retry policy", field_weights={"title": 1})
    assert title_only == pytest.approx(all_scores(single["title"], "retry policy"), rel=1e-5)
    zero_text = all_scores(fielded, "retry policy", field_weights={"title": 1, "text": 0})
    assert zero_text == title_only  # a weight of 0 leaves the field out
    joined = all_scores(fielded, "retry policy", field_weights={})
    assert joined != all_scores(fielded, "retry policy")
    # the default is the collection's weights: the title (Retry.backoff, load_retry_policy) dominates
    assert fielded.search("retry policy", k=1).hits(0)[0][0] == "policy"


def test_top_k_and_ties_match_the_full_ranking(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "col", analyzer="whitespace", field_weights={"title": 2.0, "text": 1.0})
    col.add([{"id": f"d{i:02d}", "title": "same" if i % 3 else "other", "text": "word " * (1 + i % 4)}
             for i in range(30)])
    full = col.search("same word", k=100).hits(0)
    for k in (1, 3, 7, 10):
        assert col.search("same word", k=k).hits(0) == full[:k]
    by_score: dict[float, list[str]] = {}
    for doc, score in full:
        by_score.setdefault(score, []).append(doc)
    assert all(docs == sorted(docs) for docs in by_score.values())  # ties: earlier document first


def test_merges_filters_and_deletes(tmp_path: Path) -> None:
    col = collection(tmp_path / "col", ["title", "text"], WEIGHTS, replace=False)
    before = {q: col.search(q, k=100).hits(0) for q in QUERIES}
    col.optimize()  # two segments into one: the field postings are merged, statistics unchanged
    for q in QUERIES:
        got = col.search(q, k=100).hits(0)
        assert [d for d, _ in got] == [d for d, _ in before[q]]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in before[q]], rtol=1e-6)
    segment = next(p for p in (tmp_path / "col").iterdir() if p.name.startswith("seg-"))
    info = json.loads((segment / "segment.json").read_text())["bm25"]
    assert [f["name"] for f in info["fields"]] == ["title", "signature", "text"]
    assert (segment / "bm25" / "field-1" / "terms.txt").is_file()
    unsigned = col.search("http client retries", k=10, filter={"signature": {"exists": False}}).hits(0)
    assert [d for d, _ in unsigned] == ["client"]
    filtered = dict(col.search("retry policy", k=10, filter={"signature": {"exists": True}}).hits(0))
    assert "client" not in filtered and set(filtered) <= {"retry", "policy", "parse"}
    col.delete(["policy"])
    assert "policy" not in dict(col.search("retry policy", k=10).hits(0))


def test_metadata_fields_and_lists_are_indexed_as_text(tmp_path: Path) -> None:
    col = collection(tmp_path / "col", ["title", "text"], {"decorators": 1.0, "signature": 1.0}, split=False)
    assert [d for d, _ in col.search("cached", k=5).hits(0)] == ["retry"]  # only in the decorator list
    assert [d for d, _ in col.search("nothing", k=5).hits(0)] == ["empty"]  # only in the signature
    info = col.info()
    assert info["bm25_fields"]["signature"]["avg_length"] > 0
    assert info["field_weights"] == {"decorators": 1.0, "signature": 1.0}


def test_rm3_and_hybrid_use_the_weights(fielded: Collection) -> None:
    expanded = fielded.search("retry policy", k=5, rm3=True).hits(0)
    assert expanded and expanded != fielded.search("retry policy", k=5, rm3=True, field_weights={}).hits(0)
    retriever = fielded.retriever("bm25", field_weights={"title": 1})
    assert retriever.config()["field_weights"] == {"title": 1.0}


def test_bad_weights_fail_clearly(fielded: Collection, tmp_path: Path) -> None:
    with pytest.raises(RetrievekitError, match="'body', which this collection does not index on its own; it "
                                               "indexes: title, signature, text"):
        fielded.search("x", field_weights={"body": 1})
    for weights, message in [({"title": -1}, "finite number of 0 or more"), ({"title": float("nan")}, "finite"),
                             ({"title": 0}, "every weight is 0"), ({"": 1}, "non-empty strings"),
                             ({f"f{i}": 1 for i in range(17)}, "at most 16")]:
        with pytest.raises(CollectionError, match=message):
            fielded.search("x", field_weights=weights)
        with pytest.raises(CollectionError, match=message):
            Collection.create(tmp_path / "bad", field_weights=weights)
    plain = Collection.create(tmp_path / "plain")
    plain.add([{"id": "a", "text": "retry"}])
    with pytest.raises(RetrievekitError, match="indexes its fields joined"):
        plain.search("retry", field_weights={"text": 1})
    assert plain.search("retry", field_weights={}).hits(0)[0][0] == "a"
    assert "field_weights" not in plain.info() and "bm25_fields" not in plain.info()


def test_config_round_trips_and_old_configs_stay_unchanged(fielded: Collection) -> None:
    stored = fielded.config
    assert stored["bm25"]["field_weights"] == WEIGHTS
    assert CollectionConfig.from_json(stored).to_json() == stored
    old = {"fields": ["title", "text"], "bm25": {"analyzer": "lucene-english"}}
    assert CollectionConfig.from_json(old).to_json() == old
    assert BM25Config.from_json({"analyzer": "x", "later": 1}).to_json() == {"analyzer": "x", "later": 1}
    with pytest.raises(CollectionError, match="bm25: field_weights: the weight of 'title'"):
        BM25Config.from_json({"analyzer": "x", "field_weights": {"title": "2"}})
    assert Collection(fielded.path).settings.bm25.field_weights == WEIGHTS
