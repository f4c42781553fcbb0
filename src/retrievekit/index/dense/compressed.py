"""Compressed and approximate search tiers of a dense index, per segment.

The dense index config may carry ``"vectors"``: a compressed candidate tier (``int8``, ``binary``, ``pq:48``,
``leanvec-ood:192`` …, see ``tiers.get_tier``) optionally rescored with the float32 vectors (``+rescore``, the
float file stays on disk, memory-mapped), or an ANN structure (``hnsw``, ``ivf``, ``ivfpq:m=48``, see
``ann.get_ann``). Each segment keeps its tier in ``tier-<key>/`` next to its float vectors: fitted on the
segment's own vectors, rebuilt when segments merge.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.errors import CollectionError, RetrievekitError
from retrievekit.core.files import fsync_dir, read_npy

logger = logging.getLogger(__name__)

ANN_NAMES = ("hnsw", "ivf", "ivfpq")
DEFAULT_OVERSAMPLE = 4.0


def parse_vectors(spec: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """'float32' | None -> None (exact float search); 'TIER[+rescore[:OVERSAMPLE]]' -> {"tier", "rescore",
    "oversample"}; 'hnsw[:opts]' / 'ivf[:opts]' / 'ivfpq:m=48' -> {"ann": ...}."""
    if spec is None or spec == "float32":
        return None
    if isinstance(spec, dict):
        return dict(spec)
    head, plus, tail = spec.partition("+rescore")
    if head.split(":")[0] in ANN_NAMES:
        if plus:
            raise RetrievekitError(f"{spec!r}: ANN indexes search the float vectors already; drop '+rescore'")
        from retrievekit.index.dense.ann import get_ann

        get_ann(head)  # validates the name and options
        return {"ann": head}
    from retrievekit.index.dense.tiers import get_tier

    get_tier(head)  # validates
    out: dict[str, Any] = {"tier": head, "rescore": bool(plus), "oversample": DEFAULT_OVERSAMPLE}
    if tail:
        try:
            out["oversample"] = float(tail.lstrip(":"))
        except ValueError:
            raise RetrievekitError(f"{spec!r}: expected TIER+rescore[:OVERSAMPLE], e.g. binary+rescore:8") from None
    return out


def tier_folder(vectors_file_name: str) -> str:
    return "tier-" + vectors_file_name.removeprefix("vectors-").removesuffix(".npy")


def build_tier(segment: Path, vectors_name: str, vectors: np.ndarray, spec: dict[str, Any]) -> None:
    """Fit and write the segment's tier (atomically: a temporary folder renamed into place)."""
    target = segment / tier_folder(vectors_name)
    if target.exists():
        return
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if "ann" in spec:
        from retrievekit.index.dense.ann import get_ann

        meta: dict[str, Any] = {"ann": spec["ann"], "docs": len(vectors)}
        if len(vectors):
            index = get_ann(spec["ann"])
            try:
                index.build(vectors)
            except RetrievekitError as exc:  # too few vectors to train an IVF quantizer: stay exact
                logger.info("segment %s searched exactly: %s", segment.name, exc)
                meta["exact"] = True
            else:
                index.save(tmp / "ann")
    else:
        from retrievekit.index.dense.tiers import get_tier, save_tier

        meta = {"tier": spec["tier"], "docs": len(vectors)}
        if len(vectors):
            tier = get_tier(spec["tier"])
            sample = vectors[np.sort(np.random.default_rng(0).permutation(len(vectors))[:100_000])]
            try:
                tier.fit(sample)
            except RetrievekitError as exc:  # e.g. PQ needs 256 training vectors: a small segment stays exact
                logger.info("segment %s searched exactly: %s", segment.name, exc)
                meta["exact"] = True
            else:
                save_tier(tier, tmp / "tier")
                np.save(tmp / "codes.npy", tier.encode(vectors), allow_pickle=False)
                meta["bytes_per_vector"] = tier.bytes_per_vector(vectors.shape[1])
    (tmp / "tier.json").write_text(json.dumps(meta))
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(tmp)
    os.replace(tmp, target)
    fsync_dir(segment)


@dataclass
class SegmentTier:
    """A segment's loaded tier: codes (or ANN index) kept in memory, float vectors memory-mapped."""

    spec: dict[str, Any]
    meta: dict[str, Any]
    tier: Any = None
    codes: np.ndarray | None = None
    ann: Any = None

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None,
               vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(local doc numbers, scores) of this segment, best first; -1 / -inf padding."""
        if self.meta["docs"] == 0:
            return np.full((len(queries), k), -1, np.int64), np.full((len(queries), k), -np.inf, np.float32)
        if self.meta.get("exact"):
            from retrievekit.index.dense.exact import exact_search

            return exact_search(queries, [vectors], k, allowed=[allowed])
        if self.ann is not None:
            mask = None if allowed is None else np.asarray(allowed, dtype=bool)
            return self.ann.search(queries, k, allowed=mask)
        from retrievekit.index.dense.tiers.rescore import search_compressed

        assert self.codes is not None  # loaded with the tier
        return search_compressed(queries, self.tier, self.codes, k,
                                 oversample=float(self.spec.get("oversample", DEFAULT_OVERSAMPLE)),
                                 rescore=vectors if self.spec.get("rescore") else None,
                                 allowed=None if allowed is None else np.asarray(allowed, dtype=bool))

    def memory_bytes(self) -> int:
        if self.ann is not None:
            return int(self.ann.memory_bytes())
        state = sum(np.asarray(a).nbytes for a in (self.tier.state().values() if self.tier else []))
        return int((self.codes.nbytes if self.codes is not None else 0) + state)


def load_tier(segment: Path, vectors_name: str, spec: dict[str, Any]) -> SegmentTier:
    folder = segment / tier_folder(vectors_name)
    try:
        meta = json.loads((folder / "tier.json").read_text())
    except FileNotFoundError:
        raise CollectionError(f"segment {segment.name} has no {spec} tier ({folder.name} missing)") from None
    if meta["docs"] == 0 or meta.get("exact"):
        return SegmentTier(spec, meta)
    if "ann" in spec:
        from retrievekit.index.dense.ann import load_ann

        return SegmentTier(spec, meta, ann=load_ann(folder / "ann"))
    from retrievekit.index.dense.tiers import load_tier as load_vector_tier

    codes = read_npy(folder / "codes.npy")  # in memory: the point of a compressed tier
    return SegmentTier(spec, meta, tier=load_vector_tier(folder / "tier"), codes=codes)
