"""``Collection``: a folder on disk holding documents and the indexes built on them."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrievekit.analysis import Analyzer, get_analyzer
from retrievekit.core.config import (
    BM25Config,
    CollectionConfig,
    DenseIndexConfig,
    PassagesConfig,
    check_field_weights,
)
from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError, RetrievekitError
from retrievekit.core.files import tree_bytes
from retrievekit.core.filters import Filter
from retrievekit.core.progress import progress_bar
from retrievekit.retrieval.base import Retriever, SearchResults
from retrievekit.retrieval.bm25.retriever import BM25Retriever
from retrievekit.storage.disk import DiskFullError, estimate_need
from retrievekit.storage.lock import WriterLock
from retrievekit.storage.manifest import MANIFEST, Manifest, read_pinned
from retrievekit.storage.segment import SegmentReader
from retrievekit.storage.snapshot import Snapshot
from retrievekit.storage.writer import CollectionWriter

if TYPE_CHECKING:
    from retrievekit.code_index import CodeIngestReport
    from retrievekit.encoders.base import Encoder
    from retrievekit.encoders.splade import SpladeEncoder
    from retrievekit.rag.pipeline import RAG, Answer

logger = logging.getLogger(__name__)
_MODEL_LOAD_LOCK = threading.Lock()

DEFAULT_FIELDS = ("title", "text")
_ADD_HINTS = {"dense": "Collection.add_dense_index(...) or `retrievekit index --dense MODEL`",
              "sparse": "Collection.add_sparse_index(...) or `retrievekit index --sparse`"}
MODES = ("bm25", "dense", "hybrid", "sparse")
# How hybrid mode fuses BM25 and dense results unless told otherwise: z-scored scores, 0.2 BM25 + 0.8 dense — the
# best mean dev-split nDCG@10 (scifact train, cosqa dev) of 45 RRF/convex settings in
# `benchmarks/run_hybrid.py --select-default` (benchmarks/results/hybrid_default.json; no test qrels used).
HYBRID_FUSION: dict[str, Any] = {"method": "convex", "weights": [0.2, 0.8], "normalization": "zscore"}


class Collection:
    """Documents (id, title, text, metadata) and their indexes in one folder.

    Reading never blocks on a writer: every search runs on the latest committed snapshot, picked up
    automatically when another process (or this one) commits.

        col = Collection.create("my-collection")
        col.ingest("corpus.jsonl")                 # streaming, atomic
        results = col.search(["what is bm25"], k=10)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / MANIFEST).is_file():
            if not self.path.exists():
                raise CollectionError(f"no collection at {self.path} (folder does not exist); create one with "
                                      "Collection.create(path) or `retrievekit index`")
            raise CollectionError(f"{self.path} is not a retrievekit collection (no {MANIFEST})")
        self._manifest_path = str(self.path / MANIFEST)
        self._readers: dict[str, SegmentReader] = {}
        self._snapshot: Snapshot | None = None
        self._pinned: dict[int, Snapshot] = {}  # pinned generations opened by snapshot_at
        self._manifest_stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._retrievers: dict[str, Any] = {}
        self._rags: dict[str, Any] = {}
        self._encoders: dict[str, Any] = {}
        self.analyzer: Analyzer = get_analyzer(self.settings.bm25.analyzer)

    @property
    def settings(self) -> CollectionConfig:
        """Typed settings of the latest commit: fields, BM25 analyzer, dense and sparse indexes, passages."""
        return self.snapshot().settings

    @property
    def config(self) -> dict[str, Any]:
        """The same settings as stored in the manifest (JSON); prefer ``settings``."""
        return self.snapshot().manifest.config

    def has_index(self, kind: str, name: str = "default") -> bool:
        """Whether the collection has a ``kind`` ("dense" or "sparse") index called ``name``."""
        return name in (self.config.get(kind) or {})

    # -- creation ----------------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        analyzer: str | dict[str, Any] | Analyzer | None = "lucene-english",
        fields: Sequence[str] = DEFAULT_FIELDS,
        dense: str | Mapping[str, Any] | Any | None = None,
        chunking: str | Mapping[str, Any] | None = None,
        vectors: str | None = None,
        passages: str | None = None,
        field_weights: Mapping[str, float] | None = None,
        exist_ok: bool = False,
    ) -> Collection:
        """Create an empty collection. ``analyzer`` is a preset name (see ``retrievekit.analysis``), config or
        instance; ``fields`` are the document parts indexed for BM25, joined by a space (title + " " + text).
        ``field_weights`` ({field: weight}, e.g. ``{"title": 2, "signature": 2, "text": 1}``; a field is ``title``,
        ``text`` or a metadata key) also indexes each named field on its own and makes BM25 score documents by
        multi-field BM25 (the weighted sum of each field's BM25) with these default weights; searches may pass
        other weights (``search(..., field_weights=...)``, ``{}`` for the joined index).
        ``dense``: an encoder (name such as ``"minilm"``, ``"onnx-int8:minilm"``, spec or instance) for a dense
        index named "default", encoded at every commit; ``chunking`` ('256:32:mean') represents documents longer
        than the model window by pooled windows; ``vectors`` picks the search tier ('int8', 'binary+rescore',
        'pq:48+rescore', 'leanvec-ood:192+rescore', 'hnsw', 'ivf', ...; default exact float32). ``passages``: a
        chunker spec ("sentences:128", "tokens:256:32", "paragraphs", "markdown", "html", "semantic", see
        ``retrievekit.chunking``) makes this a passage collection: every document added is stored and searched
        as its passages ``ID#0``, ``ID#1``, ... whose metadata link back to the document (``passage_of``) and give
        their character span in its text (``passage_start``, ``passage_end``). With ``exist_ok``, an existing
        collection is opened instead (its settings must match)."""
        path = Path(path)
        resolved = get_analyzer(analyzer)
        dense_indexes: dict[str, DenseIndexConfig] = {}
        passages_config: PassagesConfig | None = None
        if dense is not None:
            from retrievekit.encoders import get_encoder
            from retrievekit.index.dense.segment import DEFAULT_INDEX, make_index_config

            encoder = get_encoder(dense)  # type: ignore[arg-type]
            dense_config = make_index_config(encoder, chunking=_as_chunking(chunking), fields=fields,
                                             vectors=vectors)
            dense_indexes[DEFAULT_INDEX] = DenseIndexConfig.from_json(dense_config)
        if passages is not None:
            from retrievekit.chunking import get_chunker

            if str(passages).split(":")[0] == "semantic":  # needs the encoder, which exists from the first commit
                if dense is None:
                    raise CollectionError("semantic passages need the collection's dense model: pass dense= too")
            else:
                get_chunker(passages)  # a bad spec fails here, not at the first commit
            passages_config = PassagesConfig(str(passages))
        weights = None if field_weights is None else check_field_weights(field_weights)
        config = CollectionConfig(fields=tuple(fields), bm25=BM25Config(resolved.config(), weights),
                                  dense=dense_indexes, passages=passages_config).to_json()
        if (path / MANIFEST).is_file():
            if not exist_ok:
                raise CollectionError(f"a collection already exists at {path} (pass exist_ok=True to open it)")
            existing = cls(path)
            have = _comparable(existing.config, dense is not None)
            if passages is None:  # not asked for: whatever the collection has is fine
                have.pop("passages", None)
            if have != _comparable(config, dense is not None):
                raise CollectionError(
                    f"the collection at {path} was created with different settings: {existing.config} "
                    f"(asked for {config})"
                )
            return existing
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise CollectionError(f"cannot create a collection at {path}: it exists and is not an empty folder")
        path.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(path)
        try:
            if not (path / MANIFEST).exists():
                Manifest(config).write(path)
        finally:
            lock.release()
        return cls(path)

    @classmethod
    def create_code(cls, path: str | Path, **options: Any) -> Collection:
        """Create a collection for code (``ingest_code``): as ``create``, with these defaults: the code analyzer
        (identifiers split on camelCase/snake_case/digits, the whole identifier kept, operators dropped, language
        keywords as stop words) and multi-field BM25 over the qualified name, docstring and text
        (``code_index.CODE_FIELD_WEIGHTS``; ``field_weights=None`` for BM25 on the fields joined). ``exist_ok=True``
        opens an existing one, whose settings are part of its manifest and stay."""
        from retrievekit.code_index import CODE_ANALYZER, CODE_FIELD_WEIGHTS

        options.setdefault("analyzer", CODE_ANALYZER)
        options.setdefault("field_weights", CODE_FIELD_WEIGHTS)
        path = Path(path)
        if options.get("exist_ok") and (path / MANIFEST).is_file():
            return cls(path)
        return cls.create(path, **options)

    @classmethod
    def open(cls, path: str | Path) -> Collection:
        return cls(path)

    # -- snapshots ---------------------------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int, int]:
        st = os.stat(self._manifest_path)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def snapshot(self) -> Snapshot:
        """The latest committed state (reloaded only when the manifest changed)."""
        stamp = self._stamp()
        cached = self._snapshot
        if cached is not None and stamp == self._manifest_stamp:
            return cached
        with self._lock:
            for attempt in range(20):
                try:
                    stamp = self._stamp()
                    current = self._snapshot
                    if current is not None and stamp == self._manifest_stamp:
                        return current
                    manifest = Manifest.read(self.path)
                    snap = Snapshot(self.path, manifest, self._readers)
                    break
                except (CollectionError, FileNotFoundError):
                    # A commit replaced the manifest and removed files between our reads: read it again.
                    if attempt == 19:
                        raise
                    time.sleep(0.01 * (attempt + 1))
            live = {e.name for e in manifest.segments}
            for name in [n for n in self._readers if n not in live]:
                # Older snapshots may still be searching in other threads; their open files stay valid.
                self._readers.pop(name)
            self._snapshot, self._manifest_stamp = snap, stamp
            return snap

    def snapshot_at(self, generation: int) -> Snapshot:
        """The committed state of ``generation``: the current one, or one kept by a pin (``commit(pin=True)``);
        CollectionError if it is neither. Kept for reuse, the 4 most recent."""
        current = self.snapshot()
        if current.generation == generation:
            return current
        with self._lock:
            cached = self._pinned.get(generation)
            if cached is not None:
                return cached
        snap = Snapshot(self.path, read_pinned(self.path, generation), dict(self._readers))
        with self._lock:
            self._pinned[generation] = snap
            while len(self._pinned) > 4:
                self._pinned.pop(next(iter(self._pinned)))
        return snap

    # -- writing -----------------------------------------------------------------------------------------------
    def writer(self, *, lock_timeout: float = 0.0, **options: Any) -> CollectionWriter:
        """The collection's single writer (raises CollectionLockedError if another process holds it)."""
        return CollectionWriter(self.path, encoders=self.index_encoder, lock_timeout=lock_timeout, **options)

    def add(self, documents: Iterable[Document | Mapping[str, Any]], *, lock_timeout: float = 0.0) -> int:
        """Add or replace documents and commit."""
        with self.writer(lock_timeout=lock_timeout) as w:
            return w.add(documents)

    def delete(self, ids: Iterable[str], *, lock_timeout: float = 0.0) -> int:
        """Delete documents by id and commit; returns how many existed."""
        with self.writer(lock_timeout=lock_timeout) as w:
            return w.delete(ids)

    def ingest(
        self,
        source: str | Path,
        format: str | None = None,
        *,
        progress: bool = True,
        batch_size: int = 1000,
        workers: int | None = None,
        lock_timeout: float = 0.0,
        incremental: bool = False,
        **reader_options: Any,
    ) -> dict[str, Any]:
        """Stream documents from a file or folder (JSONL, BEIR, CSV/TSV, a folder of text/Markdown/HTML, PDF, Office,
        EPUB and e-mail files) into the collection in one atomic commit: on any error nothing of this ingest is
        committed. A folder's files that cannot be read as their format (encrypted or corrupt PDFs, zip bombs, ...)
        are skipped, not errors: the report lists them as ``skipped`` ``[[path, reason], ...]``, and files indexed
        with a problem (pages without text) as ``warnings``.

        ``incremental`` (a folder): parse only the files that are new or changed since the last incremental ingest
        of this folder and delete the documents of files that are gone (``retrievekit.folder_index``); the report
        then also has ``files`` (seen, added, updated, unchanged, deleted).

        ``workers`` processes analyse and index in parallel (default: the CPU count, at most 4; 1 = in this
        process), and as many parse a folder's PDF and Office files. Documents then land in one segment per worker,
        interleaved by batch."""
        from retrievekit.ingest import estimate_size, read_documents, report_file_problems

        if incremental:
            return self._ingest_incremental(source, format, progress, batch_size, workers, lock_timeout,
                                            reader_options)
        started = time.perf_counter()
        if workers is None:
            workers = min(os.cpu_count() or 1, 4)
        # PDFs and Office files parse in as many processes as index
        skipped, warnings = report_file_problems(source, format, reader_options, parse_workers=workers)
        bar = _progress(progress, f"indexing {Path(source).name}", estimate_size(source, format) if progress else None)
        try:
            with self.writer(lock_timeout=lock_timeout, progress=progress) as w:
                if progress:
                    reader_options["on_bytes"] = bar.update
                w.add_parallel(read_documents(source, format, **reader_options), workers, batch_size)
                added = w.added
        except DiskFullError as exc:  # the writer knows what it wrote; here the input's size tells what it needs
            needed = estimate_need(self.path, estimate_size(source, format))
            raise DiskFullError(exc.collection, exc.written, needed) from None
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        return {"documents": added, "seconds": seconds, "encode_seconds": w.encode_seconds,
                "generation": self.snapshot().generation, "skipped": skipped, "warnings": warnings}

    def _ingest_incremental(self, source: str | Path, format: str | None, progress: bool, batch_size: int,
                            workers: int | None, lock_timeout: float, reader_options: dict[str, Any]) -> dict[str, Any]:
        from retrievekit.folder_index import ingest_folder
        from retrievekit.ingest import detect_format

        if (format or detect_format(source)) != "files":
            raise CollectionError(f"incremental ingest reads a folder of files; {source} is not read as one")
        reader_options.pop("on_bytes", None)
        report = ingest_folder(self, source, workers=workers or min(os.cpu_count() or 1, 4), batch_size=batch_size,
                               progress=progress, lock_timeout=lock_timeout, **reader_options)
        files = {key.removeprefix("files_"): value for key, value in report.to_json().items()
                 if key.startswith("files_")}
        return {"documents": report.documents_written, "seconds": report.seconds, "generation": report.generation,
                "skipped": report.skipped, "warnings": report.warnings,
                "files": {**files, "entries_deleted": report.entries_deleted}}

    def ingest_code(self, root: str | Path, **options: Any) -> CodeIngestReport:
        """Index a code repository or folder by its symbols (functions, methods, classes; tree-sitter), honouring
        .gitignore; a later run re-parses and rewrites only changed files. Options and rules:
        ``retrievekit.code_index.ingest_code``. Create the collection with ``Collection.create_code(path)`` for
        the code analyzer (``Collection.create``'s default is English text)."""
        from retrievekit.code_index import ingest_code

        return ingest_code(self, root, **options)

    def ingest_images(self, source: str | Path, *, lock_timeout: float = 0.0, **reader_options: Any) -> dict[str, Any]:
        """Index the images of a folder, or of a JSONL/BEIR corpus whose rows name them (``ingest.images``), in one
        atomic commit: one document per image with its caption text, EXIF metadata and thumbnail. The collection
        refers to the image files by absolute path (they are not copied: moving them breaks image re-encoding).
        Images that cannot be read are skipped and listed with their reason. With an image-text (CLIP) dense index
        the images are embedded at the commit. Returns {documents, skipped: [[path, reason], ...], seconds}."""
        from retrievekit.ingest.images import read_images

        started = time.perf_counter()
        root = Path(source).resolve()
        base = root if root.is_dir() else root.parent  # image paths are relative to the folder or corpus file's
        skipped: list[list[str]] = []

        def absolute(doc: Document) -> Document:
            path = doc.metadata.get("image")
            if isinstance(path, str) and path:
                return replace(doc, metadata={**doc.metadata, "image": str((base / path).resolve())})
            return doc

        documents = (absolute(d) for d in read_images(
            root, on_skip=lambda path, reason: skipped.append([str(path), reason]), **reader_options))
        with self.writer(lock_timeout=lock_timeout) as w:
            added = w.add(documents)
        return {"documents": added, "skipped": skipped, "seconds": round(time.perf_counter() - started, 3),
                "generation": self.snapshot().generation}

    # -- dense indexes -----------------------------------------------------------------------------------------
    def index_config(self, kind: str, index: str = "default") -> dict[str, Any]:
        """The stored configuration of ``kind`` ("dense" or "sparse") index ``index``; a clear error if absent."""
        indexes = self.config.get(kind) or {}
        if index not in indexes:
            raise CollectionError(f"{self.path} has no {kind} index {index!r} (has: {', '.join(indexes) or 'none'}); "
                                  f"add one with {_ADD_HINTS[kind]}")
        return indexes[index]

    def encoder(self, index: str = "default", config: Mapping[str, Any] | None = None) -> Encoder:
        """The encoder of dense index ``index``, rebuilt from its stored spec (loaded once per collection)."""
        return self.index_encoder("dense", index, config)

    def index_encoder(self, kind: str, index: str = "default", config: Mapping[str, Any] | None = None) -> Any:
        """The encoder of the ``kind`` ("dense", "sparse") index ``index``, rebuilt from its stored spec (or
        ``config``) and loaded once per collection; the writer gets its encoders here."""
        from retrievekit.index.base import segment_index

        if config is None:
            config = self.index_config(kind, index)
        backend = segment_index(kind)
        key = backend.encoder_key(config)
        encoder = self._encoders.get(key)
        if encoder is None:
            # One model load at a time in a process: transformers' loading is not thread-safe (concurrent
            # from_pretrained calls fail with "Cannot copy out of meta tensor"), e.g. shards opened side by side.
            with _MODEL_LOAD_LOCK:
                encoder = self._encoders.get(key)
                if encoder is None:
                    encoder = self._encoders[key] = backend.load_encoder(config)
        return encoder

    def add_dense_index(self, encoder: Any = None, *, name: str = "default",
                        chunking: str | Mapping[str, Any] | None = None, fields: Sequence[str] | None = None,
                        vectors: str | None = None, progress: bool = True, lock_timeout: float = 0.0) -> int:
        """Encode every document with ``encoder`` (name, spec or instance; default all-MiniLM-L6-v2) into a new
        dense index and commit it. Resumable: an interrupted run's vectors come back from the embedding cache."""
        from retrievekit.encoders import get_encoder
        from retrievekit.index.dense.embedding import index_key
        from retrievekit.index.dense.segment import make_index_config

        resolved = get_encoder(encoder)
        config = make_index_config(resolved, chunking=_as_chunking(chunking), fields=fields or self.settings.fields,
                                   vectors=vectors)
        self._encoders[index_key(config)] = resolved
        with self.writer(lock_timeout=lock_timeout, progress=progress) as w:
            return w.add_dense_index(name, config)

    def drop_dense_index(self, name: str = "default", *, lock_timeout: float = 0.0) -> int:
        with self.writer(lock_timeout=lock_timeout) as w:
            return w.drop_dense_index(name)

    # -- learned-sparse indexes --------------------------------------------------------------------------------
    def sparse_encoder(self, index: str = "default", config: Mapping[str, Any] | None = None) -> SpladeEncoder:
        """The SPLADE encoder of sparse index ``index``, rebuilt from its stored spec (loaded once per collection)."""
        return self.index_encoder("sparse", index, config)

    def add_sparse_index(self, encoder: Any = "splade-tiny", *, name: str = "default",
                         fields: Sequence[str] | None = None, quantization: int = 100, progress: bool = True,
                         lock_timeout: float = 0.0) -> int:
        """Encode every document with a SPLADE model (name, hub name, folder, spec or ``SpladeEncoder``) into a new
        learned-sparse index and commit it; later commits encode new documents, merges reuse the postings."""
        from retrievekit.encoders.splade import get_sparse_encoder
        from retrievekit.index.sparse.segment import encoder_key, make_sparse_config

        resolved = get_sparse_encoder(encoder)
        config = make_sparse_config(resolved, fields=fields or self.settings.fields, quantization=quantization)
        self._encoders[encoder_key(config)] = resolved
        with self.writer(lock_timeout=lock_timeout, progress=progress) as w:
            return w.add_sparse_index(name, config)

    def drop_sparse_index(self, name: str = "default", *, lock_timeout: float = 0.0) -> int:
        with self.writer(lock_timeout=lock_timeout) as w:
            return w.drop_sparse_index(name)

    def optimize(self) -> int:
        """Merge all segments into one and drop deleted documents."""
        w = self.writer()
        try:
            return w.optimize()
        finally:
            w.close()

    # -- reading -----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.snapshot().live_docs

    def get(self, doc_id: str) -> Document | None:
        return self.snapshot().get(doc_id)

    def get_many(self, ids: Sequence[str]) -> list[Document | None]:
        snap = self.snapshot()
        return [snap.get(i) for i in ids]

    def hit_documents(self, results: SearchResults, query: int = 0, start: int = 0) -> list[tuple[Document, float]]:
        """(document, score) for the hits of one query of ``results`` from rank ``start`` (0-based) on, best first;
        a document deleted by a commit since the search is left out."""
        hits = results.hits(query)[start:]
        docs = self.get_many([doc_id for doc_id, _ in hits])
        return [(doc, score) for doc, (_, score) in zip(docs, hits) if doc is not None]

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and doc_id in self.snapshot().id_map()

    def iter_documents(self) -> Iterator[Document]:
        return self.snapshot().iter_documents()

    def info(self) -> dict[str, Any]:
        # A commit running meanwhile may remove files of the snapshot described (a merge deletes old segments):
        # describe the newer snapshot then, as searches do, instead of failing.
        for attempt in range(20):
            snap = self.snapshot()
            try:
                return self._info(snap)
            except (OSError, CollectionError):
                if attempt == 19 or self.snapshot() is snap:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _info(self, snap: Snapshot) -> dict[str, Any]:
        settings = snap.settings
        size = tree_bytes(self.path)  # skips what a concurrent commit removes while it counts
        return {
            "path": str(self.path),
            "analyzer": settings.bm25.analyzer,
            "fields": list(settings.fields),
            **({"field_weights": settings.bm25.field_weights} if settings.bm25.field_weights else {}),
            **snap.info(),
            "dense": {name: _dense_info(snap, name, c.to_json()) for name, c in settings.dense.items()},
            # a passage collection counts passages as its documents
            "passages": settings.passages.to_json() if settings.passages else None,
            "disk_bytes": size,
        }

    def modes(self) -> list[str]:
        """Search modes this collection supports: bm25 always, dense and hybrid with a dense index "default",
        sparse with a sparse index "default"."""
        return search_modes(self.has_index)

    @property
    def default_mode(self) -> str:
        """hybrid when the collection has a dense index, else bm25 (what ``search``, ``ask`` and the CLI use)."""
        return "hybrid" if self.has_index("dense") else "bm25"

    def retriever(
        self,
        mode: str = "bm25",
        *,
        scorer: str | Mapping[str, Any] | None = None,
        rm3: bool | Mapping[str, Any] = False,
        index: str = "default",
        encoder: Any = None,
        prf: bool | Mapping[str, Any] = False,
        fusion: str | Mapping[str, Any] | None = None,
        rerank: Any = None,
        depth: int = 100,
        field_weights: Mapping[str, float] | None = None,
        **scorer_params: Any,
    ) -> Retriever:
        """A retriever (or pipeline) over this collection, cached: see ``search`` for the arguments."""
        key = repr((mode, scorer, rm3, index, encoder if isinstance(encoder, str | None) else id(encoder), prf,
                    fusion, rerank if isinstance(rerank, str | None) else id(rerank), depth,
                    None if field_weights is None else list(field_weights.items()), sorted(scorer_params.items())))
        retriever = self._retrievers.get(key)
        if retriever is not None:
            return retriever
        def bm25() -> Retriever:
            return BM25Retriever(self, scorer=scorer, rm3=rm3, field_weights=field_weights, **scorer_params)

        def dense() -> Retriever:
            from retrievekit.retrieval.dense.retriever import DenseRetriever

            return DenseRetriever(self, index, encoder=encoder, prf=prf)

        def sparse() -> Retriever:
            from retrievekit.retrieval.sparse.retriever import LearnedSparseRetriever

            return LearnedSparseRetriever(self, index, encoder=encoder)

        retriever = assemble(mode, bm25, dense, sparse, fusion=fusion, rerank=rerank, depth=depth)
        if len(self._retrievers) < 64:
            self._retrievers[key] = retriever
        return retriever

    def search(
        self,
        queries: str | Sequence[str],
        k: int = 10,
        *,
        mode: str = "bm25",
        filter: Filter | None = None,
        threads: int = 1,
        scorer: str | Mapping[str, Any] | None = None,
        rm3: bool | Mapping[str, Any] = False,
        rerank: Any = None,
        **options: Any,
    ) -> SearchResults:
        """Search a batch of queries (a single string gives a one-row result).

        ``mode``: ``bm25`` (default), ``dense`` (needs a dense index), ``hybrid`` (both, fused) or ``sparse``
        (learned-sparse SPLADE index ``index``; see ``add_sparse_index``).
        BM25: Lucene BM25, k1=0.9, b=0.4 unless ``scorer`` (``lucene`` | ``robertson`` | ``atire`` | ``bm25l`` |
        ``bm25+`` | ``dirichlet``) and its parameters as keywords (``k1=1.2, b=0.75``) say otherwise; ``rm3``: True
        or ``{"fb_docs": 10, "fb_terms": 10, "original_weight": 0.5}`` for RM3 feedback; ``field_weights``
        ({field: weight}) scores by multi-field BM25 over fields the collection indexes on their own (default: the
        collection's weights, if it has any; ``{}``: the joined index).
        Dense: ``index`` (default "default"), ``encoder`` (query encoder; must match the index), ``prf`` (True or
        ``{"fb_docs": 3, "alpha": 1.0, "beta": 0.5}``: Rocchio feedback).
        Hybrid: ``fusion`` — "rrf", "convex" or a dict such as ``{"method": "convex", "weights": [0.3, 0.7],
        "normalization": "zscore"}``.
        ``rerank``: a reranker or its name (``"cross-encoder:MODEL"``, ``"maxsim"``) applied to the first ``depth``
        (default 100) results. ``filter``: metadata filter (see ``retrievekit.core.filters``); ``threads`` > 1 searches
        the batch in parallel.
        """
        retriever = self.retriever(mode, scorer=scorer, rm3=rm3, rerank=rerank, **options)
        return retriever.search([queries] if isinstance(queries, str) else list(queries), k,
                                filter=filter, threads=threads)

    def search_images(self, images: Sequence[Any], k: int = 10, *, text: str | Sequence[str] | None = None,
                      weight: float = 0.5, index: str = "default", filter: Filter | None = None) -> SearchResults:
        """Search by image (paths, bytes or PIL images; one result row each) in an image-text (CLIP) dense index:
        image → image, or with ``text`` a composed query "this image, changed as the text says" — the normalised
        ``(1 - weight) * image + weight * text`` vector (``encoders.clip.compose_query``). Text → image search is
        the ordinary ``search(..., mode="dense")`` on such an index."""
        from retrievekit.encoders.clip import ImageTextEncoder, compose_query
        from retrievekit.retrieval.dense.retriever import DenseRetriever

        retriever = self.retriever("dense", index=index)
        assert isinstance(retriever, DenseRetriever)
        encoder = self.encoder(index)
        if not isinstance(encoder, ImageTextEncoder):
            raise CollectionError(f"dense index {index!r} of {self.path} was built with a text encoder "
                                  f"({encoder.spec().get('backend')}:{encoder.spec().get('model')}); image queries "
                                  "need an image-text (CLIP) index, e.g. dense='clip:clip-ViT-B-32'")
        vectors = encoder.encode_images(list(images))
        if text is not None:
            texts = [text] * len(vectors) if isinstance(text, str) else list(text)
            if len(texts) != len(vectors):
                raise CollectionError(f"{len(texts)} texts for {len(vectors)} query images")
            vectors = compose_query(vectors, encoder.encode_queries(texts), weight)
        return retriever.search_vectors(vectors, k, filter=filter)

    def add_image_hash_index(self, hash: str = "phash", hash_size: int = 8, *, name: str = "default",
                             lock_timeout: float = 0.0) -> int:
        """Hash every document's image (metadata ``image``) with a perceptual hash (``phash``, ``dhash``, ``whash``,
        ``ahash``; ``hash_size``² bits) into a near-duplicate index and commit it; later commits hash new images.
        Needs no neural model (retrievekit[images])."""
        from retrievekit.index.images.segment import make_hash_config

        config = make_hash_config(hash, hash_size)
        with self.writer(lock_timeout=lock_timeout) as w:
            return w.add_index("imagehash", name, config)

    def search_near_duplicates(self, images: Sequence[Any], k: int = 10, *, index: str = "default",
                               filter: Filter | None = None) -> SearchResults:
        """The documents whose images are nearest each query image (paths, bytes or PIL images) by the Hamming
        distance of their perceptual hashes; score = matching bits (hash_size² for the same picture)."""
        from retrievekit.retrieval.near_duplicates import NearDuplicateSearch

        return NearDuplicateSearch(self, index).search(list(images), k, filter=filter)

    def rag(self, **options: Any) -> RAG:
        """A ``retrievekit.rag.RAG`` pipeline over this collection; see ``ask``. Pipelines are kept, the 16 most
        recently used, so their retrieval cache carries over between calls with the same options: plain values
        (strings, numbers, filters as dicts) are compared by value, objects (a Generator, a RetrievalCache, an
        allow-list set or predicate) by identity — the same object reuses the pipeline."""
        return kept_rag(self, self._rags, self._lock, options)

    def ask(self, question: str, **options: Any) -> Answer:
        """Answer ``question`` from this collection's documents with citations (``retrievekit.rag.Answer``).

        Options go to ``retrievekit.rag.RAG``: ``generator`` ("local" = the offline gemma-3-270m, an
        "openai:MODEL@URL" endpoint, a Generator, or None for contexts only), ``selector`` ("gap+budget:1024"),
        ``compress`` ("lexical"), ``mode``, ``depth``, ``expand`` ("multi-query", "hyde"), ``allow``,
        ``drop_flagged``, ``filter``. Retrieval is cached across calls for repeated or near-duplicate questions."""
        return self.rag(**options).ask(question)

    def __repr__(self) -> str:
        return f"Collection({str(self.path)!r})"


def search_modes(has_index: Any) -> list[str]:
    """The search modes of a collection (plain or sharded) whose ``has_index(kind)`` says which indexes it has."""
    modes = ["bm25"]
    if has_index("dense"):
        modes += ["dense", "hybrid"]
    if has_index("sparse"):
        modes.append("sparse")
    return modes


def assemble(mode: str, bm25: Callable[[], Retriever], dense: Callable[[], Retriever], sparse: Callable[[], Retriever],
             *, fusion: str | Mapping[str, Any] | None = None, rerank: Any = None, depth: int = 100) -> Retriever:
    """The retriever of search ``mode`` from factories of its parts (only those the mode needs are made, BM25 before
    dense), fused for hybrid and reranked when asked. Shared by plain and sharded collections."""
    if mode not in MODES:
        raise RetrievekitError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "hybrid":
        first = bm25()  # validates BM25's arguments before the dense model loads
        retriever = hybrid(first, dense(), fusion)
    else:
        retriever = {"bm25": bm25, "dense": dense, "sparse": sparse}[mode]()
    return reranked(retriever, rerank, depth) if rerank is not None else retriever


def hybrid(bm25: Retriever, dense: Retriever, fusion: str | Mapping[str, Any] | None) -> Retriever:
    """BM25 and dense fused as hybrid mode fuses them: ``HYBRID_FUSION`` unless ``fusion`` says otherwise (a fusion
    that names its method replaces the default — RRF takes neither weights nor a normalization; one that does not
    only overrides the default's settings). Shared by plain and sharded collections."""
    from retrievekit.retrieval.pipeline import Fusion

    options = dict(HYBRID_FUSION)
    if isinstance(fusion, str):
        options = {"method": fusion}
    elif fusion:
        options = dict(fusion) if "method" in fusion else {**options, **fusion}
    return Fusion([bm25, dense], **options)


def reranked(first: Retriever, rerank: Any, depth: int) -> Retriever:
    """``first``'s top ``depth`` rescored by ``rerank`` (a reranker or its name)."""
    from retrievekit.retrieval.pipeline import Rerank
    from retrievekit.retrieval.rerank import get_reranker

    return Rerank(first, get_reranker(rerank) if isinstance(rerank, str) else rerank, depth=depth)


def kept_rag(owner: Any, kept: dict[str, Any], lock: Any, options: dict[str, Any]) -> Any:
    """The RAG pipeline of ``owner`` for ``options`` from ``kept`` (the 16 most recently used; plain values compared
    by value, objects by identity), made and kept if new. Shared by plain and sharded collections."""
    import json

    from retrievekit.rag.pipeline import RAG

    objects: list[Any] = []

    def by_identity(value: Any) -> str:
        objects.append(value)  # kept with the pipeline: its id cannot be reused while the entry exists
        return f"<{type(value).__qualname__} at {id(value):#x}>"

    try:
        key = json.dumps(options, sort_keys=True, default=by_identity)
    except (TypeError, ValueError):  # e.g. keys that are not strings: no safe key
        return RAG(owner, **options)
    with lock:
        entry = kept.pop(key, None)
    if entry is None:
        entry = (RAG(owner, **options), objects)
    with lock:
        kept[key] = entry  # most recent last
        while len(kept) > 16:
            kept.pop(next(iter(kept)))
    return entry[0]


def _dense_info(snap: Any, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Model, dimension and, per tier, bytes on disk and (for the compressed/ANN tier) in memory."""
    from retrievekit.index.dense.compressed import tier_folder
    from retrievekit.index.dense.segment import segment_tier, vectors_file

    vname = vectors_file(config)
    float_bytes = sum(tree_bytes(seg.folder, vname) for seg in snap.segments)
    info: dict[str, Any] = {"model": config["encoder"].get("model"), "backend": config["encoder"].get("backend"),
                            "dim": config["encoder"].get("dim"), "chunking": config.get("chunking"),
                            "vectors": config.get("vectors") or "float32", "vector_bytes": float_bytes}
    spec = config.get("vectors")
    tiers: dict[str, Any] = {"float32": {"disk_bytes": float_bytes,
                                         "memory": "memory-mapped" if spec else "memory-mapped, scanned"}}
    if spec:
        disk = sum(tree_bytes(seg.folder / tier_folder(vname)) for seg in snap.segments)
        memory = sum(segment_tier(seg, config, name).memory_bytes() for seg in snap.segments)
        docs = max(1, sum(seg.n_docs for seg in snap.segments))
        tiers[spec.get("ann") or spec["tier"]] = {"disk_bytes": disk, "memory_bytes": memory,
                                                   "bytes_per_vector": round(memory / docs, 2)}
    info["tiers"] = tiers
    return info


def _as_chunking(value: str | Mapping[str, Any] | None) -> str | dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else value


def _comparable(config: Mapping[str, Any], with_dense: bool) -> dict[str, Any]:
    """The settings ``create(exist_ok=True)`` must find unchanged (for dense indexes: what the vectors mean)."""
    from retrievekit.encoders.base import SEMANTIC_FIELDS

    out = {k: v for k, v in config.items() if k not in ("dense", "sparse")}  # indexes added later may differ
    if with_dense:
        out["dense"] = {name: {"encoder": {f: c["encoder"].get(f) for f in SEMANTIC_FIELDS},
                               "chunking": c.get("chunking"), "fields": c.get("fields"), "vectors": c.get("vectors")}
                        for name, c in (config.get("dense") or {}).items()}
    return out


def _progress(enabled: bool, desc: str, total_bytes: int | None = None) -> Any:
    """A progress bar over the input's bytes (the reader reports them as it goes)."""
    return progress_bar(enabled, total_bytes, desc, unit="B", unit_scale=True, unit_divisor=1024)
