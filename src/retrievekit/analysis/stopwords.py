"""Stop word lists."""

from __future__ import annotations

from retrievekit.analysis.code_keywords import CODE_STOPWORDS

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, which Anserini/Pyserini use by default.
LUCENE_ENGLISH = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split()
)

#: English and programming-language stop words together, for code and the questions asked about it.
CODE = LUCENE_ENGLISH | CODE_STOPWORDS

STOPWORD_LISTS: dict[str, frozenset[str]] = {"lucene-english": LUCENE_ENGLISH, "code": CODE, "none": frozenset()}
