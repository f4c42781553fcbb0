"""Hybrid fusion of several result lists for the same queries: score normalisation, reciprocal rank fusion,
convex (linear) combination, and a grid search of their parameters against relevance judgments.

Every function takes and returns :class:`SearchResults` (ids None-padded, float32 scores -inf-padded); the input
lists may have different widths. Fused rows hold every document that any list returned for the query, best first,
ties ordered by document id ascending so results never depend on input order.

The work is vectorised over queries: document ids are mapped once to integer codes and every (query, document)
pair to a column of that query's row in a dense union matrix (:class:`_Aligned`). A fusion is then a handful of
scatter-adds and one row-wise sort, which is what makes ``retrievekit.evaluation.tuning.tune_fusion`` cheap to
repeat over a grid.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.registry import Registry, registry
from retrievekit.retrieval.base import SearchResults

logger = logging.getLogger(__name__)

__all__ = [
    "FUSION_METHODS", "NORMALIZATIONS", "FusionError", "convex_combination", "fuse", "normalize_scores", "rrf",
]


class FusionError(RetrievekitError, ValueError):
    """Fusion inputs or parameters that cannot be used; the message says what is accepted."""


# ----------------------------------------------------------------------------- normalisation kernels
# Each kernel maps float64 scores (n, k) with a validity mask to normalised scores; values at invalid positions
# are unspecified. Statistics are per row (query) over its valid hits only.


def _row_stats(scores: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    count = valid.sum(axis=1)
    safe = np.maximum(count, 1)
    mean = np.where(valid, scores, 0.0).sum(axis=1) / safe
    var = np.where(valid, (scores - mean[:, None]) ** 2, 0.0).sum(axis=1) / safe  # population variance
    return mean, np.sqrt(var)


def _minmax(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    lo = np.where(valid, scores, np.inf).min(axis=1, initial=np.inf)[:, None]
    hi = np.where(valid, scores, -np.inf).max(axis=1, initial=-np.inf)[:, None]
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span > 0, (scores - lo) / np.where(span > 0, span, 1.0), 1.0)


def _zscore(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    mean, std = _row_stats(scores, valid)
    std = std[:, None]
    return np.where(std > 0, (scores - mean[:, None]) / np.where(std > 0, std, 1.0), 0.0)


def _dbsf(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    # Scores beyond mean +- 3 std fall outside [0, 1]; they are not clipped, so the ranking within a list is kept.
    mean, std = _row_stats(scores, valid)
    std = std[:, None]
    low = mean[:, None] - 3.0 * std
    return np.where(std > 0, (scores - low) / np.where(std > 0, 6.0 * std, 1.0), 0.5)


def _max(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    # The largest *absolute* score: the same as dividing by the maximum for non-negative scores, and it never
    # flips the order of a list whose scores are all negative.
    top = np.where(valid, np.abs(scores), 0.0).max(axis=1, initial=0.0)[:, None]
    return np.where(top > 0, scores / np.where(top > 0, top, 1.0), scores)


def _identity(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return scores


NORMALIZERS: Registry[np.ndarray] = registry("score normalization", error=FusionError)
for _name, _function, _description in (
    ("minmax", _minmax, "rescale each list to [0, 1]"),
    ("zscore", _zscore, "subtract the mean, divide by the standard deviation"),
    ("dbsf", _dbsf, "distribution-based: mean +- 3 standard deviations to [0, 1]"),
    ("max", _max, "divide by the largest absolute score"),
    ("none", _identity, "raw scores"),
):
    NORMALIZERS.register(_name, _function, description=_description)
NORMALIZATIONS: tuple[str, ...] = tuple(NORMALIZERS.names())
"""Names accepted by ``normalization`` / ``method`` of the normalising functions."""


def _normalizer(method: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    if not isinstance(method, str) or method not in NORMALIZERS.names():  # names are exact
        raise FusionError(f"unknown normalization {method!r}; valid: {', '.join(NORMALIZERS.names())}")
    return NORMALIZERS.factory(method)


# ----------------------------------------------------------------------------- input checks


def _valid_mask(results: SearchResults, where: str) -> np.ndarray:
    ids, scores = np.asarray(results.ids), np.asarray(results.scores)
    if ids.ndim != 2 or ids.shape != scores.shape:
        raise FusionError(f"{where}: ids and scores must be 2-d arrays of one shape, got {ids.shape} and "
                          f"{scores.shape}")
    valid: np.ndarray = ids != None  # noqa: E711 -- elementwise test on an object array
    if not np.isfinite(scores[valid]).all():
        raise FusionError(f"{where}: every returned hit needs a finite score (found inf or NaN)")
    return valid


def normalize_scores(results: SearchResults, method: str = "minmax") -> SearchResults:
    """Rescale each query's scores, over the hits that query returned (padding stays None / -inf).

    ``method``:

    * ``"minmax"``: ``(s - min) / (max - min)`` into [0, 1]; a query whose hits all score the same gets 1.0.
    * ``"zscore"``: ``(s - mean) / std`` (population std); a zero std gives 0.
    * ``"dbsf"``: distribution-based score fusion's scaling, ``(s - (mean - 3 std)) / (6 std)``: mean +- 3 std
      maps to [0, 1] (outliers beyond are not clipped); a zero std gives 0.5, the position of the mean.
    * ``"max"``: divide by the largest absolute score (= by the maximum for non-negative scores).
    * ``"none"``: unchanged.

    Every method is increasing, so each query's order is kept.
    """
    kernel = _normalizer(method)
    valid = _valid_mask(results, "normalize_scores")
    scores = np.asarray(results.scores, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # padding's -inf may meet inf; those cells are dropped
        out = np.where(valid, kernel(scores, valid), -np.inf).astype(np.float32)
    return SearchResults(np.array(results.ids, dtype=object, copy=True), out)


# ----------------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class _Hits:
    """The hits of one list that take part in fusion, as flat arrays aligned with each other."""

    rows: np.ndarray  # int64: query row
    cols: np.ndarray  # int64: column of the document in that query's union row
    cells: np.ndarray  # int64: rows * width + cols, the cell of the raveled union matrix
    ranks: np.ndarray  # int64: 1-based rank among the list's hits for that query
    scores: np.ndarray  # float64: raw score
    shape: tuple[int, int]  # of the list's own (n_queries, k) arrays
    flat: np.ndarray  # int64: position in the list's raveled (n_queries, k) arrays


@dataclass(frozen=True)
class _Aligned:
    """Several result lists over the same queries, with every (query, document) pair given a column of a dense
    (n_queries, width) union matrix; columns of a row are in document-id order, -1 codes mark padding."""

    vocab: np.ndarray  # object: every document id, sorted
    codes: np.ndarray  # int64 (n_queries, width): index into vocab, -1 past the row's last document
    lists: list[_Hits]

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape


_MAX_FIXED_WIDTH = 64  # longer ids would make the fixed-width unicode array below wasteful


def _encode_ids(ids: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ids (object array) and the index of each input id in them."""
    # (numpy's unicode arrays drop trailing NULs, hence the second test)
    if ids and set(map(type, ids)) == {str} and "\0" not in "".join(ids):
        width = max(map(len, ids))
        if width <= _MAX_FIXED_WIDTH:
            # numpy sorts fixed-width unicode in C, in Python's str order: about twice as fast as a dict
            vocab, codes = np.unique(np.array(ids, dtype=f"U{max(width, 1)}"), return_inverse=True)
            return vocab.astype(object), codes.astype(np.int64).ravel()
    unique = set(ids)
    try:
        ordered = sorted(unique)
    except TypeError:  # mixed id types (e.g. int and str): order by type, then by text
        ordered = sorted(unique, key=lambda d: (type(d).__name__, str(d)))
    lookup = {d: c for c, d in enumerate(ordered)}
    vocab = np.empty(len(ordered), dtype=object)
    vocab[:] = ordered
    return vocab, np.fromiter(map(lookup.__getitem__, ids), dtype=np.int64, count=len(ids))


def _align(results: Sequence[SearchResults]) -> _Aligned:
    if isinstance(results, SearchResults) or not len(results):
        raise FusionError("fusion needs a non-empty sequence of SearchResults (one per retriever)")
    n_queries = len(results[0])
    masks = []
    for i, r in enumerate(results):
        if not isinstance(r, SearchResults):
            raise FusionError(f"result list {i} is a {type(r).__name__}, not SearchResults")
        if len(r) != n_queries:
            raise FusionError(f"result list {i} has {len(r)} query rows, list 0 has {n_queries}")
        masks.append(_valid_mask(r, f"result list {i}"))

    vocab, all_codes = _encode_ids([d for r, m in zip(results, masks) for d in np.asarray(r.ids)[m].tolist()])
    n_docs = max(len(vocab), 1)

    keys, partial = [], []
    start = 0
    for r, mask in zip(results, masks):
        flat = np.flatnonzero(mask.ravel())
        rows = flat // mask.shape[1] if mask.shape[1] else flat
        codes = all_codes[start:start + len(flat)]
        start += len(flat)
        key = rows * n_docs + codes
        # A document listed twice for one query counts once, at its best (first) rank.
        _, first = np.unique(key, return_index=True)
        if len(first) < len(key):
            logger.debug("dropping %d repeated documents within a result list", len(key) - len(first))
        first.sort()
        ranks = np.cumsum(mask, axis=1).ravel()[flat[first]]
        scores = np.asarray(r.scores, dtype=np.float64).ravel()[flat[first]]
        keys.append(key[first])
        partial.append((rows[first], ranks, scores, mask.shape, flat[first]))

    union, inverse = np.unique(np.concatenate(keys) if keys else np.empty(0, np.int64), return_inverse=True)
    union_rows = union // n_docs
    starts = np.searchsorted(union_rows, np.arange(n_queries))
    counts = np.bincount(union_rows, minlength=n_queries)
    width = int(counts.max()) if n_queries else 0
    union_cols = np.arange(len(union)) - starts[union_rows]
    codes = np.full((n_queries, width), -1, dtype=np.int64)
    codes[union_rows, union_cols] = union % n_docs

    lists, offset = [], 0
    for (rows, ranks, scores, shape, flat), key in zip(partial, keys):
        cols = union_cols[inverse[offset:offset + len(key)]]
        offset += len(key)
        lists.append(_Hits(rows, cols, rows * width + cols, ranks, scores, shape, flat))
    return _Aligned(vocab, codes, lists)


def _to_results(aligned: _Aligned, fused: np.ndarray, top_k: int | None) -> SearchResults:
    """Sort each row of fused scores (-inf = not a result), best first, ties by document id ascending."""
    scores = fused.astype(np.float32)
    # Columns are in id order, so a stable sort on the negated score breaks ties by id ascending.
    order = np.argsort(-scores, axis=1, kind="stable")
    scores = np.take_along_axis(scores, order, axis=1)
    codes = np.take_along_axis(aligned.codes, order, axis=1)
    keep = np.isfinite(scores)
    width = int(keep.sum(axis=1).max()) if len(keep) else 0
    if top_k is not None:
        width = min(width, top_k)
    scores, codes, keep = scores[:, :width], codes[:, :width], keep[:, :width]
    ids = np.empty(codes.shape, dtype=object)
    ids[keep] = aligned.vocab[codes[keep]]
    scores[~keep] = -np.inf
    return SearchResults(ids, scores)


# ----------------------------------------------------------------------------- fusion kernels


def _check_weights(weights: Sequence[float] | None, n_lists: int) -> np.ndarray:
    if weights is None:
        return np.ones(n_lists)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_lists,):
        raise FusionError(f"{n_lists} result lists but weights has shape {w.shape}; give one weight per list")
    if not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise FusionError(f"weights must be finite, non-negative and not all zero, got {list(w)}")
    return w


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 0):
        raise FusionError(f"top_k must be a non-negative integer or None, got {top_k!r}")


def _scatter_sum(aligned: _Aligned, cells: list[np.ndarray], values: list[np.ndarray]) -> np.ndarray:
    """Sum values into the cells of the (n_queries, width) union matrix."""
    size = aligned.codes.size
    if not cells:
        return np.zeros(aligned.shape)
    return np.bincount(np.concatenate(cells), np.concatenate(values), minlength=size).reshape(aligned.shape)


def _rrf_scores(aligned: _Aligned, weights: np.ndarray, k: float, depth: int | None) -> np.ndarray:
    cells, values = [], []
    for w, hits in zip(weights, aligned.lists):
        use = slice(None) if depth is None else hits.ranks <= depth
        cells.append(hits.cells[use])
        values.append(w / (k + hits.ranks[use]))
    fused = _scatter_sum(aligned, cells, values)
    if depth is None:
        return np.where(aligned.codes >= 0, fused, -np.inf)
    present = np.zeros(aligned.codes.size, dtype=bool)
    for c in cells:
        present[c] = True
    return np.where(present.reshape(aligned.shape), fused, -np.inf)


def _normalized_hits(aligned: _Aligned, normalization: str) -> list[np.ndarray]:
    """Each list's hit scores (aligned with its _Hits arrays) normalised per query."""
    kernel = _normalizer(normalization)
    out = []
    for hits in aligned.lists:
        scores = np.zeros(hits.shape)
        valid = np.zeros(hits.shape, dtype=bool)
        scores.flat[hits.flat] = hits.scores
        valid.flat[hits.flat] = True
        with np.errstate(over="ignore"):
            out.append(kernel(scores, valid).ravel()[hits.flat])
    return out


def _convex_scores(aligned: _Aligned, normalized: list[np.ndarray], weights: np.ndarray, missing: str) -> np.ndarray:
    n_queries = aligned.shape[0]
    base = np.zeros(n_queries)  # what every document of a query gets from lists that lack it
    cells, values = [], []
    for w, hits, scores in zip(weights, aligned.lists, normalized):
        fill = np.zeros(n_queries)
        if missing == "min":
            lowest = np.full(n_queries, np.inf)
            np.minimum.at(lowest, hits.rows, scores)
            fill = np.where(np.isfinite(lowest), lowest, 0.0)  # a query the list returned nothing for: 0
        base += w * fill
        cells.append(hits.cells)
        values.append(w * (scores - fill[hits.rows]))
    fused = _scatter_sum(aligned, cells, values)
    return np.where(aligned.codes >= 0, fused + base[:, None], -np.inf)


_MISSING = ("min", "zero")


def rrf(
    results: Sequence[SearchResults],
    *,
    k: float = 60,
    weights: Sequence[float] | None = None,
    depth: int | None = None,
    top_k: int | None = None,
) -> SearchResults:
    """Weighted reciprocal rank fusion: ``score(d) = sum_i w_i / (k + rank_i(d))``, ranks starting at 1.

    A list that lacks ``d`` adds nothing. ``weights``: one non-negative weight per list (default all 1).
    ``depth``: only each list's first ``depth`` hits count (a document beyond it in every list is dropped).
    ``top_k``: keep at most this many fused hits per query (default: all, the union of the lists).
    Rows are sorted by fused score descending, ties by document id ascending.
    """
    aligned = _align(results)
    w = _check_weights(weights, len(aligned.lists))
    if not isinstance(k, (int, float, np.integer, np.floating)) or not math.isfinite(k) or k < 0:
        raise FusionError(f"the RRF constant k must be a finite number >= 0, got {k!r}")
    if depth is not None and (not isinstance(depth, (int, np.integer)) or depth < 1):
        raise FusionError(f"depth must be a positive integer or None, got {depth!r}")
    _check_top_k(top_k)
    return _to_results(aligned, _rrf_scores(aligned, w, float(k), depth), top_k)


def convex_combination(
    results: Sequence[SearchResults],
    weights: Sequence[float],
    *,
    normalization: str = "minmax",
    missing: str = "min",
    top_k: int | None = None,
) -> SearchResults:
    """Linear fusion: normalise each list per query (see :func:`normalize_scores`), then ``sum_i w_i * s_i(d)``.

    ``missing``: the normalised score a document gets from a list that did not return it for the query —
    ``"min"``, that list's lowest normalised score for the query (0 when the list returned nothing), or ``"zero"``.
    ``top_k``: keep at most this many fused hits per query (default: the union of the lists).
    Rows are sorted by fused score descending, ties by document id ascending.
    """
    if missing not in _MISSING:
        raise FusionError(f"missing must be one of {', '.join(_MISSING)}, got {missing!r}")
    _normalizer(normalization)
    _check_top_k(top_k)
    aligned = _align(results)
    w = _check_weights(weights, len(aligned.lists))
    fused = _convex_scores(aligned, _normalized_hits(aligned, normalization), w, missing)
    return _to_results(aligned, fused, top_k)


def _convex_with_default_weights(results: Sequence[SearchResults], **params: Any) -> SearchResults:
    weights = params.pop("weights", None)
    if weights is None:
        weights = [1.0 / len(results)] * len(results) if len(results) else []
    return convex_combination(results, weights, **params)


@dataclass(frozen=True)
class _Fuser:
    function: Callable[..., SearchResults]
    accepted: tuple[str, ...]

    def __call__(self, results: Sequence[SearchResults], **params: Any) -> SearchResults:
        return self.function(results, **params)


FUSERS: Registry[SearchResults] = registry("fusion method", error=FusionError)
FUSERS.register("rrf", _Fuser(rrf, ("k", "weights", "depth", "top_k")), usage="rrf",
                description="reciprocal rank fusion; parameters: k, weights, depth, top_k")
FUSERS.register("convex", _Fuser(_convex_with_default_weights, ("weights", "normalization", "missing", "top_k")),
                usage="convex (alias: linear)", aliases=["linear"],
                description="weighted sum of normalized scores; parameters: weights, normalization, missing, top_k")


def _method_names() -> tuple[str, ...]:
    return tuple(name for entry in FUSERS for name in (entry.name, *entry.aliases))


FUSION_METHODS: tuple[str, ...] = _method_names()
"""Names accepted by :func:`fuse` and ``retrievekit.evaluation.tuning.tune_fusion``."""


def _canonical_method(method: str) -> str:
    if not isinstance(method, str) or method not in _method_names():  # names are exact
        raise FusionError(f"unknown fusion method {method!r}; valid: {', '.join(_method_names())}")
    return FUSERS.entry(method).name


def fuse(results: Sequence[SearchResults], method: str = "rrf", **params: Any) -> SearchResults:
    """Fuse result lists by method name: ``"rrf"`` (:func:`rrf`) or ``"convex"`` / ``"linear"``
    (:func:`convex_combination`, equal weights unless ``weights`` is given); ``params`` go to that function."""
    name = _canonical_method(method)
    fuser = FUSERS.factory(name)
    assert isinstance(fuser, _Fuser)
    function, accepted = fuser.function, fuser.accepted
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise FusionError(f"fusion method {name!r} takes no parameter {', '.join(unknown)}; "
                          f"accepted: {', '.join(accepted)}")
    return function(results, **params)
