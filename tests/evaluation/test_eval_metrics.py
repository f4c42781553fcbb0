"""retrievekit.evaluation.metrics against pytrec_eval (trec_eval), per query, on real and crafted runs."""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from paths import shared_data
from scipy import sparse

from retrievekit.core.errors import InputFormatError
from retrievekit.evaluation import EvalResult, UnknownMetricError, evaluate

pytrec_eval = pytest.importorskip("pytrec_eval")

TOL = 1e-9
CUTOFFS = (1, 3, 5, 10, 100, 1000)


# ----------------------------------------------------------------------------- reference side


def trec_sorted(docs: dict[str, float]) -> list[str]:
    """trec_eval's order, written independently of the library: score (as a C float) desc, then docid
    desc. (Python's str order equals strcmp's UTF-8 byte order; the property test checks that
    assumption against pytrec_eval with non-ASCII ids.)"""
    as_float32 = np.array(list(docs.values()), dtype=np.float32).tolist()
    return [d for _, d in sorted(zip(as_float32, docs), reverse=True)]


def reference(run, qrels, metrics, relevance_level=1):
    """Per-query values from pytrec_eval, in our metric names. mrr@k uses recip_rank on the top-k run."""
    plain, cut = {}, {}
    for m in metrics:
        name, _, k = m.partition("@")
        trec = {"ndcg": "ndcg_cut", "recall": "recall", "p": "P", "map": "map_cut", "success": "success"}
        if name == "mrr" and k:
            cut[m] = int(k)
        elif k:
            plain[m] = (trec[name], f"{trec[name]}.{k}", f"{trec[name]}_{k}")
        else:
            t = {"ndcg": "ndcg", "map": "map", "mrr": "recip_rank", "r-precision": "Rprec"}[name]
            plain[m] = (t, t, t)
    out: dict[str, dict[str, float]] = {}
    if plain:
        ev = pytrec_eval.RelevanceEvaluator(qrels, {spec for _, spec, _ in plain.values()},
                                            relevance_level=relevance_level)
        res = ev.evaluate(run)
        for m, (_, _, key) in plain.items():
            out[m] = {q: v[key] for q, v in res.items()}
    ordered = {q: trec_sorted(docs) for q, docs in run.items()} if cut else {}
    for m, k in cut.items():
        top = {q: {d: run[q][d] for d in ranking[:k]} for q, ranking in ordered.items()}
        ev = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=relevance_level)
        out[m] = {q: v["recip_rank"] for q, v in ev.evaluate(top).items()}
    return out


ALL_METRICS = (
    [f"ndcg@{k}" for k in CUTOFFS] + [f"recall@{k}" for k in CUTOFFS] + [f"p@{k}" for k in CUTOFFS]
    + [f"map@{k}" for k in CUTOFFS] + [f"success@{k}" for k in (1, 3, 5, 10)]
    + [f"mrr@{k}" for k in (1, 10, 100)] + ["ndcg", "map", "mrr", "r-precision"]
)


def assert_matches(run, qrels, metrics=ALL_METRICS, relevance_level=1, **kwargs):
    ours = evaluate(run, qrels, metrics, per_query=True, relevance_level=relevance_level, **kwargs)
    ref = reference(run, qrels, metrics, relevance_level)
    assert ours.per_query is not None
    for m in metrics:
        assert set(ours.per_query[m]) == set(ref[m]), m
        worst = max((abs(ours.per_query[m][q] - ref[m][q]), q) for q in ref[m])
        assert worst[0] <= TOL, f"{m}: query {worst[1]} differs by {worst[0]}"
        expected_mean = math.fsum(ref[m].values()) / len(ref[m])
        assert ours[m] == pytest.approx(expected_mean, abs=TOL), m
    return ours


# ----------------------------------------------------------------------------- real runs


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _tsv_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, r = line.rstrip("\n").split("\t")
            qrels.setdefault(q, {})[d] = int(r)
    return qrels


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


@functools.cache
def bm25_run(name: str, depth: int = 1000, k1: float = 0.9, b: float = 0.4) -> tuple[dict, dict]:
    """A deterministic BM25 top-``depth`` run over a shared dataset's judged test queries (cached:
    callers must not modify the result)."""
    folder = shared_data(name, "corpus.jsonl").parent
    docs = _jsonl(folder / "corpus.jsonl")
    qrels = _tsv_qrels(folder / "qrels" / "test.tsv")
    queries = [q for q in _jsonl(folder / "queries.jsonl") if q["_id"] in qrels]
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, doc in enumerate(docs):
        for tok in _tokens(f"{doc.get('title', '')} {doc.get('text', '')}"):
            rows.append(i)
            cols.append(vocab.setdefault(tok, len(vocab)))
    tf = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(docs), len(vocab)))
    tf.sum_duplicates()
    lengths = np.asarray(tf.sum(axis=1)).ravel()
    df = np.bincount(tf.indices, minlength=len(vocab))
    idf = np.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
    norm = k1 * (1 - b + b * lengths / lengths.mean())
    weights = tf.copy()
    weights.data = weights.data * (k1 + 1) / (weights.data + np.repeat(norm, np.diff(tf.indptr)))
    weights = weights.multiply(idf).tocsc()
    qrows, qcols = [], []
    for i, q in enumerate(queries):
        for tok in _tokens(q["text"]):
            if tok in vocab:
                qrows.append(i)
                qcols.append(vocab[tok])
    qmat = sparse.csr_matrix((np.ones(len(qrows)), (qrows, qcols)), shape=(len(queries), len(vocab)))
    scores = (qmat @ weights.T).toarray()
    ids = [str(d["_id"]) for d in docs]
    run = {}
    for i, q in enumerate(queries):
        top = np.argpartition(-scores[i], depth)[:depth] if depth < len(ids) else np.arange(len(ids))
        run[q["_id"]] = {ids[j]: float(scores[i, j]) for j in top}
    return run, qrels


@pytest.fixture(scope="module", params=["scifact", "cranfield", "nfcorpus-orig-test"])
def real(request):
    return request.param, *bm25_run(request.param)


def test_real_runs_match_pytrec_eval(real):
    _name, run, qrels = real
    result = assert_matches(run, qrels)
    assert result.num_queries == len(run)
    assert 0.05 < result["ndcg@10"] < 0.9  # a sane BM25 run, so the comparison is not vacuous


def test_real_runs_with_heavy_ties_match(real):
    """Scores rounded to one decimal: most documents tie, so docid tie-breaking decides the ranks."""
    _, run, qrels = real
    rounded = {q: {d: round(s, 1) for d, s in docs.items()} for q, docs in run.items()}
    assert_matches(rounded, qrels, ["ndcg@10", "ndcg", "map", "p@5", "recall@100", "mrr@10", "r-precision"])


@pytest.mark.parametrize("level", [2, 3])
def test_graded_collections_with_relevance_level(level):
    for name in ("cranfield", "nfcorpus-orig-test"):
        run, qrels = bm25_run(name, depth=200)
        assert_matches(run, qrels, ["ndcg@10", "map", "p@10", "recall@100", "mrr", "r-precision",
                                    "success@5"], relevance_level=level)


def test_ignore_identical_ids_on_cranfield():
    # Cranfield query ids (1..225) are also document ids, so runs really contain "self" documents.
    run, qrels = bm25_run("cranfield", depth=1400)
    assert sum(q in docs for q, docs in run.items()) > 100
    filtered = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
    metrics = ["ndcg@10", "recall@100", "map", "p@10"]
    ours = evaluate(run, qrels, metrics, ignore_identical_ids=True, per_query=True)
    ref = reference(filtered, qrels, metrics)
    assert ours.per_query is not None
    for m in metrics:
        assert all(abs(ours.per_query[m][q] - ref[m][q]) <= TOL for q in ref[m])
    assert evaluate(run, qrels, metrics).mean != ours.mean


# ----------------------------------------------------------------------------- crafted cases


def test_tie_breaking_is_docid_descending():
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}  # ranked c, b, a
    assert evaluate(run, qrels, ["mrr", "p@2", "ndcg@3"])["mrr"] == pytest.approx(1 / 3)
    assert evaluate(run, qrels, ["p@2"])["p@2"] == 0.0
    # Ids compare as strings, not numbers: "9" > "10".
    run2 = {"q": {"10": 0.5, "9": 0.5}}
    assert evaluate(run2, {"q": {"10": 1}}, ["mrr"])["mrr"] == pytest.approx(0.5)
    assert_matches(run, qrels)
    assert_matches(run2, {"q": {"10": 1}})


def test_empty_run_entry_counts_as_zero_and_missing_query_is_skipped():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    run = {"q1": {"a": 2.0}, "q2": {}}
    res = evaluate(run, qrels, ["ndcg@10", "recall@10"], per_query=True)
    assert res.num_queries == 2 and res["ndcg@10"] == pytest.approx(0.5)
    assert res.per_query == {"ndcg@10": {"q1": 1.0, "q2": 0.0}, "recall@10": {"q1": 1.0, "q2": 0.0}}
    assert_matches(run, qrels)
    zero = evaluate(run, qrels, ["ndcg@10"], per_query=True, missing_queries="zero")
    assert zero.num_queries == 3 and zero["ndcg@10"] == pytest.approx(1 / 3)
    assert zero.per_query == {"ndcg@10": {"q1": 1.0, "q2": 0.0, "q3": 0.0}}


def test_scores_compare_as_float32_like_trec_eval():
    # trec_eval stores scores as C float: these pairs tie and fall back to docid order (z first).
    qrels = {"q": {"a": 1}}
    for a, z in [(1.0 + 1e-12, 1.0), (16777217.0, 16777216.0), (1e300, float("inf"))]:
        run = {"q": {"a": a, "z": z}}
        assert evaluate(run, qrels, ["mrr"])["mrr"] == 0.5
        assert_matches(run, qrels, ["mrr", "ndcg"])
    assert evaluate({"q": {"a": 1.0 + 2e-7, "z": 1.0}}, qrels, ["mrr"])["mrr"] == 1.0


def test_queries_without_relevant_documents():
    qrels = {"none": {"a": 0, "b": 0}, "some": {"a": 0, "b": 2, "c": 1}}
    run = {"none": {"a": 1.0, "b": 0.5}, "some": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.0},
           "unjudged": {"x": 1.0}}
    res = assert_matches(run, qrels)
    assert res.num_queries == 2
    assert res.per_query is not None and res.per_query["map"]["none"] == 0.0


def test_negative_judgments_count_as_not_relevant():
    # pytrec_eval can crash on negative judgments (trec_eval reads them as "pooled but unjudged"),
    # so the reference here is the same qrels with negatives replaced by 0.
    qrels = {"q": {"a": -2, "b": 2, "c": 1, "d": -1}, "allneg": {"a": -1}}
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.0, "e": 5.0}, "allneg": {"a": 1.0}}
    zeroed = {q: {d: max(r, 0) for d, r in docs.items()} for q, docs in qrels.items()}
    ours = evaluate(run, qrels, ALL_METRICS, per_query=True)
    assert ours.per_query == assert_matches(run, zeroed).per_query


def test_cutoff_beyond_run_length_and_duplicate_scores():
    qrels = {"q": {"a": 3, "b": 1, "z": 2}}
    run = {"q": {"a": 0.1, "b": 0.1, "c": 0.1, "d": 0.7, "e": -3.0}}
    res = assert_matches(run, qrels)
    assert res["p@1000"] == pytest.approx(2 / 1000)  # P divides by k, as trec_eval does


def test_metric_names_are_validated_and_case_insensitive():
    run, qrels = {"q": {"a": 1.0}}, {"q": {"a": 1}}
    res = evaluate(run, qrels, ["NDCG@10", "Precision@5", "P@5", "R-Precision", "MRR"])
    assert list(res) == ["ndcg@10", "p@5", "r-precision", "mrr"]
    assert res["nDCG@10"] == res["ndcg@10"] == 1.0 and res["precision@5"] == pytest.approx(0.2)
    assert isinstance(res, EvalResult) and res.per_query is None
    assert evaluate(run, qrels, "map")["map"] == 1.0
    for bad in ["ndgc@10", "recall", "p@0", "r-precision@5", "ndcg@x", ""]:
        with pytest.raises(UnknownMetricError, match="ndcg@k|cutoff"):
            evaluate(run, qrels, [bad])
    with pytest.raises(KeyError):
        res["bogus"]
    with pytest.raises(ValueError, match="relevance_level"):
        evaluate(run, qrels, relevance_level=0)


def test_nan_score_is_rejected_with_the_query_and_document():
    with pytest.raises(InputFormatError, match="'q'.*'b'.*NaN"):
        evaluate({"q": {"a": 1.0, "b": float("nan")}}, {"q": {"a": 1}})


def test_no_shared_queries_gives_zero_means(caplog):
    res = evaluate({"1": {"a": 1.0}}, {1: {"a": 1}})  # type: ignore[dict-item]
    assert res.num_queries == 0 and res["ndcg@10"] == 0.0
    assert "share no query" in caplog.text


# ----------------------------------------------------------------------------- property test

try:
    import hypothesis
    from hypothesis import strategies as st
except ImportError:  # the property test is skipped below; the rest of the module still runs
    hypothesis = None

_DOCIDS = ["a", "b", "B", "ab", "b1", "10", "9", "é", "ü2", "zz", "d", "q1"]


if hypothesis is None:

    def test_property_random_runs_match_pytrec_eval():
        pytest.skip("hypothesis is not installed")

else:

    @st.composite
    def run_and_qrels(draw):
        qids = draw(st.lists(st.sampled_from(["q1", "q2", "q3", "10"]), min_size=1, max_size=4, unique=True))
        run, qrels = {}, {}
        for q in qids:
            if draw(st.booleans()) or not run:
                docs = draw(st.lists(st.sampled_from(_DOCIDS), max_size=len(_DOCIDS), unique=True))
                scores = st.sampled_from([-1.5, 0.0, 0.25, 0.5, 1.0, 1.0 + 1e-9, 2.0, 1e-9, 1e-30])
                run[q] = {d: draw(scores) for d in docs}
            if draw(st.booleans()) or not qrels:
                judged = draw(st.lists(st.sampled_from(_DOCIDS + ["x", "y"]), min_size=1, max_size=8,
                                       unique=True))
                qrels[q] = {d: draw(st.integers(0, 4)) for d in judged}
        return run, qrels

    @hypothesis.settings(max_examples=300, deadline=None)
    @hypothesis.given(data=run_and_qrels(), level=st.integers(1, 3))
    def test_property_random_runs_match_pytrec_eval(data, level):
        run, qrels = data
        if not any(q in qrels for q in run):
            return
        metrics = ["ndcg@1", "ndcg@3", "ndcg", "p@2", "p@5", "recall@3", "map", "map@2", "mrr", "mrr@2",
                   "success@1", "success@3", "r-precision"]
        assert_matches(run, qrels, metrics, relevance_level=level)
