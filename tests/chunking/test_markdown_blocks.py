"""Markdown blocks through markdown-it-py: every block span is an exact, trimmed slice of the text (CRLF and lone
CR line ends included), list items and tables are blocks of their own, indented and fenced code are code, and the
chunker without markdown-it-py names the extra that installs it."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("markdown_it")

from retrievekit.chunking import markdown as md
from retrievekit.chunking.markdown import MarkdownChunker, _markdown_blocks
from retrievekit.core.errors import MissingExtraError

DOC = """---
title: Doc
---
# Guide

Intro text
over two lines.

- first item
- second item
  continued

| name | value |
|------|-------|
| k1   | 1.2   |
| b    | 0.75  |

    indented = "code"

Setext
title
------

```python
x = 1
```
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_blocks_are_exact_slices_with_kinds_and_sections(newline: str) -> None:
    text = DOC.replace("\n", newline)
    blocks, outline = _markdown_blocks(text)
    got = [(text[b.start : b.end].replace(newline, "\n"), b.kind, outline.paths[b.section]) for b in blocks]
    guide, setext = ("Guide",), ("Guide", "Setext title")
    assert got == [
        ("---\ntitle: Doc\n---", "code", ()),
        ("# Guide", "heading", guide),
        ("Intro text\nover two lines.", "text", guide),
        ("- first item", "text", guide),
        ("- second item\n  continued", "text", guide),
        ("| name | value |\n|------|-------|\n| k1   | 1.2   |\n| b    | 0.75  |", "text", guide),
        ('indented = "code"', "code", guide),
        ("Setext\ntitle\n------", "heading", setext),
        ("```python\nx = 1\n```", "code", setext),
    ], f"blocks of the test document with {newline!r} line ends"


def test_chunks_keep_list_items_and_tables_whole() -> None:
    items = "\n".join(f"- item {i} with a few more words" for i in range(12))
    text = f"# List\n\n{items}\n"
    chunks = MarkdownChunker(20).chunk("d", text)
    assert len(chunks) > 1
    for c in chunks:
        assert text[c.start : c.end] == c.text
        body = c.text.removeprefix("# List\n\n")
        assert all(line.startswith("- item ") and line.endswith("more words") for line in body.split("\n")), c.text


def test_unclosed_fence_runs_to_the_end() -> None:
    text = "# A\n\n```\ncode line\n\n"
    blocks, _ = _markdown_blocks(text)
    assert [(text[b.start : b.end], b.kind) for b in blocks] == [("# A", "heading"), ("```\ncode line", "code")]


def test_without_markdown_it_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    md._parser.cache_clear()
    monkeypatch.setitem(sys.modules, "markdown_it", None)
    try:
        with pytest.raises(MissingExtraError, match=r"retrievekit\[documents\]"):
            MarkdownChunker(50).chunk("d", "# Title\n\ntext")
    finally:
        md._parser.cache_clear()


def test_a_chunk_from_a_tables_middle_carries_its_header() -> None:
    rows = "\n".join(f"| term{i} | {i}.5 |" for i in range(40))
    text = f"# Weights\n\n| term | weight |\n|---|---|\n{rows}\n\nAfter the table.\n"
    chunks = MarkdownChunker(20).chunk("d", text)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    later = [c for c in chunks if "term39" in c.text or "term20" in c.text]
    assert later and all(c.metadata["table_header"] == "term | weight" for c in later)
    assert all("table_header" not in c.metadata for c in chunks if "| term | weight |" in c.text)
    assert "table_header" not in chunks[-1].metadata and chunks[-1].text == "After the table."
