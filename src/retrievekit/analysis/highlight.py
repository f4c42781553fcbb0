"""Query-term highlighting and snippets for result display."""

from __future__ import annotations

from retrievekit.analysis import Analyzer

ANSI = ("\033[1;33m", "\033[0m")
MARKERS = ("[", "]")
HTML = ("<mark>", "</mark>")


def snippet(text: str, query: str, analyzer: Analyzer, *, width: int = 240, style: tuple[str, str] = MARKERS) -> str:
    """The ``width``-character window of ``text`` with the most distinct query terms, matches wrapped in
    ``style`` (open, close). Words match when they analyse to a query term (so "running" matches "runs")."""
    query_terms = set(analyzer.analyze(query))
    spans = [(s, e) for s, e, terms in analyzer.term_spans(text) if query_terms.intersection(terms)]
    if len(text) <= width:
        lo, hi = 0, len(text)
    elif not spans:
        lo, hi = 0, width
    else:
        best, best_score = spans[0][0], -1
        for i, (start, _) in enumerate(spans):
            inside = {text[s:e].lower() for s, e in spans[i:] if e <= start + width}
            if len(inside) > best_score:
                best, best_score = start, len(inside)
        lo = max(0, best - width // 4)
        hi = min(len(text), lo + width)
        lo = max(0, hi - width)
        # do not cut words in half at the edges
        while lo > 0 and not text[lo - 1].isspace() and best - lo < width // 2:
            lo -= 1
        while hi < len(text) and not text[hi].isspace():
            hi += 1
    out = []
    pos = lo
    for s, e in spans:
        if s < lo or e > hi:
            continue
        out.append(text[pos:s])
        out.append(style[0] + text[s:e] + style[1])
        pos = e
    out.append(text[pos:hi])
    result = " ".join("".join(out).split())
    return ("… " if lo > 0 else "") + result + (" …" if hi < len(text) else "")
