"""The rule-based sentence splitter, and paragraph and line splitting: text -> character spans, whitespace trimmed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from retrievekit.chunking.base import Span, _trimmed

_LB_CHARS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines() breaks at
_LB = r"(?:\r\n|\r(?!\n)|[\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029])"
_HSPACE = r"[^\S\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"
_LINE_BREAK = re.compile(f"[{_LB_CHARS}]")
_PARAGRAPH_BREAK = re.compile(rf"{_LB}(?:{_HSPACE}*{_LB})+")
_LINE = re.compile(rf"([^{_LB_CHARS}]*)(?:\r\n|[{_LB_CHARS}]|\Z)")
_NONSPACE = re.compile(r"\S")

_CLOSERS = "\"'”’»)]}」』›"
_OPENERS = "\"'“‘«([{「『‹"
_CJK_STOPS = "。！？"
_TERMINATOR = re.compile(r"([.!?…‽]+|[。！？]+)([\"'”’»)\]}」』›]*)")
_INITIALISM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # U.S, p.m, e.g-like letter-dot runs (final dot excluded)
_LEADING_WORD = re.compile(r"\w+")

# Abbreviations (lower case, without the final dot) that never end a sentence: titles and "for example" words.
_NEVER_END = frozenset(
    "mr mrs ms mx dr prof st mt ft gen col capt cmdr lt sgt rev hon gov sen rep pres messrs mme mlle "
    "e.g i.e eg ie cf vs viz approx ca resp incl esp".split())
# Abbreviations that end a sentence only when the next word is capitalised ("etc. The" vs "Fig. 3", "et al. (2020)").
_END_IF_CAPITAL = frozenset(
    "etc inc ltd co corp jr sr al bros dept univ assn fig figs no nos vol vols eq eqs sec ch pp p ed eds op "
    "jan feb mar apr jun jul aug sep sept oct nov dec est".split())
# After an initial or initialism ("J. Smith", "the U.S. Army") only these capitalised words start a new sentence.
_SENTENCE_STARTERS = frozenset(
    "The A An This That These Those It Its He She They We I You In On At But And So If When There Here As For "
    "After Before However Also Then Now Our His Her Their My What Why How Who Where Some Many Most All No Not One "
    "Each Since While Although Yet Thus To By From With".split())



def _word_before(text: str, pos: int) -> str:
    i = pos
    while i > 0 and not text[i - 1].isspace():
        i -= 1
    return text[i:pos].lstrip(_OPENERS)


def _next_word(text: str, pos: int) -> str:
    """Up to 40 characters of the next word after ``pos``, opening quotes/brackets skipped ("" at the end)."""
    n = len(text)
    while pos < n and text[pos].isspace():
        pos += 1
    while pos < n and text[pos] in _OPENERS:
        pos += 1
    return text[pos : pos + 40]


def _at_line_start(text: str, pos: int) -> bool:
    while pos > 0 and text[pos - 1] in " \t":
        pos -= 1
    return pos == 0 or text[pos - 1] in _LB_CHARS


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    term, closers = match.group(1), match.group(2)
    following = _next_word(text, match.end())
    if not following:
        return True
    if any(ch in term for ch in "?!‽"):
        # '"Why?" she asked.' continues the sentence; a bare "?" ends it whatever follows.
        return not (closers and following[0].islower())
    if len(term) > 1 or term == "…":  # an ellipsis ends a sentence only before a capital
        return following[0].isupper()
    word = _word_before(text, match.start())
    if not word:
        return True
    key = word.lower()
    if key in _NEVER_END:
        return False
    if key in _END_IF_CAPITAL:
        return following[0].isupper()
    if (len(word) == 1 and word.isupper()) or _INITIALISM.fullmatch(word):
        lead = _LEADING_WORD.match(following)
        return lead is not None and lead.group() in _SENTENCE_STARTERS
    # "1. First step" at a line start is a list marker
    return not (len(word) <= 3 and word.isdigit() and _at_line_start(text, match.start() - len(word)))


def split_sentences(text: str, *, hard_newlines: bool = True) -> list[Span]:
    """Character spans of the sentences of ``text``, whitespace trimmed, in order, covering all non-whitespace.

    Rule-based: a sentence ends at ``.``, ``!``, ``?``, ``…`` (or CJK ``。！？``) plus any closing quotes or
    brackets, followed by whitespace — except after abbreviations (``e.g.``, ``Dr.``, ``etc.`` before a lower-case
    word, initials and initialisms like ``J.`` and ``U.S.`` unless a typical sentence opener follows), inside
    numbers (``3.5``), at list markers (``1.`` at a line start) and at ellipses before a lower-case word. Every line
    break is a hard break (with ``hard_newlines=False`` only blank lines are, for hard-wrapped prose).
    """
    n = len(text)
    cuts = []
    for m in _TERMINATOR.finditer(text):
        end = m.end()
        cjk = m.group(1)[0] in _CJK_STOPS  # CJK stops need no space after them
        if cjk or ((end == n or text[end].isspace()) and _is_boundary(text, m)):
            cuts.append(end)
    breaks = _LINE_BREAK if hard_newlines else _PARAGRAPH_BREAK
    cuts.extend(m.start() for m in breaks.finditer(text))
    cuts.sort()
    return _trimmed(text, cuts)


def split_paragraphs(text: str) -> list[Span]:
    """Spans of the blank-line separated blocks of ``text``, whitespace trimmed."""
    return _trimmed(text, [m.start() for m in _PARAGRAPH_BREAK.finditer(text)])


def _lines(text: str, pos: int = 0) -> Iterable[Span]:
    """(start, end) of each line's content from ``pos`` on, line breaks excluded."""
    for m in _LINE.finditer(text, pos):
        yield m.start(), m.end(1)


def _sub_spans(splitter: Callable[[str], list[Span]], text: str) -> Callable[[int, int], list[Span]]:
    def split(start: int, end: int) -> list[Span]:
        return [(start + a, start + b) for a, b in splitter(text[start:end])]
    return split


def _split_lines(text: str) -> list[Span]:
    return _trimmed(text, [m.start() for m in _LINE_BREAK.finditer(text)])

