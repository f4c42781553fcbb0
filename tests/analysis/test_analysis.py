"""Analyzers: token-for-token equality with Lucene (Pyserini's analyzers), the Porter departures, presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paths import FIXTURES

from retrievekit.analysis import (
    UnknownAnalyzerError,
    analyzer_from_config,
    available_analyzers,
    get_analyzer,
    identifier_tokenize,
    standard_tokenize,
)
from retrievekit.analysis.porter import _reference_porter_stem, lucene_porter_stem

GOLDEN = FIXTURES / "lucene_english_tokens.jsonl"
ANALYZER_FOR = {"default": "lucene-english", "nostem": "lucene-english-nostem",
                "nostem_nostop": "lucene-english-nostem-nostop"}


def golden_rows() -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in GOLDEN.read_text("utf-8").split("\n") if line]


@pytest.mark.parametrize("variant", list(ANALYZER_FOR))
def test_equals_lucene_token_for_token(variant: str) -> None:
    """Golden output of Pyserini's Lucene analyzers on crafted edge cases, queries and documents of four
    datasets (made by benchmarks/peers/make_lucene_golden.py)."""
    analyzer = get_analyzer(ANALYZER_FOR[variant])
    rows = [r for r in golden_rows() if r.get("analyzer", "default") == variant]
    assert len(rows) > 300
    mismatches = [(r["text"][:80], analyzer.analyze(r["text"]), r["tokens"]) for r in rows
                  if analyzer.analyze(r["text"]) != r["tokens"]]
    assert mismatches == []


@pytest.mark.parametrize("text,tokens", [
    ("John's U.S.A. trip cost $1,000.50 (e.g. 3.14)", ["John's", "U.S.A", "trip", "cost", "1,000.50", "e.g", "3.14"]),
    ("a:b foo_bar x-ray abc123 ___ __init__", ["a:b", "foo_bar", "x", "ray", "abc123", "__init__"]),
    ("中文 カタカナ ひら 한국어", ["中", "文", "カタカナ", "ひ", "ら", "한국어"]),
    ("café naïve", ["café", "naïve"]),
])
def test_standard_tokenizer(text: str, tokens: list[str]) -> None:
    assert standard_tokenize(text) == tokens


def test_long_tokens_are_split_at_255() -> None:
    assert [len(t) for t in standard_tokenize("x" * 600)] == [255, 255, 90]


def test_porter_follows_lucene_not_snowball() -> None:
    assert lucene_porter_stem("sensibly") == "sensibl"  # reference C: bli -> ble
    assert lucene_porter_stem("analogy") == "analog"  # reference C: logi -> log
    assert lucene_porter_stem("us") == "us"  # two letters: untouched
    assert lucene_porter_stem("running") == "run" and lucene_porter_stem("generalizations") == "gener"
    for word in ["relational", "conditional", "hopefulness", "adjustable", "probate", "controlling", "agreed"]:
        assert lucene_porter_stem(word) == _reference_porter_stem(word)


def test_presets_and_config_round_trip() -> None:
    assert {"lucene-english", "whitespace", "identifier", "german"} <= set(available_analyzers())
    for name in available_analyzers():
        a = get_analyzer(name)
        assert analyzer_from_config(a.config()) == a
    assert get_analyzer("german").analyze("Die Häuser") == ["die", "haus"]
    assert get_analyzer("whitespace").analyze("Keep-Case, as is") == ["Keep-Case,", "as", "is"]
    with pytest.raises(UnknownAnalyzerError, match="lucene-english"):
        get_analyzer("klingon")


def test_identifier_tokenizer() -> None:
    assert identifier_tokenize("parseHTTPResponse_v2(x)") == [
        "parseHTTPResponse_v2", "parse", "HTTP", "Response", "v", "2", "x"]
    assert get_analyzer("identifier").analyze("getUserName") == ["getusername", "get", "user", "name"]


def test_fast_paths_agree_with_the_full_grammar(data_dir: Path) -> None:
    """ASCII and Python-class fast paths must give exactly the full UAX#29 grammar's tokens, on real text in
    twelve languages."""
    from retrievekit.analysis.tokenizers import STANDARD_PATTERN, _split_long

    sources = [data_dir / "scifact", data_dir / "cosqa", *sorted((data_dir / "xquad-r").iterdir())]
    checked = 0
    for folder in sources:
        if not (folder / "corpus.jsonl").is_file():
            continue
        for i, line in enumerate((folder / "corpus.jsonl").open(encoding="utf-8")):
            if i >= 400:
                break
            doc = json.loads(line)
            text = (doc.get("title", "") + " " + doc["text"]).lower()
            assert standard_tokenize(text) == _split_long(STANDARD_PATTERN.findall(text)), (folder.name, doc["_id"])
            checked += 1
    assert checked > 4000
