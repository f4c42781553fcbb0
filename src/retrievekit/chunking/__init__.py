"""Chunking: documents into ordered spans for retrieval and RAG.

Strategies, by spec (``get_chunker``):

* ``tokens:SIZE[:OVERLAP]`` — fixed windows of SIZE tokens, consecutive windows sharing OVERLAP tokens.
* ``sentences[:MAX_TOKENS]`` — whole sentences (``split_sentences``), grouped greedily up to the budget.
* ``paragraphs[:MAX_TOKENS]`` — blank-line separated blocks, small ones merged, long ones split by sentences.
* ``markdown[:MAX_TOKENS]`` — sections at ATX/setext headings, fenced code kept whole, ``metadata["heading"]``.
* ``html[:MAX_TOKENS]`` — block elements of HTML source; ``text`` is the extracted text (see ``HTMLChunker``).
* ``semantic[:PERCENTILE[:MAX_TOKENS]]`` — cut where the embedding similarity of neighbouring sentences drops
  (needs an encoder: ``get_chunker("semantic", encoder=...)``).

Budgets are in ``count_tokens`` units (MAX_TOKENS defaults to 128: a chunk then fits a 256-wordpiece encoder window
with margin). Invariants, for every strategy but html: ``text[c.start:c.end] == c.text``; chunks are non-empty, in
document order, start and end on non-whitespace, ``index`` counts 0, 1, 2 …; every non-whitespace character lies
in some chunk; chunks overlap only under ``tokens`` with OVERLAP > 0. Whitespace-only text gives no chunks. All
strategies run in time linear in the text (up to log factors), except semantic, which also encodes each sentence.

A "word" longer than ``LONG_WORD_CHARS`` characters (a base64 blob, a hash) is budgeted as several pieces of that
length, so it cannot make a chunk arbitrarily long; ``count_tokens(chunk.text)`` never exceeds the budget.
"""

from __future__ import annotations

import bisect
import html
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from retrievekit.chunking.base import Chunk
from retrievekit.core.errors import RetrievekitError

if TYPE_CHECKING:
    from retrievekit.encoders.base import Encoder

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 128
DEFAULT_PERCENTILE = 10.0
LONG_WORD_CHARS = 50

Span = tuple[int, int]


class ChunkingError(RetrievekitError, ValueError):
    """A bad chunker spec or setting, or a document that cannot be chunked."""


# --------------------------------------------------------------------------------------------------------------
# token pieces: count_tokens units, with over-long words cut, as arrays for O(log n) counting of any span
# --------------------------------------------------------------------------------------------------------------
_PIECE = re.compile(rf"\w{{1,{LONG_WORD_CHARS}}}|[^\w\s]")


class _Pieces:
    def __init__(self, text: str) -> None:
        flat = np.fromiter((x for m in _PIECE.finditer(text) for x in m.span()), dtype=np.int64)
        self.starts = flat[0::2]
        self.ends = flat[1::2]

    def _range(self, start: int, end: int) -> Span:
        return int(np.searchsorted(self.starts, start)), int(np.searchsorted(self.starts, end))

    def count(self, start: int, end: int) -> int:
        lo, hi = self._range(start, end)
        return hi - lo

    def windows(self, start: int, end: int, size: int, overlap: int = 0) -> list[Span]:
        """Spans of consecutive windows of ``size`` pieces inside [start, end), each sharing ``overlap`` pieces
        with the previous one; the last window ends at the last piece."""
        lo, hi = self._range(start, end)
        n = hi - lo
        if n <= 0:
            return []
        step = size - overlap
        count = 1 + max(0, -(-(n - size) // step))
        first = lo + step * np.arange(count)
        last = np.minimum(first + size, hi) - 1
        return list(zip(self.starts[first].tolist(), np.minimum(self.ends[last], end).tolist()))


# --------------------------------------------------------------------------------------------------------------
# sentences, paragraphs, lines
# --------------------------------------------------------------------------------------------------------------
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


def _trimmed(text: str, cuts: Iterable[int], lo: int = 0, hi: int | None = None) -> list[Span]:
    """Spans between consecutive cuts (plus lo and hi), whitespace trimmed, empty ones dropped."""
    hi = len(text) if hi is None else hi
    spans = []
    prev = lo
    for cut in (*cuts, hi):
        if cut <= prev:
            continue
        piece = text[prev:cut]
        left = len(piece) - len(piece.lstrip())
        right = len(piece.rstrip())
        if right > left:
            spans.append((prev + left, prev + right))
        prev = cut
    return spans


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


# --------------------------------------------------------------------------------------------------------------
# packing units into chunks
# --------------------------------------------------------------------------------------------------------------
Splitter = Callable[[int, int], list[Span]]


def _pack(units: Iterable[Span], budget: int, pieces: _Pieces, splitters: Sequence[Splitter] = ()) -> list[Span]:
    """Merge consecutive units greedily while they fit ``budget``; a unit over budget is split by the first
    splitter and its parts packed among themselves (with the remaining splitters), finally by token windows."""
    out: list[Span] = []
    cur_start, cur_end, cur_n = -1, -1, 0
    for start, end in units:
        n = pieces.count(start, end)
        if n > budget:
            if cur_start >= 0:
                out.append((cur_start, cur_end))
                cur_start = -1
            if splitters:
                out.extend(_pack(splitters[0](start, end), budget, pieces, splitters[1:]))
            else:
                out.extend(pieces.windows(start, end, budget))
        elif cur_start >= 0 and cur_n + n <= budget:
            cur_end, cur_n = end, cur_n + n
        else:
            if cur_start >= 0:
                out.append((cur_start, cur_end))
            cur_start, cur_end, cur_n = start, end, n
    if cur_start >= 0:
        out.append((cur_start, cur_end))
    return out


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


# --------------------------------------------------------------------------------------------------------------
# chunkers
# --------------------------------------------------------------------------------------------------------------
class _Span(NamedTuple):
    start: int
    end: int
    metadata: dict[str, Any]


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ChunkingError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Chunker(ABC):
    """Splits documents into ``Chunk`` spans. Subclasses implement ``_spans`` (text -> ordered trimmed spans)."""

    name: str = ""

    def chunk(self, doc_id: str, text: str, metadata: dict[str, Any] | None = None) -> list[Chunk]:
        """Chunks of one document; ``metadata`` is copied into every chunk (chunker keys such as "heading" win)."""
        if not isinstance(text, str):
            raise ChunkingError(f"document {doc_id!r}: text must be a str, got {type(text).__name__}")
        if not text or text.isspace():
            return []
        base = dict(metadata or {})
        return [Chunk(doc_id, i, text[s.start : s.end], s.start, s.end, {**base, **s.metadata})
                for i, s in enumerate(self._spans(text))]

    def chunk_many(self, docs: Iterable[tuple[str, str] | tuple[str, str, dict[str, Any] | None]]) -> list[Chunk]:
        """Chunks of many documents, in order; each doc is ``(doc_id, text)`` or ``(doc_id, text, metadata)``."""
        out: list[Chunk] = []
        for doc in docs:
            out.extend(self.chunk(*doc))
        return out

    @abstractmethod
    def _spans(self, text: str) -> list[_Span]: ...

    def _params(self) -> dict[str, Any]:
        return {}

    @property
    def spec(self) -> str:
        """The ``get_chunker`` spec that rebuilds this chunker (an encoder must be passed again for semantic)."""
        return ":".join([self.name, *(str(v) for v in self._params().values())])

    def config(self) -> dict[str, Any]:
        """JSON-able settings: strategy, its parameters and the spec."""
        return {"strategy": self.name, **self._params(), "spec": self.spec}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


class TokenChunker(Chunker):
    """Windows of ``size`` tokens (``count_tokens`` units), consecutive windows sharing ``overlap`` tokens; each
    chunk starts at a token's first character and ends at a token's last one, keeping the whitespace between."""

    name = "tokens"

    def __init__(self, size: int = DEFAULT_MAX_TOKENS, overlap: int = 0) -> None:
        self.size = _positive_int(size, "tokens SIZE")
        self.overlap = _positive_int(overlap, "tokens OVERLAP", 0)
        if self.overlap >= self.size:
            raise ChunkingError(f"tokens OVERLAP must be smaller than SIZE, got OVERLAP={overlap} SIZE={size}")

    def _params(self) -> dict[str, Any]:
        return {"size": self.size, "overlap": self.overlap}

    def _spans(self, text: str) -> list[_Span]:
        return [_Span(s, e, {}) for s, e in _Pieces(text).windows(0, len(text), self.size, self.overlap)]


class SentenceChunker(Chunker):
    """Whole sentences (``split_sentences``) grouped greedily up to ``max_tokens``; a longer sentence is cut
    into token windows."""

    name = "sentences"

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = _positive_int(max_tokens, "sentences MAX_TOKENS")

    def _params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}

    def _spans(self, text: str) -> list[_Span]:
        return [_Span(s, e, {}) for s, e in _pack(split_sentences(text), self.max_tokens, _Pieces(text))]


class ParagraphChunker(Chunker):
    """Blank-line separated paragraphs, consecutive small ones merged up to ``max_tokens``, longer ones split
    into sentence groups (and over-long sentences into token windows)."""

    name = "paragraphs"

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = _positive_int(max_tokens, "paragraphs MAX_TOKENS")

    def _params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}

    def _spans(self, text: str) -> list[_Span]:
        spans = _pack(split_paragraphs(text), self.max_tokens, _Pieces(text), [_sub_spans(split_sentences, text)])
        return [_Span(s, e, {}) for s, e in spans]


_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r" {0,3}(=+|-{2,})[ \t]*$")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})(.*)$")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*$")
# YAML front matter: "---", "key: value" lines, "---" or "...", at the very start
_FRONT_MATTER = re.compile(r"---[ \t]*\r?\n[\w-]+[ \t]*:.*?\r?\n(?:---|\.\.\.)[ \t]*(?=\r?\n|\Z)", re.DOTALL)


def _markdown_blocks(text: str) -> tuple[list[_Block], _Outline]:
    """Blocks (headings, paragraphs, fenced code) and sections of a Markdown text, in one pass over its lines."""
    outline = _Outline()
    blocks: list[_Block] = []
    section = 0
    para: list[int] = []  # [start, end] of the open paragraph
    fence: tuple[str, int, int, int] | None = None  # (char, length, block start, last non-blank end)
    front = _FRONT_MATTER.match(text)
    if front:
        blocks.append(_Block(0, front.end(), "code", section))

    for ls, le in _lines(text, front.end() if front else 0):
        first = _NONSPACE.search(text, ls, le)
        if first is None:
            if para:
                blocks.append(_Block(para[0], para[1], "text", section))
                para = []
            continue
        line_end = ls + len(text[ls:le].rstrip())
        if fence is not None:
            close = _FENCE_CLOSE.match(text, ls, le)
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= fence[1]:
                blocks.append(_Block(fence[2], line_end, "code", section))
                fence = None
            else:
                fence = (fence[0], fence[1], fence[2], line_end)
            continue
        opened = _FENCE_OPEN.match(text, ls, le)
        if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
            if para:
                blocks.append(_Block(para[0], para[1], "text", section))
                para = []
            fence = (opened.group(1)[0], len(opened.group(1)), first.start(), line_end)
            continue
        atx = _ATX.match(text, ls, le)
        if atx:
            if para:
                blocks.append(_Block(para[0], para[1], "text", section))
                para = []
            section = outline.open(len(atx.group(1)), (atx.group(2) or "").strip())
            blocks.append(_Block(first.start(), line_end, "heading", section))
            continue
        setext = _SETEXT.match(text, ls, le) if para else None
        if setext:
            title = " ".join(text[para[0] : para[1]].split())
            section = outline.open(1 if setext.group(1)[0] == "=" else 2, title)
            blocks.append(_Block(para[0], line_end, "heading", section))
            para = []
            continue
        if para:
            para[1] = line_end
        else:
            para = [first.start(), line_end]
    if fence is not None:  # an unclosed fence runs to the end of the document
        blocks.append(_Block(fence[2], fence[3], "code", section))
    if para:
        blocks.append(_Block(para[0], para[1], "text", section))
    return blocks, outline


def _structure_splitters(text: str) -> dict[str, Sequence[Splitter]]:
    return {"text": [_sub_spans(split_sentences, text)], "code": [_sub_spans(_split_lines, text)], "heading": []}


class MarkdownChunker(Chunker):
    """Structure-aware Markdown: chunks start at ATX (``## x``) and setext (underlined) headings; a section and
    its subsections share a chunk when they fit ``max_tokens``, siblings never do; a heading stays with its first
    block; fenced code blocks are kept whole when they fit (else split by lines); longer sections are split by
    paragraphs, then sentences. ``metadata["heading"]`` is the heading path, e.g. ``"Guide > Install"`` ("" before
    the first heading)."""

    name = "markdown"

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = _positive_int(max_tokens, "markdown MAX_TOKENS")

    def _params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}

    def _spans(self, text: str) -> list[_Span]:
        blocks, outline = _markdown_blocks(text)
        packed = _pack_structured(blocks, outline, self.max_tokens, _Pieces(text), _structure_splitters(text))
        return [_Span(s, e, {"heading": head}) for s, e, head in packed]


# --------------------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------------------
_BLOCK_TAGS = frozenset(
    "address article aside blockquote body caption center dd details dialog dir div dl dt fieldset figcaption "
    "figure footer form frameset header hgroup hr html legend li main menu nav ol option p section summary table "
    "tbody tfoot thead title tr ul h1 h2 h3 h4 h5 h6 pre".split())
_SPACE_TAGS = frozenset({"br", "td", "th", "wbr", "img", "input"})
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg"})
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
# the same references html.unescape resolves, so each can be mapped back to its source span
_CHARREF = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")
_CHARREF_OR_SPACE = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)|\s{2,}|[^\S ]")


class HTMLText:
    """Text extracted from HTML source, with the way back to the source.

    ``text`` holds one line per block element (h1-h6, p, li, tr, pre, div …); inside a block, whitespace runs
    become one space (kept verbatim in ``pre``) and character references are resolved; script, style, noscript,
    template and svg content is dropped. ``source_start(i)`` / ``source_end(j)`` map text offsets to source
    offsets; ``runs`` are the (text start, text end) of each text run (text between two tags) in ``text``.
    """

    def __init__(self, source: str) -> None:
        self.source = source
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
        self._section = 0
        self._block_start = -1  # text offset of the open block's first character, -1 if none
        self._block_part = 0  # index in _parts where the open block starts
        self._pending_space: tuple[int, int] | None = None
        self._run_start: int | None = None
        self._skip = 0
        self._pre = 0
        self._heading = 0
        _Extractor(self).run()
        self.text = "".join(self._parts)
        del self._parts

    # -- building ------------------------------------------------------------------------------------------------
    def _append(self, text: str, start: int, end: int, copy: bool) -> None:
        if self._block_start < 0:
            if self.length:
                self._parts.append("\n")
                self.length += 1
            self._block_start = self.length
            self._block_part = len(self._parts)
        elif self._pending_space is not None:
            start_ws, end_ws = self._pending_space
            self._segment(" ", start_ws, end_ws, self.source[start_ws:end_ws] == " ")
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

    def _space(self, start: int, end: int) -> None:
        if self._block_start >= 0:
            self._pending_space = (start, end)

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
        if self._skip or end <= start:
            return
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

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pos = self._event()
        out = self.out
        if tag in _SKIP_TAGS:
            out._skip += 1
        elif tag in _BLOCK_TAGS:
            out.end_block()
            out._heading = _HEADINGS.get(tag, 0)  # headings hold no blocks: a block start ends an unclosed one
            if tag == "pre":
                out._pre += 1
        elif tag in _SPACE_TAGS:
            out._space(pos, pos)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pos = self._event()
        if tag in _BLOCK_TAGS:
            self.out.end_block()
        elif tag in _SPACE_TAGS:
            self.out._space(pos, pos)

    def handle_endtag(self, tag: str) -> None:
        pos = self._event()
        out = self.out
        if tag in _SKIP_TAGS:
            out._skip = max(0, out._skip - 1)
        elif tag in _BLOCK_TAGS:
            out.end_block()
            if tag in _HEADINGS:
                out._heading = 0
            elif tag == "pre":
                out._pre = max(0, out._pre - 1)
        elif tag in _SPACE_TAGS:
            out._space(pos, pos)

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


class HTMLChunker(Chunker):
    """Structure-aware HTML, chunked like Markdown over the blocks of ``HTMLText``.

    The one strategy where ``Chunk.text`` is not a slice of the document: ``text`` is the extracted text (tags
    dropped, references resolved, whitespace collapsed), ``start``/``end`` is the source span from the first to the
    last character it came from, and ``metadata`` holds ``"source_spans"`` (the source span of each text run in
    the chunk: ``html.unescape(source[a:b])`` gives its text up to whitespace), ``"text_start"``/``"text_end"``
    (offsets into ``HTMLText(source).text``) and ``"heading"`` (the h1-h6 path).
    """

    name = "html"

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.max_tokens = _positive_int(max_tokens, "html MAX_TOKENS")

    def _params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}

    def chunk(self, doc_id: str, text: str, metadata: dict[str, Any] | None = None) -> list[Chunk]:
        if not isinstance(text, str):
            raise ChunkingError(f"document {doc_id!r}: text must be a str, got {type(text).__name__}")
        if not text or text.isspace():
            return []
        extracted = HTMLText(text)
        base = dict(metadata or {})
        return [Chunk(doc_id, i, extracted.text[s.start : s.end], extracted.source_start(s.start),
                      extracted.source_end(s.end), {**base, **s.metadata})
                for i, s in enumerate(self._extracted_spans(extracted))]

    def _extracted_spans(self, extracted: HTMLText) -> list[_Span]:
        text = extracted.text
        blocks: list[_Block] = []
        for b in extracted.blocks:  # trim: a pre block may start or end with whitespace
            blocks.extend(_Block(s, e, b.kind, b.section) for s, e in _trimmed(text, (), b.start, b.end))
        packed = _pack_structured(blocks, extracted.outline, self.max_tokens, _Pieces(text),
                                  _structure_splitters(text))
        return [_Span(s, e, {"heading": head, "source_spans": extracted.source_spans(s, e), "text_start": s,
                             "text_end": e}) for s, e, head in packed]

    def _spans(self, text: str) -> list[_Span]:
        return self._extracted_spans(HTMLText(text))


# --------------------------------------------------------------------------------------------------------------
# semantic
# --------------------------------------------------------------------------------------------------------------
def gap_similarities(embeddings: np.ndarray, window: int = 2) -> np.ndarray:
    """Cosine similarity, at each gap between consecutive sentences, of the mean embedding of the ``window``
    sentences before the gap and of the ``window`` after it: (n - 1,) float32. A zero vector counts as similar."""
    n = len(embeddings)
    if n < 2:
        return np.zeros(0, dtype=np.float32)
    emb = np.asarray(embeddings, dtype=np.float64)
    cum = np.vstack([np.zeros((1, emb.shape[1])), np.cumsum(emb, axis=0)])
    gap = np.arange(n - 1)
    left = cum[gap + 1] - cum[np.maximum(0, gap + 1 - window)]
    right = cum[np.minimum(n, gap + 1 + window)] - cum[gap + 1]
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    dots = np.einsum("ij,ij->i", left, right)
    sims = np.ones(n - 1)
    np.divide(dots, norms, out=sims, where=norms > 1e-12)
    return sims.astype(np.float32)


class SemanticChunker(Chunker):
    """Sentences grouped into topical chunks: cut where the similarity of neighbouring sentences drops.

    Each gap between sentences gets the cosine of the mean embeddings of the ``window`` (2) sentences on either side
    (windows smooth single odd sentences). A gap below the ``percentile`` (10) of the document's gap similarities
    is a topic break — unless the text around it fits ``max_tokens`` (128) and a side would be shorter than
    ``min_tokens`` (default max_tokens // 4), so short coherent documents stay whole. A stretch over budget is cut
    at its least similar gap (preferring gaps that leave both sides >= min_tokens), recursively; a single
    sentence over budget becomes token windows. ``chunk_many`` encodes the sentences of all documents in one batch.
    """

    name = "semantic"

    def __init__(self, encoder: Encoder, percentile: float = DEFAULT_PERCENTILE,
                 max_tokens: int = DEFAULT_MAX_TOKENS, *, window: int = 2, min_tokens: int | None = None,
                 batch_size: int = 64) -> None:
        if encoder is None or not callable(getattr(encoder, "encode_documents", None)):
            raise ChunkingError("the semantic chunker needs an encoder: SemanticChunker(encoder) or "
                                "get_chunker('semantic', encoder=...)")
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 <= percentile <= 100:
            raise ChunkingError(f"semantic PERCENTILE must be a number in [0, 100], got {percentile!r}")
        self.encoder = encoder
        self.percentile = float(percentile)
        self.max_tokens = _positive_int(max_tokens, "semantic MAX_TOKENS")
        self.window = _positive_int(window, "semantic window")
        self.min_tokens = (max(1, self.max_tokens // 4) if min_tokens is None
                           else _positive_int(min_tokens, "semantic min_tokens", 0))
        self.batch_size = _positive_int(batch_size, "batch_size")

    def _params(self) -> dict[str, Any]:
        return {"percentile": self.percentile, "max_tokens": self.max_tokens}

    def config(self) -> dict[str, Any]:
        spec = self.encoder.spec() if callable(getattr(self.encoder, "spec", None)) else repr(self.encoder)
        return {**super().config(), "window": self.window, "min_tokens": self.min_tokens, "encoder": spec}

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.asarray(self.encoder.encode_documents(texts, batch_size=self.batch_size), dtype=np.float32)

    def _spans(self, text: str) -> list[_Span]:
        sentences = split_sentences(text)
        emb = self._encode([text[s:e] for s, e in sentences]) if len(sentences) > 1 else None
        return self._split(text, sentences, emb)

    def chunk_many(self, docs: Iterable[tuple[str, str] | tuple[str, str, dict[str, Any] | None]]) -> list[Chunk]:
        prepared = []
        texts: list[str] = []
        for doc in docs:
            doc_id, text = doc[0], doc[1]
            meta = doc[2] if len(doc) > 2 else None
            if not isinstance(text, str):
                raise ChunkingError(f"document {doc_id!r}: text must be a str, got {type(text).__name__}")
            sentences = split_sentences(text)
            offset = len(texts)
            if len(sentences) > 1:
                texts.extend(text[s:e] for s, e in sentences)
            prepared.append((doc_id, text, meta, sentences, offset))
        emb = self._encode(texts)
        out: list[Chunk] = []
        for doc_id, text, meta, sentences, offset in prepared:
            doc_emb = emb[offset : offset + len(sentences)] if len(sentences) > 1 else None
            base = dict(meta or {})
            out.extend(Chunk(doc_id, i, text[s.start : s.end], s.start, s.end, {**base, **s.metadata})
                       for i, s in enumerate(self._split(text, sentences, doc_emb)))
        return out

    def _split(self, text: str, sentences: list[Span], emb: np.ndarray | None) -> list[_Span]:
        if not sentences:
            return []
        pieces = _Pieces(text)
        budget = self.max_tokens
        if emb is None or len(sentences) < 2:
            return [_Span(s, e, {}) for s, e in _pack(sentences, budget, pieces)]
        counts = np.array([pieces.count(s, e) for s, e in sentences], dtype=np.int64)
        prefix = np.concatenate([[0], np.cumsum(counts)])
        sims = gap_similarities(emb, self.window)
        threshold = float(np.percentile(sims, self.percentile)) if self.percentile > 0 else -np.inf
        out: list[Span] = []
        stack = [(0, len(sentences))]  # sentence ranges [i, j), processed left to right
        while stack:
            i, j = stack.pop()
            total = int(prefix[j] - prefix[i])
            if j - i == 1:
                s, e = sentences[i]
                out.extend(pieces.windows(s, e, budget) if total > budget else [(s, e)])
                continue
            gaps = sims[i : j - 1]  # gap g sits between sentence i+g and i+g+1
            left = prefix[i + 1 : j] - prefix[i]
            right = prefix[j] - prefix[i + 1 : j]
            balanced = (left >= self.min_tokens) & (right >= self.min_tokens)
            if total <= budget:
                candidates = balanced & (gaps < threshold)
                if not candidates.any():
                    out.append((sentences[i][0], sentences[j - 1][1]))
                    continue
            else:
                candidates = balanced if balanced.any() else np.ones(len(gaps), dtype=bool)
            g = int(np.argmin(np.where(candidates, gaps, np.inf)))
            stack.append((i + g + 1, j))
            stack.append((i, i + g + 1))
        return [_Span(s, e, {}) for s, e in out]


# --------------------------------------------------------------------------------------------------------------
# specs
# --------------------------------------------------------------------------------------------------------------
ChunkerFactory = Callable[[list[str], "Encoder | None"], Chunker]


def _int_arg(args: list[str], i: int, what: str, default: int) -> int:
    if i >= len(args) or args[i] == "":
        return default
    try:
        return int(args[i])
    except ValueError:
        raise ChunkingError(f"{what} must be an integer, got {args[i]!r}") from None


def _float_arg(args: list[str], i: int, what: str, default: float) -> float:
    if i >= len(args) or args[i] == "":
        return default
    try:
        return float(args[i])
    except ValueError:
        raise ChunkingError(f"{what} must be a number, got {args[i]!r}") from None


def _budget_factory(cls: Callable[[int], Chunker], name: str) -> ChunkerFactory:
    def make(args: list[str], encoder: Encoder | None) -> Chunker:
        return cls(_int_arg(args, 0, f"{name} MAX_TOKENS", DEFAULT_MAX_TOKENS))
    return make


def _tokens(args: list[str], encoder: Encoder | None) -> Chunker:
    return TokenChunker(_int_arg(args, 0, "tokens SIZE", DEFAULT_MAX_TOKENS), _int_arg(args, 1, "tokens OVERLAP", 0))


def _semantic(args: list[str], encoder: Encoder | None) -> Chunker:
    if encoder is None:
        raise ChunkingError("the semantic chunker needs an encoder: get_chunker('semantic', encoder=...)")
    return SemanticChunker(encoder, _float_arg(args, 0, "semantic PERCENTILE", DEFAULT_PERCENTILE),
                           _int_arg(args, 1, "semantic MAX_TOKENS", DEFAULT_MAX_TOKENS))


# name -> (factory, max number of ':' arguments, usage)
_CHUNKERS: dict[str, tuple[ChunkerFactory, int, str]] = {
    "tokens": (_tokens, 2, "tokens:SIZE[:OVERLAP]"),
    "sentences": (_budget_factory(SentenceChunker, "sentences"), 1, "sentences[:MAX_TOKENS]"),
    "paragraphs": (_budget_factory(ParagraphChunker, "paragraphs"), 1, "paragraphs[:MAX_TOKENS]"),
    "markdown": (_budget_factory(MarkdownChunker, "markdown"), 1, "markdown[:MAX_TOKENS]"),
    "html": (_budget_factory(HTMLChunker, "html"), 1, "html[:MAX_TOKENS]"),
    "semantic": (_semantic, 2, "semantic[:PERCENTILE[:MAX_TOKENS]]"),
}


def register_chunker(name: str, factory: ChunkerFactory, max_args: int, usage: str) -> None:
    """Make ``get_chunker("NAME:ARG…")`` build ``factory(args, encoder)``."""
    _CHUNKERS[name.lower()] = (factory, max_args, usage)


def get_chunker(spec: str | Chunker, *, encoder: Encoder | None = None) -> Chunker:
    """A chunker from a spec such as ``"tokens:256:32"``, ``"sentences"``, ``"markdown:200"``,
    ``"semantic:10:128"`` (with ``encoder=``); a Chunker is returned as is. Bad specs raise ChunkingError naming
    the bad part and the accepted forms."""
    if isinstance(spec, Chunker):
        return spec
    usages = ", ".join(u for _, _, u in _CHUNKERS.values())
    if not isinstance(spec, str) or not spec.strip():
        raise ChunkingError(f"a chunker spec must be a non-empty string such as {usages}; got {spec!r}")
    name, *args = [part.strip() for part in spec.strip().split(":")]
    entry = _CHUNKERS.get(name.lower())
    if entry is None:
        raise ChunkingError(f"unknown chunking strategy {name!r} in spec {spec!r}; choose one of: {usages}")
    factory, max_args, usage = entry
    if len(args) > max_args:
        extra = ":".join(args[max_args:])
        raise ChunkingError(f"chunker spec {spec!r} has too many parts ({extra!r}); expected {usage}")
    try:
        return factory(args, encoder)
    except ChunkingError as exc:
        raise ChunkingError(f"bad chunker spec {spec!r} ({usage}): {exc}") from None
