"""Fusion parameters tuned on judged queries: a grid search over weights and normalisation (convex) or RRF k.

Lives in evaluation (not retrieval) because it scores every candidate with the evaluation metrics; it reuses
fusion's aligned-score arrays so each grid point costs one scatter-add, not a new fusion.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from retrievekit.evaluation.metrics import evaluate, parse_metric
from retrievekit.retrieval.base import SearchResults
from retrievekit.retrieval.fusion import (
    _MISSING,
    FusionError,
    _align,
    _Aligned,
    _canonical_method,
    _check_weights,
    _convex_scores,
    _normalized_hits,
    _rrf_scores,
)

logger = logging.getLogger(__name__)



def _simplex_grid(n_lists: int) -> list[tuple[float, ...]]:
    """Weight vectors summing to 1: step 0.05 for two lists, 0.1 for three, 0.25 for more."""
    steps = {1: 1, 2: 20, 3: 10}.get(n_lists, 4)
    grid = []
    for cut in itertools.combinations(range(steps + n_lists - 1), n_lists - 1):  # stars and bars
        parts = np.diff((-1, *cut, steps + n_lists - 1)) - 1
        grid.append(tuple(float(p) / steps for p in parts))
    # First list's weight ascending, so (0, 1) ... (1, 0) for two lists.
    return sorted(grid)


def _imbalance(weights: Sequence[float]) -> float:
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return float(np.sum((w - 1.0 / len(w)) ** 2))


def _score_run(
    aligned: _Aligned, fused: np.ndarray, query_ids: Sequence[str], qrels: Mapping[str, Mapping[str, int]],
    metric: str, cutoff: int | None,
) -> float:
    scores = fused.astype(np.float32)  # what fusion would return, so ties are the ones evaluation would see
    keep = np.isfinite(scores)
    if cutoff is not None and scores.shape[1] > cutoff:
        # Only a query's top ``cutoff`` matter to metric@cutoff, so the run holds just those (no full sort).
        # Documents tied with the last one stay: trec_eval orders ties by id descending, which may lift one of
        # them above the cut.
        threshold = -np.partition(-scores, cutoff - 1, axis=1)[:, cutoff - 1:cutoff]
        keep &= scores >= threshold
    run: dict[str, dict[str, float]] = {}
    for qid, row_keep, row_codes, row_scores in zip(query_ids, keep, aligned.codes, scores):
        if qid in qrels:
            docs = aligned.vocab[row_codes[row_keep]].tolist()
            run[qid] = dict(zip(docs, row_scores[row_keep].tolist()))
    return evaluate(run, qrels, [metric])[metric]


def tune_fusion(
    results: Sequence[SearchResults],
    query_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    method: str = "convex",
    metric: str = "ndcg@10",
    normalizations: Sequence[str] = ("minmax", "zscore", "dbsf"),
    weight_grid: Sequence[Sequence[float]] | None = None,
    rrf_ks: Sequence[float] = (10, 20, 40, 60, 100),
    missing: str = "min",
) -> dict[str, Any]:
    """Grid-search fusion parameters that maximise ``metric`` (any :func:`retrievekit.evaluation.evaluate`
    metric) over the judged queries of ``query_ids`` (one per result row).

    ``method="convex"`` searches weights x ``normalizations``; ``method="rrf"`` searches weights x ``rrf_ks``.
    ``weight_grid``: the weight vectors to try; default for two lists ``(w, 1 - w)`` with ``w`` = 0, 0.05, ..., 1,
    for more lists a simplex grid (step 0.1 for three lists, 0.25 beyond). Equal scores prefer the more balanced
    weights, then the earlier grid entry, so the answer is deterministic.

    Returns ``{"method", "weights", "normalization" (convex) or "k" (rrf), "score", "metric"}``; pass its
    ``weights`` and ``normalization`` / ``k`` back to :func:`fuse` to apply it.
    """
    name = _canonical_method(method)
    if len(query_ids) != (len(results[0]) if len(results) and isinstance(results[0], SearchResults) else -1):
        raise FusionError(f"{len(query_ids)} query ids for result lists of "
                          f"{len(results[0]) if len(results) else 0} rows; give one id per row")
    if not any(q in qrels for q in query_ids):
        raise FusionError("none of query_ids has judgments in qrels; nothing to tune against")
    if missing not in _MISSING:
        raise FusionError(f"missing must be one of {', '.join(_MISSING)}, got {missing!r}")
    parsed = parse_metric(metric)
    metric = str(parsed)
    cutoff = parsed.k if parsed.name in ("ndcg", "p", "recall", "success", "mrr", "map") else None

    aligned = _align(results)
    n_lists = len(aligned.lists)
    grid = [tuple(float(x) for x in w) for w in weight_grid] if weight_grid is not None else _simplex_grid(n_lists)
    if not grid:
        raise FusionError("weight_grid is empty")
    weights = [_check_weights(w, n_lists) for w in grid]

    if name == "convex":
        options: list[Any] = list(normalizations)
        normalized = {n: _normalized_hits(aligned, n) for n in options}  # validates the names, computed once

        def fused_for(w: np.ndarray, option: Any) -> np.ndarray:
            return _convex_scores(aligned, normalized[option], w, missing)
    else:
        options = list(rrf_ks)
        for k in options:
            if not isinstance(k, (int, float, np.integer, np.floating)) or not math.isfinite(k) or k < 0:
                raise FusionError(f"rrf_ks must hold finite numbers >= 0, got {k!r}")

        def fused_for(w: np.ndarray, option: Any) -> np.ndarray:
            return _rrf_scores(aligned, w, float(option), None)
    if not options:
        raise FusionError("nothing to search: normalizations / rrf_ks is empty")

    best: tuple[float, float, int] | None = None
    best_config: dict[str, Any] = {}
    for index, (option, (w_tuple, w)) in enumerate(itertools.product(options, zip(grid, weights))):
        score = _score_run(aligned, fused_for(w, option), query_ids, qrels, metric, cutoff)
        # Higher score first; near-equal scores (summation noise) fall to balance, then grid order.
        rank = (-round(score, 12), _imbalance(w), index)
        if best is None or rank < best:
            best = rank
            best_config = {"method": name, "weights": w_tuple,
                           ("normalization" if name == "convex" else "k"): option, "score": score, "metric": metric}
        logger.debug("fusion %s weights=%s option=%s: %s=%.6f", name, w_tuple, option, metric, score)
    logger.info("best fusion: %s", best_config)
    return best_config
