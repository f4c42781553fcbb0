"""Plain-text tables and result listings for the terminal."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any

from retrievekit.analysis import Analyzer
from retrievekit.analysis.highlight import ANSI, MARKERS, MAX_SCAN_CHARS, line_snippet, snippet
from retrievekit.core.document import Document
from retrievekit.core.provenance import document_page_reference

# Terminal control: escape sequences (CSI, OSC ... BEL/ST, two-character ESC forms, their 8-bit C1 forms) are
# dropped whole (a string sequence only with its terminator); any other control character (C0 but tab and
# newline, DEL, C1) becomes U+FFFD. Documents and generated answers are untrusted: printed raw they could
# recolour, retitle or rewrite the user's terminal.
_ESCAPES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
                      r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x90\x98\x9c-\x9f]*(?:\x07|\x1b\\|\x9c)"
                      r"|\x1b[ -/]*[0-~]?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"[\n\t\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029]")  # what json.dumps(ensure_ascii=False) leaves raw


def terminal_safe(text: str, *, newlines: bool = True) -> str:
    """``text`` without terminal escape sequences or control characters; ``newlines`` False: line breaks and tabs
    become spaces too (for text that must stay on one line: ids, titles, queries)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # a bare CR would let text overwrite its own line
    if not newlines:
        text = _LINE_BREAKS.sub(" ", text)
    return _CONTROLS.sub("\ufffd", _ESCAPES.sub("", text))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join([line, sep, *body])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def _numeric(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "", 1).replace("-", "", 1).isdigit()


def print_json(obj: Any) -> None:
    # C0 controls are escaped by json.dumps; DEL, C1 and line separators are escaped here (valid JSON, inert text).
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
    print(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def flat_rows(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted.key, value) rows of nested settings, lists of plain values joined by commas: a table of
    ``info`` stays readable instead of one JSON cell as wide as the screen."""
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from flat_rows(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, list) and all(not isinstance(v, (dict, list)) for v in obj):
        yield prefix, ", ".join(str(v) for v in obj)  # no thousands separators beside the list's commas
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from flat_rows(value, f"{prefix}[{i}]")
    else:
        yield prefix, "none" if obj is None or obj == {} else obj


def wrapped_rows(rows: Sequence[tuple[str, Any]], width: int = 72) -> list[tuple[str, Any]]:
    """Long string values over several lines (continuation rows have an empty key)."""
    out: list[tuple[str, Any]] = []
    for key, value in rows:
        if isinstance(value, str) and len(value) > width:
            lines = textwrap.wrap(value, width, break_on_hyphens=False) or [""]
            out += [(key, lines[0]), *(("", line) for line in lines[1:])]
        else:
            out.append((key, value))
    return out


CODE_LINES = 6  # lines of a code hit printed
_QUERY_SHOWN = 120  # characters of a query echoed above its hits (a pasted snippet can be pages long)


def code_location(doc: Document) -> str | None:
    """``path:start-end`` of a document with ``path``, ``start_line`` and ``end_line`` metadata (code indexed by
    ``retrievekit index --code``), else None."""
    meta = doc.metadata
    path, start, end = meta.get("path"), meta.get("start_line"), meta.get("end_line")
    if not isinstance(path, str) or not path or type(start) is not int or type(end) is not int:
        return None
    return f"{path}:{start}" if start == end else f"{path}:{start}-{end}"


def shown_query(query: str) -> str:
    """The query on one line, cut to ``_QUERY_SHOWN`` characters, with its size when it is longer or has several
    lines (a code snippet)."""
    text = " ".join(query.split())
    n_lines = query.strip().count("\n") + 1
    if len(text) <= _QUERY_SHOWN and n_lines == 1:
        return terminal_safe(text, newlines=False)
    more = f" ({n_lines:,} lines, {len(query):,} characters)" if n_lines > 1 else f" ({len(query):,} characters)"
    return terminal_safe(text[:_QUERY_SHOWN], newlines=False) + ("…" if len(text) > _QUERY_SHOWN else "") + more


def print_hits(query: str, hits: list[tuple[Document, float]], analyzer: Analyzer, *, width: int = 200) -> None:
    style = ANSI if sys.stdout.isatty() else MARKERS
    print(f"\n» {shown_query(query)}")
    if not hits:
        print("   (no match)")
    for rank, (doc, score) in enumerate(hits, 1):
        location = code_location(doc)
        if location is not None:
            print_code_hit(rank, doc, score, location, query, analyzer, style)
            continue
        title = safe_snippet(doc.title, query, analyzer, width=120, style=style) if doc.title else ""
        doc_id = terminal_safe(doc.id, newlines=False)
        pages = document_page_reference(doc.metadata, len(doc.text))  # a PDF's or slide deck's
        where = f"  {terminal_safe(pages, newlines=False)}" if pages is not None else ""
        print(f"{rank:>3}. {doc_id}  (score {score:.3f}){where}" + (f"  {title}" if title else ""))
        if doc.text:
            print("     " + safe_snippet(doc.text, query, analyzer, width=width, style=style))


def print_code_hit(rank: int, doc: Document, score: float, location: str, query: str, analyzer: Analyzer,
                   style: tuple[str, str]) -> None:
    """``path:start-end  symbol  (score)``, then the chunk's best lines numbered as in the file."""
    symbol = doc.title or doc.metadata.get("symbol") or ""
    kind = doc.metadata.get("kind")
    label = f"  {terminal_safe(str(symbol), newlines=False)}" if symbol else ""
    if label and isinstance(kind, str) and kind:
        label += f" ({terminal_safe(kind, newlines=False)})"
    print(f"{rank:>3}. {terminal_safe(location, newlines=False)}{label}  score {score:.3f}")
    header = doc.metadata.get("header_chars")
    skip = header if type(header) is int and 0 < header <= len(doc.text) else 0
    body = doc.text[skip:]
    head = body[:MAX_SCAN_CHARS]
    # cleaned before the marks go in; tabs as 4 spaces (terminal_safe would make each one space)
    clean = "\n".join(terminal_safe(line, newlines=False) for line in head.expandtabs(4).split("\n"))
    first, lines = line_snippet(clean, query, analyzer, lines=CODE_LINES, style=style)
    number = doc.metadata["start_line"] + first
    digits = len(str(number + len(lines) - 1))
    for i, line in enumerate(lines):
        print(f"     {number + i:>{digits}} │ {line}".rstrip())


def safe_snippet(text: str, query: str, analyzer: Analyzer, *, width: int, style: tuple[str, str]) -> str:
    """A snippet of untrusted ``text`` for the terminal: cleaned before the highlight marks are added (only the part
    a snippet reads is cleaned)."""
    head = text[:MAX_SCAN_CHARS]
    return snippet(terminal_safe(head), query, analyzer, width=width, style=style, truncated=len(text) > len(head))
