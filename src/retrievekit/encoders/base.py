"""The encoder interface: texts in, one float32 matrix out, queries and documents each with their own prompt.

An encoder's ``spec()`` is everything needed to encode the same way again (backend, model, prompts, pooling,
normalisation, dimension, window). Indexes store it, and searching checks the query encoder against it, so queries
are always encoded like the documents were.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
    #: padded tokens per batch for encoders that tokenise; None: ``batch_size`` texts of the full window
    token_budget: int | None = None

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
               desc: str = "encoding", token_budget: int | None = None) -> np.ndarray:
        """Encode texts as they are (no prompt added), longest first so each batch pads little.

        Encoders that tokenise (``_tokenize``) do it once for all texts, sort by token count and fill each batch up
        to ``token_budget`` padded tokens (default: the encoder's own ``token_budget``, else ``batch_size`` texts of
        the full window), so short texts go many to a batch and long ones few; the others take ``batch_size``
        texts at a time, sorted by characters."""
        tokenized = self._tokenize(list(texts)) if len(texts) else None
        if tokenized is None:
            order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
            return self._in_batches(texts, order, self._encode_batch, batch_size=batch_size, progress=progress,
                                    desc=desc, what="encoder")
        tokens, lengths = tokenized
        budget = token_budget or self.token_budget or batch_size * self.max_length
        if budget < 1:
            raise RetrievekitError(f"token_budget must be at least 1, got {budget}")
        batches = token_budget_batches(lengths, budget)
        return self._run_batches(len(texts), batches, lambda idx: self._encode_tokens(tokens, idx),
                                 progress=progress, desc=desc, what="encoder")

    def _tokenize(self, texts: list[str]) -> tuple[Any, Sequence[int]] | None:
        """(all texts tokenised once, each text's token count), or None for an encoder that batches by text."""
        return None

    def _encode_tokens(self, tokens: Any, idx: list[int]) -> np.ndarray:
        """float32 (len(idx), dim) for the texts ``idx`` of what ``_tokenize`` returned."""
        raise NotImplementedError(f"{type(self).__name__} tokenises but does not encode tokens")

    def _parallel_batches(self) -> int:
        """How many batches to encode at once, one per thread (1: one after the other). Only for backends whose
        inference releases the GIL and runs a batch well on one core (ONNX Runtime)."""
        return 1

    def _enter_worker(self) -> None:
        """Called in each worker thread before its first batch when batches run in parallel."""
        return None

    def _in_batches(self, items: Sequence[Any], order: Sequence[int], encode_batch: Any, *, batch_size: int,
                    progress: bool, desc: str, what: str) -> np.ndarray:
        """``encode_batch`` over ``items`` taken ``batch_size`` at a time in ``order``: one float32 row per item in
        input order, each batch's shape checked, normalised if the encoder normalises."""
        batches = [list(order[start : start + batch_size]) for start in range(0, len(items), batch_size)]
        return self._run_batches(len(items), batches, lambda idx: encode_batch([items[i] for i in idx]),
                                 progress=progress, desc=desc, what=what)

    def _run_batches(self, n: int, batches: Sequence[list[int]], encode_batch: Any, *, progress: bool, desc: str,
                     what: str) -> np.ndarray:
        """``encode_batch(idx)`` for each batch of indices: one float32 row per item, shapes checked, normalised."""
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        bar = progress_bar(progress, n, desc)
        workers = min(self._parallel_batches(), len(batches))
        executor = ThreadPoolExecutor(workers, initializer=self._enter_worker) if workers > 1 else None
        try:
            results = executor.map(encode_batch, batches) if executor else map(encode_batch, batches)
            for idx, result in zip(batches, results):
                vectors = np.asarray(result, dtype=np.float32)
                if vectors.shape != (len(idx), self.dim):
                    raise RetrievekitError(f"{self.backend} {what} returned shape {vectors.shape}, expected "
                                           f"({len(idx)}, {self.dim})")
                out[idx] = vectors
                bar.update(len(idx))
        finally:
            if executor:
                executor.shutdown(wait=True, cancel_futures=True)
            bar.close()
        if self.normalize:
            normalize_rows(out)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec().get('model')!r})"


def token_budget_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices grouped longest first into batches whose padded size (texts x the batch's longest) stays within
    ``budget`` tokens; a text longer than the budget makes a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: -int(lengths[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # sorted longest first, so a batch's first text is its longest
        if current and (len(current) + 1) * max(1, int(lengths[current[0]])) > budget:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


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

