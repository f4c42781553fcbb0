"""Near-duplicate image search over a collection's perceptual-hash index (``index.images.segment``): the query
images are hashed the same way and every segment's codes searched by the compiled Hamming kernel, then merged by
distance (ties by document number). A result's score is the number of matching bits (hash_size² = identical)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.errors import CollectionError
from retrievekit.core.filters import Filter
from retrievekit.index.base import segment_index
from retrievekit.index.dense.tiers.hamming import hamming_topk
from retrievekit.retrieval.base import SearchResults
from retrievekit.retrieval.inverted import with_snapshot

if TYPE_CHECKING:
    from retrievekit.retrieval.base import CollectionView
    from retrievekit.storage.snapshot import Snapshot


class NearDuplicateSearch:
    """Search the image-hash index ``index`` of ``collection`` with images (paths, bytes or PIL images)."""

    def __init__(self, collection: CollectionView, index: str = "default") -> None:
        indexes = dict(collection.snapshot().manifest.config.get("imagehash") or {})
        if index not in indexes:
            raise CollectionError(f"{collection.path} has no image hash index {index!r} (has: "
                                  f"{', '.join(indexes) or 'none'}); add one with Collection.add_image_hash_index() "
                                  "or `retrievekit index --images --hash phash`")
        self.collection, self.index, self.config = collection, index, dict(indexes[index])
        self.hasher = segment_index("imagehash").load_encoder(self.config)
        self.bits = int(self.config["hash_size"]) ** 2

    def search(self, images: Sequence[Any], k: int = 10, *, filter: Filter | None = None) -> SearchResults:
        queries = np.stack([self.hasher(image) for image in images]) if len(images) else None
        kind = segment_index("imagehash")

        def run(snap: Snapshot) -> SearchResults:
            m = len(images)
            ids = np.full((m, k), None, dtype=object)
            scores = np.full((m, k), -np.inf, dtype=np.float32)
            if queries is None:
                return SearchResults(ids, scores)
            allowed = snap.allowed(filter)
            numbers, dists = [], []
            for seg, base, mask in zip(snap.segments, snap.bases, allowed):
                codes = kind.open(seg, self.config, self.index)
                present = np.asarray(codes.present, dtype=np.uint8)
                ok = present if mask is None else present & np.asarray(mask, dtype=np.uint8)
                local, dist = hamming_topk(queries, codes.codes, k, ok)
                numbers.append(np.where(local >= 0, local + int(base), -1))
                dists.append(np.where(local >= 0, dist, np.iinfo(np.int32).max))
            if not numbers:
                return SearchResults(ids, scores)
            all_numbers = np.concatenate(numbers, axis=1)
            all_dists = np.concatenate(dists, axis=1)
            order = np.lexsort((all_numbers, all_dists), axis=1)[:, :k]
            top_numbers = np.take_along_axis(all_numbers, order, axis=1)
            top_dists = np.take_along_axis(all_dists, order, axis=1)
            id_array = snap.id_array
            for q in range(m):
                valid = top_numbers[q] >= 0
                n = int(valid.sum())
                ids[q, :n] = id_array[top_numbers[q][valid]]
                scores[q, :n] = self.bits - top_dists[q][valid]
            return SearchResults(ids, scores)

        return with_snapshot(self.collection, run)
