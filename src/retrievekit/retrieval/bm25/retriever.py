"""BM25 (and query-likelihood) retrieval over a collection's segments."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.document import index_text
from retrievekit.core.errors import RetrievekitError
from retrievekit.core.filters import Filter
from retrievekit.index.bm25.segment import bm25_postings
from retrievekit.index.bm25.stats import CorpusStats
from retrievekit.retrieval.base import Retriever, SearchResults, results_from_numbers, run_batch
from retrievekit.retrieval.bm25.kernel import (
    HAVE_KERNEL,
    PRUNABLE_MODES,
    TermBounds,
    cost_rule,
    search_segment_batch,
    term_bounds,
)
from retrievekit.retrieval.bm25.multifield import resolve_field_weights, search_fields
from retrievekit.retrieval.bm25.rm3 import RM3
from retrievekit.retrieval.bm25.scoring import Scorer, get_scorer
from retrievekit.retrieval.inverted import Scoring, SegmentTerms, merge_segment_hits, search_segments, with_snapshot

if TYPE_CHECKING:
    from retrievekit.retrieval.base import CollectionView
    from retrievekit.storage.snapshot import Snapshot


@dataclass(frozen=True)
class SharedStatistics:
    """BM25 statistics gathered beyond this collection — summed over every shard of a sharded collection (what
    Elasticsearch calls DFS query-then-fetch) — that replace the collection's own: the corpus totals and, per
    analysed query term, its document and collection frequency. Scores then equal those of one collection holding
    every shard's documents."""

    corpus: CorpusStats
    df: Mapping[str, float]
    cf: Mapping[str, float]


class BM25Retriever(Retriever):
    """Term-weighted retrieval over the collection's inverted index.

    Statistics (N, df, avgdl) are collection-wide, summed over segments, so scores do not depend on how the
    collection happens to be segmented.

    ``pruning``: search long posting lists by MaxScore dynamic pruning (exact: the same documents and scores as
    the exhaustive pass; False forces the exhaustive pass everywhere).

    ``field_weights``: {field: weight} scores with multi-field BM25 over fields the collection indexes on their own
    (``retrieval.bm25.multifield``); None uses the collection's default weights (none: the joined index), ``{}``
    the joined single-field index.
    """

    def __init__(
        self,
        collection: CollectionView,
        scorer: str | Mapping[str, Any] | Scorer | None = None,
        rm3: bool | Mapping[str, Any] | RM3 = False,
        use_kernel: bool = True,
        field_weights: Mapping[str, float] | None = None,
        statistics: SharedStatistics | None = None,
        pruning: bool = True,
        **scorer_params: Any,
    ) -> None:
        self.collection = collection
        self.statistics = statistics
        self.scorer = get_scorer(scorer, **scorer_params)  # type: ignore[arg-type]
        self._field_weights = None if field_weights is None else dict(field_weights)
        fields = resolve_field_weights(self._field_weights, collection.settings)  # a bad weight fails here
        if statistics is not None and (rm3 or fields):
            raise RetrievekitError("shared (sharded) BM25 statistics work with plain single-field BM25 only, not yet "
                                   "with RM3 or multi-field weights")
        if isinstance(rm3, RM3):
            self.rm3: RM3 | None = rm3
        elif isinstance(rm3, Mapping):
            self.rm3 = RM3(**rm3)
        elif rm3:
            self.rm3 = RM3()
        else:
            self.rm3 = None
        self.use_kernel = use_kernel
        self.pruning = pruning
        self._scorer_key = repr(sorted(self.scorer.config().items()))

    @property
    def field_weights(self) -> dict[str, float]:
        """The field weights searches use now ({}: the joined index); the collection's defaults are re-read, as
        another process may have committed."""
        return resolve_field_weights(self._field_weights, self.collection.settings)

    def config(self) -> dict[str, Any]:
        out = {"type": "bm25", "scorer": self.scorer.config(), "rm3": self.rm3.__dict__ if self.rm3 else None}
        weights = self.field_weights
        if weights:
            out["field_weights"] = weights
        return out

    def search(
        self, queries: Sequence[str], k: int = 10, *, filter: Filter | None = None, threads: int = 1
    ) -> SearchResults:
        if isinstance(queries, str):
            queries = [queries]
        analyzer = self.collection.analyzer

        def search(snap: Snapshot) -> SearchResults:
            allowed = snap.allowed(filter)
            fields = resolve_field_weights(self._field_weights, snap.settings)
            if self.rm3 is None and not fields and self.use_kernel and HAVE_KERNEL:
                bags = [{t: float(n) for t, n in Counter(analyzer.analyze(q)).items()} for q in queries]
                size = max(1, -(-len(bags) // max(1, threads)))
                slices = [bags[i:i + size] for i in range(0, len(bags), size)]
                parts = run_batch(slices, lambda part: self.search_batch(snap, part, k, allowed), threads)
                return results_from_numbers([row for part in parts for row in part], snap.id_array, k)

            def one(query: str) -> tuple[np.ndarray, np.ndarray]:
                weights: dict[str, float] = {t: float(n) for t, n in Counter(analyzer.analyze(query)).items()}
                if self.rm3 is not None and weights:
                    weights = self._expand(snap, weights, allowed, fields)
                return self.search_terms(snap, weights, k, allowed, fields)

            rows = run_batch(queries, one, threads)
            return results_from_numbers(rows, snap.id_array, k)

        return with_snapshot(self.collection, search)

    def search_terms(
        self, snap: Snapshot, weights: Mapping[str, float], k: int, allowed: list[np.ndarray | None],
        field_weights: Mapping[str, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top k (global document numbers, scores) for a weighted bag of analysed terms: by multi-field BM25 when
        ``field_weights`` names fields, else on the joined index."""
        if field_weights:
            return search_fields(snap, weights, field_weights, self.scorer, self._scorer_key, k, allowed)
        segments = snap.segments
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        if not weights or not segments:
            return empty
        terms = list(weights)
        tids, present, df, cf = term_statistics(snap, terms)
        shared = self.statistics
        if shared is not None:
            df = np.array([shared.df.get(t, 0.0) for t in terms], np.float64)
            cf = np.array([shared.cf.get(t, 0.0) for t in terms], np.float64)
        found = df > 0  # terms absent from the whole collection contribute nothing
        if not found.all():
            if not found.any():
                return empty
            terms = [t for t, f in zip(terms, found) if f]
            tids = np.ascontiguousarray(tids[:, found])  # column selection is not C-contiguous
            present, df, cf = present[:, found], df[found], cf[found]
        stats = snap.bm25_stats if shared is None else shared.corpus
        scorer = self.scorer
        w, c = scorer.term_weights(df, cf, np.array([weights[t] for t in terms], np.float64), stats)
        key = (self._scorer_key, stats)

        def parts() -> Iterator[tuple[int, SegmentTerms]]:
            for si, seg in enumerate(segments):
                mask = present[si]
                if not mask.any():
                    continue
                bm = bm25_postings(seg)
                norms = bm.norms(key, lambda lengths: scorer.doc_norms(lengths, stats))
                bounds = bm.bounds(key, TermBounds.empty) if self.pruning else None
                if mask.all():
                    yield si, SegmentTerms(bm, tids[si], w, c, norms, bounds)
                else:
                    yield si, SegmentTerms(bm, tids[si][mask], w[mask], c[mask], norms, bounds)

        scoring = Scoring(scorer.mode, scorer.k1, scorer.delta, self.use_kernel, self.pruning)
        return search_segments(snap.bases, parts(), allowed, scoring, k)

    def search_batch(self, snap: Snapshot, bags: Sequence[Mapping[str, float]], k: int,
                     allowed: list[np.ndarray | None]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top k (global document numbers, scores) of each weighted bag of terms on the joined index, every query
        of a segment in one kernel call: the per-query work in Python is dictionary lookups, and term weights are
        computed for the whole batch at once (element by element, so each equals ``search_terms``'s)."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        n = len(bags)
        segments = snap.segments
        if n == 0 or not segments or k <= 0:
            return [empty] * n
        unique = list(dict.fromkeys(t for bag in bags for t in bag))
        if not unique:
            return [empty] * n
        tids, present, df, cf = term_statistics(snap, unique)
        shared = self.statistics
        if shared is not None:
            df = np.array([shared.df.get(t, 0.0) for t in unique], np.float64)
            cf = np.array([shared.cf.get(t, 0.0) for t in unique], np.float64)
        position = {t: i for i, t in enumerate(unique)}
        flat = np.fromiter((position[t] for bag in bags for t in bag), np.int64)
        lengths = np.fromiter((len(bag) for bag in bags), np.int64, count=n)
        query_of = np.repeat(np.arange(n), lengths)
        stats = snap.bm25_stats if shared is None else shared.corpus
        scorer = self.scorer
        qtf = np.fromiter((w for bag in bags for w in bag.values()), np.float64, count=len(flat))
        w, c = scorer.term_weights(df[flat], cf[flat], qtf, stats)
        found = df[flat] > 0  # terms absent from the whole collection contribute nothing
        key = (self._scorer_key, stats)
        prunable = self.pruning and scorer.mode in PRUNABLE_MODES
        per_segment = []
        for si, seg in enumerate(segments):
            here = found & present[si][flat]
            if not here.any():
                continue
            bm = bm25_postings(seg)
            norms = bm.norms(key, lambda lengths: scorer.doc_norms(lengths, stats))
            seg_tids = np.ascontiguousarray(tids[si][flat[here]])
            starts = np.zeros(n + 1, np.int64)
            np.cumsum(np.bincount(query_of[here], minlength=n), out=starts[1:])
            bounds = None
            if prunable and k <= cost_rule(seg.n_docs)[1]:
                bounds = term_bounds(bm.docs, bm.tfs, bm.offsets, norms, scorer.mode, scorer.k1, scorer.delta,
                                     np.unique(seg_tids), bm.bounds(key, TermBounds.empty))
            per_segment.append((si, search_segment_batch(
                bm.docs, bm.tfs, bm.offsets, seg_tids, np.ascontiguousarray(w[here]), np.ascontiguousarray(c[here]),
                starts, norms, allowed[si], scorer.mode, scorer.k1, scorer.delta, k, bounds)))
        return merge_segment_hits(snap.bases, per_segment, n, k)

    def _expand(self, snap: Snapshot, weights: dict[str, float], allowed: list[np.ndarray | None],
                field_weights: Mapping[str, float]) -> dict[str, float]:
        assert self.rm3 is not None
        numbers, scores = self.search_terms(snap, weights, self.rm3.fb_docs, allowed, field_weights)
        analyzer = self.collection.analyzer
        fields = self.collection.settings.fields
        feedback = []
        for n, s in zip(numbers, scores):
            si = int(np.searchsorted(snap.bases, n, side="right") - 1)
            doc = snap.segments[si].document(int(n - snap.bases[si]))
            feedback.append((analyzer.analyze(index_text(doc, fields)), float(s)))

        def df(terms: list[str]) -> list[int]:
            return term_statistics(snap, terms)[2].astype(np.int64).tolist()

        return self.rm3.expand(weights, feedback, df, snap.bm25_stats.docs)


def term_statistics(snap: Snapshot, terms: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per segment × term: term id (-1 where absent) and presence mask; per term: collection-wide df and cf.
    Dictionary lookups in Python and two gathers per segment: queries are a handful of terms, where numpy's
    per-call cost is what counts."""
    segments = snap.segments
    tids = np.full((len(segments), len(terms)), -1, np.int64)
    df = np.zeros(len(terms), np.float64)
    cf = np.zeros(len(terms), np.float64)
    for si, seg in enumerate(segments):
        postings = bm25_postings(seg)
        get = postings.term_ids.get
        row = [get(t, -1) for t in terms]
        found = [j for j, i in enumerate(row) if i >= 0]
        if not found:
            continue
        tids[si] = row
        ids = [row[j] for j in found]
        df[found] += postings.df[ids]
        cf[found] += postings.cf[ids]
    return tids, tids >= 0, df, cf
