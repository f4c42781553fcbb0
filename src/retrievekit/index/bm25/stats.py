"""Collection-wide BM25 statistics, summed over segments from each segment's postings statistics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CorpusStats:
    """Collection-wide statistics of one text field."""

    docs: int  # documents, including empty ones
    docs_with_terms: int  # Lucene's docCount: documents with at least one term
    total_terms: int  # sum of document lengths (Lucene's sumTotalTermFreq)

    @property
    def avgdl(self) -> float:
        return self.total_terms / self.docs_with_terms if self.docs_with_terms else 0.0
