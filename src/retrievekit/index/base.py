"""The per-segment index interface: every index a segment carries (BM25 postings, dense vectors and their tiers,
learned-sparse impacts) is one ``SegmentIndex`` kind, registered by name below. Storage builds, merges, opens and
garbage-collects segment indexes only through this interface, so a new kind plugs in without touching storage.

Two ways to build, one interface:
  * streaming (BM25): a builder is fed each document as it is added and writes its files when the segment is
    finished; its statistics go into ``segment.json`` under the kind's key. It is always present.
  * model-built (dense, sparse): configured per index name under ``manifest.config[key]`` ({name: config}) and
    encoded at commit from the segment's documents, before the manifest that publishes the segment.
Merges combine the sources' files without re-analysing or re-encoding where they can. ``open`` maps the files at
once (memory maps and open handles stay valid when a later merge deletes the folder under an older snapshot).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from retrievekit.core.document import Document
from retrievekit.core.registry import Registry, registry


class SegmentView(Protocol):
    """What an index needs of a segment (storage's SegmentReader is one)."""

    folder: Path
    name: str
    n_docs: int
    info: dict[str, Any]  # segment.json
    extras: dict[str, Any]  # indexes opened on this segment, cached by the kinds under their file names


class IndexBuilder(Protocol):
    """Streaming construction of one segment's index."""

    @property
    def buffered(self) -> int:
        """In-memory size (postings); the writer starts a new segment past its limit."""

    def add(self, doc: Document) -> None:
        """Index ``doc`` as the next document number."""

    def write(self, folder: Path) -> dict[str, Any]:
        """Write the files (fsynced) into the segment ``folder``; returns the statistics for segment.json."""


# (kind key, index name, config or None for the stored one) -> the index's loaded encoder. Collection passes its
# cached lookup to the writer, so storage never calls back into the façade.
EncoderProvider = Callable[[str, str, Mapping[str, Any] | None], Any]


class SegmentIndex(ABC):
    """One kind of per-segment index."""

    key: ClassVar[str]  # manifest.config key and segment.json key; also the word used in messages
    streaming: ClassVar[bool] = False  # built while documents are added (else by a model at commit)
    prefixes: ClassVar[tuple[str, ...]] = ()  # every name an index of this kind may create in a segment folder;
    # garbage collection removes those no configured index owns (so a streaming kind that is never dropped has none)

    def indexes(self, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """{index name: config} of this kind in a manifest config (a copy)."""
        return dict(config.get(self.key) or {})

    @abstractmethod
    def files(self, config: Mapping[str, Any]) -> set[str]:
        """The names the index with ``config`` owns in a segment folder."""

    def builder(self, config: Mapping[str, Any]) -> Callable[[], IndexBuilder]:
        """Streaming kinds: a factory of builders for new segments (shared set-up, such as the analyzer, made once).
        ``config`` is the manifest config."""
        raise NotImplementedError(f"{self.key} indexes are built by a model at commit")

    def encode(self, folder: Path, config: dict[str, Any], documents: Iterable[Document], n_docs: int, encoder: Any,
               *, skip: set[int] | None = None, progress: bool = False) -> None:
        """Model-built kinds: write the index of the segment in ``folder`` from its ``n_docs`` documents in number
        order (rows in ``skip``, documents already replaced, get no entries). Does nothing if it exists."""
        raise NotImplementedError(f"{self.key} indexes are built as documents are added")

    def load_encoder(self, config: Mapping[str, Any]) -> Any:
        """Model-built kinds: the encoder ``config`` names, loaded."""
        raise NotImplementedError(f"{self.key} indexes have no encoder")

    def encoder_key(self, config: Mapping[str, Any]) -> str:
        """Cache key of the encoder of ``config`` (indexes with the same key share one loaded model)."""
        raise NotImplementedError(f"{self.key} indexes have no encoder")

    @abstractmethod
    def merge(self, folder: Path, sources: Sequence[tuple[SegmentView, np.ndarray]], n_docs: int,
              config: dict[str, Any]) -> dict[str, Any] | None:
        """The index of a merged segment from its sources' ((segment, new number of each old document, -1 =
        dropped)); returns its statistics, or None (writing nothing) when a source lacks it: encode instead."""

    @abstractmethod
    def open(self, segment: SegmentView, config: dict[str, Any], name: str) -> Any:
        """The segment's index, its files mapped now and cached in ``segment.extras``."""

    def stats(self, segment: SegmentView, config: dict[str, Any], name: str) -> dict[str, Any]:
        """Statistics of the segment's index (streaming kinds: those stored in segment.json)."""
        return dict(segment.info.get(self.key) or {})

    def totals(self, stats: Sequence[dict[str, Any]]) -> Any:
        """Streaming kinds: collection-wide statistics from every segment's (BM25: ``CorpusStats``)."""
        return None

    def summary(self, stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Streaming kinds: collection-wide figures for ``Snapshot.info`` from every segment's statistics."""
        return {}


# Kinds by name, imported on first use (each backend module imports this one).
SEGMENT_INDEXES: Registry[SegmentIndex] = registry("segment index")
SEGMENT_INDEXES.register("bm25", "retrievekit.index.bm25.segment:BM25Index",
                         description="BM25 inverted index, built as documents are added")
SEGMENT_INDEXES.register("dense", "retrievekit.index.dense.segment:DenseIndex",
                         description="dense vectors and their compressed/ANN tier, encoded at commit")
SEGMENT_INDEXES.register("sparse", "retrievekit.index.sparse.segment:SparseIndex",
                         description="learned-sparse impact postings, encoded at commit")
SEGMENT_INDEXES.register("imagehash", "retrievekit.index.images.segment:ImageHashIndex",
                         description="perceptual hashes of the documents' images (near duplicates), computed at commit")


@cache
def segment_index(key: str) -> SegmentIndex:
    """The registered kind ``key`` (one shared instance)."""
    return SEGMENT_INDEXES.factory(key)()


def segment_indexes() -> tuple[SegmentIndex, ...]:
    """Every registered kind, in registration order (streaming kinds first among the built-ins)."""
    return tuple(segment_index(name) for name in SEGMENT_INDEXES.names())


def streaming_indexes() -> tuple[SegmentIndex, ...]:
    return tuple(k for k in segment_indexes() if k.streaming)


def model_indexes() -> tuple[SegmentIndex, ...]:
    return tuple(k for k in segment_indexes() if not k.streaming)
