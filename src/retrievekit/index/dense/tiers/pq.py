"""Product quantisation (FAISS) with optional OPQ rotation, scored by asymmetric inner-product lookup tables.

FAISS trains the codebooks (and the OPQ rotation) and encodes; the learned arrays are stored plainly (centroids
(M, 256, dim/M), rotation (dim, dim)), so loading and scoring need no FAISS object and nothing is pickled.
Scoring builds, per query, the table of inner products of each query sub-vector with each centroid and sums
M table lookups per document.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retrievekit.core.errors import require
from retrievekit.index.dense.tiers.base import TierError, VectorTier, as_matrix, register_tier

__all__ = ["OPQTier", "PQTier"]

NBITS = 8
CHUNK_ROWS = 65536


def _faiss() -> Any:
    return require("faiss", "ann")


class PQTier(VectorTier):
    """``m`` sub-quantisers of 256 centroids each: ``m`` bytes per vector; dim must be divisible by ``m``."""

    kind = "pq"
    prefix = "pq"

    def __init__(self, m: int) -> None:
        super().__init__()
        if int(m) < 1:
            raise TierError(f"{self.prefix}:<M> needs a positive number of sub-quantisers, got {m!r}")
        self.m = int(m)
        self.name = f"{self.prefix}:{self.m}"
        self.centroids = np.zeros((0, 0, 0), dtype=np.float32)
        self.rotation: np.ndarray | None = None
        self._pq: Any = None

    def _check_fit_input(self, sample: np.ndarray) -> np.ndarray:
        x = as_matrix(sample, "sample")
        if x.shape[1] % self.m:
            divisors = [k for k in range(1, x.shape[1] + 1) if x.shape[1] % k == 0]
            raise TierError(f"{self.name}: dimension {x.shape[1]} is not divisible by M={self.m}; "
                            f"valid M: {divisors}")
        if x.shape[0] < (1 << NBITS):
            raise TierError(f"{self.name}: training needs at least {1 << NBITS} sample vectors, got {x.shape[0]}")
        return x

    def _train_pq(self, x: np.ndarray) -> None:
        faiss = _faiss()
        pq = faiss.ProductQuantizer(x.shape[1], self.m, NBITS)
        pq.train(x)
        self.centroids = faiss.vector_to_array(pq.centroids).reshape(self.m, 1 << NBITS, -1).astype(np.float32)
        self._pq = pq
        self.dim = x.shape[1]

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        self._train_pq(self._check_fit_input(sample))

    def _quantizer(self) -> Any:
        if self._pq is None:  # rebuilt lazily after loading
            faiss = _faiss()
            pq = faiss.ProductQuantizer(self._require_fitted(), self.m, NBITS)
            faiss.copy_array_to_vector(np.ascontiguousarray(self.centroids, dtype=np.float32).ravel(), pq.centroids)
            self._pq = pq
        return self._pq

    def _rotate(self, x: np.ndarray) -> np.ndarray:
        return x if self.rotation is None else np.ascontiguousarray(x @ self.rotation.T)

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        x = self._rotate(as_matrix(vectors, "vectors", self._require_fitted()))
        return np.asarray(self._quantizer().compute_codes(x), dtype=np.uint8).reshape(x.shape[0], self.m)

    def tables(self, queries: np.ndarray) -> np.ndarray:
        """float32 (m_queries, M, 256): inner product of each query sub-vector with each centroid."""
        q = self._rotate(as_matrix(queries, "queries", self._require_fitted()))
        sub = q.reshape(q.shape[0], self.m, -1)
        return np.einsum("qjs,jks->qjk", sub, self.centroids, optimize=True).astype(np.float32)

    def scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        lut = self.tables(queries)
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.m:
            raise TierError(f"{self.name} codes must be (n, {self.m}) uint8, got shape {codes.shape}")
        out = np.zeros((lut.shape[0], codes.shape[0]), dtype=np.float32)
        for start in range(0, codes.shape[0], CHUNK_ROWS):
            block = np.ascontiguousarray(codes[start:start + CHUNK_ROWS].T)  # (M, rows): one contiguous row per j
            view = out[:, start:start + block.shape[1]]
            for j in range(self.m):
                view += lut[:, j, block[j]]
        return out

    def bytes_per_vector(self, dim: int | None = None) -> float:
        return float(self.m)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "m": self.m, "nbits": NBITS}

    def state(self) -> dict[str, np.ndarray]:
        out = {"centroids": self.centroids}
        if self.rotation is not None:
            out["rotation"] = self.rotation
        return out

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        tier = cls(config["m"])
        tier.centroids = np.asarray(state["centroids"], dtype=np.float32)
        if "rotation" in state:
            tier.rotation = np.asarray(state["rotation"], dtype=np.float32)
        tier.dim = config["dim"]
        return tier


class OPQTier(PQTier):
    """PQ after an orthogonal rotation learned by FAISS's OPQ (balances variance across sub-spaces).

    The rotation R is orthonormal, so (Rq)·(Rx) = q·x: queries are rotated and scored exactly like PQ.
    """

    kind = "opq"
    prefix = "opq"

    def __init__(self, m: int, iterations: int = 20) -> None:
        super().__init__(m)
        self.iterations = int(iterations)

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        x = self._check_fit_input(sample)
        faiss = _faiss()
        opq = faiss.OPQMatrix(x.shape[1], self.m)
        opq.niter = self.iterations
        opq.train(x)
        self.rotation = faiss.vector_to_array(opq.A).reshape(x.shape[1], x.shape[1]).astype(np.float32)
        self._train_pq(self._rotate(x))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "iterations": self.iterations}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        tier = cls(config["m"], iterations=config["iterations"])
        tier.centroids = np.asarray(state["centroids"], dtype=np.float32)
        tier.rotation = np.asarray(state["rotation"], dtype=np.float32)
        tier.dim = config["dim"]
        return tier


def _factory(cls: type[PQTier]) -> Any:
    def make(arg: str | None, **options: Any) -> VectorTier:
        try:
            m = int(arg) if arg is not None else -1
        except ValueError:
            m = -1
        if m < 1:
            raise TierError(f"{cls.prefix}:<M> needs a positive integer number of sub-quantisers, got {arg!r}")
        return cls(m, **options)

    return make


register_tier("pq", _factory(PQTier), PQTier, "pq:<M>", extra="ann", requires=["faiss"],
              description="product quantization, M sub-quantizers of 8 bits")
register_tier("opq", _factory(OPQTier), OPQTier, "opq:<M>", extra="ann", requires=["faiss"],
              description="optimized (rotated) product quantization")
