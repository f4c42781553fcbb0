"""Compressed vector storage tiers for dense retrieval, selected by name.

``get_tier("int8")``, ``"float16"``, ``"binary"``, ``"multibit:2"``, ``"pca:192"``, ``"matryoshka:192"``,
``"leanvec:192"``, ``"leanvec-ood:192"``, ``"pq:48"``, ``"opq:48"`` and a projection followed by a storage tier
(``"pca:192+int8"``). Fit on a sample, encode documents, then ``search_compressed`` for candidates + exact
rescoring. Persist with ``save_tier``/``load_tier`` (JSON manifest + .npy arrays).
"""

from retrievekit.index.dense.tiers.base import (
    TierError,
    VectorTier,
    available_tiers,
    get_tier,
    load_tier,
    register_class,
    register_tier,
    save_tier,
    tier_from_state,
)
from retrievekit.index.dense.tiers.binary import BinaryTier, MultiBitTier, hamming_distances, pack_signs
from retrievekit.index.dense.tiers.composed import ComposedTier
from retrievekit.index.dense.tiers.pq import OPQTier, PQTier
from retrievekit.index.dense.tiers.projection import (
    LeanVecOODTier,
    LeanVecTier,
    MatryoshkaTier,
    PCATier,
    ProjectionTier,
)
from retrievekit.index.dense.tiers.rescore import search_compressed
from retrievekit.index.dense.tiers.scalar import Float16Tier, Float32Tier, Int8Tier

__all__ = [
    "BinaryTier",
    "ComposedTier",
    "Float16Tier",
    "Float32Tier",
    "Int8Tier",
    "LeanVecOODTier",
    "LeanVecTier",
    "MatryoshkaTier",
    "MultiBitTier",
    "OPQTier",
    "PCATier",
    "PQTier",
    "ProjectionTier",
    "TierError",
    "VectorTier",
    "available_tiers",
    "get_tier",
    "hamming_distances",
    "load_tier",
    "pack_signs",
    "register_class",
    "register_tier",
    "save_tier",
    "search_compressed",
    "tier_from_state",
]
