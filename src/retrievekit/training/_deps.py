"""What both trainers share: the optional imports (extra ``train``), duck-typed training examples, the device, the
work folder that becomes the model folder atomically, resumable checkpoints, the model card and out-of-memory advice."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from retrievekit.core.errors import RetrievekitError, require
from retrievekit.core.files import atomic_write_text, fsync_dir
from retrievekit.retrieval.rerank.cross_encoder import CARD_FILE

logger = logging.getLogger(__name__)

T = TypeVar("T")
CARD_MD = "MODEL_CARD.md"
CHECKPOINTS = "checkpoints"
# counts the trainers add to a card's "data" when they change the data on the way in
DATA_NOTES = ("dropped_short", "padded_examples", "padded_negatives")


class TrainingError(RetrievekitError):
    """Bad training input or a training run that cannot go on."""


def require_training() -> None:
    """sentence-transformers' trainer stands on transformers' Trainer (accelerate) and ``datasets``."""
    for module in ("torch", "sentence_transformers", "datasets", "accelerate"):
        require(module, "train")


@dataclass(frozen=True)
class Example:
    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    scores: tuple[float, ...] | None = None  # teacher scores: the positive's first, then one per negative


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


def normalise_examples(examples: Iterable[Any], *, what: str = "examples", need_scores: bool = False) -> list[Example]:
    """Plain :class:`Example`s from dicts or objects with ``query``, ``positive``, ``negatives`` and optionally
    ``teacher_scores`` or ``scores`` (a ``TrainingSet`` of ``TrainingExample``s qualifies); each bad record is named
    by its position."""
    if examples is None or isinstance(examples, (str, bytes)):
        raise TrainingError(f"{what} must be a list of records with query, positive and negatives")
    out: list[Example] = []
    for i, record in enumerate(examples):
        query, positive = _field(record, "query"), _field(record, "positive")
        negatives = _field(record, "negatives") or ()
        scores = _field(record, "teacher_scores")  # retrievekit.training.data.TrainingExample's name
        scores = _field(record, "scores") if scores is None else scores
        if not isinstance(query, str) or not query.strip():
            raise TrainingError(f"{what}[{i}] has no query (a non-empty string is needed)")
        if not isinstance(positive, str) or not positive.strip():
            raise TrainingError(f"{what}[{i}] (query {query[:60]!r}) has no positive: every example needs the text "
                                "of one relevant document")
        if isinstance(negatives, str) or not all(isinstance(n, str) for n in negatives):
            raise TrainingError(f"{what}[{i}] (query {query[:60]!r}): negatives must be a list of texts")
        if scores is not None:
            scores = tuple(float(s) for s in scores)
            if len(scores) != 1 + len(negatives):
                raise TrainingError(f"{what}[{i}] (query {query[:60]!r}) has {len(scores)} scores for 1 positive and "
                                    f"{len(negatives)} negatives: give the positive's score first, then one per "
                                    "negative")
        elif need_scores:
            raise TrainingError(f"{what}[{i}] (query {query[:60]!r}) has no teacher scores, which this loss needs")
        out.append(Example(query, positive, tuple(negatives), scores))
    if not out:
        raise TrainingError(f"no {what} to train on: give at least one record with a query and a positive")
    return out


def resolve_device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def prepare_work(out: Path, *, resume: bool, overwrite: bool) -> tuple[Path, str | None]:
    """The folder to train in (``OUT.partial``, renamed to ``out`` at the end) and the checkpoint to resume from.

    ``resume=True`` continues an interrupted run (``OUT.partial/checkpoints``) or a finished one (``OUT/checkpoints``,
    copied so ``out`` stays whole until the new model replaces it)."""
    from transformers.trainer_utils import get_last_checkpoint

    work = out.with_name(out.name + ".partial")
    if out.exists() and not (resume or overwrite):
        raise TrainingError(f"{out} already exists: pass overwrite=True to replace it or resume=True to continue "
                            "its training")
    if out.exists() and not out.is_dir():
        raise TrainingError(f"{out} exists and is not a folder")
    if not resume:
        shutil.rmtree(work, ignore_errors=True)
    elif not (work / CHECKPOINTS).is_dir() and (out / CHECKPOINTS).is_dir():
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(out / CHECKPOINTS, work / CHECKPOINTS)
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = get_last_checkpoint(str(work / CHECKPOINTS)) if (work / CHECKPOINTS).is_dir() else None
    if resume and checkpoint is None:
        logger.warning("resume=True but %s has no checkpoint: training from the start", out)
    return work, checkpoint


def publish(work: Path, out: Path) -> Path:
    """Replace ``out`` with the finished ``work`` folder: readers see the old model or the new one, never half."""
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(work, out)
    fsync_dir(out.parent)
    shutil.rmtree(old, ignore_errors=True)
    return out


def quiet(trainer: Any, progress: bool) -> None:
    """No progress bar and no printed log lines unless ``progress``: the losses still reach ``state.log_history``."""
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)


def run_training(train: Callable[[], T], *, batch_size: int, cached_hint: str) -> T:
    """Run ``train``; an out-of-memory failure becomes advice on the batch size instead of a torch traceback."""
    try:
        return train()
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "out of memory" not in str(exc).lower():
            raise
        raise TrainingError(f"training ran out of memory with batch_size={batch_size}: use a smaller batch_size "
                            f"(halve it until it fits){cached_hint}, or a shorter max_length") from exc


def trainer_arguments(work: Path, *, rows: int, epochs: float, batch_size: int, learning_rate: float,
                      warmup_ratio: float, seed: int, device: str, evaluate: bool, progress: bool) -> dict[str, Any]:
    """The training arguments both trainers share: checkpoints in ``work/checkpoints`` (one kept, each epoch, so a
    run resumes), seeded data order, warm-up as a share of all steps, about 50 loss log points."""
    steps_per_epoch = max(1, -(-rows // batch_size))
    return dict(output_dir=str(work / CHECKPOINTS), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
                per_device_eval_batch_size=batch_size, learning_rate=learning_rate,
                warmup_steps=int(warmup_ratio * steps_per_epoch * epochs), seed=seed, data_seed=seed,
                use_cpu=device == "cpu", save_strategy="epoch", save_total_limit=1,
                eval_strategy="epoch" if evaluate else "no", logging_strategy="steps",
                logging_steps=max(1, int(steps_per_epoch * epochs) // 50), disable_tqdm=not progress,
                report_to="none", dataloader_num_workers=0)


def run_card(trainer: Any, checkpoint: str | None, *, kind: str, base: str, device: str, seconds: float,
             examples: int, rows: int, negatives: int, dev_examples: int, recipe: dict[str, Any],
             metrics: dict[str, Any], data_notes: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The model card of a finished run (both trainers write the same fields). ``data_notes``: counts of what
    was done to the data on the way in (examples dropped or padded), added to ``data``."""
    return {"kind": kind, "base_model": str(base), "device": device, "train_seconds": seconds,
            "data": {"examples": examples, "pairs": rows, "negatives_per_example": negatives,
                     "dev_examples": dev_examples, **(data_notes or {})},
            "recipe": recipe, "global_step": trainer.state.global_step,
            "epochs_done": float(trainer.state.epoch or 0.0),
            "resumed_from": Path(checkpoint).name if checkpoint else None,
            "loss_curve": loss_history(trainer.state.log_history), "metrics": metrics}


def loss_history(log_history: Sequence[Mapping[str, Any]]) -> list[float]:
    return [float(entry["loss"]) for entry in log_history if "loss" in entry]


def _write_card_json(folder: Path, card: dict[str, Any]) -> None:
    atomic_write_text(folder / CARD_FILE, json.dumps(card, indent=2, sort_keys=True) + "\n")


def update_card(folder: str | Path, fields: dict[str, Any]) -> None:
    """Merge ``fields`` into a folder's ``model_card.json`` (one is started if the folder has none)."""
    path = Path(folder) / CARD_FILE
    card = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    _write_card_json(path.parent, {**card, **fields})


def write_card(folder: Path, card: dict[str, Any]) -> None:
    """``model_card.json`` (machine-readable; get_reranker reads a trained reranker's blend there too) and
    ``MODEL_CARD.md`` (for people) beside the weights."""
    _write_card_json(folder, card)
    lines = [f"# {card['kind']} trained with retrievekit", "",
             f"- base model: `{card['base_model']}`",
             f"- training examples: {card['data']['examples']} ({card['data']['pairs']} training rows"
             + "".join(f", {k.replace('_', ' ')}: {v}" for k, v in sorted(card["data"].items()) if k in DATA_NOTES)
             + ")",
             "- recipe: " + ", ".join(f"{k}={v}" for k, v in sorted(card["recipe"].items())),
             f"- steps: {card['global_step']} over {card['epochs_done']:g} epochs, {card['train_seconds']:.1f} s "
             f"on {card['device']}"]
    losses = card.get("loss_curve") or []
    if losses:
        lines.append(f"- training loss: {losses[0]:.4f} first logged, {losses[-1]:.4f} last")
    if card.get("metrics"):
        lines += ["", "| dev metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in sorted(card["metrics"].items())]
    atomic_write_text(folder / CARD_MD, "\n".join(lines) + "\n")


def read_card(folder: str | Path) -> dict[str, Any]:
    """The training card of a folder trained here."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise TrainingError(f"{folder} has no {CARD_FILE}: it was not trained with retrievekit")
    data: dict[str, Any] = json.loads(path.read_text())
    return data
