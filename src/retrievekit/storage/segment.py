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
import shutil
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError
from retrievekit.core.files import fsync_dir, fsync_write_array, fsync_write_text, load_array
from retrievekit.core.filters import json_type
from retrievekit.index.base import IndexBuilder, streaming_indexes

MAX_CACHED_COLUMNS = 16  # metadata columns a reader keeps for filters, least recently used dropped first
COLUMN_CACHE_BYTES = 64 << 20  # and their estimated size


class FieldTypes:
    """Collects, per metadata field, the JSON types of its values (a list: "array" and its elements' types)."""

    def __init__(self) -> None:
        self.types: dict[str, set[str]] = {}

    def add(self, metadata: Mapping[str, Any]) -> None:
        for name, value in metadata.items():
            kinds = self.types.setdefault(name, set())
            if isinstance(value, list):
                kinds.add("array")
                kinds.update(json_type(v) for v in value)
            else:
                kinds.add(json_type(value))

    def frozen(self) -> dict[str, frozenset[str]]:
        return {name: frozenset(kinds) for name, kinds in self.types.items()}


def index_builders(config: Mapping[str, Any]) -> dict[str, Callable[[], IndexBuilder]]:
    """Builder factories of the streaming indexes of a collection with manifest ``config``, by kind key."""
    return {kind.key: kind.builder(config) for kind in streaming_indexes()}


# json.dumps(..., ensure_ascii=False) builds a new encoder on every call; documents are written one by one
_encode_json = json.JSONEncoder(ensure_ascii=False).encode


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
        line = _encode_json(doc.to_json()).encode("utf-8") + b"\n"
        self._docs.write(line)
        self._offsets.append(self._offsets[-1] + len(line))
        self._meta.write(_encode_json(doc.metadata).encode("utf-8") + b"\n" if doc.metadata else b"{}\n")
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

    def abort(self, remove: bool = True) -> None:
        """Close (and unless told not to, delete) the unfinished segment. Never raises: on a full disk, closing
        flushes the buffer and fails again (the file is closed all the same), and the cleanup must go on."""
        for f in (self._docs, self._meta):
            try:
                f.close()
            except OSError:
                pass
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)


class SegmentReader:
    """Read access to a finished segment. Files are opened (or memory-mapped) up front, so a concurrent merge that
    deletes the folder does not disturb a reader holding an older snapshot."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name
        reading = "segment.json"  # named in the error if anything here fails
        try:
            self.info = json.loads((folder / reading).read_text("utf-8"))
            self.n_docs: int = self.info["docs"]
            reading = "docs.jsonl"
            self._docs_file = open(folder / reading, "rb")  # noqa: SIM115
            reading = "ids.txt"
            self._ids_file = open(folder / reading, "rb")  # noqa: SIM115
            reading = "metadata.jsonl"
            self._meta_file = open(folder / reading, "rb")  # noqa: SIM115
            reading = "doc_offsets.npy"
            self.doc_offsets = load_array(folder / reading)
            if self.doc_offsets.shape != (self.n_docs + 1,):
                raise self.damaged(reading, f"{self.doc_offsets.shape} offsets for {self.n_docs:,} documents")
            size = os.fstat(self._docs_file.fileno()).st_size
            if size < int(self.doc_offsets[-1]):
                raise self.damaged("docs.jsonl", f"truncated ({size:,} bytes where its offsets need "
                                   f"{int(self.doc_offsets[-1]):,})")
            reading = ""
            self.extras: dict[str, Any] = {}  # this segment's opened indexes, cached by their kinds (index/base.py)
            for kind in streaming_indexes():  # always present: opened now, with the segment
                kind.open(self, {}, kind.key)
        except CollectionError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            filename = getattr(exc, "filename", None)
            raise self.damaged(Path(filename).name if filename else reading or None, _reason(exc)) from None
        self._ids: list[str] | None = None
        self._columns: OrderedDict[str, tuple[list[Any], int]] = OrderedDict()  # field -> (values, est. bytes), LRU
        self._field_types: dict[str, frozenset[str]] | None = None
        self._lock = threading.Lock()

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            with self._lock:
                if self._ids is None:
                    self._ids_file.seek(0)
                    ids = self._ids_file.read().decode("utf-8", "replace").split("\n")[:-1]
                    if len(ids) != self.n_docs:
                        raise self.damaged("ids.txt", f"{len(ids):,} ids for {self.n_docs:,} documents")
                    self._ids = ids
        return self._ids

    def document(self, local: int) -> Document:
        start, end = int(self.doc_offsets[local]), int(self.doc_offsets[local + 1])
        data = os.pread(self._docs_file.fileno(), end - start, start)
        try:
            return Document.from_json(json.loads(data))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self.damaged("docs.jsonl", f"document {local + 1} (bytes {start}-{end}) "
                               f"{_reason(exc)}") from None

    def iter_documents(self) -> Iterator[Document]:
        with open(self._docs_file.fileno(), "rb", closefd=False) as f:
            f.seek(0)
            for number, line in enumerate(f, start=1):
                try:
                    yield Document.from_json(json.loads(line))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise self.damaged("docs.jsonl", f"line {number} {_reason(exc)}") from None

    def damaged(self, file: str | None, problem: str) -> CollectionError:
        """The error for a damaged or missing file of this segment: it names the file relative to the collection
        (no server path reaches a client) and how to recover."""
        return damaged_error(self.folder, file, problem)

    def metadata_lines(self) -> list[bytes]:
        """The raw metadata line of every document."""
        with self._lock:
            self._meta_file.seek(0)
            return self._meta_file.readlines()

    def field_types(self, prefetch: Sequence[str] = ()) -> dict[str, frozenset[str]]:
        """Metadata field -> the JSON types its values take (list elements included). Computed by one pass over
        metadata.jsonl on first use (segments are immutable; the stored format stays as it was), which also reads
        and caches the columns of ``prefetch`` so that the filter asking for the types costs no second pass."""
        if self._field_types is None:
            self.metadata_columns(list(prefetch))
        assert self._field_types is not None
        return self._field_types

    def metadata_columns(self, fields: list[str]) -> dict[str, list[Any] | None]:
        """Values of the metadata ``fields`` for every document (None where absent), read in one pass over
        metadata.jsonl; a field no document of this segment has gives None instead of a column. Recently used
        columns are cached, bounded by count and estimated size (a filter may name any field)."""
        with self._lock:
            known = self._field_types
            out: dict[str, list[Any] | None] = {}
            for f in fields:
                if known is not None and f not in known:
                    out[f] = None
                elif f in self._columns:
                    self._columns.move_to_end(f)
                    out[f] = self._columns[f][0]
            missing = [f for f in dict.fromkeys(fields) if f not in out]
            if missing or known is None:
                # present values only: a field named by a filter but held by few documents costs little
                found: dict[str, dict[int, Any]] = {f: {} for f in missing}
                tracker = FieldTypes() if known is None else None
                self._meta_file.seek(0)
                for local, line in enumerate(self._meta_file):
                    meta = json.loads(line)
                    if tracker is not None:
                        tracker.add(meta)
                    for f, values in found.items():
                        value = meta.get(f)
                        if value is not None:
                            values[local] = value
                if tracker is not None:
                    self._field_types = tracker.frozen()
                for f, present in found.items():
                    if not present:
                        out[f] = None
                        continue
                    column: list[Any] = [None] * self.n_docs
                    for local, value in present.items():
                        column[local] = value
                    out[f] = column
                    self._cache_column(f, column)
        return out

    def _cache_column(self, field: str, values: list[Any]) -> None:
        size = 8 * len(values) + sum(sys.getsizeof(v) for v in values if v is not None)
        if size > COLUMN_CACHE_BYTES:
            return
        self._columns[field] = (values, size)
        total = sum(s for _, s in self._columns.values())
        while len(self._columns) > MAX_CACHED_COLUMNS or total > COLUMN_CACHE_BYTES:
            _, (_, dropped) = self._columns.popitem(last=False)
            total -= dropped

    def metadata_column(self, field: str) -> list[Any]:
        """Values of one metadata field for every document (None where absent)."""
        column = self.metadata_columns([field])[field]
        return [None] * self.n_docs if column is None else column

    def close(self) -> None:
        for f in (self._docs_file, self._ids_file, self._meta_file):
            f.close()
        for index in self.extras.values():
            close = getattr(index, "close", None)
            if close is not None:
                close()


_COPY_BYTES = 16 << 20  # stored documents are copied into a merged segment this many bytes at a time


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
    owner_sources: list[np.ndarray] = []  # per kept document (numpy, not Python tuples: a million of those is
    owner_locals: list[np.ndarray] = []   # ~100 MB at a merge's memory peak)
    n_owners = 0
    for si, (reader, deleted) in enumerate(sources):
        live = np.ones(reader.n_docs, bool) if deleted is None else ~np.asarray(deleted, bool)
        locals_ = np.flatnonzero(live)
        keys.append(positions[si][locals_] if positions is not None else np.arange(len(locals_)) + n_owners)
        owner_sources.append(np.full(len(locals_), si, np.int32))
        owner_locals.append(locals_)
        n_owners += len(locals_)
    all_keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    order = np.argsort(all_keys, kind="stable")
    del keys, all_keys
    source_of = np.concatenate(owner_sources)[order] if owner_sources else np.zeros(0, np.int32)
    local_of = np.concatenate(owner_locals)[order] if owner_locals else np.zeros(0, np.int64)
    del order, owner_sources, owner_locals
    n_docs = len(source_of)
    new_docs = [np.full(reader.n_docs, -1, np.int64) for reader, _ in sources]
    sizes = np.zeros(n_docs, np.uint64)  # each kept document's stored bytes, in the merged order
    for si, (reader, _) in enumerate(sources):
        mine = source_of == si
        new_docs[si][local_of[mine]] = np.flatnonzero(mine)
        sizes[mine] = np.diff(np.asarray(reader.doc_offsets, np.uint64))[local_of[mine]]
    offsets = np.zeros(n_docs + 1, np.uint64)
    np.cumsum(sizes, out=offsets[1:])
    del sizes
    folder.mkdir(parents=True)
    _copy_stored(folder, sources, source_of, local_of, offsets)
    del source_of, local_of, offsets  # before the index merges, which have their own peaks
    merge_sources = [(reader, nd) for (reader, _), nd in zip(sources, new_docs)]
    info: dict[str, Any] = {"docs": n_docs}
    for kind in streaming_indexes():
        for index_config in kind.indexes(config).values():
            stats = kind.merge(folder, merge_sources, n_docs, index_config)
            assert stats is not None, "a streaming index always merges"
            info[kind.key] = stats
    fsync_write_text(folder / "segment.json", json.dumps(info))
    fsync_dir(folder)
    return info, new_docs


def _copy_stored(folder: Path, sources: list[tuple[SegmentReader, np.ndarray | None]], source_of: np.ndarray,
                 local_of: np.ndarray, offsets: np.ndarray) -> None:
    """docs.jsonl, metadata.jsonl, ids.txt and doc_offsets.npy of a merged segment: the documents ``local_of`` of
    the sources ``source_of``, in that order."""
    n_docs = len(source_of)
    ids: list[str] = []
    metadata = [reader.metadata_lines() for reader, _ in sources]
    # Copied run by run (documents consecutive in one source, as the parallel ingest's batches are): one read and
    # write per run instead of per document, which made this copy half of the merge's time.
    breaks = np.flatnonzero((np.diff(source_of) != 0) | (np.diff(local_of) != 1)) + 1
    starts = np.concatenate([[0], breaks]).astype(np.int64)
    ends = np.concatenate([breaks, [n_docs]]).astype(np.int64)
    with open(folder / "docs.jsonl", "wb") as docs_out, open(folder / "metadata.jsonl", "wb") as meta_out:
        for a, b in zip(starts.tolist(), ends.tolist()):
            if a == b:
                continue
            si, first = int(source_of[a]), int(local_of[a])
            last = first + (b - a)
            reader = sources[si][0]
            start, end = int(reader.doc_offsets[first]), int(reader.doc_offsets[last])
            for at in range(start, end, _COPY_BYTES):  # a whole segment can be one run: bounded reads
                want = min(_COPY_BYTES, end - at)
                data = os.pread(reader._docs_file.fileno(), want, at)
                if len(data) != want:  # copying it would carry the damage into the merge
                    raise reader.damaged("docs.jsonl", f"truncated within documents {first + 1} to {last}")
                docs_out.write(data)
            meta_out.write(b"".join(metadata[si][first:last]))
            ids.extend(reader.ids[first:last])
        for f in (docs_out, meta_out):
            f.flush()
            os.fsync(f.fileno())
    fsync_write_text(folder / "ids.txt", "".join(i + "\n" for i in ids))
    fsync_write_array(folder / "doc_offsets.npy", offsets)


def damaged_error(segment: Path, file: str | Path | None, problem: str) -> CollectionError:
    """A damaged or missing segment file, named relative to the collection folder (error messages may reach
    HTTP clients: no server path), with the way to recover."""
    name = f"{segment.name}/{Path(file).name}" if file else segment.name
    return CollectionError(
        f"collection {segment.parent.name!r} is damaged: {name}: {problem}. Restore the collection folder from a "
        "backup, or re-create the collection from its source documents"
    )


def _reason(exc: BaseException) -> str:
    """An exception's message without the absolute path an OSError carries."""
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, OSError):
        return f"unreadable ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, KeyError):
        return f"lacks the field {exc}"
    return f"invalid ({type(exc).__name__}: {exc})"


def read_deletes(segment: Path, deletes_file: str, docs: int) -> np.ndarray:
    """A committed deletion mask (bool, one per document); a missing or damaged file is a clear error."""
    try:
        mask = load_array(segment / deletes_file)
    except (OSError, ValueError) as exc:
        raise damaged_error(segment, deletes_file, _reason(exc)) from None
    if mask.shape != (docs,):
        raise damaged_error(segment, deletes_file, f"{mask.shape} flags for {docs:,} documents")
    return np.asarray(mask, dtype=bool)
