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

import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.analysis import Analyzer
from retrievekit.core.files import fsync_write_array, fsync_write_text, load_array

try:
    from retrievekit.index import _kernels  # type: ignore[attr-defined]
except ImportError:  # not compiled: the same step in Python (_py_token_ids)
    _kernels = None

_CHUNK_TOKENS = 2_000_000
#: postings a builder holds in memory (12 bytes each) before it spills them, sorted by term, to a run on disk
#: (the system's temporary folder, $TMPDIR); write() then streams the runs into the index a term range at a time
SPILL_POSTINGS = 8_000_000


def _py_token_ids(tokens: list[str], table: dict[str, int], out: np.ndarray) -> list[str]:
    """``_kernels.token_ids`` in Python: ``out[i]`` = ``table[tokens[i]]``; a token not in the table gets -2 - j,
    j its place in the returned list of distinct new tokens (first-seen order)."""
    new: dict[str, int] = {}
    for i, token in enumerate(tokens):
        found = table.get(token)
        out[i] = found if found is not None else -2 - new.setdefault(token, len(new))
    return list(new)


class PostingsBuilder:
    """Accumulates (document, term, tf) triples for one segment in compact numpy chunks."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self.terms: list[str] = []
        self._term_ids: dict[str, int] = {}
        self._token_ids: dict[str, int] = {}  # raw token -> term id, -1 for a dropped token (stop word)
        self._tokens: list[str] = []  # the current chunk's raw tokens, document after document
        self._token_counts: list[int] = []
        self._chunk_first_doc = 0
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._held = 0  # postings in _chunks
        self._max_tf = 0
        self._runs: list[_Run] = []
        self._spill_dir: tempfile.TemporaryDirectory[str] | None = None
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
        tokens = self.analyzer.tokenize(text)
        self._tokens.extend(tokens)
        self._token_counts.append(len(tokens))
        self.n_docs += 1
        if len(self._tokens) >= _CHUNK_TOKENS:
            self._flush_chunk()

    def _flush_chunk(self) -> None:
        n = self.n_docs - self._chunk_first_doc
        if n == 0:
            return
        # Raw tokens -> term ids in one compiled pass; the analyzer runs once per token new to this builder.
        ids = np.empty(len(self._tokens), np.int64)
        new = (_kernels.token_ids if _kernels is not None else _py_token_ids)(self._tokens, self._token_ids, ids)
        if new:
            new_ids = [self.term_id(term) if term else -1 for term in self.analyzer.normalize_many(new)]
            self._token_ids.update(zip(new, new_ids))
            patch = ids <= -2
            ids[patch] = np.asarray(new_ids, np.int64)[-2 - ids[patch]]
        docs = np.repeat(np.arange(n, dtype=np.int64), np.asarray(self._token_counts, dtype=np.int64))
        keep = ids >= 0
        ids, docs = ids[keep], docs[keep]
        self._lengths.append(np.bincount(docs, minlength=n).astype(np.uint32))
        # One key per kept token; equal keys are a term's occurrences in a document (repeats, and raw tokens that
        # share a term: "cell", "cells"), so a term frequency is the length of a run of the sorted keys. Keys are
        # term-major: the chunk's postings come out grouped by term with documents ascending.
        keys = (ids << 32) | docs
        keys.sort()
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1]))) if len(keys) else keys
        merged = np.diff(starts, append=len(keys))
        keys = keys[starts]
        # narrow dtypes (12 bytes a posting, not 24): the chunks are what an ingest holds until it writes
        self._chunks.append((((keys & 0xFFFFFFFF) + self._chunk_first_doc).astype(np.uint32),
                             (keys >> 32).astype(np.uint32), merged.astype(np.uint32)))
        self.n_postings += len(keys)
        self._held += len(keys)
        if len(merged):
            self._max_tf = max(self._max_tf, int(merged.max()))
        self._chunk_first_doc = self.n_docs
        self._tokens = []
        self._token_counts = []
        if self._held >= SPILL_POSTINGS:
            self._spill()

    def _sorted_chunks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The held chunks as one run (offsets over the terms so far, documents, tfs), releasing them: a counting
        sort by term (chunks follow document order and each is sorted by (term, document), so each chunk's postings
        of a term go right after the previous chunks' ones; no global sort)."""
        n_terms = len(self.terms)
        df = np.zeros(n_terms, np.int64)
        for _, terms, _ in self._chunks:
            df += np.bincount(terms, minlength=n_terms)
        offsets = np.zeros(n_terms + 1, np.int64)
        np.cumsum(df, out=offsets[1:])
        docs = np.empty(int(offsets[-1]), np.uint32)
        tfs = np.empty(int(offsets[-1]), np.uint32)
        cursor = offsets[:-1].copy()
        while self._chunks:
            chunk_docs, terms, chunk_tfs = self._chunks.pop(0)
            where = cursor[terms] + (np.arange(len(terms)) - np.searchsorted(terms, terms, side="left"))
            docs[where] = chunk_docs
            tfs[where] = chunk_tfs
            cursor += np.bincount(terms, minlength=n_terms)
        self._held = 0
        return offsets, docs, tfs

    def _spill(self) -> None:
        """Write the held postings to a run on disk (bounded memory for large segments)."""
        if self._spill_dir is None:
            self._spill_dir = tempfile.TemporaryDirectory(prefix="retrievekit-postings-")
        offsets, docs, tfs = self._sorted_chunks()
        base = Path(self._spill_dir.name) / f"run-{len(self._runs)}"
        docs.tofile(base.with_suffix(".docs"))
        tfs.tofile(base.with_suffix(".tfs"))
        self._runs.append(_Run(offsets, base.with_suffix(".docs"), base.with_suffix(".tfs")))

    def write(self, folder: Path) -> dict[str, Any]:
        """Write the index files (fsynced) and return the segment's field statistics."""
        self._flush_chunk()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.uint32)
        tf_dtype = np.uint16 if self._max_tf <= np.iinfo(np.uint16).max else np.uint32
        offsets, docs, tfs = self._sorted_chunks()
        try:
            if not self._runs:
                df = np.diff(offsets)
                cf = np.bincount(np.repeat(np.arange(len(df)), df), weights=tfs, minlength=len(df)).astype(np.int64)
                return write_index(folder, self.terms, df, cf, offsets, docs, tfs.astype(tf_dtype), lengths)
            runs = [*self._runs, _Run(offsets, docs, tfs)]
            return _write_runs(folder, self.terms, runs, tf_dtype, lengths)
        finally:
            self._runs = []
            if self._spill_dir is not None:
                self._spill_dir.cleanup()
                self._spill_dir = None


@dataclass
class _Run:
    """Postings sorted by term: ``offsets`` over the terms known when it was made; documents and tfs (uint32) in
    memory or in raw files read a range at a time (the page cache holds them, not the process)."""

    offsets: np.ndarray
    docs: np.ndarray | Path
    tfs: np.ndarray | Path

    def read(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(self.docs, np.ndarray) and isinstance(self.tfs, np.ndarray):
            return self.docs[a:b], self.tfs[a:b]
        assert isinstance(self.docs, Path) and isinstance(self.tfs, Path)
        return (np.fromfile(self.docs, np.uint32, count=b - a, offset=4 * a),
                np.fromfile(self.tfs, np.uint32, count=b - a, offset=4 * a))


def _write_runs(folder: Path, vocabulary: list[str], runs: list[_Run], tf_dtype: Any,
                lengths: np.ndarray) -> dict[str, Any]:
    """The index from runs in document order, streamed a term range at a time: each term's postings are its runs'
    in run order (so documents ascend); only one range of postings is ever in memory."""
    n_terms = len(vocabulary)
    padded = [np.concatenate([r.offsets, np.full(n_terms + 1 - len(r.offsets), r.offsets[-1], np.int64)])
              for r in runs]
    df = np.zeros(n_terms, np.int64)
    for offsets in padded:
        df += np.diff(offsets)
    offsets = np.zeros(n_terms + 1, np.int64)
    np.cumsum(df, out=offsets[1:])
    cf = np.zeros(n_terms, np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    total = int(offsets[-1])
    with open(folder / "docs.npy", "wb") as docs_file, open(folder / "tfs.npy", "wb") as tfs_file:
        for f, dtype in ((docs_file, np.uint32), (tfs_file, tf_dtype)):
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                     "fortran_order": False, "shape": (total,)})
        for t0, t1 in _slices(offsets):
            base = int(offsets[t0])
            docs = np.empty(int(offsets[t1]) - base, np.uint32)
            tfs = np.empty(len(docs), tf_dtype)
            cursor = offsets[t0:t1] - base
            for run, run_offsets in zip(runs, padded):
                a, b = int(run_offsets[t0]), int(run_offsets[t1])
                counts = np.diff(run_offsets[t0:t1 + 1])
                if a == b:
                    continue
                run_docs, run_tfs = run.read(a, b)
                terms = np.repeat(np.arange(t1 - t0), counts)
                where = cursor[terms] + (np.arange(b - a) - (run_offsets[t0:t1][terms] - a))
                docs[where] = run_docs
                tfs[where] = run_tfs
                cursor += counts
                cf[t0:t1] += np.bincount(terms, weights=run_tfs, minlength=t1 - t0).astype(np.int64)
            docs_file.write(docs.tobytes())
            tfs_file.write(tfs.tobytes())
        for f in (docs_file, tfs_file):
            f.flush()
            os.fsync(f.fileno())
    return write_index(folder, vocabulary, df, cf, offsets, None, None, lengths, n_postings=total)


def write_postings(
    folder: Path, vocabulary: list[str], terms: np.ndarray, docs: np.ndarray, tfs: np.ndarray, lengths: np.ndarray
) -> dict[str, Any]:
    """Write an inverted index from postings sorted by (term, doc); returns the field statistics."""
    n_terms = len(vocabulary)
    df = np.bincount(terms, minlength=n_terms)
    cf = np.bincount(terms, weights=tfs, minlength=n_terms).astype(np.int64)
    offsets = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df, out=offsets[1:])
    tf_dtype = np.uint16 if (len(tfs) == 0 or tfs.max() <= np.iinfo(np.uint16).max) else np.uint32
    return write_index(folder, vocabulary, df, cf, offsets, docs.astype(np.uint32), tfs.astype(tf_dtype), lengths)


def write_index(folder: Path, vocabulary: list[str], df: np.ndarray, cf: np.ndarray, offsets: np.ndarray,
                docs: np.ndarray | None, tfs: np.ndarray | None, lengths: np.ndarray,
                n_postings: int | None = None) -> dict[str, Any]:
    """Write the index files from their final arrays (fsynced; ``docs``/``tfs`` None when a streaming writer has
    written them, with ``n_postings`` their length); returns the field statistics."""
    folder.mkdir(parents=True, exist_ok=True)
    fsync_write_text(folder / "terms.txt", "".join(t + "\n" for t in vocabulary))
    fsync_write_array(folder / "df.npy", np.asarray(df).astype(np.uint32))
    fsync_write_array(folder / "cf.npy", np.asarray(cf, np.int64))
    fsync_write_array(folder / "offsets.npy", np.asarray(offsets, np.int64))
    if docs is not None and tfs is not None:
        fsync_write_array(folder / "docs.npy", docs)
        fsync_write_array(folder / "tfs.npy", tfs)
        n_postings = len(docs)
    fsync_write_array(folder / "lengths.npy", lengths.astype(np.uint32))
    return {
        "docs": len(lengths),
        "docs_with_terms": int(np.count_nonzero(lengths)),
        "total_terms": int(lengths.sum(dtype=np.int64)),
        "terms": len(vocabulary),
        "postings": int(n_postings or 0),
    }


#: postings handled at a time while packing a merge's sort keys (bounds the temporary arrays)
_MERGE_SLICE = 2_000_000


def merge_postings(folder: Path, sources: list[tuple[PostingsReader, np.ndarray]]) -> dict[str, Any]:
    """Merge segments' indexes without re-analysing. ``sources`` are (reader, new_doc) where ``new_doc[local]`` is
    the document's number in the merged segment, or -1 to drop it.

    Memory: when (term, document, tf) fit in 64 bits together (term and document bits as the merged segment needs,
    the rest for tf), an external bucket sort with bounded memory (``_merge_bucketed``). Otherwise the general
    path (three int64 arrays and an argsort of every posting)."""
    new_ids: dict[str, int] = {}
    remaps = []
    n_merged = int(sum(int((new_doc >= 0).sum()) for _, new_doc in sources))
    lengths = np.zeros(n_merged, np.uint32)
    max_tf = 0  # a bound: no tf exceeds its term's collection frequency
    for reader, new_doc in sources:
        old_terms = reader.vocabulary()
        remaps.append(np.fromiter((new_ids.setdefault(t, len(new_ids)) for t in old_terms), dtype=np.int64,
                                  count=len(old_terms)))
        live = new_doc >= 0
        lengths[new_doc[live]] = np.asarray(reader.lengths)[live]
        max_tf = max(max_tf, int(np.max(reader.cf))) if len(reader.cf) else max_tf
    vocabulary = list(new_ids)
    term_bits = max(1, (len(vocabulary) - 1).bit_length())
    doc_bits = max(1, (n_merged - 1).bit_length())
    tf_bits = 64 - term_bits - doc_bits
    if tf_bits >= max(1, max_tf.bit_length()):
        return _merge_bucketed(folder, sources, remaps, vocabulary, lengths, doc_bits, tf_bits)
    return _merge_general(folder, sources, remaps, vocabulary, lengths)


def _slices(offsets: np.ndarray) -> Iterator[tuple[int, int]]:
    """Term ranges [t0, t1) of a posting list whose postings number about _MERGE_SLICE (more for one long term)."""
    n_terms = len(offsets) - 1
    t0 = 0
    while t0 < n_terms:
        t1 = int(np.searchsorted(offsets, offsets[t0] + _MERGE_SLICE, side="right")) - 1
        t1 = min(max(t1, t0 + 1), n_terms)
        yield t0, t1
        t0 = t1


def _npy_slices(path: Path) -> Any:
    """``read(a, b)``: elements [a, b) of a 1-d ``.npy`` file, read from the file (the page cache keeps them, not
    this process: a merge touching every posting of its sources stays small in resident memory)."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _shape, _fortran, dtype = read_header(f)
        start = f.tell()
    return lambda a, b: np.fromfile(path, dtype=dtype, count=b - a, offset=start + a * dtype.itemsize)


def _merge_bucketed(folder: Path, sources: list[tuple[PostingsReader, np.ndarray]], remaps: list[np.ndarray],
                    vocabulary: list[str], lengths: np.ndarray, doc_bits: int, tf_bits: int) -> dict[str, Any]:
    """Every kept posting as one packed uint64 key (term, new document, tf), written to the bucket file of its term
    range (ranges of ~_MERGE_SLICE postings); then bucket by bucket in term order: read, sort in place, unpack,
    append to the index files. Memory: one slice of a source and one bucket, whatever the segment sizes."""
    n_terms = len(vocabulary)
    upper = np.zeros(n_terms + 1, np.int64)  # postings per merged term, deleted documents included
    for (reader, _), remap in zip(sources, remaps):
        upper[1:] += np.bincount(remap, weights=np.diff(np.asarray(reader.offsets)), minlength=n_terms).astype(np.int64)
    np.cumsum(upper, out=upper)
    ranges = list(_slices(upper))
    bucket_of_term = np.repeat(np.arange(len(ranges)), [t1 - t0 for t0, t1 in ranges])
    shift_term, shift_doc = np.uint64(doc_bits + tf_bits), np.uint64(tf_bits)
    max_tf = 0
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="retrievekit-merge-") as tmp:
        buckets = [Path(tmp) / f"bucket-{i}" for i in range(len(ranges))]
        handles = [open(path, "wb") for path in buckets]  # noqa: SIM115 (closed below, all together)
        try:
            for (reader, new_doc), remap in zip(sources, remaps):
                offsets = np.asarray(reader.offsets)
                read_docs, read_tfs = _npy_slices(reader.folder / "docs.npy"), _npy_slices(reader.folder / "tfs.npy")
                for t0, t1 in _slices(offsets):
                    a, b = int(offsets[t0]), int(offsets[t1])
                    if a == b:
                        continue
                    docs = new_doc[read_docs(a, b).astype(np.int64)]
                    keep = docs >= 0
                    terms = np.repeat(remap[t0:t1], np.diff(offsets[t0:t1 + 1]))[keep]
                    tfs = read_tfs(a, b)[keep]
                    if len(tfs):
                        max_tf = max(max_tf, int(tfs.max()))
                    keys = (terms.astype(np.uint64) << shift_term) | (docs[keep].astype(np.uint64) << shift_doc)
                    keys |= tfs.astype(np.uint64)
                    bucket = bucket_of_term[terms]
                    order = np.argsort(bucket, kind="stable")
                    keys, bucket = keys[order], bucket[order]
                    cuts = np.searchsorted(bucket, np.arange(len(ranges) + 1))
                    for i in np.flatnonzero(np.diff(cuts)):
                        handles[i].write(keys[cuts[i]:cuts[i + 1]].tobytes())
        finally:
            for handle in handles:
                handle.close()
        total = sum(path.stat().st_size for path in buckets) // 8
        tf_dtype = np.uint16 if max_tf <= np.iinfo(np.uint16).max else np.uint32
        df = np.zeros(n_terms, np.int64)
        cf = np.zeros(n_terms, np.int64)
        doc_mask, tf_mask = np.uint64((1 << doc_bits) - 1), np.uint64((1 << tf_bits) - 1)
        with open(folder / "docs.npy", "wb") as docs_file, open(folder / "tfs.npy", "wb") as tfs_file:
            for f, dtype in ((docs_file, np.uint32), (tfs_file, tf_dtype)):
                np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                         "fortran_order": False, "shape": (total,)})
            for (t0, t1), path in zip(ranges, buckets):
                keys = np.fromfile(path, np.uint64)
                path.unlink()
                keys.sort(kind="stable")  # in place: (term, document) order, which is the index's
                terms = (keys >> shift_term).astype(np.int64) - t0
                tfs = (keys & tf_mask).astype(tf_dtype)
                df[t0:t1] += np.bincount(terms, minlength=t1 - t0)
                cf[t0:t1] += np.bincount(terms, weights=tfs, minlength=t1 - t0).astype(np.int64)
                docs_file.write(((keys >> shift_doc) & doc_mask).astype(np.uint32).tobytes())
                tfs_file.write(tfs.tobytes())
            for f in (docs_file, tfs_file):
                f.flush()
                os.fsync(f.fileno())
    offsets = np.zeros(n_terms + 1, np.int64)
    np.cumsum(df, out=offsets[1:])
    return write_index(folder, vocabulary, df, cf, offsets, None, None, lengths, n_postings=total)


def _merge_general(folder: Path, sources: list[tuple[PostingsReader, np.ndarray]], remaps: list[np.ndarray],
                   vocabulary: list[str], lengths: np.ndarray) -> dict[str, Any]:
    parts_terms, parts_docs, parts_tfs = [], [], []
    monotonic = True  # new numbers increase with (source, local): a stable sort by term then suffices
    last = -1
    for (reader, new_doc), remap in zip(sources, remaps):
        kept = new_doc[new_doc >= 0]
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
    return write_postings(folder, vocabulary, terms[order], docs[order], tfs[order], lengths)


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
