"""What every document parser produces (``ParsedDocument``), the limits it works under, and the one way it says a file
cannot be read (``UnreadableDocument``, whose message is the reason shown in the ingest summary)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrievekit.core.errors import RetrievekitError

BLOCK_SEPARATOR = "\n\n"  # between paragraphs, table rows' blocks and pages: the paragraph chunker splits here


class UnreadableDocument(RetrievekitError):
    """A file that cannot be indexed; the message is the reason (encrypted, corrupt, over a limit, ...)."""


@dataclass(frozen=True)
class DocumentLimits:
    """Bounds that keep one hostile or huge file from taking the ingest's memory or time. ``max_pages``: PDFs and
    decks with more pages are skipped (pages are parsed one at a time, so time is bounded by this); ``max_chars``:
    extracted text beyond this skips the file; ``max_bytes``: files larger are not read at all; the zip limits are
    checked on an archive's directory (DOCX, PPTX, EPUB) before any member is decompressed."""

    max_bytes: int = 256 << 20
    max_pages: int = 2_000
    max_chars: int = 20_000_000
    max_unzipped_bytes: int = 512 << 20  # all members together, as the zip directory declares them
    max_zip_ratio: float = 200.0  # uncompressed / compressed size of one member (ordinary XML compresses ~10x)
    max_zip_members: int = 20_000
    max_messages: int = 100_000  # per mbox
    # OCR of PDF pages without a text layer, when the `tesseract` program is installed: at most this many pages
    # per document (0: no OCR), each given at most ocr_seconds; ocr_languages as tesseract's -l takes them
    ocr_pages: int = 200
    ocr_seconds: float = 120.0
    ocr_languages: str = "eng"


@dataclass(frozen=True)
class Section:
    """A heading path (outermost first) and the character span of its section in the extracted text: from the
    heading to the next heading at the same or a higher level."""

    path: tuple[str, ...]
    start: int
    end: int

    @property
    def heading(self) -> str:
        return " > ".join(self.path)


@dataclass(frozen=True)
class Table:
    """A table as its header and rows of cell texts; ``start``/``end``: its span in the extracted text, where it is
    written one row per line, cells separated by `` | ``."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    start: int
    end: int


@dataclass
class ParsedDocument:
    """The text of one document and where its parts are. ``pages[i]`` is the span of page (or slide) ``i + 1`` in
    ``text``; offsets are Python string indices, so ``text[start:end]`` is the page, section or table."""

    format: str
    text: str
    title: str = ""
    pages: list[tuple[int, int]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # author, created, subject, from, to, date, ...
    pages_without_text: list[int] = field(default_factory=list)  # 1-based: scanned pages (not OCR'd), blank pages
    pages_ocr: list[int] = field(default_factory=list)  # 1-based: pages whose text is tesseract's OCR
    key: str = ""  # tells apart documents of one file (the message number of an mbox); "" for the only one
    warnings: list[str] = field(default_factory=list)


class DocumentParser(ABC):
    """Turns the bytes of one file into documents. One subclass per format, registered in ``documents.PARSERS``."""

    format: str = ""

    @abstractmethod
    def parse(self, data: bytes, path: Path, limits: DocumentLimits) -> list[ParsedDocument]:
        """The documents of one file (one, except for mail archives); raises ``UnreadableDocument`` with the
        reason when the file cannot be indexed."""


class TextBuilder:
    """Builds extracted text block by block and remembers where each block, heading and page landed."""

    def __init__(self, limits: DocumentLimits) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._limit = limits.max_chars
        self.pages: list[tuple[int, int]] = []
        self.tables: list[Table] = []
        self._headings: list[tuple[int, int, str]] = []  # (start, level, text)

    def __len__(self) -> int:
        return self._length

    def add(self, block: str) -> tuple[int, int]:
        """Append a block (after a blank line unless it is the first); returns its span. Blank blocks add nothing."""
        block = block.strip()
        if not block:
            return self._length, self._length
        if self._length:
            self._parts.append(BLOCK_SEPARATOR)
            self._length += len(BLOCK_SEPARATOR)
        start = self._length
        self._parts.append(block)
        self._length += len(block)
        if self._length > self._limit:
            raise UnreadableDocument(f"over {self._limit:,} characters of text (max_chars)")
        return start, self._length

    def heading(self, text: str, level: int) -> tuple[int, int]:
        span = self.add(text)
        if span[1] > span[0]:
            self._headings.append((span[0], level, " ".join(text.split())))
        return span

    def heading_at(self, start: int, level: int, text: str) -> None:
        """A heading whose text is already in the extracted text at ``start`` (a PDF outline entry)."""
        self._headings.append((start, level, " ".join(text.split())))

    def table(self, rows: list[list[str]]) -> None:
        """A table: the first row is its header. Cells are flattened to one line each."""
        cells = [tuple(" ".join(c.split()) for c in row) for row in rows]
        cells = [row for row in cells if any(row)]
        if not cells:
            return
        start, end = self.add("\n".join(" | ".join(row) for row in cells))
        self.tables.append(Table(cells[0], tuple(cells[1:]), start, end))

    def page(self, start: int) -> None:
        """Close a page that began at ``start`` (the length before its first block)."""
        if start < self._length:  # the page's first block follows a separator unless it opens the text
            self.pages.append((start + len(BLOCK_SEPARATOR) if start else 0, self._length))
        else:  # a page without text: an empty span where it would be
            self.pages.append((self._length, self._length))

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def sections(self) -> list[Section]:
        """Heading spans: each runs to the next heading at the same or a higher (smaller) level, else to the end.
        One pass with a stack of the open headings (a book's outline has thousands of entries)."""
        heads = sorted(self._headings)
        ends = [self._length] * len(heads)
        paths: list[tuple[str, ...]] = []
        stack: list[tuple[int, int]] = []  # (level, index) of the open headings, outermost first
        for i, (start, level, text) in enumerate(heads):
            while stack and stack[-1][0] >= level:
                ends[stack.pop()[1]] = start
            paths.append((paths[stack[-1][1]] if stack else ()) + (text,))
            stack.append((level, i))
        return [Section(path, start, end) for (start, _, _), path, end in zip(heads, paths, ends)]

    def result(self, format: str, **fields: Any) -> ParsedDocument:
        return ParsedDocument(format=format, text=self.text, pages=self.pages, sections=self.sections(),
                              tables=self.tables, **fields)
