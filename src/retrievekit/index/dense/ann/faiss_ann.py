"""FAISS backends: HNSW graph (``IndexHNSWFlat``) and inverted lists (``IndexIVFFlat`` / ``IndexIVFPQ``).

Both use the inner-product metric. Search-time knobs are plain attributes (``ef_search``, ``nprobe``,
``k_factor``) read at every ``search`` call, so they can be changed on a built or loaded index.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrievekit.core.registry import Registry, registry
from retrievekit.index.dense.ann.base import (
    DEFAULT_EXACT_BELOW,
    ANNError,
    ANNIndex,
    check_positive_int,
    faiss_module,
    scaled_effort,
)

__all__ = ["HNSWIndex", "IVFIndex", "available_ann", "get_ann"]

logger = logging.getLogger(__name__)

# k-means wants ~39+ points per centroid to be stable; FAISS subsamples above 256 per centroid anyway.
MIN_POINTS_PER_LIST = 39
DEFAULT_TRAIN_POINTS_PER_LIST = 64


class HNSWIndex(ANNIndex):
    """Hierarchical navigable small-world graph over the full float vectors.

    ``m``: neighbours per node (memory: ~8*m bytes per vector on top of the vectors); ``ef_construction``: build
    effort; ``ef_search``: search effort (>= k is used), raised under a filter in proportion to the excluded share.
    """

    kind = "hnsw"

    def __init__(self, m: int = 32, ef_construction: int = 200, ef_search: int = 128, *, threads: int | None = None,
                 exact_below: int = DEFAULT_EXACT_BELOW) -> None:
        super().__init__(threads=threads, exact_below=exact_below)
        check_positive_int("m", m, minimum=2)
        check_positive_int("ef_construction", ef_construction)
        check_positive_int("ef_search", ef_search)
        self.m, self.ef_construction, self.ef_search = int(m), int(ef_construction), int(ef_search)

    def _new_index(self, vectors: np.ndarray) -> Any:
        faiss = faiss_module()
        index = faiss.IndexHNSWFlat(vectors.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def _attach(self, index: Any) -> None:
        faiss = faiss_module()
        if not isinstance(index, faiss.IndexHNSW):
            raise ANNError(f"expected a FAISS HNSW index, found {type(index).__name__}")
        super()._attach(index)

    def _search_params(self, selector: Any, k: int, allowed_fraction: float) -> Any:
        check_positive_int("ef_search", self.ef_search)
        ef = max(k, scaled_effort(self.ef_search, allowed_fraction))
        return faiss_module().SearchParametersHNSW(sel=selector, efSearch=ef)

    def _options(self) -> dict[str, Any]:
        return {"m": self.m, "ef_construction": self.ef_construction, "ef_search": self.ef_search}

    def memory_bytes(self) -> int:
        if self._index is None:
            return 0
        h = self._index.hnsw
        graph = 4 * h.neighbors.size() + 8 * h.offsets.size() + 4 * h.levels.size()
        return int(self.ntotal * self._index.d * 4 + graph)


class IVFIndex(ANNIndex):
    """Inverted lists over k-means cells: ``IndexIVFFlat``, or ``IndexIVFPQ`` when ``pq_m`` is given.

    ``nlist``: cells (None: ~4*sqrt(n), at most n/39); ``nprobe``: cells scanned per query; ``pq_m``: product
    quantiser sub-vectors (must divide the dimension; 8 bits each, so pq_m bytes per vector); ``refine``: with
    PQ, also keep the float vectors and re-score the best ``k_factor * k`` PQ candidates exactly
    (``IndexRefineFlat``); ``train_size``: vectors sampled (seeded) for k-means/PQ training (None: 64 per cell,
    at least 10k).
    """

    kind = "ivf"

    def __init__(self, nlist: int | None = None, nprobe: int = 16, pq_m: int | None = None, *, refine: bool = True,
                 k_factor: float = 4.0, train_size: int | None = None, seed: int = 0, threads: int | None = None,
                 exact_below: int = DEFAULT_EXACT_BELOW) -> None:
        super().__init__(threads=threads, exact_below=exact_below)
        check_positive_int("nlist", nlist, allow_none=True)
        check_positive_int("nprobe", nprobe)
        check_positive_int("pq_m", pq_m, allow_none=True)
        check_positive_int("train_size", train_size, allow_none=True)
        if not isinstance(k_factor, (int, float)) or isinstance(k_factor, bool) or k_factor < 1:
            raise ANNError(f"k_factor must be a number >= 1, got {k_factor!r}")
        self.nlist = None if nlist is None else int(nlist)
        self.nprobe = int(nprobe)
        self.pq_m = None if pq_m is None else int(pq_m)
        self.refine = bool(refine)
        self.k_factor = float(k_factor)
        self.train_size = None if train_size is None else int(train_size)
        self.seed = int(seed)
        self._nlist_used: int | None = None
        self._keep: list[Any] = []  # Python owners of sub-indexes FAISS only points to

    @staticmethod
    def default_nlist(n: int) -> int:
        return max(1, min(round(4 * math.sqrt(n)), n // MIN_POINTS_PER_LIST))

    def _new_index(self, vectors: np.ndarray) -> Any:
        faiss = faiss_module()
        n, d = vectors.shape
        nlist = self.nlist if self.nlist is not None else self.default_nlist(n)
        if n < nlist:
            raise ANNError(f"IVF with nlist={nlist} needs at least {nlist} vectors to train, got {n}")
        if self.pq_m is not None and d % self.pq_m:
            raise ANNError(f"pq_m={self.pq_m} must divide the vector dimension {d}")
        quantizer = faiss.IndexFlatIP(d)
        if self.pq_m is None:
            ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            ivf = faiss.IndexIVFPQ(quantizer, d, nlist, self.pq_m, 8, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = self.seed
        want = self.train_size or max(10_000, DEFAULT_TRAIN_POINTS_PER_LIST * nlist)
        if self.pq_m is not None:
            want = max(want, 256 * MIN_POINTS_PER_LIST)  # 256 PQ centroids per sub-quantiser
        sample = vectors
        if n > want:
            rows = np.sort(np.random.default_rng(self.seed).choice(n, want, replace=False))
            sample = vectors[rows]
        ivf.train(sample)
        # An array direct map lets exact fallback and refinement reconstruct vectors by document number.
        ivf.make_direct_map()
        self._keep = [quantizer, ivf]
        self._nlist_used = nlist
        if self.pq_m is not None and self.refine:
            return faiss.IndexRefineFlat(ivf)
        return ivf

    def _ivf(self) -> Any:
        return faiss_module().extract_index_ivf(self._index)

    def _attach(self, index: Any) -> None:
        faiss = faiss_module()
        try:
            ivf = faiss.extract_index_ivf(index)
        except RuntimeError as exc:
            raise ANNError(f"expected a FAISS IVF index, found {type(index).__name__}") from exc
        super()._attach(index)
        self._keep = []
        self._nlist_used = int(ivf.nlist)

    def _reconstruct(self, docs: np.ndarray) -> np.ndarray:
        faiss = faiss_module()
        if isinstance(self._index, faiss.IndexRefine):  # the float copy: exact, unlike PQ decoding
            return np.asarray(self._index.refine_index.reconstruct_batch(docs), dtype=np.float32)
        return super()._reconstruct(docs)

    def _search_params(self, selector: Any, k: int, allowed_fraction: float) -> Any:
        faiss = faiss_module()
        check_positive_int("nprobe", self.nprobe)
        ivf = faiss.SearchParametersIVF(sel=selector, nprobe=min(self.nprobe, self._nlist_used or self.nprobe))
        if isinstance(self._index, faiss.IndexRefine):
            return faiss.IndexRefineSearchParameters(k_factor=self.k_factor, base_index_params=ivf)
        return ivf

    def _options(self) -> dict[str, Any]:
        return {"nlist": self.nlist if self.nlist is not None else self._nlist_used, "nprobe": self.nprobe,
                "pq_m": self.pq_m, "refine": self.refine, "k_factor": self.k_factor, "train_size": self.train_size,
                "seed": self.seed}

    def memory_bytes(self) -> int:
        if self._index is None:
            return 0
        faiss = faiss_module()
        ivf = self._ivf()
        d, n = int(ivf.d), self.ntotal
        total = int(ivf.nlist) * d * 4  # centroids
        total += n * (int(ivf.code_size) + 8)  # codes + ids in the lists
        total += 8 * n  # direct map
        if self.pq_m is not None:
            total += 256 * d * 4  # PQ codebooks
        if isinstance(self._index, faiss.IndexRefine):
            total += n * d * 4
        return total


# ------------------------------------------------------------------------------------------------ registry

@dataclass(frozen=True)
class _ANNKind:
    """A registered ANN spec name: the class, fixed options and accepted spec keys -> constructor argument."""

    cls: type[ANNIndex]
    fixed: dict[str, Any]
    keys: dict[str, str]

    def __call__(self, **kwargs: Any) -> ANNIndex:
        return self.cls(**{**self.fixed, **kwargs})


ANN: Registry[ANNIndex] = registry("ann index", error=ANNError)
ANN.register("hnsw", _ANNKind(HNSWIndex, {}, {"m": "m", "ef": "ef_search", "ef_search": "ef_search",
                                              "efc": "ef_construction", "ef_construction": "ef_construction"}),
             usage="hnsw[:m=32,ef=128,efc=200]", extra="ann", requires=["faiss"],
             description="HNSW graph over the float vectors")
ANN.register("ivf", _ANNKind(IVFIndex, {}, {"nlist": "nlist", "nprobe": "nprobe", "train_size": "train_size",
                                            "seed": "seed", "pq_m": "pq_m", "refine": "refine",
                                            "k_factor": "k_factor"}),
             usage="ivf[:nlist=1024,nprobe=32]", extra="ann", requires=["faiss"],
             description="inverted lists over k-means clusters")
ANN.register("ivfpq", _ANNKind(IVFIndex, {"pq_m": 48}, {"m": "pq_m", "pq_m": "pq_m", "nlist": "nlist",
                                                        "nprobe": "nprobe", "refine": "refine",
                                                        "k_factor": "k_factor", "train_size": "train_size",
                                                        "seed": "seed"}),
             usage="ivfpq[:m=48,nlist=1024]", extra="ann", requires=["faiss"],
             description="inverted lists of PQ codes, refined with the float vectors")
_COMMON = {"threads": "threads", "exact_below": "exact_below"}


def available_ann() -> list[str]:
    return sorted(ANN.names())


def _parse_value(key: str, text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low == "none":
        return None
    for convert in (int, float):
        try:
            return convert(low)
        except ValueError:
            pass
    raise ANNError(f"option {key!r}: expected a number, true/false or none, got {text!r}")


def get_ann(name: str, **options: Any) -> ANNIndex:
    """An empty ANN index from a spec such as ``"hnsw"``, ``"hnsw:m=32,ef=128"``, ``"ivf:nlist=1024,nprobe=32"``,
    ``"ivfpq:m=48"``; keyword ``options`` (constructor argument names) override the spec's."""
    if not isinstance(name, str):
        raise ANNError(f"ANN index name must be a string, got {type(name).__name__}")
    if not name.strip():
        raise ANNError(f"an ANN index name is needed; choose one of {available_ann()} "
                       f"(e.g. 'hnsw:m=32,ef=128', 'ivf:nlist=1024,nprobe=32', 'ivfpq:m=48')")
    ((spec, entry),) = ANN.parse(name, stages=False)
    factory = entry.load()
    assert isinstance(factory, _ANNKind)
    kind, keys = spec.name, {**factory.keys, **_COMMON}
    kwargs: dict[str, Any] = {}
    # options are key=value, separated by ',' (or ':', the spec grammar's separator)
    for part in filter(None, (p.strip() for p in spec.rest.replace(":", ",").split(","))):
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not eq or key not in keys:
            raise ANNError(f"bad option {part!r} in {name!r}; {kind} accepts key=value with keys {sorted(keys)}")
        kwargs[keys[key]] = _parse_value(key, value)
    accepted = set(keys.values())
    for key, value in options.items():
        if key not in accepted:
            raise ANNError(f"unknown option {key!r} for {kind}; accepted: {sorted(accepted)}")
        kwargs[key] = value
    try:
        return factory(**kwargs)
    except TypeError as exc:  # e.g. a value of the wrong kind reaching a constructor
        raise ANNError(f"bad options for {kind}: {exc}") from exc

