"""Plain-text tables and result listings for the terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from retrievekit.analysis import Analyzer
from retrievekit.analysis.highlight import ANSI, MARKERS, snippet
from retrievekit.core.document import Document


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths)) for r in cells]
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
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def print_hits(query: str, hits: list[tuple[Document, float]], analyzer: Analyzer, *, width: int = 200) -> None:
    style = ANSI if sys.stdout.isatty() else MARKERS
    print(f"\n» {query}")
    if not hits:
        print("   (no match)")
    for rank, (doc, score) in enumerate(hits, 1):
        title = snippet(doc.title, query, analyzer, width=120, style=style) if doc.title else ""
        print(f"{rank:>3}. {doc.id}  (score {score:.3f})" + (f"  {title}" if title else ""))
        if doc.text:
            print("     " + snippet(doc.text, query, analyzer, width=width, style=style))
