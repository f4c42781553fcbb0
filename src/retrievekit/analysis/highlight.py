"""Query-term highlighting and snippets for result display.

The work is linear and bounded whatever the document: only the first ``MAX_SCAN_CHARS`` characters are analysed
(a snippet shows one window; a 200 MB document must not cost minutes and gigabytes per hit), and the best window is
found in one sliding pass over the matches.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from retrievekit.analysis import Analyzer

ANSI = ("\033[1;33m", "\033[0m")
MARKERS = ("[", "]")
HTML = ("<mark>", "</mark>")

MAX_SCAN_CHARS = 100_000  # characters of a text searched for the best window (about 15k words)
_MAX_WORD_EXTENSION = 64  # characters a window edge may move to avoid cutting a word in half


def snippet(text: str, query: str, analyzer: Analyzer, *, width: int = 240, style: tuple[str, str] = MARKERS,
            truncated: bool = False, max_scan: int = MAX_SCAN_CHARS) -> str:
    """The ``width``-character window of ``text`` with the most distinct query terms, matches wrapped in
    ``style`` (open, close). Words match when they analyse to a query term (so "running" matches "runs").
    Only the first ``max_scan`` characters are searched for matches; ``truncated``: ``text`` is the beginning of a
    longer text (the snippet then ends with an ellipsis)."""
    scanned = _scan_region(text, max(max_scan, width), truncated)
    query_terms = set(analyzer.analyze(query)) if query else set()
    spans = ([(s, e) for s, e, terms in analyzer.term_spans(scanned) if query_terms.intersection(terms)]
             if query_terms else [])
    if len(text) <= width:
        lo, hi = 0, len(text)
    elif not spans:
        lo, hi = 0, width
    else:
        best = _best_window_start(spans, [text[s:e].lower() for s, e in spans], width)
        lo = max(0, best - width // 4)
        hi = min(len(text), lo + width)
        lo = max(0, hi - width)
        # do not cut words in half at the edges (a bounded step: a "word" may be megabytes without spaces)
        floor = max(0, lo - _MAX_WORD_EXTENSION)
        while lo > floor and not text[lo - 1].isspace() and best - lo < width // 2:
            lo -= 1
        ceiling = min(len(text), hi + _MAX_WORD_EXTENSION)
        while hi < ceiling and not text[hi].isspace():
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
    more = hi < len(text) or truncated
    return ("… " if lo > 0 else "") + result + (" …" if more else "")


def _scan_region(text: str, limit: int, truncated: bool) -> str:
    """``text`` up to ``limit`` characters, ending at a word boundary when one is near (a word cut in half could
    match a shorter query term)."""
    if len(text) <= limit and not truncated:
        return text
    end = min(limit, len(text))
    if end < len(text) and text[end].isspace():
        return text[:end]
    floor = max(0, end - _MAX_WORD_EXTENSION)
    cut = end
    while cut > floor and not text[cut - 1].isspace():
        cut -= 1
    return text[:cut] if cut > floor else text[:end]


def _best_window_start(spans: Sequence[tuple[int, int]], forms: Sequence[str], width: int) -> int:
    """The start of the first match whose ``width``-character window (matches ending within start + width) holds
    the most distinct match forms. One pass: the window's right edge only moves forward, and ``forms`` (each match's
    lowercased text) is read at most twice per match."""
    counts: dict[str, int] = {}
    best, best_score = spans[0][0], -1
    right = 0  # the window is spans[i:right]
    for i, (start, _) in enumerate(spans):
        if right < i:
            right = i
        limit = start + width
        while right < len(spans) and spans[right][1] <= limit:
            form = forms[right]
            counts[form] = counts.get(form, 0) + 1
            right += 1
        if len(counts) > best_score:
            best, best_score = start, len(counts)
        if i < right:  # match i leaves the window
            form = forms[i]
            if counts[form] == 1:
                del counts[form]
            else:
                counts[form] -= 1
    return best


def line_snippet(text: str, query: str, analyzer: Analyzer, *, lines: int = 6, width: int = 160,
                 style: tuple[str, str] = MARKERS, max_scan: int = MAX_SCAN_CHARS) -> tuple[int, list[str]]:
    """For code and other line-oriented text: the ``lines`` consecutive lines of ``text`` with the most query-term
    matches (the first such run; the first lines when nothing matches), each cut at ``width`` characters, matches
    wrapped in ``style``. Returns (index of the first line shown, the lines). Only the first ``max_scan``
    characters are read, whatever the text's size."""
    scanned = _scan_region(text, max(max_scan, width), len(text) > max_scan)
    all_lines = scanned.split("\n")
    starts = [0]
    for line in all_lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    query_terms = set(analyzer.analyze(query)) if query else set()
    spans = ([(s, e) for s, e, terms in analyzer.term_spans(scanned) if query_terms.intersection(terms)]
             if query_terms else [])
    per_line: list[list[tuple[int, int]]] = [[] for _ in all_lines]
    for s, e in spans:
        row = bisect_right(starts, s) - 1
        per_line[row].append((s - starts[row], min(e, starts[row] + len(all_lines[row])) - starts[row]))
    first = 0
    if len(all_lines) > lines and spans:
        counts = [len(p) for p in per_line]
        window = best = sum(counts[:lines])
        for i in range(1, len(all_lines) - lines + 1):
            window += counts[i + lines - 1] - counts[i - 1]
            if window > best:
                first, best = i, window
        match = first
        while match < first + lines and not counts[match]:
            match += 1
        # one line of context above the window's first match; moving down to it keeps every match the window held
        first = min(max(first, match - 1), len(all_lines) - lines)
    out = []
    for row in range(first, min(first + lines, len(all_lines))):
        line = all_lines[row].rstrip()
        cut = len(line) > width
        pieces, pos = [], 0
        for s, e in per_line[row]:
            if e > width:
                break
            pieces.append(line[pos:s])
            pieces.append(style[0] + line[s:e] + style[1])
            pos = e
        pieces.append(line[pos:width])
        out.append("".join(pieces) + (" …" if cut else ""))
    return first, out
