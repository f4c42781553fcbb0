"""File locations of retrieved passages: ``path:start-end`` line spans, or ``path p. N`` pages, for documents that
carry them.

Pages: a document parsed from a PDF or PPTX file (``ingest.documents``) carries ``path`` and ``page_spans``; a
passage of it gets the pages its characters (or, after compression, its kept sentences) lie on, counted in the
document's text (``core.provenance``). A passage of a passage collection carries its own ``page``/``page_end``.

Lines: a document carries one when its metadata has ``path`` (a string), ``start_line`` and ``end_line`` (1-based,
inclusive): the documents of ``Collection.ingest_code`` do, and so may any other. Its text, after the first
``header_chars`` characters (a split symbol's repeated signature; 0 when absent), is taken to be exactly those
lines of the file. A passage that is the whole document gets the document's lines; the sentences of it kept by
compression get the lines of their own characters, counted in the document text, never beyond the document's
range. A passage of a passage collection gets its document's whole range (the document's full text, in which its
lines would be counted, is not stored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from retrievekit.core.provenance import passage_pages
from retrievekit.rag.types import Passage, SourceLocation

__all__ = ["document_lines", "document_pages", "locate", "locate_passages"]


def _count(value: Any, least: int) -> int | None:
    """``value`` as an int >= ``least`` (a bool is no count), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= least else None


def document_lines(metadata: Mapping[str, Any]) -> tuple[str, int, int, int] | None:
    """(path, start_line, end_line, header_chars) of a document's metadata, or None when it carries no valid
    location (a missing field, a non-integer or a reversed range is no location, not an error: other
    collections use these names for other things)."""
    path = metadata.get("path")
    first, last = _count(metadata.get("start_line"), 1), _count(metadata.get("end_line"), 1)
    if not isinstance(path, str) or not path or first is None or last is None or last < first:
        return None
    return path, first, last, _count(metadata.get("header_chars", 0), 0) or 0


def _span_lines(text: str, header: int, first: int, last: int, start: int, end: int) -> tuple[int, int]:
    """The file lines of document characters ``text[start:end]``: surrounding whitespace does not count (a span
    that ends with its newline ends on that line), characters of the header count as the first line."""
    start = min(max(start, header), len(text))
    end = min(max(end, start), len(text))
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        start += len(piece) - len(piece.lstrip())
        end = start + len(stripped)
    else:
        end = start
    begin = first + text.count("\n", header, start)
    finish = begin + text.count("\n", start, end)
    return min(begin, last), min(finish, last)


def document_pages(passage: Passage) -> SourceLocation | None:
    """``path p. N`` of a passage of a paged document (its ``start``/``end``, or the range of its compression
    ``spans``); None when its metadata has no path or pages."""
    path = passage.metadata.get("path")
    if not isinstance(path, str) or not path:
        return None
    end = passage.start + len(passage.text) if passage.end < 0 else passage.end
    spans = passage.spans if passage.spans else [(passage.start, end)]
    found = [pages for s, e in spans if (pages := passage_pages(passage.metadata, s, e)) is not None]
    if not found:
        return None
    return SourceLocation(path, page=min(a for a, _ in found), page_end=max(b for _, b in found))


def locate(passage: Passage, document_text: str) -> SourceLocation | None:
    """The location of ``passage`` (its ``start``/``end``, or its compression ``spans``), counted in its
    document's full text; None when the document carries no location."""
    fields = document_lines(passage.metadata)
    if fields is None:
        return document_pages(passage)
    path, first, last, header = fields
    end = passage.start + len(passage.text) if passage.end < 0 else passage.end
    spans = passage.spans if passage.spans is not None else [(passage.start, end)]
    lines = [_span_lines(document_text, header, first, last, s, e) for s, e in spans]
    if not lines:
        return SourceLocation(path, first, last)
    return SourceLocation(path, min(a for a, _ in lines), max(b for _, b in lines),
                          tuple(lines) if passage.spans is not None else None)


def locate_passages(passages: Sequence[Passage], retrieved: Sequence[Passage]) -> list[Passage]:
    """``passages`` with their ``location`` set where their documents carry one. ``retrieved``: the passages as
    retrieved (before compression): in a collection without passages their texts are the whole documents, in
    which a passage's own lines are counted. A passage of a passage collection (its document's full text is not
    stored) gets its document's whole range, which contains it."""
    whole = {p.doc_id: p.text for p in retrieved if p.start == 0 and p.id == p.doc_id}
    out = []
    for p in passages:
        text = whole.get(p.doc_id)
        if text is not None:
            location = locate(p, text)
        else:
            fields = document_lines(p.metadata)
            location = SourceLocation(*fields[:3]) if fields is not None else document_pages(p)
        out.append(replace(p, location=location) if location != p.location else p)
    return out
