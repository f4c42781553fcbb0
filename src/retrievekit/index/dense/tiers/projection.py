"""Linear dimensionality reduction tiers: PCA, Matryoshka truncation, LeanVec-ID and LeanVec-OOD.

Each keeps float32 vectors of a smaller dimension d (4·d bytes) and scores by inner product in the reduced space;
follow one with a storage tier ("pca:192+int8") to compress further. PCA, Matryoshka and LeanVec-ID reduce by a
(dim, d) matrix P with orthonormal columns, so q·x ≈ (qP)·(xP) where P spans the directions that matter for the
inner products; LeanVec-OOD maps queries and documents by two different matrices.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from retrievekit.index.dense.tiers.base import TierError, VectorTier, as_matrix, register_tier

__all__ = ["LeanVecOODTier", "LeanVecTier", "MatryoshkaTier", "PCATier", "ProjectionTier"]

logger = logging.getLogger(__name__)


def _top_eigenvectors(sym: np.ndarray, d: int) -> np.ndarray:
    """(dim, d) eigenvectors of the symmetric ``sym`` with the largest eigenvalues, largest first."""
    values, vectors = np.linalg.eigh(sym.astype(np.float64))
    order = np.argsort(values)[::-1][:d]
    return vectors[:, order]


def _second_moment(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (x64.T @ x64) / max(x.shape[0], 1)


class ProjectionTier(VectorTier):
    """Base of the projections: codes are float32 (n, d) = (x − doc_shift) P, queries are q P.

    ``doc_shift`` is zero except for PCA. Scores add q · doc_shift back so that, when P is the identity, they equal
    the exact inner products.
    """

    is_projection = True
    prefix = ""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        if int(out_dim) < 1:
            raise TierError(f"{self.prefix}:<d> needs a positive target dimension, got {out_dim!r}")
        self.out_dim = int(out_dim)
        self.name = f"{self.prefix}:{self.out_dim}"
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        self.shift = np.zeros(0, dtype=np.float32)

    def _check_fit_input(self, sample: np.ndarray) -> np.ndarray:
        x = as_matrix(sample, "sample")
        if self.out_dim > x.shape[1]:
            raise TierError(f"{self.name}: target dimension {self.out_dim} exceeds the vector dimension {x.shape[1]}")
        if x.shape[0] == 0:
            raise TierError(f"{self.name} needs a non-empty sample")
        return x

    def _set(self, matrix: np.ndarray, shift: np.ndarray | None = None) -> None:
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        dim = self.matrix.shape[0]
        self.shift = np.zeros(dim, dtype=np.float32) if shift is None else shift.astype(np.float32)
        self.dim = dim

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Reduced document vectors (n, d)."""
        x = as_matrix(vectors, "vectors", self._require_fitted())
        return (x - self.shift) @ self.matrix

    def project_queries(self, queries: np.ndarray) -> np.ndarray:
        """Reduced query vectors (m, d)."""
        return as_matrix(queries, "queries", self._require_fitted()) @ self.matrix

    def query_bias(self, queries: np.ndarray) -> np.ndarray:
        """Per-query constant (m,) added to reduced-space scores (q · doc_shift)."""
        return as_matrix(queries, "queries", self._require_fitted()) @ self.shift

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        return self.project(vectors).astype(np.float32)

    def scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        q = self.project_queries(queries)
        return (q @ np.asarray(codes, dtype=np.float32).T + self.query_bias(queries)[:, None]).astype(np.float32)

    def bytes_per_vector(self, dim: int | None = None) -> float:
        return 4.0 * self.out_dim

    def config(self) -> dict[str, Any]:
        return {**super().config(), "out_dim": self.out_dim}

    def state(self) -> dict[str, np.ndarray]:
        return {"matrix": self.matrix, "shift": self.shift}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        tier = cls(config["out_dim"])
        tier._set(np.asarray(state["matrix"]), np.asarray(state["shift"]))
        return tier


class PCATier(ProjectionTier):
    """PCA of the documents: P = top-d principal axes of the mean-centred sample.

    Documents are centred by the sample mean μ before projecting; queries are not. Since q·x = q·μ + q·(x − μ),
    ranking by (qP)·((x − μ)P) + q·μ keeps the constant q·μ exact and approximates only the centred part, where
    the principal axes capture the most document variance.
    """

    kind = "pca"
    prefix = "pca"

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        x = self._check_fit_input(sample)
        mean = x.astype(np.float64).mean(axis=0)
        cov = _second_moment(x - mean)
        self._set(_top_eigenvectors(cov, self.out_dim), mean)


class MatryoshkaTier(ProjectionTier):
    """Keep the first d dimensions (for Matryoshka-trained models), renormalised to unit length by default.

    Renormalising makes the truncated score a cosine in the prefix space, which is how such models are trained;
    ``normalize=False`` keeps the raw prefix inner product. Nothing is learned.
    """

    kind = "matryoshka"
    prefix = "matryoshka"

    def __init__(self, out_dim: int, normalize: bool = True) -> None:
        super().__init__(out_dim)
        self.normalize = bool(normalize)

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        x = self._check_fit_input(sample)
        self._set(np.eye(x.shape[1], self.out_dim, dtype=np.float32))

    def _norm(self, x: np.ndarray) -> np.ndarray:
        if not self.normalize:
            return x
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norms > 0, norms, 1.0)

    def project(self, vectors: np.ndarray) -> np.ndarray:
        x = as_matrix(vectors, "vectors", self._require_fitted())
        return self._norm(np.ascontiguousarray(x[:, :self.out_dim]))

    def project_queries(self, queries: np.ndarray) -> np.ndarray:
        q = as_matrix(queries, "queries", self._require_fitted())
        return self._norm(np.ascontiguousarray(q[:, :self.out_dim]))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "normalize": self.normalize}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        tier = cls(config["out_dim"], normalize=config["normalize"])
        tier._set(np.asarray(state["matrix"]), np.asarray(state["shift"]))
        return tier


class LeanVecTier(ProjectionTier):
    """LeanVec in-distribution: P = top-d eigenvectors of the document second moment Kx = E[x xᵀ] (uncentred).

    The uncentred moment is what matters for inner products when queries look like documents: it minimises
    E‖x − PPᵀx‖², and hence the error of q·x for q drawn from the same distribution.
    """

    kind = "leanvec"
    prefix = "leanvec"

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        x = self._check_fit_input(sample)
        self._set(_top_eigenvectors(_second_moment(x), self.out_dim))


class LeanVecOODTier(ProjectionTier):
    """LeanVec out-of-distribution: projections learned from both the query and the document distributions.

    The error of the reduced inner product over query/document pairs, with separate query and document maps A, B
    (dim, d), is E[(qᵀ(I − A Bᵀ)(x − μ))²] = tr(Rᵀ Kq R Cx), R = I − A Bᵀ, with Kq the uncentred query second
    moment and Cx the document covariance (documents are centred like PCA: q·μ is added back exactly). Its exact
    minimiser (an Eckart–Young argument on Cx^½ Kq Cx^½; the LeanVec paper, Tepper et al. 2023, reaches the same
    objective by Frank-Wolfe) is A = Cx^½ U, B = Cx^−½ U with U the top-d eigenvectors of Cx^½ Kq Cx^½.
    Few sample queries make Kq rank-deficient and overfit, so Kq is shrunk towards the documents:
    Kq(β) = (1 − β) Kq/‖Kq‖ + β Cx/‖Cx‖, with β on a grid of ``grid`` points in [0, 1] chosen by the loss on
    held-out sample queries. β = 1 is exactly PCA (A Bᵀ = the PCA projector), so PCA is always a candidate.
    """

    kind = "leanvec-ood"
    prefix = "leanvec-ood"

    def __init__(self, out_dim: int, grid: int = 11) -> None:
        super().__init__(out_dim)
        if int(grid) < 2:
            raise TierError(f"leanvec-ood grid needs at least 2 points, got {grid!r}")
        self.grid = int(grid)
        self.beta = float("nan")
        self.query_matrix = np.zeros((0, 0), dtype=np.float32)

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        x = self._check_fit_input(sample)
        if queries is None:
            raise TierError(f"{self.name} learns from queries too: call fit(sample, queries=sample_queries)")
        q = as_matrix(queries, "queries", x.shape[1])
        if q.shape[0] == 0:
            raise TierError(f"{self.name} needs at least one sample query")
        mean = x.astype(np.float64).mean(axis=0)
        cx = _second_moment(x - mean)
        cx_n = cx / np.linalg.norm(cx)
        # Cx^½ and a ridged Cx^−½ (directions without document variance carry no ranking signal).
        values, vectors = np.linalg.eigh(cx)
        values = np.maximum(values, 0.0)
        ridge = 1e-6 * max(float(values.sum()) / len(values), 1e-30)
        root = (vectors * np.sqrt(values)) @ vectors.T
        inv_root = (vectors / np.sqrt(values + ridge)) @ vectors.T
        eye = np.eye(x.shape[1])

        def maps(kq: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
            shrunk = (1.0 - beta) * kq / np.linalg.norm(kq) + beta * cx_n
            u = _top_eigenvectors(root @ shrunk @ root, self.out_dim)
            return root @ u, inv_root @ u  # query map A, document map B

        # β is chosen on held-out queries: with fewer sample queries than target dimensions, the query moment's own
        # span has zero loss on those queries (β = 0) and generalises badly. Fit on even rows, score on odd rows.
        fit_q, held_q = (q[0::2], q[1::2]) if len(q) >= 4 else (q, q)
        kq_fit, kq_held = _second_moment(fit_q), _second_moment(held_q)
        best: tuple[float, float] | None = None
        for beta in np.linspace(0.0, 1.0, self.grid):
            a, b = maps(kq_fit, float(beta))
            residual = eye - a @ b.T
            loss = float(np.trace(residual.T @ kq_held @ residual @ cx))
            if best is None or loss < best[0]:
                best = (loss, float(beta))
        assert best is not None  # the grid is non-empty
        self.beta = best[1]
        logger.debug("%s: beta=%.2f, held-out inner-product loss %.4g", self.name, best[1], best[0])
        a, b = maps(_second_moment(q), self.beta)
        self._set(b, mean)
        self.query_matrix = np.ascontiguousarray(a, dtype=np.float32)

    def project_queries(self, queries: np.ndarray) -> np.ndarray:
        return as_matrix(queries, "queries", self._require_fitted()) @ self.query_matrix

    def config(self) -> dict[str, Any]:
        return {**super().config(), "grid": self.grid, "beta": self.beta}

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "query_matrix": self.query_matrix}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        tier = cls(config["out_dim"], grid=config["grid"])
        tier.beta = float(config["beta"])
        tier._set(np.asarray(state["matrix"]), np.asarray(state["shift"]))
        # Tiers saved before separate query maps existed used one orthonormal matrix for both sides.
        tier.query_matrix = np.ascontiguousarray(state.get("query_matrix", state["matrix"]), dtype=np.float32)
        return tier


def _factory(cls: type[ProjectionTier]) -> Any:
    def make(arg: str | None, **options: Any) -> VectorTier:
        try:
            out_dim = int(arg) if arg is not None else -1
        except ValueError:
            out_dim = -1
        if out_dim < 1:
            raise TierError(f"{cls.prefix}:<d> needs a positive integer target dimension, got {arg!r}")
        return cls(out_dim, **options)

    return make


for _cls in (PCATier, MatryoshkaTier, LeanVecTier, LeanVecOODTier):
    register_tier(_cls.prefix, _factory(_cls), _cls, f"{_cls.prefix}:<d>")
