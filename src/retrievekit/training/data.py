"""Training data as plain, inspectable JSONL: one ``TrainingExample`` (query, positive, negatives, optional scores)
per line, each carrying the format ``version``. Sets save atomically, reload with line-numbered errors, and mix or
split deterministically under a seed."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrievekit.core.errors import InputFormatError, RetrievekitError
from retrievekit.core.files import atomic_write_text

VERSION = 1


class TrainingDataError(RetrievekitError, ValueError):
    """Training data or a builder's arguments cannot be used."""


@dataclass
class TrainingExample:
    """One training example. ``positive_id``/``negative_ids`` name the collection documents the texts came from
    (``None`` where unknown). ``positive_score``/``negative_scores``: the retriever's scores when negatives were
    mined; ``teacher_scores``: a teacher's scores of the positive then each negative (for MarginMSE distillation).
    ``source`` tags the builder ("qrels", "ict", "crop", "title", ...) so mixed sets stay traceable."""

    query: str
    positive: str
    positive_id: str | None = None
    negatives: list[str] = field(default_factory=list)
    negative_ids: list[str | None] = field(default_factory=list)
    positive_score: float | None = None
    negative_scores: list[float] | None = None
    teacher_scores: list[float] | None = None
    source: str = ""
    query_id: str | None = None

    def __post_init__(self) -> None:
        if not self.negative_ids:
            self.negative_ids = [None] * len(self.negatives)
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.query, str) or not self.query.strip():
            raise TrainingDataError("an example's query must be a non-empty string")
        if not isinstance(self.positive, str) or not self.positive.strip():
            raise TrainingDataError("an example's positive must be a non-empty string")
        if not isinstance(self.negatives, list) or not all(isinstance(n, str) for n in self.negatives):
            raise TrainingDataError("negatives must be a list of strings")
        n = len(self.negatives)
        if len(self.negative_ids) != n:
            raise TrainingDataError(f"{len(self.negative_ids)} negative_ids for {n} negatives")
        if self.negative_scores is not None and len(self.negative_scores) != n:
            raise TrainingDataError(f"{len(self.negative_scores)} negative_scores for {n} negatives")
        if self.teacher_scores is not None and len(self.teacher_scores) != n + 1:
            raise TrainingDataError(f"{len(self.teacher_scores)} teacher_scores for the positive and {n} negatives "
                                    f"(expected {n + 1}: the positive's first)")
        for name in ("negative_scores", "teacher_scores"):
            values = getattr(self, name)
            if values is not None and not all(_finite(v) for v in values):
                raise TrainingDataError(f"{name} must be finite numbers")
        if self.positive_score is not None and not _finite(self.positive_score):
            raise TrainingDataError("positive_score must be a finite number")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": VERSION, "query": self.query, "positive": self.positive}
        optional = {"query_id": self.query_id, "positive_id": self.positive_id, "positive_score": self.positive_score,
                    "negative_scores": self.negative_scores, "teacher_scores": self.teacher_scores}
        if self.negatives:
            out["negatives"] = self.negatives
            out["negative_ids"] = self.negative_ids
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.source:
            out["source"] = self.source
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TrainingExample:
        if not isinstance(obj, Mapping):
            raise TrainingDataError("expected a JSON object")
        version = obj.get("version", VERSION)
        if version != VERSION:
            raise TrainingDataError(f"unsupported training data version {version!r} (this release reads {VERSION})")
        known = {"version", "query", "positive", "positive_id", "negatives", "negative_ids", "positive_score",
                 "negative_scores", "teacher_scores", "source", "query_id"}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise TrainingDataError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for key in ("query", "positive"):
            if key not in obj:
                raise TrainingDataError(f"missing field {key!r}")
        return cls(query=obj["query"], positive=obj["positive"], positive_id=obj.get("positive_id"),
                   negatives=list(obj.get("negatives") or []), negative_ids=list(obj.get("negative_ids") or []),
                   positive_score=obj.get("positive_score"), negative_scores=obj.get("negative_scores"),
                   teacher_scores=obj.get("teacher_scores"), source=obj.get("source", ""),
                   query_id=obj.get("query_id"))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class TrainingSet(Sequence[TrainingExample]):
    """An ordered list of examples. ``stats`` holds what the builder that made it counted (examples, documents
    skipped and why); it is informational and not saved."""

    def __init__(self, examples: Iterable[TrainingExample] = (), stats: Mapping[str, int] | None = None) -> None:
        self.examples = list(examples)
        self.stats: dict[str, int] = dict(stats or {})

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: Any) -> Any:
        return self.examples[i]

    def __iter__(self) -> Iterator[TrainingExample]:
        return iter(self.examples)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainingSet) and self.examples == other.examples

    def __repr__(self) -> str:
        return f"TrainingSet({len(self)} examples, stats={self.stats})"

    def save(self, path: str | Path) -> Path:
        """Write one JSON object per line, atomically (a reader sees the old file or the whole new one)."""
        path = Path(path)
        lines = [json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in self.examples]
        atomic_write_text(path, "".join(lines))
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainingSet:
        """Read a file written by ``save`` (or by hand); a bad line fails naming the file and line number."""
        path = Path(path)
        if not path.is_file():
            raise InputFormatError("no such training data file", path)
        examples = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    examples.append(TrainingExample.from_json(json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise InputFormatError(f"invalid JSON: {exc.msg}", path, lineno) from None
                except (TrainingDataError, TypeError) as exc:
                    raise InputFormatError(str(exc), path, lineno) from None
        return cls(examples)

    def split(self, dev_fraction: float, seed: int = 0) -> tuple[TrainingSet, TrainingSet]:
        """(train, dev): about ``dev_fraction`` of the distinct queries go to dev, all of a query's examples on
        the same side so dev measures generalisation to unseen queries."""
        if not 0.0 <= dev_fraction < 1.0:
            raise TrainingDataError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
        queries = sorted({e.query for e in self.examples})
        random.Random(seed).shuffle(queries)
        dev_queries = set(queries[:round(len(queries) * dev_fraction)])
        train = [e for e in self.examples if e.query not in dev_queries]
        dev = [e for e in self.examples if e.query in dev_queries]
        return TrainingSet(train), TrainingSet(dev)

    @staticmethod
    def mix(sets: Sequence[TrainingSet], weights: Sequence[float] | None = None, seed: int = 0,
            size: int | None = None) -> TrainingSet:
        """A shuffled mixture. Without ``weights``: every example of every set once. With them: ``size``
        (default: the sets' total) examples, set i contributing ``size * w_i / sum(w)`` of them — drawn without
        repetition while a set lasts, repeated (upsampled) beyond that."""
        if not sets:
            raise TrainingDataError("mix needs at least one training set")
        rng = random.Random(seed)
        if weights is None:
            mixed = [e for s in sets for e in s]
        else:
            if len(weights) != len(sets):
                raise TrainingDataError(f"{len(weights)} weights for {len(sets)} sets")
            if any(not _finite(w) or w < 0 for w in weights) or sum(weights) <= 0:
                raise TrainingDataError(f"weights must be non-negative numbers with a positive sum, got {weights}")
            total = sum(len(s) for s in sets) if size is None else size
            counts = _apportion(total, weights)
            mixed = []
            for s, count in zip(sets, counts):
                if count and not len(s):
                    raise TrainingDataError("a set with a positive weight is empty")
                order = list(range(len(s)))
                while count > 0:
                    rng.shuffle(order)
                    mixed.extend(s[i] for i in order[:count])
                    count -= len(order)
        rng.shuffle(mixed)
        return TrainingSet(mixed)


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Integer shares of ``total`` proportional to ``weights`` that sum to ``total`` (largest remainders)."""
    exact = [total * w / sum(weights) for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[:total - sum(counts)]:
        counts[i] += 1
    return counts
