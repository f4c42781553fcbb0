"""Extractive compression ("focus mode"): keep only the sentences of each passage that bear on the question.

RECOMP-style extractive compression without a trained model: sentences are scored against the question, either
lexically (BM25 over the sentences, with the stemming and stop words of an analyzer) or densely (cosine of encoder
embeddings), and the best ones are kept. Nothing is rewritten: every kept piece is an exact substring of the
document, ``Passage.spans`` holds its document offsets, and ``Passage.text`` is the kept pieces joined by one
space, in document order — so citations can point back at the exact source text.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from retrievekit.analysis import Analyzer, get_analyzer
from retrievekit.chunking import split_sentences
from retrievekit.core.errors import RetrievekitError
from retrievekit.core.registry import Registry, registry
from retrievekit.rag.types import Passage, count_tokens

logger = logging.getLogger(__name__)

__all__ = ["COMPRESSORS", "CompressionError", "Sentence", "SentenceCompressor", "parse_compressor"]

EmbedFn = Callable[[Sequence[str]], np.ndarray]


class CompressionError(RetrievekitError, ValueError):
    """Bad compressor settings, or passages whose text does not match their spans."""


class Sentence(NamedTuple):
    """One sentence of a passage: ``text == document[start:end]``."""

    passage: int  # index into the passages list
    start: int  # document offsets
    end: int
    text: str


class SentenceCompressor:
    """Keep each passage's sentences most relevant to the question.

    ``scorer``: ``"lexical"`` (BM25 over the sentences of one call: idf from those sentences, ``k1``/``b`` length
    saturation, query terms from ``analyzer``, default ``"lucene-english"``) or ``"dense"`` (cosine between the
    question, encoded with ``encoder.encode_queries``, and each sentence, ``encoder.encode_documents``; ``encoder``
    may also be a callable texts -> matrix).

    Per passage, a sentence is kept when it passes every limit that is set: among the ``max_sentences`` best of its
    passage, among the best ``ceil(keep_ratio * n)`` of its passage's ``n`` sentences, and scoring at least
    ``min_score``. With ``max_tokens`` set, the surviving sentences of all passages are then ranked together and
    kept best-first while their ``count_tokens`` total fits the budget (global mode; sentences that do not fit are
    skipped, smaller later ones may still fit). With no limit at all, ``keep_ratio=0.5``. Ties go to the earlier
    sentence. Passages that lose every sentence are dropped; the others keep their order, id, score and metadata,
    with ``text`` = kept sentences joined by ``" "``, ``spans`` = their document offsets (``passage.start`` plus
    the sentence offsets), and ``start``/``end`` = the range the spans cover.

    Offsets assume ``passage.text == document[start:end]`` (true for every chunker but HTML). Already compressed
    passages (``spans`` set) are split piece by piece, so compressing twice is safe.
    """

    def __init__(self, scorer: str = "lexical", encoder: Any = None, max_sentences: int | None = None,
                 min_score: float | None = None, keep_ratio: float | None = None, *, max_tokens: int | None = None,
                 analyzer: str | Analyzer | None = None, k1: float = 1.2, b: float = 0.75) -> None:
        if scorer not in ("lexical", "dense"):
            raise CompressionError(f"scorer must be 'lexical' or 'dense', got {scorer!r}")
        if scorer == "dense":
            if encoder is None:
                raise CompressionError("the dense scorer needs an encoder (an Encoder or a texts -> matrix callable)")
            if not (hasattr(encoder, "encode_queries") or callable(encoder)):
                raise CompressionError(f"encoder must be an Encoder or callable, got {type(encoder).__name__}")
        for name, value in (("max_sentences", max_sentences), ("max_tokens", max_tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise CompressionError(f"{name} must be a positive integer or None, got {value!r}")
        if keep_ratio is not None and not 0.0 < keep_ratio <= 1.0:
            raise CompressionError(f"keep_ratio must be in (0, 1] or None, got {keep_ratio!r}")
        if min_score is not None and not math.isfinite(min_score):
            raise CompressionError(f"min_score must be finite or None, got {min_score!r}")
        if k1 < 0 or not 0.0 <= b <= 1.0:
            raise CompressionError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        if max_sentences is None and min_score is None and keep_ratio is None and max_tokens is None:
            keep_ratio = 0.5
        self.scorer, self.encoder = scorer, encoder
        self.max_sentences, self.min_score, self.keep_ratio, self.max_tokens = (max_sentences, min_score,
                                                                                keep_ratio, max_tokens)
        self.analyzer = get_analyzer(analyzer) if scorer == "lexical" else None
        self.k1, self.b = k1, b

    # -- sentences --------------------------------------------------------------------------------------------------
    @staticmethod
    def _pieces(p: Passage) -> list[tuple[int, str]]:
        """(document offset, text) of the contiguous pieces of a passage."""
        if p.spans is None:
            return [(p.start, p.text)]
        pieces, pos = [], 0
        for s, e in p.spans:
            pieces.append((s, p.text[pos : pos + (e - s)]))
            pos += e - s + 1
        if any(len(piece) != e - s for (_, piece), (s, e) in zip(pieces, p.spans)) or \
                " ".join(piece for _, piece in pieces) != p.text:
            raise CompressionError(f"passage {p.id!r}: text is not its spans' pieces joined by single spaces")
        return pieces

    def sentences(self, passages: Sequence[Passage]) -> list[Sentence]:
        """Every sentence of every passage, in order, with document offsets."""
        out: list[Sentence] = []
        for i, p in enumerate(passages):
            for base, piece in self._pieces(p):
                out.extend(Sentence(i, base + a, base + b, piece[a:b]) for a, b in split_sentences(piece))
        return out

    # -- scoring ----------------------------------------------------------------------------------------------------
    def score(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        """Relevance of each sentence to the question (float64, higher is better)."""
        if not sentences:
            return np.zeros(0)
        if self.scorer == "dense":
            return self._dense(question, sentences)
        analyzer = self.analyzer or get_analyzer(None)
        query = set(analyzer.analyze(question))
        docs = [Counter(terms) for terms in analyzer.analyze_batch(sentences)]
        lengths = np.array([sum(c.values()) for c in docs], dtype=np.float64)
        avg = lengths.mean() if lengths.size and lengths.mean() > 0 else 1.0
        norm = self.k1 * (1.0 - self.b + self.b * lengths / avg)
        n = len(docs)
        scores = np.zeros(n)
        for term in query:
            tf = np.array([c.get(term, 0) for c in docs], dtype=np.float64)
            df = np.count_nonzero(tf)
            if df == 0:
                continue
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            scores += idf * tf * (self.k1 + 1.0) / (tf + norm)
        return scores

    def _dense(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        enc = self.encoder
        if hasattr(enc, "encode_queries") and hasattr(enc, "encode_documents"):
            q, s = enc.encode_queries([question]), enc.encode_documents(list(sentences))
        else:
            q, s = enc([question]), enc(list(sentences))
        q, s = np.asarray(q, dtype=np.float64), np.asarray(s, dtype=np.float64)
        if q.shape[0] != 1 or s.shape[0] != len(sentences) or q.shape[1:] != s.shape[1:]:
            raise CompressionError(f"encoder returned shapes {q.shape} and {s.shape} for 1 and {len(sentences)} texts")
        qn, sn = np.linalg.norm(q[0]), np.linalg.norm(s, axis=1)
        return np.asarray((s @ q[0]) / np.maximum(sn * qn, 1e-12))

    # -- selection --------------------------------------------------------------------------------------------------
    def _keep_per_passage(self, sents: list[Sentence], scores: np.ndarray) -> np.ndarray:
        keep = np.ones(len(sents), dtype=bool)
        if self.min_score is not None:
            keep &= scores >= self.min_score
        if self.max_sentences is None and self.keep_ratio is None:
            return keep
        owner = np.array([s.passage for s in sents])
        for p in np.unique(owner):
            idx = np.flatnonzero(owner == p)
            ranked = idx[np.argsort(-scores[idx], kind="stable")]  # stable: ties to the earlier sentence
            limit = len(idx)
            if self.max_sentences is not None:
                limit = min(limit, self.max_sentences)
            if self.keep_ratio is not None:
                limit = min(limit, math.ceil(self.keep_ratio * len(idx)))
            keep[ranked[limit:]] = False
        return keep

    @staticmethod
    def _keep_in_budget(sents: list[Sentence], scores: np.ndarray, keep: np.ndarray, budget: int) -> np.ndarray:
        out = np.zeros_like(keep)
        left = budget
        for i in np.argsort(-scores, kind="stable"):  # sentences are in passage order, so ties go to better passages
            if not keep[i]:
                continue
            cost = count_tokens(sents[i].text)
            if cost <= left:
                out[i] = True
                left -= cost
        return out

    def compress(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        """The passages cut down to their relevant sentences (see the class docstring); the input is not modified."""
        sents = self.sentences(passages)
        scores = self.score(question, [s.text for s in sents])
        keep = self._keep_per_passage(sents, scores)
        if self.max_tokens is not None:
            keep = self._keep_in_budget(sents, scores, keep, self.max_tokens)
        kept: dict[int, list[Sentence]] = {}
        for s, k in zip(sents, keep):
            if k:
                kept.setdefault(s.passage, []).append(s)
        out = []
        for i, p in enumerate(passages):
            pieces = kept.get(i)
            if not pieces:
                continue
            spans = [(s.start, s.end) for s in pieces]
            out.append(dataclasses.replace(p, text=" ".join(s.text for s in pieces), spans=spans, start=spans[0][0],
                                           end=spans[-1][1], metadata=dict(p.metadata), flags=list(p.flags)))
        logger.debug("compression kept %d of %d sentences, %d of %d passages", int(keep.sum()), len(sents),
                     len(out), len(passages))
        return out

    def compress_batch(self, questions: Sequence[str], passages: Sequence[Sequence[Passage]]) -> list[list[Passage]]:
        if len(questions) != len(passages):
            raise CompressionError(f"{len(questions)} questions but {len(passages)} passage lists")
        return [self.compress(q, ps) for q, ps in zip(questions, passages)]

    def __call__(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        return self.compress(question, passages)


# --------------------------------------------------------------------------------------------------------------
# Spec strings: "lexical", "dense", with ":N" (the N best sentences of each passage) or ":R", 0 < R <= 1 (a share)
# --------------------------------------------------------------------------------------------------------------
def _compressor_factory(scorer: str) -> Callable[..., SentenceCompressor]:
    def make(**options: Any) -> SentenceCompressor:
        return SentenceCompressor(scorer, **options)

    return make


COMPRESSORS: Registry[SentenceCompressor] = registry("compressor", error=CompressionError)
COMPRESSORS.register("lexical", _compressor_factory("lexical"), usage="lexical[:N|:ratio]",
                     description="BM25 of each sentence against the question")
COMPRESSORS.register("dense", _compressor_factory("dense"), usage="dense[:N|:ratio]",
                     description="cosine of sentence and question embeddings (needs an encoder)")


def parse_compressor(spec: str) -> tuple[str, dict[str, Any]]:
    """The scorer and ``SentenceCompressor`` options of a compress spec: ``"lexical"`` / ``"dense"`` with an optional
    ``:N`` (keep the N best sentences of each passage) or ``:R`` with 0 < R <= 1 (keep that fraction)."""
    ((stage, entry),) = COMPRESSORS.parse(str(spec), stages=False)
    name, arg = entry.name, stage.rest
    if not arg:
        return name, {}
    try:
        value = float(arg)
    except ValueError:
        raise CompressionError(f"compress {spec!r}: {arg!r} is not a number") from None
    if value >= 1 and value.is_integer():
        return name, {"max_sentences": int(value)}
    if 0 < value <= 1:
        return name, {"keep_ratio": value}
    raise CompressionError(f"compress {spec!r}: after ':' give a number of sentences (1, 2, ...) or a fraction in "
                           "(0, 1] to keep")
