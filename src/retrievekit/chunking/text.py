"""Plain-text chunkers: fixed token windows, sentence groups and paragraph groups."""

from __future__ import annotations

from typing import Any

from retrievekit.chunking.base import DEFAULT_MAX_TOKENS, Chunker, ChunkingError, _pack, _Pieces, _positive_int, _Span
from retrievekit.chunking.sentences import _sub_spans, split_paragraphs, split_sentences


class TokenChunker(Chunker):
    """Windows of ``size`` tokens (``count_tokens`` units), consecutive windows sharing ``overlap`` tokens; each
    chunk starts at a token's first character and ends at a token's last one, keeping the whitespace between."""

    name = "tokens"

    def __init__(self, size: int = DEFAULT_MAX_TOKENS, overlap: int = 0) -> None:
        self.size = _positive_int(size, "tokens SIZE")
        self.overlap = _positive_int(overlap, "tokens OVERLAP", 0)
        if self.overlap >= self.size:
            raise ChunkingError(f"tokens OVERLAP must be smaller than SIZE, got OVERLAP={overlap} SIZE={size}")

    def _params(self) -> dict[str, Any]:
        return {"size": self.size, "overlap": self.overlap}

    def _spans(self, text: str) -> list[_Span]:
        return [_Span(s, e, {}) for s, e in _Pieces(text).windows(0, len(text), self.size, self.overlap)]


class SentenceChunker(Chunker):
    """Whole sentences (``split_sentences``) grouped greedily up to ``max_tokens``; a longer sentence is cut
    into token windows."""

    name = "sentences"

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = _positive_int(max_tokens, "sentences MAX_TOKENS")

    def _params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}

    def _spans(self, text: str) -> list[_Span]:
        return [_Span(s, e, {}) for s, e in _pack(split_sentences(text), self.max_tokens, _Pieces(text))]


class ParagraphChunker(Chunker):
    """Blank-line separated paragraphs, consecutive small ones merged up to ``max_tokens``, longer ones split
    into sentence groups (and over-long sentences into token windows)."""

    name = "paragraphs"

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = _positive_int(max_tokens, "paragraphs MAX_TOKENS")

    def _params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}

    def _spans(self, text: str) -> list[_Span]:
        spans = _pack(split_paragraphs(text), self.max_tokens, _Pieces(text), [_sub_spans(split_sentences, text)])
        return [_Span(s, e, {}) for s, e in spans]

