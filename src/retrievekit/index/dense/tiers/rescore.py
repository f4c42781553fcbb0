"""Two-stage search over compressed codes: approximate candidates from a tier, then exact float32 rescoring."""

from __future__ import annotations

import math

import numpy as np

from retrievekit.index.dense.tiers.base import TierError, VectorTier, as_matrix

__all__ = ["search_compressed"]

# Approximate-score block per step (queries × chunk rows × 4 bytes), so memory stays bounded for any corpus size.
SCORE_BLOCK_BYTES = 32 << 20
MIN_CHUNK_ROWS = 1024


def _top(ids: np.ndarray, scores: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``keep`` highest-scoring columns of each row (unordered); ties at the cut go to the lower id."""
    width = scores.shape[1]
    if width <= keep:
        return ids, scores
    kth = np.partition(scores, width - keep, axis=1)[:, width - keep]  # no negated copy of a wide block
    out_ids = np.empty((scores.shape[0], keep), dtype=np.int64)
    out_scores = np.empty((scores.shape[0], keep), dtype=np.float32)
    for i in range(scores.shape[0]):
        row, row_ids = scores[i], ids[i]
        above = np.flatnonzero(row > kth[i])
        tied = np.flatnonzero(row == kth[i])
        tied = tied[np.argsort(row_ids[tied], kind="stable")[:keep - above.size]]
        take = np.concatenate([above, tied])
        out_ids[i], out_scores[i] = row_ids[take], row[take]
    return out_ids, out_scores


def _ordered(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best first (ties: lower document number first), padded to k columns with -1 / -inf."""
    ids, scores = _top(ids, scores, k)
    ids = np.where(np.isneginf(scores), np.int64(-1), ids)
    # Padding ids sort last among equal -inf scores because they become the largest key.
    key = np.where(ids < 0, np.iinfo(np.int64).max, ids)
    order = np.lexsort((key, -scores), axis=-1)
    ids, scores = np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)
    if ids.shape[1] < k:
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return ids.astype(np.int64), scores.astype(np.float32)


def search_compressed(
    queries: np.ndarray,
    tier: VectorTier,
    codes: np.ndarray,
    k: int,
    *,
    oversample: float = 4.0,
    rescore: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    chunk_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` documents per query: (doc numbers int64 (m, k), scores float32 (m, k)), best first.

    Candidates are the ceil(k × ``oversample``) best documents by the tier's approximate score (just k without
    ``rescore``). With ``rescore`` (float32 (n, dim) document vectors; a read-only np.memmap is fine, only candidate
    rows are read) candidates are re-scored by the exact inner product and the returned scores are exact;
    otherwise they are the tier's scores. ``allowed``: bool/uint8 (n,), nonzero = may be returned. Rows past the
    last hit hold doc -1 and score -inf. Ties go to the lower document number.
    """
    q = as_matrix(queries, "queries")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise TierError(f"k must be a positive integer, got {k!r}")
    if not oversample >= 1.0:
        raise TierError(f"oversample must be >= 1, got {oversample!r}")
    codes = np.asarray(codes) if not isinstance(codes, np.ndarray) else codes
    n = codes.shape[0]
    mask = None
    if allowed is not None:
        mask = np.asarray(allowed)
        if mask.shape != (n,) or mask.dtype not in (np.bool_, np.uint8):
            raise TierError(f"allowed must be a bool/uint8 mask of shape ({n},), got {mask.dtype} {mask.shape}")
        mask = mask.astype(bool, copy=False)
    if rescore is not None and (rescore.ndim != 2 or rescore.shape[0] != n or rescore.shape[1] != q.shape[1]):
        raise TierError(f"rescore must be ({n}, {q.shape[1]}) to match the codes and queries, got {rescore.shape}")

    m = q.shape[0]
    n_cand = min(n, max(k, math.ceil(k * oversample))) if rescore is not None else min(n, k)
    if chunk_rows is None:
        chunk_rows = max(MIN_CHUNK_ROWS, SCORE_BLOCK_BYTES // (4 * max(m, 1)))
    best_ids = np.zeros((m, 0), dtype=np.int64)
    best_scores = np.zeros((m, 0), dtype=np.float32)
    # Tiers with their own candidate search (binary Hamming: a top-k kernel) skip the chunked scoring below; they
    # return the same candidates, best first with ties to the lower document, padded with -1 / -inf.
    own = getattr(tier, "candidates", None)
    found = own(q, codes, n_cand, mask) if callable(own) and n > 0 else None
    if found is not None:
        best_ids, best_scores = found
    else:
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            if mask is not None and not mask[start:stop].any():
                continue
            s = np.asarray(tier.scores(q, codes[start:stop]), dtype=np.float32)
            if mask is not None:
                s[:, ~mask[start:stop]] = -np.inf
            # Cut the chunk to its own best first, so only small arrays are concatenated and merged.
            chunk_ids, s = _top(np.broadcast_to(np.arange(start, stop, dtype=np.int64), s.shape), s, n_cand)
            best_ids, best_scores = _top(np.concatenate([best_ids, chunk_ids], axis=1),
                                         np.concatenate([best_scores, s], axis=1), n_cand)
    if rescore is None or best_ids.shape[1] == 0:
        return _ordered(best_ids, best_scores, k)

    exact = np.full(best_scores.shape, -np.inf, dtype=np.float32)
    for i in range(m):
        valid = np.flatnonzero(~np.isneginf(best_scores[i]))
        if valid.size == 0:
            continue
        rows = best_ids[i, valid]
        order = np.argsort(rows)  # increasing offsets read an mmap sequentially
        vectors = np.asarray(rescore[rows[order]], dtype=np.float32)
        exact[i, valid[order]] = vectors @ q[i]
    return _ordered(best_ids, exact, k)
