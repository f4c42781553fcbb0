"""A segment: an immutable batch of documents and the indexes built on them, in its own folder.

  ids.txt            document ids, one per line (ids never contain line breaks)
  docs.jsonl         {"id", "title", "text", "metadata"} per line; doc_offsets.npy (uint64, n+1) gives byte ranges
  metadata.jsonl     the metadata dict alone per line, read when a filter needs a column
  bm25/ ...          the indexes built while documents are added (see index/base.py); model-built ones join at commit
  segment.json       {"docs": n, <streaming index key>: its statistics}, written last
Deletions are not stored here at write time: the manifest points at a ``deletes-<generation>.npy`` mask.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError
from retrievekit.core.files import fsync_dir, fsync_write_array, fsync_write_text, load_array
from retrievekit.index.base import IndexBuilder, streaming_indexes


def index_builders(config: Mapping[str, Any]) -> dict[str, Callable[[], IndexBuilder]]:
    """Builder factories of the streaming indexes of a collection with manifest ``config``, by kind key."""
    return {kind.key: kind.builder(config) for kind in streaming_indexes()}


class SegmentWriter:
    """Streams documents to disk and into the streaming indexes' builders; ``finish`` makes the folder complete."""

    def __init__(self, folder: Path, builders: Mapping[str, Callable[[], IndexBuilder]]) -> None:
        self.folder = folder
        folder.mkdir(parents=True)
        self._docs = open(folder / "docs.jsonl", "wb")  # noqa: SIM115
        self._meta = open(folder / "metadata.jsonl", "wb")  # noqa: SIM115
        self._offsets = [0]
        self.ids: list[str] = []
        self.builders = {key: make() for key, make in builders.items()}

    @property
    def n_docs(self) -> int:
        return len(self.ids)

    def add(self, doc: Document) -> int:
        line = json.dumps(doc.to_json(), ensure_ascii=False).encode("utf-8") + b"\n"
        self._docs.write(line)
        self._offsets.append(self._offsets[-1] + len(line))
        self._meta.write(json.dumps(doc.metadata, ensure_ascii=False).encode("utf-8") + b"\n")
        for builder in self.builders.values():
            builder.add(doc)
        self.ids.append(doc.id)
        return len(self.ids) - 1

    @property
    def buffered(self) -> int:
        """The builders' in-memory size (postings)."""
        return sum(b.buffered for b in self.builders.values())

    def finish(self) -> dict[str, Any]:
        for f in (self._docs, self._meta):
            f.flush()
            os.fsync(f.fileno())
            f.close()
        fsync_write_text(self.folder / "ids.txt", "".join(i + "\n" for i in self.ids))
        fsync_write_array(self.folder / "doc_offsets.npy", np.array(self._offsets, dtype=np.uint64))
        info: dict[str, Any] = {"docs": self.n_docs}
        for key, builder in self.builders.items():
            info[key] = builder.write(self.folder)
        fsync_write_text(self.folder / "segment.json", json.dumps(info))
        fsync_dir(self.folder)
        return info

    def abort(self) -> None:
        for f in (self._docs, self._meta):
            if not f.closed:
                f.close()


class SegmentReader:
    """Read access to a finished segment. Files are opened (or memory-mapped) up front, so a concurrent merge that
    deletes the folder does not disturb a reader holding an older snapshot."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name
        try:
            self.info = json.loads((folder / "segment.json").read_text("utf-8"))
            self.n_docs: int = self.info["docs"]
            self._docs_file = open(folder / "docs.jsonl", "rb")  # noqa: SIM115
            self._ids_file = open(folder / "ids.txt", "rb")  # noqa: SIM115
            self._meta_file = open(folder / "metadata.jsonl", "rb")  # noqa: SIM115
            self.doc_offsets = load_array(folder / "doc_offsets.npy")
            self.extras: dict[str, Any] = {}  # this segment's opened indexes, cached by their kinds (index/base.py)
            for kind in streaming_indexes():  # always present: opened now, with the segment
                kind.open(self, {}, kind.key)
        except (OSError, KeyError, ValueError) as exc:
            raise CollectionError(f"segment {folder} is missing or damaged: {exc}") from exc
        self._ids: list[str] | None = None
        self._columns: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            with self._lock:
                if self._ids is None:
                    self._ids_file.seek(0)
                    self._ids = self._ids_file.read().decode("utf-8").split("\n")[:-1]
        return self._ids

    def document(self, local: int) -> Document:
        start, end = int(self.doc_offsets[local]), int(self.doc_offsets[local + 1])
        data = os.pread(self._docs_file.fileno(), end - start, start)
        return Document.from_json(json.loads(data))

    def iter_documents(self) -> Iterator[Document]:
        with open(self._docs_file.fileno(), "rb", closefd=False) as f:
            f.seek(0)
            for line in f:
                yield Document.from_json(json.loads(line))

    def metadata_lines(self) -> list[bytes]:
        """The raw metadata line of every document."""
        with self._lock:
            self._meta_file.seek(0)
            return self._meta_file.readlines()

    def metadata_column(self, field: str) -> list[Any]:
        """Values of one metadata field for every document (None where absent), cached."""
        column = self._columns.get(field)
        if column is None:
            with self._lock:
                self._meta_file.seek(0)
                values = []
                for line in self._meta_file:
                    values.append(json.loads(line).get(field))
                self._columns[field] = column = values
        return column

    def close(self) -> None:
        for f in (self._docs_file, self._ids_file, self._meta_file):
            f.close()
        for index in self.extras.values():
            close = getattr(index, "close", None)
            if close is not None:
                close()


def merge_segments(
    folder: Path, sources: list[tuple[SegmentReader, np.ndarray | None]], config: Mapping[str, Any],
    positions: list[np.ndarray] | None = None,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Write one segment holding the live documents of ``sources`` ((reader, deleted mask or None)): stored
    documents are copied as bytes and the streaming indexes (of manifest ``config``) merged directly — no
    re-analysis. Model-built indexes are the caller's (CollectionWriter._merge_indexes).

    Documents keep the sources' order unless ``positions`` (one sort key per document of each source) gives
    another. Returns the segment info and, per source, each document's new number (-1 if dropped)."""
    keys: list[np.ndarray] = []
    owners: list[tuple[int, int]] = []
    for si, (reader, deleted) in enumerate(sources):
        live = np.ones(reader.n_docs, bool) if deleted is None else ~np.asarray(deleted, bool)
        locals_ = np.flatnonzero(live)
        keys.append(positions[si][locals_] if positions is not None else np.arange(len(locals_)) + len(owners))
        owners.extend((si, int(x)) for x in locals_)
    all_keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    order = np.argsort(all_keys, kind="stable")
    new_docs = [np.full(reader.n_docs, -1, np.int64) for reader, _ in sources]
    folder.mkdir(parents=True)
    offsets = [0]
    ids: list[str] = []
    metadata = [reader.metadata_lines() for reader, _ in sources]
    with open(folder / "docs.jsonl", "wb") as docs_out, open(folder / "metadata.jsonl", "wb") as meta_out:
        for new, idx in enumerate(order):
            si, local = owners[idx]
            reader = sources[si][0]
            new_docs[si][local] = new
            start, end = int(reader.doc_offsets[local]), int(reader.doc_offsets[local + 1])
            line = os.pread(reader._docs_file.fileno(), end - start, start)
            docs_out.write(line)
            offsets.append(offsets[-1] + len(line))
            meta_out.write(metadata[si][local])
            ids.append(reader.ids[local])
        for f in (docs_out, meta_out):
            f.flush()
            os.fsync(f.fileno())
    fsync_write_text(folder / "ids.txt", "".join(i + "\n" for i in ids))
    fsync_write_array(folder / "doc_offsets.npy", np.array(offsets, dtype=np.uint64))
    info: dict[str, Any] = {"docs": len(ids)}
    merge_sources = [(reader, nd) for (reader, _), nd in zip(sources, new_docs)]
    for kind in streaming_indexes():
        for index_config in kind.indexes(config).values():
            stats = kind.merge(folder, merge_sources, len(ids), index_config)
            assert stats is not None, "a streaming index always merges"
            info[kind.key] = stats
    fsync_write_text(folder / "segment.json", json.dumps(info))
    fsync_dir(folder)
    return info, new_docs
