"""Chunking: documents into ordered spans for retrieval and RAG.

Strategies, by spec (``get_chunker``):

* ``tokens:SIZE[:OVERLAP]`` — fixed windows of SIZE tokens, consecutive windows sharing OVERLAP tokens.
* ``sentences[:MAX_TOKENS]`` — whole sentences (``split_sentences``), grouped greedily up to the budget.
* ``paragraphs[:MAX_TOKENS]`` — blank-line separated blocks, small ones merged, long ones split by sentences.
* ``markdown[:MAX_TOKENS]`` — sections at ATX/setext headings, fenced code kept whole, ``metadata["heading"]``.
* ``html[:MAX_TOKENS]`` — block elements of HTML source; ``text`` is the extracted text (see ``HTMLChunker``).
* ``semantic[:PERCENTILE[:MAX_TOKENS]]`` — cut where the embedding similarity of neighbouring sentences drops
  (needs an encoder: ``get_chunker("semantic", encoder=...)``).
* ``code[:MAX_LINES]`` — functions, methods and classes of source code by tree-sitter, the language taken from the
  document's path (``chunking.code``; extra ``code``). Its chunks cover whole lines, so the invariants below that
  speak of whitespace at chunk edges do not hold for it.

Budgets are in ``count_tokens`` units (MAX_TOKENS defaults to 128: a chunk then fits a 256-wordpiece encoder window
with margin). Invariants, for every strategy but html: ``text[c.start:c.end] == c.text``; chunks are non-empty, in
document order, start and end on non-whitespace, ``index`` counts 0, 1, 2 …; every non-whitespace character lies
in some chunk; chunks overlap only under ``tokens`` with OVERLAP > 0. Whitespace-only text gives no chunks. All
strategies run in time linear in the text (up to log factors), except semantic, which also encodes each sentence.

A "word" longer than ``LONG_WORD_CHARS`` characters (a base64 blob, a hash) is budgeted as several pieces of that
length, so it cannot make a chunk arbitrarily long; ``count_tokens(chunk.text)`` never exceeds the budget.

Modules, one concern each: ``base`` (Chunk, Chunker, ChunkingError, token counting and packing), ``sentences`` (the
rule-based sentence splitter), ``text`` (tokens, sentences, paragraphs), ``structure`` (section-aware packing),
``markdown``, ``html_text`` (the HTML-to-text extractor, shared with the ``files`` reader), ``html``, ``semantic`` and
``registry`` (specs -> chunkers, through ``retrievekit.core.registry``).
"""

from __future__ import annotations

from retrievekit.chunking.base import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_PERCENTILE,
    LONG_WORD_CHARS,
    TOKEN_PATTERN,
    Chunk,
    Chunker,
    ChunkingError,
    Span,
    Splitter,
    _pack,
    _Pieces,
    _positive_int,
    _Span,
    _trimmed,
    count_tokens,
)
from retrievekit.chunking.html import HTMLChunker
from retrievekit.chunking.html_text import HTMLText
from retrievekit.chunking.markdown import MarkdownChunker
from retrievekit.chunking.registry import CHUNKERS, ChunkerFactory, get_chunker, register_chunker
from retrievekit.chunking.semantic import SemanticChunker, gap_similarities
from retrievekit.chunking.sentences import split_paragraphs, split_sentences
from retrievekit.chunking.text import ParagraphChunker, SentenceChunker, TokenChunker

__all__ = [
    "CHUNKERS",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_PERCENTILE",
    "LONG_WORD_CHARS",
    "TOKEN_PATTERN",
    "Chunk",
    "Chunker",
    "ChunkerFactory",
    "ChunkingError",
    "HTMLChunker",
    "HTMLText",
    "MarkdownChunker",
    "ParagraphChunker",
    "SemanticChunker",
    "SentenceChunker",
    "Span",
    "Splitter",
    "TokenChunker",
    "_Pieces",
    "_Span",
    "_pack",
    "_positive_int",
    "_trimmed",
    "count_tokens",
    "gap_similarities",
    "get_chunker",
    "register_chunker",
    "split_paragraphs",
    "split_sentences",
]
