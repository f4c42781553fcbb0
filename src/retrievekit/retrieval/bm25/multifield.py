"""Multi-field BM25 (Pyserini/Lucene's multi-field query): score(q, d) = sum over fields f of w_f x BM25_f(q, d).

Each weighted field has an inverted index of its own (``index.bm25.segment``), so every field keeps its own
statistics — document frequencies, number of documents with the field, average field length — and a term that is
rare among symbol names but common in bodies counts as rare where it matters. Any scorer of ``scoring.py`` scores a
field exactly as it scores the joined index (the same term weights and document norms from that field's statistics);
the per-field scores are then weighted and summed per document.

The compiled kernel keeps one top-k per call, but a sum over fields needs every field's contribution before the
top k is known, so scores accumulate here with numpy (one ``bincount`` per field and segment over the query terms'
postings) and the top k is taken with ``argpartition``. The joined single-field path (Lucene-exact BM25) does not
come through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.index.base import SegmentView
from retrievekit.index.bm25.segment import bm25_field_postings, field_stats
from retrievekit.index.bm25.stats import CorpusStats
from retrievekit.retrieval.bm25.kernel import MODE_IMPACT
from retrievekit.retrieval.bm25.scoring import MODE_BM25L, MODE_DIRICHLET, Scorer

if TYPE_CHECKING:
    from retrievekit.core.config import CollectionConfig
    from retrievekit.storage.snapshot import Snapshot

_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.float32))


def resolve_field_weights(weights: Mapping[str, float] | None, settings: CollectionConfig) -> dict[str, float]:
    """The field weights a search uses: ``weights`` if given (checked against the fields the collection indexes on
    their own), else the collection's defaults; ``{}`` means the joined single-field index."""
    from retrievekit.core.config import check_field_weights

    indexed = settings.bm25.field_weights
    if weights is None:
        return dict(indexed or {})
    if isinstance(weights, Mapping) and not weights:
        return {}
    checked = check_field_weights(weights)
    if not indexed:
        raise RetrievekitError("field weights need a collection that indexes fields on their own; this one indexes "
                               "its fields joined (create it with field_weights=..., `retrievekit index "
                               "--field-weights title=2,text=1`)")
    unknown = [name for name in checked if name not in indexed]
    if unknown:
        raise RetrievekitError(f"field weights name {', '.join(map(repr, unknown))}, which this collection does not "
                               f"index on its own; it indexes: {', '.join(indexed)}")
    return {name: w for name, w in checked.items() if w > 0}


@dataclass(frozen=True)
class _FieldQuery:
    """One field's part of a query: its statistics and, per query term found in the field, the term's weight and
    constant (already multiplied by the field's weight)."""

    name: str
    stats: CorpusStats
    terms: list[str]
    weights: np.ndarray  # float32
    consts: np.ndarray  # float32


def search_fields(snap: Snapshot, query: Mapping[str, float], field_weights: Mapping[str, float], scorer: Scorer,
                  scorer_key: str, k: int, allowed: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Top k (global document numbers, float32 scores) of the weighted bag of analysed terms ``query`` by
    multi-field BM25, best first, ties by document number."""
    if scorer.mode == MODE_IMPACT:
        raise RetrievekitError("impact scoring has no per-field form")
    segments = snap.segments
    if not query or not segments:
        return _EMPTY
    terms = list(query)
    qw = np.array([query[t] for t in terms], np.float64)
    stats = [seg.info["bm25"] for seg in segments]
    fields = [f for f in (_field_query(snap, name, weight, terms, qw, scorer, stats)
                          for name, weight in field_weights.items() if weight > 0) if f is not None]
    if not fields:
        return _EMPTY
    all_numbers, all_scores = [], []
    for si, seg in enumerate(segments):
        numbers, scores = _search_segment(seg, fields, scorer, scorer_key, allowed[si], k)
        if len(numbers):
            all_numbers.append(numbers + int(snap.bases[si]))
            all_scores.append(scores)
    if not all_numbers:
        return _EMPTY
    numbers = np.concatenate(all_numbers)
    scores = np.concatenate(all_scores)
    order = np.lexsort((numbers, -scores))[:k]
    return numbers[order], scores[order]


def _field_query(snap: Snapshot, name: str, weight: float, terms: list[str], qw: np.ndarray, scorer: Scorer,
                 stats: list[dict[str, Any]]) -> _FieldQuery | None:
    """Term weights of one field from its collection-wide statistics (None when no query term occurs in it)."""
    df = np.zeros(len(terms), np.float64)
    cf = np.zeros(len(terms), np.float64)
    for seg in snap.segments:
        reader = bm25_field_postings(seg)[name]
        get = reader.term_ids.get
        ids = np.array([get(t, -1) for t in terms], np.int64)
        mask = ids >= 0
        if mask.any():
            safe = np.where(mask, ids, 0)
            df += np.where(mask, reader.df[safe], 0)
            cf += np.where(mask, reader.cf[safe], 0)
    found = df > 0  # terms absent from the field contribute nothing (and would break idf)
    if not found.any():
        return None
    totals = field_stats(stats, name)
    w, c = scorer.term_weights(df[found], cf[found], qw[found], totals)
    return _FieldQuery(name, totals, [t for t, f in zip(terms, found) if f],
                       (np.asarray(w, np.float64) * weight).astype(np.float32),
                       (np.asarray(c, np.float64) * weight).astype(np.float32))


def _search_segment(seg: SegmentView, fields: Iterable[_FieldQuery], scorer: Scorer, scorer_key: str,
                    live: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k (local document numbers, scores) of one segment: every field's scores summed per document."""
    readers = bm25_field_postings(seg)
    n_docs = seg.n_docs
    total = np.zeros(n_docs, np.float32)
    touched = np.zeros(n_docs, bool)
    for field in fields:
        reader = readers[field.name]
        get = reader.term_ids.get
        ids = np.array([get(t, -1) for t in field.terms], np.int64)
        present = ids >= 0
        if not present.any():
            continue
        ids = ids[present]
        starts = np.asarray(reader.offsets[ids], np.int64)
        ends = np.asarray(reader.offsets[ids + 1], np.int64)
        counts = ends - starts
        n = int(counts.sum())
        if n == 0:
            continue
        # positions of every posting of the query terms, without a Python loop over terms
        index = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts) + np.arange(n)
        docs = np.asarray(reader.docs[index], np.int64)
        tf = np.asarray(reader.tfs[index], np.float32)
        w = np.repeat(field.weights[present], counts)
        c = np.repeat(field.consts[present], counts)
        stats = field.stats
        norms = reader.norms((scorer_key, stats), lambda lengths, s=stats: scorer.doc_norms(lengths, s))[docs]
        total += np.bincount(docs, weights=_posting_scores(scorer, tf, w, c, norms), minlength=n_docs
                             ).astype(np.float32)
        touched[docs] = True
    if live is not None:
        touched &= live.astype(bool)
    candidates = np.flatnonzero(touched)
    if len(candidates) == 0:
        return _EMPTY
    scores = total[candidates]
    if len(candidates) > k:
        keep = np.argpartition(-scores, k - 1)[:k]
        # documents tied with the k-th score but outside ``keep`` must still win by number: widen to every tie
        kth = scores[keep].min()
        keep = np.flatnonzero(scores >= kth)
        candidates, scores = candidates[keep], scores[keep]
    order = np.lexsort((candidates, -scores))[:k]
    return candidates[order].astype(np.int64), scores[order]


def _posting_scores(scorer: Scorer, tf: np.ndarray, w: np.ndarray, c: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Per posting: the scorer's kernel-mode formula (see ``scoring.py``), in float32 as the kernel computes it."""
    if scorer.mode == MODE_BM25L:
        x = tf / norms + np.float32(scorer.delta)
        return w * x / (np.float32(scorer.k1) + x)
    if scorer.mode == MODE_DIRICHLET:
        s = np.log1p(tf * c) + norms
        return np.where(s > 0, w * s, np.float32(0))
    return w * (tf / (tf + norms)) + c
