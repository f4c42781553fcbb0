"""A projection followed by a storage tier, e.g. "pca:192+int8": reduce the dimension, then compress."""

from __future__ import annotations

from typing import Any

import numpy as np

from retrievekit.index.dense.tiers.base import TierError, VectorTier, register_class, tier_from_state
from retrievekit.index.dense.tiers.projection import ProjectionTier

__all__ = ["ComposedTier"]


class ComposedTier(VectorTier):
    """``inner`` stores and scores the ``projection``'s reduced vectors (the inner tier is fitted on them)."""

    kind = "composed"

    def __init__(self, projection: VectorTier, inner: VectorTier) -> None:
        super().__init__()
        if not isinstance(projection, ProjectionTier) or inner.is_projection:
            raise TierError("a composed tier is a projection followed by a non-projection tier")
        self.projection, self.inner = projection, inner
        self.name = f"{projection.name}+{inner.name}"
        if projection.fitted and inner.fitted:
            self.dim = projection.dim

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        self.projection.fit(sample, queries)
        reduced_q = None if queries is None else self.projection.project_queries(queries)
        self.inner.fit(self.projection.project(sample), reduced_q)
        self.dim = self.projection.dim

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        self._require_fitted()
        return self.inner.encode(self.projection.project(vectors))

    def scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        self._require_fitted()
        reduced = self.projection.project_queries(queries)
        bias = self.projection.query_bias(queries)
        return self.inner.scores(reduced, codes) + bias[:, None].astype(np.float32)

    def bytes_per_vector(self, dim: int | None = None) -> float:
        return self.inner.bytes_per_vector(self.projection.out_dim)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "projection": self.projection.config(), "inner": self.inner.config()}

    def state(self) -> dict[str, np.ndarray]:
        out = {f"projection.{k}": v for k, v in self.projection.state().items()}
        out.update({f"inner.{k}": v for k, v in self.inner.state().items()})
        return out

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        projection = tier_from_state(config["projection"], part("projection."))
        inner = tier_from_state(config["inner"], part("inner."))
        return cls(projection, inner)


register_class(ComposedTier)  # names with '+' are parsed by get_tier; this is for from_state
