"""The ``code`` analyzer: identifier splitting, keyword and English stop words, stemming, exact spans, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrievekit import Collection
from retrievekit.analysis import analyzer_from_config, get_analyzer
from retrievekit.analysis.code_keywords import CODE_STOPWORDS, CONTENT_KEYWORDS, KEYWORDS
from retrievekit.analysis.highlight import snippet
from retrievekit.analysis.tokenizers import code_tokenize


@pytest.mark.parametrize("text,tokens", [
    ("getHTTPResponse2", ["getHTTPResponse2", "get", "HTTP", "Response", "2"]),
    ("snake_case_name", ["snake_case_name", "snake", "case", "name"]),
    ("__init__", ["__init__", "init"]),
    ("a->b", ["a", "b"]),
    ("x+=1", ["x", "1"]),
    ("XMLParser.parse(value)", ["XMLParser", "XML", "Parser", "parse", "value"]),
    ("sha256sum", ["sha256sum", "sha", "256", "sum"]),
    # unicode identifiers: combining marks stay inside (Devanagari virama, a decomposed é), cased scripts split
    ("नमस्ते_दुनिया", ["नमस्ते_दुनिया", "नमस्ते", "दुनिया"]),
    ("cafe\u0301_menu", ["cafe\u0301_menu", "cafe\u0301", "menu"]),
    ("getΣτοιχείοValue", ["getΣτοιχείοValue", "get", "Στοιχείο", "Value"]),
    ("获取用户名()", ["获取用户名"]),
])
def test_code_tokenizer(text: str, tokens: list[str]) -> None:
    assert code_tokenize(text) == tokens


def test_long_identifiers_are_cut_like_standard_tokens() -> None:
    assert [len(t) for t in code_tokenize("x" * 600)] == [255, 255, 90]


def test_analyzer_keeps_whole_identifiers_drops_keywords_and_stems_parts() -> None:
    code = get_analyzer("code")
    assert code.analyze("def getUserName(self): return None if x else self.name") == [
        "getusernam", "get", "user", "name", "return", "x", "name"]
    # language keywords and English stop words go; keywords that name what people ask about stay
    assert code.analyze("fn elif nil pub let the of") == []
    assert code.analyze("convert string to int, raise exception") == ["convert", "string", "int", "rais", "except"]
    # a Porter stem of each part: a question about "sorting" finds sort_items
    assert set(code.analyze("sorting items")) <= set(code.analyze("def sort_items(xs): ..."))


def test_keyword_lists_are_lowercase_consistent() -> None:
    assert CODE_STOPWORDS and all(word == word.lower() for word in CODE_STOPWORDS)
    assert not CODE_STOPWORDS & CONTENT_KEYWORDS
    assert {"def", "elif", "fn", "func", "nil", "self", "elsif"} <= CODE_STOPWORDS
    assert {"python", "rust", "go", "java", "javascript", "c", "cpp", "ruby"} == set(KEYWORDS)


def test_term_spans_are_exact_and_cover_every_term() -> None:
    code = get_analyzer("code")
    text = "def getHTTPResponse2(self, नमस्ते_दुनिया):\n    x += 1  # a->b __init__"
    spans = code.term_spans(text)
    assert [text[s:e] for s, e, _ in spans] == [
        "getHTTPResponse2", "नमस्ते_दुनिया", "x", "1", "b", "__init__"]
    for start, end, terms in spans:
        assert terms == code.analyze(text[start:end])
    assert [t for _, _, terms in spans for t in terms] == code.analyze(text)
    # a match on one part highlights the identifier it belongs to
    assert snippet(text, "http response", code).startswith("def [getHTTPResponse2](self")


def test_config_round_trips_and_a_collection_reopens_with_it(tmp_path: Path) -> None:
    code = get_analyzer("code")
    assert analyzer_from_config(code.config()) == code
    assert code.config()["tokenizer"] == "code" and code.config()["stopwords"] == "code"

    col = Collection.create(tmp_path / "col", analyzer="code")
    col.add([{"id": "a", "text": "def parseHTTPResponse(raw):\n    return json.loads(raw)"},
             {"id": "b", "text": "def sort_items(items):\n    return sorted(items)"}])
    reopened = Collection.open(tmp_path / "col")
    assert reopened.analyzer == code
    results = reopened.search(["sorting the items", "http response parser"], k=1)
    assert [results.hits(q)[0][0] for q in range(2)] == ["b", "a"]
