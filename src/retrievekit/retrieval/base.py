"""What every retriever returns, and the retriever interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from retrievekit.core.filters import Filter

if TYPE_CHECKING:
    from retrievekit.analysis import Analyzer
    from retrievekit.core.config import CollectionConfig
    from retrievekit.core.document import Document
    from retrievekit.encoders.base import Encoder
    from retrievekit.encoders.splade import SpladeEncoder
    from retrievekit.storage.snapshot import Snapshot


class CollectionView(Protocol):
    """What retrievers use of a collection. ``retrievekit.Collection`` (the façade above this layer) provides it;
    retrievers depend on this, not on the façade."""

    path: Path
    analyzer: Analyzer

    @property
    def settings(self) -> CollectionConfig: ...

    def snapshot(self) -> Snapshot: ...

    def index_config(self, kind: str, index: str = "default") -> dict[str, Any]: ...

    def encoder(self, index: str = "default", config: Mapping[str, Any] | None = None) -> Encoder: ...

    def sparse_encoder(self, index: str = "default", config: Mapping[str, Any] | None = None) -> SpladeEncoder: ...

    def get_many(self, ids: Sequence[str]) -> list[Document | None]: ...


@dataclass
class SearchResults:
    """Ranked results for a batch of queries: ``ids[i, j]`` is the j-th document of query i (``None`` past the
    last hit) and ``scores[i, j]`` its score (``-inf`` past the last hit). Always this type, one query or many."""

    ids: np.ndarray  # object, (n_queries, k)
    scores: np.ndarray  # float32, (n_queries, k)

    def __len__(self) -> int:
        return len(self.ids)

    def hits(self, i: int) -> list[tuple[str, float]]:
        """(id, score) pairs of query ``i``, best first."""
        return [(d, float(s)) for d, s in zip(self.ids[i], self.scores[i]) if d is not None]

    def to_run(self, query_ids: Sequence[str], ties: str = "raw") -> dict[str, dict[str, float]]:
        """As a TREC-style run {query id: {doc id: score}}.

        trec_eval ignores ranks and re-sorts by score, breaking ties by document id *descending*. ``ties="raw"``
        keeps the raw scores (so trec_eval's tie order applies). ``ties="anserini"`` gives the scores a Pyserini
        run file would hold for the same hits — Anserini's ScoreTiesAdjusterReranker in float32, then Pyserini's
        6-decimal TREC output (see ``_anserini_ties``) — use it to compare numbers with Pyserini's. Apply it
        before dropping identical ids or cutting deeper lists: Anserini adjusts the whole top-k first.
        """
        if len(query_ids) != len(self):
            raise ValueError(f"{len(query_ids)} query ids for {len(self)} result rows")
        if ties == "raw":
            return {qid: dict(self.hits(i)) for i, qid in enumerate(query_ids)}
        if ties != "anserini":
            raise ValueError(f"ties must be 'raw' or 'anserini', got {ties!r}")
        return {qid: _anserini_ties(self.hits(i)) for i, qid in enumerate(query_ids)}

    def top(self, k: int) -> SearchResults:
        """The first ``k`` columns (padded with None / -inf if the results are narrower)."""
        n, width = self.ids.shape
        if width >= k:
            return SearchResults(self.ids[:, :k], self.scores[:, :k])
        out = SearchResults.empty(n, k)
        out.ids[:, :width] = self.ids
        out.scores[:, :width] = self.scores
        return out

    @classmethod
    def empty(cls, n_queries: int, k: int) -> SearchResults:
        return cls(np.empty((n_queries, k), dtype=object), np.full((n_queries, k), -np.inf, dtype=np.float32))


class Retriever(ABC):
    """Ranks the documents of a collection for a batch of queries."""

    @abstractmethod
    def search(
        self, queries: Sequence[str], k: int = 10, *, filter: Filter | None = None, threads: int = 1
    ) -> SearchResults: ...

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__}

    # Pipeline operators (see retrievekit.retrieval.pipeline).
    def __or__(self, other: Retriever) -> Retriever:
        from retrievekit.retrieval.pipeline import Fusion

        return Fusion([self, other], "rrf")

    def __add__(self, other: Retriever) -> Retriever:
        from retrievekit.retrieval.pipeline import Fusion

        return Fusion([self, other], "convex", weights=[0.5, 0.5], normalization="minmax")

    def __rshift__(self, reranker: Any) -> Retriever:
        from retrievekit.retrieval.pipeline import Rerank

        return Rerank(self, reranker)

    def __mod__(self, n: int) -> Retriever:
        from retrievekit.retrieval.pipeline import Cutoff

        return Cutoff(self, n)


def run_batch(items: Sequence[Any], one: Any, threads: int) -> list[Any]:
    """``[one(x) for x in items]``, split into one contiguous slice per thread when ``threads`` > 1 (for work that
    releases the GIL, such as the C kernel; per-item tasks would cost more than they save)."""
    if threads > 1 and len(items) > 1:
        from concurrent.futures import ThreadPoolExecutor

        size = -(-len(items) // threads)
        with ThreadPoolExecutor(threads) as pool:
            parts = pool.map(lambda i: [one(x) for x in items[i : i + size]], range(0, len(items), size))
            return [row for part in parts for row in part]
    return [one(x) for x in items]


def results_from_numbers(rows: Sequence[tuple[np.ndarray, np.ndarray]], id_array: np.ndarray, k: int) -> SearchResults:
    """SearchResults from per-query (global document numbers, scores), best first."""
    results = SearchResults.empty(len(rows), k)
    for i, (numbers, scores) in enumerate(rows):
        n = len(numbers)
        if n:
            results.ids[i, :n] = id_array[numbers]
            results.scores[i, :n] = scores
    return results


_F32_1E_4 = np.float32(1e-4)
_F32_1E_6 = np.float32(1e-6)
_LONG = 2.0**63


def _anserini_ties(hits: list[tuple[str, float]]) -> dict[str, float]:
    """The scores Pyserini writes for ``hits``, computed step by step as Anserini and Pyserini do.

    Anserini's searcher orders hits by raw score, ties by docid ascending. ScoreTiesAdjusterReranker (bytecode of
    Anserini 1.7.1, Pyserini 1.6.0) then walks that list, never re-sorting: ``s = (float) (Math.round(s * 1e4) /
    1e4)`` in double, and when the previous (already adjusted) score is not more than ``1e-4f`` above it, ``s -=
    1e-6f * dup`` in *float32*. Above 64 a float32 step is wider than 2 x 1e-6, so that subtraction changes nothing:
    tied documents keep *equal* scores and trec_eval orders them by docid *descending*. Documents used as queries
    (ArguAna-like sets) score in the hundreds, so the float64, docid-ascending emulation this replaces put ~900
    tied pairs of such a set in the opposite order to Pyserini's and moved nDCG@10 by +0.0006 to +0.0035
    (benchmarks/run_ties.py). Pyserini finally prints ``f"{score:.6f}"``, which trec_eval reads: returned here.
    """
    ordered = sorted(hits, key=lambda h: (-h[1], h[0]))
    raw = np.array([s for _, s in ordered], dtype=np.float32).astype(np.float64)
    # Math.round(double) is floor(x + 1/2), saturating to Java's long range (only +-inf gets there).
    rounded = (np.clip(np.floor(raw * 1e4 + 0.5), -_LONG, _LONG) / 1e4).astype(np.float32)
    out: dict[str, float] = {}
    dup = 0
    previous = np.float32(0.0)
    for n, ((doc, _), score) in enumerate(zip(ordered, rounded)):
        if n == 0 or previous - score > _F32_1E_4:  # float32 subtraction and comparison
            dup = 0
        else:
            dup += 1
            score = score - _F32_1E_6 * np.float32(dup)
        previous = score
        out[doc] = float(f"{float(score):.6f}")
    return out
