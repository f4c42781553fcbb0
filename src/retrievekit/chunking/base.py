"""What every chunker produces (``Chunk``: a span of one document) and the one token counter used for budgets."""

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
