"""Static embedding backends: one vector per token, averaged. No transformer runs, so encoding is very fast.

* ``WordLlamaEncoder``: WordLlama token embeddings (default ``l2_supercat``, 256-d, shipped inside the package).
* ``Model2VecEncoder``: a model2vec ``StaticModel`` (a local folder, e.g. one made by
  ``retrievekit.encoders.distill.distill``, or a hub name).

Both average the token vectors of the first ``max_length`` tokens and L2-normalise. ``truncate_dim`` keeps the first
dimensions only (Matryoshka / PCA-ordered models); it is part of the spec so an index rebuilds the same encoder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError, require
from retrievekit.encoders.base import Encoder

logger = logging.getLogger(__name__)

STATIC_POOLING = "static"


def _check_pooling(pooling: str | None, backend: str) -> None:
    if pooling not in (None, STATIC_POOLING):
        raise RetrievekitError(f"the {backend} encoder averages static token vectors; pooling must be "
                               f"{STATIC_POOLING!r}, got {pooling!r}")


class _StaticEncoder(Encoder):
    """Shared settings and spec of the static backends."""

    name: str
    truncate_dim: int | None
    _tokenizer: Any  # a ``tokenizers.Tokenizer``

    def _settings(self, query_prompt: str | None, document_prompt: str | None, normalize: bool | None,
                  max_length: int | None, truncate_dim: int | None) -> None:
        self.query_prompt = query_prompt or ""
        self.document_prompt = document_prompt or ""
        self.normalize = True if normalize is None else bool(normalize)
        self.max_length = int(max_length or 512)
        if self.max_length < 1:
            raise RetrievekitError(f"max_length must be a positive number of tokens, got {max_length}")
        if truncate_dim is not None and truncate_dim < 1:
            raise RetrievekitError(f"truncate_dim must be a positive dimension, got {truncate_dim}")
        self.truncate_dim = truncate_dim

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"backend": self.backend, "model": self.name, "query_prompt": self.query_prompt,
                                "document_prompt": self.document_prompt, "pooling": STATIC_POOLING,
                                "normalize": self.normalize, "dim": self.dim, "max_length": self.max_length}
        if self.truncate_dim is not None:
            spec["truncate_dim"] = self.truncate_dim
        return spec

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [tuple(span) for span in self._tokenizer.encode(text, add_special_tokens=False).offsets]


class WordLlamaEncoder(_StaticEncoder):
    """WordLlama static embeddings. ``model`` is a WordLlama config name (``l2_supercat``, ``l3_supercat``).

    ``cache_dir=None`` loads only what the wordllama package ships (no network: ``l2_supercat`` at 256 dims);
    with a ``cache_dir`` wordllama may download other configs and dimensions there.
    """

    backend = "wordllama"

    def __init__(
        self,
        model: str = "l2_supercat",
        *,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        truncate_dim: int | None = None,
        weights_dim: int = 256,
        cache_dir: str | Path | None = None,
    ) -> None:
        _check_pooling(pooling, self.backend)
        self._settings(query_prompt, document_prompt, normalize, max_length, truncate_dim)
        wordllama = _import_quietly("wordllama")
        self.name = model or "l2_supercat"
        known = wordllama.WordLlama.list_configs().get("wordllama", [])
        if known and self.name not in known:
            raise RetrievekitError(f"unknown WordLlama model {self.name!r}; choose one of {', '.join(known)}")
        offline = cache_dir is None
        try:
            wl = wordllama.WordLlama.load(
                config=self.name, dim=weights_dim,
                trunc_dim=truncate_dim if truncate_dim != weights_dim else None,
                cache_dir=Path(wordllama.__file__).parent if offline else Path(cache_dir).expanduser(),  # type: ignore[arg-type]
                disable_download=offline)
        except FileNotFoundError as exc:
            hint = " (pass cache_dir= to let wordllama download it)" if offline else ""
            raise RetrievekitError(f"cannot load WordLlama {self.name!r} at {weights_dim} dims: {exc}{hint}") from exc
        except ValueError as exc:  # unsupported dims; the message lists the valid ones
            raise RetrievekitError(f"cannot load WordLlama {self.name!r}: {exc}") from exc
        self._embedding = np.ascontiguousarray(wl.embedding, dtype=np.float32)
        self._tokenizer = wl.tokenizer
        self._tokenizer.no_truncation()  # truncated per batch below, spans stay whole-text
        self._tokenizer.enable_padding()
        self._dim = int(self._embedding.shape[1])

    @property
    def dim(self) -> int:
        return self._dim

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        ids = np.array([e.ids[: self.max_length] for e in encodings], dtype=np.int64).reshape(len(texts), -1)
        mask = np.array([e.attention_mask[: self.max_length] for e in encodings], dtype=np.float32)
        mask = mask.reshape(len(texts), -1)
        np.clip(ids, 0, len(self._embedding) - 1, out=ids)
        # (batch, seq) @ gathered (batch, seq, dim) -> masked sum without materialising a product tensor
        summed = np.einsum("bs,bsd->bd", mask, self._embedding[ids])
        return summed / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)


class Model2VecEncoder(_StaticEncoder):
    """A model2vec ``StaticModel`` from a local folder or hub name."""

    backend = "model2vec"

    def __init__(
        self,
        model: str,
        *,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        truncate_dim: int | None = None,
    ) -> None:
        _check_pooling(pooling, self.backend)
        self._settings(query_prompt, document_prompt, normalize, max_length, truncate_dim)
        model2vec = _import_quietly("model2vec")
        path = Path(model).expanduser()
        self.name = str(path.resolve()) if path.is_dir() else model
        try:
            self._model = model2vec.StaticModel.from_pretrained(self.name, force_download=False,
                                                                dimensionality=truncate_dim)
        except (OSError, ValueError) as exc:
            raise RetrievekitError(f"cannot load the model2vec model {model!r}: {exc}. Give a folder saved by "
                                   "StaticModel.save_pretrained (e.g. `retrievekit distill`) or a reachable hub "
                                   "name") from exc
        self._tokenizer = self._model.tokenizer
        self._dim = int(self._model.dim)

    @property
    def dim(self) -> int:
        return self._dim

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, max_length=self.max_length, normalize=False, batch_size=len(texts),
                                     use_multiprocessing=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self._dim)


def _import_quietly(module: str) -> Any:
    """``require`` the module, undoing any root-logger setup it does on import (wordllama calls basicConfig)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return require(module, "static")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
