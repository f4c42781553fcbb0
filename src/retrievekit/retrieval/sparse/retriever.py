"""Learned-sparse retrieval: query term weights times stored document impacts, summed by the compiled kernel."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.errors import CollectionError
from retrievekit.core.filters import Filter
from retrievekit.index.sparse.segment import DEFAULT_INDEX, segment_sparse
from retrievekit.retrieval.base import Retriever, SearchResults, results_from_numbers, run_batch
from retrievekit.retrieval.bm25.kernel import MODE_IMPACT, TermBounds
from retrievekit.retrieval.inverted import Scoring, SegmentTerms, search_segments, with_snapshot

if TYPE_CHECKING:
    from retrievekit.encoders.splade import SpladeEncoder
    from retrievekit.retrieval.base import CollectionView
    from retrievekit.storage.snapshot import Snapshot


class LearnedSparseRetriever(Retriever):
    """Scores = Σ over shared terms of query weight × document weight (SPLADE's dot product), with document
    weights as stored (quantized). Queries are encoded by the index's own encoder, rebuilt from the stored spec,
    unless ``encoder`` is given (it must then be the same model and window)."""

    def __init__(self, collection: CollectionView, index: str = DEFAULT_INDEX, *,
                 encoder: SpladeEncoder | str | None = None, use_kernel: bool = True) -> None:
        self.collection = collection
        self.index = index
        self.use_kernel = use_kernel
        config = self._config()
        if encoder is not None:
            from retrievekit.encoders.base import EncoderMismatchError
            from retrievekit.encoders.splade import get_sparse_encoder

            resolved = get_sparse_encoder(encoder)
            if resolved.spec() != config["encoder"]:
                raise EncoderMismatchError(f"the query encoder {resolved.spec()} does not match the encoder of "
                                           f"sparse index {index!r}: {config['encoder']}")
            self.encoder = resolved
        else:
            self.encoder = collection.sparse_encoder(index, config)

    def _config(self) -> dict[str, Any]:
        return self.collection.index_config("sparse", self.index)

    def config(self) -> dict[str, Any]:
        return {"type": "sparse", "index": self.index, "encoder": self.encoder.spec()}

    def encode_queries(self, queries: Sequence[str]) -> list[dict[str, float]]:
        return self.encoder.encode_queries(list(queries))

    def search(self, queries: Sequence[str], k: int = 10, *, filter: Filter | None = None,
               threads: int = 1) -> SearchResults:
        if isinstance(queries, str):
            queries = [queries]
        return self.search_weights(self.encode_queries(queries), k, filter=filter, threads=threads)

    def search_weights(self, weights: Sequence[Mapping[str, float]], k: int = 10, *, filter: Filter | None = None,
                       threads: int = 1) -> SearchResults:
        """Search with already-encoded queries ({term: weight} each)."""
        return with_snapshot(self.collection, lambda snap: self._search(snap, weights, k, filter, threads))

    def _search(self, snap: Snapshot, weights: Sequence[Mapping[str, float]], k: int, filter: Filter | None,
                threads: int) -> SearchResults:
        config = self._config_of(snap)
        postings = [segment_sparse(seg, config, self.index) for seg in snap.segments]
        allowed = snap.allowed(filter)
        scale = 1.0 / float(config["quantization"])

        def one(bag: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
            return self._search_one(snap, postings, allowed, bag, scale, k)

        rows = run_batch(weights, one, threads)
        return results_from_numbers(rows, snap.id_array, k)

    def _config_of(self, snap: Snapshot) -> dict[str, Any]:
        sparse = snap.manifest.config.get("sparse") or {}
        if self.index not in sparse:
            raise CollectionError(f"sparse index {self.index!r} was dropped from {self.collection.path}")
        return sparse[self.index]

    def _search_one(self, snap: Snapshot, postings: list[Any], allowed: list[np.ndarray | None],
                    bag: Mapping[str, float], scale: float, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k (global document numbers, scores) of one query."""
        terms = [t for t, w in bag.items() if w > 0]
        query_weights = np.array([bag[t] for t in terms], np.float64) * scale

        def parts() -> Iterator[tuple[int, SegmentTerms]]:
            for si, seg in enumerate(postings):
                ids = np.array([seg.term_ids.get(t, -1) for t in terms], np.int64)
                found = ids >= 0
                if found.any():
                    seg_ids = np.ascontiguousarray(ids[found])
                    yield si, SegmentTerms(seg, seg_ids, np.ascontiguousarray(query_weights[found]),
                                           np.zeros(len(seg_ids)), seg.zeros,
                                           seg.bounds(TermBounds.empty))

        return search_segments(snap.bases, parts(), allowed, Scoring(MODE_IMPACT, use_kernel=self.use_kernel), k)
