"""What every chunker produces and shares: ``Chunk`` (a span of one document), the token counter used for budgets,
``ChunkingError``, the ``Chunker`` base class and the packing of spans into chunks under a token budget."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from retrievekit.core.errors import RetrievekitError

DEFAULT_MAX_TOKENS = 128
DEFAULT_PERCENTILE = 10.0
LONG_WORD_CHARS = 50

Span = tuple[int, int]
Splitter = Callable[[int, int], list[Span]]

# A word (letters, digits, underscore) or a single other non-space character. Sub-word LLM tokenizers give roughly
# 1-1.5 tokens per such piece on English prose, so budgets in these units are a cheap, deterministic approximation.
TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Number of ``\\w+`` words plus other non-space characters in ``text``: the token count used for every budget
    and for the "context tokens" metric (an approximation of LLM tokens, not any model's tokenizer)."""
    return len(TOKEN_PATTERN.findall(text))


class ChunkingError(RetrievekitError, ValueError):
    """A bad chunker spec or setting, or a document that cannot be chunked."""


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


# --------------------------------------------------------------------------------------------------------------
# token pieces: count_tokens units, with over-long words cut, as arrays for O(log n) counting of any span
# --------------------------------------------------------------------------------------------------------------
_PIECE = re.compile(rf"\w{{1,{LONG_WORD_CHARS}}}|[^\w\s]")


class _Pieces:
    def __init__(self, text: str) -> None:
        flat = np.fromiter((x for m in _PIECE.finditer(text) for x in m.span()), dtype=np.int64)
        self.starts = flat[0::2]
        self.ends = flat[1::2]

    def _range(self, start: int, end: int) -> Span:
        return int(np.searchsorted(self.starts, start)), int(np.searchsorted(self.starts, end))

    def count(self, start: int, end: int) -> int:
        lo, hi = self._range(start, end)
        return hi - lo

    def windows(self, start: int, end: int, size: int, overlap: int = 0) -> list[Span]:
        """Spans of consecutive windows of ``size`` pieces inside [start, end), each sharing ``overlap`` pieces
        with the previous one; the last window ends at the last piece."""
        lo, hi = self._range(start, end)
        n = hi - lo
        if n <= 0:
            return []
        step = size - overlap
        count = 1 + max(0, -(-(n - size) // step))
        first = lo + step * np.arange(count)
        last = np.minimum(first + size, hi) - 1
        return list(zip(self.starts[first].tolist(), np.minimum(self.ends[last], end).tolist()))


def _trimmed(text: str, cuts: Iterable[int], lo: int = 0, hi: int | None = None) -> list[Span]:
    """Spans between consecutive cuts (plus lo and hi), whitespace trimmed, empty ones dropped."""
    hi = len(text) if hi is None else hi
    spans = []
    prev = lo
    for cut in (*cuts, hi):
        if cut <= prev:
            continue
        piece = text[prev:cut]
        left = len(piece) - len(piece.lstrip())
        right = len(piece.rstrip())
        if right > left:
            spans.append((prev + left, prev + right))
        prev = cut
    return spans


def _pack(units: Iterable[Span], budget: int, pieces: _Pieces, splitters: Sequence[Splitter] = ()) -> list[Span]:
    """Merge consecutive units greedily while they fit ``budget``; a unit over budget is split by the first
    splitter and its parts packed among themselves (with the remaining splitters), finally by token windows."""
    out: list[Span] = []
    cur_start, cur_end, cur_n = -1, -1, 0
    for start, end in units:
        n = pieces.count(start, end)
        if n > budget:
            if cur_start >= 0:
                out.append((cur_start, cur_end))
                cur_start = -1
            if splitters:
                out.extend(_pack(splitters[0](start, end), budget, pieces, splitters[1:]))
            else:
                out.extend(pieces.windows(start, end, budget))
        elif cur_start >= 0 and cur_n + n <= budget:
            cur_end, cur_n = end, cur_n + n
        else:
            if cur_start >= 0:
                out.append((cur_start, cur_end))
            cur_start, cur_end, cur_n = start, end, n
    if cur_start >= 0:
        out.append((cur_start, cur_end))
    return out


# --------------------------------------------------------------------------------------------------------------
# the chunker interface
# --------------------------------------------------------------------------------------------------------------
class _Span(NamedTuple):
    start: int
    end: int
    metadata: dict[str, Any]


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ChunkingError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_text(doc_id: str, text: Any) -> None:
    if not isinstance(text, str):
        raise ChunkingError(f"document {doc_id!r}: text must be a str, got {type(text).__name__}")


class Chunker(ABC):
    """Splits documents into ``Chunk`` spans. Subclasses implement ``_spans`` (text -> ordered trimmed spans)."""

    name: str = ""

    def chunk(self, doc_id: str, text: str, metadata: dict[str, Any] | None = None) -> list[Chunk]:
        """Chunks of one document; ``metadata`` is copied into every chunk (chunker keys such as "heading" win)."""
        _check_text(doc_id, text)
        if not text or text.isspace():
            return []
        base = dict(metadata or {})
        return [Chunk(doc_id, i, text[s.start : s.end], s.start, s.end, {**base, **s.metadata})
                for i, s in enumerate(self._spans(text))]

    def chunk_regions(self, doc_id: str, text: str, regions: Sequence[tuple[int, int]]) -> list[Chunk]:
        """Chunks of ``text`` made region by region (``Provenance.regions``: a paged document page by page, so no
        chunk crosses a page), numbered through, with offsets into the whole ``text``."""
        chunks: list[Chunk] = []
        for lo, hi in regions:
            piece = text if (lo, hi) == (0, len(text)) else text[lo:hi]
            first = len(chunks)
            chunks += [replace(c, index=first + i, start=c.start + lo, end=c.end + lo)
                       for i, c in enumerate(self.chunk(doc_id, piece))]
        return chunks

    def chunk_many(self, docs: Iterable[tuple[str, str] | tuple[str, str, dict[str, Any] | None]]) -> list[Chunk]:
        """Chunks of many documents, in order; each doc is ``(doc_id, text)`` or ``(doc_id, text, metadata)``."""
        out: list[Chunk] = []
        for doc in docs:
            out.extend(self.chunk(*doc))
        return out

    @abstractmethod
    def _spans(self, text: str) -> list[_Span]: ...

    def _params(self) -> dict[str, Any]:
        return {}

    @property
    def spec(self) -> str:
        """The ``get_chunker`` spec that rebuilds this chunker (an encoder must be passed again for semantic)."""
        return ":".join([self.name, *(str(v) for v in self._params().values())])

    def config(self) -> dict[str, Any]:
        """JSON-able settings: strategy, its parameters and the spec."""
        return {"strategy": self.name, **self._params(), "spec": self.spec}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"
