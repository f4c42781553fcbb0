"""Adding, updating and deleting documents, published by atomic commits.

Crash safety: new segments and deletion masks are written under names that no manifest references yet and
fsynced; only then is ``manifest.json`` replaced (atomically). A writer killed at any moment therefore leaves the
previous manifest and everything it references intact; its half-written files are removed by the next writer.
"""

from __future__ import annotations

import logging
import math
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.document import Document, document_problem
from retrievekit.core.errors import CollectionError, InputFormatError
from retrievekit.core.files import fsync_write_array
from retrievekit.core.provenance import Provenance
from retrievekit.index.base import EncoderProvider, SegmentIndex, model_indexes, segment_index, segment_indexes
from retrievekit.storage.disk import frees_space_when_full
from retrievekit.storage.lock import LOCK_FILE, WriterLock
from retrievekit.storage.manifest import MANIFEST, Manifest, SegmentEntry, pin_manifest, pinned_manifests, read_pinned
from retrievekit.storage.segment import (
    SegmentReader,
    SegmentWriter,
    index_builders,
    merge_segments,
    read_deletes,
)

if TYPE_CHECKING:
    from retrievekit.chunking import Chunker

# Metadata a passage collection adds to each passage: the document it comes from and its character span there.
PASSAGE_OF, PASSAGE_START, PASSAGE_END, PASSAGE_HEADING = "passage_of", "passage_start", "passage_end", "heading"


def passage_chunker(encoders: EncoderProvider, config: Mapping[str, Any]) -> Chunker | None:
    """The chunker of a passage collection (config "passages"), or None for a collection of whole documents."""
    passages = config.get("passages")
    if not passages:
        return None
    from retrievekit.chunking import get_chunker

    spec = passages["chunker"]
    # Semantic chunking measures sentence similarity with the collection's dense model.
    encoder = encoders("dense", "default", None) if str(spec).split(":")[0] == "semantic" else None
    return get_chunker(spec, encoder=encoder)

logger = logging.getLogger(__name__)

DEFAULT_MAX_SEGMENTS = 10
DEFAULT_MAX_BUFFERED_POSTINGS = 40_000_000  # ~0.6 GB of in-memory postings before a segment is written


def as_document(item: Document | Mapping[str, Any], position: int | None = None) -> Document:
    """Accept a Document or a dict with ``id``/``_id``, ``title``, ``text`` and ``metadata`` (or extra keys), and
    validate it (``core.document.document_problem``): every document added passes here. Integer ids and numeric
    titles/texts become strings; a None title/text is empty. Errors name ``item POSITION`` and the id."""
    where = f"item {position}" if position is not None else "document"
    if isinstance(item, Document):
        doc_id, title, text, metadata = item.id, item.title, item.text, item.metadata
    elif isinstance(item, Mapping):
        data = dict(item)
        doc_id = data.pop("id", None)
        if doc_id is None:
            doc_id = data.pop("_id", None)
        metadata = data.pop("metadata", None)
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, Mapping):
            raise InputFormatError(f"{where}: metadata must be a JSON object (dict), got {type(metadata).__name__}")
        metadata = dict(metadata)
        title = data.pop("title", None)
        text = data.pop("text", None)
        metadata.update(data)
    else:
        raise InputFormatError(f"{where}: expected a Document or a dict, got {type(item).__name__}")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        try:
            doc_id = str(doc_id)
        except ValueError:  # Python will not print an integer of more than 4,300 digits
            raise InputFormatError(f"{where}: the integer id has over 4,300 digits; ids are strings") from None
    title, text = _as_text(title), _as_text(text)
    if isinstance(item, Document) and doc_id is item.id and title is item.title and text is item.text:
        doc = item
    else:
        doc = Document(id=doc_id, title=title, text=text, metadata=metadata)
    problem = document_problem(doc)
    if problem is not None:
        if isinstance(doc.id, str) and doc.id.strip() and "document id" not in problem:
            where += f" (id {_clip(doc.id)})"
        raise InputFormatError(f"{where}: {problem}")
    return doc


def _as_text(value: Any) -> Any:
    """A title or text: None is empty, a number its decimal form (``0`` -> ``"0"``, not dropped as falsy)."""
    if value is None:
        return ""
    if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    return value


def _clip(doc_id: str) -> str:
    return repr(doc_id) if len(doc_id) <= 60 else repr(doc_id[:50] + "…")


class CollectionWriter:
    """The single writer of a collection. Use as a context manager: commits on success, rolls back on error.

    Adding a document whose id exists replaces it (update); ``delete`` removes by id. Nothing is visible to
    searches until ``commit()``.

    ``encoders`` gives the model-built indexes their encoders ((kind, index name, config or None) -> encoder);
    Collection passes its cached ones. Without it each is loaded from the stored config.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        encoders: EncoderProvider | None = None,
        lock_timeout: float = 0.0,
        max_segments: int = DEFAULT_MAX_SEGMENTS,
        max_buffered_postings: int = DEFAULT_MAX_BUFFERED_POSTINGS,
        progress: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self._encoders = encoders or self._load_encoder
        self._lock = WriterLock(self.folder, lock_timeout)
        try:
            self._manifest = Manifest.read(self.folder)
            self._remove_garbage()
        except BaseException:
            self._lock.release()
            raise
        config = self._manifest.config
        self._builders = index_builders(config)  # the streaming indexes' set-up (BM25 analyzer), made once
        self._chunker = passage_chunker(self._encoders, config)
        self.max_segments = max_segments
        self.max_buffered_postings = max_buffered_postings
        self.progress = progress
        #: seconds this writer's commits spent building model indexes (dense / learned-sparse encoding): what an
        #: ingest report splits from the rest (reading, BM25, writing)
        self.encode_seconds = 0.0
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
        self._failed: str | None = None  # why the open segment may be half-written (see _store)
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
                mask = read_deletes(self.folder / entry.name, entry.deletes_file, entry.docs).copy()
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
    @frees_space_when_full
    def add(self, documents: Iterable[Document | Mapping[str, Any]]) -> int:
        """Add (or replace, by id) a batch of documents. A duplicate id inside one batch is an error and the
        batch is rejected before anything is written. In a passage collection each document is stored as its
        passages (replacing all passages of an earlier version); the count returned is of documents."""
        self._check_open()
        batch = self._prepare(documents)  # the whole batch is validated (and chunked) before anything changes
        if self._chunker is None:
            self._store(batch)
        else:
            self._store([p for doc in batch for p in self._chunk(doc)], replaces=[doc.id for doc in batch])
        self.added += len(batch)
        return len(batch)

    def add_as_is(self, documents: Iterable[Document | Mapping[str, Any]]) -> int:
        """Validate and store documents exactly as given, without chunking: a passage collection's passages already
        made (the parallel ingest) or rewritten in place (a title or metadata change). Returns how many."""
        self._check_open()
        batch = self._prepare(documents)
        self._store(batch)
        return len(batch)

    def _store(self, batch: list[Document], replaces: Iterable[str] = ()) -> None:
        """Add validated documents to the open segment, replacing earlier versions by id (and the passages of the
        documents ``replaces``). A failure here (I/O) may leave the open segment half-written: the writer then
        refuses to go on until ``rollback()``, so a part of a batch can never be committed."""
        try:
            for doc_id in replaces:
                self._remove_passages(doc_id)
            for doc in batch:
                self._remove(doc.id)
                if self._current is None:
                    self._current_name = self._new_segment_name()
                    self._current = SegmentWriter(self.folder / self._current_name, self._builders)
                local = self._current.add(doc)
                self._pending[doc.id] = (self._current_name, local)
                if self._current.buffered > self.max_buffered_postings:
                    self._finish_current()
        except BaseException as exc:
            self._failed = f"{type(exc).__name__}: {exc}"
            raise

    @frees_space_when_full
    def add_parallel(self, documents: Iterable[Document | Mapping[str, Any]], workers: int,
                     batch_size: int = 1000) -> int:
        """``add`` for a large stream: ``workers`` processes each analyse and index a share of the batches into a
        segment of their own (published together at commit). Returns the number of documents added."""
        from retrievekit.storage.parallel import index_in_parallel

        self._check_open()
        if self._chunker is not None:
            counter = [0]
            n_passages = index_in_parallel(self, self._passages(documents, counter), workers, batch_size)
            logger.info("%d documents stored as %d passages", counter[0], n_passages)
            n = counter[0]
        else:
            n = index_in_parallel(self, documents, workers, batch_size)
        self.added += n
        return n

    def _passages(self, documents: Iterable[Document | Mapping[str, Any]],
                  counter: list[int] | None = None) -> Iterator[Document]:
        """Each document's passages as documents ``ID#i``, linked to it by metadata; earlier passages of the same
        id are removed first (a new version may have fewer)."""
        for i, item in enumerate(documents):
            doc = as_document(item, i)
            passages = self._chunk(doc)
            self._remove_passages(doc.id)
            if counter is not None:
                counter[0] += 1
            yield from passages

    def _chunk(self, doc: Document) -> list[Document]:
        """The passages of one document. An empty (or blank) document is one empty passage ``ID#0``: it is still
        stored, counted and fetched like any other, it only matches no query (unless by its title)."""
        assert self._chunker is not None
        provenance = Provenance(doc.metadata)  # a parsed file's pages and sections, read once per document
        chunks = self._chunker.chunk_regions(doc.id, doc.text, provenance.regions(len(doc.text)))
        if not chunks:
            return [Document(id=f"{doc.id}#0", title=doc.title, text=doc.text,
                             metadata={**provenance.passage_metadata(0, len(doc.text)), PASSAGE_OF: doc.id,
                                       PASSAGE_START: 0, PASSAGE_END: len(doc.text)})]
        passages = []
        for chunk in chunks:
            # a parsed file's page spans and sections become the passage's own page and heading
            meta = {**provenance.passage_metadata(chunk.start, chunk.end), PASSAGE_OF: doc.id,
                    PASSAGE_START: chunk.start, PASSAGE_END: chunk.end}
            if chunk.metadata.get("heading"):
                meta[PASSAGE_HEADING] = chunk.metadata["heading"]
            passages.append(Document(id=chunk.id, title=doc.title, text=chunk.text, metadata=meta))
        return passages

    def _remove_passages(self, doc_id: str) -> int:
        """Remove the passages ``doc_id#0``, ``#1``, ... of a document (they are numbered without gaps)."""
        n = 0
        while self._remove(f"{doc_id}#{n}"):
            n += 1
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
        """Delete documents by id; returns how many existed. Unknown ids are ignored. In a passage collection a
        document id removes all its passages (a passage id, ``ID#i``, removes just that passage)."""
        self._check_open()
        if self._chunker is not None:
            n = sum(bool(self._remove_passages(i)) or self._remove(i) for i in ids)
        else:
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

    @frees_space_when_full
    def commit(self, *, pin: bool = False) -> int:
        """Publish everything added/deleted so far atomically; returns the new generation. ``pin``: keep this
        generation readable after later commits (``storage.manifest.pin_manifest``)."""
        self._check_open()
        self._finish_current()
        self._encode_new_segments()
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
        if pin:
            pin_manifest(self.folder, new)  # before it is current: a crash in between leaves a harmless extra pin
        new.write(self.folder)
        self._manifest = new
        self._close_readers()
        self._remove_garbage()
        self._reset()
        return generation

    # -- model-built indexes (dense vectors, learned-sparse postings; see index/base.py) ------------------------
    def _load_encoder(self, kind: str, name: str, config: Mapping[str, Any] | None) -> Any:
        if config is None:
            indexes = segment_index(kind).indexes(self._manifest.config)
            if name not in indexes:
                raise CollectionError(f"{self.folder} has no {kind} index {name!r}")
            config = indexes[name]
        return segment_index(kind).load_encoder(config)

    def _encode(self, kind: SegmentIndex, segment: str, config: dict[str, Any], encoder: Any,
                skip: set[int] | None = None) -> None:
        """Build ``kind``'s index of one segment from the segment's stored documents."""
        reader = SegmentReader(self.folder / segment)
        try:
            kind.encode(reader.folder, config, reader.iter_documents(), reader.n_docs, encoder, skip=skip,
                        progress=self.progress)
        finally:
            reader.close()

    def _encode_new_segments(self) -> None:
        """Every index of every new segment, written before the manifest that publishes them."""
        for kind in model_indexes():
            for name, config in kind.indexes(self._manifest.config).items():
                started = time.perf_counter()
                encoder = self._encoders(kind.key, name, config)
                for entry in self._finished:
                    self._encode(kind, entry.name, config, encoder, self._new_deleted.get(entry.name))
                self.encode_seconds += time.perf_counter() - started

    @frees_space_when_full
    def add_index(self, kind_key: str, name: str, config: dict[str, Any]) -> int:
        """Encode every committed document for a new index of ``kind_key`` ("dense" or "sparse") and commit it.
        Dense encoding is resumable: vectors of an interrupted run come back from the embedding cache."""
        self._check_open()
        kind = segment_index(kind_key)
        existing = kind.indexes(self._manifest.config)
        if name in existing:
            if existing[name] == config:
                return self._manifest.generation
            raise CollectionError(f"{kind.key} index {name!r} already exists with another configuration; drop it "
                                  "first")
        encoder = self._encoders(kind.key, name, config)
        for entry in self._manifest.segments:
            deleted = self._deleted_mask(entry)
            self._encode(kind, entry.name, config, encoder, set(np.flatnonzero(deleted).tolist()))
        self._manifest.config = {**self._manifest.config, kind.key: {**existing, name: config}}
        return self.commit()

    def drop_index(self, kind_key: str, name: str) -> int:
        kind = segment_index(kind_key)
        existing = kind.indexes(self._manifest.config)
        if name not in existing:
            raise CollectionError(f"no {kind.key} index {name!r}; the collection has: {', '.join(existing) or 'none'}")
        del existing[name]
        self._manifest.config = {**self._manifest.config, kind.key: existing}
        return self.commit()

    def add_dense_index(self, name: str, config: dict[str, Any]) -> int:
        return self.add_index("dense", name, config)

    def drop_dense_index(self, name: str) -> int:
        return self.drop_index("dense", name)

    def add_sparse_index(self, name: str, config: dict[str, Any]) -> int:
        return self.add_index("sparse", name, config)

    def drop_sparse_index(self, name: str) -> int:
        return self.drop_index("sparse", name)

    @frees_space_when_full
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
                    deleted = read_deletes(self.folder / entry.name, entry.deletes_file, entry.docs)
                sources.append((SegmentReader(self.folder / entry.name), deleted))
            info, new_docs = merge_segments(self.folder / name, sources, self._manifest.config)
            self._merge_indexes(name, [reader for reader, _ in sources], new_docs, info["docs"])
        finally:
            for reader, _ in sources:
                reader.close()
        logger.info("merged %d segments into %s (%d documents)", len(chosen), name, info["docs"])
        kept = [e for i, e in enumerate(entries) if i not in chosen]
        return kept + [SegmentEntry(name=name, docs=info["docs"])]

    def _merge_indexes(self, name: str, sources: list[SegmentReader], new_docs: list[np.ndarray],
                       n_docs: int) -> None:
        """Each model-built index of the merged segment from its sources' (encoded anew only if a source lacks it)."""
        for kind in model_indexes():
            for index, config in kind.indexes(self._manifest.config).items():
                if kind.merge(self.folder / name, list(zip(sources, new_docs)), n_docs, config) is None:
                    self._encode(kind, name, config, self._encoders(kind.key, index, config))

    def restore(self, generation: int, *, pin: bool = True) -> int:
        """Commit a new generation whose contents are those of pinned ``generation`` (everything committed after
        it is dropped); returns the new generation. Uncommitted changes are dropped first. A sharded collection
        uses this to undo a shard's commit that the cluster never recorded."""
        if self.closed:
            raise CollectionError("this writer is closed; open a new one with collection.writer()")
        old = read_pinned(self.folder, generation)
        self.rollback()
        current = self._manifest
        new = Manifest(old.config, current.generation + 1, current.next_segment, list(old.segments))
        if pin:
            pin_manifest(self.folder, new)
        new.write(self.folder)
        self._manifest = new
        self._builders = index_builders(new.config)
        self._chunker = passage_chunker(self._encoders, new.config)
        self._close_readers()
        self._remove_garbage()
        self._reset()
        return new.generation

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

    def __exit__(self, exc_type, exc, tb) -> None:
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
        if self._failed is not None:
            raise CollectionError(f"an earlier add() failed while writing ({self._failed}); its batch may be "
                                  "partly written, so nothing uncommitted can be committed: call rollback()")

    def _close_readers(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers = {}

    def _remove_garbage(self) -> None:
        """Delete files no committed manifest references (left by an interrupted writer or replaced by a commit)."""
        manifests = [self._manifest, *pinned_manifests(self.folder)]  # pinned generations stay readable
        keep: dict[str, set[str | None]] = {}
        for manifest in manifests:
            for e in manifest.segments:
                keep.setdefault(e.name, set()).add(e.deletes_file)
        kinds = segment_indexes()
        owned = {f for manifest in manifests for kind in kinds for c in kind.indexes(manifest.config).values()
                 for f in kind.files(c)}
        prefixes = tuple(p for kind in kinds for p in kind.prefixes)
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
                        if f.name not in keep[path.name]:
                            f.unlink(missing_ok=True)
                    for f in path.iterdir():
                        if f.name.startswith(prefixes) and f.name not in owned:  # a dropped or replaced index
                            if f.is_dir():
                                shutil.rmtree(f, ignore_errors=True)
                            else:
                                f.unlink(missing_ok=True)
