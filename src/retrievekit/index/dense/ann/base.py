"""Approximate nearest-neighbour indexes: the abstract interface and the FAISS plumbing every backend shares.

An index maps document numbers 0..n-1 (the rows given to ``build`` then ``add``, in order) to vectors and returns
the approximately best inner products. Filtering by an ``allowed`` mask happens inside the FAISS search (an
``IDSelectorBitmap`` in the search parameters), so k filtered hits come back even when most top documents are
excluded. When very few documents are allowed, graph and cluster search both degrade (the walk rarely meets an
allowed node), and scoring the allowed vectors exactly is cheaper anyway: below ``exact_below`` allowed documents the
search reconstructs them and runs :func:`~retrievekit.index.dense.exact.exact_search`.

On disk an index is a folder: ``index.faiss`` (``faiss.write_index``) and ``ann.json`` (type, format version,
constructor options, size), each written to a temporary name and moved into place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from retrievekit.core.errors import RetrievekitError, require
from retrievekit.core.files import atomic_write_text, fsync_dir
from retrievekit.index.dense.exact import exact_search

__all__ = ["ANNError", "ANNIndex", "load_ann"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
CONFIG_FILE = "ann.json"
DEFAULT_EXACT_BELOW = 16384

_KINDS: dict[str, type[ANNIndex]] = {}


class ANNError(RetrievekitError, ValueError):
    """Bad ANN index name, option, input array or index folder; the message says which and what is accepted."""


def faiss_module() -> Any:
    return require("faiss", "ann")


@contextlib.contextmanager
def omp_threads(threads: int | None) -> Iterator[None]:
    """Run FAISS with ``threads`` OpenMP threads, restoring the process-wide setting afterwards."""
    if threads is None:
        yield
        return
    faiss = faiss_module()
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def check_positive_int(name: str, value: Any, *, allow_none: bool = False, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ANNError(f"{name} must be an integer >= {minimum}{' or None' if allow_none else ''}, got {value!r}")


class ANNIndex(ABC):
    """Approximate maximum-inner-product search over float32 vectors (normalise them first for cosine).

    Subclasses set ``kind`` (the registry name) and implement ``_new_index`` (create and train the FAISS index),
    ``_search_params`` (selector and search-time knobs) and ``_options`` (constructor arguments, for ``config``).
    """

    kind: ClassVar[str] = ""

    def __init__(self, *, threads: int | None = None, exact_below: int = DEFAULT_EXACT_BELOW) -> None:
        check_positive_int("threads", threads, allow_none=True)
        check_positive_int("exact_below", exact_below, minimum=0)
        self.threads = None if threads is None else int(threads)
        self.exact_below = int(exact_below)
        self._index: Any = None
        self._dim: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _KINDS[cls.kind] = cls

    # ------------------------------------------------------------------------------------------------ public

    @property
    def ntotal(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def dim(self) -> int | None:
        return self._dim

    def __len__(self) -> int:
        return self.ntotal

    def build(self, vectors: np.ndarray) -> None:
        """(Re)create the index from ``vectors`` (float (n, d)); their rows become document numbers 0..n-1."""
        x = self._check_vectors(vectors, None)
        with omp_threads(self.threads):
            index = self._new_index(x)
            index.add(x)
        self._index, self._dim = index, x.shape[1]
        logger.debug("built %s index over %d vectors of dim %d", self.kind, len(x), x.shape[1])

    def add(self, vectors: np.ndarray) -> None:
        """Append ``vectors``; they are numbered after the existing ones. On an empty index this is ``build``."""
        if self._index is None:
            self.build(vectors)
            return
        x = self._check_vectors(vectors, self._dim)
        if len(x):
            with omp_threads(self.threads):
                self._index.add(x)

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` documents by inner product for each query.

        ``allowed``: None or a bool/uint8 mask of shape (ntotal,); only nonzero documents are returned. Returns
        ``(docs, scores)``, int64 and float32 (m, k), best first; missing hits are -1 / -inf.
        """
        if self._index is None or self._dim is None:
            raise ANNError(f"the {self.kind} index is empty: call build() before search()")
        check_positive_int("k", k)
        k = int(k)
        q = self._check_vectors(queries, self._dim, what="queries")
        mask = self._check_allowed(allowed)
        m = len(q)
        if m == 0 or self.ntotal == 0:
            return np.full((m, k), -1, np.int64), np.full((m, k), -np.inf, np.float32)
        if mask is not None:
            n_allowed = int(np.count_nonzero(mask))
            if n_allowed == self.ntotal:
                mask = None
            elif n_allowed <= self.exact_below:
                return self._exact_on(q, k, np.flatnonzero(mask))
        faiss = faiss_module()
        selector, keep = None, None
        if mask is not None:
            keep = np.packbits(mask, bitorder="little")  # must outlive the search: FAISS holds a raw pointer
            selector = faiss.IDSelectorBitmap(len(keep), faiss.swig_ptr(keep))
        fraction = 1.0 if mask is None else float(np.count_nonzero(mask)) / self.ntotal
        params = self._search_params(selector, k, fraction)
        with omp_threads(self.threads):
            scores, docs = self._index.search(q, k, params=params)
        del keep
        docs = np.ascontiguousarray(docs, dtype=np.int64)
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        scores[docs < 0] = -np.inf  # FAISS pads with -FLT_MAX for inner product
        return docs, scores

    def save(self, folder: str | Path) -> None:
        """Write ``index.faiss`` and ``ann.json`` into ``folder`` (created if missing), each atomically."""
        if self._index is None:
            raise ANNError(f"the {self.kind} index is empty: nothing to save")
        faiss = faiss_module()
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / (INDEX_FILE + ".tmp")
        faiss.write_index(self._index, str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path / INDEX_FILE)
        fsync_dir(path)
        meta = {"type": self.kind, "format_version": FORMAT_VERSION, "config": self.config(),
                "ntotal": self.ntotal, "dim": self._dim, "faiss_version": faiss.__version__}
        atomic_write_text(path / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> ANNIndex:
        """Read an index folder written by ``save``; returns an instance of the class named in ``ann.json``."""
        path = Path(folder)
        try:
            meta = json.loads((path / CONFIG_FILE).read_text("utf-8"))
        except FileNotFoundError as exc:
            raise ANNError(f"{path} is not an ANN index folder: {CONFIG_FILE} is missing") from exc
        except (OSError, ValueError) as exc:
            raise ANNError(f"cannot read {path / CONFIG_FILE}: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise ANNError(f"{path / CONFIG_FILE}: unsupported format version {meta.get('format_version')!r} "
                           f"(this version reads {FORMAT_VERSION})")
        from retrievekit.index.dense.ann import faiss_ann  # noqa: F401  (registers the backends)

        kind = meta.get("type")
        if kind not in _KINDS:
            raise ANNError(f"{path / CONFIG_FILE}: unknown index type {kind!r}; known: {sorted(_KINDS)}")
        target = _KINDS[kind]
        if not issubclass(target, cls):
            raise ANNError(f"{path} holds a {kind!r} index, not a {cls.__name__}")
        obj = target(**meta.get("config", {}))
        faiss = faiss_module()
        try:
            index = faiss.read_index(str(path / INDEX_FILE))
        except RuntimeError as exc:
            raise ANNError(f"cannot read {path / INDEX_FILE}: {exc}") from exc
        if int(index.ntotal) != meta.get("ntotal") or int(index.d) != meta.get("dim"):
            raise ANNError(f"{path}: {INDEX_FILE} holds {index.ntotal} vectors of dim {index.d} but {CONFIG_FILE} "
                           f"says {meta.get('ntotal')} of dim {meta.get('dim')} (interrupted save?)")
        obj._attach(index)
        return obj

    def config(self) -> dict[str, Any]:
        """Constructor options: ``type(self)(**index.config())`` makes an equivalent empty index."""
        return {**self._options(), "threads": self.threads, "exact_below": self.exact_below}

    @abstractmethod
    def memory_bytes(self) -> int:
        """Approximate bytes held by the index (vectors or codes, graph or lists, centroids)."""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({opts}) [{self.ntotal} vectors]"

    # ------------------------------------------------------------------------------------------------ backends

    @abstractmethod
    def _new_index(self, vectors: np.ndarray) -> Any:
        """A new, trained (but empty) FAISS index for vectors like these."""

    @abstractmethod
    def _search_params(self, selector: Any, k: int, allowed_fraction: float) -> Any:
        """FAISS search parameters carrying ``selector`` (None: no filter) and the search-time knobs."""

    @abstractmethod
    def _options(self) -> dict[str, Any]:
        """Backend constructor options."""

    def _attach(self, index: Any) -> None:
        self._index, self._dim = index, int(index.d)

    def _reconstruct(self, docs: np.ndarray) -> np.ndarray:
        return np.asarray(self._index.reconstruct_batch(docs), dtype=np.float32)

    # ------------------------------------------------------------------------------------------------ helpers

    def _exact_on(self, q: np.ndarray, k: int, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out_docs = np.full((len(q), k), -1, np.int64)
        out_scores = np.full((len(q), k), -np.inf, np.float32)
        if docs.size == 0:
            return out_docs, out_scores
        vectors = self._reconstruct(docs.astype(np.int64))
        local, scores = exact_search(q, [vectors], k)
        found = local >= 0
        out_docs[found] = docs[local[found]]
        out_scores[found] = scores[found]
        return out_docs, out_scores

    @staticmethod
    def _check_vectors(vectors: np.ndarray, dim: int | None, what: str = "vectors") -> np.ndarray:
        a = np.asarray(vectors)
        if a.ndim != 2 or a.shape[1] == 0:
            raise ANNError(f"{what} must be a 2-D (n, dim) array, got shape {a.shape}")
        if dim is not None and a.shape[1] != dim:
            raise ANNError(f"{what} must have dim {dim} like the index, got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise ANNError(f"{what} must be floating point, got dtype {a.dtype}")
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            raise ANNError(f"{what} contain NaN or infinite values")
        return a

    def _check_allowed(self, allowed: np.ndarray | None) -> np.ndarray | None:
        if allowed is None:
            return None
        a = np.asarray(allowed)
        if a.shape != (self.ntotal,):
            raise ANNError(f"allowed must have shape ({self.ntotal},) (one flag per document), got {a.shape}")
        if a.dtype == np.uint8:
            return a != 0
        if a.dtype != np.bool_:
            raise ANNError(f"allowed must be a bool or uint8 mask, got dtype {a.dtype}")
        return a


def load_ann(folder: str | Path) -> ANNIndex:
    """Load any ANN index folder written by ``ANNIndex.save``."""
    return ANNIndex.load(folder)


def scaled_effort(base: int, allowed_fraction: float, cap: int = 16) -> int:
    """Search effort raised for a filter: a walk that visits ``base`` nodes meets ``base * fraction`` allowed ones."""
    if allowed_fraction >= 1.0:
        return base
    return int(min(base * cap, math.ceil(base / max(allowed_fraction, 1e-9))))
