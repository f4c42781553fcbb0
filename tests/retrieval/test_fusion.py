"""Hybrid fusion (normalisation, RRF, convex combination, tuning) and dense Rocchio feedback."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrievekit.core.errors import RetrievekitError
from retrievekit.evaluation import evaluate
from retrievekit.evaluation.tuning import tune_fusion
from retrievekit.retrieval.base import SearchResults
from retrievekit.retrieval.dense.prf import FeedbackError, rocchio
from retrievekit.retrieval.fusion import (
    FusionError,
    convex_combination,
    fuse,
    normalize_scores,
    rrf,
)


def results(rows: list[list[tuple[object, float]]], k: int | None = None) -> SearchResults:
    """SearchResults from per-query [(id, score)] lists, padded to width k."""
    k = max((len(r) for r in rows), default=0) if k is None else k
    out = SearchResults.empty(len(rows), k)
    for i, row in enumerate(rows):
        for j, (d, s) in enumerate(row):
            out.ids[i, j] = d
            out.scores[i, j] = s
    return out


def as_dict(res: SearchResults, i: int = 0) -> dict[object, float]:
    return dict(res.hits(i))


def ids(res: SearchResults, i: int = 0) -> list[object]:
    return [d for d, _ in res.hits(i)]


def check_layout(res: SearchResults) -> None:
    """The SearchResults conventions: None/-inf padding after the hits, float32, sorted, ties by id ascending."""
    assert res.ids.dtype == object and res.scores.dtype == np.float32 and res.ids.shape == res.scores.shape
    for i in range(len(res)):
        present = np.not_equal(res.ids[i], None)
        n = int(present.sum())
        assert present[:n].all() and not present[n:].any()
        assert np.all(res.scores[i, n:] == -np.inf) and np.isfinite(res.scores[i, :n]).all()
        keys = [(-float(s), d) for d, s in res.hits(i)]
        assert keys == sorted(keys)


# ----------------------------------------------------------------------------- normalisation


def test_minmax_zscore_dbsf_max_by_hand() -> None:
    res = results([[("a", 4.0), ("b", 2.0), ("c", 0.0)]])
    assert normalize_scores(res, "minmax").scores[0].tolist() == [1.0, 0.5, 0.0]
    std = math.sqrt(8 / 3)  # population std of 4, 2, 0
    np.testing.assert_allclose(normalize_scores(res, "zscore").scores[0], [2 / std, 0.0, -2 / std], rtol=1e-6)
    low = 2.0 - 3 * std
    np.testing.assert_allclose(normalize_scores(res, "dbsf").scores[0],
                               [(4 - low) / (6 * std), 0.5, (0 - low) / (6 * std)], rtol=1e-6)
    assert normalize_scores(res, "max").scores[0].tolist() == [1.0, 0.5, 0.0]
    assert normalize_scores(res, "none").scores[0].tolist() == [4.0, 2.0, 0.0]


def test_normalization_edge_cases_single_hit_equal_scores_and_padding() -> None:
    res = results([[("a", 3.0)], [("b", 2.0), ("c", 2.0)], []], k=3)
    expected = {"minmax": [1.0, 1.0], "zscore": [0.0, 0.0], "dbsf": [0.5, 0.5], "max": [1.0, 1.0]}
    for method, (single, equal) in expected.items():
        out = normalize_scores(res, method)
        assert out.scores[0, 0] == single and out.scores[1, :2].tolist() == [equal, equal], method
        assert out.ids[0].tolist() == ["a", None, None] and out.ids[2].tolist() == [None, None, None]
        assert np.all(out.scores[0, 1:] == -np.inf) and np.all(out.scores[2] == -np.inf)
        assert out.scores.dtype == np.float32
    out = normalize_scores(res)
    out.ids[0, 0] = "changed"
    assert res.ids[0, 0] == "a"  # a copy, not a view of the input


def test_max_normalization_keeps_the_order_of_negative_scores() -> None:
    res = results([[("a", -1.0), ("b", -2.0), ("c", -4.0)]])
    assert normalize_scores(res, "max").scores[0].tolist() == [-0.25, -0.5, -1.0]


def test_normalization_errors() -> None:
    res = results([[("a", 1.0)]])
    with pytest.raises(FusionError, match="minmax, zscore, dbsf, max, none"):
        normalize_scores(res, "softmax")
    bad = results([[("a", float("nan"))]])
    with pytest.raises(FusionError, match="finite"):
        normalize_scores(bad)
    assert issubclass(FusionError, RetrievekitError)


# ----------------------------------------------------------------------------- RRF


def test_rrf_by_hand_with_missing_docs_and_weights() -> None:
    a = results([[("d1", 9.0), ("d2", 5.0), ("d3", 1.0)]])
    b = results([[("d3", 0.9), ("d4", 0.8)]], k=4)  # wider list, padded
    out = rrf([a, b], k=10, weights=[2.0, 1.0])
    want = {"d1": 2 / 11, "d2": 2 / 12, "d3": 2 / 13 + 1 / 11, "d4": 1 / 12}
    assert ids(out) == ["d3", "d1", "d2", "d4"]
    for d, s in as_dict(out).items():
        assert s == pytest.approx(want[d], rel=1e-6)
    assert out.ids.shape == (1, 4)
    check_layout(out)


def test_rrf_depth_counts_only_the_first_hits() -> None:
    a = results([[("d1", 3.0), ("d2", 2.0), ("d3", 1.0)]])
    b = results([[("d3", 3.0), ("d1", 2.0), ("d5", 1.0)]])
    out = rrf([a, b], k=60, depth=1)
    assert as_dict(out) == pytest.approx({"d1": 1 / 61, "d3": 1 / 61})
    assert ids(out) == ["d1", "d3"] and out.ids.shape == (1, 2)  # d2, d5 beyond depth everywhere: dropped
    out = rrf([a, b], k=60, depth=2)
    assert as_dict(out) == pytest.approx({"d1": 1 / 61 + 1 / 62, "d3": 1 / 61, "d2": 1 / 62})


def test_rrf_ranks_skip_padding_and_ties_break_by_id() -> None:
    a = results([[("z", 1.0), ("y", 0.5)], [("q", 1.0)]], k=3)
    b = results([[("y", 1.0), ("z", 0.5)], []], k=2)
    out = rrf([a, b])
    assert ids(out, 0) == ["y", "z"]  # equal fused scores: id ascending
    assert ids(out, 1) == ["q"] and out.ids[1, 1] is None and out.scores[1, 1] == -np.inf
    check_layout(out)


def test_rrf_top_k_and_repeated_documents() -> None:
    a = results([[("a", 3.0), ("b", 2.0), ("a", 1.0), ("c", 0.5)]])
    out = rrf([a], k=0)
    assert as_dict(out) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.25})  # a counted once, at its best rank
    assert ids(rrf([a], top_k=2)) == ["a", "b"] and rrf([a], top_k=2).ids.shape == (1, 2)


def test_rrf_against_a_reference_implementation() -> None:
    rng = np.random.default_rng(7)
    lists, refs = [], []
    for width in (30, 50, 20):
        rows = []
        for _ in range(12):
            n = int(rng.integers(0, width + 1))
            docs = rng.choice(80, size=n, replace=False)
            rows.append([(f"doc{d:02d}", float(n - j)) for j, d in enumerate(docs)])
        lists.append(results(rows, k=width))
        refs.append(rows)
    weights, k, depth = [0.5, 1.0, 2.0], 5, 25
    out = rrf(lists, k=k, weights=weights, depth=depth)
    check_layout(out)
    for q in range(12):
        want: dict[str, float] = {}
        for w, rows in zip(weights, refs):
            for rank, (d, _) in enumerate(rows[q][:depth], start=1):
                want[d] = want.get(d, 0.0) + w / (k + rank)
        order = sorted(want, key=lambda d: (-np.float32(want[d]), d))
        assert ids(out, q) == order
        assert as_dict(out, q) == pytest.approx(want, rel=1e-6)


# ----------------------------------------------------------------------------- convex combination


def test_convex_by_hand_missing_min_and_zero() -> None:
    a = results([[("d1", 10.0), ("d2", 6.0), ("d3", 2.0)]])  # minmax: 1, 0.5, 0
    b = results([[("d4", 0.9), ("d2", 0.7), ("d5", 0.5)]])  # minmax: 1, 0.5, 0
    out = convex_combination([a, b], [0.6, 0.4])
    # missing="min": a document absent from a list gets that list's lowest normalised score (0 here)
    want = {"d1": 0.6, "d2": 0.6 * 0.5 + 0.4 * 0.5, "d3": 0.0, "d4": 0.4, "d5": 0.0}
    assert as_dict(out) == pytest.approx(want, abs=1e-6)
    assert ids(out) == ["d1", "d2", "d4", "d3", "d5"]  # d3 and d5 tie: id ascending
    check_layout(out)
    # zscore gives negative minima, so "min" and "zero" differ
    zmin = convex_combination([a, b], [0.5, 0.5], normalization="zscore", missing="min")
    zzero = convex_combination([a, b], [0.5, 0.5], normalization="zscore", missing="zero")
    za, zb = normalize_scores(a, "zscore").scores[0], normalize_scores(b, "zscore").scores[0]
    assert as_dict(zmin)["d1"] == pytest.approx(0.5 * za[0] + 0.5 * zb.min(), abs=1e-6)
    assert as_dict(zzero)["d1"] == pytest.approx(0.5 * za[0], abs=1e-6)
    assert as_dict(zzero)["d2"] == pytest.approx(0.5 * za[1] + 0.5 * zb[1], abs=1e-6)


def test_convex_with_padding_different_widths_and_empty_queries() -> None:
    a = results([[("x", 2.0), ("y", 1.0)], [("p", 1.0)], []], k=5)
    b = results([[("y", 3.0)], [], []], k=1)
    out = convex_combination([a, b], [0.5, 0.5])
    assert as_dict(out, 0) == pytest.approx({"y": 0.5 * 0.0 + 0.5 * 1.0, "x": 0.5 * 1.0 + 0.5 * 1.0})
    assert as_dict(out, 1) == pytest.approx({"p": 0.5})  # b returned nothing: it adds 0
    assert out.ids[2].tolist() == [None, None] and out.ids.shape == (3, 2)
    check_layout(out)


def test_convex_against_a_reference_implementation() -> None:
    rng = np.random.default_rng(3)
    rows_a = [[(f"d{d}", float(s)) for d, s in zip(rng.choice(40, 15, replace=False), rng.normal(size=15))]
              for _ in range(6)]
    rows_b = [[(f"d{d}", float(s)) for d, s in zip(rng.choice(40, 25, replace=False), rng.random(25) * 30)]
              for _ in range(6)]
    for rows in (rows_a, rows_b):
        for r in rows:
            r.sort(key=lambda x: -x[1])
    a, b = results(rows_a), results(rows_b)
    for norm in ("minmax", "zscore", "dbsf", "max", "none"):
        out = convex_combination([a, b], [0.3, 0.7], normalization=norm)
        na, nb = normalize_scores(a, norm), normalize_scores(b, norm)
        for q in range(6):
            sa, sb = as_dict(na, q), as_dict(nb, q)
            fa, fb = min(sa.values()), min(sb.values())
            want = {d: 0.3 * sa.get(d, fa) + 0.7 * sb.get(d, fb) for d in set(sa) | set(sb)}
            assert as_dict(out, q) == pytest.approx(want, rel=1e-5, abs=1e-5), norm


def test_results_do_not_depend_on_list_order() -> None:
    a = results([[("c", 1.0), ("a", 0.5)], [("k", 2.0)]])
    b = results([[("a", 1.0), ("c", 0.5), ("b", 0.1)], [("j", 2.0)]])
    for method in ("rrf", "convex"):
        one, two = fuse([a, b], method), fuse([b, a], method)
        assert one.ids.tolist() == two.ids.tolist() and np.array_equal(one.scores, two.scores)
    out = fuse([a, b], "rrf")
    assert ids(out, 0)[:2] == ["a", "c"] and ids(out, 1) == ["j", "k"]


def test_integer_long_and_mixed_ids() -> None:
    long = "x" * 100
    a = results([[(long, 2.0), (long + "y", 1.0)]])
    assert ids(rrf([a, a])) == [long, long + "y"]
    ints = results([[(3, 2.0), (1, 1.0)]])
    assert ids(rrf([ints, results([[(1, 5.0), (3, 1.0)]])])) == [1, 3]
    mixed = results([[("7", 1.0), (7, 1.0)]])
    assert set(ids(convex_combination([mixed], [1.0]))) == {"7", 7}


# ----------------------------------------------------------------------------- dispatch and errors


def test_fuse_dispatch_and_aliases() -> None:
    a = results([[("a", 2.0), ("b", 1.0)]])
    b = results([[("b", 2.0), ("c", 1.0)]])
    linear = fuse([a, b], "linear", weights=[0.2, 0.8], normalization="dbsf")
    convex = convex_combination([a, b], [0.2, 0.8], normalization="dbsf")
    assert linear.ids.tolist() == convex.ids.tolist() and np.array_equal(linear.scores, convex.scores)
    assert np.array_equal(fuse([a, b], "convex").scores, convex_combination([a, b], [0.5, 0.5]).scores)
    assert np.array_equal(fuse([a, b]).scores, rrf([a, b]).scores)
    with pytest.raises(FusionError, match="rrf, convex, linear"):
        fuse([a, b], "borda")
    with pytest.raises(FusionError, match="normalization"):
        fuse([a, b], "rrf", normalization="minmax")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a, b: rrf([a, results([[("x", 1.0)]] * 3)]), "rows"),
        (lambda a, b: rrf([a, b], weights=[1.0]), "one weight per list"),
        (lambda a, b: rrf([a, b], weights=[1.0, -1.0]), "non-negative"),
        (lambda a, b: rrf([a, b], weights=[0.0, 0.0]), "not all zero"),
        (lambda a, b: rrf([], k=60), "non-empty"),
        (lambda a, b: rrf(a), "non-empty"),
        (lambda a, b: rrf([a, b], k=-1), "k must"),
        (lambda a, b: rrf([a, b], depth=0), "depth"),
        (lambda a, b: convex_combination([a, b], [1, 1], missing="mean"), "min, zero"),
        (lambda a, b: convex_combination([a, b], [1, 1], normalization="l2"), "minmax"),
        (lambda a, b: convex_combination([a, b], [1, 1], top_k=-1), "top_k"),
    ],
)
def test_bad_inputs_raise_specific_errors(call, message) -> None:  # type: ignore[no-untyped-def]
    a = results([[("a", 1.0)], [("b", 1.0)]])
    b = results([[("b", 1.0)], []], k=1)
    with pytest.raises(FusionError, match=message):
        call(a, b)


# ----------------------------------------------------------------------------- tuning


def _perfect_and_random(n_queries: int = 40, k: int = 30, seed: int = 0, gap: float = 0.0):  # type: ignore[no-untyped-def]
    """List 0 puts each query's three relevant documents first (``gap`` above the rest); list 1 ranks the same
    documents randomly."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i}" for i in range(n_queries)]
    qrels, rows_good, rows_bad = {}, [], []
    for q in qids:
        docs = [f"{q}-d{j}" for j in range(k)]
        qrels[q] = {docs[0]: 1, docs[1]: 1, docs[2]: 1}
        rows_good.append([(d, float(k - j) + (gap if j < 3 else 0.0)) for j, d in enumerate(docs)])
        shuffled = rng.permutation(k)
        rows_bad.append([(docs[j], float(k - r) * 10) for r, j in enumerate(shuffled)])
    return results(rows_good), results(rows_bad), qids, qrels


def _brute_force(lists, qids, qrels, method, options, metric):  # type: ignore[no-untyped-def]
    scores = {}
    for option in options:
        for i in range(21):
            w = (i / 20, (20 - i) / 20)
            key = "normalization" if method == "convex" else "k"
            run = fuse(lists, method, weights=w, **{key: option}).to_run(qids)
            scores[(w, option)] = evaluate(run, qrels, [metric])[metric]
    return scores


def test_tune_fusion_recovers_the_perfect_list() -> None:
    # The gap lets the perfect list absorb some weight on the random one, so several weightings score 1.0.
    good, bad, qids, qrels = _perfect_and_random(gap=100.0)
    best = tune_fusion([bad, good], qids, qrels)
    assert best["method"] == "convex" and best["metric"] == "ndcg@10"
    assert best["score"] == pytest.approx(1.0)
    assert best["weights"][1] > best["weights"][0]
    assert set(best) == {"method", "weights", "normalization", "score", "metric"}
    # the most balanced of the weightings that reach the best score, checked through the public path
    grid = _brute_force([bad, good], qids, qrels, "convex", ("minmax", "zscore", "dbsf"), "ndcg@10")
    top = max(grid.values())
    assert best["score"] == pytest.approx(top, abs=1e-12)
    winners = [w for (w, _), s in grid.items() if s >= top - 1e-12]
    assert len(set(winners)) > 2  # a real tie to break
    assert abs(best["weights"][0] - 0.5) == min(abs(w[0] - 0.5) for w in winners)
    assert grid[(best["weights"], best["normalization"])] == pytest.approx(best["score"], abs=1e-12)
    assert tune_fusion([bad, good], qids, qrels) == best  # deterministic


def test_tune_fusion_rrf_matches_public_fusion_even_with_ties() -> None:
    good, bad, qids, qrels = _perfect_and_random(n_queries=25, seed=1)
    # With equal weights RRF ties every pair of documents at swapped ranks (r1, r2) / (r2, r1), some at the
    # metric's cutoff: the truncated run that tuning evaluates must score as the full fused run does.
    for metric in ("ndcg@3", "p@5", "map"):
        best = tune_fusion([bad, good], qids, qrels, method="rrf", metric=metric, rrf_ks=(1, 60))
        assert best["k"] in (1, 60) and "normalization" not in best
        run = rrf([bad, good], k=best["k"], weights=best["weights"]).to_run(qids)
        assert evaluate(run, qrels, [metric])[metric] == pytest.approx(best["score"], abs=1e-12)
        grid = _brute_force([bad, good], qids, qrels, "rrf", (1, 60), metric)
        assert best["score"] == pytest.approx(max(grid.values()), abs=1e-12)


def test_tune_fusion_three_lists_and_errors() -> None:
    good, bad, qids, qrels = _perfect_and_random(n_queries=10)
    best = tune_fusion([bad, good, bad], qids, qrels, normalizations=("minmax",))
    assert len(best["weights"]) == 3 and best["weights"][1] == max(best["weights"])
    assert sum(best["weights"]) == pytest.approx(1.0)
    custom = tune_fusion([bad, good], qids, qrels, weight_grid=[(1.0, 0.0), (0.0, 1.0)], normalizations=("max",))
    assert custom["weights"] == (0.0, 1.0) and custom["normalization"] == "max"
    with pytest.raises(FusionError, match="query ids"):
        tune_fusion([bad, good], qids[:-1], qrels)
    with pytest.raises(FusionError, match="judgments"):
        tune_fusion([bad, good], [f"other{i}" for i in range(10)], qrels)
    with pytest.raises(FusionError, match="rrf, convex, linear"):
        tune_fusion([bad, good], qids, qrels, method="combmnz")


# ----------------------------------------------------------------------------- properties

_ROWS = st.lists(st.lists(st.integers(0, 30), unique=True, max_size=12), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(_ROWS)
def test_rrf_of_one_list_keeps_its_order(rows: list[list[int]]) -> None:
    res = results([[(f"d{d:02d}", float(-j)) for j, d in enumerate(row)] for row in rows])
    out = rrf([res], k=60)
    for q, row in enumerate(rows):
        assert ids(out, q) == [f"d{d:02d}" for d in row]
    check_layout(out)


@settings(max_examples=60, deadline=None)
@given(_ROWS, _ROWS, st.sampled_from(["minmax", "zscore", "dbsf"]))
def test_convex_with_all_weight_on_one_list_keeps_its_order(a_rows, b_rows, norm) -> None:  # type: ignore[no-untyped-def]
    b_rows = (b_rows * len(a_rows))[: len(a_rows)]
    a = results([[(f"d{d:02d}", float(100 - 7 * j)) for j, d in enumerate(row)] for row in a_rows])
    b = results([[(f"d{d:02d}", float(50 - j)) for j, d in enumerate(row)] for row in b_rows])
    out = convex_combination([a, b], [1.0, 0.0], normalization=norm)
    check_layout(out)
    for q, row in enumerate(a_rows):
        first = {f"d{d:02d}" for d in row}
        assert [d for d in ids(out, q) if d in first] == [f"d{d:02d}" for d in row]
        assert set(ids(out, q)) == first | {f"d{d:02d}" for d in b_rows[q]}


# ----------------------------------------------------------------------------- dense Rocchio


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_rocchio_formula_and_movement_toward_feedback() -> None:
    rng = np.random.default_rng(0)
    queries = _unit(rng.normal(size=(3, 8))).astype(np.float32)
    feedback = [_unit(rng.normal(size=(4, 8))).astype(np.float32), np.empty((0, 8), np.float32),
                _unit(rng.normal(size=(1, 8))).astype(np.float32)]
    raw = rocchio(queries, feedback, alpha=0.8, beta=0.4, normalize=False)
    np.testing.assert_allclose(raw[0], 0.8 * queries[0] + 0.4 * feedback[0].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(raw[2], 0.8 * queries[2] + 0.4 * feedback[2][0], rtol=1e-5)
    assert np.array_equal(raw[1], queries[1])  # empty feedback: unchanged
    out = rocchio(queries, feedback)
    assert out.dtype == np.float32 and out.shape == queries.shape
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(out[1], queries[1])
    for i in (0, 2):
        centroid = _unit(feedback[i].mean(axis=0))
        assert out[i] @ centroid > queries[i] @ centroid
    only_feedback = rocchio(queries, feedback, alpha=0.0, beta=1.0)
    np.testing.assert_allclose(only_feedback[0], _unit(feedback[0].mean(axis=0)), rtol=1e-5)


def test_rocchio_leaves_inputs_alone_and_rejects_bad_shapes() -> None:
    queries = np.eye(2, dtype=np.float32)
    before = queries.copy()
    out = rocchio(queries, [np.array([[0.0, 1.0]]), []])
    assert np.array_equal(queries, before) and np.array_equal(out[1], queries[1])
    assert rocchio(queries, [[], []]).tolist() == queries.tolist()
    with pytest.raises(FeedbackError, match="one per query"):
        rocchio(queries, [np.ones((1, 2))])
    with pytest.raises(FeedbackError, match=r"\(n_docs, 2\)"):
        rocchio(queries, [np.ones((1, 3)), []])
    with pytest.raises(FeedbackError, match="2-d"):
        rocchio(np.ones(2), [[]])
