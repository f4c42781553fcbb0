"""The structure-aware Markdown chunker: sections at ATX/setext headings, fenced code kept whole."""

from __future__ import annotations

import re
from typing import Any

from retrievekit.chunking.base import DEFAULT_MAX_TOKENS, Chunker, _Pieces, _positive_int, _Span
from retrievekit.chunking.sentences import _NONSPACE, _lines
from retrievekit.chunking.structure import _Block, _Outline, _pack_structured, _structure_splitters

_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r" {0,3}(=+|-{2,})[ \t]*$")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})(.*)$")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*$")
# YAML front matter: "---", "key: value" lines, "---" or "...", at the very start
_FRONT_MATTER = re.compile(r"---[ \t]*\r?\n[\w-]+[ \t]*:.*?\r?\n(?:---|\.\.\.)[ \t]*(?=\r?\n|\Z)", re.DOTALL)


def _markdown_blocks(text: str) -> tuple[list[_Block], _Outline]:
    """Blocks (headings, paragraphs, fenced code) and sections of a Markdown text, in one pass over its lines."""
    outline = _Outline()
    blocks: list[_Block] = []
    section = 0
    para: list[int] = []  # [start, end] of the open paragraph
    fence: tuple[str, int, int, int] | None = None  # (char, length, block start, last non-blank end)
    front = _FRONT_MATTER.match(text)
    if front:
        blocks.append(_Block(0, front.end(), "code", section))

    for ls, le in _lines(text, front.end() if front else 0):
        first = _NONSPACE.search(text, ls, le)
        if first is None:
            if para:
                blocks.append(_Block(para[0], para[1], "text", section))
                para = []
            continue
        line_end = ls + len(text[ls:le].rstrip())
        if fence is not None:
            close = _FENCE_CLOSE.match(text, ls, le)
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= fence[1]:
                blocks.append(_Block(fence[2], line_end, "code", section))
                fence = None
            else:
                fence = (fence[0], fence[1], fence[2], line_end)
            continue
        opened = _FENCE_OPEN.match(text, ls, le)
        if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
            if para:
                blocks.append(_Block(para[0], para[1], "text", section))
                para = []
            fence = (opened.group(1)[0], len(opened.group(1)), first.start(), line_end)
            continue
        atx = _ATX.match(text, ls, le)
        if atx:
            if para:
                blocks.append(_Block(para[0], para[1], "text", section))
                para = []
            section = outline.open(len(atx.group(1)), (atx.group(2) or "").strip())
            blocks.append(_Block(first.start(), line_end, "heading", section))
            continue
        setext = _SETEXT.match(text, ls, le) if para else None
        if setext:
            title = " ".join(text[para[0] : para[1]].split())
            section = outline.open(1 if setext.group(1)[0] == "=" else 2, title)
            blocks.append(_Block(para[0], line_end, "heading", section))
            para = []
            continue
        if para:
            para[1] = line_end
        else:
            para = [first.start(), line_end]
    if fence is not None:  # an unclosed fence runs to the end of the document
        blocks.append(_Block(fence[2], fence[3], "code", section))
    if para:
        blocks.append(_Block(para[0], para[1], "text", section))
    return blocks, outline




class MarkdownChunker(Chunker):
    """Structure-aware Markdown: chunks start at ATX (``## x``) and setext (underlined) headings; a section and
    its subsections share a chunk when they fit ``max_tokens``, siblings never do; a heading stays with its first
    block; fenced code blocks are kept whole when they fit (else split by lines); longer sections are split by
    paragraphs, then sentences. ``metadata["heading"]`` is the heading path, e.g. ``"Guide > Install"`` ("" before
    the first heading)."""

    name = "markdown"

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = _positive_int(max_tokens, "markdown MAX_TOKENS")

    def _params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}

    def _spans(self, text: str) -> list[_Span]:
        blocks, outline = _markdown_blocks(text)
        packed = _pack_structured(blocks, outline, self.max_tokens, _Pieces(text), _structure_splitters(text))
        return [_Span(s, e, {"heading": head}) for s, e, head in packed]

