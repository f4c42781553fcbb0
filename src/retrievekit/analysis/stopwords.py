"""Stop word lists."""

from __future__ import annotations

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, which Anserini/Pyserini use by default.
LUCENE_ENGLISH = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split()
)

STOPWORD_LISTS: dict[str, frozenset[str]] = {"lucene-english": LUCENE_ENGLISH, "none": frozenset()}
