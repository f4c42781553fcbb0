"""The encoder interface: texts in, one float32 matrix out, queries and documents each with their own prompt.

An encoder's ``spec()`` is everything needed to encode the same way again (backend, model, prompts, pooling,
normalisation, dimension, window). Indexes store it, and searching checks the query encoder against it, so queries
are always encoded like the documents were.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.progress import progress_bar

logger = logging.getLogger(__name__)

# The fields that decide what a vector means. The backend is not among them: the ONNX export of a model computes
# the same function as its sentence-transformers original, so either may encode queries for the other's index.
SEMANTIC_FIELDS = ("model", "query_prompt", "document_prompt", "pooling", "normalize", "dim")


class EncoderMismatchError(RetrievekitError):
    """Queries would be encoded differently from the indexed documents."""


class Encoder(ABC):
    """Turns texts into dense vectors. Subclasses implement ``_encode_batch`` (already-prompted texts, one batch)
    and ``dim`` (and ``spec`` if they have more settings); the base class adds prompts, length-sorted batching,
    progress and normalisation."""

    #: registry name of the backend (see ``retrievekit.encoders.registry``)
    backend: str = ""
    query_prompt: str = ""
    document_prompt: str = ""
    normalize: bool = True
    max_length: int = 512

    @property
    @abstractmethod
    def dim(self) -> int: ...

    name: str = ""
    pooling: str = "mean"

    def spec(self) -> dict[str, Any]:
        """JSON-able description: at least backend, model, the prompts, pooling, normalize, dim, max_length."""
        return {"backend": self.backend, "model": self.name, "query_prompt": self.query_prompt,
                "document_prompt": self.document_prompt, "pooling": self.pooling, "normalize": self.normalize,
                "dim": self.dim, "max_length": self.max_length}

    @abstractmethod
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """float32 (len(texts), dim) for one batch of texts that already carry their prompt."""

    # -- token-level helpers, used for length sorting and chunking ----------------------------------------------
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span of each model token of ``text`` (no special tokens). Default: whitespace words."""
        spans, start = [], None
        for i, ch in enumerate(text):
            if ch.isspace():
                if start is not None:
                    spans.append((start, i))
                    start = None
            elif start is None:
                start = i
        if start is not None:
            spans.append((start, len(text)))
        return spans

    # -- public API ----------------------------------------------------------------------------------------------
    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self.encode([self.query_prompt + t for t in texts], batch_size=batch_size, progress=progress)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        return self.encode([self.document_prompt + t for t in texts], batch_size=batch_size, progress=progress)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False,
               desc: str = "encoding") -> np.ndarray:
        """Encode texts as they are (no prompt added), longest first so each batch pads little."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        return self._in_batches(texts, order, self._encode_batch, batch_size=batch_size, progress=progress,
                                desc=desc, what="encoder")

    def _in_batches(self, items: Sequence[Any], order: Sequence[int], encode_batch: Any, *, batch_size: int,
                    progress: bool, desc: str, what: str) -> np.ndarray:
        """``encode_batch`` over ``items`` taken ``batch_size`` at a time in ``order``: one float32 row per item in
        input order, each batch's shape checked, normalised if the encoder normalises."""
        n = len(items)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        bar = progress_bar(progress, n, desc)
        try:
            for start in range(0, n, batch_size):
                idx = list(order[start : start + batch_size])
                vectors = np.asarray(encode_batch([items[i] for i in idx]), dtype=np.float32)
                if vectors.shape != (len(idx), self.dim):
                    raise RetrievekitError(f"{self.backend} {what} returned shape {vectors.shape}, expected "
                                           f"({len(idx)}, {self.dim})")
                out[idx] = vectors
                bar.update(len(idx))
        finally:
            bar.close()
        if self.normalize:
            normalize_rows(out)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec().get('model')!r})"


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows in place (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def check_compatible(indexed: dict[str, Any], query: dict[str, Any], where: str = "the index") -> None:
    """Raise EncoderMismatchError naming every field where the query encoder differs from the indexed one."""
    diffs = [f"{f}: indexed {indexed.get(f)!r}, query encoder {query.get(f)!r}"
             for f in SEMANTIC_FIELDS if indexed.get(f) != query.get(f)]
    if diffs:
        raise EncoderMismatchError(f"the query encoder does not match the encoder of {where}: " + "; ".join(diffs)
                                   + ". Search with the indexed encoder (the default) or re-embed the collection.")

