"""Cross-encoder training on sentence-transformers' CrossEncoder trainer: pointwise BCE over positives and mined
negatives, or listwise (ListNet over each query's positive and negatives). Starts from any encoder checkpoint — a
bi-encoder such as the offline MiniLM gets a fresh one-score head — and saves a folder that ``get_reranker`` and
``Collection.search(rerank=FOLDER)`` load."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from retrievekit.training._deps import (
    Example,
    TrainingError,
    normalise_examples,
    prepare_work,
    publish,
    quiet,
    require_training,
    resolve_device,
    run_card,
    run_training,
    trainer_arguments,
    update_card,
    write_card,
)

logger = logging.getLogger(__name__)

#: the reranker's shares ``tune_blend`` tries (1.0: its score alone, in z units — the same order as unblended)
BLEND_GRID = tuple(round(0.1 * i, 1) for i in range(11))

RerankerLoss = Literal["bce", "listwise"]
RERANKER_LOSSES = ("bce", "listwise")
#: learning rate of a score head that starts untrained (a bi-encoder base): at the body's rate (3e-5) the new head
#: and the never-trained pooler in front of it barely moved in 230 SciFact steps and the model scored every pair alike
#: (reranked nDCG@10 0.11 against hybrid's 0.71); with the head at 1e-3 training loss falls in the second epoch and
#: the model, blended with hybrid, adds 3.7 points (benchmarks/results/train_reranker.json)
FRESH_HEAD_LEARNING_RATE = 1e-3


def train_reranker(
    base: str,
    examples: Iterable[Any],
    out: str | Path,
    *,
    loss: RerankerLoss = "bce",
    epochs: float = 1.0,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    max_negatives: int | None = None,
    max_length: int = 512,
    warmup_ratio: float = 0.1,
    head_learning_rate: float | None = None,
    dev: Iterable[Any] | None = None,
    seed: int = 42,
    resume: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Train a cross-encoder from ``base`` (a folder, a hub name or a retrievekit encoder alias such as ``minilm``)
    on ``examples`` (records with ``query``, ``positive``, ``negatives``) and save it to the folder ``out``.

    ``bce``: one row per (query, text) pair, label 1 for the positive and 0 for each negative, the positive weighted
    by the number of negatives so both classes count alike. ``listwise``: one row per query, ListNet over its
    positive and negatives (``batch_size`` counts queries). Examples may have different numbers of negatives
    (both losses take each example's own, at most ``max_negatives``), so unlike ``train_encoder`` there is no
    ``short_negatives``; an example without any trains on its positive alone. Checkpoints, ``resume`` and ``dev``
    work as in :func:`~retrievekit.training.encoder_training.train_encoder`; dev reports MRR@10/nDCG@10 of the
    positive among each dev query's own texts.

    ``head_learning_rate``: the learning rate of the score head (the classifier and the pooler feeding it). By
    default it is ``FRESH_HEAD_LEARNING_RATE`` when ``base`` has no trained head (a bi-encoder or plain transformer)
    and ``learning_rate`` when it is already a cross-encoder.
    """
    require_training()
    if loss not in RERANKER_LOSSES:
        raise TrainingError(f"unknown reranker loss {loss!r}; choose one of {', '.join(RERANKER_LOSSES)}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("learning_rate", learning_rate),
                        ("max_length", max_length), ("head_learning_rate", head_learning_rate)):
        if value is not None and not value > 0:
            raise TrainingError(f"{name} must be > 0, got {value}")
    records = normalise_examples(examples)
    if all(not r.negatives for r in records):
        raise TrainingError("reranker training needs negatives: no example has any (mine them first)")
    dev_records = normalise_examples(dev, what="dev examples") if dev is not None else None
    out = Path(out).expanduser().resolve()

    import torch
    import transformers
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments, losses

    device = resolve_device(device)
    transformers.set_seed(seed)  # the new score head's initial weights
    model, fresh_head = _load(base, device=device, max_length=max_length)
    if head_learning_rate is None:
        head_learning_rate = FRESH_HEAD_LEARNING_RATE if fresh_head else learning_rate
    dataset, negatives = _dataset(records, loss, max_negatives)
    train_loss: Any
    if loss == "bce":
        train_loss = losses.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(max(1, negatives))))
    else:
        train_loss = losses.ListNetLoss(model)
    evaluator = _evaluator(dev_records, batch_size) if dev_records else None

    work, checkpoint = prepare_work(out, resume=resume, overwrite=overwrite)
    args = CrossEncoderTrainingArguments(
        **trainer_arguments(work, rows=len(dataset), epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                            warmup_ratio=warmup_ratio, seed=seed, device=device, evaluate=evaluator is not None,
                            progress=progress))
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=train_loss, evaluator=evaluator,
                                  optimizer_cls_and_kwargs=_optimizer(model, learning_rate, head_learning_rate))
    quiet(trainer, progress)
    started = time.perf_counter()
    unit = "queries" if loss == "listwise" else "pairs"
    run_training(lambda: trainer.train(resume_from_checkpoint=checkpoint), batch_size=batch_size,
                 cached_hint=f" (a batch holds {batch_size} {unit})")
    seconds = time.perf_counter() - started
    metrics = _metrics(evaluator(model)) if evaluator else {}
    model.save(str(work))
    write_card(work, run_card(
        trainer, checkpoint, kind="cross-encoder reranker", base=base, device=device, seconds=seconds,
        examples=len(records), rows=len(dataset), negatives=negatives,
        dev_examples=len(dev_records) if dev_records else 0, metrics=metrics,
        recipe={"loss": loss, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "max_length": max_length, "seed": seed, "head_learning_rate": head_learning_rate,
                "fresh_head": fresh_head}))
    return publish(work, out)


def _load(base: str, *, device: str, max_length: int) -> tuple[Any, bool]:
    """A one-score CrossEncoder from a cross-encoder, a plain transformer or a sentence-transformers bi-encoder
    folder (its transformer weights; the pooling modules are a bi-encoder's and are not used), and whether its
    score head is new (the base was not a sequence classifier)."""
    from sentence_transformers.cross_encoder import CrossEncoder

    from retrievekit.encoders.registry import model_card
    from retrievekit.encoders.sentence_transformers import resolve_model_path

    location = resolve_model_path(base, model_card(base))
    try:
        model = CrossEncoder(location, num_labels=1, max_length=max_length, device=device)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot start a cross-encoder from {base!r} ({location!r}): {exc}") from exc
    if model.num_labels != 1:
        raise TrainingError(f"{base!r} has {model.num_labels} output labels; a reranker needs one score")
    try:
        from transformers import AutoConfig

        architectures = AutoConfig.from_pretrained(location).architectures or []
    except (OSError, ValueError):  # a hub name whose config is only in the loaded model
        architectures = []
    fresh = not any(a.endswith("ForSequenceClassification") for a in architectures)
    return model, fresh


def _optimizer(model: Any, learning_rate: float, head_learning_rate: float) -> tuple[Any, dict[str, Any]]:
    """AdamW with the score head (every weight outside the transformer body, and its pooler) in a group of its own
    at ``head_learning_rate``; weight decay as the trainer's default (0)."""
    import torch

    inner = model.model
    body_prefix = f"{inner.base_model_prefix}."
    head: list[Any] = []
    body: list[Any] = []
    for name, parameter in inner.named_parameters():
        if not parameter.requires_grad:
            continue
        (head if not name.startswith(body_prefix) or ".pooler." in name else body).append(parameter)
    groups = [{"params": body, "lr": learning_rate}, {"params": head, "lr": head_learning_rate}]
    return torch.optim.AdamW, {"params": groups, "lr": learning_rate}


def _dataset(records: list[Example], loss: str, max_negatives: int | None) -> tuple[Any, int]:
    from datasets import Dataset

    def negs(r: Example) -> tuple[str, ...]:
        return r.negatives[:max_negatives] if max_negatives is not None else r.negatives

    most = max(len(negs(r)) for r in records)
    if loss == "listwise":
        return Dataset.from_dict({
            "query": [r.query for r in records],
            "docs": [[r.positive, *negs(r)] for r in records],
            "labels": [[1.0] + [0.0] * len(negs(r)) for r in records]}), most
    queries, texts, labels = [], [], []
    for r in records:
        for text, label in ((r.positive, 1.0), *((n, 0.0) for n in negs(r))):
            queries.append(r.query)
            texts.append(text)
            labels.append(label)
    return Dataset.from_dict({"query": queries, "text": texts, "label": labels}), most


def _evaluator(records: list[Example], batch_size: int) -> Any:
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    samples: list[dict[str, Any]] = [
        {"query": r.query, "positive": [r.positive], "negative": list(r.negatives)} for r in records]
    return CrossEncoderRerankingEvaluator(samples, at_k=10, name="dev", batch_size=batch_size, write_csv=False)


def _metrics(scores: dict[str, float]) -> dict[str, float]:
    return {k.split("_", 1)[-1]: float(v) for k, v in scores.items() if k.startswith("dev_") and "base" not in k}


def score_blends(folder: str | Path, first_stage: Any, queries: Mapping[str, str],
                 qrels: Mapping[str, Mapping[str, int]], *, depth: int = 100, metrics: Sequence[str] = ("ndcg@10",),
                 grid: Sequence[float] = BLEND_GRID, texts: Any = None, progress: bool = False) -> dict[str, Any]:
    """Rerank the top ``depth`` of ``first_stage`` for the judged ``queries`` once with the reranker in ``folder``
    and evaluate every blend in ``grid`` (see :class:`~retrievekit.retrieval.rerank.base.Reranker`): returns
    ``{"first_stage": EvalResult, "blends": {weight: EvalResult}, "queries": n}``, per query included."""
    import numpy as np

    from retrievekit.evaluation.metrics import evaluate
    from retrievekit.retrieval.pipeline import collection_of, document_texts
    from retrievekit.retrieval.rerank import get_reranker
    from retrievekit.retrieval.rerank.base import blended, candidate_grid, check_blend

    qids = [q for q in sorted(qrels) if q in queries and str(queries[q]).strip()]
    if not qids:
        raise TrainingError("scoring blends needs judged queries with text; none given")
    for weight in grid:
        check_blend(weight)
    if texts is None:
        collection = collection_of(first_stage)
        if collection is None:
            raise TrainingError("scoring blends needs document texts: pass texts= or a collection's retriever")
        texts = document_texts(collection)
    reranker = get_reranker(str(folder), blend=None)
    query_texts = [queries[q] for q in qids]
    candidates = first_stage.search(query_texts, depth)
    own = reranker.candidate_scores(query_texts, candidates, texts, progress=progress)
    ids, present = candidate_grid(query_texts, candidates)
    judged = {q: qrels[q] for q in qids}

    def run_of(scores: np.ndarray) -> dict[str, dict[str, float]]:
        return {q: {d: float(v) for d, v, keep in zip(ids[r], scores[r], present[r]) if keep}
                for r, q in enumerate(qids)}

    rank_scores = -np.broadcast_to(np.arange(ids.shape[1], dtype=np.float32), ids.shape)  # the first stage's order
    out: dict[str, Any] = {"queries": len(qids), "depth": depth,
                           "first_stage": evaluate(run_of(rank_scores), judged, metrics, per_query=True), "blends": {}}
    first = np.asarray(candidates.scores, dtype=np.float32)
    for weight in grid:
        out["blends"][float(weight)] = evaluate(run_of(blended(own, first, present, float(weight))), judged, metrics,
                                                per_query=True)
    return out


def tune_blend(folder: str | Path, first_stage: Any, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
               *, depth: int = 100, metric: str = "ndcg@10", grid: Sequence[float] = BLEND_GRID,
               texts: Any = None, progress: bool = False) -> dict[str, Any]:
    """Choose how much of the final score the trained reranker in ``folder`` should have against ``first_stage``
    (a retriever, usually a collection's), on judged queries the model was not trained on (``score_blends``), and
    record the best blend in the folder's card as ``rerank_blend`` (the whole table as ``blend_tuning``), so every
    later ``get_reranker(folder)``, ``--rerank FOLDER`` or ``rerank=FOLDER`` ranks that way. Ties go to the larger
    reranker share. Returns the record."""
    scored = score_blends(folder, first_stage, queries, qrels, depth=depth, metrics=(metric,), grid=grid,
                          texts=texts, progress=progress)
    table = {f"{w:g}": round(float(result[metric]), 5) for w, result in scored["blends"].items()}
    best = max(scored["blends"], key=lambda w: (table[f"{w:g}"], w))
    record = {"rerank_blend": float(best),
              "blend_tuning": {"metric": metric, "queries": scored["queries"], "depth": depth,
                               "first_stage": round(float(scored["first_stage"][metric]), 5), "by_blend": table}}
    update_card(folder, record)
    return record
