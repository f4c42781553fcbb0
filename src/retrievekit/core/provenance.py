"""Where a span of a parsed document's text lies: its pages (PDF pages, PPTX slides) and its section.

A parsed document's metadata (``ingest.documents.as_document``) holds ``page_spans``: ``[start, end]`` of page
``i + 1`` in its text, in order and not overlapping, and ``sections``: ``{heading, start, end}``. A passage of it
stores ``page``, ``page_end`` and ``heading`` instead (``Provenance``, used by the storage writer), so whole
documents and passages alike are cited as "file.pdf p. 12".
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


def _page_of(spans: Sequence[tuple[int, int]], starts: Sequence[int], offset: int) -> int:
    """The 1-based page of character ``offset``; one between two pages (their separator) is on the next page
    that has text, one past the last page on the last page."""
    index = bisect.bisect_right(starts, offset) - 1  # the last page starting at or before offset
    if index >= 0 and offset >= spans[index][1]:  # in the gap after it: the next non-empty page
        later = next((i for i in range(index + 1, len(spans)) if spans[i][1] > spans[i][0]), None)
        index = later if later is not None else index
    return min(max(index, 0), len(spans) - 1) + 1


def page_range(page_spans: Sequence[tuple[int, int]], start: int, end: int,
               starts: Sequence[int] | None = None) -> tuple[int, int]:
    """(first, last) 1-based pages of text ``[start, end)``: the pages of its first and last characters (see
    ``_page_of``). ``starts``: the spans' starts, when the caller has them already."""
    starts = [s for s, _ in page_spans] if starts is None else starts
    first = _page_of(page_spans, starts, start)
    return first, max(first, _page_of(page_spans, starts, max(start, end - 1)))


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


class Provenance:
    """The pages and sections of one document, read from its metadata once, for the metadata of its passages
    (a long PDF has thousands of each: looking them up afresh for each passage would be quadratic)."""

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        self.metadata = metadata
        self.active = any(isinstance(metadata.get(k), list) for k in DOCUMENT_ONLY)
        self.pages = valid_page_spans(metadata.get(PAGE_SPANS)) if self.active else None
        self._page_starts = [s for s, _ in self.pages] if self.pages is not None else []
        sections = []
        for section in metadata.get(SECTIONS) or [] if self.active else []:
            if not isinstance(section, dict):
                continue
            s, e, heading = section.get("start"), section.get("end"), section.get("heading")
            if type(s) is int and type(e) is int and isinstance(heading, str) and s < e:
                sections.append((s, e, heading))
        sections.sort(key=lambda item: item[0])
        self._sections = sections
        self._section_starts = [s for s, _, _ in sections]

    def page_range(self, start: int, end: int) -> tuple[int, int] | None:
        if self.pages is None:
            return None
        return page_range(self.pages, start, end, self._page_starts)

    def heading(self, start: int) -> str | None:
        """The heading path of the innermost section holding character ``start`` (the latest-starting one that
        has not ended); None if none does."""
        i = bisect.bisect_right(self._section_starts, start) - 1
        while i >= 0:
            _, e, heading = self._sections[i]
            if start < e:
                return heading
            i -= 1
        return None

    def regions(self, length: int) -> list[tuple[int, int]]:
        """The parts of the text chunked separately: each non-empty page of a paged document (so that every
        passage lies on one page and is cited by it), else the whole text."""
        if self.pages is None or self.pages[-1][1] > length:
            return [(0, length)]
        return [(s, e) for s, e in self.pages if e > s] or [(0, length)]

    def passage_metadata(self, start: int, end: int) -> dict[str, Any]:
        """The metadata of passage ``[start, end)``: the document's, without its per-document span lists
        (``page_spans``, ``sections``, ``tables`` when they are lists: a long PDF's would be copied into each of its
        passages), with the passage's ``page``/``page_end`` and section ``heading`` when the document has them."""
        if not self.active:
            return dict(self.metadata)
        out = {k: v for k, v in self.metadata.items() if k not in DOCUMENT_ONLY or not isinstance(v, list)}
        pages = self.page_range(start, end)
        if pages is not None:
            out[PAGE], out[PAGE_END] = pages
        heading = self.heading(start)
        if heading:
            out["heading"] = heading
        return out
