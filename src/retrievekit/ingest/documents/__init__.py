"""Documents people keep in folders — PDF, Word, PowerPoint, EPUB, e-mail — parsed by maintained libraries (the
``documents`` extra) into text with provenance: pages, heading sections, tables and metadata.

``parse_document(data, path)`` detects the format by content (``detect``), runs its parser (one module per format,
each a ``DocumentParser``) and returns ``ParsedDocument``s; ``UnreadableDocument`` carries the reason a file is
skipped (encrypted, corrupt, a zip bomb, over a limit, the extra not installed). ``as_document`` turns one into the
``Document`` the folder reader yields; its metadata keeps the file's ``path`` and ``page_spans`` (``[start, end]``
of each page in the text), which give a passage its page (``core.pages``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from retrievekit.core.document import Document
from retrievekit.core.errors import MissingExtraError
from retrievekit.core.registry import Registry, registry
from retrievekit.ingest.documents.base import (
    DocumentLimits,
    DocumentParser,
    ParsedDocument,
    Section,
    Table,
    UnreadableDocument,
)
from retrievekit.ingest.documents.detect import DOCUMENT_EXTENSIONS, detect_format

__all__ = ["DOCUMENT_EXTENSIONS", "PARSERS", "DocumentLimits", "DocumentParser", "ParsedDocument", "Section", "Table",
           "UnreadableDocument", "as_document", "detect_format", "get_parser", "parse_document"]

logger = logging.getLogger(__name__)

# format -> parser, imported on first use (listing them, as `retrievekit components` does, loads no parsing library)
PARSERS: Registry[DocumentParser] = registry("document parser")
_MODULE = "retrievekit.ingest.documents"
for _format, _target, _requires, _description in (
    ("pdf", "pdf:PDFParser", ["pypdfium2"], "PDF text page by page, outline as sections (pypdfium2)"),
    ("docx", "office:DocxParser", ["docx"], "Word: headings, paragraphs, tables (python-docx)"),
    ("pptx", "office:PptxParser", ["pptx"], "PowerPoint: slides as pages, titles, tables, notes (python-pptx)"),
    ("epub", "epub:EpubParser", ["ebooklib", "lxml"], "EPUB chapters in reading order with headings (ebooklib)"),
    ("eml", "mail:EmlParser", [], "an e-mail message (the standard library)"),
    ("mbox", "mail:MboxParser", [], "a mail archive: one document per message (the standard library)"),
):
    PARSERS.register(_format, f"{_MODULE}.{_target}", extra="documents" if _requires else None,
                     requires=_requires, description=_description)
_PARSER_CACHE: dict[str, DocumentParser] = {}


def get_parser(format: str) -> DocumentParser:
    """The parser of ``format`` (one of ``PARSERS``), made once."""
    parser = _PARSER_CACHE.get(format)
    if parser is None:
        parser = _PARSER_CACHE[format] = PARSERS.factory(format)()
    return parser


def parse_document(data: bytes, path: str | Path, limits: DocumentLimits | None = None,
                   format: str | None = None) -> list[ParsedDocument]:
    """The documents of one file's bytes. ``format``: skip detection. Raises ``UnreadableDocument`` (the reason)
    when the file cannot be indexed — including when the library its format needs is not installed."""
    limits = limits or DocumentLimits()
    path = Path(path)
    if not data:
        raise UnreadableDocument("empty file (0 bytes)")
    if len(data) > limits.max_bytes:
        raise UnreadableDocument(f"{len(data):,} bytes (over max_bytes {limits.max_bytes:,})")
    format = format or detect_format(data, os.path.splitext(path.name)[1].lower())
    if format is None:
        raise UnreadableDocument("not a PDF, Office, EPUB or e-mail file")
    try:
        return get_parser(format).parse(data, path, limits)
    except (UnreadableDocument, MemoryError):
        raise
    except MissingExtraError as exc:
        raise UnreadableDocument(f"{format.upper()} files need the documents extra: "
                                 "pip install 'retrievekit[documents]'") from exc
    except RecursionError:  # a deeply nested structure in a hostile file
        raise UnreadableDocument(f"{format.upper()} nested too deeply to parse") from None
    except Exception as exc:
        # The parsing libraries read untrusted bytes lazily and fail in their own ways (zipfile's
        # NotImplementedError for an odd member, KeyError for a missing part, the email package's IndexError on a
        # malformed address, ...): one bad file is a reason to skip it, never the end of an ingest.
        logger.debug("parsing %s failed", path, exc_info=True)
        raise UnreadableDocument(f"corrupt {format.upper()} ({type(exc).__name__}: {exc})") from None


def as_document(parsed: ParsedDocument, rel: str, extension: str, size: int) -> Document:
    """The stored document of a parsed file: id ``rel`` (``rel#KEY`` for one message of an archive), the parsed
    title or else the file name, the extracted text, and metadata: ``path``, ``extension``, ``bytes``, ``format``,
    the parser's metadata (author, dates, subject, from, to, ...), ``pages`` (count) and ``page_spans``,
    ``pages_without_text``, ``pages_ocr``, ``sections`` (``{heading, start, end}``) and ``tables`` (``{start, end,
    header, rows}``)."""
    metadata: dict[str, Any] = {"path": rel, "extension": extension, "bytes": size, "format": parsed.format,
                                **parsed.metadata}
    if parsed.pages:
        metadata["pages"] = len(parsed.pages)
        metadata["page_spans"] = [[s, e] for s, e in parsed.pages]
    if parsed.pages_without_text:
        metadata["pages_without_text"] = list(parsed.pages_without_text)
    if parsed.pages_ocr:
        metadata["pages_ocr"] = list(parsed.pages_ocr)
    if parsed.sections:
        metadata["sections"] = [{"heading": s.heading, "start": s.start, "end": s.end} for s in parsed.sections]
    if parsed.tables:
        metadata["tables"] = [{"start": t.start, "end": t.end, "header": list(t.header), "rows": len(t.rows)}
                              for t in parsed.tables]
    doc_id = f"{rel}#{parsed.key}" if parsed.key else rel
    title = parsed.title or Path(rel).stem
    metadata = {key: valid_text(value) if isinstance(value, str) else value for key, value in metadata.items()}
    # the text keeps its length (the spans above index it)
    return Document(id=doc_id, text=valid_text(parsed.text, keep_length=True), title=valid_text(title),
                    metadata=metadata)


def valid_text(text: str, *, keep_length: bool = False) -> str:
    """``text`` without lone surrogates, which cannot be stored. The email package keeps a header's undecodable
    8-bit bytes as surrogate escapes: they are decoded as the UTF-8 they usually are (invalid bytes as U+FFFD).
    ``keep_length``: each surrogate becomes one U+FFFD instead, so that offsets into the text stay valid."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    if not keep_length:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # a surrogate that escapes no byte
            pass
    return "".join(_valid_char(c) for c in text)


def _valid_char(char: str) -> str:
    return "\ufffd" if "\ud800" <= char <= "\udfff" else char
