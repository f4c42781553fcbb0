"""Scalar tiers: float32 (reference), float16, and int8 with per-dimension calibrated ranges."""

from __future__ import annotations

from typing import Any

import numpy as np

from retrievekit.index.dense.tiers.base import TierError, VectorTier, as_matrix, register_tier

__all__ = ["Float16Tier", "Float32Tier", "Int8Tier"]

# Codes are converted to float32 this many rows at a time, so scoring a large code matrix stays memory-bounded.
SCORE_CHUNK = 8192  # 12 MB of converted float32 at dim 384: stays near cache


class Float32Tier(VectorTier):
    """Uncompressed float32: exact inner products (the reference every other tier is measured against)."""

    kind = "float32"
    dtype: type[np.floating[Any]] = np.float32

    def __init__(self) -> None:
        super().__init__()
        self.name = self.kind

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        self.dim = as_matrix(sample, "sample").shape[1]

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        return as_matrix(vectors, "vectors", self._require_fitted()).astype(self.dtype, copy=False)

    def scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        q = as_matrix(queries, "queries", self._require_fitted())
        out = np.empty((q.shape[0], codes.shape[0]), dtype=np.float32)
        for start in range(0, codes.shape[0], SCORE_CHUNK):
            block = np.asarray(codes[start:start + SCORE_CHUNK], dtype=np.float32)
            out[:, start:start + block.shape[0]] = q @ block.T
        return out

    def bytes_per_vector(self, dim: int | None = None) -> float:
        return float(np.dtype(self.dtype).itemsize * self._dim_arg(dim))

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        tier = cls()
        tier.dim = config["dim"]
        return tier


class Float16Tier(Float32Tier):
    """Half precision: 2 bytes per dimension, scores computed in float32 on converted chunks."""

    kind = "float16"
    dtype = np.float16


class Int8Tier(VectorTier):
    """One signed byte per dimension over a per-dimension range calibrated on the sample.

    The range of dimension j is [lo_j, hi_j] = the ``low``/``high`` percentiles of the sample (outliers are
    clipped, so the 256 levels are spent where the data is). A value decodes to ``scale_j * code + offset_j``, so
    q · x ≈ (q * scale) · code + q · offset: one float32 matmul per chunk plus a per-query constant.
    """

    kind = "int8"

    def __init__(self, low: float = 0.1, high: float = 99.9) -> None:
        super().__init__()
        if not 0.0 <= low < high <= 100.0:
            raise TierError(f"int8 percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
        self.name = self.kind
        self.low, self.high = float(low), float(high)
        self.scale = np.zeros(0, dtype=np.float32)
        self.offset = np.zeros(0, dtype=np.float32)

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        x = as_matrix(sample, "sample")
        if x.shape[0] == 0:
            raise TierError("int8 needs a non-empty sample to calibrate its ranges")
        lo, hi = np.percentile(x, [self.low, self.high], axis=0)
        scale = np.maximum(hi - lo, 1e-12) / 255.0
        self.scale = scale.astype(np.float32)
        self.offset = (lo + 128.0 * scale).astype(np.float32)  # code -128 decodes to lo, +127 to hi
        self.dim = x.shape[1]

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        x = as_matrix(vectors, "vectors", self._require_fitted())
        codes = np.rint((x - self.offset) / self.scale)
        return np.clip(codes, -128, 127).astype(np.int8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Approximate float32 vectors of ``codes``."""
        self._require_fitted()
        return np.asarray(codes, dtype=np.float32) * self.scale + self.offset

    def scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        q = as_matrix(queries, "queries", self._require_fitted())
        qs = q * self.scale
        bias = (q @ self.offset)[:, None]
        out = np.empty((q.shape[0], codes.shape[0]), dtype=np.float32)
        for start in range(0, codes.shape[0], SCORE_CHUNK):
            block = np.asarray(codes[start:start + SCORE_CHUNK], dtype=np.float32)
            out[:, start:start + block.shape[0]] = qs @ block.T + bias
        return out

    def bytes_per_vector(self, dim: int | None = None) -> float:
        return float(self._dim_arg(dim))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "low": self.low, "high": self.high}

    def state(self) -> dict[str, np.ndarray]:
        return {"scale": self.scale, "offset": self.offset}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        tier = cls(low=config["low"], high=config["high"])
        tier.scale = np.asarray(state["scale"], dtype=np.float32)
        tier.offset = np.asarray(state["offset"], dtype=np.float32)
        tier.dim = config["dim"]
        return tier


def _no_arg(kind: str, cls: type[VectorTier]) -> Any:
    def factory(arg: str | None, **options: Any) -> VectorTier:
        if arg is not None:
            raise TierError(f"tier {kind!r} takes no ':' argument, got {kind}:{arg}")
        return cls(**options)

    return factory


register_tier("float32", _no_arg("float32", Float32Tier), Float32Tier, "float32")
register_tier("float16", _no_arg("float16", Float16Tier), Float16Tier, "float16")
register_tier("int8", _no_arg("int8", Int8Tier), Int8Tier, "int8")
