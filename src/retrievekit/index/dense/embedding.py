"""Document and query embedding for dense indexes: prompts, optional chunk-and-pool, resumable caching."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.encoders.base import Encoder, normalize_rows
from retrievekit.encoders.cache import EmbeddingCache, encode_with_cache

POOLS = ("mean", "max", "first")


@dataclass(frozen=True)
class Chunking:
    """Represent documents longer than the model window by several windows pooled into one vector (LongEmbed-style
    chunk-and-pool). ``max_tokens``: window length in model tokens; ``overlap``: tokens shared by neighbours;
    ``pool``: mean | max | first."""

    max_tokens: int = 256
    overlap: int = 32
    pool: str = "mean"

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise RetrievekitError(f"chunk pooling must be one of {', '.join(POOLS)}, got {self.pool!r}")
        if self.max_tokens < 8 or not 0 <= self.overlap < self.max_tokens // 2 + 1:
            raise RetrievekitError(f"bad chunking: max_tokens={self.max_tokens} (≥ 8), overlap={self.overlap} "
                                   "(0 ≤ overlap ≤ max_tokens/2)")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, value: str | dict[str, Any] | Chunking | None) -> Chunking | None:
        """None, a Chunking, its dict, or 'TOKENS[:OVERLAP[:POOL]]' (e.g. '256:32:max')."""
        if value is None or isinstance(value, Chunking):
            return value
        if isinstance(value, dict):
            return cls(**value)
        parts = str(value).split(":")
        try:
            return cls(int(parts[0]), int(parts[1]) if len(parts) > 1 else 32, parts[2] if len(parts) > 2 else "mean")
        except ValueError:
            raise RetrievekitError(
                f"bad chunking {value!r}: expected TOKENS[:OVERLAP[:POOL]], e.g. 256:32:mean") from None


def split_windows(encoder: Encoder, text: str, chunking: Chunking) -> list[str]:
    """``text`` cut into windows of at most ``max_tokens`` model tokens (one piece if it fits)."""
    spans = encoder.token_spans(text)
    if len(spans) <= chunking.max_tokens:
        return [text]
    step = chunking.max_tokens - chunking.overlap
    pieces = []
    for start in range(0, len(spans), step):
        window = spans[start : start + chunking.max_tokens]
        pieces.append(text[window[0][0] : window[-1][1]])
        if start + chunking.max_tokens >= len(spans):
            break
    return pieces


def embed_documents(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    chunking: Chunking | None = None,
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> np.ndarray:
    """One vector per document text (document prompt added). Without chunking the model truncates at its window;
    with chunking every window is encoded and the windows' vectors pooled."""

    def encode(batch: list[str]) -> np.ndarray:
        return encoder.encode(batch, batch_size=batch_size)

    prompt = encoder.document_prompt
    if chunking is None:
        return encode_with_cache(encode, [prompt + t for t in texts], encoder.dim, cache, progress=progress,
                                 desc="embedding documents")
    pieces: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        for piece in split_windows(encoder, text, chunking):
            pieces.append(prompt + piece)
            owner.append(i)
    vectors = encode_with_cache(encode, pieces, encoder.dim, cache, progress=progress, desc="embedding windows")
    owners = np.asarray(owner, dtype=np.int64)
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    if chunking.pool == "mean":
        np.add.at(out, owners, vectors)
    elif chunking.pool == "max":
        out[:] = -np.inf
        np.maximum.at(out, owners, vectors)
        out[~np.isfinite(out)] = 0.0
    else:  # first window
        first = np.ones(len(owners), dtype=bool)
        first[1:] = owners[1:] != owners[:-1]
        out[owners[first]] = vectors[first]
    if encoder.normalize:
        normalize_rows(out)
    return out


def embed_queries(encoder: Encoder, queries: Sequence[str], *, cache: EmbeddingCache | None = None,
                  batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Query vectors (query prompt added); cached like documents when ``cache`` is given."""
    prompted = [encoder.query_prompt + q for q in queries]
    if cache is None:
        return encoder.encode(prompted, batch_size=batch_size, progress=progress, desc="embedding queries")
    return encode_with_cache(lambda b: encoder.encode(b, batch_size=batch_size), prompted, encoder.dim, cache,
                             progress=progress, desc="embedding queries")


def index_key(config: dict[str, Any]) -> str:
    """Short stable name of a dense index configuration (encoder spec, chunking, fields): names its vector files,
    so files of a dropped or differently configured index are never mistaken for this one's."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
