"""Learned-sparse indexes of a collection: configuration in the manifest, one inverted index folder per segment.

``manifest.config["sparse"][name]`` = {"encoder": spec, "fields": [...], "quantization": 100}. Each segment holds
``sparse-<key>/`` (``key`` hashes that configuration) in the BM25 postings format (see ``bm25/postings.py``), where
a posting's "tf" is the quantized term weight ``round(weight * quantization)`` and ``lengths.npy`` the sum of a
document's quantized weights; ``index.json`` records the configuration and statistics. The folder is written under
a temporary name and renamed into place, so it is complete or absent. A commit writes the folders of its new
segments before the manifest that publishes them; merges merge the postings (no re-encoding).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrievekit.core.document import Document, index_text
from retrievekit.core.errors import CollectionError, RetrievekitError
from retrievekit.core.files import fsync_dir, fsync_write_text, load_array
from retrievekit.core.progress import progress_bar
from retrievekit.index.base import SegmentIndex, SegmentView
from retrievekit.index.bm25.postings import PostingsReader, merge_postings, write_postings
from retrievekit.index.dense.embedding import index_key

if TYPE_CHECKING:
    from retrievekit.encoders.splade import SpladeEncoder

logger = logging.getLogger(__name__)

DEFAULT_INDEX = "default"
DEFAULT_QUANTIZATION = 100
FOLDER_PREFIX = "sparse-"
_INFO = "index.json"
_FORMAT = "retrievekit-sparse"


def make_sparse_config(encoder: SpladeEncoder, *, fields: Sequence[str] = ("title", "text"),
                       quantization: int = DEFAULT_QUANTIZATION) -> dict[str, Any]:
    if not isinstance(quantization, int) or isinstance(quantization, bool) or quantization < 1:
        raise RetrievekitError(f"quantization must be a positive integer (weights are stored as "
                               f"round(weight * quantization)), got {quantization!r}")
    return {"encoder": encoder.spec(), "fields": list(fields), "quantization": quantization}


def sparse_folder(config: dict[str, Any]) -> str:
    return FOLDER_PREFIX + index_key(config)


def encoder_key(config: Mapping[str, Any]) -> str:
    """Cache key of a sparse index's encoder (indexes with the same encoder spec share one loaded model)."""
    return "sparse:" + json.dumps(config["encoder"], sort_keys=True)


def quantize(weights: np.ndarray, quantization: int) -> np.ndarray:
    """Stored integer impacts of float weights (int64; 0 means the term is dropped)."""
    return np.rint(np.asarray(weights, dtype=np.float64) * quantization).astype(np.int64)


class ImpactPostings:
    """Quantized (term, document, impact) triples of documents added in number order, kept as compact chunks."""

    flush_docs = 1024  # documents per compact chunk

    def __init__(self, quantization: int) -> None:
        self.quantization = quantization
        self.term_ids: dict[str, int] = {}
        self._pending: list[tuple[np.ndarray, np.ndarray, int]] = []  # (term ids, impacts, document) per document
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, doc: int, bag: Mapping[str, float]) -> None:
        if not bag:
            return
        impacts = quantize(np.fromiter(bag.values(), np.float64, len(bag)), self.quantization)
        ids = np.fromiter((self.term_ids.setdefault(t, len(self.term_ids)) for t in bag), np.int64, len(bag))
        keep = impacts > 0
        self._pending.append((ids[keep], impacts[keep], doc))
        if len(self._pending) >= self.flush_docs:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        sizes = np.array([len(ids) for ids, _, _ in self._pending], np.int64)
        terms = np.concatenate([ids for ids, _, _ in self._pending]).astype(np.int32)
        impacts = np.concatenate([imp for _, imp, _ in self._pending]).astype(np.uint32)
        docs = np.repeat(np.array([d for _, _, d in self._pending], np.int32), sizes)
        self._chunks.append((terms, docs, impacts))
        self._pending = []

    def write(self, folder: Path, n_docs: int) -> dict[str, Any]:
        """Write the inverted index of documents 0..n_docs-1 (postings format); returns its statistics."""
        self._flush()
        vocabulary = list(self.term_ids)
        bad = next((t for t in vocabulary if not t or "\n" in t or "\r" in t), None)
        if bad is not None:
            raise RetrievekitError(f"sparse encoder produced the term {bad!r}; terms must be non-empty single lines")
        parts = list(zip(*self._chunks)) if self._chunks else [[np.zeros(0, np.int64)]] * 3
        terms, docs, impacts = (np.concatenate(p).astype(np.int64) for p in parts)
        self._chunks = []
        lengths = np.bincount(docs, weights=impacts, minlength=n_docs).astype(np.int64)
        order = np.argsort(terms, kind="stable")  # documents were added in ascending order
        return write_postings(folder, vocabulary, terms[order], docs[order], impacts[order], lengths)


def build_postings(folder: Path, weights: Sequence[Mapping[str, float] | None], quantization: int) -> dict[str, Any]:
    """Write the inverted index of documents numbered 0..len(weights)-1 (None: a document without terms)."""
    postings = ImpactPostings(quantization)
    for doc, bag in enumerate(weights):
        if bag:
            postings.add(doc, bag)
    return postings.write(folder, len(weights))


def _publish(segment: Path, config: dict[str, Any], write: Any) -> None:
    """Run ``write(tmp_folder) -> stats`` and rename the finished folder into place (complete or absent)."""
    target = segment / sparse_folder(config)
    tmp = segment / f"{target.name}.tmp-{secrets.token_hex(3)}"
    try:
        stats = write(tmp)
        info = {"format": _FORMAT, "format_version": 1, "config": config, "stats": stats}
        fsync_write_text(tmp / _INFO, json.dumps(info))
        fsync_dir(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(segment)


def encode_segment_sparse(folder: Path, config: dict[str, Any], documents: Iterable[Document], n_docs: int,
                          encoder: SpladeEncoder, *, skip: set[int] | None = None, progress: bool = False,
                          chunk: int = 1024) -> None:
    """Write one segment's sparse index from its ``n_docs`` documents in number order (documents in ``skip`` —
    already replaced — get no postings). Documents are encoded ``chunk`` at a time, so memory holds compact
    postings, not every document's text and weights."""
    if (folder / sparse_folder(config)).exists():
        return
    postings = ImpactPostings(int(config["quantization"]))
    fields = config["fields"]
    bar = progress_bar(progress, n_docs - len(skip or ()), "encoding documents (sparse)", unit="doc")

    def encode(rows: list[int], texts: list[str]) -> None:
        for row, bag in zip(rows, encoder.encode_documents(texts)):
            postings.add(row, bag)
        bar.update(len(rows))

    try:
        rows: list[int] = []
        texts: list[str] = []
        for local, doc in enumerate(documents):
            if skip is None or local not in skip:
                rows.append(local)
                texts.append(index_text(doc, fields))
                if len(texts) == chunk:
                    encode(rows, texts)
                    rows, texts = [], []
        if texts:
            encode(rows, texts)
    finally:
        bar.close()
    _publish(folder, config, lambda tmp: postings.write(tmp, n_docs))


def merge_sparse(folder: Path, sources: Sequence[tuple[Path, np.ndarray]], config: dict[str, Any]) -> bool:
    """Sparse index of a merged segment from its sources' ((folder, new number of each old document, -1 =
    dropped)). Returns False (and writes nothing) if a source has no index — the caller then encodes instead."""
    name = sparse_folder(config)
    if not all((src / name / _INFO).exists() for src, _ in sources):
        return False
    readers = []
    try:
        for src, new_docs in sources:
            stats = json.loads((src / name / _INFO).read_text("utf-8"))["stats"]
            readers.append((PostingsReader(src / name, stats), new_docs))
        _publish(folder, config, lambda tmp: merge_postings(tmp, readers))
    finally:
        for reader, _ in readers:
            reader.close()
    return True


class SparsePostings:
    """One segment's sparse index, memory-mapped; the (small) vocabulary is read at once, so no file stays open
    and a merge that deletes the folder cannot disturb it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.info = json.loads((folder / _INFO).read_text("utf-8"))
        self.offsets = load_array(folder / "offsets.npy")
        self.docs = load_array(folder / "docs.npy")
        self.tfs = load_array(folder / "tfs.npy")
        self.lengths = load_array(folder / "lengths.npy")
        terms = (folder / "terms.txt").read_text("utf-8").split("\n")[:-1]
        self.term_ids: dict[str, int] = {t: i for i, t in enumerate(terms)}
        self.n_docs = len(self.lengths)
        self.zeros = np.zeros(self.n_docs, np.float32)  # the kernel's per-document array, unused by impact mode
        self._bounds: Any = None

    def bounds(self, make: Any) -> Any:
        """Term and block bounds for MaxScore (the largest impacts; ``make(offsets)`` builds an empty cache, filled
        as queries need terms: see ``retrieval.bm25.kernel.TermBounds``)."""
        if self._bounds is None:
            self._bounds = make(self.offsets)
        return self._bounds

    def vocabulary(self) -> list[str]:
        return list(self.term_ids)


def segment_sparse(reader: SegmentView, config: dict[str, Any], index: str) -> SparsePostings:
    """The segment's sparse index for ``config``, opened once per segment reader."""
    name = sparse_folder(config)
    cached = reader.extras.get(name)
    if cached is None:
        try:
            cached = reader.extras[name] = SparsePostings(reader.folder / name)
        except FileNotFoundError:
            raise CollectionError(f"segment {reader.name} has no postings for sparse index {index!r} "
                                  f"({name} is missing)") from None
        if cached.n_docs != reader.n_docs:
            raise CollectionError(f"segment {reader.name}: sparse index {index!r} holds {cached.n_docs} documents, "
                                  f"the segment {reader.n_docs}; the collection is damaged")
    return cached



class SparseIndex(SegmentIndex):
    """Learned-sparse impact postings in ``sparse-<key>/``."""

    key = "sparse"
    prefixes = (FOLDER_PREFIX,)

    def files(self, config: Mapping[str, Any]) -> set[str]:
        return {sparse_folder(dict(config))}

    def encode(self, folder: Path, config: dict[str, Any], documents: Iterable[Document], n_docs: int, encoder: Any,
               *, skip: set[int] | None = None, progress: bool = False) -> None:
        encode_segment_sparse(folder, config, documents, n_docs, encoder, skip=skip, progress=progress)

    def load_encoder(self, config: Mapping[str, Any]) -> Any:
        from retrievekit.encoders.splade import get_sparse_encoder

        return get_sparse_encoder(dict(config["encoder"]))

    def encoder_key(self, config: Mapping[str, Any]) -> str:
        return encoder_key(config)

    def merge(self, folder: Path, sources: Sequence[tuple[SegmentView, np.ndarray]], n_docs: int,
              config: dict[str, Any]) -> dict[str, Any] | None:
        return {} if merge_sparse(folder, [(seg.folder, nd) for seg, nd in sources], config) else None

    def open(self, segment: SegmentView, config: dict[str, Any], name: str) -> SparsePostings:
        return segment_sparse(segment, config, name)

    def stats(self, segment: SegmentView, config: dict[str, Any], name: str) -> dict[str, Any]:
        return dict(self.open(segment, config, name).info["stats"])
