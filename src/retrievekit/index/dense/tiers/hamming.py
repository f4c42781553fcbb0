"""The k nearest packed bit codes by Hamming distance: the compiled kernel when built, else numpy (same results).

Both return candidates ordered by (distance, document number): ties always go to the lower document number, so
the two paths agree exactly and match ranking by the score −distance with ties to the lower document.
"""

from __future__ import annotations

import numpy as np

from retrievekit.index.dense.tiers.base import TierError
from retrievekit.index.dense.tiers.binary import hamming_distances

try:
    from retrievekit.index import _kernels  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler
    _kernels = None

__all__ = ["HAVE_KERNEL", "MAX_CODE_BYTES", "hamming_topk"]

HAVE_KERNEL = _kernels is not None and hasattr(_kernels, "hamming_topk")
# The kernel keeps distances in uint16 (0..8 × bytes, plus one value for masked rows).
MAX_CODE_BYTES = 8191
# Distance block of the numpy path (queries × documents × 8 bytes of sort keys).
_FALLBACK_BLOCK_BYTES = 64 << 20


def _check(query_codes: np.ndarray, codes: np.ndarray, k: int,
           allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    q, c = np.asarray(query_codes), np.asarray(codes)
    if q.dtype != np.uint8 or c.dtype != np.uint8:
        raise TierError(f"packed codes must be uint8 (as from np.packbits), got {q.dtype} and {c.dtype}")
    q, c = np.ascontiguousarray(q), np.ascontiguousarray(c)  # no copy when already contiguous (memmaps too)
    if q.ndim != 2 or c.ndim != 2 or q.shape[1] != c.shape[1]:
        raise TierError(f"packed codes must be 2-d with equal widths, got {q.shape} and {c.shape}")
    if c.shape[1] > MAX_CODE_BYTES:
        raise TierError(f"packed codes may have at most {MAX_CODE_BYTES} bytes per row, got {c.shape[1]}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
        raise TierError(f"k must be a non-negative integer, got {k!r}")
    mask = None
    if allowed is not None:
        mask = np.asarray(allowed)
        if mask.shape != (c.shape[0],) or mask.dtype not in (np.bool_, np.uint8):
            raise TierError(f"allowed must be a bool/uint8 mask of shape ({c.shape[0]},), "
                            f"got {mask.dtype} {mask.shape}")
        mask = np.ascontiguousarray(mask.view(np.uint8) if mask.dtype == np.bool_ else mask)
    return q, c, mask


def hamming_topk(
    query_codes: np.ndarray,
    codes: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
    *,
    use_kernel: bool = True,
    simd: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``codes`` nearest each query row in Hamming distance.

    ``query_codes`` uint8 (m, B) and ``codes`` uint8 (n, B) are packed bits (any B up to ``MAX_CODE_BYTES``; a
    read-only np.memmap of codes is fine). ``allowed``: bool/uint8 (n,), nonzero = may be returned. Returns
    ``(ids int64 (m, k), distances int32 (m, k))`` ordered by (distance, document number); columns past the
    number of allowed rows hold id -1 and distance -1. ``use_kernel=False`` runs the numpy fallback and
    ``simd=False`` the compiled kernel's plain-C path instead of its AVX-512 one (both for tests).
    """
    q, c, mask = _check(query_codes, codes, k, allowed)
    m, n = q.shape[0], c.shape[0]
    ids = np.full((m, k), -1, dtype=np.int64)
    dist = np.full((m, k), -1, dtype=np.int32)
    if m == 0 or k == 0 or n == 0:
        return ids, dist
    if use_kernel and HAVE_KERNEL:
        _kernels.hamming_topk(q, c, int(k), mask, ids, dist, 0 if simd else 1)
        return ids, dist
    return _topk_numpy(q, c, int(k), mask, ids, dist)


def _topk_numpy(q: np.ndarray, c: np.ndarray, k: int, mask: np.ndarray | None, ids: np.ndarray,
                dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = c.shape[0]
    rows = np.arange(n, dtype=np.int64) if mask is None else np.flatnonzero(mask).astype(np.int64)
    sub = c if mask is None else c[rows]
    take = min(k, rows.size)
    if take == 0:
        return ids, dist
    # Unique sort keys distance × n + position: argpartition then needs no tie handling, and positions increase
    # with document numbers, so ties go to the lower document.
    step = max(1, _FALLBACK_BLOCK_BYTES // (8 * max(rows.size, 1)))
    pos = np.arange(rows.size, dtype=np.int64)
    for start in range(0, q.shape[0], step):
        d = hamming_distances(q[start:start + step], sub).astype(np.int64)
        keys = d * rows.size + pos
        if take < rows.size:
            keys = np.partition(keys, take - 1, axis=1)[:, :take]
        keys = np.sort(keys, axis=1)
        ids[start:start + step, :take] = rows[keys % rows.size]
        dist[start:start + step, :take] = keys // rows.size
    return ids, dist
