"""The vector-tier interface, the name registry, and folder persistence (.npy arrays + one JSON manifest).

A tier turns float32 document vectors into compact codes and scores float queries against those codes. Scores are
always "higher is better" and comparable across documents of one query (they rank), not necessarily equal to the
exact inner product.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.files import read_npy
from retrievekit.core.registry import Registry, Spec, SpecError, parse_spec, registry

__all__ = [
    "TierError",
    "VectorTier",
    "available_tiers",
    "get_tier",
    "load_tier",
    "register_class",
    "register_tier",
    "save_tier",
    "tier_from_state",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "tier.json"


class TierError(RetrievekitError, ValueError):
    """Bad tier name, options, input shape, or a tier used before ``fit``; the message says which."""


def as_matrix(x: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
    """``x`` as a C-contiguous float32 (n, d) matrix, checking the width when ``dim`` is known."""
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise TierError(f"{what} must be a 2-d (n, dim) array, got shape {np.shape(x)}")
    if dim is not None and arr.shape[1] != dim:
        raise TierError(f"{what} has dimension {arr.shape[1]}, the tier was fitted on dimension {dim}")
    return np.ascontiguousarray(arr, dtype=np.float32)


class VectorTier(ABC):
    """Compressed storage of dense vectors with approximate inner-product scoring.

    Life cycle: ``fit`` on a float32 sample (and sample queries where the method uses them), ``encode`` documents
    into codes (one row per vector), ``scores`` float queries against codes. ``config``/``state`` persist the
    tier as JSON plus named arrays; ``tier_from_state`` (or the subclass's ``from_state``) rebuilds it.
    """

    #: registry key written into ``config()["type"]``
    kind: ClassVar[str] = ""
    #: projections map vectors into a smaller float space and may be followed by another tier ("pca:192+int8")
    is_projection: ClassVar[bool] = False
    name: str
    dim: int | None

    def __init__(self) -> None:
        self.dim = None

    @property
    def fitted(self) -> bool:
        return self.dim is not None

    def _require_fitted(self) -> int:
        if self.dim is None:
            raise TierError(f"tier {self.name!r} is not fitted; call fit(sample) first")
        return self.dim

    @abstractmethod
    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        """Learn ranges/projections/codebooks from a float32 sample of document vectors (and queries)."""

    @abstractmethod
    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Codes for ``vectors`` (n, dim): one row per vector, dtype chosen by the tier."""

    @abstractmethod
    def scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """float32 (m, n) approximate scores of each query against each code row; higher is better."""

    @abstractmethod
    def bytes_per_vector(self, dim: int | None = None) -> float:
        """Storage of one encoded vector in bytes (``dim`` defaults to the fitted dimension)."""

    def config(self) -> dict[str, Any]:
        """JSON-able options and fitted sizes; ``type`` names the class in the registry."""
        return {"type": self.kind, "name": self.name, "dim": self.dim}

    def state(self) -> dict[str, np.ndarray]:
        """Learned arrays (empty for tiers that learn nothing)."""
        return {}

    @classmethod
    @abstractmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        """Rebuild a fitted tier from ``config()`` and ``state()``."""

    def _dim_arg(self, dim: int | None) -> int:
        if dim is not None:
            return int(dim)
        return self._require_fitted()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


# ---------------------------------------------------------------------------------------------------------------
# Registry: a name prefix ("int8", "pca") maps to a factory taking the text after ':' (or None) and options.

TierFactory = Callable[..., VectorTier]
_CLASSES: dict[str, type[VectorTier]] = {}  # config "type" -> class, for tier_from_state
COMPOSITION = "<projection>:<d>+<tier>, e.g. 'pca:192+int8'"


def _load_builtins() -> None:
    # Imported lazily so that base.py has no import cycle with the modules that register themselves here.
    from retrievekit.index.dense.tiers import binary, composed, pq, projection, scalar  # noqa: F401


TIERS: Registry[VectorTier] = registry("vector tier", error=TierError, loader=_load_builtins)


def register_tier(prefix: str, factory: TierFactory, cls: type[VectorTier], usage: str, *, extra: str | None = None,
                  requires: Sequence[str] = (), description: str = "") -> None:
    """Register ``factory(arg: str | None, **options)`` under ``prefix``; ``usage`` shows the name syntax."""
    TIERS.register(prefix, factory, usage=usage, extra=extra, requires=requires, description=description)
    register_class(cls)


def register_class(cls: type[VectorTier]) -> None:
    """Make ``tier_from_state`` rebuild configs whose ``type`` is ``cls.kind``."""
    _CLASSES[cls.kind] = cls


def available_tiers() -> list[str]:
    """Name patterns accepted by ``get_tier``."""
    return [entry.usage for entry in TIERS] + [COMPOSITION]


def _single(spec: Spec, options: dict[str, Any]) -> VectorTier:
    if spec.name not in TIERS:
        raise TierError(f"unknown vector tier {spec.text!r}; valid names: {', '.join(available_tiers())}")
    entry = TIERS.entry(spec.name)
    try:
        return entry.load()(spec.rest or None, **options)
    except TypeError as exc:
        raise TierError(f"bad options for tier {spec.text!r} (syntax {entry.usage!r}): {exc}") from exc


def get_tier(name: str, **options: Any) -> VectorTier:
    """A new, unfitted tier from its name, e.g. "int8", "binary", "multibit:2", "pca:192+int8", "opq:48".

    ``options`` go to the tier's constructor (to the last stage of a combination).
    """
    if not isinstance(name, str) or not name.strip():
        raise TierError(f"tier name must be a non-empty string; valid names: {', '.join(available_tiers())}")
    try:
        parts = parse_spec(name, what="vector tier")
    except SpecError as exc:
        raise TierError(f"{exc}; valid names: {', '.join(available_tiers())}") from None
    if len(parts) == 1:
        return _single(parts[0], options)
    if len(parts) != 2:
        raise TierError(f"tier {name!r}: at most one '+' (a projection followed by one tier)")
    from retrievekit.index.dense.tiers.composed import ComposedTier

    first, second = _single(parts[0], {}), _single(parts[1], options)
    if not first.is_projection:
        raise TierError(f"tier {name!r}: the part before '+' must be a projection (pca, matryoshka, leanvec, "
                        f"leanvec-ood), got {parts[0].text!r}")
    if second.is_projection:
        raise TierError(f"tier {name!r}: the part after '+' must be a storage tier, not a projection")
    return ComposedTier(first, second)


def tier_from_state(config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
    """Rebuild any registered tier from its ``config()`` and ``state()``."""
    _load_builtins()
    kind = config.get("type")
    cls = _CLASSES.get(str(kind))
    if cls is None:
        raise TierError(f"unknown tier type {kind!r} in config; known types: {', '.join(sorted(_CLASSES))}")
    return cls.from_state(config, state)


def save_tier(tier: VectorTier, folder: str | Path) -> Path:
    """Write ``tier.json`` and one ``<key>.npy`` per state array into ``folder`` (created if needed)."""
    if not tier.fitted:
        raise TierError(f"tier {tier.name!r} is not fitted; nothing to save")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    state = tier.state()
    for key, arr in state.items():
        np.save(path / f"{key}.npy", np.ascontiguousarray(arr), allow_pickle=False)
    manifest = {"format": FORMAT_VERSION, "config": tier.config(), "arrays": sorted(state)}
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return path


def load_tier(folder: str | Path) -> VectorTier:
    """Read a tier written by ``save_tier``."""
    path = Path(folder)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise TierError(f"{path}: no {MANIFEST}; not a saved vector tier") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise TierError(f"{path}: tier format {manifest.get('format')!r} is not supported (expected {FORMAT_VERSION})")
    state = {key: read_npy(path / f"{key}.npy") for key in manifest["arrays"]}
    return tier_from_state(manifest["config"], state)
