"""Structure-aware packing for Markdown and HTML: blocks (headings, text, code) in a section outline, packed into
chunks that never mix sibling sections."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from retrievekit.chunking.base import Splitter, _pack, _Pieces
from retrievekit.chunking.sentences import _split_lines, _sub_spans, split_sentences


@dataclass
class _Block:
    start: int
    end: int
    kind: str  # "heading" | "text" | "code"
    section: int


@dataclass
class _Outline:
    """Sections of a structured document: heading path and parent of each (section 0: text before any heading)."""

    paths: list[tuple[str, ...]] = field(default_factory=lambda: [()])
    parents: list[int] = field(default_factory=lambda: [-1])
    _stack: list[tuple[int, int]] = field(default_factory=list)  # (level, section) of the open headings

    def open(self, level: int, title: str) -> int:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        parent = self._stack[-1][1] if self._stack else -1
        self.paths.append((self.paths[parent] if parent >= 0 else ()) + (title,))
        self.parents.append(parent)
        self._stack.append((level, len(self.paths) - 1))
        return len(self.paths) - 1

    def within(self, section: int, root: int) -> bool:
        while section >= 0:
            if section == root:
                return True
            section = self.parents[section]
        return False

    def heading(self, section: int) -> str:
        return " > ".join(self.paths[section])


def _pack_structured(blocks: list[_Block], outline: _Outline, budget: int, pieces: _Pieces,
                     splitters: dict[str, Sequence[Splitter]]) -> list[tuple[int, int, str]]:
    """Pack blocks greedily, a chunk never leaving the subtree of the section it starts in (so siblings and
    parents are never merged into one chunk) and never ending with a heading whose first block would fit
    after it. Returns (start, end, heading path), the path of the first section giving a non-heading block."""
    out: list[tuple[int, int, str]] = []
    counts = [pieces.count(b.start, b.end) for b in blocks]
    group: list[_Block] = []
    group_n = 0

    def flush() -> None:
        if group:
            named = next((b for b in group if b.kind != "heading"), group[-1])
            out.append((group[0].start, group[-1].end, outline.heading(named.section)))

    for i, block in enumerate(blocks):
        n = counts[i]
        if n > budget:
            flush()
            group, group_n = [], 0
            head = outline.heading(block.section)
            out.extend((s, e, head) for s, e in _pack([(block.start, block.end)], budget, pieces,
                                                      splitters[block.kind]))
            continue
        fits = bool(group) and group_n + n <= budget and outline.within(block.section, group[0].section)
        if fits and block.kind == "heading" and i + 1 < len(blocks):
            nxt = i + 1
            if blocks[nxt].section == block.section and counts[nxt] <= budget and group_n + n + counts[nxt] > budget:
                fits = False
        if fits:
            group.append(block)
            group_n += n
        else:
            flush()
            group, group_n = [block], n
    flush()
    return out


def _structure_splitters(text: str) -> dict[str, Sequence[Splitter]]:
    return {"text": [_sub_spans(split_sentences, text)], "code": [_sub_spans(_split_lines, text)], "heading": []}


class _TableHeaders:
    """Which table header a chunk starting at a text offset needs: that of the innermost table whose span holds the
    offset after its first character (the chunk lacks the header line). Tables may nest; a few steps back from the
    bisection find the enclosing one, so a page of thousands of tables costs a lookup per chunk, not a scan."""

    def __init__(self, tables: Sequence[tuple[int, int, str]]) -> None:
        self._tables = sorted(tables)
        self._starts = [t[0] for t in self._tables]

    def at(self, pos: int) -> str:
        i = bisect.bisect_left(self._starts, pos) - 1
        for start, end, header in reversed(self._tables[max(0, i - 7) : i + 1]):
            if start < pos < end and header:
                return header
        return ""
