"""Configurable token-filter analyzers, including the Lucene/Anserini English default."""

from __future__ import annotations

from typing import Any

import Stemmer

from retrievekit.analysis.base import Analyzer, UnknownAnalyzerError, register_analyzer
from retrievekit.analysis.porter import lucene_porter_stem, lucene_porter_stem_many
from retrievekit.analysis.stopwords import STOPWORD_LISTS
from retrievekit.analysis.tokenizers import (
    code_token_spans,
    code_tokenize,
    identifier_token_spans,
    identifier_tokenize,
    standard_token_spans,
    standard_tokenize,
    whitespace_token_spans,
    whitespace_tokenize,
)
from retrievekit.core.errors import RetrievekitError

TOKENIZERS = {"standard": standard_tokenize, "whitespace": whitespace_tokenize, "identifier": identifier_tokenize,
              "code": code_tokenize}
_WORD_CACHE_SIZE = 200_000  # distinct words whose terms term_spans remembers (then it starts over)
_SPANS = {"standard": standard_token_spans, "whitespace": whitespace_token_spans, "identifier": identifier_token_spans,
          "code": code_token_spans}
# Tokenizers that split on case changes (camelCase): the text must reach them with its case; normalize() lowercases.
_CASE_SENSITIVE = frozenset({"identifier", "code"})
# U+0027 apostrophe, U+2019 right single quotation mark, U+FF07 fullwidth apostrophe (Lucene's
# EnglishPossessiveFilter).
_POSSESSIVES = ("'s", "\u2019s", "\uff07s", "'S", "\u2019S", "\uff07S")


class TokenFilterAnalyzer(Analyzer):
    """tokenizer -> [possessive removal] -> [lowercase] -> [stop words] -> [stemmer].

    ``stemmer`` is ``None``, ``"porter"`` (Lucene's PorterStemFilter) or any PyStemmer/Snowball algorithm name
    (``"english"``, ``"german"``, ...). Normalisation is cached per distinct token, so stemming costs once per
    vocabulary entry, not per occurrence.
    """

    def __init__(
        self,
        tokenizer: str = "standard",
        lowercase: bool = True,
        possessive: bool = False,
        stopwords: str | list[str] | None = None,
        stemmer: str | None = None,
        name: str = "",
    ) -> None:
        if tokenizer not in TOKENIZERS:
            raise UnknownAnalyzerError(f"unknown tokenizer {tokenizer!r}; choose one of: {', '.join(TOKENIZERS)}")
        self.tokenizer = tokenizer
        self.lowercase = lowercase
        self.possessive = possessive
        if isinstance(stopwords, str):
            if stopwords not in STOPWORD_LISTS:
                raise UnknownAnalyzerError(
                    f"unknown stop word list {stopwords!r}; choose one of: {', '.join(STOPWORD_LISTS)} or a list"
                )
            self._stopwords = STOPWORD_LISTS[stopwords]
        else:
            self._stopwords = frozenset(stopwords or ())
        self.stopwords = stopwords
        self.stemmer = stemmer
        self.name = name
        self._stem = _make_stemmer(stemmer)
        self._stem_many = _make_batch_stemmer(stemmer)
        self._tokenize = TOKENIZERS[tokenizer]
        self._cache: dict[str, str] = {}
        self._word_terms: dict[str, list[str]] = {}

    def tokenize(self, text: str) -> list[str]:
        # Lowercasing the whole text first is one C call instead of one per token; word boundaries do not change.
        # (Not for identifiers: their camelCase boundaries need the original case; normalize() lowercases.)
        return self._tokenize(lucene_lower(text) if self.lowercase and self.tokenizer not in _CASE_SENSITIVE
                              else text)

    def normalize(self, token: str) -> str:
        term = self._cache.get(token)
        if term is None:
            term = self._normalize_uncached(token)
            if len(self._cache) < 2_000_000:
                self._cache[token] = term
        return term

    def normalize_many(self, tokens: list[str]) -> list[str]:
        cache = self._cache
        out = [cache.get(t) for t in tokens]
        todo = [i for i, term in enumerate(out) if term is None]
        if not todo:
            return out  # type: ignore[return-value]
        words = [self._before_stem(tokens[i]) for i in todo]
        if self._stem_many is not None:
            keep = [j for j, w in enumerate(words) if w]
            for j, stem in zip(keep, self._stem_many([words[j] for j in keep])):
                words[j] = stem
        for i, term in zip(todo, words):
            out[i] = term
            if len(cache) < 2_000_000:
                cache[tokens[i]] = term
        return out  # type: ignore[return-value]

    def _before_stem(self, token: str) -> str:
        """Possessive removal, lowercasing and stop words: the token before stemming, "" if dropped."""
        if self.possessive and token.endswith(_POSSESSIVES):
            token = token[:-2]
        if self.lowercase:
            token = lucene_lower(token)
        if not token or token in self._stopwords:
            return ""
        return token

    def _normalize_uncached(self, token: str) -> str:
        token = self._before_stem(token)
        return self._stem(token) if token and self._stem is not None else token

    def analyze(self, text: str) -> list[str]:
        cache = self._cache
        tokens = self.tokenize(text)
        out = []
        for token in tokens:
            term = cache.get(token)
            if term is None:
                term = self.normalize(token)
            if term:
                out.append(term)
        return out

    def term_spans(self, text: str) -> list[tuple[int, int, list[str]]]:
        """(start, end, index terms) for each word of ``text``; used to highlight matches in the original text."""
        out = []
        # Words repeat across documents and highlights are made per search result: analyse each distinct word once.
        cache = self._word_terms
        if len(cache) > _WORD_CACHE_SIZE:
            cache.clear()
        for start, end in _SPANS[self.tokenizer](text):
            word = text[start:end]
            terms = cache.get(word)
            if terms is None:
                terms = cache[word] = self.analyze(word)
            if terms:
                out.append((start, end, list(terms)))
        return out

    def config(self) -> dict[str, Any]:
        return {
            "type": "token-filter",
            "name": self.name,
            "tokenizer": self.tokenizer,
            "lowercase": self.lowercase,
            "possessive": self.possessive,
            "stopwords": self.stopwords,
            "stemmer": self.stemmer,
        }


def lucene_lower(text: str) -> str:
    """Lowercase like Lucene's LowerCaseFilter (Java's per-code-point ``Character.toLowerCase``): Python's
    ``str.lower`` also applies context rules that Lucene does not — final sigma and dotted capital I."""
    if not text.isascii():
        if "\u03a3" in text:
            text = text.replace("\u03a3", "\u03c3")
        if "\u0130" in text:
            text = text.replace("\u0130", "i")
    return text.lower()


def _make_batch_stemmer(name: str | None) -> Any:
    if name is None:
        return None
    if name == "porter":
        return lucene_porter_stem_many
    return Stemmer.Stemmer(name).stemWords


def _make_stemmer(name: str | None) -> Any:
    if name is None:
        return None
    if name == "porter":
        return lucene_porter_stem
    try:
        return Stemmer.Stemmer(name).stemWord
    except KeyError:
        raise UnknownAnalyzerError(
            f"unknown stemmer {name!r}; choose 'porter' or one of PyStemmer's: {', '.join(Stemmer.algorithms())}"
        ) from None


def analyzer_from_config(config: dict[str, Any]) -> Analyzer:
    kind = config.get("type")
    if kind != "token-filter":
        raise RetrievekitError(f"cannot rebuild analyzer from config {config!r}: unknown type {kind!r}")
    params = {k: v for k, v in config.items() if k != "type"}
    return TokenFilterAnalyzer(**params)


def _preset(name: str, **params: Any) -> None:
    described = ", ".join(f"{k}={v}" for k, v in params.items())
    register_analyzer(name, lambda: TokenFilterAnalyzer(name=name, **params), description=described)


# Anserini's DefaultEnglishAnalyzer: StandardTokenizer, EnglishPossessiveFilter, LowerCaseFilter,
# StopFilter(Lucene English stop words), PorterStemFilter.
_preset("lucene-english", possessive=True, stopwords="lucene-english", stemmer="porter")
_preset("lucene-english-nostem", possessive=True, stopwords="lucene-english", stemmer=None)
_preset("lucene-english-nostem-nostop", possessive=True, stopwords=None, stemmer=None)
_preset("snowball-english", possessive=True, stopwords="lucene-english", stemmer="english")
_preset("standard", stopwords=None, stemmer=None)
_preset("whitespace", tokenizer="whitespace", lowercase=False)
_preset("identifier", tokenizer="identifier")
# Source code and questions about it: whole identifiers and their camelCase/snake_case/digit parts, English and
# (curated) language keywords as stop words, Porter stems ("sorting" finds sort_items). BM25 MRR@10 on cosqa test /
# the stdlib code-search test split (benchmarks/code_search_data.py): 0.314 / 0.337; without stemming 0.301 / 0.313
# (Snowball: the same within 0.002); "identifier" 0.293 / 0.256; "lucene-english" 0.267 / 0.222.
_preset("code", tokenizer="code", stopwords="code", stemmer="porter")
for _language in Stemmer.algorithms():
    if _language not in ("english", "porter"):
        _preset(_language, stemmer=_language)
