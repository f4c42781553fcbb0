"""Pseudo-relevance feedback for dense retrieval: Rocchio's update applied to query embeddings."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from retrievekit.core.errors import RetrievekitError

logger = logging.getLogger(__name__)

__all__ = ["FeedbackError", "rocchio"]


class FeedbackError(RetrievekitError, ValueError):
    """Query or feedback vectors of unusable shape or value."""


def rocchio(
    query_vectors: np.ndarray,
    feedback: Sequence[np.ndarray],
    *,
    alpha: float = 1.0,
    beta: float = 0.5,
    normalize: bool = True,
) -> np.ndarray:
    """Move each query embedding toward the centroid of its feedback documents: ``q' = alpha q + beta mean(F)``.

    The intended use is dense pseudo-relevance feedback: run a first-pass dense search, take the vectors of each
    query's top ``fb_docs`` hits as ``feedback[i]`` (shape ``(fb_i, dim)``), and search again with the returned
    vectors. ``feedback[i]`` may be empty (e.g. the first pass found nothing): that query's vector comes back
    unchanged. ``normalize`` rescales the updated vectors to unit length, as cosine / inner-product indexes of
    normalised embeddings expect (a zero vector is left as it is).

    Returns float32 ``(n_queries, dim)``; the input is not modified.
    """
    queries = np.asarray(query_vectors)
    if queries.ndim != 2:
        raise FeedbackError(f"query_vectors must be 2-d (n_queries, dim), got shape {queries.shape}")
    n_queries, dim = queries.shape
    if len(feedback) != n_queries:
        raise FeedbackError(f"{len(feedback)} feedback arrays for {n_queries} queries; give one per query")
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not np.isfinite(value):
            raise FeedbackError(f"{name} must be a finite number, got {value!r}")

    out = queries.astype(np.float32, copy=True)
    counts = np.zeros(n_queries, dtype=np.int64)
    blocks = []
    for i, docs in enumerate(feedback):
        docs = np.asarray(docs)
        if docs.size == 0:
            continue
        if docs.ndim != 2 or docs.shape[1] != dim:
            raise FeedbackError(f"feedback[{i}] must have shape (n_docs, {dim}), got {docs.shape}")
        counts[i] = len(docs)
        blocks.append(docs.astype(np.float32, copy=False))
    has = counts > 0
    if not has.any():
        return out

    # One pass over all feedback vectors: sum each query's block, then divide by its size.
    stacked = np.concatenate(blocks)
    starts = np.concatenate(([0], np.cumsum(counts[has])[:-1]))
    centroids = np.add.reduceat(stacked.astype(np.float64), starts, axis=0) / counts[has, None]
    updated = alpha * out[has].astype(np.float64) + beta * centroids
    if normalize:
        norms = np.linalg.norm(updated, axis=1, keepdims=True)
        updated = np.where(norms > 0, updated / np.where(norms > 0, norms, 1.0), updated)
    out[has] = updated.astype(np.float32)
    return out
