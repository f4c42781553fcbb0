"""Hard negatives mined from the collection's own retrievers, with false-negative protection.

Mined "negatives" are often unjudged positives. Following NV-Retriever's positive-aware mining, a candidate is
dropped when it scores within ``margin`` (relative) of the positive's score or above it; any positive id of the same
query is dropped outright, and an optional ``judge`` (e.g. a cross-encoder) vetoes candidates it scores at or above
``judge_threshold``. An example whose positive is not among the ``k`` retrieved gets no mined negatives when a margin
is set: every candidate then outscores the positive, which the margin rule forbids."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from retrievekit.retrieval.base import SearchResults
from retrievekit.training.builders import DocumentSource, document_text
from retrievekit.training.data import TrainingDataError, TrainingExample, TrainingSet

logger = logging.getLogger(__name__)

MODES = ("bm25", "dense", "hybrid")
# judge(query, texts) -> one score per text, higher = more relevant
Judge = Callable[[str, Sequence[str]], Sequence[float]]


class SearchableSource(DocumentSource, Protocol):
    """What mining uses of a collection (``retrievekit.Collection`` provides it)."""

    def search(self, queries: str | Sequence[str], k: int = 10, *, mode: str = "bm25",
               **options: Any) -> SearchResults: ...


def mine_negatives(examples: Iterable[TrainingExample], collection: SearchableSource, *, mode: str = "bm25",
                   k: int = 100, per_query: int = 4, margin: float | None = 0.05, judge: Judge | None = None,
                   judge_threshold: float | None = None, batch_size: int = 256) -> TrainingSet:
    """Copies of ``examples`` with up to ``per_query`` mined negatives appended (the highest-ranked candidates that
    survive the protection), their retrieval scores in ``negative_scores`` and the positive's in
    ``positive_score``. Existing negatives are kept (unscored ones make the scores unknown: ``None``).
    ``stats`` counts the candidates each rule dropped."""
    if mode not in MODES:
        raise TrainingDataError(f"unknown mining mode {mode!r}; choose one of {', '.join(MODES)}")
    if k < 1 or per_query < 1:
        raise TrainingDataError(f"k and per_query must be positive, got k={k}, per_query={per_query}")
    if margin is not None and not 0.0 <= margin < 1.0:
        raise TrainingDataError(f"margin must be in [0, 1) (a fraction of the positive's score), got {margin}")
    if (judge is None) != (judge_threshold is None):
        raise TrainingDataError("judge and judge_threshold go together: pass both or neither")
    examples = list(examples)
    if not examples:
        raise TrainingDataError("no examples to mine negatives for")
    # Every document judged positive for a query is excluded for all of that query's examples.
    positives: dict[str, set[str]] = {}
    for e in examples:
        if e.positive_id is not None:
            positives.setdefault(e.query, set()).add(e.positive_id)
    queries = list(dict.fromkeys(e.query for e in examples))
    hits: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(queries), batch_size):
        batch = queries[start:start + batch_size]
        results = collection.search(batch, k, mode=mode)
        hits.update((q, results.hits(i)) for i, q in enumerate(batch))
    stats = dict.fromkeys(("examples", "mined", "dropped_positive", "dropped_margin", "dropped_judge",
                           "positive_not_retrieved", "without_negatives"), 0)
    out = []
    for e in examples:
        ranked = hits[e.query]
        pos_score = next((s for d, s in ranked if d == e.positive_id), None)
        if pos_score is None and margin is not None:
            stats["positive_not_retrieved"] += 1
        taken = set(e.negative_ids) - {None}
        chosen: list[tuple[str, float]] = []
        for doc_id, score in ranked:
            if doc_id in positives.get(e.query, ()):
                stats["dropped_positive"] += 1
            elif margin is not None and (pos_score is None or score >= pos_score - margin * abs(pos_score)):
                stats["dropped_margin"] += 1
            elif doc_id not in taken:
                chosen.append((doc_id, score))
        found = collection.get_many([d for d, _ in chosen])
        texts = [(d, s, document_text(doc)) for (d, s), doc in zip(chosen, found) if doc is not None]
        duplicates = [t for t in texts if t[2].strip() == e.positive.strip()]  # a copy of the positive elsewhere
        stats["dropped_positive"] += len(duplicates)
        texts = [t for t in texts if t not in duplicates]
        new: list[tuple[str, float, str]] = []
        for i in range(0, len(texts), per_query):  # judge in small batches: stop once enough survive
            if len(new) >= per_query:
                break
            window = texts[i:i + per_query]
            if judge is not None:
                verdicts = list(judge(e.query, [t for _, _, t in window]))
                if len(verdicts) != len(window):
                    raise TrainingDataError(f"the judge returned {len(verdicts)} scores for {len(window)} texts")
                assert judge_threshold is not None
                stats["dropped_judge"] += sum(v >= judge_threshold for v in verdicts)
                window = [w for w, v in zip(window, verdicts) if v < judge_threshold]
            new.extend(window)
        new = new[:per_query]
        old_scores = e.negative_scores if e.negative_scores is not None else ([] if not e.negatives else None)
        scores = None if old_scores is None else [*old_scores, *(s for _, s, _ in new)]
        negatives = [*e.negatives, *(t for _, _, t in new)]
        out.append(TrainingExample(
            query=e.query, positive=e.positive, positive_id=e.positive_id, negatives=negatives,
            negative_ids=[*e.negative_ids, *(d for d, _, _ in new)],
            positive_score=pos_score if pos_score is not None else e.positive_score,
            negative_scores=scores, teacher_scores=None if new else e.teacher_scores,  # stale once negatives grow
            source=e.source, query_id=e.query_id))
        stats["examples"] += 1
        stats["mined"] += len(new)
        stats["without_negatives"] += not negatives
    if stats["positive_not_retrieved"]:
        logger.warning("%d of %d examples' positives were not in the top %d: they got no mined negatives "
                       "(raise k, or margin=None to mine without the margin rule)",
                       stats["positive_not_retrieved"], len(examples), k)
    return TrainingSet(out, stats)
