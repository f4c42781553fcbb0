"""Dense indexes of a collection: configuration in the manifest, one vector file per segment.

``manifest.config["dense"][name]`` = {"encoder": spec, "chunking": {...} | None, "fields": [...]}. Each segment
holds ``vectors-<key>.npy`` (float32, one row per document of the segment, deleted ones included) where ``key``
hashes that configuration. A commit writes the vectors of its new segments before the manifest that publishes them,
so every committed segment has vectors for every configured index; merges copy vectors (no re-encoding).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.document import Document, index_text
from retrievekit.core.errors import CollectionError
from retrievekit.core.files import atomic_write_array
from retrievekit.encoders.base import Encoder
from retrievekit.encoders.cache import EmbeddingCache, default_cache_root
from retrievekit.index.base import SegmentIndex, SegmentView
from retrievekit.index.dense.embedding import Chunking, embed_documents, index_key

logger = logging.getLogger(__name__)

DEFAULT_INDEX = "default"


def make_index_config(encoder: Encoder, *, chunking: Chunking | str | dict[str, Any] | None = None,
                      fields: Sequence[str] = ("title", "text"),
                      vectors: str | dict[str, Any] | None = None) -> dict[str, Any]:
    """``vectors``: the search tier — None/'float32' (exact float search), e.g. 'int8', 'binary+rescore',
    'pq:48+rescore:8', 'hnsw' (see ``compressed.parse_vectors``)."""
    from retrievekit.index.dense.compressed import parse_vectors

    parsed = Chunking.parse(chunking)
    config = {"encoder": encoder.spec(), "chunking": parsed.to_json() if parsed else None, "fields": list(fields)}
    tier = parse_vectors(vectors)
    if tier is not None:
        config["vectors"] = tier
    return config


def vectors_file(config: dict[str, Any]) -> str:
    return f"vectors-{index_key(config)}.npy"


def index_files(config: dict[str, Any]) -> set[str]:
    """The names a dense index owns in a segment folder: its float vectors and, if configured, its search tier."""
    from retrievekit.index.dense.compressed import tier_folder

    name = vectors_file(config)
    return {name, tier_folder(name)}


def embedding_cache(config: dict[str, Any]) -> EmbeddingCache | None:
    """The shared on-disk embedding cache ($RETRIEVEKIT_CACHE/embeddings or ~/.cache/retrievekit/embeddings);
    RETRIEVEKIT_EMBEDDING_CACHE=off disables it."""
    import os

    if os.environ.get("RETRIEVEKIT_EMBEDDING_CACHE", "").lower() in ("off", "0", "no", "false"):
        return None
    spec = dict(config["encoder"])
    if config.get("chunking"):
        spec["chunking"] = config["chunking"]  # window texts differ from whole-document texts
    return EmbeddingCache(default_cache_root(), spec)


def encode_segment(
    folder: Path,
    config: dict[str, Any],
    documents: Iterable[Document],
    n_docs: int,
    encoder: Encoder,
    *,
    skip: set[int] | None = None,
    progress: bool = False,
    batch_size: int = 32,
) -> None:
    """Write the vectors of one segment from its ``n_docs`` documents in number order (rows in ``skip`` —
    documents already replaced — stay zero)."""
    target = folder / vectors_file(config)
    if target.exists():
        _ensure_tier(folder, config)
        return
    fields = config["fields"]
    rows, texts = [], []
    for local, doc in enumerate(documents):
        if skip is None or local not in skip:
            rows.append(local)
            texts.append(index_text(doc, fields))
    vectors = np.zeros((n_docs, encoder.dim), dtype=np.float32)
    if texts:
        vectors[rows] = embed_documents(encoder, texts, chunking=Chunking.parse(config.get("chunking")),
                                        cache=embedding_cache(config), batch_size=batch_size, progress=progress)
    atomic_write_array(target, vectors)
    _ensure_tier(folder, config, vectors)


def _ensure_tier(folder: Path, config: dict[str, Any], vectors: np.ndarray | None = None) -> None:
    """Build the segment's compressed / ANN tier if the index has one and it is missing."""
    spec = config.get("vectors")
    if not spec:
        return
    from retrievekit.index.dense.compressed import build_tier

    name = vectors_file(config)
    if vectors is None:
        vectors = np.load(folder / name, mmap_mode="r")
    build_tier(folder, name, vectors, spec)


def merge_vectors(folder: Path, sources: Sequence[tuple[Path, np.ndarray]], n_docs: int,
                  config: dict[str, Any]) -> bool:
    """Vectors of a merged segment from its sources' ((folder, new number of each old row, -1 = dropped)).
    Returns False (and writes nothing) if a source has no vectors — the commit then encodes the merged segment."""
    name = vectors_file(config)
    if not all((src / name).exists() for src, _ in sources):
        return False
    dim = int(config["encoder"]["dim"])
    out = np.zeros((n_docs, dim), dtype=np.float32)
    for src, new_docs in sources:
        vectors = np.load(src / name, mmap_mode="r")
        keep = new_docs >= 0
        out[new_docs[keep]] = vectors[keep]
    atomic_write_array(folder / name, out)
    _ensure_tier(folder, config, out)
    return True


def segment_vectors(reader: SegmentView, config: dict[str, Any], index: str) -> np.ndarray:
    from retrievekit.core.files import load_array

    name = vectors_file(config)
    cached = reader.extras.get(name)
    if cached is None:
        try:
            cached = reader.extras[name] = load_array(reader.folder / name)
        except FileNotFoundError:
            raise CollectionError(f"segment {reader.name} has no vectors for dense index {index!r} "
                                  f"({name} is missing); the collection is damaged") from None
    return cached


def segment_tier(reader: SegmentView, config: dict[str, Any], index: str) -> Any:
    """The segment's loaded compressed/ANN tier (codes in memory), opened once per segment reader."""
    from retrievekit.index.dense.compressed import load_tier, tier_folder

    name = tier_folder(vectors_file(config))
    cached = reader.extras.get(name)
    if cached is None:
        cached = reader.extras[name] = load_tier(reader.folder, vectors_file(config), config["vectors"])
    return cached


class DenseIndex(SegmentIndex):
    """Dense vectors (``vectors-<key>.npy``) and, if configured, their search tier (``tier-<key>/``)."""

    key = "dense"
    prefixes = ("vectors-", "tier-")

    def files(self, config: Mapping[str, Any]) -> set[str]:
        return index_files(dict(config))

    def encode(self, folder: Path, config: dict[str, Any], documents: Iterable[Document], n_docs: int, encoder: Any,
               *, skip: set[int] | None = None, progress: bool = False) -> None:
        encode_segment(folder, config, documents, n_docs, encoder, skip=skip, progress=progress)

    def load_encoder(self, config: Mapping[str, Any]) -> Encoder:
        from retrievekit.encoders import get_encoder

        spec = dict(config["encoder"])
        stored_dim = spec.get("dim")
        encoder = get_encoder(spec)
        if stored_dim is not None and encoder.dim != stored_dim:
            raise CollectionError(f"the encoder {spec.get('model')!r} now gives {encoder.dim}-d vectors but the "
                                  f"index holds {stored_dim}-d ones")
        return encoder

    def encoder_key(self, config: Mapping[str, Any]) -> str:
        return index_key(dict(config))

    def merge(self, folder: Path, sources: Sequence[tuple[SegmentView, np.ndarray]], n_docs: int,
              config: dict[str, Any]) -> dict[str, Any] | None:
        merged = merge_vectors(folder, [(seg.folder, nd) for seg, nd in sources], n_docs, config)
        return {} if merged else None

    def open(self, segment: SegmentView, config: dict[str, Any], name: str) -> np.ndarray:
        # The float vectors only: a compressed tier's codes are loaded into memory on first search (segment_tier).
        return segment_vectors(segment, config, name)

    def stats(self, segment: SegmentView, config: dict[str, Any], name: str) -> dict[str, Any]:
        vectors = self.open(segment, config, name)
        return {"vectors": int(vectors.shape[0]), "dim": int(vectors.shape[1])}
