"""A cross-encoder (any retrievekit reranker) as teacher: scores for MarginMSE distillation (as in GPL, Wang et al.
2022) and a judge that keeps likely positives out of mined negatives.

Scores are the reranker's own: raw logits for cross-encoders (``CrossEncoderReranker`` returns them by default),
so teacher scores keep their scale for MarginMSE and a judge threshold is a logit (0 = probability one half)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence

from retrievekit.core.progress import progress_bar
from retrievekit.retrieval.rerank.base import Reranker, get_reranker
from retrievekit.training.data import TrainingDataError, TrainingExample, TrainingSet
from retrievekit.training.mining import Judge

logger = logging.getLogger(__name__)

__all__ = ["reranker_judge", "score_with_teacher"]


def score_with_teacher(examples: Iterable[TrainingExample], reranker: str | Reranker, *, batch_size: int = 256,
                       progress: bool = False) -> TrainingSet:
    """Copies of ``examples`` with ``teacher_scores`` = the reranker's score of the positive, then of each
    negative (what ``train_encoder(loss="margin-mse")`` reads). ``reranker``: a name or folder for
    :func:`~retrievekit.retrieval.rerank.get_reranker`, or an instance. Each distinct (query, text) pair is scored
    once, ``batch_size`` pairs per call. ``stats``: examples, pairs scored, examples without negatives (which
    margin-mse cannot use)."""
    if batch_size < 1:
        raise TrainingDataError(f"batch_size must be >= 1, got {batch_size}")
    examples = list(examples)
    if not examples:
        raise TrainingDataError("no examples to score")
    teacher = get_reranker(reranker)
    pairs = list(dict.fromkeys((e.query, text) for e in examples for text in (e.positive, *e.negatives)))
    scores: dict[tuple[str, str], float] = {}
    bar = progress_bar(progress, len(pairs), "teacher scoring", unit="pair")
    try:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            values = teacher.score([q for q, _ in chunk], [t for _, t in chunk])
            scores.update(zip(chunk, (float(v) for v in values)))
            bar.update(len(chunk))
    finally:
        bar.close()
    bad = [pair for pair in pairs if not math.isfinite(scores[pair])]
    if bad:
        raise TrainingDataError(f"the teacher gave {len(bad)} non-finite scores (e.g. for query {bad[0][0][:60]!r}); "
                                "teacher scores must be finite numbers")
    out = [_with_scores(e, [scores[(e.query, t)] for t in (e.positive, *e.negatives)]) for e in examples]
    stats = {"examples": len(out), "pairs_scored": len(pairs), "without_negatives": sum(not e.negatives for e in out)}
    if stats["without_negatives"]:
        logger.warning("%d of %d examples have no negatives: margin-mse cannot train on them (mine negatives first)",
                       stats["without_negatives"], len(out))
    return TrainingSet(out, stats)


def reranker_judge(reranker: str | Reranker) -> Judge:
    """The ``judge`` of :func:`~retrievekit.training.mining.mine_negatives`: ``judge(query, texts)`` is the
    reranker's score of each text for the query; with ``judge_threshold=T`` mining drops candidates scoring ``>= T``
    as likely unjudged positives."""
    teacher = get_reranker(reranker)

    def judge(query: str, texts: Sequence[str]) -> list[float]:
        return [float(v) for v in teacher.score([query] * len(texts), list(texts))]

    return judge


def _with_scores(e: TrainingExample, scores: list[float]) -> TrainingExample:
    return TrainingExample(query=e.query, positive=e.positive, positive_id=e.positive_id, negatives=list(e.negatives),
                           negative_ids=list(e.negative_ids), positive_score=e.positive_score,
                           negative_scores=e.negative_scores, teacher_scores=scores, source=e.source,
                           query_id=e.query_id)

