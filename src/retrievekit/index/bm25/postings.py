"""Per-segment inverted index: build in memory while documents arrive, write as mmap-able ``.npy`` arrays.

Files in ``<segment>/bm25/``:
  terms.txt          one term per line, line number = term id
  df.npy, cf.npy     document frequency (uint32) and collection frequency (int64) per term
  offsets.npy        int64, postings of term t are [offsets[t], offsets[t+1])
  docs.npy           uint32 document numbers (ascending within a term)
  tfs.npy            uint16 (uint32 if some tf > 65535) term frequencies
  lengths.npy        uint32 number of indexed terms per document
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.analysis import Analyzer
from retrievekit.core.files import fsync_write_array, fsync_write_text, load_array

_CHUNK_TOKENS = 2_000_000


class PostingsBuilder:
    """Accumulates (document, term, tf) triples for one segment in compact numpy chunks."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self.terms: list[str] = []
        self._term_ids: dict[str, int] = {}
        self._token_ids: dict[str, int] = {}  # raw token -> term id, -1 for a dropped token (stop word)
        self._tokens: list[str] = []
        self._tfs: list[int] = []
        self._token_counts: list[int] = []
        self._chunk_first_doc = 0
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._lengths: list[np.ndarray] = []
        self.n_docs = 0
        self.n_postings = 0

    def term_id(self, term: str) -> int:
        tid = self._term_ids.get(term)
        if tid is None:
            tid = self._term_ids[term] = len(self.terms)
            self.terms.append(term)
        return tid

    def add(self, text: str) -> None:
        """Index ``text`` as the next document number."""
        # Counting raw tokens first (in C) means the analyzer mapping runs once per distinct token of the document.
        counts = Counter(self.analyzer.tokenize(text))
        self._tokens.extend(counts)
        self._tfs.extend(counts.values())
        self._token_counts.append(len(counts))
        self.n_docs += 1
        if len(self._tokens) >= _CHUNK_TOKENS:
            self._flush_chunk()

    def _flush_chunk(self) -> None:
        n = self.n_docs - self._chunk_first_doc
        if n == 0:
            return
        token_ids = self._token_ids
        new = [t for t in set(self._tokens) if t not in token_ids]
        if new:  # one batched analyzer call for the tokens this chunk introduces
            for token, term in zip(new, self.analyzer.normalize_many(new)):
                token_ids[token] = self.term_id(term) if term else -1
        ids = np.array(list(map(token_ids.__getitem__, self._tokens)), dtype=np.int64)
        tfs = np.array(self._tfs, dtype=np.int64)
        docs = np.repeat(np.arange(n, dtype=np.int64), np.array(self._token_counts, dtype=np.int64))
        keep = ids >= 0
        ids, docs, tfs = ids[keep], docs[keep], tfs[keep]
        self._lengths.append(np.bincount(docs, weights=tfs, minlength=n).astype(np.uint32))
        # Several raw tokens can share a term ("cell", "cells"): merge them. Keys are term-major, so the chunk's
        # postings come out grouped by term with documents ascending.
        keys = (ids << 32) | docs
        order = np.argsort(keys)
        keys = keys[order]
        if len(keys):
            starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
            merged = np.add.reduceat(tfs[order], starts)
            keys = keys[starts]
        else:
            merged = tfs
        self._chunks.append(((keys & 0xFFFFFFFF) + self._chunk_first_doc, keys >> 32, merged))
        self.n_postings += len(keys)
        self._chunk_first_doc = self.n_docs
        self._tokens = []
        self._tfs = []
        self._token_counts = []

    def write(self, folder: Path) -> dict[str, Any]:
        """Write the index files (fsynced) and return the segment's field statistics."""
        self._flush_chunk()
        if self._chunks:
            docs = np.concatenate([c[0] for c in self._chunks])
            terms = np.concatenate([c[1] for c in self._chunks])
            tfs = np.concatenate([c[2] for c in self._chunks])
        else:
            docs = terms = tfs = np.zeros(0, dtype=np.int64)
        # Each chunk is sorted by (term, doc) and chunks follow document order: a stable sort by term is enough.
        if len(self._chunks) > 1:
            order = np.argsort(terms, kind="stable")
            docs, terms, tfs = docs[order], terms[order], tfs[order]
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.uint32)
        return write_postings(folder, self.terms, terms, docs, tfs, lengths)


def write_postings(
    folder: Path, vocabulary: list[str], terms: np.ndarray, docs: np.ndarray, tfs: np.ndarray, lengths: np.ndarray
) -> dict[str, Any]:
    """Write an inverted index from postings sorted by (term, doc); returns the field statistics."""
    folder.mkdir(parents=True, exist_ok=True)
    n_terms = len(vocabulary)
    df = np.bincount(terms, minlength=n_terms)
    cf = np.bincount(terms, weights=tfs, minlength=n_terms).astype(np.int64)
    offsets = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df, out=offsets[1:])
    tf_dtype = np.uint16 if (len(tfs) == 0 or tfs.max() <= np.iinfo(np.uint16).max) else np.uint32
    fsync_write_text(folder / "terms.txt", "".join(t + "\n" for t in vocabulary))
    fsync_write_array(folder / "df.npy", df.astype(np.uint32))
    fsync_write_array(folder / "cf.npy", cf)
    fsync_write_array(folder / "offsets.npy", offsets)
    fsync_write_array(folder / "docs.npy", docs.astype(np.uint32))
    fsync_write_array(folder / "tfs.npy", tfs.astype(tf_dtype))
    fsync_write_array(folder / "lengths.npy", lengths.astype(np.uint32))
    return {
        "docs": len(lengths),
        "docs_with_terms": int(np.count_nonzero(lengths)),
        "total_terms": int(lengths.sum(dtype=np.int64)),
        "terms": n_terms,
        "postings": len(docs),
    }


def merge_postings(folder: Path, sources: list[tuple[PostingsReader, np.ndarray]]) -> dict[str, Any]:
    """Merge segments' indexes without re-analysing. ``sources`` are (reader, new_doc) where ``new_doc[local]`` is
    the document's number in the merged segment, or -1 to drop it."""
    new_ids: dict[str, int] = {}
    parts_terms, parts_docs, parts_tfs = [], [], []
    n_merged = int(sum(int((new_doc >= 0).sum()) for _, new_doc in sources))
    lengths = np.zeros(n_merged, np.uint32)
    monotonic = True  # new numbers increase with (source, local): a stable sort by term then suffices
    last = -1
    for reader, new_doc in sources:
        old_terms = reader.vocabulary()
        remap = np.fromiter((new_ids.setdefault(t, len(new_ids)) for t in old_terms), dtype=np.int64,
                            count=len(old_terms))
        live = new_doc >= 0
        lengths[new_doc[live]] = np.asarray(reader.lengths)[live]
        kept = new_doc[live]
        if len(kept):
            monotonic &= bool(kept[0] > last and np.all(np.diff(kept) > 0))
            last = int(kept[-1])
        docs = new_doc[np.asarray(reader.docs, dtype=np.int64)]
        keep = docs >= 0
        parts_terms.append(np.repeat(remap, np.diff(np.asarray(reader.offsets)))[keep])
        parts_docs.append(docs[keep])
        parts_tfs.append(np.asarray(reader.tfs)[keep].astype(np.int64))
    terms = np.concatenate(parts_terms) if parts_terms else np.zeros(0, np.int64)
    docs = np.concatenate(parts_docs) if parts_docs else np.zeros(0, np.int64)
    tfs = np.concatenate(parts_tfs) if parts_tfs else np.zeros(0, np.int64)
    order = np.argsort(terms, kind="stable") if monotonic else np.argsort((terms << 32) | docs)
    return write_postings(folder, list(new_ids), terms[order], docs[order], tfs[order], lengths)


class PostingsReader:
    """Memory-mapped view of one segment's inverted index."""

    def __init__(self, folder: Path, stats: dict[str, Any]) -> None:
        self.folder = folder
        self.stats = stats
        self.df = load_array(folder / "df.npy")
        self.cf = load_array(folder / "cf.npy")
        self.offsets = load_array(folder / "offsets.npy")
        self.docs = load_array(folder / "docs.npy")
        self.tfs = load_array(folder / "tfs.npy")
        self.lengths = load_array(folder / "lengths.npy")
        # Opened now so that a later merge deleting the folder cannot pull it from under this reader.
        self._terms_file = open(folder / "terms.txt", "rb")  # noqa: SIM115
        self._term_ids: dict[str, int] | None = None
        self._lock = threading.Lock()
        self._norms: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._bounds: dict[Any, Any] = {}

    def vocabulary(self) -> list[str]:
        """Terms in id order."""
        with self._lock:
            self._terms_file.seek(0)
            return self._terms_file.read().decode("utf-8").split("\n")[:-1]

    @property
    def term_ids(self) -> dict[str, int]:
        if self._term_ids is None:  # built once; a concurrent first use builds the same dict twice, harmlessly
            self._term_ids = {t: i for i, t in enumerate(self.vocabulary())}
        return self._term_ids

    def norms(self, key: Any, compute: Any) -> np.ndarray:
        """Per-document normalisation array for a scorer + corpus statistics, cached (LRU of 4)."""
        with self._lock:
            cached = self._norms.get(key)
            if cached is not None:
                self._norms.move_to_end(key)
                return cached
        value = compute(self.lengths)
        with self._lock:
            self._norms[key] = value
            while len(self._norms) > 4:
                self._norms.popitem(last=False)
        return value

    def bounds(self, key: Any, make: Any) -> Any:
        """The term and block bound cache of the scorer + statistics ``key`` (``make(offsets)`` builds an empty one;
        see ``retrieval.bm25.kernel.TermBounds``), kept as long as that key's norms are."""
        with self._lock:
            cached = self._bounds.get(key)
            if cached is None:
                cached = self._bounds[key] = make(self.offsets)
            for old in [k for k in self._bounds if k not in self._norms and k != key]:
                del self._bounds[old]
            return cached

    def close(self) -> None:
        self._terms_file.close()
