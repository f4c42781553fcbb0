"""Scatter-gather search over a cut of a sharded collection: every shard returns its exact top k, the coordinator
merges them by score, ties by global insertion order — so the merged list is the one a single collection holding
every document would return. BM25 first gathers the statistics of every shard (DFS query-then-fetch) so each
shard scores with the global N, df and average length. Hybrid and reranking are the ordinary pipeline stages
(``retrieval.pipeline``) over these retrievers: fusion normalises the merged lists, as on one node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.filters import Filter
from retrievekit.retrieval.base import Retriever, SearchResults
from retrievekit.retrieval.bm25.scoring import get_scorer
from retrievekit.sharding.backends.base import ShardUnavailableError

if TYPE_CHECKING:
    from retrievekit.sharding.collection import Cut, ShardedCollection


@dataclass
class ShardedSearchResults(SearchResults):
    """SearchResults that say which shards did not answer (only with ``allow_partial_results``)."""

    missing_shards: tuple[int, ...] = ()

    @property
    def partial(self) -> bool:
        return bool(self.missing_shards)


def merge(answers: Sequence[Any], n_queries: int, k: int) -> ShardedSearchResults:
    """Merge per-shard answers (a list of (ids, scores, insertion numbers) per query, or a ShardUnavailableError
    for a shard that did not answer) into one top k per query: by score, ties by insertion number, then by the
    shard's own order."""
    missing = tuple(i for i, a in enumerate(answers) if isinstance(a, ShardUnavailableError))
    answered = [a for a in answers if not isinstance(a, ShardUnavailableError)]
    ids = np.full((n_queries, k), None, dtype=object)
    scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    for q in range(n_queries):
        parts = [a[q] for a in answered]
        all_ids = [d for p in parts for d in p[0]]
        if not all_ids:
            continue
        all_scores = np.concatenate([np.asarray(p[1], np.float32) for p in parts])
        all_seq = np.concatenate([np.asarray(p[2], np.int64) for p in parts])
        position = np.concatenate([np.arange(len(p[0])) for p in parts])
        order = np.lexsort((position, all_seq, -all_scores))[:k]
        ids[q, : len(order)] = [all_ids[i] for i in order]
        scores[q, : len(order)] = all_scores[order]
    return ShardedSearchResults(ids, scores, missing)


class ShardedRetriever(Retriever):
    """A retriever over one cut of a sharded collection (``collection`` is the ShardedCollection: rerankers read
    document texts through it)."""

    def __init__(self, collection: ShardedCollection, cut: Cut, *, allow_partial_results: bool = False) -> None:
        self.collection = collection
        self.cut = cut
        self.partial = allow_partial_results

    def _scatter(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        return self.collection.pool.scatter(method, args, partial=self.partial)


class ShardedBM25(ShardedRetriever):
    """Lucene BM25 (or another scorer) with statistics summed over every shard."""

    def __init__(self, collection: ShardedCollection, cut: Cut, *, scorer: str | Mapping[str, Any] | None = None,
                 allow_partial_results: bool = False, **scorer_params: Any) -> None:
        super().__init__(collection, cut, allow_partial_results=allow_partial_results)
        self.scorer = get_scorer(dict(scorer) if isinstance(scorer, Mapping) else scorer,
                                 **scorer_params).config()  # plain data for the shards; validated here

    def config(self) -> dict[str, Any]:
        return {"type": "bm25", "scorer": self.scorer, "shards": self.collection.pool.size}

    def statistics(self, queries: Sequence[str]) -> tuple[dict[str, Any], tuple[int, ...]]:
        """The global statistics for the terms of ``queries``: per-term df/cf and corpus totals summed over the
        shards that answered (and which did not). A cut never changes, so complete answers are kept per cut
        (``ShardedCollection.cut_statistics``): a term's statistics are gathered once per cut, not per query."""
        analyzer = self.collection.analyzer
        terms = sorted({t for q in queries for t in analyzer.analyze(q)})
        known = self.collection.cut_statistics(self.cut)
        todo = [t for t in terms if t not in known["df"]]
        missing: tuple[int, ...] = ()
        if todo or known["docs"] is None:
            parts = self._scatter("term_stats", [(todo, g) for g in self.cut.generations])
            answered = [p for p in parts if not isinstance(p, ShardUnavailableError)]
            missing = tuple(i for i, p in enumerate(parts) if isinstance(p, ShardUnavailableError))
            df = np.sum([p["df"] for p in answered], axis=0) if answered else np.zeros(len(todo))
            cf = np.sum([p["cf"] for p in answered], axis=0) if answered else np.zeros(len(todo))
            totals = {key: sum(int(p[key]) for p in answered) for key in ("docs", "docs_with_terms", "total_terms")}
            fresh: dict[str, Any] = {"df": dict(zip(todo, np.asarray(df, np.float64).reshape(-1).tolist())),
                     "cf": dict(zip(todo, np.asarray(cf, np.float64).reshape(-1).tolist())), **totals}
            if missing:  # partial statistics hold for this search only
                return ({"df": {**known["df"], **fresh["df"]}, "cf": {**known["cf"], **fresh["cf"]}, **totals},
                        missing)
            known["df"].update(fresh["df"])
            known["cf"].update(fresh["cf"])
            known.update(totals)
        stats = {"df": {t: known["df"][t] for t in terms}, "cf": {t: known["cf"][t] for t in terms},
                 **{key: known[key] for key in ("docs", "docs_with_terms", "total_terms")}}
        return stats, missing

    def search(self, queries: Sequence[str], k: int = 10, *, filter: Filter | None = None,
               threads: int = 1) -> SearchResults:
        queries = [queries] if isinstance(queries, str) else list(queries)
        if self.collection.pool.size == 1:  # one shard: its own statistics are the global ones, no first phase
            stats: dict[str, Any] | None = None
            missing: tuple[int, ...] = ()
        else:
            stats, missing = self.statistics(queries)
        answers = self._scatter("search_bm25", [(queries, k, g, stats, self.scorer, filter)
                                                for g in self.cut.generations])
        for i in missing:  # a shard that missed the statistics phase is left out of the merge as well
            answers[i] = ShardUnavailableError(i, "no answer to the statistics phase")
        return merge(answers, len(queries), k)


class ShardedDense(ShardedRetriever):
    """Exact (or tiered/ANN, per the index config) inner-product search; queries are encoded once, here."""

    def __init__(self, collection: ShardedCollection, cut: Cut, index: str = "default", *,
                 allow_partial_results: bool = False) -> None:
        super().__init__(collection, cut, allow_partial_results=allow_partial_results)
        self.index = index
        self.encoder = collection.query_encoder(index)

    def config(self) -> dict[str, Any]:
        return {"type": "dense", "index": self.index, "encoder": self.encoder.spec(),
                "shards": self.collection.pool.size}

    def search(self, queries: Sequence[str], k: int = 10, *, filter: Filter | None = None,
               threads: int = 1) -> SearchResults:
        from retrievekit.index.dense.embedding import embed_queries

        queries = [queries] if isinstance(queries, str) else list(queries)
        vectors = embed_queries(self.encoder, queries)
        answers = self._scatter("search_dense", [(vectors, k, g, self.index, filter) for g in self.cut.generations])
        return merge(answers, len(queries), k)


class ShardedSparse(ShardedRetriever):
    """Learned-sparse (SPLADE) search; each shard encodes the queries with the index's model."""

    def __init__(self, collection: ShardedCollection, cut: Cut, index: str = "default", *,
                 allow_partial_results: bool = False) -> None:
        super().__init__(collection, cut, allow_partial_results=allow_partial_results)
        self.index = index
        if index not in (collection.config.get("sparse") or {}):
            raise RetrievekitError(f"sharded collection {collection.path} has no sparse index {index!r}")

    def config(self) -> dict[str, Any]:
        return {"type": "sparse", "index": self.index, "shards": self.collection.pool.size}

    def search(self, queries: Sequence[str], k: int = 10, *, filter: Filter | None = None,
               threads: int = 1) -> SearchResults:
        queries = [queries] if isinstance(queries, str) else list(queries)
        answers = self._scatter("search_sparse", [(queries, k, g, self.index, filter) for g in self.cut.generations])
        return merge(answers, len(queries), k)
