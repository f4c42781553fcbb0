"""BM25 as a segment index: postings built while documents are added, in ``<segment>/bm25/`` (see postings.py).

Its statistics (documents, documents with terms, total terms, terms, postings) are stored in ``segment.json`` under
"bm25"; collection-wide BM25 statistics are their sums (``corpus_stats``).

A collection whose BM25 config names ``field_weights`` also gets one inverted index per weighted field, in
``<segment>/bm25/field-<i>/`` (same files), for multi-field BM25. Their statistics are listed, in that order, under
"bm25" -> "fields" ([{"name": field, ...statistics}]): a segment describes itself, so it opens without the config
and a merge pairs the sources' field indexes by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievekit.analysis import Analyzer, get_analyzer
from retrievekit.core.document import Document, index_text
from retrievekit.core.errors import CollectionError
from retrievekit.core.files import fsync_dir
from retrievekit.index.base import IndexBuilder, SegmentIndex, SegmentView
from retrievekit.index.bm25.postings import PostingsBuilder, PostingsReader, merge_postings
from retrievekit.index.bm25.stats import CorpusStats

FOLDER = "bm25"


FIELDS_KEY = "bm25-fields"  # segment.extras key of the per-field readers ({field: PostingsReader})


def field_text(doc: Document, name: str) -> str:
    """The text of one field for its own index: ``title``/``text``, else the metadata value (a list's strings joined
    by spaces, other values as text; a missing field is empty)."""
    if name in ("title", "text"):
        return str(getattr(doc, name))
    value = doc.metadata.get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value if v is not None)
    return str(value)


def field_folder(i: int) -> str:
    return f"field-{i}"


class FieldReaders(dict[str, PostingsReader]):
    """A segment's per-field postings by field name; closed with the segment."""

    def close(self) -> None:
        for reader in self.values():
            reader.close()


class _Builder:
    def __init__(self, analyzer: Analyzer, fields: list[str], weighted: list[str]) -> None:
        self.postings = PostingsBuilder(analyzer)
        self.fields = fields
        self.weighted = {name: PostingsBuilder(analyzer) for name in weighted}

    @property
    def buffered(self) -> int:
        return self.postings.n_postings + sum(p.n_postings for p in self.weighted.values())

    def add(self, doc: Document) -> None:
        self.postings.add(index_text(doc, self.fields))
        for name, postings in self.weighted.items():
            postings.add(field_text(doc, name))

    def write(self, folder: Path) -> dict[str, Any]:
        stats = self.postings.write(folder / FOLDER)
        if self.weighted:
            stats["fields"] = []
            for i, (name, postings) in enumerate(self.weighted.items()):
                stats["fields"].append({"name": name, **postings.write(folder / FOLDER / field_folder(i))})
                fsync_dir(folder / FOLDER / field_folder(i))
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
        weighted = list(config["bm25"].get("field_weights") or ())
        return lambda: _Builder(analyzer, fields, weighted)

    def merge(self, folder: Path, sources: Sequence[tuple[SegmentView, np.ndarray]], n_docs: int,
              config: dict[str, Any]) -> dict[str, Any] | None:
        # Postings are merged directly: no re-analysis.
        stats = merge_postings(folder / FOLDER, [(self.open(seg, config, self.key), nd) for seg, nd in sources])
        names = [field_names(seg) for seg, _ in sources]
        if any(n != names[0] for n in names):
            raise CollectionError(f"cannot merge segments whose BM25 field indexes differ: "
                                  f"{', '.join(f'{seg.name}: {n}' for (seg, _), n in zip(sources, names))}")
        if names and names[0]:
            stats["fields"] = []
            for i, field in enumerate(names[0]):
                target = folder / FOLDER / field_folder(i)
                parts = [(bm25_field_postings(seg)[field], nd) for seg, nd in sources]
                stats["fields"].append({"name": field, **merge_postings(target, parts)})
                fsync_dir(target)
        fsync_dir(folder / FOLDER)
        return stats

    def open(self, segment: SegmentView, config: dict[str, Any], name: str) -> PostingsReader:
        reader = segment.extras.get(FOLDER)
        if reader is None:
            info = segment.info[self.key]
            fields = FieldReaders((entry["name"], PostingsReader(segment.folder / FOLDER / field_folder(i), entry))
                                  for i, entry in enumerate(info.get("fields") or ()))
            reader = segment.extras[FOLDER] = PostingsReader(segment.folder / FOLDER, info)
            segment.extras[FIELDS_KEY] = fields
        return reader

    def totals(self, stats: Sequence[dict[str, Any]]) -> CorpusStats:
        return corpus_stats(stats)

    def summary(self, stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
        totals = corpus_stats(stats)
        out = {"terms_per_segment": [s["terms"] for s in stats], "postings": sum(s["postings"] for s in stats),
               "total_terms": totals.total_terms, "avg_doc_length": round(totals.avgdl, 3)}
        if stats and stats[0].get("fields"):
            out["bm25_fields"] = {name: {"avg_length": round(field_stats(stats, name).avgdl, 3)}
                                  for name in (entry["name"] for entry in stats[0]["fields"])}
        return out


def corpus_stats(stats: Sequence[Mapping[str, Any]]) -> CorpusStats:
    """Collection-wide statistics from the segments' BM25 statistics. Like Lucene, they include deleted documents
    until their segment is merged away."""
    return CorpusStats(docs=sum(s["docs"] for s in stats), docs_with_terms=sum(s["docs_with_terms"] for s in stats),
                       total_terms=sum(s["total_terms"] for s in stats))


def field_stats(stats: Sequence[Mapping[str, Any]], name: str) -> CorpusStats:
    """Collection-wide statistics of weighted field ``name`` from the segments' BM25 statistics."""
    return corpus_stats([next(f for f in s["fields"] if f["name"] == name) for s in stats])


def field_names(segment: SegmentView) -> list[str]:
    """The weighted fields the segment indexes on their own, in folder order (none: [])."""
    return [entry["name"] for entry in segment.info["bm25"].get("fields") or ()]


def bm25_postings(segment: SegmentView) -> PostingsReader:
    """The segment's BM25 postings (opened with the segment)."""
    return segment.extras[FOLDER]


def bm25_field_postings(segment: SegmentView) -> FieldReaders:
    """The segment's per-field BM25 postings, {field: reader} (opened with the segment; empty without weighted
    fields)."""
    return segment.extras[FIELDS_KEY]
