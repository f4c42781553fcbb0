"""Composable retrieval stages: retriever → fusion → reranker → cutoff.

Every stage is a ``Retriever`` (queries in, ``SearchResults`` out), so a pipeline is searched, evaluated and served
like a single retriever. Operators build them::

    bm25 | dense                 # reciprocal rank fusion of two retrievers (Fusion)
    bm25 + dense                 # convex combination of min-max normalised scores (Fusion)
    (bm25 | dense) >> reranker   # rerank the fused candidates (Rerank; 100 candidates unless depth= is given)
    pipeline % 10                # at most 10 results (Cutoff)

Python binds ``%`` before ``+`` before ``>>`` before ``|``: use parentheses, e.g. ``(bm25 | dense) >> ce``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.filters import Filter
from retrievekit.retrieval.base import Retriever, SearchResults

if TYPE_CHECKING:
    from retrievekit.retrieval.base import CollectionView
    from retrievekit.retrieval.rerank.base import Reranker


def collection_of(retriever: Retriever) -> CollectionView | None:
    return getattr(retriever, "collection", None)


class Fusion(Retriever):
    """Fuse the results of several retrievers (``method``: rrf | convex, see ``retrievekit.retrieval.fusion``).
    Each retriever returns ``depth`` results per query (at least ``k``)."""

    def __init__(self, retrievers: Sequence[Retriever], method: str = "rrf", *, depth: int = 1000,
                 **params: Any) -> None:
        if len(retrievers) < 2:
            raise RetrievekitError("fusion needs at least two retrievers")
        from retrievekit.retrieval.fusion import fuse

        self.retrievers = list(retrievers)
        self.method, self.depth, self.params = method, depth, params
        self._fuse = fuse
        self.collection = collection_of(self.retrievers[0])

    def search(self, queries: Sequence[str], k: int = 10, *, filter: Filter | None = None,
               threads: int = 1) -> SearchResults:
        depth = max(self.depth, k)
        lists = [r.search(queries, depth, filter=filter, threads=threads) for r in self.retrievers]
        return self._fuse(lists, self.method, **self.params).top(k)

    def config(self) -> dict[str, Any]:
        return {"type": "fusion", "method": self.method, "depth": self.depth, **self.params,
                "retrievers": [r.config() for r in self.retrievers]}


class Rerank(Retriever):
    """Rescore the first ``depth`` results of ``first`` with ``reranker``; returns the reranked list (at most
    ``depth`` long). Document texts come from ``texts`` or, by default, the collection ``first`` searches."""

    def __init__(self, first: Retriever, reranker: Reranker, *, depth: int = 100,
                 texts: Callable[[Sequence[str]], list[str]] | None = None) -> None:
        self.first, self.reranker, self.depth = first, reranker, depth
        self.collection = collection_of(first)
        if texts is None:
            if self.collection is None:
                raise RetrievekitError("reranking needs document texts: pass texts= or rerank a collection's retriever")
            texts = document_texts(self.collection)
        self.texts = texts

    def search(self, queries: Sequence[str], k: int = 10, *, filter: Filter | None = None,
               threads: int = 1) -> SearchResults:
        candidates = self.first.search(queries, self.depth, filter=filter, threads=threads)
        return self.reranker.rerank(list(queries), candidates, self.texts, k=min(k, self.depth)).top(k)

    def config(self) -> dict[str, Any]:
        return {"type": "rerank", "depth": self.depth, "reranker": self.reranker.config(),
                "first": self.first.config()}


class Cutoff(Retriever):
    """At most ``n`` results of ``first``."""

    def __init__(self, first: Retriever, n: int) -> None:
        self.first, self.n = first, n
        self.collection = collection_of(first)

    def search(self, queries: Sequence[str], k: int = 10, *, filter: Filter | None = None,
               threads: int = 1) -> SearchResults:
        return self.first.search(queries, min(k, self.n), filter=filter, threads=threads).top(k)

    def config(self) -> dict[str, Any]:
        return {"type": "cutoff", "n": self.n, "first": self.first.config()}


def document_texts(collection: CollectionView) -> Callable[[Sequence[str]], list[str]]:
    """Document id → the text rerankers read (the collection's indexed fields, title + " " + text by default)."""
    from retrievekit.core.document import index_text

    fields = list(collection.settings.fields)

    def texts(ids: Sequence[str]) -> list[str]:
        return [index_text(d, fields) if d is not None else "" for d in collection.get_many(list(ids))]

    return texts

