"""Long whole documents narrowed to their passages that bear on the question, before context selection.

A collection that stores whole documents (no ``passages=``) retrieves a 20-page PDF as one passage: larger than the
default token budget (the selector would drop it and the answer would be "I don't know"), and citable only by all
its pages. ``focus_long_documents`` cuts each retrieved document longer than ``LONG_DOCUMENT_TOKENS`` into the
chunks a passage collection would store (``FOCUS_CHUNKER``, page by page for a paged document, as the writer does),
scores them against the question with the compressor's lexical BM25, and keeps the best ones, up to
``FOCUS_TOKENS``, best first. Each kept chunk is an exact slice of its document (``start``/``end``) with the
document's score, so the selector still ranks documents by retrieval, and a citation names the chunk's page.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrievekit.chunking import get_chunker
from retrievekit.core.provenance import Provenance
from retrievekit.rag.compression import SentenceCompressor
from retrievekit.rag.locations import document_lines
from retrievekit.rag.types import Passage, count_tokens

__all__ = ["FOCUS_CHUNKER", "FOCUS_TOKENS", "LONG_DOCUMENT_TOKENS", "focus_long_documents"]

LONG_DOCUMENT_TOKENS = 512  # longer whole documents are narrowed (half the default 1,024-token budget)
FOCUS_TOKENS = 256  # what is kept of each: a few of them still fit the default budget
FOCUS_CHUNKER = "sentences:128"  # the README's passage collection for documents


def _narrowable(p: Passage) -> bool:
    """A whole document, not a code symbol (a unit already, cited by its lines: split by the code chunker)."""
    return p.spans is None and p.start == 0 and p.id == p.doc_id and document_lines(p.metadata) is None


def focus_long_documents(question: str, passages: Sequence[Passage], scorer: SentenceCompressor, *,
                         long_tokens: int = LONG_DOCUMENT_TOKENS, keep_tokens: int = FOCUS_TOKENS) -> list[Passage]:
    """``passages`` with each whole document of more than ``long_tokens`` tokens replaced by its chunks that score
    best against ``question`` (``scorer.score``), at most ``keep_tokens`` tokens of them (at least the best one),
    best first (ties: the earlier chunk). Passages of passage collections, compressed passages, short documents and
    documents located by lines (code symbols) are kept as they are."""
    out: list[Passage] = []
    chunker = None
    for p in passages:
        if not _narrowable(p) or count_tokens(p.text) <= long_tokens:
            out.append(p)
            continue
        chunker = chunker or get_chunker(FOCUS_CHUNKER)
        provenance = Provenance(p.metadata)
        spans = [(c.start, c.end) for c in chunker.chunk_regions(p.doc_id, p.text, provenance.regions(len(p.text)))]
        if len(spans) <= 1:
            out.append(p)
            continue
        texts = [p.text[s:e] for s, e in spans]
        scores = scorer.score(question, texts)
        used = 0
        for i in np.argsort(-scores, kind="stable"):
            cost = count_tokens(texts[i])
            if used and used + cost > keep_tokens:
                break
            used += cost
            s, e = spans[i]
            # the chunk's own page and heading; the document's span lists stay with the document
            out.append(Passage(id=f"{p.doc_id}#{i}", doc_id=p.doc_id, text=texts[i], score=p.score, start=s, end=e,
                               title=p.title, metadata=provenance.passage_metadata(s, e), flags=list(p.flags)))
    return out
