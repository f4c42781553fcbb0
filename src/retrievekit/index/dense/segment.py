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
from retrievekit.core.files import atomic_write_array, read_npy
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
    'pq:48+rescore:8', 'hnsw' (see ``compressed.parse_vectors``). An image-text (CLIP) encoder makes an image index:
    a document's vector is its image's (metadata ``image``), or its text's where it has no image."""
    from retrievekit.encoders.clip import is_image_text
    from retrievekit.index.dense.compressed import parse_vectors

    parsed = Chunking.parse(chunking)
    config: dict[str, Any] = {"encoder": encoder.spec(), "chunking": parsed.to_json() if parsed else None,
                              "fields": list(fields)}
    if is_image_text(encoder):
        if parsed is not None:
            raise CollectionError("an image index embeds whole images: chunking does not apply")
        config["modality"] = "image"
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
    if config.get("modality") == "image":
        _encode_image_segment(target, folder, config, documents, n_docs, encoder, skip, progress, batch_size)
        return
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


IMAGE_FIELD = "image"  # metadata: the path of a document's image (see ingest.images)
IMAGE_HASH_FIELD = "image_sha256"  # metadata: the SHA-256 of its bytes (the embedding cache key)


def _encode_image_segment(target: Path, folder: Path, config: dict[str, Any], documents: Iterable[Document],
                          n_docs: int, encoder: Any, skip: set[int] | None, progress: bool, batch_size: int) -> None:
    """Vectors of an image index: each document's image through the image tower, or — for a document without an
    image — its text through the text tower. Cached by the image's content hash (or the text)."""
    import hashlib

    from retrievekit.encoders.cache import encode_with_cache

    rows: list[int] = []
    keys: list[str] = []
    images: dict[str, str] = {}  # cache key -> image path
    for local, doc in enumerate(documents):
        if skip is not None and local in skip:
            continue
        rows.append(local)
        path = doc.metadata.get(IMAGE_FIELD)
        if isinstance(path, str) and path:
            digest = doc.metadata.get(IMAGE_HASH_FIELD)
            if not isinstance(digest, str) or not digest:
                try:
                    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                except OSError as exc:
                    raise CollectionError(f"document {doc.id!r}: cannot read its image {path}: {exc}") from None
            key = f"\0image:{digest}"  # no text starts with NUL: image keys never collide with texts
            images[key] = path
            keys.append(key)
        else:
            keys.append(encoder.document_prompt + index_text(doc, config["fields"]))

    def encode(batch: list[str]) -> np.ndarray:
        out = np.empty((len(batch), encoder.dim), dtype=np.float32)
        pics = [i for i, k in enumerate(batch) if k in images]
        texts = [i for i, k in enumerate(batch) if k not in images]
        if pics:
            out[pics] = encoder.encode_images([images[batch[i]] for i in pics], batch_size=batch_size)
        if texts:
            out[texts] = encoder.encode([batch[i] for i in texts], batch_size=batch_size)
        return out

    vectors = np.zeros((n_docs, encoder.dim), dtype=np.float32)
    if keys:
        vectors[rows] = encode_with_cache(encode, keys, encoder.dim, embedding_cache(config), progress=progress,
                                          desc="embedding images")
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
        vectors = read_npy(folder / name, mmap=True)
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
        vectors = read_npy(src / name, mmap=True)
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
