"""Evaluate any retriever or pipeline stage on a dataset: search its queries, score the run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from retrievekit.evaluation.datasets import BeirDataset
from retrievekit.evaluation.metrics import EvalResult, evaluate

if TYPE_CHECKING:
    from retrievekit.retrieval.base import Retriever


def evaluate_retriever(
    retriever: Retriever,
    dataset: BeirDataset,
    metrics: Sequence[str] | str = ("ndcg@10", "recall@100"),
    *,
    k: int = 1000,
    ties: str = "raw",
    batch_size: int = 1024,
    per_query: bool = False,
) -> EvalResult:
    """Search every judged query of ``dataset`` with ``retriever`` (a BM25/dense retriever or a pipeline such as
    ``(bm25 | dense) >> reranker``) and evaluate the top ``k`` with trec_eval semantics. ``ties="anserini"``
    orders tied scores like Pyserini runs (see ``SearchResults.to_run``)."""
    qids = list(dataset.queries)
    run: dict[str, dict[str, float]] = {}
    for start in range(0, len(qids), batch_size):
        batch = qids[start : start + batch_size]
        results = retriever.search([dataset.queries[q] for q in batch], k)
        run.update(results.to_run(batch, ties=ties))
    return evaluate(run, dataset.qrels, metrics, per_query=per_query)
