"""EPUB books through ebooklib: the spine's chapters in reading order, each chapter's XHTML turned into text by the
one HTML extractor (``chunking.html_text.HTMLText``) with its h1-h6 headings as sections; Dublin Core metadata. The
zip directory is checked first (``archives.checked_zip``)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

from retrievekit.chunking.html_text import HTMLText
from retrievekit.core.errors import require
from retrievekit.ingest.documents.archives import checked_zip
from retrievekit.ingest.documents.base import (
    DocumentLimits,
    DocumentParser,
    ParsedDocument,
    TextBuilder,
    UnreadableDocument,
)

_DUBLIN_CORE = {"creator": "author", "date": "created", "subject": "subject", "language": "language",
                "publisher": "publisher", "description": "description"}


class EpubParser(DocumentParser):
    format = "epub"

    def parse(self, data: bytes, path: Path, limits: DocumentLimits) -> list[ParsedDocument]:
        require("ebooklib", "documents")
        from ebooklib import ITEM_DOCUMENT, epub

        checked_zip(data, limits, "EPUB")
        try:
            with warnings.catch_warnings():  # ebooklib warns about a future default of one of its options
                warnings.simplefilter("ignore")
                book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
        except Exception as exc:  # ebooklib raises EpubException, KeyError, lxml errors ... for a broken book
            raise UnreadableDocument(f"corrupt EPUB ({type(exc).__name__}: {exc})") from None
        builder = TextBuilder(limits)
        for idref, _linear in book.spine:
            item = book.get_item_with_id(idref)
            if item is None or item.get_type() != ITEM_DOCUMENT:
                continue
            source = item.get_content().decode("utf-8", "replace")
            extracted = HTMLText(source, include_title=False)
            text = extracted.text
            start, _ = builder.add(text)
            base = start - (len(text) - len(text.lstrip()))  # where extracted.text[0] would be
            for block in extracted.blocks:
                if block.kind == "heading":
                    path_ = extracted.outline.paths[block.section]
                    if path_:
                        builder.heading_at(base + block.start, len(path_), path_[-1])
        if not len(builder):
            raise UnreadableDocument("no text in any chapter of the EPUB")
        title = _first(book.get_metadata("DC", "title"))
        metadata: dict[str, Any] = {}
        for name, key in _DUBLIN_CORE.items():
            value = _first(book.get_metadata("DC", name))
            if value:
                metadata[key] = value
        return [builder.result("epub", title=title, metadata=metadata)]


def _first(values: list[Any]) -> str:
    """The first Dublin Core value's text (ebooklib gives ``[(text, attributes), ...]``)."""
    for value in values or []:
        text = value[0] if isinstance(value, tuple) else value
        if isinstance(text, str) and text.strip():
            return " ".join(text.split())
    return ""
