"""Word (.docx, python-docx) and PowerPoint (.pptx, python-pptx) documents: text in reading order with headings,
tables as rows with their header, and the package's core properties (author, dates, subject) as metadata. The zip
directory is checked first (``archives.checked_zip``)."""

from __future__ import annotations

import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from retrievekit.core.errors import require
from retrievekit.ingest.documents.archives import checked_zip
from retrievekit.ingest.documents.base import (
    DocumentLimits,
    DocumentParser,
    ParsedDocument,
    TextBuilder,
    UnreadableDocument,
)

_HEADING_STYLE = re.compile(r"heading\s*(\d)", re.IGNORECASE)
_PROPERTIES = ("author", "created", "modified", "subject", "keywords", "category", "language", "last_modified_by")


def core_properties(props: Any) -> tuple[str, dict[str, Any]]:
    """(title, metadata) of an Office package's core properties; dates as ISO strings, empty values left out."""
    out: dict[str, Any] = {}
    for name in _PROPERTIES:
        value = getattr(props, name, None)
        if isinstance(value, datetime):
            value = value.isoformat()
        if isinstance(value, str) and value.strip():
            out[name] = " ".join(value.split())
    return " ".join((getattr(props, "title", "") or "").split()), out


def _open(loader: Any, data: bytes, what: str) -> Any:
    try:
        return loader(io.BytesIO(data))
    except Exception as exc:  # python-docx/pptx raise KeyError, ValueError, lxml errors ... for a broken package
        raise UnreadableDocument(f"corrupt {what} ({type(exc).__name__}: {exc})") from None


class DocxParser(DocumentParser):
    format = "docx"

    def parse(self, data: bytes, path: Path, limits: DocumentLimits) -> list[ParsedDocument]:
        docx = require("docx", "documents")
        checked_zip(data, limits, "DOCX")
        document = _open(docx.Document, data, "DOCX")
        builder = TextBuilder(limits)
        table_type = docx.table.Table
        # style id -> name, once: ``Paragraph.style`` looks the default style up again for every unstyled paragraph
        # (80% of the parse time of ordinary documents)
        style_names = {style.style_id: style.name or "" for style in document.styles}
        first_heading = ""
        for block in document.iter_inner_content():
            if isinstance(block, table_type):
                builder.table([[cell.text for cell in row.cells] for row in block.rows])
                continue
            text = block.text
            style = style_names.get(block._p.style, "") if block._p.style is not None else ""
            level = 0
            if style.lower() == "title":
                level = 1
            else:
                match = _HEADING_STYLE.match(style)
                if match:
                    level = int(match.group(1))
            if level and text.strip():
                builder.heading(text, level)
                first_heading = first_heading or " ".join(text.split())
            else:
                builder.add(text)
        title, metadata = core_properties(document.core_properties)
        return [builder.result("docx", title=title or first_heading, metadata=metadata)]


class PptxParser(DocumentParser):
    """Each slide is a page: its title as a heading, then its text frames and tables top to bottom, then its notes."""

    format = "pptx"

    def parse(self, data: bytes, path: Path, limits: DocumentLimits) -> list[ParsedDocument]:
        pptx = require("pptx", "documents")
        checked_zip(data, limits, "PPTX")
        deck = _open(pptx.Presentation, data, "PPTX")
        slides = list(deck.slides)
        if len(slides) > limits.max_pages:
            raise UnreadableDocument(f"{len(slides):,} slides (over max_pages {limits.max_pages:,})")
        builder = TextBuilder(limits)
        empty = []
        for number, slide in enumerate(slides, 1):
            start = len(builder)
            title_shape = slide.shapes.title
            if title_shape is not None and title_shape.has_text_frame and title_shape.text_frame.text.strip():
                builder.heading(title_shape.text_frame.text, 1)
            title_id = title_shape.shape_id if title_shape is not None else None  # proxies differ, ids do not
            shapes = sorted((s for s in slide.shapes if s.shape_id != title_id),
                            key=lambda s: (s.top or 0, s.left or 0))
            for shape in shapes:
                if getattr(shape, "has_table", False) and shape.has_table:
                    builder.table([[cell.text for cell in row.cells] for row in shape.table.rows])
                elif shape.has_text_frame:
                    builder.add(shape.text_frame.text)
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    builder.add(notes.text)
            if len(builder) == start:
                empty.append(number)
            builder.page(start)
        if not len(builder):
            raise UnreadableDocument(f"no text on any of its {len(slides):,} slides")
        title, metadata = core_properties(deck.core_properties)
        return [builder.result("pptx", title=title, metadata=metadata, pages_without_text=empty)]
