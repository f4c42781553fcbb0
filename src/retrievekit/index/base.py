"""Indexes a model builds per segment (dense vectors, learned-sparse postings), handled by one mechanism.

Each kind is configured under its own key of ``manifest.config`` ({index name: config}). The writer encodes new
segments before the manifest that publishes them, copies an index when segments merge (re-encoding only if a source
lacks it), and removes the segment files of indexes no longer configured; snapshots open every index up front.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SegmentIndexKind:
    key: str  # manifest.config key, also the word used in messages
    encode: Callable[..., None]  # (segment folder, config, encoder, *, skip=None, progress=False)
    merge: Callable[[Path, list[tuple[Path, np.ndarray]], int, dict[str, Any]], bool]  # False: encode instead
    encoder: Callable[[Any, str, dict[str, Any]], Any]  # (collection, index name, config) -> its encoder
    open: Callable[[Any, dict[str, Any], str], Any]  # (segment reader, config, index name): map the files now
    files: Callable[[dict[str, Any]], set[str]]  # names the index owns in a segment folder
    prefixes: tuple[str, ...]  # every name any index of this kind may create in a segment folder


@cache
def segment_index_kinds() -> tuple[SegmentIndexKind, ...]:
    from retrievekit.index.dense.segment import encode_segment, index_files, merge_vectors, segment_vectors
    from retrievekit.index.sparse.segment import (
        FOLDER_PREFIX,
        encode_segment_sparse,
        merge_sparse,
        segment_sparse,
        sparse_folder,
    )

    return (
        SegmentIndexKind("dense", encode_segment, merge_vectors, lambda col, name, c: col.encoder(name, c),
                         segment_vectors, index_files, ("vectors-", "tier-")),
        SegmentIndexKind("sparse", encode_segment_sparse,
                         lambda folder, sources, n, c: merge_sparse(folder, sources, c),
                         lambda col, name, c: col.sparse_encoder(name, c), segment_sparse,
                         lambda c: {sparse_folder(c)}, (FOLDER_PREFIX,)),
    )


def index_kind(key: str) -> SegmentIndexKind:
    return next(k for k in segment_index_kinds() if k.key == key)


def configured(config: dict[str, Any], kind: SegmentIndexKind) -> dict[str, dict[str, Any]]:
    """{index name: config} of one kind in a manifest config (a copy)."""
    return dict(config.get(kind.key) or {})
