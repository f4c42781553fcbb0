"""Exact dense retrieval over a collection's stored vectors, with metadata filters and optional Rocchio feedback."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.filters import Filter
from retrievekit.encoders.base import Encoder, check_compatible
from retrievekit.index.dense.embedding import embed_queries
from retrievekit.index.dense.exact import exact_search
from retrievekit.index.dense.segment import DEFAULT_INDEX, segment_tier, segment_vectors
from retrievekit.retrieval.base import Retriever, SearchResults

if TYPE_CHECKING:
    from retrievekit.retrieval.base import CollectionView


def query_encoder(collection: CollectionView, index: str, config: Mapping[str, Any]) -> Encoder:
    """The encoder for the queries of dense index ``index``: the ONNX export of its sentence-transformers model
    when one is cached (the same function, without importing torch: a cold CLI search takes about a second instead
    of ~9), else the index's own encoder. A process that has imported torch already keeps the indexed encoder: the
    export would save it little, and its queries stay bit-identical to those of the encoder that built the index."""
    if "torch" not in sys.modules:
        from retrievekit.encoders.onnx import query_twin

        twin = query_twin(config["encoder"])
        if twin is not None:
            return twin
    return collection.encoder(index, config)


class DenseRetriever(Retriever):
    """Inner-product search over the vectors of dense index ``index`` (cosine for normalised encoders).

    Queries are encoded by the index's own encoder (rebuilt from the spec the manifest stores, or its ONNX twin:
    see ``query_encoder``) unless ``encoder`` is given, which must then encode the same way (same model, prompts,
    pooling, normalisation, dimension — the backend may differ, e.g. ONNX queries against a sentence-transformers
    index).
    ``prf``: Rocchio pseudo-relevance feedback, True or {"fb_docs": 3, "alpha": 1.0, "beta": 0.5}.
    ``cache_queries``: keep query vectors in the embedding cache (for repeated evaluations).
    """

    def __init__(self, collection: CollectionView, index: str = DEFAULT_INDEX, *, encoder: Encoder | str | None = None,
                 prf: bool | Mapping[str, Any] = False, cache_queries: bool = False) -> None:
        self.collection = collection
        self.index = index
        self.cache_queries = cache_queries  # keep query vectors in the embedding cache (repeated evaluations)
        config = self._config()
        if encoder is not None:
            from retrievekit.encoders import get_encoder

            encoder = get_encoder(encoder)
            check_compatible(config["encoder"], encoder.spec(), f"dense index {index!r} of {collection.path}")
            self.encoder = encoder
        else:
            self.encoder = query_encoder(collection, index, config)
        self.prf = None if not prf else {"fb_docs": 3, "alpha": 1.0, "beta": 0.5, **(prf if isinstance(prf, Mapping)
                                                                                      else {})}

    def _config(self) -> dict[str, Any]:
        return self.collection.index_config("dense", self.index)

    def config(self) -> dict[str, Any]:
        return {"type": "dense", "index": self.index, "encoder": self.encoder.spec(), "prf": self.prf}

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        if self.cache_queries:
            from retrievekit.index.dense.segment import embedding_cache

            return embed_queries(self.encoder, queries, cache=embedding_cache(self._config()))
        return embed_queries(self.encoder, queries)

    def search(self, queries: Sequence[str], k: int = 10, *, filter: Filter | None = None,
               threads: int = 1) -> SearchResults:
        return self.search_vectors(self.encode_queries(queries), k, filter=filter, threads=threads)

    def search_vectors(self, vectors: np.ndarray, k: int = 10, *, filter: Filter | None = None,
                       threads: int = 1) -> SearchResults:
        """Search with already-encoded query vectors (float32, (n, dim))."""
        snap = self.collection.snapshot()
        config = self._config()
        blocks = [segment_vectors(seg, config, self.index) for seg in snap.segments]
        allowed = snap.allowed(filter)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.prf is not None and len(vectors):
            from retrievekit.retrieval.dense.prf import rocchio

            fb = int(self.prf["fb_docs"])
            first, _ = exact_search(vectors, blocks, fb, allowed=allowed, threads=threads)
            feedback = [self._rows(snap, blocks, row[row >= 0]) for row in first]
            vectors = rocchio(vectors, feedback, alpha=float(self.prf["alpha"]), beta=float(self.prf["beta"]),
                              normalize=bool(config["encoder"].get("normalize", True)))
        if config.get("vectors"):
            numbers, scores = self._search_tiers(snap, config, blocks, vectors, k, allowed)
        else:
            numbers, scores = exact_search(vectors, blocks, k, allowed=allowed, threads=threads)
        ids = np.empty(numbers.shape, dtype=object)
        valid = numbers >= 0
        ids[valid] = snap.id_array[numbers[valid]]
        return SearchResults(ids, scores.astype(np.float32, copy=False))

    def _search_tiers(self, snap: Any, config: dict[str, Any], blocks: list[np.ndarray], vectors: np.ndarray, k: int,
                      allowed: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
        """Candidates from each segment's compressed/ANN tier (rescored with its float vectors if configured),
        merged into one top-k by score."""
        m = len(vectors)
        all_numbers = [np.full((m, 0), -1, np.int64)]
        all_scores = [np.full((m, 0), -np.inf, np.float32)]
        for seg, base, block, mask in zip(snap.segments, snap.bases, blocks, allowed):
            tier = segment_tier(seg, config, self.index)
            local, scores = tier.search(vectors, k, mask, block)
            local = np.asarray(local, dtype=np.int64)
            all_numbers.append(np.where(local >= 0, local + int(base), -1))
            all_scores.append(np.where(local >= 0, np.asarray(scores, np.float32), -np.inf).astype(np.float32))
        numbers = np.concatenate(all_numbers, axis=1)
        scores = np.concatenate(all_scores, axis=1)
        order = np.lexsort((numbers, -scores), axis=1)[:, :k] if numbers.shape[1] else np.zeros((m, 0), np.int64)
        numbers = np.take_along_axis(numbers, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        if numbers.shape[1] < k:
            pad = k - numbers.shape[1]
            numbers = np.pad(numbers, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return numbers, scores

    @staticmethod
    def _rows(snap: Any, blocks: list[np.ndarray], numbers: np.ndarray) -> np.ndarray:
        seg = np.searchsorted(snap.bases, numbers, side="right") - 1
        dim = blocks[0].shape[1] if blocks else 0
        out = np.empty((len(numbers), dim), dtype=np.float32)
        for i, (s, n) in enumerate(zip(seg, numbers)):
            out[i] = blocks[s][n - snap.bases[s]]
        return out
