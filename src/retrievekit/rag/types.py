"""Types shared by the RAG stages: chunks of documents, retrieved passages, and the one token counter."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# A word (letters, digits, underscore) or a single other non-space character. Sub-word LLM tokenizers give roughly
# 1-1.5 tokens per such piece on English prose, so budgets in these units are a cheap, deterministic approximation.
TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Number of ``\\w+`` words plus other non-space characters in ``text``: the token count used for every budget
    and for the "context tokens" metric (an approximation of LLM tokens, not any model's tokenizer)."""
    return len(TOKEN_PATTERN.findall(text))


@dataclass(frozen=True)
class Chunk:
    """A span of one document. ``text == document_text[start:end]`` (HTML chunks are the exception: there
    ``start``/``end`` are offsets into the HTML source and ``text`` is the extracted text; see ``HTMLChunker``)."""

    doc_id: str
    index: int  # chunk number within the document (0-based)
    text: str
    start: int  # character offsets into the document text (Python str indices)
    end: int
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. {"heading": "Intro > Setup"}

    @property
    def id(self) -> str:
        return f"{self.doc_id}#{self.index}"


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
