"""Types shared by the RAG stages: retrieved passages (chunks and the token counter are in retrievekit.chunking)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from retrievekit.chunking.base import TOKEN_PATTERN, Chunk, count_tokens
from retrievekit.core.provenance import page_reference

__all__ = ["TOKEN_PATTERN", "Chunk", "Passage", "SourceLocation", "count_tokens"]


@dataclass(frozen=True)
class SourceLocation:
    """Where a passage sits in a source file: ``path:start_line-end_line`` (1-based, inclusive) for a text or code
    file, ``path p. N`` (``pp. N-M``) for a paged one (PDF pages, PPTX slides). For a compressed passage,
    ``line_spans`` holds the lines of each kept piece and the range covers them all. Filled in for documents that
    carry ``path`` and ``start_line``/``end_line`` (code collections) or page spans (parsed PDF/PPTX files) in their
    metadata; see ``retrievekit.rag.locations``."""

    path: str
    start_line: int | None = None
    end_line: int | None = None
    line_spans: tuple[tuple[int, int], ...] | None = None
    page: int | None = None  # first page (1-based)
    page_end: int | None = None  # last page

    def __str__(self) -> str:
        if self.page is not None:
            return page_reference(self.path, self.page, self.page_end if self.page_end is not None else self.page)
        return f"{self.path}:{self.start_line}-{self.end_line}"

    def to_json(self) -> dict[str, Any]:
        page_end = self.page_end if self.page_end is not None or self.page is None else self.page
        return {"path": self.path, "start_line": self.start_line, "end_line": self.end_line,
                "line_spans": [list(s) for s in self.line_spans] if self.line_spans is not None else None,
                "page": self.page, "page_end": page_end, "ref": str(self)}

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
    location: SourceLocation | None = None  # file lines of the passage, for documents that carry them
