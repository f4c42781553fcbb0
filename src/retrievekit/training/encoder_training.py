"""Bi-encoder training on sentence-transformers' trainer: contrastive (in-batch + hard negatives), its cached variant
for large effective batches in little memory, decoupled softmax (the same without the positive in the denominator),
MarginMSE distillation from teacher scores, an optional Matryoshka wrapper. The result is a sentence-transformers
folder that every retrievekit entry point takes as a model name."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Iterable, Sequence
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

EncoderLoss = Literal["mnrl", "cached-mnrl", "decoupled", "margin-mse"]
ENCODER_LOSSES = ("mnrl", "cached-mnrl", "decoupled", "margin-mse")
ShortNegatives = Literal["error", "drop", "pad"]
# What to do with examples that have fewer hard negatives than the others. The default is "error": each remedy changes
# the training signal in a way the data's owner should choose ("drop" may throw away a whole source of a mixed set,
# e.g. self-supervised pairs beside mined ones; "pad" trains those examples on random negatives, which are easier
# than mined ones and cannot carry teacher scores), the check runs before the model loads, and its message names
# the remedies. Silently taking the fewest any example has, as before, turned hard negatives off for everyone.
SHORT_NEGATIVES = ("error", "drop", "pad")


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
    short_negatives: ShortNegatives = "error",
    matryoshka_dims: list[int] | None = None,
    max_length: int | None = None,
    warmup_ratio: float = 0.1,
    teacher_scale: float | Literal["auto"] | None = "auto",
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
    ``margin-mse``, ``teacher_scores`` (or ``scores``: the positive's first, then one per negative; see
    :func:`~retrievekit.training.teacher.score_with_teacher`). Losses: ``mnrl`` (InfoNCE over in-batch and hard
    negatives; ``temperature`` = 1/``scale``), ``cached-mnrl`` (the same loss with gradient caching: ``batch_size``
    sets the negatives seen, ``mini_batch_size`` the memory), ``decoupled`` (DEXML's decoupled softmax: InfoNCE
    without the positive in the denominator), ``margin-mse``.

    Every training row carries the same number of hard negatives: the most any example has, at most
    ``max_negatives`` (an example's first ones are kept: mined negatives come hardest first). Examples with fewer
    ("short") are handled by ``short_negatives``: ``"error"`` fails naming them, ``"drop"`` trains without them,
    ``"pad"`` fills them up with random negatives (other examples' negatives, drawn under ``seed``). The model card
    records how many examples were dropped or padded.

    ``teacher_scale`` (``margin-mse``): a factor on the teacher's scores. A model whose vectors are unit length
    (it ends in ``Normalize``, as all-MiniLM-L6-v2 does) scores by cosine, so its margins stay within [-2, 2],
    while a cross-encoder's logit margins run to 10 and more: distilled raw, they ask for margins the model cannot
    reach. ``"auto"`` fits, for such a model, the least-squares factor between the teacher's margins and the
    untrained model's own on up to 512 examples (1 for a model without ``Normalize``: raw dot products have no
    ceiling, GPL's setting); ``None`` keeps the scores raw. The card records the factor used.

    ``max_length`` truncates texts while training (shorter trains faster); the saved model keeps the base model's
    window, so it encodes documents as the model it replaces did.

    Checkpoints go to ``out/checkpoints`` each epoch; ``resume=True`` continues from the last one (``epochs`` is the
    total, so 1 then ``resume=True, epochs=2`` trains one more epoch). ``dev`` examples are evaluated each epoch
    (recall, MRR, nDCG of the positive among all dev texts) and the final figures go into the model card.
    """
    require_training()
    if loss not in ENCODER_LOSSES:
        raise TrainingError(f"unknown encoder loss {loss!r}; choose one of {', '.join(ENCODER_LOSSES)}")
    if short_negatives not in SHORT_NEGATIVES:
        raise TrainingError(f"unknown short_negatives {short_negatives!r}; choose one of {', '.join(SHORT_NEGATIVES)}")
    if max_negatives is not None and max_negatives < 0:
        raise TrainingError(f"max_negatives must be >= 0, got {max_negatives}")
    _check_positive(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, mini_batch_size=mini_batch_size,
                    scale=scale)
    if temperature is not None:
        if temperature <= 0:
            raise TrainingError(f"temperature must be > 0, got {temperature}")
        scale = 1.0 / temperature
    if teacher_scale not in ("auto", None) and not (isinstance(teacher_scale, (int, float)) and teacher_scale > 0):
        raise TrainingError(f"teacher_scale must be 'auto', None or a number > 0, got {teacher_scale!r}")
    records = normalise_examples(examples, need_scores=loss == "margin-mse")
    # before the model loads: bad data fails in a second, not after minutes of loading
    records, negatives, shortfall = even_negatives(records, max_negatives, short_negatives, loss=loss, seed=seed)
    dev_records = normalise_examples(dev, what="dev examples") if dev is not None else None
    out = Path(out).expanduser().resolve()

    import transformers
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from retrievekit.encoders.sentence_transformers import load_sentence_transformer

    device = resolve_device(device)
    transformers.set_seed(seed)
    model, _ = load_sentence_transformer(base, device=device)
    window = model.max_seq_length
    if max_length is not None:
        model.max_seq_length = max_length
    if loss != "margin-mse" and not _normalises(model):
        # the contrastive losses train cosine similarity; retrievekit's dense indexes score by inner product, which
        # is the same only on unit vectors: a Normalize module makes the saved model produce them
        from sentence_transformers.sentence_transformer.modules import Normalize

        model.append(Normalize())
    if matryoshka_dims:
        full = int(model.get_embedding_dimension())
        bad = [d for d in matryoshka_dims if not 0 < d <= full]
        if bad:
            raise TrainingError(f"matryoshka_dims {bad} outside 1..{full} (the model's dimension)")
    factor = None
    if loss == "margin-mse" and teacher_scale is not None:
        factor = _teacher_scale(model, records, negatives, seed) if teacher_scale == "auto" else float(teacher_scale)
        records = [dataclasses.replace(r, scores=tuple(factor * v for v in r.scores or ())) for r in records]
    dataset = _dataset(records, loss, negatives)
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
    # max_length shortens training only: the saved model encodes with the base's window, as the index it replaces
    model.max_seq_length = window
    model.save(str(work))
    write_card(work, run_card(
        trainer, checkpoint, kind="dense encoder", base=base, device=device, seconds=seconds, examples=len(records),
        rows=len(dataset), negatives=negatives, dev_examples=len(dev_records) if dev_records else 0, metrics=metrics,
        data_notes=shortfall,
        recipe={"loss": loss, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "scale": scale, "seed": seed, "matryoshka_dims": matryoshka_dims, "short_negatives": short_negatives,
                "max_length": max_length, **({"teacher_scale": factor} if factor is not None else {}),
                **({"mini_batch_size": min(mini_batch_size, batch_size)} if loss == "cached-mnrl" else {})}))
    return publish(work, out)


def _normalises(model: Any) -> bool:
    """Whether a sentence-transformers model's output is unit length (it ends in a ``Normalize`` module)."""
    return any(type(m).__name__ == "Normalize" for m in model)


def _teacher_scale(model: Any, records: list[Example], k: int, seed: int, sample: int = 512) -> float:
    """:func:`margin_scale` of the teacher's margins against ``model``'s own on up to ``sample`` examples, for a
    model with unit-length output; 1 for one without (see ``train_encoder``'s ``teacher_scale``)."""
    import numpy as np

    if not _normalises(model):
        return 1.0
    chosen = records if len(records) <= sample else random.Random(seed).sample(records, sample)

    def encode(texts: list[str]) -> Any:
        return model.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)

    q, p = encode([r.query for r in chosen]), encode([r.positive for r in chosen])
    scores = [r.scores or () for r in chosen]
    student, teacher = [], []
    for j in range(k):
        n = encode([r.negatives[j] for r in chosen])
        student.append((q * p).sum(axis=1) - (q * n).sum(axis=1))
        teacher.append(np.array([s[0] - s[1 + j] for s in scores]))
    factor = margin_scale(np.concatenate(teacher), np.concatenate(student))
    logger.info("teacher scores scaled by %.4g to the model's cosine margins", factor)
    return factor


def margin_scale(teacher_margins: Any, model_margins: Any) -> float:
    """The least-squares factor f minimising |f * teacher margins - model margins|² (1 where every teacher margin is
    0): what puts a teacher's score margins on a model's own scale. A factor <= 0, a teacher ranking against the
    model's own order, fails rather than be distilled upside down."""
    import numpy as np

    tm, sm = np.asarray(teacher_margins, dtype=float), np.asarray(model_margins, dtype=float)
    if not tm.any():
        return 1.0
    factor = float(tm @ sm / (tm @ tm))
    if factor <= 0:
        raise TrainingError(f"the teacher's margins run against the model's own (least-squares factor {factor:.4g} on "
                            f"{len(tm)} pairs; the teacher prefers the positive on {np.mean(tm > 0):.0%} of them): "
                            "check the teacher scores (the positive's first), or pass teacher_scale=FACTOR (None: "
                            "raw scores) to distil them anyway")
    return factor


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise TrainingError(f"{name} must be > 0, got {value}")


def even_negatives(records: list[Example], max_negatives: int | None, short_negatives: str, *, loss: str = "mnrl",
                   seed: int = 0) -> tuple[list[Example], int, dict[str, int]]:
    """``records`` with exactly k negatives each, k the most any record has (at most ``max_negatives``); the
    short ones handled as ``short_negatives`` says (see :func:`train_encoder`). Returns the records, k and what
    was done (``{"dropped_short": n}`` or ``{"padded_examples": n, "padded_negatives": m}``, else empty)."""
    most = max(len(r.negatives) for r in records)
    k = most if max_negatives is None else min(most, max_negatives)
    short = [i for i, r in enumerate(records) if len(r.negatives) < k]
    if loss == "margin-mse" and k == 0:
        raise TrainingError("margin-mse needs at least one scored negative in every example")
    trimmed = [_first(r, k) for r in records]
    if not short:
        return trimmed, k, {}
    first = short[0]
    if short_negatives == "error":
        raise TrainingError(
            f"{len(short)} of {len(records)} examples have fewer than {k} negatives (the first is examples[{first}], "
            f"query {records[first].query[:60]!r}, with {len(records[first].negatives)}): every training row needs "
            f"the same number. Pass short_negatives='drop' to train without them, 'pad' to fill them up with random "
            f"negatives from other examples, or max_negatives=N to use at most N per example")
    if short_negatives == "drop":
        kept = [r for i, r in enumerate(trimmed) if len(r.negatives) == k]
        if not kept:
            raise TrainingError(f"short_negatives='drop' would drop every example (none has {k} negatives)")
        # a warning, not info: the examples are lost to training, and the card says how many
        logger.warning("dropping %d of %d examples with fewer than %d negatives (the first is examples[%d])",
                       len(short), len(records), k, first)
        return kept, k, {"dropped_short": len(short)}
    if loss == "margin-mse":
        raise TrainingError(f"short_negatives='pad' cannot be used with margin-mse: the {len(short)} examples with "
                            f"fewer than {k} negatives would get negatives without teacher scores; use 'drop' or "
                            "score the padded data with a teacher first")
    padded = _pad(trimmed, short, k, seed)
    added = sum(k - len(records[i].negatives) for i in short)
    logger.info("padded %d of %d examples with %d random negatives to %d each", len(short), len(records), added, k)
    return padded, k, {"padded_examples": len(short), "padded_negatives": added}


def _first(record: Example, k: int) -> Example:
    if len(record.negatives) <= k:
        return record
    scores = record.scores[: k + 1] if record.scores is not None else None
    return Example(record.query, record.positive, record.negatives[:k], scores)


def _pad(records: list[Example], short: Sequence[int], k: int, seed: int) -> list[Example]:
    """Fill the ``short`` records up to ``k`` negatives drawn from the pool of every record's negatives, never a
    text that is a positive of the same query or already among the record's negatives. Each record draws from its
    own ``Random(f"{seed}:{index}")``, so the choice depends on the seed and the data only."""
    pool = list(dict.fromkeys(n for r in records for n in r.negatives))
    in_pool = set(pool)
    positives: dict[str, set[str]] = {}
    for r in records:
        positives.setdefault(r.query, set()).add(r.positive)
    out = list(records)
    for i in short:
        r = records[i]
        banned = positives[r.query] | set(r.negatives)
        need = k - len(r.negatives)
        usable = len(pool) - len(banned & in_pool)
        if usable < need:
            raise TrainingError(f"cannot pad examples[{i}] to {k} negatives: the other examples hold only {usable} "
                                "usable negatives; use short_negatives='drop'")
        rng = random.Random(f"{seed}:{i}")
        if usable < 2 * need:  # few left: list them rather than draw and reject
            drawn = rng.sample([t for t in pool if t not in banned], need)
        else:  # rejection sampling: each draw is usable with probability >= 1/2, the pool is never copied
            drawn = []
            while len(drawn) < need:
                text = pool[rng.randrange(len(pool))]
                if text not in banned:
                    banned.add(text)
                    drawn.append(text)
        out[i] = Example(r.query, r.positive, (*r.negatives, *drawn))
    return out


def _dataset(records: list[Example], loss: str, k: int) -> Any:
    """Columns (anchor, positive, negative_1..k) and, for margin-mse, the teacher scores as ``label``."""
    from datasets import Dataset

    columns: dict[str, list[Any]] = {"anchor": [r.query for r in records], "positive": [r.positive for r in records]}
    for j in range(k):
        columns[f"negative_{j + 1}"] = [r.negatives[j] for r in records]
    if loss == "margin-mse":
        columns["label"] = [list(r.scores or ()) for r in records]
    return Dataset.from_dict(columns)


def _loss(model: Any, loss: str, *, scale: float, mini_batch_size: int, matryoshka_dims: list[int] | None) -> Any:
    from sentence_transformers.sentence_transformer import losses

    inner: Any
    if loss == "mnrl":
        inner = losses.MultipleNegativesRankingLoss(model, scale=scale)
    elif loss == "cached-mnrl":
        inner = losses.CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=mini_batch_size)
    elif loss == "decoupled":
        from retrievekit.training.losses import DecoupledSoftmaxLoss

        inner = DecoupledSoftmaxLoss(model, scale=scale)
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
