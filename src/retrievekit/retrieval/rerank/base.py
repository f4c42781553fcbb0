"""The reranker interface, and rerankers by name.

A reranker rescores the candidates a first-stage retriever found. The base class does the bookkeeping once for
every backend: it flattens a batch of result rows into (query, document) pairs (skipping the ``None`` padding),
fetches document texts a chunk at a time, asks the backend for one score per pair, and re-sorts each row.

Names accepted by ``get_reranker``:

* ``cross-encoder:MODEL``: a sentence-transformers cross-encoder (local folder or hub name);
* a local cross-encoder folder, a hub name ``org/model`` or a short alias such as ``ms-marco-minilm-l-6-v2``;
* ``maxsim`` or ``maxsim:MODEL``: late interaction over a dense model's token embeddings (default MiniLM).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.progress import progress_bar
from retrievekit.core.registry import Registry, parse_spec, registry
from retrievekit.retrieval.base import SearchResults

logger = logging.getLogger(__name__)

TextsFn = Callable[[Sequence[str]], list[str]]


class RerankerError(RetrievekitError, ValueError):
    """A reranker could not be built or was called with inconsistent arguments."""


class Reranker(ABC):
    """Rescores candidate documents for a batch of queries. Subclasses implement ``_score_pairs``.

    ``blend``: ``None`` ranks by the reranker's score alone; a weight ``w`` in [0, 1] ranks by
    ``w * z(reranker) + (1 - w) * z(first stage)``, each score z-normalised over the query's candidates. A reranker
    trained on little data often ranks worse alone than the first stage it reranks yet still adds to it.
    """

    #: how many (query, document) pairs are scored per chunk: bounds the texts and activations held at once
    pairs_per_chunk: int = 1024
    blend: float | None = None

    @abstractmethod
    def _score_pairs(self, queries: Sequence[str], documents: Sequence[str], query_index: np.ndarray,
                     doc_index: np.ndarray) -> np.ndarray:
        """float32 (n_pairs,): the score of pair p is that of ``queries[query_index[p]]`` and
        ``documents[doc_index[p]]``. Texts are given once each, so backends can encode each text only once."""

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__}

    def score(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        """float32 score of each aligned pair (``queries[i]``, ``documents[i]``)."""
        if len(queries) != len(documents):
            raise RerankerError(f"{len(queries)} queries for {len(documents)} documents; pairs must be aligned")
        index = np.arange(len(queries), dtype=np.int64)
        if len(index) == 0:
            return np.empty(0, dtype=np.float32)
        return self._checked(self._score_pairs(list(queries), list(documents), index, index), len(index))

    def rerank(self, queries: Sequence[str], candidates: SearchResults, texts: TextsFn, *, k: int | None = None,
               progress: bool = False) -> SearchResults:
        """Rescore ``candidates`` (one row per query) and sort each row by the new score, ties in the original
        order; padding stays last. ``texts(ids)`` returns the text of each document id. With ``k``, the result
        has exactly ``k`` columns (the best ``k``, padded with ``None``/``-inf`` if a row has fewer)."""
        if k is not None and k < 0:
            raise RerankerError(f"k must be >= 0, got {k}")
        ids, present = candidate_grid(queries, candidates)
        new_scores = self._own_scores(queries, ids, present, texts, progress)
        if self.blend is not None:
            new_scores = blended(new_scores, np.asarray(candidates.scores, dtype=np.float32), present, self.blend)
        # Sort keys, last = primary: real hits before padding, then score descending, then original rank.
        n, width = ids.shape
        rank = np.broadcast_to(np.arange(width), (n, width))
        order = np.lexsort((rank, -new_scores, ~present), axis=-1)
        out_ids = np.take_along_axis(ids, order, axis=1)
        out_scores = np.take_along_axis(new_scores, order, axis=1)
        out_ids[~np.take_along_axis(present, order, axis=1)] = None
        return _top(SearchResults(out_ids, out_scores), k)

    def candidate_scores(self, queries: Sequence[str], candidates: SearchResults, texts: TextsFn, *,
                         progress: bool = False) -> np.ndarray:
        """float32 (n_queries, k): this reranker's own score of each candidate where it stands in ``candidates``
        (-inf for padding); no blend, no sorting."""
        ids, present = candidate_grid(queries, candidates)
        return self._own_scores(queries, ids, present, texts, progress)

    def _own_scores(self, queries: Sequence[str], ids: np.ndarray, present: np.ndarray, texts: TextsFn,
                    progress: bool) -> np.ndarray:
        rows, cols = np.nonzero(present)  # row-major: the pairs of one query are consecutive
        scores = np.full(ids.shape, -np.inf, dtype=np.float32)
        bar = progress_bar(progress, len(rows), "reranking", unit="pair")
        try:
            for start in range(0, len(rows), self.pairs_per_chunk):
                r, c = rows[start : start + self.pairs_per_chunk], cols[start : start + self.pairs_per_chunk]
                scores[r, c] = self._score_chunk(queries, ids[r, c], r, texts)
                bar.update(len(r))
        finally:
            bar.close()
        return scores

    def _score_chunk(self, queries: Sequence[str], doc_ids: np.ndarray, rows: np.ndarray, texts: TextsFn) -> np.ndarray:
        first: dict[Any, int] = {}  # each document once per chunk, even when several queries retrieved it
        doc_index = np.fromiter((first.setdefault(d, len(first)) for d in doc_ids), dtype=np.int64,
                                count=len(doc_ids))
        unique_ids = list(first)
        documents = texts(unique_ids)
        if len(documents) != len(unique_ids):
            raise RerankerError(f"texts() returned {len(documents)} texts for {len(unique_ids)} document ids")
        unique_rows, query_index = np.unique(rows, return_inverse=True)
        chunk_queries = [queries[int(i)] for i in unique_rows]
        docs = [d if d is not None else "" for d in documents]
        scores = self._score_pairs(chunk_queries, docs, query_index.ravel(), doc_index)
        return self._checked(scores, len(rows))

    def _checked(self, scores: np.ndarray, n: int) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        if scores.shape != (n,):
            raise RerankerError(f"{type(self).__name__} returned {scores.shape[0]} scores for {n} pairs; "
                                "multi-label models are not supported, use a single-score reranker")
        bad = ~np.isfinite(scores)
        if bad.any():
            logger.warning("%d non-finite reranker scores replaced by -inf", int(bad.sum()))
            scores[bad] = -np.inf
        return scores




def candidate_grid(queries: Sequence[str], candidates: SearchResults) -> tuple[np.ndarray, np.ndarray]:
    """``candidates``' ids as an object array (n_queries, k), checked against ``queries``, and where a hit stands
    (not padding)."""
    ids = np.asarray(candidates.ids, dtype=object)
    if ids.ndim != 2:
        raise RerankerError(f"candidates must be a 2-D (n_queries, k) result, got shape {ids.shape}")
    if len(queries) != ids.shape[0]:
        raise RerankerError(f"{len(queries)} queries for {ids.shape[0]} candidate rows")
    return ids, ids != None  # noqa: E711 — elementwise comparison on an object array


def check_blend(blend: float | None) -> float | None:
    if blend is not None and not (isinstance(blend, int | float) and 0.0 <= blend <= 1.0):
        raise RerankerError(f"blend must be a weight in [0, 1] (the reranker's share) or None, got {blend!r}")
    return None if blend is None else float(blend)


def blended(rerank_scores: np.ndarray, first_scores: np.ndarray, present: np.ndarray, weight: float) -> np.ndarray:
    """``weight * z(rerank) + (1 - weight) * z(first)`` per row over its present entries (-inf elsewhere). A row's
    constant scores z-normalise to 0; a first stage's non-finite scores count as its lowest."""
    out = np.full(rerank_scores.shape, -np.inf, dtype=np.float32)
    for row in range(rerank_scores.shape[0]):
        keep = present[row]
        if not keep.any():
            continue
        parts = []
        for scores in (rerank_scores[row, keep], first_scores[row, keep]):
            scores = scores.astype(np.float64)
            finite = np.isfinite(scores)
            scores = np.where(finite, scores, scores[finite].min() if finite.any() else 0.0)
            spread = scores.std()
            parts.append((scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores))
        out[row, keep] = weight * parts[0] + (1.0 - weight) * parts[1]
    return out


# -- registry ----------------------------------------------------------------------------------------------------

RerankerFactory = Callable[..., Reranker]

#: short names of well-known hub cross-encoders (case-insensitive)
CROSS_ENCODER_ALIASES: dict[str, str] = {
    "ms-marco-minilm-l-6-v2": "cross-encoder/ms-marco-MiniLM-L-6-v2",
    "ms-marco-minilm-l-12-v2": "cross-encoder/ms-marco-MiniLM-L-12-v2",
    "ms-marco-tinybert-l-2-v2": "cross-encoder/ms-marco-TinyBERT-L-2-v2",
    "bge-reranker-base": "BAAI/bge-reranker-base",
    "bge-reranker-large": "BAAI/bge-reranker-large",
    "bge-reranker-v2-m3": "BAAI/bge-reranker-v2-m3",
    "mxbai-rerank-xsmall-v1": "mixedbread-ai/mxbai-rerank-xsmall-v1",
}

RERANKERS: Registry[Reranker] = registry("reranker", error=RerankerError)
# Built-ins are "module:attribute", imported on first use so naming a reranker never imports torch early.
RERANKERS.register("cross-encoder", "retrievekit.retrieval.rerank.cross_encoder:CrossEncoderReranker",
                   usage="cross-encoder:MODEL (or a folder, org/model, or an alias)", extra="dense",
                   requires=["sentence_transformers"],
                   description="sentence-transformers cross-encoder; aliases: " + ", ".join(CROSS_ENCODER_ALIASES))
RERANKERS.register("maxsim", "retrievekit.retrieval.rerank.maxsim:MaxSimReranker", usage="maxsim[:MODEL]",
                   extra="dense", requires=["torch", "sentence_transformers"],
                   description="late interaction over a dense model's token embeddings (default MiniLM)")
_NEEDS_MODEL = {"cross-encoder"}


def register_reranker(name: str, factory: RerankerFactory | str, *, usage: str = "", extra: str | None = None,
                      requires: Sequence[str] = (), description: str = "") -> None:
    """Make ``factory(model=..., **options)`` available as ``get_reranker("NAME:MODEL")`` (``factory(**options)``
    for a bare ``NAME``)."""
    RERANKERS.register(name, factory, usage=usage or f"{name}[:MODEL]", extra=extra, requires=requires,
                       description=description)


def available_rerankers() -> list[str]:
    return sorted(RERANKERS.names())


def _factory(name: str) -> RerankerFactory:
    return RERANKERS.factory(name)


def _choices() -> str:
    return ("accepted: " + ", ".join(f"'{b}:MODEL'" for b in available_rerankers())
            + ", 'maxsim' (default MiniLM), a local cross-encoder folder, a hub name 'org/model', or an alias ("
            + ", ".join(sorted(CROSS_ENCODER_ALIASES)) + ")")


def get_reranker(name: str | Reranker, **options: Any) -> Reranker:
    """A reranker from a name (see the module docstring) or an instance (returned as is)."""
    if isinstance(name, Reranker):
        return name
    if not isinstance(name, str) or not name.strip():
        raise RerankerError(f"a reranker name is needed; {_choices()}")
    name = name.strip()
    if Path(name).expanduser().is_dir():
        return _factory("cross-encoder")(model=name, **options)
    (stage,) = parse_spec(name, what="reranker", stages=False)
    backend, sep, model = stage.name, ":" in name, stage.rest
    if sep:
        if backend not in RERANKERS:
            raise RerankerError(f"unknown reranker {backend!r} in {name!r}; {_choices()}")
        if not model:
            raise RerankerError(f"{name!r} names no model; {_choices()}")
        return _factory(backend)(model=CROSS_ENCODER_ALIASES.get(model.lower(), model), **options)
    if name in available_rerankers():
        if name in _NEEDS_MODEL:
            raise RerankerError(f"{name!r} needs a model, e.g. '{name}:cross-encoder/ms-marco-MiniLM-L-6-v2'")
        return _factory(name)(**options)
    if name.lower() in CROSS_ENCODER_ALIASES:
        return _factory("cross-encoder")(model=CROSS_ENCODER_ALIASES[name.lower()], **options)
    if "/" in name:  # a hub name (org/model) or a path that does not exist yet: the loader says which
        return _factory("cross-encoder")(model=name, **options)
    raise RerankerError(f"unknown reranker {name!r}; {_choices()}")


def _top(results: SearchResults, k: int | None) -> SearchResults:
    return results if k is None else results.top(k)

