"""Types shared by the RAG stages: retrieved passages (chunks and the token counter are in retrievekit.chunking)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from retrievekit.chunking.base import TOKEN_PATTERN, Chunk, count_tokens

__all__ = ["TOKEN_PATTERN", "Chunk", "Passage", "count_tokens"]

@dataclass
class Passage:
    """A retrieved unit handed to selection, compression and prompting."""

    id: str  # chunk id or doc id
    doc_id: str
    text: str
    score: float
    start: int = 0  # offsets of `text` in the document text
    end: int = -1  # -1: len(text)
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    spans: list[tuple[int, int]] | None = None  # after compression: document offsets of the kept sentences
    flags: list[str] = field(default_factory=list)  # safety flags, e.g. ["injection:ignore_previous"]
