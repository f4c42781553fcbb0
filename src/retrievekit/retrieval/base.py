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
        keeps the raw scores (so trec_eval's tie order applies). ``ties="anserini"`` does what Anserini's
        ScoreTiesAdjusterReranker does to every Pyserini run: round scores to 4 decimals, order ties by document
        id ascending and make the scores strictly decreasing so evaluation keeps that order — use it to compare
        numbers with Pyserini's.
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


def _anserini_ties(hits: list[tuple[str, float]]) -> dict[str, float]:
    rounded = sorted(((round(s, 4), d) for d, s in hits), key=lambda x: (-x[0], x[1]))
    out: dict[str, float] = {}
    i = 0
    while i < len(rounded):
        j = i
        while j < len(rounded) and rounded[j][0] == rounded[i][0]:
            j += 1
        step = 1e-4 / (j - i + 1)  # stays above the next distinct rounded score
        for n in range(i, j):
            out[rounded[n][1]] = rounded[n][0] - (n - i) * step
        i = j
    return out
