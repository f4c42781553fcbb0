"""The structure-aware HTML chunker: the blocks of ``HTMLText`` packed like Markdown sections."""

from __future__ import annotations

from typing import Any

from retrievekit.chunking.base import (
    DEFAULT_MAX_TOKENS,
    Chunk,
    Chunker,
    _check_text,
    _Pieces,
    _positive_int,
    _Span,
    _trimmed,
)
from retrievekit.chunking.html_text import HTMLText
from retrievekit.chunking.structure import _Block, _pack_structured, _structure_splitters, _TableHeaders


class HTMLChunker(Chunker):
    """Structure-aware HTML, chunked like Markdown over the blocks of ``HTMLText`` — with the page's boilerplate
    (navigation, sidebars, page header and footer, search forms) left out, as the ``files`` reader does.

    The one strategy where ``Chunk.text`` is not a slice of the document: ``text`` is the extracted text (tags
    dropped, references resolved, whitespace collapsed), ``start``/``end`` is the source span from the first to the
    last character it came from, and ``metadata`` holds ``"source_spans"`` (the source span of each text run in
    the chunk: ``html.unescape(source[a:b])`` gives its text up to whitespace), ``"text_start"``/``"text_end"``
    (offsets into ``HTMLText(source).text``), ``"heading"`` (the h1-h6 path) and, for a chunk holding rows of a
    table but not its header line, ``"table_header"`` (the header cells joined by " | ").
    """

    name = "html"

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = _positive_int(max_tokens, "html MAX_TOKENS")

    def _params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}

    def chunk(self, doc_id: str, text: str, metadata: dict[str, Any] | None = None) -> list[Chunk]:
        _check_text(doc_id, text)
        if not text or text.isspace():
            return []
        extracted = HTMLText(text, drop_boilerplate=True)
        base = dict(metadata or {})
        return [Chunk(doc_id, i, extracted.text[s.start : s.end], extracted.source_start(s.start),
                      extracted.source_end(s.end), {**base, **s.metadata})
                for i, s in enumerate(self._extracted_spans(extracted))]

    def _extracted_spans(self, extracted: HTMLText) -> list[_Span]:
        text = extracted.text
        blocks: list[_Block] = []
        for b in extracted.blocks:  # trim: a pre block may start or end with whitespace
            blocks.extend(_Block(s, e, b.kind, b.section) for s, e in _trimmed(text, (), b.start, b.end))
        packed = _pack_structured(blocks, extracted.outline, self.max_tokens, _Pieces(text),
                                  _structure_splitters(text))
        # a chunk cut from a table's middle still says what its columns are
        headers = _TableHeaders([(t.start, t.end, " | ".join(t.header)) for t in extracted.tables])
        spans = []
        for s, e, head in packed:
            metadata: dict[str, Any] = {"heading": head, "source_spans": extracted.source_spans(s, e),
                                        "text_start": s, "text_end": e}
            header = headers.at(s)
            if header:
                metadata["table_header"] = header
            spans.append(_Span(s, e, metadata))
        return spans

    def _spans(self, text: str) -> list[_Span]:
        return self._extracted_spans(HTMLText(text, drop_boilerplate=True))
