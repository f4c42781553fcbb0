"""Where a span of a parsed document's text lies: its pages (PDF pages, PPTX slides) and its section.

A parsed document's metadata (``ingest.documents.as_document``) holds ``page_spans``: ``[start, end]`` of page
``i + 1`` in its text, in order and not overlapping, and ``sections``: ``{heading, start, end}``. A passage of it
stores ``page``, ``page_end`` and ``heading`` instead (``passage_metadata``, called by the storage writer), so
whole documents and passages alike are cited as "file.pdf p. 12".
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

PAGE_SPANS, PAGE, PAGE_END, SECTIONS, TABLES = "page_spans", "page", "page_end", "sections", "tables"
# per-document lists of spans: a passage gets its own page and heading instead of a copy of them
DOCUMENT_ONLY = (PAGE_SPANS, SECTIONS, TABLES)


def valid_page_spans(value: Any) -> list[tuple[int, int]] | None:
    """``value`` as a list of ordered ``(start, end)`` spans, or None when it is no such list (other collections may
    use the name for something else: no location, not an error)."""
    if not isinstance(value, list) or not value:
        return None
    spans = []
    previous = 0
    for item in value:
        if (not isinstance(item, (list, tuple)) or len(item) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)):
            return None
        start, end = item
        if start < previous or end < start:
            return None
        spans.append((start, end))
        previous = end
    return spans


def page_range(page_spans: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """(first, last) 1-based pages of text ``[start, end)``: the pages whose spans hold its first and last
    characters. A character between two pages (their separator) belongs to the next page; a span past the last
    page is on the last page."""
    starts = [s for s, _ in page_spans]
    last_char = max(start, end - 1)

    def page_of(offset: int) -> int:
        index = bisect.bisect_right(starts, offset) - 1  # the last page starting at or before offset
        if index >= 0 and offset >= page_spans[index][1]:  # in the gap after it: the next non-empty page
            later = next((i for i in range(index + 1, len(page_spans)) if page_spans[i][1] > page_spans[i][0]),
                         None)
            index = later if later is not None else index
        return min(max(index, 0), len(page_spans) - 1) + 1

    first = page_of(start)
    return first, max(first, page_of(last_char))


def passage_pages(metadata: Mapping[str, Any], start: int, end: int) -> tuple[int, int] | None:
    """(first, last) page of a passage ``[start, end)`` of a document with this metadata: from ``page_spans`` (a
    whole document), else its own ``page``/``page_end`` (a stored passage); None for documents without pages."""
    spans = valid_page_spans(metadata.get(PAGE_SPANS))
    if spans is not None:
        return page_range(spans, start, end)
    first, last = metadata.get(PAGE), metadata.get(PAGE_END, metadata.get(PAGE))
    if type(first) is int and type(last) is int and 1 <= first <= last:
        return first, last
    return None


def page_reference(path: str, first: int, last: int) -> str:
    """How a page span is cited: ``paper.pdf p. 12`` or ``paper.pdf pp. 12-13``."""
    return f"{path} p. {first}" if last == first else f"{path} pp. {first}-{last}"


def document_page_reference(metadata: Mapping[str, Any], length: int) -> str | None:
    """The page reference of a stored document or passage (``length``: its text's length), or None when it has no
    path or pages."""
    path = metadata.get("path")
    pages = passage_pages(metadata, 0, length) if isinstance(path, str) and path else None
    return page_reference(str(path), *pages) if pages is not None else None


def section_heading(metadata: Mapping[str, Any], start: int) -> str | None:
    """The heading path of the innermost section (``sections``) holding character ``start``; None if none does."""
    sections = metadata.get(SECTIONS)
    if not isinstance(sections, list):
        return None
    best: tuple[int, str] | None = None
    for section in sections:
        if not isinstance(section, dict):
            continue
        s, e, heading = section.get("start"), section.get("end"), section.get("heading")
        if type(s) is int and type(e) is int and isinstance(heading, str) and s <= start < e \
                and (best is None or s >= best[0]):
            best = (s, heading)
    return best[1] if best is not None else None


def passage_metadata(metadata: Mapping[str, Any], start: int, end: int) -> dict[str, Any]:
    """The metadata of passage ``[start, end)`` of a document: the document's, without its per-document span lists
    (``page_spans``, ``sections``, ``tables`` when they are lists: a long PDF's would be copied into each of its
    passages), with the passage's ``page``/``page_end`` and section ``heading`` when the document has them."""
    if not any(isinstance(metadata.get(k), list) for k in DOCUMENT_ONLY):
        return dict(metadata)
    out = {k: v for k, v in metadata.items() if k not in DOCUMENT_ONLY or not isinstance(v, list)}
    pages = passage_pages(metadata, start, end)
    if pages is not None:
        out[PAGE], out[PAGE_END] = pages
    heading = section_heading(metadata, start)
    if heading:
        out["heading"] = heading
    return out


def chunk_regions(metadata: Mapping[str, Any], length: int) -> list[tuple[int, int]]:
    """The parts of a document's text chunked separately: each non-empty page of a paged document (so that every
    passage lies on one page and is cited by it), else the whole text."""
    spans = valid_page_spans(metadata.get(PAGE_SPANS))
    if spans is None or spans[-1][1] > length:
        return [(0, length)]
    return [(s, e) for s, e in spans if e > s] or [(0, length)]
