"""Snippets and highlighting: the same output as the straightforward window search on ordinary texts, and work that
is linear and bounded on hostile ones (counted, not timed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import FIXTURES

from retrievekit.analysis import Analyzer, get_analyzer, highlight
from retrievekit.analysis.highlight import MAX_SCAN_CHARS, snippet
from retrievekit.service.search import html_snippet

ANALYZER = get_analyzer("lucene-english")


def reference_snippet(text: str, query: str, analyzer: Analyzer, *, width: int = 240,
                      style: tuple[str, str] = ("[", "]")) -> str:
    """The former quadratic implementation: for every match, the distinct matches within ``width`` after it."""
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
        while lo > 0 and not text[lo - 1].isspace() and best - lo < width // 2:
            lo -= 1
        while hi < len(text) and not text[hi].isspace():
            hi += 1
    out, pos = [], lo
    for s, e in spans:
        if s < lo or e > hi:
            continue
        out += [text[pos:s], style[0] + text[s:e] + style[1]]
        pos = e
    out.append(text[pos:hi])
    return ("… " if lo > 0 else "") + " ".join("".join(out).split()) + (" …" if hi < len(text) else "")


def fixture_texts() -> list[str]:
    lines = (FIXTURES / "lucene_english_tokens.jsonl").read_text("utf-8").split("\n")
    return [json.loads(line)["text"] for line in lines if line]


@pytest.mark.parametrize("width", [40, 120, 240])
def test_same_snippets_as_the_reference_on_real_texts(width: int) -> None:
    texts = [t for t in fixture_texts() if len(t) > 20]
    assert len(texts) > 300
    queries = ["the running dogs", "protein cell", "search engine ranking", "a", "zebrafish"]
    diffs = [(t[:60], q) for t in texts for q in queries
             if snippet(t, q, ANALYZER, width=width) != reference_snippet(t, q, ANALYZER, width=width)]
    assert diffs == []


WORDS = ["cat", "cats", "Cat", "dog", "running", "runs", "the", "a", "zebra", "x", "antidisestablishment", "\n"]


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.sampled_from(WORDS), max_size=120), query=st.lists(st.sampled_from(WORDS), max_size=3),
       width=st.integers(5, 120))
def test_property_same_snippets_as_the_reference(words: list[str], query: list[str], width: int) -> None:
    text, q = " ".join(words), " ".join(query)
    assert snippet(text, q, ANALYZER, width=width) == reference_snippet(text, q, ANALYZER, width=width)


class CountingAnalyzer(Analyzer):
    """Counts the characters handed to analysis."""

    def __init__(self, inner: Analyzer) -> None:
        self.inner, self.chars = inner, 0

    def tokenize(self, text: str) -> list[str]:
        return self.inner.tokenize(text)

    def normalize(self, token: str) -> str:
        return self.inner.normalize(token)

    def analyze(self, text: str) -> list[str]:
        self.chars += len(text)
        return self.inner.analyze(text)

    def term_spans(self, text: str) -> list[tuple[int, int, list[str]]]:
        self.chars += len(text)
        return self.inner.term_spans(text)

    def config(self) -> dict[str, Any]:
        return self.inner.config()


def test_analysed_characters_are_bounded() -> None:
    """The 300 KB and 20 MB documents of the report analyse at most MAX_SCAN_CHARS characters per snippet."""
    for repeats in (30_000, 2_000_000):
        text = "zebrafish " * repeats
        counting = CountingAnalyzer(ANALYZER)
        out = snippet(text, "zebrafish", counting)
        assert counting.chars <= MAX_SCAN_CHARS + len("zebrafish")
        assert out.startswith("[zebrafish]") and out.endswith(" …") and len(out) < 400


def test_no_space_text_window_stays_bounded() -> None:
    out = snippet("z" * 5_000_000, "zebrafish", ANALYZER, width=100)
    assert len(out) < 200 and out.endswith(" …")
    out = snippet("zebrafish " + "q" * 5_000_000, "zebrafish", ANALYZER, width=100)
    assert out.startswith("[zebrafish]") and len(out) < 250


class CountingList(list):  # type: ignore[type-arg]
    reads = 0

    def __getitem__(self, index: Any) -> Any:
        CountingList.reads += 1
        return super().__getitem__(index)


@pytest.mark.parametrize("matches", [2_000, 4_000, 8_000])
def test_window_search_is_linear_in_matches(matches: int) -> None:
    """The report's 2k/4k/8k matches: each match's text is read at most twice (the former code read O(n²))."""
    spans = [(10 * i, 10 * i + 9) for i in range(matches)]
    forms = CountingList(f"w{i % 7}" for i in range(matches))
    CountingList.reads = 0
    best = highlight._best_window_start(spans, forms, 240)
    assert best == 0 and CountingList.reads <= 2 * matches


def test_truncated_text_ends_with_an_ellipsis_and_no_half_word() -> None:
    head = "alpha " * 10 + "zebrafi"  # the caller cut "zebrafish" in half
    out = snippet(head, "zebrafi", ANALYZER, width=500, truncated=True, max_scan=40)
    assert out.endswith(" …") and "[" not in out


def test_html_snippet_of_a_huge_document_is_bounded() -> None:
    text = "zebrafish \ue000 " * 3_000_000
    counting = CountingAnalyzer(ANALYZER)
    out = html_snippet(text, "zebrafish", counting)
    assert out.startswith("<mark>zebrafish</mark>") and out.endswith(" …") and "\ue000" not in out
    assert counting.chars <= MAX_SCAN_CHARS + len("zebrafish")
