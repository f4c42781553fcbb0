"""A committed, immutable state of a collection as seen by readers."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError
from retrievekit.core.filters import Filter, check_fields, evaluate_filter, filter_key, parse_filter
from retrievekit.index.base import model_indexes, streaming_indexes
from retrievekit.storage.manifest import Manifest
from retrievekit.storage.segment import SegmentReader, read_deletes


class Snapshot:
    """Segments and deletion masks of one manifest generation. Global document number = segment base + local."""

    def __init__(self, folder: Path, manifest: Manifest, readers: dict[str, SegmentReader]) -> None:
        self.folder = folder
        self.manifest = manifest
        self.settings = manifest.settings  # parsed once: searches read it on every query
        self.generation = manifest.generation
        self.segments: list[SegmentReader] = []
        self.live: list[np.ndarray | None] = []  # uint8 1 = live, None = no deletions
        for entry in manifest.segments:
            reader = readers.get(entry.name)
            if reader is None:
                reader = readers[entry.name] = SegmentReader(folder / entry.name)
            self.segments.append(reader)
            if entry.deletes_file:
                deleted = read_deletes(folder / entry.name, entry.deletes_file, entry.docs)
                self.live.append((~deleted).astype(np.uint8))
            else:
                self.live.append(None)
        self.bases = np.cumsum([0] + [s.n_docs for s in self.segments])
        self._open_indexes()
        # Collection-wide statistics of each streaming index (BM25: N, avgdl for the scorers), from segment.json.
        self.totals = {kind.key: kind.totals([s.info[kind.key] for s in self.segments]) for kind in streaming_indexes()}
        self._masks: OrderedDict[str, list[np.ndarray | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._id_map: dict[str, tuple[int, int]] | None = None
        self._id_array: np.ndarray | None = None
        self._fields: dict[str, frozenset[str]] | None = None
        # False for a shard of a sharded collection: its coordinator checks a filter's fields against every shard,
        # and a field this shard's documents lack just matches nothing here.
        self.check_fields = True

    def _open_indexes(self) -> None:
        """Open every model-built index's files now: a merge may delete an old segment's folder while this snapshot
        is still searched, and an open map stays valid. (Streaming indexes are opened with each segment.)"""
        for kind in model_indexes():
            for name, config in kind.indexes(self.manifest.config).items():
                for seg in self.segments:
                    try:
                        kind.open(seg, config, name)
                    except CollectionError:
                        pass  # reported by the search that needs it

    @property
    def bm25_stats(self) -> Any:
        """The BM25 ``CorpusStats`` (like Lucene's, deleted documents count until their segment is merged away)."""
        return self.totals["bm25"]

    @property
    def id_array(self) -> np.ndarray:
        """All document ids (deleted ones included) as an object array indexed by global document number."""
        if self._id_array is None:
            with self._lock:
                if self._id_array is None:
                    arr = np.empty(int(self.bases[-1]), dtype=object)
                    for seg, base in zip(self.segments, self.bases):
                        arr[base : base + seg.n_docs] = seg.ids
                    self._id_array = arr
        return self._id_array

    @property
    def live_docs(self) -> int:
        return self.manifest.live_docs

    def metadata_fields(self, prefetch: Sequence[str] = ()) -> dict[str, frozenset[str]]:
        """Metadata field -> the JSON types its values take, over every segment (deleted documents included).
        Segments not yet read also read the columns of ``prefetch`` in the same pass."""
        if self._fields is None:
            merged: dict[str, set[str]] = {}
            for seg in self.segments:
                for name, kinds in seg.field_types(prefetch).items():
                    merged.setdefault(name, set()).update(kinds)
            self._fields = {name: frozenset(kinds) for name, kinds in merged.items()}
        return self._fields

    def check_filter(self, filter: Filter) -> None:
        """FilterError if ``filter`` is malformed, too large, names a field no document has or compares a field
        with a type it never holds. A collection without documents has nothing to check against."""
        fields = parse_filter(filter)
        if any(seg.n_docs for seg in self.segments):
            check_fields(filter, self.metadata_fields(prefetch=list(fields)))

    def allowed(self, filter: Filter | None) -> list[np.ndarray | None]:
        """Per segment: uint8 mask of documents a search may return (live and matching ``filter``)."""
        if not filter:
            return self.live
        if self.check_fields:
            self.check_filter(filter)  # before filter_key: bounds the filter's size and nesting
        else:
            parse_filter(filter)  # the size and nesting bounds still hold
        key = filter_key(filter)
        with self._lock:
            cached = self._masks.get(key)
        if cached is not None:
            return cached
        masks: list[np.ndarray | None] = []
        for seg, live in zip(self.segments, self.live):
            mask = evaluate_filter(filter, seg.metadata_columns, seg.n_docs)
            masks.append(mask if live is None else mask & live)
        with self._lock:
            self._masks[key] = masks
            while len(self._masks) > 32:
                self._masks.popitem(last=False)
        return masks

    def id_map(self) -> dict[str, tuple[int, int]]:
        """Live document id -> (segment index, local number); built on first use."""
        if self._id_map is None:
            with self._lock:
                if self._id_map is None:
                    m: dict[str, tuple[int, int]] = {}
                    for si, (seg, live) in enumerate(zip(self.segments, self.live)):
                        for local, doc_id in enumerate(seg.ids):
                            if live is None or live[local]:
                                m[doc_id] = (si, local)
                    self._id_map = m
        return self._id_map

    def get(self, doc_id: str) -> Document | None:
        loc = self.id_map().get(doc_id)
        return None if loc is None else self.segments[loc[0]].document(loc[1])

    def iter_documents(self) -> Iterator[Document]:
        for seg, live in zip(self.segments, self.live):
            for local, doc in enumerate(seg.iter_documents()):
                if live is None or live[local]:
                    yield doc

    def info(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "documents": self.live_docs,
            "deleted_documents": sum(e.deleted for e in self.manifest.segments),
            "segments": len(self.segments),
            **{k: v for kind in streaming_indexes() for k, v in kind.summary([s.info[kind.key] for s in self.segments])
               .items()},
        }
