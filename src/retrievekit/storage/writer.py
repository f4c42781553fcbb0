"""Adding, updating and deleting documents, published by atomic commits.

Crash safety: new segments and deletion masks are written under names that no manifest references yet and
fsynced; only then is ``manifest.json`` replaced (atomically). A writer killed at any moment therefore leaves the
previous manifest and everything it references intact; its half-written files are removed by the next writer.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis import get_analyzer
from ..document import Document
from ..errors import CollectionError, InputFormatError
from .files import fsync_write_array
from .lock import LOCK_FILE, WriterLock
from .manifest import MANIFEST, Manifest, SegmentEntry
from .segment import SegmentReader, SegmentWriter, merge_segments

if TYPE_CHECKING:
    from .collection import Collection

logger = logging.getLogger(__name__)

DEFAULT_MAX_SEGMENTS = 10
DEFAULT_MAX_BUFFERED_POSTINGS = 40_000_000  # ~0.6 GB of in-memory postings before a segment is written


def as_document(item: Document | Mapping[str, Any], position: int | None = None) -> Document:
    """Accept a Document or a dict with ``id``/``_id``, ``title``, ``text`` and ``metadata`` (or extra keys)."""
    if isinstance(item, Document):
        doc = item
    elif isinstance(item, Mapping):
        data = dict(item)
        doc_id = data.pop("id", None)
        if doc_id is None:
            doc_id = data.pop("_id", None)
        metadata = dict(data.pop("metadata", None) or {})
        title = data.pop("title", "") or ""
        text = data.pop("text", "") or ""
        metadata.update(data)
        doc = Document(id=doc_id, title=title, text=text, metadata=metadata)  # type: ignore[arg-type]
    else:
        raise InputFormatError(f"item {position}: expected a Document or a dict, got {type(item).__name__}")
    where = f"item {position}" if position is not None else "document"
    if isinstance(doc.id, int) and not isinstance(doc.id, bool):
        doc = Document(id=str(doc.id), title=doc.title, text=doc.text, metadata=doc.metadata)
    if not isinstance(doc.id, str) or not doc.id.strip():
        raise InputFormatError(f"{where}: missing or empty document id ({doc.id!r})")
    if any(c in doc.id for c in "\n\r\x00"):
        raise InputFormatError(f"{where}: document id {doc.id!r} contains a line break or NUL character")
    if not isinstance(doc.title, str) or not isinstance(doc.text, str):
        raise InputFormatError(f"{where} ({doc.id!r}): title and text must be strings")
    if not isinstance(doc.metadata, dict) or not all(isinstance(k, str) for k in doc.metadata):
        raise InputFormatError(f"{where} ({doc.id!r}): metadata must be a dict with string keys")
    if doc.metadata:
        try:
            json.dumps(doc.metadata, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputFormatError(f"{where} ({doc.id!r}): metadata is not JSON-serialisable: {exc}") from None
    return doc


class CollectionWriter:
    """The single writer of a collection. Use as a context manager: commits on success, rolls back on error.

    Adding a document whose id exists replaces it (update); ``delete`` removes by id. Nothing is visible to
    searches until ``commit()``.
    """

    def __init__(
        self,
        collection: Collection,
        *,
        lock_timeout: float = 0.0,
        max_segments: int = DEFAULT_MAX_SEGMENTS,
        max_buffered_postings: int = DEFAULT_MAX_BUFFERED_POSTINGS,
        progress: bool = False,
    ) -> None:
        self.collection = collection
        self.folder: Path = collection.path
        self._lock = WriterLock(self.folder, lock_timeout)
        try:
            self._manifest = Manifest.read(self.folder)
            self._remove_garbage()
        except BaseException:
            self._lock.release()
            raise
        config = self._manifest.config
        self._analyzer = get_analyzer(config["bm25"]["analyzer"])
        self._fields: list[str] = config["fields"]
        self.max_segments = max_segments
        self.max_buffered_postings = max_buffered_postings
        self.progress = progress
        self._reset()
        self.closed = False

    def _reset(self) -> None:
        self._current: SegmentWriter | None = None
        self._current_name = ""
        self._finished: list[SegmentEntry] = []  # new, complete segments not yet committed
        self._new_deleted: dict[str, set[int]] = {}  # new segment name -> locals replaced or deleted since
        self._pending: dict[str, tuple[str, int]] = {}  # id -> (new segment name, local)
        self._deleted: dict[str, np.ndarray] = {}  # committed segment name -> deleted mask (bool), if changed
        self._committed_ids: dict[str, tuple[str, int]] | None = None
        self._readers: dict[str, SegmentReader] = {}
        self.added = 0
        self.removed = 0

    # -- state of committed segments -------------------------------------------------------------------------
    def _reader(self, name: str) -> SegmentReader:
        reader = self._readers.get(name)
        if reader is None:
            reader = self._readers[name] = SegmentReader(self.folder / name)
        return reader

    def _deleted_mask(self, entry: SegmentEntry) -> np.ndarray:
        mask = self._deleted.get(entry.name)
        if mask is None:
            if entry.deletes_file:
                mask = np.load(self.folder / entry.name / entry.deletes_file).astype(bool)
            else:
                mask = np.zeros(entry.docs, dtype=bool)
            self._deleted[entry.name] = mask
        return mask

    def _id_index(self) -> dict[str, tuple[str, int]]:
        if self._committed_ids is None:
            ids: dict[str, tuple[str, int]] = {}
            for entry in self._manifest.segments:
                reader = self._reader(entry.name)
                deleted = self._deleted_mask(entry) if entry.deleted or entry.name in self._deleted else None
                for local, doc_id in enumerate(reader.ids):
                    if deleted is None or not deleted[local]:
                        ids[doc_id] = (entry.name, local)
            self._committed_ids = ids
        return self._committed_ids

    def _remove(self, doc_id: str) -> bool:
        pending = self._pending.pop(doc_id, None)
        if pending is not None:
            name, local = pending
            self._new_deleted.setdefault(name, set()).add(local)
            return True
        if not self._manifest.segments:
            return False
        loc = self._id_index().pop(doc_id, None)
        if loc is None:
            return False
        name, local = loc
        entry = next(e for e in self._manifest.segments if e.name == name)
        self._deleted_mask(entry)[local] = True
        return True

    # -- public API --------------------------------------------------------------------------------------------
    def add(self, documents: Iterable[Document | Mapping[str, Any]]) -> int:
        """Add (or replace, by id) a batch of documents. A duplicate id inside one batch is an error and the
        batch is rejected before anything is written."""
        self._check_open()
        batch = self._prepare(documents)
        for doc in batch:
            self._remove(doc.id)
            if self._current is None:
                self._current_name = self._new_segment_name()
                self._current = SegmentWriter(self.folder / self._current_name, self._analyzer, self._fields)
            local = self._current.add(doc)
            self._pending[doc.id] = (self._current_name, local)
            if self._current.postings.n_postings > self.max_buffered_postings:
                self._finish_current()
        self.added += len(batch)
        return len(batch)

    def add_parallel(self, documents: Iterable[Document | Mapping[str, Any]], workers: int,
                     batch_size: int = 1000) -> int:
        """``add`` for a large stream: ``workers`` processes each analyse and index a share of the batches into a
        segment of their own (published together at commit). Returns the number of documents added."""
        from .parallel import index_in_parallel

        self._check_open()
        n = index_in_parallel(self, documents, workers, batch_size)
        self.added += n
        return n

    def _prepare(self, documents: Iterable[Document | Mapping[str, Any]]) -> list[Document]:
        """Validated documents of one batch; a duplicate id inside the batch rejects it before anything changes."""
        batch = [as_document(d, i) for i, d in enumerate(documents)]
        seen: dict[str, int] = {}
        for i, doc in enumerate(batch):
            first = seen.setdefault(doc.id, i)
            if first != i:
                raise InputFormatError(f"duplicate document id {doc.id!r} in one batch (items {first} and {i})")
        return batch

    def _new_segment_name(self) -> str:
        # The random suffix keeps a name from ever being reused, even by a writer that starts while an orphaned
        # worker of a killed one is still writing its (never to be committed) folder.
        name = f"seg-{self._manifest.next_segment:06d}-{secrets.token_hex(3)}"
        self._manifest.next_segment += 1
        return name

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id; returns how many existed. Unknown ids are ignored."""
        self._check_open()
        n = sum(self._remove(i) for i in ids)
        self.removed += n
        return n

    def _finish_current(self) -> None:
        if self._current is None:
            return
        info = self._current.finish()
        self._finished.append(SegmentEntry(name=self._current_name, docs=info["docs"]))
        self._current = None
        self._current_name = ""

    def commit(self) -> int:
        """Publish everything added/deleted so far atomically; returns the new generation."""
        self._check_open()
        self._finish_current()
        self._encode_new_segments()
        self._encode_new_sparse()
        manifest = self._manifest
        generation = manifest.generation + 1
        entries: list[SegmentEntry] = []
        for entry in manifest.segments:
            if entry.name in self._deleted:
                mask = self._deleted[entry.name]
                deleted = int(mask.sum())
                if deleted != entry.deleted:
                    deletes_file = f"deletes-{generation:06d}.npy"
                    fsync_write_array(self.folder / entry.name / deletes_file, mask)
                    entry = SegmentEntry(entry.name, entry.docs, deleted, deletes_file)
            entries.append(entry)
        for entry in self._finished:
            deleted_locals = self._new_deleted.get(entry.name)
            if deleted_locals:
                mask = np.zeros(entry.docs, dtype=bool)
                mask[list(deleted_locals)] = True
                entry.deleted = len(deleted_locals)
                entry.deletes_file = f"deletes-{generation:06d}.npy"
                fsync_write_array(self.folder / entry.name / entry.deletes_file, mask)
            entries.append(entry)
        entries = [e for e in entries if e.deleted < e.docs]
        if len(entries) > self.max_segments:
            entries = self._merge(entries, generation, len(entries) - self.max_segments + 1)
        new = Manifest(manifest.config, generation, manifest.next_segment, entries)
        new.write(self.folder)
        self._manifest = new
        self._close_readers()
        self._remove_garbage()
        self._reset()
        return generation

    # -- dense indexes -----------------------------------------------------------------------------------------
    def _dense_configs(self) -> dict[str, dict[str, Any]]:
        return dict(self._manifest.config.get("dense") or {})

    def _encode_new_segments(self) -> None:
        """Vectors for every new segment and dense index, written before the manifest that publishes them."""
        from ..retrieval.dense.index import encode_segment

        for name, config in self._dense_configs().items():
            for entry in self._finished:
                encoder = self.collection.encoder(name, config)
                encode_segment(self.folder / entry.name, config, encoder, skip=self._new_deleted.get(entry.name),
                               progress=self.progress)

    def add_dense_index(self, name: str, config: dict[str, Any]) -> int:
        """Encode every committed document for a new dense index and commit the index (resumable: vectors already
        encoded by an interrupted run are read back from the embedding cache)."""
        from ..retrieval.dense.index import encode_segment

        self._check_open()
        existing = self._dense_configs()
        if name in existing:
            if existing[name] == config:
                return self._manifest.generation
            raise CollectionError(f"dense index {name!r} already exists with another configuration; drop it first")
        encoder = self.collection.encoder(name, config)
        for entry in self._manifest.segments:
            deleted = self._deleted_mask(entry)
            encode_segment(self.folder / entry.name, config, encoder, skip=set(np.flatnonzero(deleted).tolist()),
                           progress=self.progress)
        self._manifest.config = {**self._manifest.config, "dense": {**existing, name: config}}
        return self.commit()

    def drop_dense_index(self, name: str) -> int:
        existing = self._dense_configs()
        if name not in existing:
            raise CollectionError(f"no dense index {name!r}; the collection has: {', '.join(existing) or 'none'}")
        del existing[name]
        self._manifest.config = {**self._manifest.config, "dense": existing}
        return self.commit()

    # -- learned-sparse indexes (see retrieval/sparse/index.py) ------------------------------------------------
    def _sparse_configs(self) -> dict[str, dict[str, Any]]:
        return dict(self._manifest.config.get("sparse") or {})

    def _encode_new_sparse(self) -> None:
        """Sparse postings for every new segment and sparse index, written before the manifest that publishes them."""
        from ..retrieval.sparse.index import encode_segment_sparse

        for name, config in self._sparse_configs().items():
            for entry in self._finished:
                encode_segment_sparse(self.folder / entry.name, config, self.collection.sparse_encoder(name, config),
                                      skip=self._new_deleted.get(entry.name), progress=self.progress)

    def add_sparse_index(self, name: str, config: dict[str, Any]) -> int:
        """Encode every committed document for a new sparse index and commit the index."""
        from ..retrieval.sparse.index import encode_segment_sparse

        self._check_open()
        existing = self._sparse_configs()
        if name in existing:
            if existing[name] == config:
                return self._manifest.generation
            raise CollectionError(f"sparse index {name!r} already exists with another configuration; drop it first")
        encoder = self.collection.sparse_encoder(name, config)
        for entry in self._manifest.segments:
            deleted = self._deleted_mask(entry)
            encode_segment_sparse(self.folder / entry.name, config, encoder,
                                  skip=set(np.flatnonzero(deleted).tolist()), progress=self.progress)
        self._manifest.config = {**self._manifest.config, "sparse": {**existing, name: config}}
        return self.commit()

    def drop_sparse_index(self, name: str) -> int:
        existing = self._sparse_configs()
        if name not in existing:
            raise CollectionError(f"no sparse index {name!r}; the collection has: {', '.join(existing) or 'none'}")
        del existing[name]
        self._manifest.config = {**self._manifest.config, "sparse": existing}
        return self.commit()

    def _merge_sparse(self, name: str, sources: list[Path], new_docs: list[np.ndarray]) -> None:
        from ..retrieval.sparse.index import encode_segment_sparse, merge_sparse

        for index, config in self._sparse_configs().items():
            if not merge_sparse(self.folder / name, list(zip(sources, new_docs)), config):
                encode_segment_sparse(self.folder / name, config, self.collection.sparse_encoder(index, config),
                                      progress=self.progress)

    def optimize(self) -> int:
        """Commit, then merge all segments into one (dropping deleted documents) and commit again."""
        self.commit()
        if len(self._manifest.segments) > 1 or any(e.deleted for e in self._manifest.segments):
            generation = self._manifest.generation + 1
            entries = self._merge(list(self._manifest.segments), generation, len(self._manifest.segments))
            new = Manifest(self._manifest.config, generation, self._manifest.next_segment, entries)
            new.write(self.folder)
            self._manifest = new
            self._close_readers()
            self._remove_garbage()
            self._reset()
        return self._manifest.generation

    def _merge(self, entries: list[SegmentEntry], generation: int, count: int) -> list[SegmentEntry]:
        """Replace the ``count`` smallest segments by one holding their live documents."""
        count = max(count, 2) if len(entries) > 1 else 1
        by_size = sorted(range(len(entries)), key=lambda i: entries[i].docs - entries[i].deleted)
        chosen = set(by_size[:count])
        name = self._new_segment_name()
        sources = []
        try:
            for i in sorted(chosen):
                entry = entries[i]
                deleted = None
                if entry.deletes_file:
                    deleted = np.load(self.folder / entry.name / entry.deletes_file).astype(bool)
                sources.append((SegmentReader(self.folder / entry.name), deleted))
            info, new_docs = merge_segments(self.folder / name, sources)
            self._merge_dense(name, [self.folder / entries[i].name for i in sorted(chosen)], new_docs, info["docs"])
            self._merge_sparse(name, [self.folder / entries[i].name for i in sorted(chosen)], new_docs)
        finally:
            for reader, _ in sources:
                reader.close()
        logger.info("merged %d segments into %s (%d documents)", len(chosen), name, info["docs"])
        kept = [e for i, e in enumerate(entries) if i not in chosen]
        return kept + [SegmentEntry(name=name, docs=info["docs"])]

    def _merge_dense(self, name: str, sources: list[Path], new_docs: list[np.ndarray], n_docs: int) -> None:
        from ..retrieval.dense.index import encode_segment, merge_vectors

        for index, config in self._dense_configs().items():
            if not merge_vectors(self.folder / name, list(zip(sources, new_docs)), n_docs, config):
                encode_segment(self.folder / name, config, self.collection.encoder(index, config),
                               progress=self.progress)

    def rollback(self) -> None:
        """Drop everything not yet committed."""
        if self._current is not None:
            self._current.abort()
        self._close_readers()
        self._manifest = Manifest.read(self.folder)
        self._remove_garbage()
        self._reset()

    def close(self) -> None:
        """Release the lock; uncommitted changes are dropped."""
        if self.closed:
            return
        try:
            if self._current is not None or self._finished:
                self.rollback()
            self._close_readers()
        finally:
            self.closed = True
            self._lock.release()

    def __enter__(self) -> CollectionWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()

    # -- housekeeping ----------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise CollectionError("this writer is closed; open a new one with collection.writer()")

    def _close_readers(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers = {}

    def _remove_garbage(self) -> None:
        """Delete files no committed manifest references (left by an interrupted writer or replaced by a commit)."""
        from ..retrieval.dense.index import vectors_file
        from ..retrieval.sparse.index import FOLDER_PREFIX, sparse_folder

        keep = {e.name: e.deletes_file for e in self._manifest.segments}
        vectors = {vectors_file(c) for c in self._dense_configs().values()}
        vectors |= {"tier-" + v.removeprefix("vectors-").removesuffix(".npy") for v in vectors}
        sparse = {sparse_folder(c) for c in self._sparse_configs().values()}
        for path in self.folder.iterdir():
            if path.name in (MANIFEST, LOCK_FILE) or path.name.startswith("."):
                continue
            if path.name == MANIFEST + ".tmp":
                path.unlink(missing_ok=True)
            elif path.is_dir() and path.name.startswith("seg-"):
                if path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    for f in path.glob("deletes-*.npy"):
                        if f.name != keep[path.name]:
                            f.unlink(missing_ok=True)
                    for f in path.glob("vectors-*"):
                        if f.name not in vectors:
                            f.unlink(missing_ok=True)
                    for f in path.glob("tier-*"):
                        if f.name not in vectors:
                            shutil.rmtree(f, ignore_errors=True)
                    for f in path.glob(FOLDER_PREFIX + "*"):
                        if f.name not in sparse:
                            shutil.rmtree(f, ignore_errors=True)
