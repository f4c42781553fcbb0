"""Per-segment scoring: the compiled kernel when it was built, else an equivalent numpy implementation.

Two compiled paths return the same top k (documents and float32 scores, bit for bit): the exhaustive one adds every
posting of every query term into an accumulator; the MaxScore one (``units`` given) skips documents that cannot
enter the top k, judged from each term's largest score (``term_units``), and pays off on long posting lists. The
cost rule ``prune`` picks between them per query."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

try:
    from retrievekit.index import _kernels  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: same results, slower
    _kernels = None

HAVE_KERNEL = _kernels is not None
# Kernel mode of learned-sparse (impact) scoring: score += weight * tf, where tf holds a quantized term weight and
# norms/consts are ignored (modes 0-2 are the BM25-family scorers of scoring.py).
MODE_IMPACT = 3
#: kernel modes with a usable per-term bound (saturating BM25s, BM25L, impacts); Dirichlet LM has none here
PRUNABLE_MODES = frozenset({0, 1, MODE_IMPACT})
#: the cost rule, measured with the batch kernel on the 1M synthetic corpus (benchmarks/run_bm25_pruning.py): the
#: exhaustive accumulator pass costs a few ns per posting, and MaxScore's per-window and per-candidate work only
#: comes out ahead (~1.05x) for small k on queries of 80,000+ postings; at 10,000-40,000 postings it was 0.8-0.95x,
#: and at k=100 and beyond the k-th score stays too low to skip enough
PRUNE_MIN_POSTINGS = 80_000
PRUNE_MAX_K = 32
#: ... but in large segments MaxScore wins on every query length: at 3M and 10M documents
#: (benchmarks/run_bm25_scaling.py) it was 1.7-2.3x the exhaustive pass at k=10 and 1.2-1.7x at k=100; at k=1000
#: the two were even, so k=1000 stays exhaustive
PRUNE_LARGE_SEGMENT = 2_000_000
PRUNE_MAX_K_LARGE = 100
#: the most terms a MaxScore query may have (the kernel's limit)
MAX_PRUNED_TERMS = int(_kernels.MAX_PRUNED_TERMS) if _kernels is not None else 16
_local = threading.local()


def _scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bufs = getattr(_local, "bufs", None)
    if bufs is None or len(bufs[0]) < n:
        size = max(n, 1024)
        bufs = (np.zeros(size, np.float32), np.zeros(size, np.uint8), np.zeros(size, np.uint32))
        _local.bufs = bufs
    return bufs


def _window_scratch() -> np.ndarray:
    """This thread's zeroed per-term window scores for the MaxScore kernel (which leaves them zeroed)."""
    scratch = getattr(_local, "window", None)
    if scratch is None:
        scratch = _local.window = np.zeros(_kernels.MAX_PRUNED_TERMS * _kernels.WINDOW, np.float32)
    return scratch


def search_segment(
    docs: np.ndarray,
    tfs: np.ndarray,
    offsets: np.ndarray,
    term_ids: np.ndarray,
    weights: np.ndarray,
    consts: np.ndarray,
    norms: np.ndarray,
    live: np.ndarray | None,
    mode: int,
    k1: float,
    delta: float,
    k: int,
    use_kernel: bool = True,
    bounds: TermBounds | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (local document numbers, float32 scores) of one segment, best first, ties by document number.
    ``bounds``: the query terms' bounds (``term_bounds``) to search by MaxScore; the results are the same."""
    if use_kernel and _kernels is not None and bounds is not None:
        out_docs = np.empty(k, np.uint32)
        out_scores = np.empty(k, np.float32)
        n = _kernels.search_segment_maxscore(docs, tfs, offsets, term_ids, weights, consts, norms, live, mode, k1,
                                             delta, k, bounds.units, bounds.block_starts, bounds.blocks,
                                             _window_scratch(), out_docs, out_scores)
        return out_docs[:n], out_scores[:n]
    if use_kernel and _kernels is not None:
        acc, mark, touched = _scratch(len(norms))
        out_docs = np.empty(k, np.uint32)
        out_scores = np.empty(k, np.float32)
        n = _kernels.search_segment(
            docs, tfs, offsets, term_ids, weights, consts, norms, live, mode, k1, delta, k, acc, mark, touched,
            out_docs, out_scores,
        )
        return out_docs[:n], out_scores[:n]
    return _search_numpy(docs, tfs, offsets[term_ids], offsets[term_ids + 1], weights, consts, norms, live, mode,
                         k1, delta, k)


def search_segment_batch(docs: np.ndarray, tfs: np.ndarray, offsets: np.ndarray, term_ids: np.ndarray,
                         weights: np.ndarray, consts: np.ndarray, query_starts: np.ndarray, norms: np.ndarray,
                         live: np.ndarray | None, mode: int, k1: float, delta: float, k: int,
                         bounds: TermBounds | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top k of many queries of one segment in one kernel call (query q's terms: ``term_ids[query_starts[q]:
    query_starts[q + 1]]``), each by MaxScore where ``bounds`` are given and the cost rule holds, else exhaustively.
    Returns (local document numbers (n, k), scores (n, k), hits per query (n,)). Needs the compiled kernel."""
    n = len(query_starts) - 1
    acc, mark, touched = _scratch(len(norms))
    out_docs = np.empty((n, k), np.uint32)
    out_scores = np.empty((n, k), np.float32)
    counts = np.zeros(n, np.int64)
    _kernels.search_segment_batch(
        docs, tfs, offsets, term_ids, weights, consts, query_starts, norms, live, mode, k1, delta, k,
        None if bounds is None else bounds.units, None if bounds is None else bounds.block_starts,
        None if bounds is None else bounds.blocks, *cost_rule(len(norms)), acc, mark, touched,
        _window_scratch(), out_docs, out_scores, counts)
    return out_docs, out_scores, counts


def _search_numpy(docs, tfs, starts, ends, weights, consts, norms, live, mode, k1, delta, k):
    if len(starts) == 0:
        return np.zeros(0, np.uint32), np.zeros(0, np.float32)
    lengths = (ends - starts).astype(np.int64)
    index = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])
    d = np.asarray(docs[index], dtype=np.int64)
    tf = np.asarray(tfs[index], dtype=np.float32)
    w = np.repeat(weights.astype(np.float32), lengths)
    c = np.repeat(consts.astype(np.float32), lengths)
    nm = norms[d]
    if mode == 0:
        s = w * (tf / (tf + nm)) + c
    elif mode == 1:
        x = tf / nm + np.float32(delta)
        s = w * x / (np.float32(k1) + x)
    elif mode == MODE_IMPACT:
        s = w * tf
    else:
        s = np.log1p(tf * c) + nm
        s = np.where(s > 0, w * s, np.float32(0))
    n = len(norms)
    scores = np.bincount(d, weights=s, minlength=n).astype(np.float32)
    candidates = np.unique(d)
    if live is not None:
        candidates = candidates[live[candidates].astype(bool)]
    cand_scores = scores[candidates]
    order = np.lexsort((candidates, -cand_scores))[:k]
    return candidates[order].astype(np.uint32), cand_scores[order]


def cost_rule(n_docs: int) -> tuple[int, int]:
    """(fewest postings, largest k) for which a query of a segment of ``n_docs`` documents is searched by MaxScore."""
    if n_docs >= PRUNE_LARGE_SEGMENT:
        return 0, max(PRUNE_MAX_K, PRUNE_MAX_K_LARGE)
    return PRUNE_MIN_POSTINGS, PRUNE_MAX_K


def prune(offsets: np.ndarray, term_ids: np.ndarray, weights: np.ndarray, consts: np.ndarray, mode: int,
          k: int, n_docs: int = 0) -> bool:
    """Whether MaxScore should search this query of a segment of ``n_docs`` documents: a bounded mode, weights and
    constants >= 0 (the bounds assume them), at most ``MAX_PRUNED_TERMS`` terms (long queries prune little and their
    per-term window scores would not fit in cache), and the cost rule (``cost_rule``)."""
    min_postings, max_k = cost_rule(n_docs)
    if (_kernels is None or mode not in PRUNABLE_MODES or not 1 <= len(term_ids) <= MAX_PRUNED_TERMS
            or not 0 < k <= max_k):
        return False
    if int((offsets[term_ids + 1] - offsets[term_ids]).sum()) < min_postings:
        return False
    return bool(weights.min() >= 0 and (len(consts) == 0 or consts.min() >= 0))


@dataclass(frozen=True)
class TermBounds:
    """One segment's bounds for one scorer: per term (``units``, NaN until a query needs the term) and per block of
    ``BLOCK`` postings (``blocks``; term t's start at ``block_starts[t]``), with weight 1 and constant 0."""

    units: np.ndarray
    blocks: np.ndarray
    block_starts: np.ndarray

    @classmethod
    def empty(cls, offsets: np.ndarray, block_starts: np.ndarray | None = None) -> TermBounds:
        starts = block_starts if block_starts is not None else posting_blocks(offsets)
        return cls(np.full(len(offsets) - 1, np.nan, np.float32), np.zeros(int(starts[-1]), np.float32), starts)


#: postings per block of the block maxima (the kernel's constant)
BLOCK = int(_kernels.BLOCK) if _kernels is not None else 64


def posting_blocks(offsets: np.ndarray) -> np.ndarray:
    """``block_starts``: where each term's blocks begin in a segment's block array (int64, one more than terms)."""
    counts = (np.diff(np.asarray(offsets, np.int64)) + BLOCK - 1) // BLOCK
    starts = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    return starts


def term_bounds(docs: np.ndarray, tfs: np.ndarray, offsets: np.ndarray, norms: np.ndarray, mode: int, k1: float,
                delta: float, term_ids: np.ndarray, bounds: TermBounds) -> TermBounds:
    """``bounds`` with those of ``term_ids`` filled in: one pass over each new term's postings, the first time a
    query needs it (concurrent queries may both compute a term: they write the same values)."""
    missing = term_ids[np.isnan(bounds.units[term_ids])]
    if len(missing):
        _kernels.term_bounds(docs, tfs, offsets, norms, mode, k1, delta, np.ascontiguousarray(missing, np.int64),
                             bounds.block_starts, bounds.units, bounds.blocks)
    return bounds
