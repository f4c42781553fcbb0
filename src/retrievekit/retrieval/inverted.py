"""The per-segment search loop shared by every inverted-index retriever (BM25, learned sparse): top k of each
segment by the compiled kernel, merged into one top k, on a snapshot that a concurrent commit cannot pull away."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from retrievekit.core.errors import CollectionError
from retrievekit.retrieval.bm25.kernel import TermBounds, prune, search_segment, term_bounds

if TYPE_CHECKING:
    from retrievekit.storage.snapshot import Snapshot

T = TypeVar("T")
RETRIES = 5  # snapshots to try when a concurrent merge removes a segment between snapshot and search


def with_snapshot(collection: Any, search: Callable[[Snapshot], T]) -> T:
    """``search(snapshot)`` on the latest snapshot. If it fails because a segment's files vanished, that is fine
    when a newer commit merged the segment away (search again on the new snapshot), damage otherwise."""
    for attempt in range(RETRIES):
        snap = collection.snapshot()
        try:
            return search(snap)
        except CollectionError:
            if attempt == RETRIES - 1 or collection.snapshot().generation == snap.generation:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Scoring:
    """How the kernel turns postings into scores (see retrieval/bm25/kernel.py)."""

    mode: int
    k1: float = 0.0
    delta: float = 0.0
    use_kernel: bool = True
    pruning: bool = True  # MaxScore where the cost rule says it pays (same results either way)


@dataclass(frozen=True)
class SegmentTerms:
    """One segment's part of a query: its postings (``docs``, ``tfs``, ``offsets`` arrays) and, per query term
    present there, the term id, weight and constant, plus the per-document norms. ``bounds``: the segment's cache
    of term and block bounds for these norms (``kernel.TermBounds``), None where the scorer has none."""

    postings: Any
    term_ids: np.ndarray
    weights: np.ndarray
    consts: np.ndarray
    norms: np.ndarray
    bounds: TermBounds | None = None


_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.float32))


def search_segments(bases: np.ndarray, parts: Iterable[tuple[int, SegmentTerms]], allowed: list[np.ndarray | None],
                    scoring: Scoring, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k (global document numbers, float32 scores) over the segments of ``parts`` ((segment index, its
    terms); segments without query terms left out), best first, ties by document number."""
    all_numbers, all_scores = [], []
    for si, part in parts:
        p = part.postings
        bounds = None
        if (scoring.pruning and scoring.use_kernel and part.bounds is not None
                and prune(p.offsets, part.term_ids, part.weights, part.consts, scoring.mode, k, len(part.norms))):
            bounds = term_bounds(p.docs, p.tfs, p.offsets, part.norms, scoring.mode, scoring.k1, scoring.delta,
                                 part.term_ids, part.bounds)
        local, scores = search_segment(p.docs, p.tfs, p.offsets, part.term_ids, part.weights, part.consts,
                                       part.norms, allowed[si], scoring.mode, scoring.k1, scoring.delta, k,
                                       scoring.use_kernel, bounds)
        base = int(bases[si])
        all_numbers.append(local.astype(np.int64) + base if base else local.astype(np.int64))
        all_scores.append(scores)
    if not all_numbers:
        return _EMPTY
    if len(all_numbers) == 1:  # already best first
        return all_numbers[0], all_scores[0]
    numbers = np.concatenate(all_numbers)
    scores = np.concatenate(all_scores)
    order = np.lexsort((numbers, -scores))[:k]
    return numbers[order], scores[order]


def merge_segment_hits(bases: np.ndarray, per_segment: list[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]],
                   n: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query, the top k (global document numbers, scores) over segments' batch results ((segment index,
    (local numbers (n, k), scores (n, k), hits (n,))), best first, ties by document number."""
    if not per_segment:
        return [_EMPTY] * n
    if len(per_segment) == 1:  # already best first
        si, (docs, scores, counts) = per_segment[0]
        numbers = docs.astype(np.int64) + int(bases[si])
        return [(numbers[q, :counts[q]], scores[q, :counts[q]]) for q in range(n)]
    rows = []
    for q in range(n):
        numbers = np.concatenate([docs[q, :counts[q]].astype(np.int64) + int(bases[si])
                                  for si, (docs, _, counts) in per_segment])
        scores = np.concatenate([sc[q, :counts[q]] for _, (_, sc, counts) in per_segment])
        order = np.lexsort((numbers, -scores))[:k]
        rows.append((numbers[order], scores[order]))
    return rows
