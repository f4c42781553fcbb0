"""``ShardedCollection``: one collection split over N ordinary collections (shards), with the search/add/delete/ask
API of ``Collection``. Documents are routed by a stable hash of their id (``routing``); every write is a cluster
transaction that becomes visible atomically (``manifest``); searches scatter to the shards of one cut and merge
exactly (``search``). Shards run in this process or as Ray actors (``backends``)."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from retrievekit.analysis import Analyzer, get_analyzer
from retrievekit.collection import Collection, assemble, kept_rag, search_modes
from retrievekit.core.config import CollectionConfig
from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError, RetrievekitError
from retrievekit.core.filters import Filter
from retrievekit.retrieval.base import Retriever, SearchResults
from retrievekit.sharding.backends.base import CutExpiredError, ShardPool
from retrievekit.sharding.manifest import CLUSTER_MANIFEST, ClusterManifest, ShardEntry
from retrievekit.sharding.routing import shard_of
from retrievekit.sharding.shard import SEQ_FIELD
from retrievekit.storage.lock import WriterLock
from retrievekit.storage.manifest import Manifest, pin_manifest
from retrievekit.storage.writer import as_document

CUT_RETRIES = 5  # searches of the latest cut retried when writers moved past it (see CutExpiredError)


@dataclass(frozen=True)
class Cut:
    """One committed state of a sharded collection: the generation of every shard that belongs to it."""

    generation: int
    generations: tuple[int, ...]
    documents: int


class ShardedCollection:
    """A collection split over shards. ``ray``: None runs the shards in this process; an address
    ("127.0.0.1:6379", "ray://host:10001", or "auto"/"local" for a local Ray started here) runs one Ray actor per
    shard (``backends.ray``). ``allow_partial_results``: when a shard cannot answer, search the others and flag
    the results (``ShardedSearchResults.missing_shards``) instead of failing."""

    def __init__(self, path: str | Path, *, ray: str | None = None, allow_partial_results: bool = False,
                 timeout: float | None = None, ray_options: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        manifest = ClusterManifest.read(self.path)
        self._stamp: tuple[int, int, int] | None = None
        self._manifest = manifest
        self._lock = threading.Lock()
        paths = [manifest.shard_path(self.path, i) for i in range(len(manifest.shards))]
        self.pool: ShardPool
        if ray is None:
            from retrievekit.sharding.backends.local import LocalShards

            self.pool = LocalShards(paths)
        else:
            from retrievekit.sharding.backends.ray import RayShards

            self.pool = RayShards(paths, address=ray, cluster=str(self.path.resolve()), **dict(ray_options or {}))
        self.pool.timeout = timeout
        self.allow_partial_results = allow_partial_results
        self.analyzer: Analyzer = get_analyzer(self.settings.bm25.analyzer)
        self._encoders: dict[str, Any] = {}

    # -- creation ----------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, shards: int, *, shard_paths: Sequence[str | Path] | None = None,
               ray: str | None = None, allow_partial_results: bool = False, **options: Any) -> ShardedCollection:
        """Create an empty sharded collection of ``shards`` shards in folder ``path`` (shards in ``path``/shard-NNN,
        or at ``shard_paths``: any paths every worker can reach). ``options`` are ``Collection.create``'s
        (analyzer, fields, dense, vectors, ...), the same for every shard."""
        path = Path(path)
        if shards < 1:
            raise CollectionError(f"a sharded collection needs at least 1 shard, got {shards}")
        if (path / CLUSTER_MANIFEST).exists():
            raise CollectionError(f"a sharded collection already exists at {path}")
        if options.get("field_weights"):
            raise CollectionError("multi-field BM25 (field_weights) is not supported on sharded collections yet")
        if shard_paths is not None and len(shard_paths) != shards:
            raise CollectionError(f"{len(shard_paths)} shard paths for {shards} shards")
        path.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(path)
        try:
            entries = []
            config: dict[str, Any] = {}
            for i in range(shards):
                where = Path(shard_paths[i]) if shard_paths is not None else Path(f"shard-{i:03d}")
                shard = Collection.create(where if where.is_absolute() else path / where, **options)
                manifest = Manifest.read(shard.path)
                pin_manifest(shard.path, manifest)
                entries.append(ShardEntry(str(where), manifest.generation, 0))
                config = manifest.config
            ClusterManifest(entries, generation=0, next_seq=0, config=config).write(path)
        finally:
            lock.release()
        return cls(path, ray=ray, allow_partial_results=allow_partial_results)

    @classmethod
    def open(cls, path: str | Path, **options: Any) -> ShardedCollection:
        return cls(path, **options)

    def close(self) -> None:
        self.pool.close()

    def shutdown_actors(self) -> None:
        """On a Ray cluster given by address the shard actors are detached (other clients, a server, share them):
        end them here (the shards' data stays; the next client starts new ones). Nothing to do in-process."""
        from retrievekit.sharding.backends.ray import RayShards

        if isinstance(self.pool, RayShards):
            self.pool.shutdown()

    def __enter__(self) -> ShardedCollection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the committed cut -------------------------------------------------------------------------------------
    def manifest(self) -> ClusterManifest:
        """The latest cluster manifest (re-read only when the file changed)."""
        st = os.stat(self.path / CLUSTER_MANIFEST)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._manifest, self._stamp = ClusterManifest.read(self.path), stamp
            return self._manifest

    def cut_statistics(self, cut: Cut) -> dict[str, Any]:
        """The BM25 statistics gathered so far for ``cut`` (filled by ``ShardedBM25``): a cut is immutable, so a
        term's df/cf and the corpus totals hold for every later search of it. The two most recent cuts are kept."""
        with self._lock:
            cache: dict[int, dict[str, Any]] = self.__dict__.setdefault("_cut_statistics", {})
            entry = cache.get(cut.generation)
            if entry is None:
                entry = cache[cut.generation] = {"df": {}, "cf": {}, "docs": None, "docs_with_terms": None,
                                                 "total_terms": None}
                while len(cache) > 2:
                    cache.pop(next(iter(cache)))
            return entry

    def snapshot(self) -> Cut:
        m = self.manifest()
        return Cut(m.generation, tuple(s.generation for s in m.shards), m.documents)

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest().config

    @property
    def settings(self) -> CollectionConfig:
        return CollectionConfig.from_json(self.config)

    @property
    def shards(self) -> int:
        return len(self.manifest().shards)

    def has_index(self, kind: str, name: str = "default") -> bool:
        return name in (self.config.get(kind) or {})

    def modes(self) -> list[str]:
        """Search modes, as ``Collection.modes``."""
        return search_modes(self.has_index)

    @property
    def default_mode(self) -> str:
        return "hybrid" if self.has_index("dense") else "bm25"

    # -- reading -----------------------------------------------------------------------------------------------
    def _route(self, doc_id: str) -> int:
        """The shard holding ``doc_id`` (a passage ``ID#n`` lives with its document ``ID``)."""
        if self.config.get("passages") and "#" in doc_id:
            doc_id = doc_id.rsplit("#", 1)[0]
        return shard_of(doc_id, self.shards)

    def get_many(self, ids: Sequence[str], cut: Cut | None = None) -> list[Document | None]:
        if cut is None:  # the latest cut; read again if writers moved past it meanwhile
            for attempt in range(CUT_RETRIES):
                try:
                    return self.get_many(ids, self.snapshot())
                except CutExpiredError:
                    if attempt == CUT_RETRIES - 1:
                        raise
            raise AssertionError("unreachable")
        groups: dict[int, list[int]] = {}
        for n, doc_id in enumerate(ids):
            groups.setdefault(self._route(doc_id), []).append(n)
        targets = sorted(groups)
        answers = self.pool.scatter("get_many", [([ids[n] for n in groups[s]], cut.generations[s]) for s in targets],
                                    shards=targets)
        out: list[Document | None] = [None] * len(ids)
        for s, docs in zip(targets, answers):
            for n, doc in zip(groups[s], docs):
                out[n] = doc
        return out

    def get(self, doc_id: str) -> Document | None:
        return self.get_many([doc_id])[0]

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.get(doc_id) is not None

    def __len__(self) -> int:
        return self.snapshot().documents

    def iter_documents(self) -> Iterator[Document]:
        """Every live document of the current cut, shard by shard (each shard's list is read whole)."""
        cut = self.snapshot()
        for s, generation in enumerate(cut.generations):
            yield from self.pool.call(s, "documents", generation)

    def hit_documents(self, results: SearchResults, query: int = 0, start: int = 0) -> list[tuple[Document, float]]:
        hits = results.hits(query)[start:]
        docs = self.get_many([doc_id for doc_id, _ in hits])
        return [(doc, score) for doc, (_, score) in zip(docs, hits) if doc is not None]

    def info(self) -> dict[str, Any]:
        cut = self.snapshot()
        shards = self.pool.scatter("info", [(g,) for g in cut.generations], partial=True)
        return {"path": str(self.path), "generation": cut.generation, "documents": cut.documents,
                "shards": [s if isinstance(s, dict) else {"shard": i, "unavailable": str(s)}
                           for i, s in enumerate(shards)],
                "modes": self.modes(), "config": self.config}

    # -- searching ---------------------------------------------------------------------------------------------
    def encoder(self, index: str = "default", config: Mapping[str, Any] | None = None) -> Any:
        """The encoder of dense index ``index`` (for queries here; shards encode their own documents)."""
        from retrievekit.index.base import segment_index

        if config is None:
            indexes = self.config.get("dense") or {}
            if index not in indexes:
                raise CollectionError(f"sharded collection {self.path} has no dense index {index!r}")
            config = indexes[index]
        backend = segment_index("dense")
        key = backend.encoder_key(config)
        if key not in self._encoders:
            self._encoders[key] = backend.load_encoder(config)
        return self._encoders[key]

    def query_encoder(self, index: str = "default") -> Any:
        from retrievekit.retrieval.dense.retriever import query_encoder

        indexes = self.config.get("dense") or {}
        if index not in indexes:
            raise CollectionError(f"sharded collection {self.path} has no dense index {index!r} (has: "
                                  f"{', '.join(indexes) or 'none'}); add one with add_dense_index")
        return query_encoder(self, index, indexes[index])  # type: ignore[arg-type]

    def retriever(self, mode: str = "bm25", *, cut: Cut | None = None, scorer: str | Mapping[str, Any] | None = None,
                  index: str = "default", fusion: str | Mapping[str, Any] | None = None, rerank: Any = None,
                  depth: int = 100, allow_partial_results: bool | None = None, rm3: Any = False,
                  field_weights: Mapping[str, float] | None = None, **scorer_params: Any) -> Retriever:
        """A retriever over one cut (default: the latest), built like ``Collection.retriever``."""
        from retrievekit.sharding.search import ShardedBM25, ShardedDense, ShardedSparse

        if rm3 or field_weights:
            raise RetrievekitError("RM3 and multi-field weights are not supported on sharded collections yet")
        cut = cut or self.snapshot()
        partial = self.allow_partial_results if allow_partial_results is None else allow_partial_results
        retriever = assemble(
            mode,
            lambda: ShardedBM25(self, cut, scorer=scorer, allow_partial_results=partial, **scorer_params),
            lambda: ShardedDense(self, cut, index, allow_partial_results=partial),
            lambda: ShardedSparse(self, cut, index, allow_partial_results=partial),
            fusion=fusion, rerank=rerank, depth=depth)
        return retriever

    def search(self, queries: str | Sequence[str], k: int = 10, *, mode: str = "bm25", filter: Filter | None = None,
               threads: int = 1, **options: Any) -> SearchResults:
        """Search a batch of queries over the latest cut; the options of ``Collection.search`` (scorer and its
        parameters, index, fusion, rerank, depth) plus ``allow_partial_results``."""
        if filter:
            self.check_filter(filter)  # against every shard's fields, as one collection checks its own
        batch = [queries] if isinstance(queries, str) else list(queries)
        for attempt in range(CUT_RETRIES):
            retriever = self.retriever(mode, **options)
            try:
                return retriever.search(batch, k, filter=filter, threads=threads)
            except CutExpiredError:
                if attempt == CUT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def ask(self, question: str, **options: Any) -> Any:
        """Answer from the sharded collection's documents with citations (see ``Collection.ask``)."""
        from retrievekit.rag.pipeline import RAG

        return RAG(self, **options).ask(question)  # type: ignore[arg-type]

    # -- writing -----------------------------------------------------------------------------------------------
    def writer(self, *, lock_timeout: float = 0.0) -> ShardedWriter:
        """The cluster's single writer: its adds and deletes become visible together at ``commit``."""
        return ShardedWriter(self, lock_timeout=lock_timeout)

    def add(self, documents: Iterable[Document | Mapping[str, Any]], *, lock_timeout: float = 0.0,
            batch_size: int = 1000) -> int:
        """Add (or replace, by id) documents in one atomic multi-shard commit; returns how many."""
        with self.writer(lock_timeout=lock_timeout) as w:
            return w.add(documents, batch_size=batch_size)

    def delete(self, ids: Iterable[str], *, lock_timeout: float = 0.0) -> int:
        with self.writer(lock_timeout=lock_timeout) as w:
            return w.delete(ids)

    def ingest(self, source: str | Path | Iterable[Document | Mapping[str, Any]], format: str | None = None, *,
               batch_size: int = 1000, encoders: int = 0, lock_timeout: float = 0.0,
               **reader_options: Any) -> dict[str, Any]:
        """Add the documents of a file or folder (any format ``Collection.ingest`` reads) or of an iterable, in one
        atomic multi-shard commit: each shard's writer indexes (and encodes) its own documents, in parallel.
        ``encoders`` > 0 (Ray only): first encode every dense index's texts with that many Ray Data actors into
        the shared embedding cache (``sharding.ingest``), so encoding is spread over the cluster independently of
        the shard count; RETRIEVEKIT_CACHE must then name a folder every node reaches. Returns counts and timings,
        and, as ``Collection.ingest``, the folder's files left out as ``skipped`` ``[[path, reason], ...]``
        (encrypted or corrupt PDFs, empty files, zip bombs, ...) and those indexed with a problem as ``warnings``."""
        import time

        from retrievekit.ingest import read_documents, report_file_problems

        started = time.perf_counter()
        skipped, warnings = report_file_problems(source, format, reader_options)
        documents: Iterable[Document | Mapping[str, Any]] = (
            read_documents(source, format, **reader_options) if isinstance(source, str | Path) else source)
        encoded = 0
        encode_seconds = 0.0
        if encoders > 0:
            from retrievekit.sharding.backends.ray import RayShards

            if not isinstance(self.pool, RayShards):
                raise CollectionError("encoders= spreads encoding over a Ray cluster: open the collection with ray=")
            if self.config.get("passages"):
                raise CollectionError("encoders= does not work with passage collections yet (their texts are known "
                                      "only after chunking, in the shard writers); leave it out")
            docs = [as_document(d, n) for n, d in enumerate(documents)]
            if self.config.get("dense"):
                from retrievekit.sharding.ingest import encode_into_cache

                t0 = time.perf_counter()
                encoded = encode_into_cache(docs, self.config["dense"], workers=encoders)
                encode_seconds = time.perf_counter() - t0
            documents = docs
        with self.writer(lock_timeout=lock_timeout) as w:
            added = w.add(documents, batch_size=batch_size)
        return {"documents": added, "encoded_texts": encoded, "encode_seconds": round(encode_seconds, 3),
                "seconds": round(time.perf_counter() - started, 3), "generation": self.snapshot().generation,
                "skipped": skipped, "warnings": warnings}

    def add_dense_index(self, encoder: Any = None, *, name: str = "default", chunking: Any = None,
                        vectors: str | None = None, lock_timeout: float = 0.0) -> int:
        """Encode every shard's documents into a new dense index (shards encode in parallel) and commit it on
        every shard at once; returns the cluster generation."""
        from retrievekit.encoders import get_encoder
        from retrievekit.index.dense.segment import make_index_config

        chunk = chunking if chunking is None or isinstance(chunking, str) else dict(chunking)
        config = make_index_config(get_encoder(encoder), chunking=chunk, fields=self.settings.fields, vectors=vectors)
        with self.writer(lock_timeout=lock_timeout) as w:
            return w.add_index("dense", name, config)

    # -- for the services (HTTP API, command line) -------------------------------------------------------------
    def rag(self, **options: Any) -> Any:
        """A ``retrievekit.rag.RAG`` pipeline over this sharded collection, kept per options as ``Collection.rag``
        keeps them (the 16 most recently used; plain values compared by value, objects by identity), so the
        retrieval cache carries over between questions asked with the same settings."""
        with self._lock:
            rags: dict[str, Any] = self.__dict__.setdefault("_rags", {})
        return kept_rag(self, rags, self._lock, options)

    def shard_snapshots(self, cut: Cut | None = None) -> list[Any]:
        """Every shard's committed state (``storage.snapshot.Snapshot``) in ``cut`` (default: the latest), read in
        this process: in-process shards give their open collections' snapshots; the folders of Ray shards are
        opened here read-only (they must be reachable from this process). For what scatter calls do not carry:
        metadata field names and types, segment counts."""
        from retrievekit.sharding.backends.local import LocalShards

        cut = cut or self.snapshot()
        if isinstance(self.pool, LocalShards):
            return [shard.collection.snapshot_at(g) for shard, g in zip(self.pool.shards, cut.generations)]
        manifest = self.manifest()
        with self._lock:
            readers: dict[int, Collection] = self.__dict__.setdefault("_readers", {})
        out = []
        for i, generation in enumerate(cut.generations):
            reader = readers.get(i)
            if reader is None:
                path = manifest.shard_path(self.path, i)
                try:
                    reader = readers[i] = Collection(path)
                except (CollectionError, OSError) as exc:
                    raise CollectionError(f"shard {i} of {self.path} cannot be read from this process ({exc}); its "
                                          "folder must be reachable here for metadata fields and filter checks") \
                        from None
            out.append(reader.snapshot_at(generation))
        return out

    def metadata_field_types(self, cut: Cut | None = None, prefetch: Sequence[str] = ()) -> dict[str, frozenset[str]]:
        """Metadata field -> the JSON types its values take, over every shard (each shard's
        ``Snapshot.metadata_fields``, gathered by a scatter call; the field holding the global insertion number is
        left out)."""
        cut = cut or self.snapshot()
        merged: dict[str, set[str]] = {}
        for fields in self.pool.scatter("metadata_fields", [(g, list(prefetch)) for g in cut.generations]):
            for name, kinds in fields.items():
                merged.setdefault(name, set()).update(kinds)
        return {name: frozenset(kinds) for name, kinds in merged.items()}

    def check_filter(self, filter: Filter) -> None:
        """``Snapshot.check_filter`` over the whole collection: FilterError if ``filter`` is malformed, names a
        field no document of any shard has, or compares a field with a type it never holds. A collection without
        documents has nothing to check against. Shards do not check fields themselves: a field some shards lack
        matches nothing there."""
        from retrievekit.core.filters import check_fields, parse_filter

        fields = parse_filter(filter)
        cut = self.snapshot()
        if not cut.documents:
            return
        check_fields(filter, self.metadata_field_types(cut, prefetch=list(fields)))

    def add_sparse_index(self, encoder: Any = "splade-tiny", *, name: str = "default",
                         fields: Sequence[str] | None = None, quantization: int = 100,
                         lock_timeout: float = 0.0) -> int:
        """Encode every shard's documents with a SPLADE model into a new learned-sparse index (shards in parallel)
        and commit it on every shard at once; returns the cluster generation."""
        from retrievekit.encoders.splade import get_sparse_encoder
        from retrievekit.index.sparse.segment import make_sparse_config

        config = make_sparse_config(get_sparse_encoder(encoder), fields=fields or self.settings.fields,
                                    quantization=quantization)
        with self.writer(lock_timeout=lock_timeout) as w:
            return w.add_index("sparse", name, config)

    def __repr__(self) -> str:
        return f"ShardedCollection({str(self.path)!r}, shards={self.shards}, documents={len(self)})"


class ShardedWriter:
    """One transaction at a time over every shard; see ``ShardedCollection.writer``. Use as a context manager:
    commits on success, rolls back on error."""

    def __init__(self, collection: ShardedCollection, *, lock_timeout: float = 0.0) -> None:
        self.collection = collection
        self.pool = collection.pool
        self._lock = WriterLock(collection.path, lock_timeout)
        self.closed = False
        try:
            self._manifest = ClusterManifest.read(collection.path)
            self._recover()
            self._begin()
        except BaseException:
            self._lock.release()
            raise

    def _recover(self) -> None:
        """Undo shard commits the cluster manifest never recorded (a writer died between them)."""
        self.pool.scatter("recover", [(e.generation,) for e in self._manifest.shards])

    def _begin(self) -> None:
        self._transaction = secrets.token_hex(8)
        self.pool.scatter("begin", [(self._transaction,)] * self.pool.size)
        self._calls = [0] * self.pool.size
        self._next_seq = self._manifest.next_seq
        self.added = self.removed = 0

    def add(self, documents: Iterable[Document | Mapping[str, Any]], *, batch_size: int = 1000) -> int:
        """Route and send documents (validated here, with their position in the input); visible at ``commit``."""
        self._check_open()
        batch: list[Document] = []
        count = 0
        for position, item in enumerate(documents):
            doc = as_document(item, position)
            if SEQ_FIELD in doc.metadata:
                raise CollectionError(f"item {position}: document {doc.id!r} has metadata field "
                                      f"{SEQ_FIELD!r}, which sharded collections reserve")
            doc = replace(doc, metadata={**doc.metadata, SEQ_FIELD: self._next_seq})
            self._next_seq += 1
            batch.append(doc)
            if len(batch) >= batch_size:
                count += self._send(batch)
                batch = []
        if batch:
            count += self._send(batch)
        self.added += count
        return count

    def _send(self, batch: list[Document]) -> int:
        n = self.pool.size
        groups: dict[int, list[Document]] = {}
        for doc in batch:
            groups.setdefault(shard_of(doc.id, n), []).append(doc)
        targets = sorted(groups)
        for s in targets:
            self._calls[s] += 1
        try:
            counts = self.pool.scatter("add", [(groups[s], self._transaction) for s in targets], shards=targets)
        except BaseException:
            self.rollback()
            raise
        return int(sum(counts))

    def delete(self, ids: Iterable[str]) -> int:
        self._check_open()
        n = self.pool.size
        groups: dict[int, list[str]] = {}
        for doc_id in ids:
            groups.setdefault(shard_of(doc_id, n), []).append(doc_id)
        targets = sorted(groups)
        for s in targets:
            self._calls[s] += 1
        try:
            counts = self.pool.scatter("delete", [(groups[s], self._transaction) for s in targets], shards=targets)
        except BaseException:
            self.rollback()
            raise
        removed = int(sum(counts))
        self.removed += removed
        return removed

    def add_index(self, kind: str, name: str, config: dict[str, Any]) -> int:
        """Build a dense/sparse index on every shard (in parallel) and record it in one cluster commit."""
        self._check_open()
        try:
            generations = self.pool.scatter("add_index", [(kind, name, config, self._transaction)] * self.pool.size)
        except BaseException:
            self._recover()
            self._begin()
            raise
        infos = self.pool.scatter("info", [(g,) for g in generations])
        manifest = self._manifest
        shards = [ShardEntry(e.path, int(g), int(info["documents"]))
                  for e, g, info in zip(manifest.shards, generations, infos)]
        config_now = {**manifest.config, kind: {**(manifest.config.get(kind) or {}), name: config}}
        return self._publish(ClusterManifest(shards, manifest.generation + 1, manifest.next_seq, config_now,
                                             manifest.extra))

    def commit(self) -> int:
        """Commit every shard this transaction wrote to, then record all their generations in one atomic replace
        of the cluster manifest (the moment the writes become visible and acknowledged). Returns the cluster
        generation."""
        self._check_open()
        manifest = self._manifest
        targets = [s for s in range(self.pool.size) if self._calls[s]]
        if not targets:
            self._begin()
            return manifest.generation
        try:
            results = self.pool.scatter("commit", [(self._transaction, self._calls[s]) for s in targets],
                                        shards=targets)
        except BaseException:
            # Some shards may have committed: undo them now (the next writer would otherwise), then re-raise.
            try:
                self._recover()
            finally:
                self._begin()
            raise
        shards = list(manifest.shards)
        for s, (generation, live) in zip(targets, results):
            shards[s] = ShardEntry(shards[s].path, int(generation), int(live))
        return self._publish(ClusterManifest(shards, manifest.generation + 1, self._next_seq, manifest.config,
                                             manifest.extra))

    def _publish(self, new: ClusterManifest) -> int:
        previous = self._manifest
        new.write(self.collection.path)  # the commit point
        self._manifest = new
        # Keep the previous cut pinned too: readers that read the old cluster manifest a moment ago open it now.
        self.pool.scatter("unpin", [([e.generation, old.generation],) for e, old in zip(new.shards, previous.shards)],
                          partial=True)
        self._begin()
        return new.generation

    def rollback(self) -> None:
        self.pool.scatter("rollback", None, partial=True)
        self._begin()

    def _check_open(self) -> None:
        if self.closed:
            raise CollectionError("this sharded writer is closed; open a new one with collection.writer()")

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.pool.scatter("close_writer", None, partial=True)
        finally:
            self.closed = True
            self._lock.release()

    def __enter__(self) -> ShardedWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()
