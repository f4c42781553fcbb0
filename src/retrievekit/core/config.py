"""Typed settings of a collection and its indexes, as stored in the manifest's ``config``.

Each class reads and writes exactly the JSON layout collections have always had (``from_json(x).to_json() == x``),
because an index's file names are a hash of its JSON config: a dense index written by an older release must map to
the same ``vectors-<hash>.npy``. Open-ended parts stay plain JSON on purpose: an encoder spec belongs to its backend
(prompts, pooling, window, ...), an analyzer config to its analyzer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from retrievekit.core.errors import CollectionError

JSON = dict[str, Any]


def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise CollectionError(f"{where}: missing {key!r}")
    value = data[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise CollectionError(f"{where}: {key!r} must be {names}, got {type(value).__name__}")
    return value


def _fields(data: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = _require(data, "fields", list, where)
    if not value or not all(isinstance(f, str) and f for f in value):
        raise CollectionError(f"{where}: 'fields' must be a non-empty list of field names, got {value!r}")
    return tuple(value)


def _extra(data: Mapping[str, Any], known: Sequence[str]) -> JSON:
    """Keys this release does not know, kept so that writing the config back loses nothing."""
    return {k: v for k, v in data.items() if k not in known}


MAX_WEIGHTED_FIELDS = 16  # each one is a second inverted index of its field: a handful is what anyone needs


def check_field_weights(weights: Any, where: str = "field_weights") -> dict[str, float]:
    """``weights`` ({field: weight}) checked: 1 to ``MAX_WEIGHTED_FIELDS`` non-empty field names, finite weights of 0
    or more, at least one above 0. Returns them as floats, in the given order."""
    if not isinstance(weights, Mapping) or not weights:
        raise CollectionError(f"{where}: expected a non-empty object of field -> weight, e.g. "
                              f'{{"title": 2.0, "text": 1.0}}, got {weights!r}')
    if len(weights) > MAX_WEIGHTED_FIELDS:
        raise CollectionError(f"{where}: {len(weights)} fields; at most {MAX_WEIGHTED_FIELDS} are weighted")
    out: dict[str, float] = {}
    for name, weight in weights.items():
        if not isinstance(name, str) or not name.strip():
            raise CollectionError(f"{where}: field names must be non-empty strings, got {name!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise CollectionError(f"{where}: the weight of {name!r} must be a finite number of 0 or more, "
                                  f"got {weight!r}")
        out[name] = float(weight)
    if not any(out.values()):
        raise CollectionError(f"{where}: every weight is 0; at least one field must count")
    return out


@dataclass(frozen=True)
class BM25Config:
    """The BM25 index: the analyzer, and optionally ``field_weights`` — fields that also get an inverted index of
    their own (per-field statistics) and their default weights in multi-field BM25 (score = sum of weight x BM25 of
    the field; see ``retrieval.bm25.multifield``). Without it, BM25 indexes the collection's fields joined."""

    analyzer: JSON  # the analyzer's own config (see retrievekit.analysis)
    field_weights: dict[str, float] | None = None
    extra: JSON = field(default_factory=dict)

    def to_json(self) -> JSON:
        out: JSON = {"analyzer": self.analyzer}
        if self.field_weights is not None:
            out["field_weights"] = dict(self.field_weights)
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "bm25") -> BM25Config:
        weights = data.get("field_weights")
        return cls(_require(data, "analyzer", (dict, str), where),
                   None if weights is None else check_field_weights(weights, f"{where}: field_weights"),
                   _extra(data, ("analyzer", "field_weights")))


@dataclass(frozen=True)
class DenseIndexConfig:
    """A dense index: the encoder spec (backend, model, prompts, pooling, dim, window), the chunk-and-pool setting
    for long documents, the indexed fields and the search tier (None = exact float32)."""

    encoder: JSON
    fields: tuple[str, ...] = ("title", "text")
    chunking: JSON | None = None  # {"max_tokens", "overlap", "pool"}
    vectors: JSON | None = None  # {"tier", "rescore", "oversample"} or {"ann": spec}
    extra: JSON = field(default_factory=dict)

    def to_json(self) -> JSON:
        out: JSON = {"encoder": self.encoder, "chunking": self.chunking, "fields": list(self.fields)}
        if self.vectors is not None:
            out["vectors"] = self.vectors
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "dense index") -> DenseIndexConfig:
        return cls(_require(data, "encoder", dict, where), _fields(data, where), data.get("chunking"),
                   data.get("vectors"), _extra(data, ("encoder", "chunking", "fields", "vectors")))

    @property
    def tier(self) -> str:
        """The search tier's name as users write it ('float32', 'binary', 'hnsw', ...)."""
        if not self.vectors:
            return "float32"
        return str(self.vectors.get("ann") or self.vectors.get("tier"))


@dataclass(frozen=True)
class SparseIndexConfig:
    """A learned-sparse index: the SPLADE encoder spec, the indexed fields and the integer quantization of weights."""

    encoder: JSON
    fields: tuple[str, ...] = ("title", "text")
    quantization: int = 100
    extra: JSON = field(default_factory=dict)

    def to_json(self) -> JSON:
        return {"encoder": self.encoder, "fields": list(self.fields), "quantization": self.quantization,
                **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "sparse index") -> SparseIndexConfig:
        return cls(_require(data, "encoder", dict, where), _fields(data, where),
                   _require(data, "quantization", int, where), _extra(data, ("encoder", "fields", "quantization")))


@dataclass(frozen=True)
class PassagesConfig:
    """A passage collection: every document is stored as the passages of this chunker spec."""

    chunker: str

    def to_json(self) -> JSON:
        return {"chunker": self.chunker}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "passages") -> PassagesConfig:
        return cls(_require(data, "chunker", str, where))


@dataclass(frozen=True)
class CollectionConfig:
    """Everything a collection was created with and the indexes added since."""

    fields: tuple[str, ...]
    bm25: BM25Config
    dense: dict[str, DenseIndexConfig] = field(default_factory=dict)
    sparse: dict[str, SparseIndexConfig] = field(default_factory=dict)
    passages: PassagesConfig | None = None
    extra: JSON = field(default_factory=dict)

    def to_json(self) -> JSON:
        out: JSON = {"fields": list(self.fields), "bm25": self.bm25.to_json()}
        if self.dense:
            out["dense"] = {name: c.to_json() for name, c in self.dense.items()}
        if self.sparse:
            out["sparse"] = {name: c.to_json() for name, c in self.sparse.items()}
        if self.passages is not None:
            out["passages"] = self.passages.to_json()
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "collection config") -> CollectionConfig:
        if not isinstance(data, Mapping):
            raise CollectionError(f"{where} must be an object, got {type(data).__name__}")
        dense = data.get("dense") or {}
        sparse = data.get("sparse") or {}
        passages = data.get("passages")
        return cls(
            fields=_fields(data, where),
            bm25=BM25Config.from_json(_require(data, "bm25", dict, where), f"{where}: bm25"),
            dense={n: DenseIndexConfig.from_json(c, f"{where}: dense index {n!r}") for n, c in dense.items()},
            sparse={n: SparseIndexConfig.from_json(c, f"{where}: sparse index {n!r}") for n, c in sparse.items()},
            passages=PassagesConfig.from_json(passages, f"{where}: passages") if passages else None,
            extra=_extra(data, ("fields", "bm25", "dense", "sparse", "passages")),
        )
