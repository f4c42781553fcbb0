"""A deterministic, fast bag-of-words encoder for tests: each word a fixed random vector, summed and normalised."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from retrievekit.encoders.base import Encoder
from retrievekit.encoders.registry import register_encoder


class ToyEncoder(Encoder):
    backend = "toy"
    calls = 0  # texts encoded, over all instances (tests count re-encoding)

    def __init__(self, model: str = "toy", *, dim: int = 64, max_length: int = 64, query_prompt: str = "",
                 document_prompt: str = "", pooling: str = "sum", normalize: bool = True, fail_after: int | None = None,
                 **_: Any) -> None:
        self.model, self._dim, self.max_length = model, dim, max_length
        self.query_prompt, self.document_prompt, self.pooling, self.normalize = (query_prompt, document_prompt,
                                                                                 pooling, normalize)
        self.fail_after = fail_after

    @property
    def dim(self) -> int:
        return self._dim

    def spec(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "query_prompt": self.query_prompt,
                "document_prompt": self.document_prompt, "pooling": self.pooling, "normalize": self.normalize,
                "dim": self.dim, "max_length": self.max_length}

    def _word(self, w: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.md5(w.encode()).digest()[:4], "little")
        return np.random.default_rng(seed).standard_normal(self._dim).astype(np.float32)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and ToyEncoder.calls + len(texts) > self.fail_after:
            raise RuntimeError("simulated crash while encoding")
        ToyEncoder.calls += len(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower())[: self.max_length]:
                out[i] += self._word(w)
        return out


register_encoder("toy", ToyEncoder)
