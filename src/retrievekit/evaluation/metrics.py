"""Effectiveness metrics with exactly trec_eval's (and so pytrec_eval's) semantics.

Conventions, all as in trec_eval 9.x:

* A query's ranking is its run sorted by score descending; equal scores are ordered by document id
  *descending* (trec_eval compares ids with ``strcmp``; Python's ``str`` order is the same order).
  trec_eval holds scores as C ``float``, so scores are compared after rounding to float32: two
  scores that differ only beyond ~7 significant digits tie and are ordered by docid.
* Binary measures (P, recall, MAP, MRR, success, R-precision) count a document as relevant when its
  judgment is ``>= relevance_level``; unjudged documents are never relevant.
* Negative judgments (trec_eval reads them as "in the pool but unjudged") are never relevant and
  count as not judged; pytrec_eval itself can crash on a query whose judgments are all negative.
* nDCG uses the judgment itself as a linear gain with a ``log2(rank + 1)`` discount (trec_eval's
  ``ndcg_cut``). It ignores ``relevance_level``; zero and negative judgments give no gain. The ideal
  ranking is made from all positive judgments of the query, retrieved or not.
* ``P@k`` divides by ``k`` even when fewer than ``k`` documents were retrieved; ``recall``, ``map`` and
  ``r-precision`` divide by the number of relevant documents (a query without any gets 0).
* Queries evaluated are those present in both the run and the qrels (a run entry with no documents
  still counts, scoring 0). Run queries without judgments are ignored. Qrels queries missing from the
  run are ignored by default, as pytrec_eval does; ``missing_queries="zero"`` counts them with 0 for
  every measure, as ``trec_eval -c`` does.

The per-query work only touches the judged documents: the rank of a relevant document is the number
of documents that beat it, found with a binary search in the sorted score array. So the cost is one
``np.sort`` per query, not a Python-level sort of every (docid, score) pair.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from retrievekit.core.errors import InputFormatError, RetrievekitError

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]
"""qid -> docid -> score (higher is better)."""
Qrels = dict[str, dict[str, int]]
"""qid -> docid -> graded judgment (0 or negative: not relevant)."""


class UnknownMetricError(RetrievekitError, ValueError):
    """A metric name that is not recognised; the message lists the valid forms."""


# ----------------------------------------------------------------------------- metric names

_ALIASES = {"precision": "p", "rprec": "r-precision", "recip_rank": "mrr"}
_CUTOFF_REQUIRED = frozenset({"p", "recall", "success"})
_CUTOFF_OPTIONAL = frozenset({"ndcg", "mrr", "map"})
_NO_CUTOFF = frozenset({"r-precision"})
_VALID_FORMS = ("ndcg", "ndcg@k", "recall@k", "p@k", "precision@k", "mrr", "mrr@k", "map", "map@k",
                "success@k", "r-precision")
_NAME_RE = re.compile(r"(?P<name>[a-z_-]+)(?:@(?P<k>\d+))?")


@dataclass(frozen=True)
class Metric:
    """A parsed metric: base name and optional rank cutoff ``k``."""

    name: str
    k: int | None = None

    def __str__(self) -> str:
        return self.name if self.k is None else f"{self.name}@{self.k}"


def parse_metric(spec: str) -> Metric:
    """Parse a metric name such as ``"nDCG@10"`` (case-insensitive; ``precision@k`` = ``p@k``)."""
    match = _NAME_RE.fullmatch(spec.strip().lower()) if isinstance(spec, str) else None
    if match is None:
        raise UnknownMetricError(f"unknown metric {spec!r}; valid forms: {', '.join(_VALID_FORMS)}")
    name = _ALIASES.get(match["name"], match["name"])
    k = int(match["k"]) if match["k"] is not None else None
    if name not in _CUTOFF_REQUIRED | _CUTOFF_OPTIONAL | _NO_CUTOFF:
        raise UnknownMetricError(f"unknown metric {spec!r}; valid forms: {', '.join(_VALID_FORMS)}")
    if k is None and name in _CUTOFF_REQUIRED:
        raise UnknownMetricError(f"metric {spec!r} needs a cutoff, e.g. {name}@10")
    if k is not None and name in _NO_CUTOFF:
        raise UnknownMetricError(f"metric {spec!r} takes no cutoff; use {name!r}")
    if k is not None and k < 1:
        raise UnknownMetricError(f"metric {spec!r}: the cutoff must be at least 1")
    return Metric(name, k)


def canonical_metric(spec: str) -> str:
    """The name under which results are stored: lower case, aliases resolved (``P@10`` -> ``p@10``)."""
    return str(parse_metric(spec))


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True)
class EvalResult(Mapping[str, float]):
    """Means per metric (the mapping itself) plus, when asked for, per-query values.

    Keys are canonical metric names, but lookups accept any spelling: ``result["NDCG@10"]``.
    ``per_query`` is ``{metric: {qid: value}}`` or ``None`` when ``per_query=False`` was passed.
    """

    mean: dict[str, float]
    per_query: dict[str, dict[str, float]] | None
    num_queries: int

    def __getitem__(self, metric: str) -> float:
        try:
            return self.mean[canonical_metric(metric)]
        except UnknownMetricError as exc:
            raise KeyError(metric) from exc

    def __iter__(self) -> Iterator[str]:
        return iter(self.mean)

    def __len__(self) -> int:
        return len(self.mean)


# ----------------------------------------------------------------------------- per-query core


@dataclass(frozen=True)
class _Judged:
    """What every supported measure needs to know about one query's ranking."""

    rel_ranks: np.ndarray  # sorted 0-based ranks of retrieved docs judged >= relevance_level
    gain_ranks: np.ndarray  # sorted 0-based ranks of retrieved docs with a positive judgment
    gains: np.ndarray  # their judgments, aligned with gain_ranks
    ideal: np.ndarray  # every positive judgment of the query, descending
    num_rel: int  # judged >= relevance_level, retrieved or not


def _scores(qid: str, run_q: Mapping[str, float]) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):  # beyond float32's range becomes +-inf, as in C
            scores = np.fromiter(run_q.values(), dtype=np.float32, count=len(run_q))
    except (TypeError, ValueError) as exc:
        raise InputFormatError(f"run query {qid!r} has a non-numeric score: {exc}") from exc
    if np.isnan(scores).any():
        bad = next(d for d, s in run_q.items() if math.isnan(s))
        raise InputFormatError(f"run query {qid!r}: document {bad!r} has a NaN score")
    return scores


def _trec_ranks(run_q: Mapping[str, float], scores: np.ndarray, docs: list[str]) -> np.ndarray:
    """0-based trec_eval rank of each of ``docs`` (all retrieved): how many documents precede it."""
    with np.errstate(over="ignore"):
        target = np.array([run_q[d] for d in docs], dtype=np.float32)
    ordered = np.sort(scores)
    above = np.searchsorted(ordered, target, side="right")
    ranks = len(scores) - above
    ties = above - np.searchsorted(ordered, target, side="left") > 1
    if ties.any():
        # Equal scores: a larger docid comes first. Each tied group's ids are sorted once, then every
        # judged document in it is placed by binary search.
        ids = list(run_q)
        groups: dict[float, list[str]] = {}
        for i in np.flatnonzero(ties):
            value = float(target[i])
            if value not in groups:
                groups[value] = sorted(ids[j] for j in np.flatnonzero(scores == target[i]))
            group = groups[value]
            ranks[i] += len(group) - bisect.bisect_right(group, docs[i])
    return ranks


def _judge(qid: str, run_q: Mapping[str, float], qrels_q: Mapping[str, int], level: int) -> _Judged:
    positive = [(d, r) for d, r in qrels_q.items() if r > 0]
    ideal = np.sort(np.array([r for _, r in positive], dtype=np.float64))[::-1]
    num_rel = sum(1 for r in qrels_q.values() if r >= level)
    scores = _scores(qid, run_q)
    found = [(d, r) for d, r in positive if d in run_q]
    if not found:
        empty = np.empty(0, dtype=np.int64)
        return _Judged(empty, empty, np.empty(0), ideal, num_rel)
    ranks = _trec_ranks(run_q, scores, [d for d, _ in found])
    gains = np.array([r for _, r in found], dtype=np.float64)
    order = np.argsort(ranks, kind="stable")
    ranks, gains = ranks[order], gains[order]
    return _Judged(ranks[gains >= level], ranks, gains, ideal, num_rel)


# ----------------------------------------------------------------------------- the measures


def _dcg(gains: np.ndarray, ranks: np.ndarray) -> float:
    return float(np.sum(gains / np.log2(ranks + 2.0)))


def _ndcg(j: _Judged, k: int) -> float:
    ideal = j.ideal[:k]
    ideal_dcg = _dcg(ideal, np.arange(len(ideal), dtype=np.float64))
    if ideal_dcg <= 0.0:
        return 0.0
    keep = j.gain_ranks < k
    return _dcg(j.gains[keep], j.gain_ranks[keep]) / ideal_dcg


def _hits(j: _Judged, k: int) -> int:
    return int(np.count_nonzero(j.rel_ranks < k))


def _precision(j: _Judged, k: int) -> float:
    return _hits(j, k) / k


def _recall(j: _Judged, k: int) -> float:
    return _hits(j, k) / j.num_rel if j.num_rel else 0.0


def _success(j: _Judged, k: int) -> float:
    return 1.0 if j.rel_ranks.size and j.rel_ranks[0] < k else 0.0


def _mrr(j: _Judged, k: int) -> float:
    if not j.rel_ranks.size or j.rel_ranks[0] >= k:
        return 0.0
    return 1.0 / (float(j.rel_ranks[0]) + 1.0)


def _map(j: _Judged, k: int) -> float:
    if not j.num_rel:
        return 0.0
    ranks = j.rel_ranks[j.rel_ranks < k]
    precisions = np.arange(1, len(ranks) + 1, dtype=np.float64) / (ranks + 1.0)
    return float(np.sum(precisions)) / j.num_rel


def _r_precision(j: _Judged, k: int) -> float:
    return _hits(j, j.num_rel) / j.num_rel if j.num_rel else 0.0


# Each measure gets the cutoff k; a metric without one (``ndcg``, ``map``, ``mrr``) gets _NO_CUTOFF_K.
_NO_CUTOFF_K = sys.maxsize
_MEASURES: dict[str, Callable[[_Judged, int], float]] = {
    "ndcg": _ndcg, "p": _precision, "recall": _recall, "success": _success, "mrr": _mrr,
    "map": _map, "r-precision": _r_precision,
}


# ----------------------------------------------------------------------------- entry point


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str] | str = ("ndcg@10", "recall@100"),
    *,
    ignore_identical_ids: bool = False,
    relevance_level: int = 1,
    per_query: bool = False,
    missing_queries: Literal["skip", "zero"] = "skip",
) -> EvalResult:
    """Evaluate ``run`` against ``qrels`` with trec_eval semantics (see the module docstring).

    ``metrics``: names such as ``ndcg@10``, ``ndcg``, ``recall@100``, ``p@5``/``precision@5``, ``mrr``,
    ``mrr@10``, ``map``, ``map@100``, ``success@5``, ``r-precision`` (case-insensitive).
    ``ignore_identical_ids``: drop documents whose id equals the query id (BEIR's ArguAna/Quora setting).
    ``relevance_level``: smallest judgment that counts as relevant for the binary measures (>= 1).
    ``missing_queries``: ``"skip"`` (pytrec_eval) or ``"zero"`` (``trec_eval -c``) for qrels queries
    that the run lacks.
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    parsed = list(dict.fromkeys(parse_metric(m) for m in metrics))
    if not parsed:
        raise UnknownMetricError("no metric given")
    if not isinstance(relevance_level, int) or relevance_level < 1:
        raise ValueError(f"relevance_level must be an integer >= 1, got {relevance_level!r}")
    if missing_queries not in ("skip", "zero"):
        raise ValueError(f"missing_queries must be 'skip' or 'zero', got {missing_queries!r}")

    qids = [q for q in qrels if q in run] if missing_queries == "skip" else list(qrels)
    unjudged = sum(1 for q in run if q not in qrels)
    if unjudged:
        logger.debug("%d run queries have no judgments and are not evaluated", unjudged)
    if not qids:
        logger.warning("run and qrels share no query id: every mean is 0 (are the ids of the same type?)")

    values: dict[Metric, list[float]] = {m: [] for m in parsed}
    for qid in qids:
        run_q = run.get(qid, {})
        if ignore_identical_ids and qid in run_q:
            run_q = {d: s for d, s in run_q.items() if d != qid}
        judged = _judge(qid, run_q, qrels[qid], relevance_level)
        for m in parsed:
            values[m].append(_MEASURES[m.name](judged, _NO_CUTOFF_K if m.k is None else m.k))

    mean = {str(m): (math.fsum(v) / len(v) if v else 0.0) for m, v in values.items()}
    detail = {str(m): dict(zip(qids, v)) for m, v in values.items()} if per_query else None
    return EvalResult(mean=mean, per_query=detail, num_queries=len(qids))
