"""The semantic chunker: sentences grouped into topical chunks, cut where neighbouring sentences' embeddings
diverge."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.chunking.base import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_PERCENTILE,
    Chunk,
    Chunker,
    ChunkingError,
    Span,
    _check_text,
    _pack,
    _Pieces,
    _positive_int,
    _Span,
)
from retrievekit.chunking.sentences import split_sentences

if TYPE_CHECKING:
    from retrievekit.encoders.base import Encoder


def gap_similarities(embeddings: np.ndarray, window: int = 2) -> np.ndarray:
    """Cosine similarity, at each gap between consecutive sentences, of the mean embedding of the ``window``
    sentences before the gap and of the ``window`` after it: (n - 1,) float32. A zero vector counts as similar."""
    n = len(embeddings)
    if n < 2:
        return np.zeros(0, dtype=np.float32)
    emb = np.asarray(embeddings, dtype=np.float64)
    cum = np.vstack([np.zeros((1, emb.shape[1])), np.cumsum(emb, axis=0)])
    gap = np.arange(n - 1)
    left = cum[gap + 1] - cum[np.maximum(0, gap + 1 - window)]
    right = cum[np.minimum(n, gap + 1 + window)] - cum[gap + 1]
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    dots = np.einsum("ij,ij->i", left, right)
    sims = np.ones(n - 1)
    np.divide(dots, norms, out=sims, where=norms > 1e-12)
    return sims.astype(np.float32)


class SemanticChunker(Chunker):
    """Sentences grouped into topical chunks: cut where the similarity of neighbouring sentences drops.

    Each gap between sentences gets the cosine of the mean embeddings of the ``window`` (2) sentences on either side
    (windows smooth single odd sentences). A gap below the ``percentile`` (10) of the document's gap similarities
    is a topic break — unless the text around it fits ``max_tokens`` (128) and a side would be shorter than
    ``min_tokens`` (default max_tokens // 4), so short coherent documents stay whole. A stretch over budget is cut
    at its least similar gap (preferring gaps that leave both sides >= min_tokens), recursively; a single
    sentence over budget becomes token windows. ``chunk_many`` encodes the sentences of all documents in one batch.
    """

    name = "semantic"

    def __init__(self, encoder: Encoder, percentile: float = DEFAULT_PERCENTILE,
                 max_tokens: int = DEFAULT_MAX_TOKENS, *, window: int = 2, min_tokens: int | None = None,
                 batch_size: int = 64) -> None:
        if encoder is None or not callable(getattr(encoder, "encode_documents", None)):
            raise ChunkingError("the semantic chunker needs an encoder: SemanticChunker(encoder) or "
                                "get_chunker('semantic', encoder=...)")
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 <= percentile <= 100:
            raise ChunkingError(f"semantic PERCENTILE must be a number in [0, 100], got {percentile!r}")
        self.encoder = encoder
        self.percentile = float(percentile)
        self.max_tokens = _positive_int(max_tokens, "semantic MAX_TOKENS")
        self.window = _positive_int(window, "semantic window")
        self.min_tokens = (max(1, self.max_tokens // 4) if min_tokens is None
                           else _positive_int(min_tokens, "semantic min_tokens", 0))
        self.batch_size = _positive_int(batch_size, "batch_size")

    def _params(self) -> dict[str, Any]:
        return {"percentile": self.percentile, "max_tokens": self.max_tokens}

    def config(self) -> dict[str, Any]:
        spec = self.encoder.spec() if callable(getattr(self.encoder, "spec", None)) else repr(self.encoder)
        return {**super().config(), "window": self.window, "min_tokens": self.min_tokens, "encoder": spec}

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.asarray(self.encoder.encode_documents(texts, batch_size=self.batch_size), dtype=np.float32)

    def _spans(self, text: str) -> list[_Span]:
        sentences = split_sentences(text)
        emb = self._encode([text[s:e] for s, e in sentences]) if len(sentences) > 1 else None
        return self._split(text, sentences, emb)

    def chunk_many(self, docs: Iterable[tuple[str, str] | tuple[str, str, dict[str, Any] | None]]) -> list[Chunk]:
        prepared = []
        texts: list[str] = []
        for doc in docs:
            doc_id, text = doc[0], doc[1]
            meta = doc[2] if len(doc) > 2 else None
            _check_text(doc_id, text)
            sentences = split_sentences(text)
            offset = len(texts)
            if len(sentences) > 1:
                texts.extend(text[s:e] for s, e in sentences)
            prepared.append((doc_id, text, meta, sentences, offset))
        emb = self._encode(texts)
        out: list[Chunk] = []
        for doc_id, text, meta, sentences, offset in prepared:
            doc_emb = emb[offset : offset + len(sentences)] if len(sentences) > 1 else None
            base = dict(meta or {})
            out.extend(Chunk(doc_id, i, text[s.start : s.end], s.start, s.end, {**base, **s.metadata})
                       for i, s in enumerate(self._split(text, sentences, doc_emb)))
        return out

    def _split(self, text: str, sentences: list[Span], emb: np.ndarray | None) -> list[_Span]:
        if not sentences:
            return []
        pieces = _Pieces(text)
        budget = self.max_tokens
        if emb is None or len(sentences) < 2:
            return [_Span(s, e, {}) for s, e in _pack(sentences, budget, pieces)]
        counts = np.array([pieces.count(s, e) for s, e in sentences], dtype=np.int64)
        prefix = np.concatenate([[0], np.cumsum(counts)])
        sims = gap_similarities(emb, self.window)
        threshold = float(np.percentile(sims, self.percentile)) if self.percentile > 0 else -np.inf
        out: list[Span] = []
        stack = [(0, len(sentences))]  # sentence ranges [i, j), processed left to right
        while stack:
            i, j = stack.pop()
            total = int(prefix[j] - prefix[i])
            if j - i == 1:
                s, e = sentences[i]
                out.extend(pieces.windows(s, e, budget) if total > budget else [(s, e)])
                continue
            gaps = sims[i : j - 1]  # gap g sits between sentence i+g and i+g+1
            left = prefix[i + 1 : j] - prefix[i]
            right = prefix[j] - prefix[i + 1 : j]
            balanced = (left >= self.min_tokens) & (right >= self.min_tokens)
            if total <= budget:
                candidates = balanced & (gaps < threshold)
                if not candidates.any():
                    out.append((sentences[i][0], sentences[j - 1][1]))
                    continue
            else:
                candidates = balanced if balanced.any() else np.ones(len(gaps), dtype=bool)
            g = int(np.argmin(np.where(candidates, gaps, np.inf)))
            stack.append((i + g + 1, j))
            stack.append((i, i + g + 1))
        return [_Span(s, e, {}) for s, e in out]

