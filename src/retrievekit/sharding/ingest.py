"""Distributed encoding for sharded ingest: a Ray Data actor pool encodes the documents' texts into the shared
embedding cache before the shard writers commit, so each shard's commit finds its vectors there instead of
encoding them itself. More encoders than shards (or GPU actors) then share the work, a failed task is retried by
Ray Data, and nothing is encoded twice: a text whose vector is cached already is skipped, by every worker."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from retrievekit.core.document import Document, index_text
from retrievekit.encoders.cache import default_cache_root


class _EncodeIntoCache:
    """A Ray Data actor: one encoder, loaded once, writing vectors into the cache at ``cache_root``."""

    def __init__(self, config: dict[str, Any], cache_root: str) -> None:
        from retrievekit.index.base import segment_index

        os.environ["RETRIEVEKIT_CACHE"] = cache_root  # the folder every shard reads (shared across nodes)
        self.config = config
        self.encoder = segment_index("dense").load_encoder(config)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        from retrievekit.index.dense.embedding import Chunking, embed_documents
        from retrievekit.index.dense.segment import embedding_cache

        texts = [str(t) for t in batch["text"]]
        embed_documents(self.encoder, texts, chunking=Chunking.parse(self.config.get("chunking")),
                        cache=embedding_cache(self.config))
        return {"encoded": np.ones(len(texts), np.int8)}


def encode_into_cache(documents: Sequence[Document], dense: Mapping[str, dict[str, Any]], *, workers: int,
                      batch_size: int = 64, num_cpus: float = 1.0) -> int:
    """Encode ``documents`` for every dense index config in ``dense`` with ``workers`` Ray Data actors; returns the
    number of texts handed to the encoders. Needs a connected Ray (``backends.ray.init_ray``)."""
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    cache_root = str(default_cache_root().parent)  # RETRIEVEKIT_CACHE: the embeddings folder's parent
    total = 0
    for config in dense.values():
        texts = [index_text(doc, config["fields"]) for doc in documents]
        if not texts:
            continue
        blocks = max(1, min(len(texts) // batch_size, workers * 8))
        dataset = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=blocks)
        encoded = dataset.map_batches(_EncodeIntoCache, fn_constructor_kwargs={"config": config,
                                                                               "cache_root": cache_root},
                                      batch_size=batch_size, num_cpus=num_cpus,
                                      compute=ray.data.ActorPoolStrategy(size=workers))
        total += int(encoded.sum("encoded") or 0)  # type: ignore[arg-type]  # a number for a plain column
    return total
