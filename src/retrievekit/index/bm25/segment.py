"""BM25 as a segment index: postings built while documents are added, in ``<segment>/bm25/`` (see postings.py).

Its statistics (documents, documents with terms, total terms, terms, postings) are stored in ``segment.json`` under
"bm25"; collection-wide BM25 statistics are their sums (``corpus_stats``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.analysis import Analyzer, get_analyzer
from retrievekit.core.document import Document, index_text
from retrievekit.core.files import fsync_dir
from retrievekit.index.base import IndexBuilder, SegmentIndex, SegmentView
from retrievekit.index.bm25.postings import PostingsBuilder, PostingsReader, merge_postings
from retrievekit.index.bm25.stats import CorpusStats

FOLDER = "bm25"


class _Builder:
    def __init__(self, analyzer: Analyzer, fields: list[str]) -> None:
        self.postings = PostingsBuilder(analyzer)
        self.fields = fields

    @property
    def buffered(self) -> int:
        return self.postings.n_postings

    def add(self, doc: Document) -> None:
        self.postings.add(index_text(doc, self.fields))

    def write(self, folder: Path) -> dict[str, Any]:
        stats = self.postings.write(folder / FOLDER)
        fsync_dir(folder / FOLDER)
        return stats


class BM25Index(SegmentIndex):
    key = "bm25"
    streaming = True

    def indexes(self, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        # One unnamed index over the collection's fields with the collection's analyzer.
        return {self.key: {**config[self.key], "fields": list(config["fields"])}}

    def files(self, config: Mapping[str, Any]) -> set[str]:
        return {FOLDER}

    def builder(self, config: Mapping[str, Any]) -> Callable[[], IndexBuilder]:
        analyzer = get_analyzer(config["bm25"]["analyzer"])
        fields = list(config["fields"])
        return lambda: _Builder(analyzer, fields)

    def merge(self, folder: Path, sources: Sequence[tuple[SegmentView, np.ndarray]], n_docs: int,
              config: dict[str, Any]) -> dict[str, Any] | None:
        # Postings are merged directly: no re-analysis.
        stats = merge_postings(folder / FOLDER, [(self.open(seg, config, self.key), nd) for seg, nd in sources])
        fsync_dir(folder / FOLDER)
        return stats

    def open(self, segment: SegmentView, config: dict[str, Any], name: str) -> PostingsReader:
        reader = segment.extras.get(FOLDER)
        if reader is None:
            reader = segment.extras[FOLDER] = PostingsReader(segment.folder / FOLDER, segment.info[self.key])
        return reader

    def totals(self, stats: Sequence[dict[str, Any]]) -> CorpusStats:
        return corpus_stats(stats)

    def summary(self, stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
        totals = corpus_stats(stats)
        return {"terms_per_segment": [s["terms"] for s in stats], "postings": sum(s["postings"] for s in stats),
                "total_terms": totals.total_terms, "avg_doc_length": round(totals.avgdl, 3)}


def corpus_stats(stats: Sequence[Mapping[str, Any]]) -> CorpusStats:
    """Collection-wide statistics from the segments' BM25 statistics. Like Lucene, they include deleted documents
    until their segment is merged away."""
    return CorpusStats(docs=sum(s["docs"] for s in stats), docs_with_terms=sum(s["docs_with_terms"] for s in stats),
                       total_terms=sum(s["total_terms"] for s in stats))


def bm25_postings(segment: SegmentView) -> PostingsReader:
    """The segment's BM25 postings (opened with the segment)."""
    return segment.extras[FOLDER]
