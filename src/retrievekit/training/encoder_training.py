"""Bi-encoder training on sentence-transformers' trainer: contrastive (in-batch + hard negatives), its cached variant
for large effective batches in little memory, MarginMSE distillation from teacher scores, an optional Matryoshka
wrapper. The result is a sentence-transformers folder that every retrievekit entry point takes as a model name."""

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

EncoderLoss = Literal["mnrl", "cached-mnrl", "margin-mse"]
ENCODER_LOSSES = ("mnrl", "cached-mnrl", "margin-mse")


def train_encoder(
    base: str,
    examples: Iterable[Any],
    out: str | Path,
    *,
    loss: EncoderLoss = "mnrl",
    epochs: float = 1.0,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    scale: float = 20.0,
    temperature: float | None = None,
    mini_batch_size: int = 32,
    max_negatives: int | None = None,
    matryoshka_dims: list[int] | None = None,
    max_length: int | None = None,
    warmup_ratio: float = 0.1,
    dev: Iterable[Any] | None = None,
    seed: int = 42,
    resume: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Fine-tune the sentence-transformers model ``base`` (a folder, a hub name or a retrievekit alias such as
    ``minilm``) on ``examples`` and save it to the folder ``out``; returns ``out``.

    ``examples``: records (dicts or objects) with ``query``, ``positive``, ``negatives`` (texts) and, for
    ``margin-mse``, ``scores`` (teacher scores: the positive's first, then one per negative). Losses: ``mnrl``
    (InfoNCE over in-batch and hard negatives; ``temperature`` = 1/``scale``), ``cached-mnrl`` (the same loss with
    gradient caching: ``batch_size`` sets the negatives seen, ``mini_batch_size`` the memory), ``margin-mse``.
    Checkpoints go to ``out/checkpoints`` each epoch; ``resume=True`` continues from the last one (``epochs`` is the
    total, so 1 then ``resume=True, epochs=2`` trains one more epoch). ``dev`` examples are evaluated each epoch
    (recall, MRR, nDCG of the positive among all dev texts) and the final figures go into the model card.
    """
    require_training()
    if loss not in ENCODER_LOSSES:
        raise TrainingError(f"unknown encoder loss {loss!r}; choose one of {', '.join(ENCODER_LOSSES)}")
    _check_positive(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, mini_batch_size=mini_batch_size)
    if temperature is not None:
        if temperature <= 0:
            raise TrainingError(f"temperature must be > 0, got {temperature}")
        scale = 1.0 / temperature
    records = normalise_examples(examples, need_scores=loss == "margin-mse")
    dev_records = normalise_examples(dev, what="dev examples") if dev is not None else None
    out = Path(out).expanduser().resolve()

    import transformers
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from retrievekit.encoders.sentence_transformers import load_sentence_transformer

    device = resolve_device(device)
    transformers.set_seed(seed)
    model, _ = load_sentence_transformer(base, device=device)
    if max_length is not None:
        model.max_seq_length = max_length
    if loss != "margin-mse" and not any(type(m).__name__ == "Normalize" for m in model):
        # the contrastive losses train cosine similarity; retrievekit's dense indexes score by inner product, which
        # is the same only on unit vectors: a Normalize module makes the saved model produce them
        from sentence_transformers.sentence_transformer.modules import Normalize

        model.append(Normalize())
    if matryoshka_dims:
        full = int(model.get_embedding_dimension())
        bad = [d for d in matryoshka_dims if not 0 < d <= full]
        if bad:
            raise TrainingError(f"matryoshka_dims {bad} outside 1..{full} (the model's dimension)")
    dataset, negatives = _dataset(records, loss, max_negatives)
    train_loss = _loss(model, loss, scale=scale, mini_batch_size=min(mini_batch_size, batch_size),
                       matryoshka_dims=matryoshka_dims)
    evaluator = _evaluator(dev_records, batch_size) if dev_records else None

    work, checkpoint = prepare_work(out, resume=resume, overwrite=overwrite)
    args = SentenceTransformerTrainingArguments(
        **trainer_arguments(work, rows=len(dataset), epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                            warmup_ratio=warmup_ratio, seed=seed, device=device, evaluate=evaluator is not None,
                            progress=progress),
        # in-batch negatives must not contain the row's own positive
        batch_sampler=BatchSamplers.NO_DUPLICATES if loss != "margin-mse" else BatchSamplers.BATCH_SAMPLER)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=train_loss,
                                         evaluator=evaluator)
    quiet(trainer, progress)
    started = time.perf_counter()
    hint = "" if loss == "cached-mnrl" else (", or loss='cached-mnrl' (gradient caching: the same batch of negatives "
                                              "in mini-batches of mini_batch_size)")
    run_training(lambda: trainer.train(resume_from_checkpoint=checkpoint), batch_size=batch_size, cached_hint=hint)
    seconds = time.perf_counter() - started
    metrics = _metrics(evaluator(model)) if evaluator else {}
    model.save(str(work))
    write_card(work, run_card(
        trainer, checkpoint, kind="dense encoder", base=base, device=device, seconds=seconds, examples=len(records),
        rows=len(dataset), negatives=negatives, dev_examples=len(dev_records) if dev_records else 0, metrics=metrics,
        recipe={"loss": loss, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "scale": scale, "seed": seed, "matryoshka_dims": matryoshka_dims,
                **({"mini_batch_size": min(mini_batch_size, batch_size)} if loss == "cached-mnrl" else {})}))
    return publish(work, out)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise TrainingError(f"{name} must be > 0, got {value}")


def _dataset(records: list[Example], loss: str, max_negatives: int | None) -> tuple[Any, int]:
    """Columns (anchor, positive, negative_1..k): every row needs the same k, the fewest any example has."""
    from datasets import Dataset

    k = min(len(r.negatives) for r in records)
    if max_negatives is not None:
        k = min(k, max_negatives)
    if k < max(len(r.negatives) for r in records):
        logger.info("using %d hard negatives per example (the fewest any example has)", k)
    if loss == "margin-mse" and k == 0:
        raise TrainingError("margin-mse needs at least one scored negative in every example")
    columns: dict[str, list[Any]] = {"anchor": [r.query for r in records], "positive": [r.positive for r in records]}
    for j in range(k):
        columns[f"negative_{j + 1}"] = [r.negatives[j] for r in records]
    if loss == "margin-mse":
        columns["label"] = [list(r.scores[: k + 1]) for r in records if r.scores is not None]
    return Dataset.from_dict(columns), k


def _loss(model: Any, loss: str, *, scale: float, mini_batch_size: int, matryoshka_dims: list[int] | None) -> Any:
    from sentence_transformers.sentence_transformer import losses

    inner: Any
    if loss == "mnrl":
        inner = losses.MultipleNegativesRankingLoss(model, scale=scale)
    elif loss == "cached-mnrl":
        inner = losses.CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=mini_batch_size)
    else:
        inner = losses.MarginMSELoss(model)
    return losses.MatryoshkaLoss(model, inner, matryoshka_dims=list(matryoshka_dims)) if matryoshka_dims else inner


def _evaluator(records: list[Example], batch_size: int) -> Any:
    """Each dev query against every dev text (positives and negatives): its own positive is the one relevant."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    corpus: dict[str, Any] = {}
    ids: dict[str, str] = {}
    for r in records:
        for text in (r.positive, *r.negatives):
            if text not in ids:
                ids[text] = f"d{len(ids)}"
                corpus[ids[text]] = text
    queries: dict[str, Any] = {f"q{i}": r.query for i, r in enumerate(records)}
    relevant = {f"q{i}": {ids[r.positive]} for i, r in enumerate(records)}
    return InformationRetrievalEvaluator(queries, corpus, relevant, name="dev", batch_size=batch_size,
                                         accuracy_at_k=[1, 10], precision_recall_at_k=[1, 10], map_at_k=[10],
                                         write_csv=False)


def _metrics(scores: dict[str, float]) -> dict[str, float]:
    keep = ("recall@1", "recall@10", "mrr@10", "ndcg@10")
    # keys read "dev_<score function>_<metric>"; the score function is the model's own (cosine, dot, ...)
    return {k.rsplit("_", 1)[-1]: float(v) for k, v in scores.items() if k.endswith(keep)}
