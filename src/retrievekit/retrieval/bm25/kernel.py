"""Per-segment scoring: the compiled kernel when it was built, else an equivalent numpy implementation."""

from __future__ import annotations

import threading

import numpy as np

try:
    from retrievekit.index import _kernels  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: same results, slower
    _kernels = None

HAVE_KERNEL = _kernels is not None
# Kernel mode of learned-sparse (impact) scoring: score += weight * tf, where tf holds a quantized term weight and
# norms/consts are ignored (modes 0-2 are the BM25-family scorers of scoring.py).
MODE_IMPACT = 3
_local = threading.local()


def _scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bufs = getattr(_local, "bufs", None)
    if bufs is None or len(bufs[0]) < n:
        size = max(n, 1024)
        bufs = (np.zeros(size, np.float32), np.zeros(size, np.uint8), np.zeros(size, np.uint32))
        _local.bufs = bufs
    return bufs


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
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (local document numbers, float32 scores) of one segment, best first, ties by document number."""
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
