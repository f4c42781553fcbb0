"""One shard's server side: an ordinary collection answering the coordinator's scatter requests at a given
generation (the cut the cluster manifest names), and writing the documents routed to it. The same class runs
in-process (``backends.local``) or as a Ray actor (``backends.ray``); every argument and result is plain data
(numpy arrays, lists, dicts) so it crosses process boundaries cheaply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.collection import Collection
from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError
from retrievekit.core.filters import Filter
from retrievekit.encoders.base import Encoder
from retrievekit.index.bm25.stats import CorpusStats
from retrievekit.retrieval.base import SearchResults
from retrievekit.retrieval.bm25.retriever import BM25Retriever, SharedStatistics, term_statistics
from retrievekit.sharding.backends.base import CutExpiredError
from retrievekit.storage.manifest import Manifest, pin_manifest, read_pinned, unpin
from retrievekit.storage.snapshot import Snapshot
from retrievekit.storage.writer import CollectionWriter

SEQ_FIELD = "_rk_seq"  # metadata: the document's global insertion number (global tie order); hidden from users

# One scatter answer per query: (ids, scores, insertion numbers), best first.
Hits = tuple[list[str], np.ndarray, np.ndarray]


class PinnedView:
    """The parts of a collection a retriever uses (``retrieval.base.CollectionView``), fixed to one snapshot."""

    def __init__(self, collection: Collection, snap: Snapshot) -> None:
        self._collection, self._snap = collection, snap
        self.path = collection.path
        self.analyzer = collection.analyzer

    @property
    def settings(self) -> Any:
        return self._snap.settings

    def snapshot(self) -> Snapshot:
        return self._snap

    def index_config(self, kind: str, index: str = "default") -> dict[str, Any]:
        indexes = self._snap.manifest.config.get(kind) or {}
        if index not in indexes:
            raise CollectionError(f"shard {self.path} has no {kind} index {index!r} at generation "
                                  f"{self._snap.generation} (has: {', '.join(indexes) or 'none'})")
        return dict(indexes[index])

    def encoder(self, index: str = "default", config: Mapping[str, Any] | None = None) -> Any:
        return self._collection.encoder(index, config)

    def sparse_encoder(self, index: str = "default", config: Mapping[str, Any] | None = None) -> Any:
        return self._collection.sparse_encoder(index, config)

    def get_many(self, ids: Sequence[str]) -> list[Document | None]:
        return [self._snap.get(i) for i in ids]


def strip_seq(doc: Document | None) -> Document | None:
    if doc is None or SEQ_FIELD not in doc.metadata:
        return doc
    return replace(doc, metadata={k: v for k, v in doc.metadata.items() if k != SEQ_FIELD})


class Shard:
    """Serve one shard. ``generation`` arguments select the pinned commit to read (the cluster's cut)."""

    def __init__(self, path: str | Path, index: int = 0) -> None:
        self.path = Path(path)
        self.index = index
        self.collection = Collection(self.path)
        self._writer: CollectionWriter | None = None
        self._transaction: str | None = None  # the cluster transaction the open writer's changes belong to
        self._calls = 0
        self._seqs: dict[int, dict[str, int]] = {}  # generation -> live id -> global insertion number

    # -- reading ---------------------------------------------------------------------------------------------
    def ping(self) -> dict[str, Any]:
        import os
        import socket

        return {"shard": self.index, "path": str(self.path), "pid": os.getpid(), "host": socket.gethostname(),
                "generation": self.collection.snapshot().generation}

    def _snap(self, generation: int) -> Snapshot:
        try:
            snap = self.collection.snapshot_at(generation)
        except CollectionError as exc:
            if Manifest.read(self.path).generation > generation:
                raise CutExpiredError(f"shard {self.index}: {exc}") from None
            raise
        snap.check_fields = False  # the coordinator checks filters against every shard's fields
        return snap

    def metadata_fields(self, generation: int, prefetch: list[str]) -> dict[str, list[str]]:
        """Metadata field -> the JSON types its values take in this shard (for the coordinator's filter checks)."""
        fields = self._snap(generation).metadata_fields(prefetch=prefetch)
        return {name: sorted(kinds) for name, kinds in fields.items() if name != SEQ_FIELD}

    def _seq_of(self, snap: Snapshot) -> dict[str, int]:
        """Live document id -> its global insertion number, read once per generation (one pass over each segment's
        ids and its ``SEQ_FIELD`` metadata column)."""
        seq_of = self._seqs.get(snap.generation)
        if seq_of is None:
            seq_of = {}
            for seg, live in zip(snap.segments, snap.live):
                column = seg.metadata_columns([SEQ_FIELD])[SEQ_FIELD] or [None] * seg.n_docs
                for local, (doc_id, seq) in enumerate(zip(seg.ids, column)):
                    if live is None or live[local]:
                        seq_of[doc_id] = -1 if seq is None else int(seq)
            self._seqs[snap.generation] = seq_of
            while len(self._seqs) > 4:
                self._seqs.pop(next(iter(self._seqs)))
        return seq_of

    def _hits(self, snap: Snapshot, results: SearchResults) -> list[Hits]:
        """Per query: the hit ids, scores and insertion numbers (the coordinator's tie-break)."""
        seq_of = self._seq_of(snap)
        out = []
        for i in range(len(results)):
            ids = [d for d in results.ids[i] if d is not None]
            scores = np.asarray(results.scores[i][: len(ids)], np.float32)
            out.append((ids, scores, np.array([seq_of[d] for d in ids], np.int64)))
        return out

    def term_stats(self, terms: list[str], generation: int) -> dict[str, Any]:
        """This shard's part of the global BM25 statistics: per term df and cf, and the corpus totals."""
        snap = self._snap(generation)
        corpus = snap.bm25_stats
        if terms and snap.segments:
            _, _, df, cf = term_statistics(snap, terms)
        else:
            df = cf = np.zeros(len(terms), np.float64)
        return {"df": df, "cf": cf, "docs": corpus.docs, "docs_with_terms": corpus.docs_with_terms,
                "total_terms": corpus.total_terms}

    def search_bm25(self, queries: list[str], k: int, generation: int, statistics: dict[str, Any] | None,
                    scorer: Mapping[str, Any] | None = None, filter: Filter | None = None) -> list[Hits]:
        """BM25 with the global ``statistics`` (None: this shard's own, for a collection of one shard)."""
        snap = self._snap(generation)
        shared = None if statistics is None else SharedStatistics(
            corpus=CorpusStats(int(statistics["docs"]), int(statistics["docs_with_terms"]),
                               int(statistics["total_terms"])),
            df=statistics["df"], cf=statistics["cf"])
        retriever = BM25Retriever(PinnedView(self.collection, snap), scorer=scorer, statistics=shared,
                                  field_weights={})
        return self._hits(snap, retriever.search(queries, k, filter=filter))

    def search_dense(self, vectors: np.ndarray, k: int, generation: int, index: str = "default",
                     filter: Filter | None = None) -> list[Hits]:
        from retrievekit.retrieval.dense.retriever import DenseRetriever

        snap = self._snap(generation)
        view = PinnedView(self.collection, snap)
        retriever = DenseRetriever(view, index, encoder=_NoQueries(view, index))
        return self._hits(snap, retriever.search_vectors(vectors, k, filter=filter))

    def search_sparse(self, queries: list[str], k: int, generation: int, index: str = "default",
                      filter: Filter | None = None) -> list[Hits]:
        from retrievekit.retrieval.sparse.retriever import LearnedSparseRetriever

        snap = self._snap(generation)
        retriever = LearnedSparseRetriever(PinnedView(self.collection, snap), index)
        return self._hits(snap, retriever.search(queries, k, filter=filter))

    def get_many(self, ids: list[str], generation: int) -> list[Document | None]:
        snap = self._snap(generation)
        return [strip_seq(snap.get(i)) for i in ids]

    def info(self, generation: int) -> dict[str, Any]:
        snap = self._snap(generation)
        return {"shard": self.index, "path": str(self.path), **snap.info()}

    def documents(self, generation: int) -> list[Document]:
        """Every live document at ``generation`` (for checks and exports; small shards only)."""
        return [d for d in map(strip_seq, self._snap(generation).iter_documents()) if d is not None]

    # -- writing ---------------------------------------------------------------------------------------------
    def _open_writer(self) -> CollectionWriter:
        if self._writer is None or self._writer.closed:
            self._writer = self.collection.writer(lock_timeout=30.0)
        return self._writer

    def recover(self, generation: int) -> int:
        """Make ``generation`` (the one the cluster manifest records) this shard's current state: a commit made
        after it by a writer that died before the cluster manifest recorded it is undone. Returns the shard's
        generation now."""
        current = Manifest.read(self.path).generation
        if current == generation:
            return current
        if current < generation:
            raise CollectionError(f"shard {self.path} is at generation {current}, older than the {generation} the "
                                  "cluster manifest records: the shard folder was replaced or restored from an old "
                                  "backup")
        recorded, now = read_pinned(self.path, generation), Manifest.read(self.path)
        if recorded.config == now.config and [e.to_json() for e in recorded.segments] == [
                e.to_json() for e in now.segments]:
            return current  # restored before: the same contents under a newer generation
        writer = self._open_writer()
        new = writer.restore(generation)
        self.close_writer()
        return new

    def begin(self, transaction: str) -> None:
        """Start a cluster transaction: the writes that follow belong to it (see ``commit``)."""
        self.rollback()
        self._transaction, self._calls = transaction, 0

    def _check(self, transaction: str) -> None:
        if getattr(self, "_transaction", None) != transaction:
            # This process did not see the transaction begin: the actor was restarted and lost its writes.
            raise CollectionError(f"shard {self.index} ({self.path}) lost the uncommitted writes of this transaction "
                                  "(it was restarted); nothing was committed — retry the transaction")

    def add(self, documents: list[Document], transaction: str) -> int:
        self._check(transaction)
        self._calls += 1
        return self._open_writer().add(documents)

    def delete(self, ids: list[str], transaction: str) -> int:
        self._check(transaction)
        self._calls += 1
        return self._open_writer().delete(ids)

    def commit(self, transaction: str, calls: int) -> tuple[int, int]:
        """Commit and pin what this transaction's ``calls`` writes added/deleted; (generation, live documents).
        Refuses when this shard saw fewer writes than the coordinator sent (a restart lost some)."""
        self._check(transaction)
        if self._calls != calls:
            raise CollectionError(f"shard {self.index} received {self._calls} of the transaction's {calls} writes; "
                                  "nothing was committed — retry the transaction")
        writer = self._open_writer()
        generation = writer.commit(pin=True)
        self._transaction = None
        return generation, self.collection.snapshot().live_docs

    def rollback(self) -> None:
        if self._writer is not None and not self._writer.closed:
            self._writer.rollback()

    def close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def unpin(self, keep: list[int]) -> None:
        unpin(self.path, set(keep))

    def add_index(self, kind: str, name: str, config: dict[str, Any], transaction: str) -> int:
        """Add a dense/sparse index to this shard (encodes its documents; committed and pinned at once: the
        cluster records it with every other shard's)."""
        self._check(transaction)
        writer = self._open_writer()
        generation = writer.add_index(kind, name, config)
        pin_manifest(self.path, Manifest.read(self.path))
        self._transaction = None
        return generation


class _NoQueries(Encoder):
    """Stands in for the query encoder of a shard's dense search: the coordinator encodes queries once and sends
    vectors, so a shard never loads the model for queries. Its spec is the index's, so the compatibility check
    passes."""

    def __init__(self, view: PinnedView, index: str) -> None:
        self._spec = dict(view.index_config("dense", index)["encoder"])

    @property
    def dim(self) -> int:
        return int(self._spec.get("dim") or 0)

    def spec(self) -> dict[str, Any]:
        return dict(self._spec)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        raise CollectionError("a shard does not encode queries: the coordinator sends query vectors")
