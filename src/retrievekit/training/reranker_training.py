"""Cross-encoder training on sentence-transformers' CrossEncoder trainer: pointwise BCE over positives and mined
negatives, or listwise (ListNet over each query's positive and negatives). Starts from any encoder checkpoint — a
bi-encoder such as the offline MiniLM gets a fresh one-score head — and saves a folder that ``get_reranker`` and
``Collection.search(rerank=FOLDER)`` load."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
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
    write_card,
)

logger = logging.getLogger(__name__)

RerankerLoss = Literal["bce", "listwise"]
RERANKER_LOSSES = ("bce", "listwise")


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
    """
    require_training()
    if loss not in RERANKER_LOSSES:
        raise TrainingError(f"unknown reranker loss {loss!r}; choose one of {', '.join(RERANKER_LOSSES)}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("learning_rate", learning_rate),
                        ("max_length", max_length)):
        if not value > 0:
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
    model = _load(base, device=device, max_length=max_length)
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
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=train_loss, evaluator=evaluator)
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
                "max_length": max_length, "seed": seed}))
    return publish(work, out)


def _load(base: str, *, device: str, max_length: int) -> Any:
    """A one-score CrossEncoder from a cross-encoder, a plain transformer or a sentence-transformers bi-encoder
    folder (its transformer weights; the pooling modules are a bi-encoder's and are not used)."""
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
    return model


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
