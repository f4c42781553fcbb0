"""The structure-aware Markdown chunker: sections at ATX/setext headings, fenced code kept whole.

Blocks come from markdown-it-py's CommonMark parser (tables on): each top-level block token — and each item of a
top-level list — carries its source line range, so block spans are exact offsets into the text."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from retrievekit.chunking.base import DEFAULT_MAX_TOKENS, Chunker, _Pieces, _positive_int, _Span
from retrievekit.chunking.structure import _Block, _Outline, _pack_structured, _structure_splitters, _TableHeaders
from retrievekit.core.errors import require

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

# YAML front matter: "---", "key: value" lines, "---" or "...", at the very start
_FRONT_MATTER = re.compile(r"---[ \t]*(?:\r\n|\r|\n)[\w-]+[ \t]*:.*?(?:\r\n|\r|\n)(?:---|\.\.\.)[ \t]*(?=[\r\n]|\Z)",
                           re.DOTALL)
# the line breaks markdown-it-py counts lines by (it normalises \r\n and \r to \n before parsing)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CODE_TOKENS = frozenset({"fence", "code_block"})


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    markdown_it = require("markdown_it", "documents")
    return markdown_it.MarkdownIt("commonmark").enable("table")


def _markdown_blocks(text: str) -> tuple[list[_Block], _Outline]:
    """Blocks (headings, paragraphs, list items, tables, code) and sections of a Markdown text."""
    blocks, outline, _ = _markdown_structure(text)
    return blocks, outline


def _markdown_structure(text: str) -> tuple[list[_Block], _Outline, list[tuple[int, int, str]]]:
    """Blocks and sections, and the tables: (start, end, header cells joined by " | ")."""
    outline = _Outline()
    tables: list[tuple[int, int, str]] = []
    blocks: list[_Block] = []
    section = 0
    front = _FRONT_MATTER.match(text)
    body = text
    if front:
        blocks.append(_Block(0, front.end(), "code", section))
        # blank the front matter line for line, so the parser's line numbers stay those of the text
        body = "\n" * len(_LINE_BREAK.findall(text, 0, front.end())) + text[front.end():]
    line_starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]

    def span(lines: list[int]) -> tuple[int, int] | None:
        start = line_starts[lines[0]] if lines[0] < len(line_starts) else len(text)
        end = line_starts[lines[1]] if lines[1] < len(line_starts) else len(text)
        if front:
            start = max(start, front.end())
        chunk = text[start:end]
        stripped = chunk.strip()
        if not stripped:
            return None
        first = start + len(chunk) - len(chunk.lstrip())
        return first, first + len(stripped)

    tokens = _parser().parse(body)
    for i, token in enumerate(tokens):
        if token.map is None:
            continue
        if token.level == 0:
            if token.type in ("bullet_list_open", "ordered_list_open"):
                continue  # its items are the blocks
            where = span(token.map)
            if where is None:
                continue
            if token.type == "heading_open":
                title = " ".join(tokens[i + 1].content.split())
                section = outline.open(int(token.tag[1]), title)
                blocks.append(_Block(*where, "heading", section))
            else:
                blocks.append(_Block(*where, "code" if token.type in _CODE_TOKENS else "text", section))
                if token.type == "table_open":
                    tables.append((*where, _table_header(tokens, i)))
        elif token.level == 1 and token.type == "list_item_open":
            where = span(token.map)
            if where is not None:
                blocks.append(_Block(*where, "text", section))
    return blocks, outline, tables


def _table_header(tokens: list[Any], i: int) -> str:
    """The header cells of the table opened at ``tokens[i]``, joined by " | "."""
    cells = []
    for token in tokens[i + 1 :]:
        if token.type == "thead_close":
            break
        if token.type == "inline":
            cells.append(" ".join(token.content.split()))
    return " | ".join(cells)


class MarkdownChunker(Chunker):
    """Structure-aware Markdown (blocks from markdown-it-py): chunks start at ATX (``## x``) and setext
    (underlined) headings; a section and its subsections share a chunk when they fit ``max_tokens``, siblings never
    do; a heading stays with its first block; list items and tables are blocks of their own; fenced and indented
    code blocks are kept whole when they fit (else split by lines); longer sections are split by paragraphs, then
    sentences. ``metadata["heading"]`` is the heading path, e.g. ``"Guide > Install"`` ("" before the first
    heading); a chunk holding rows of a table but not its header line has ``metadata["table_header"]``."""

    name = "markdown"

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = _positive_int(max_tokens, "markdown MAX_TOKENS")

    def _params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}

    def _spans(self, text: str) -> list[_Span]:
        blocks, outline, tables = _markdown_structure(text)
        packed = _pack_structured(blocks, outline, self.max_tokens, _Pieces(text), _structure_splitters(text))
        headers = _TableHeaders(tables)
        spans = []
        for s, e, head in packed:
            metadata = {"heading": head}
            header = headers.at(s)  # a chunk cut from a table's middle still says what its columns are
            if header:
                metadata["table_header"] = header
            spans.append(_Span(s, e, metadata))
        return spans

