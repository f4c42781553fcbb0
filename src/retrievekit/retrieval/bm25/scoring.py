"""Term-weighting functions: Lucene BM25 (default), Robertson, ATIRE, BM25L, BM25+, and Dirichlet-smoothed query
likelihood. Each one is split into a per-term part (``term_weights``: idf, query weight), a per-document part
(``doc_norms``: length normalisation) and a kernel mode, so the compiled kernel computes any of them per posting
from the stored term frequencies; nothing is baked into the index, so k1/b can change at query time.

Kernel modes (see ``_kernels.c``):
  0 saturating: w * tf / (tf + norm[d]) + c
  1 bm25l:      x = tf / norm[d] + delta;  w * x / (k1 + x)
  2 dirichlet:  w * max(0, log(1 + tf * c) + norm[d])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.registry import Registry, registry
from retrievekit.index.bm25.stats import CorpusStats
from retrievekit.retrieval.bm25.lucene_norms import quantized_lengths

MODE_SATURATING, MODE_BM25L, MODE_DIRICHLET = 0, 1, 2


class Scorer(ABC):
    """A ranking function over term frequencies and document lengths."""

    name: ClassVar[str]
    mode: ClassVar[int] = MODE_SATURATING
    k1: float = 0.0
    delta: float = 0.0

    @abstractmethod
    def term_weights(
        self, df: np.ndarray, cf: np.ndarray, query_weights: np.ndarray, stats: CorpusStats
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per query term: (multiplier w, additive constant c) as float64 arrays."""

    @abstractmethod
    def doc_norms(self, lengths: np.ndarray, stats: CorpusStats) -> np.ndarray:
        """Per document float32 array used by the kernel mode."""

    @abstractmethod
    def config(self) -> dict[str, Any]: ...


@dataclass
class LuceneBM25(Scorer):
    """Lucene's BM25Similarity (Lucene >= 8): idf = ln(1 + (N - df + 0.5) / (df + 0.5)), no (k1 + 1) factor,
    document lengths through Lucene's one-byte norm encoding, N = documents with at least one term.
    Defaults k1=0.9, b=0.4 are Anserini's BEIR settings."""

    k1: float = 0.9
    b: float = 0.4
    name: ClassVar[str] = "lucene"

    def term_weights(self, df: np.ndarray, cf: np.ndarray, query_weights: np.ndarray,
                     stats: CorpusStats) -> tuple[np.ndarray, np.ndarray]:
        n = stats.docs_with_terms
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)  # Lucene keeps idf as a float
        return query_weights * idf, np.zeros(len(idf))

    def doc_norms(self, lengths: np.ndarray, stats: CorpusStats) -> np.ndarray:
        # float32 throughout, as Lucene computes its norm cache
        avgdl, k1, b = np.float32(stats.avgdl), np.float32(self.k1), np.float32(self.b)
        qlen = quantized_lengths(lengths).astype(np.float32)
        return (k1 * ((np.float32(1) - b) + b * qlen / avgdl)).astype(np.float32)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "k1": self.k1, "b": self.b}


@dataclass
class _ClassicBM25(Scorer):
    """Shared parts of the (k1 + 1)-scaled variants with exact document lengths."""

    k1: float = 1.5
    b: float = 0.75

    def _idf(self, df: np.ndarray, n: int) -> np.ndarray:
        raise NotImplementedError

    def term_weights(self, df: np.ndarray, cf: np.ndarray, query_weights: np.ndarray,
                     stats: CorpusStats) -> tuple[np.ndarray, np.ndarray]:
        idf = self._idf(df.astype(np.float64), stats.docs)
        return query_weights * idf * (self.k1 + 1.0), np.zeros_like(idf)

    def doc_norms(self, lengths: np.ndarray, stats: CorpusStats) -> np.ndarray:
        avgdl = stats.avgdl or 1.0
        return (self.k1 * (1.0 - self.b + self.b * lengths / avgdl)).astype(np.float32)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "k1": self.k1, "b": self.b}


@dataclass
class RobertsonBM25(_ClassicBM25):
    """Robertson et al.'s original BM25: idf = ln((N - df + 0.5) / (df + 0.5)) (negative for very common terms)."""

    name: ClassVar[str] = "robertson"

    def _idf(self, df: np.ndarray, n: int) -> np.ndarray:
        return np.log((n - df + 0.5) / (df + 0.5))


@dataclass
class AtireBM25(_ClassicBM25):
    """ATIRE's BM25: idf = ln(N / df)."""

    name: ClassVar[str] = "atire"

    def _idf(self, df: np.ndarray, n: int) -> np.ndarray:
        return np.log(n / df)


@dataclass
class BM25Plus(_ClassicBM25):
    """BM25+ (Lv & Zhai 2011): adds delta per matching term so long documents are not over-penalised."""

    delta: float = 1.0
    name: ClassVar[str] = "bm25+"

    def _idf(self, df: np.ndarray, n: int) -> np.ndarray:
        return np.log((n + 1.0) / df)

    def term_weights(self, df: np.ndarray, cf: np.ndarray, query_weights: np.ndarray,
                     stats: CorpusStats) -> tuple[np.ndarray, np.ndarray]:
        idf = self._idf(df.astype(np.float64), stats.docs)
        return query_weights * idf * (self.k1 + 1.0), query_weights * idf * self.delta

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "k1": self.k1, "b": self.b, "delta": self.delta}


@dataclass
class BM25L(_ClassicBM25):
    """BM25L (Lv & Zhai 2011): shifts the length-normalised tf c = tf / (1 - b + b dl/avgdl) by delta."""

    delta: float = 0.5
    name: ClassVar[str] = "bm25l"
    mode: ClassVar[int] = MODE_BM25L

    def _idf(self, df: np.ndarray, n: int) -> np.ndarray:
        return np.log((n + 1.0) / (df + 0.5))

    def doc_norms(self, lengths: np.ndarray, stats: CorpusStats) -> np.ndarray:
        avgdl = stats.avgdl or 1.0
        return (1.0 - self.b + self.b * lengths / avgdl).astype(np.float32)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "k1": self.k1, "b": self.b, "delta": self.delta}


@dataclass
class DirichletLM(Scorer):
    """Query likelihood with Dirichlet smoothing, as Lucene's LMDirichletSimilarity scores it: per matching term
    ln(1 + tf / (mu * p(t|C))) + ln(mu / (dl + mu)), floored at 0, with p(t|C) = (cf + 1) / (total terms + 1).
    Default mu=1000 as in Anserini."""

    mu: float = 1000.0
    name: ClassVar[str] = "dirichlet"
    mode: ClassVar[int] = MODE_DIRICHLET

    def term_weights(self, df: np.ndarray, cf: np.ndarray, query_weights: np.ndarray,
                     stats: CorpusStats) -> tuple[np.ndarray, np.ndarray]:
        p = (cf.astype(np.float64) + 1.0) / (stats.total_terms + 1.0)
        return query_weights.astype(np.float64), 1.0 / (self.mu * p)

    def doc_norms(self, lengths: np.ndarray, stats: CorpusStats) -> np.ndarray:
        return np.log(self.mu / (lengths.astype(np.float64) + self.mu)).astype(np.float32)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "mu": self.mu}


def _parameters(cls: type[Scorer]) -> list[str]:
    return [f for f in cls.__dataclass_fields__ if f not in ("name", "mode")]  # type: ignore[attr-defined]


SCORERS: Registry[Scorer] = registry("scorer", error=RetrievekitError)
for _cls in (LuceneBM25, RobertsonBM25, AtireBM25, BM25L, BM25Plus, DirichletLM):
    SCORERS.register(_cls.name, _cls, description="parameters: " + ", ".join(_parameters(_cls)))


def get_scorer(spec: str | dict[str, Any] | Scorer | None = None, **params: Any) -> Scorer:
    """A scorer by name (``lucene``, ``robertson``, ``atire``, ``bm25l``, ``bm25+``, ``dirichlet``) with
    parameters, from a config dict, or an instance as is."""
    if isinstance(spec, Scorer):
        return spec
    if isinstance(spec, dict):
        params = {**{k: v for k, v in spec.items() if k != "name"}, **params}
        spec = spec.get("name")
    name = spec or "lucene"
    if not isinstance(name, str) or name not in SCORERS.names():  # names are exact ("bm25+" is one name)
        raise RetrievekitError(f"unknown scoring function {name!r}; choose one of: {SCORERS.usages()}")
    cls: type[Scorer] = SCORERS.factory(name)  # type: ignore[assignment]  # the registered factories are classes
    try:
        return cls(**params)
    except TypeError:
        raise RetrievekitError(
            f"bad parameters {params} for scoring function {name!r}; it takes: {', '.join(_parameters(cls))}"
        ) from None
