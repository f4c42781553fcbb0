"""HTML to text: the one extractor behind both the ``html`` chunker and the ``files`` reader (``.html`` pages).

Both used to have their own, and they disagreed (the reader kept ``<svg>`` text and put every table cell on its own
line; the chunker dropped svg and kept table rows), so one page gave two texts. Now there is ``HTMLText`` only; its
rules are the union of the right parts of both:

* script, style, noscript, template and svg content is not text;
* every block element (p, li, tr, h1-h6, div, pre …) starts a new line and ``<br>`` breaks the line; table cells of
  one row are joined by a space, so a table reads one row per line;
* inside a block, whitespace runs become one space (kept verbatim in ``pre``) and character references are resolved;
* ``title`` is the ``<title>`` text; it is also the first line of ``text`` unless ``include_title=False`` (the
  reader keeps it in ``Document.title`` instead, which is indexed with the text);
* every text character maps back to its span of the HTML source (``source_start``/``source_end``), which the
  chunker needs for ``Chunk.start``/``end``;
* with ``drop_boilerplate=True`` (saved web pages: the ``files`` reader and the chunker) the page's landmarks that
  HTML itself marks as not the main content are left out: ``nav``, ``aside``, ``dialog``, elements with
  an ARIA role of navigation, banner, contentinfo, complementary or search, elements marked ``hidden`` or
  ``aria-hidden``, and ``header``/``footer`` outside an ``article``, ``section`` or ``main`` (those belong to
  it); when the page has a ``<main>``, only what is inside it counts; a page these rules would leave empty is read
  whole.

No parsing library exposes where in the source each text character came from (lxml, selectolax/lexbor and
html5lib give trees without offsets), so the stdlib tokenizer stays: it reports positions, and the rules above are
the HTML standard's own sectioning, not a scoring heuristic.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

from retrievekit.chunking.base import ChunkingError, Span
from retrievekit.chunking.structure import _Block, _Outline

_BLOCK_TAGS = frozenset(
    "address article aside blockquote body caption center dd details dialog dir div dl dt fieldset figcaption "
    "figure footer form frameset header hgroup hr html legend li main menu nav ol option p section summary table "
    "tbody tfoot thead title tr ul h1 h2 h3 h4 h5 h6 pre".split())
# what these leave between the text around them: <br> breaks the line, a table cell or an image is a space
_SPACE_TAGS = {"br": "\n", "td": " ", "th": " ", "wbr": " ", "img": " ", "input": " "}
_VOID_TAGS = frozenset("area base br col embed hr img input link meta source track wbr".split())
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg"})
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
# not <form>: ASP.NET pages wrap their whole body in one; a search form has role="search"
_BOILERPLATE_TAGS = frozenset({"nav", "aside", "dialog"})
_BOILERPLATE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_CONTENT_TAGS = frozenset({"article", "section", "main"})  # a header or footer inside one is its own
_HAS_MAIN = re.compile(r"<main[\s>/]", re.IGNORECASE)
# the same references html.unescape resolves, so each can be mapped back to its source span
_CHARREF = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")
_CHARREF_OR_SPACE = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)|\s{2,}|[^\S ]")


@dataclass
class HTMLTable:
    """A table of the extracted text: ``text[start:end]`` holds its rows, one a line; ``header`` is the cells of
    its first row when that row is a header (``<th>`` cells or in ``<thead>``), else empty; ``rows`` counts the
    rows after the header."""

    start: int
    end: int
    header: list[str] = field(default_factory=list)
    rows: int = 0
    _in_head: bool = False
    _row: list[str] | None = None
    _row_is_header: bool = True

    def to_json(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "header": self.header, "rows": self.rows}


class HTMLText:
    """Text extracted from HTML source, with the way back to the source.

    ``text`` holds one line per block element (h1-h6, p, li, tr, pre, div …; ``<br>`` breaks a block's line);
    inside a block, whitespace runs become one space (kept verbatim in ``pre``) and character references are
    resolved; script, style, noscript, template and svg content is dropped. ``title`` is the first ``<title>``'s
    text, whitespace collapsed; ``include_title=False`` leaves it out of ``text``. ``source_start(i)`` /
    ``source_end(j)`` map text offsets to source offsets; ``runs`` are the (text start, text end) of each text run
    (text between two tags) in ``text``; ``blocks`` and ``outline`` give the block structure and h1-h6 sections.
    """

    def __init__(self, source: str, *, include_title: bool = True, drop_boilerplate: bool = False,
                 _main_only: bool | None = None) -> None:
        self.source = source
        self.include_title = include_title
        self.drop_boilerplate = drop_boilerplate
        # the element being left out as boilerplate (tag, nesting depth of that tag), and whether the page's
        # text is only what <main> holds (then everything is left out until it opens)
        self._dropped: tuple[str, int] | None = None
        self._main_only = (drop_boilerplate and _HAS_MAIN.search(source) is not None) if _main_only is None \
            else _main_only
        self._main_seen = False
        self._body_text = False  # whether any text outside <title> made it into the text
        self._in_main = 0
        self._in_content = 0
        self.title = ""
        self._title_parts: list[str] = []
        self._in_title = False
        self._title_seen = False
        self._parts: list[str] = []
        self.length = 0
        # segments of the text: copied from the source (same length) or replacing a source span
        self._seg_t: list[int] = []
        self._seg_s: list[int] = []
        self._seg_e: list[int] = []
        self._seg_copy: list[bool] = []
        self.runs: list[Span] = []
        self.blocks: list[_Block] = []
        self.outline = _Outline()
        self.tables: list[HTMLTable] = []
        self._open_tables: list[HTMLTable] = []  # innermost last
        self._cell_part: int | None = None  # index in _parts where the open cell's text starts
        self._section = 0
        self._block_start = -1  # text offset of the open block's first character, -1 if none
        self._block_part = 0  # index in _parts where the open block starts
        self._pending_space: tuple[int, int, str] | None = None  # source span and " " or "\n" (a <br>)
        self._run_start: int | None = None
        self._skip = 0
        self._pre = 0
        self._heading = 0
        _Extractor(self).run()
        if self._main_only and not self._main_seen:  # "<main" was only in a comment or a script: read it all
            self.__init__(source, include_title=include_title, drop_boilerplate=True, _main_only=False)  # type: ignore[misc]
            return
        if drop_boilerplate and not self._body_text:  # all of it looked like boilerplate: better whole than empty
            self.__init__(source, include_title=include_title)  # type: ignore[misc]
            return
        self.text = "".join(self._parts)
        del self._parts
        for table in self.tables:  # a table's span starts at its first character, not at the line break before it
            while table.start < table.end and self.text[table.start].isspace():
                table.start += 1
        self.tables = [t for t in self.tables if t.end > t.start]

    # -- building ------------------------------------------------------------------------------------------------
    def _append(self, text: str, start: int, end: int, copy: bool) -> None:
        if self._block_start < 0:
            if self.length:
                self._parts.append("\n")
                self.length += 1
            self._block_start = self.length
            self._block_part = len(self._parts)
        elif self._pending_space is not None:
            start_ws, end_ws, char = self._pending_space
            self._segment(char, start_ws, end_ws, self.source[start_ws:end_ws] == char)
        self._pending_space = None
        if self._run_start is None:
            self._run_start = self.length
        self._segment(text, start, end, copy)

    def _segment(self, text: str, start: int, end: int, copy: bool) -> None:
        if (copy and self._seg_copy and self._seg_copy[-1] and self._seg_e[-1] == start
                and self._seg_t[-1] + start - self._seg_s[-1] == self.length):  # extends the previous copy
            self._seg_e[-1] = end
            self._parts.append(text)
            self.length += len(text)
            return
        self._seg_t.append(self.length)
        self._seg_s.append(start)
        self._seg_e.append(end)
        self._seg_copy.append(copy)
        self._parts.append(text)
        self.length += len(text)

    def _space(self, start: int, end: int, char: str = " ") -> None:
        """Whitespace (or a line break) before the next text of the open block; a line break wins over spaces."""
        if self._block_start >= 0 and not (char == " " and self._pending_space and self._pending_space[2] != " "):
            self._pending_space = (start, end, char)

    def open_title(self) -> None:
        if not self._in_title:
            self._in_title = True
            if not self.include_title:
                self._skip += 1

    def close_title(self) -> None:
        """End the open <title> (at ``</title>``, or at the next block element if it is never closed, so that a
        missing ``</title>`` cannot swallow the page); the first one is ``title``."""
        if self._in_title:
            self._in_title = False
            if not self._title_seen:
                self.title = " ".join("".join(self._title_parts).split())
                self._title_seen = True
            if not self.include_title:
                self._skip = max(0, self._skip - 1)

    def _copy(self, start: int, end: int) -> None:
        """Source text without references and without whitespace but single inner spaces."""
        src = self.source
        if src[start] == " ":
            self._space(start, start + 1)
            start += 1
        trailing = end > start and src[end - 1] == " "
        if trailing:
            end -= 1
        if end > start:
            self._append(src[start:end], start, end, True)
        if trailing:
            self._space(end, end + 1)

    def _reference(self, start: int, end: int) -> None:
        ref = self.source[start:end]
        text = html.unescape(ref)
        # "&amplifier" reads "&lifier": only the "&amp" part is replaced, the rest is copied
        same = 0
        while same < min(len(ref), len(text)) - 1 and ref[-1 - same] == text[-1 - same]:
            same += 1
        if text == ref:
            self._append(ref, start, end, True)
        elif same:
            self._append(text[:-same], start, end - same, False)
            self._append(text[-same:], end - same, end, True)
        else:
            self._append(text, start, end, False)

    def add_data(self, start: int, end: int) -> None:
        if self._in_title and not self._title_seen and end > start:
            self._title_parts.append(html.unescape(self.source[start:end]))
        if self._skip or end <= start:
            return
        if (self._dropped is not None or (self._main_only and not self._in_main)) and not self._in_title:
            return  # boilerplate (the <title> is the page's own, wherever <main> is)
        self._body_text = self._body_text or not self._in_title
        src, pos = self.source, start
        self._run_start = None
        if self._pre:
            for m in _CHARREF.finditer(src, start, end):
                if m.start() > pos:
                    self._append(src[pos : m.start()], pos, m.start(), True)
                self._reference(m.start(), m.end())
                pos = m.end()
            if pos < end:
                self._append(src[pos:end], pos, end, True)
        else:
            for m in _CHARREF_OR_SPACE.finditer(src, start, end):
                if m.start() > pos:
                    self._copy(pos, m.start())
                if m.group()[0] == "&":
                    self._reference(m.start(), m.end())
                else:
                    self._space(m.start(), m.end())
                pos = m.end()
            if pos < end:
                self._copy(pos, end)
        if self._run_start is not None and self.length > self._run_start:
            self.runs.append((self._run_start, self.length))
        self._run_start = None

    # -- tables: their rows' spans and header cells, for the chunks' "table_header" ---------------------------------
    def open_table(self) -> None:
        self._open_tables.append(HTMLTable(self.length, self.length))

    def close_cell(self) -> None:
        if self._cell_part is not None and self._open_tables:
            row = self._open_tables[-1]._row
            if row is not None:
                row.append(" ".join("".join(self._parts[self._cell_part :]).split()))
        self._cell_part = None

    def open_cell(self, header: bool) -> None:
        self.close_cell()
        if self._open_tables:
            table = self._open_tables[-1]
            if table._row is None:
                table._row = []
            table._row_is_header = table._row_is_header and (header or table._in_head)
            self._cell_part = len(self._parts)

    def close_row(self) -> None:
        self.close_cell()
        if not self._open_tables:
            return
        table = self._open_tables[-1]
        if table._row is not None and any(table._row):
            if not table.header and not table.rows and table._row_is_header:
                table.header = table._row
            else:
                table.rows += 1
        table._row, table._row_is_header = None, True

    def close_table(self) -> None:
        if self._open_tables:
            self.close_row()
            table = self._open_tables.pop()
            table.end = self.length
            self.tables.append(table)

    def end_block(self) -> None:
        if self._block_start >= 0:
            kind = "heading" if self._heading else "code" if self._pre else "text"
            start, end = self._block_start, self.length
            if kind == "heading":
                title = " ".join("".join(self._parts[self._block_part :]).split())
                self._section = self.outline.open(self._heading, title)
            self.blocks.append(_Block(start, end, kind, self._section))
        self._block_start = -1
        self._pending_space = None

    # -- mapping back to the source ------------------------------------------------------------------------------
    def source_start(self, pos: int) -> int:
        """Source offset where the text character at ``pos`` comes from."""
        k = max(0, bisect.bisect_right(self._seg_t, pos) - 1)
        if self._seg_copy[k]:
            return min(self._seg_s[k] + pos - self._seg_t[k], self._seg_e[k])
        return self._seg_s[k]

    def source_end(self, pos: int) -> int:
        """Source offset just after the source of the text character at ``pos - 1``."""
        k = max(0, bisect.bisect_right(self._seg_t, pos - 1) - 1)
        if self._seg_copy[k]:
            return min(self._seg_s[k] + pos - self._seg_t[k], self._seg_e[k])
        return self._seg_e[k]

    def source_spans(self, start: int, end: int) -> list[Span]:
        """Source spans of the text runs (clipped) that make up text[start:end]."""
        spans: list[Span] = []
        i = bisect.bisect_right(self.runs, (start, len(self.text) + 1)) - 1
        i = max(i, 0)
        while i < len(self.runs) and self.runs[i][0] < end:
            a, b = max(self.runs[i][0], start), min(self.runs[i][1], end)
            if a < b:
                spans.append((self.source_start(a), self.source_end(b)))
            i += 1
        return spans


class _Extractor(HTMLParser):
    """Feeds parser events to an HTMLText; a text run spans from its event's position to the next event's."""

    def __init__(self, out: HTMLText) -> None:
        super().__init__(convert_charrefs=True)
        self.out = out
        src = out.source
        self._line_starts = [0, *(m.end() for m in re.finditer("\n", src))]
        self._data: tuple[int, str] | None = None

    def run(self) -> None:
        try:
            self.feed(self.out.source)
            self.close()
        except Exception as exc:  # the stdlib parser is lenient; anything else is a parser bug we should not hide
            raise ChunkingError(f"could not parse the HTML source: {exc}") from exc
        self._event(len(self.out.source))
        self.out.end_block()
        while self.out._open_tables:  # unclosed tables end with the page
            self.out.close_table()

    def _pos(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def _event(self, pos: int | None = None) -> int:
        pos = self._pos() if pos is None else pos
        if self._data is not None:
            start, data = self._data
            end = pos
            if html.unescape(self.out.source[start:end]) != data:  # junk the parser skipped without an event
                cut = self.out.source.find("<", start + 1, end)
                if cut > 0:
                    end = cut
            self.out.add_data(start, end)
            self._data = None
        return pos

    def handle_data(self, data: str) -> None:
        pos = self._event()
        self._data = (pos, data)

    def _boilerplate(self, tag: str, attrs: list[tuple[str, str | None]], start: bool) -> None:
        """Track what ``drop_boilerplate`` leaves out: the open boilerplate element, <main>, content sections."""
        out = self.out
        if out._dropped is not None:
            name, depth = out._dropped
            if tag == name:
                out._dropped = (name, depth + 1) if start else None if depth == 1 else (name, depth - 1)
            return
        if not start:
            if tag == "main" and out._in_main:
                out._in_main -= 1
            if tag in _CONTENT_TAGS and out._in_content:
                out._in_content -= 1
            return
        values = dict(attrs)
        role = (values.get("role") or "").strip().lower()
        if (tag in _BOILERPLATE_TAGS or role in _BOILERPLATE_ROLES or "hidden" in values
                or (values.get("aria-hidden") or "").lower() == "true"
                or (tag in ("header", "footer") and not out._in_content)):
            if tag not in _VOID_TAGS:
                out._dropped = (tag, 1)
            return
        out._in_main += tag == "main"
        out._main_seen = out._main_seen or tag == "main"
        out._in_content += tag in _CONTENT_TAGS

    def _table_tag(self, tag: str, start: bool) -> None:
        out = self.out
        if tag == "table":
            out.open_table() if start else out.close_table()
        elif not out._open_tables:
            return
        elif tag == "tr":
            out.close_row()  # an unclosed row ends where the next one starts
        elif tag in ("th", "td"):
            out.open_cell(tag == "th") if start else out.close_cell()
        elif tag == "thead":
            out._open_tables[-1]._in_head = start
        elif tag in ("tbody", "tfoot") and start:
            out.close_row()
            out._open_tables[-1]._in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pos = self._event()
        out = self.out
        if out.drop_boilerplate:
            self._boilerplate(tag, attrs, True)
        if not out._skip:
            self._table_tag(tag, True)
        if tag in _SKIP_TAGS:
            out._skip += 1
        elif tag in _BLOCK_TAGS:
            out.close_title()
            out.end_block()
            if tag == "title" and not out._skip:
                out.open_title()
            out._heading = _HEADINGS.get(tag, 0)  # headings hold no blocks: a block start ends an unclosed one
            if tag == "pre":
                out._pre += 1
        elif tag in _SPACE_TAGS:
            out._space(pos, pos, _SPACE_TAGS[tag])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pos = self._event()
        if tag in _BLOCK_TAGS:
            self.out.end_block()
        elif tag in _SPACE_TAGS:
            self.out._space(pos, pos, _SPACE_TAGS[tag])

    def handle_endtag(self, tag: str) -> None:
        pos = self._event()
        out = self.out
        if out.drop_boilerplate:
            self._boilerplate(tag, [], False)
        if not out._skip:
            self._table_tag(tag, False)
        if tag in _SKIP_TAGS:
            out._skip = max(0, out._skip - 1)
        elif tag in _BLOCK_TAGS:
            if tag == "title":
                out.close_title()
            out.end_block()
            if tag in _HEADINGS:
                out._heading = 0
            elif tag == "pre":
                out._pre = max(0, out._pre - 1)
        elif tag in _SPACE_TAGS:
            out._space(pos, pos, _SPACE_TAGS[tag])

    # The stdlib parser raises AssertionError on some malformed markup ("<![<"), after moving its position;
    # browsers read such markup as a bogus comment or as text, so do the same (-1 makes the parser emit it as text).
    def _lenient(self, parse: Callable[[int], int], i: int, fallback: Callable[[int], int] | None = None) -> int:
        where = self.lineno, self.offset
        try:
            return parse(i)
        except AssertionError:
            self.lineno, self.offset = where
            return fallback(i) if fallback is not None else -1

    def parse_html_declaration(self, i: int) -> int:
        return self._lenient(super().parse_html_declaration, i, self.parse_bogus_comment)

    def parse_starttag(self, i: int) -> int:
        return self._lenient(super().parse_starttag, i)

    def parse_endtag(self, i: int) -> int:
        return self._lenient(super().parse_endtag, i)

    def handle_comment(self, data: str) -> None:
        self._event()

    def handle_decl(self, decl: str) -> None:
        self._event()

    def handle_pi(self, data: str) -> None:
        self._event()

    def unknown_decl(self, data: str) -> None:
        self._event()
