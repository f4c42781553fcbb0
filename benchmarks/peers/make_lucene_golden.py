#!/usr/bin/env python3
"""Write golden Lucene analyzer output for retrievekit's English analyzer tests.

Runs in the Pyserini virtual environment (``benchmarks/setup_pyserini.sh``).  Every line of the output is one
JSON object::

    {"analyzer": "default", "source": "crafted", "text": "...", "tokens": ["...", ...]}

``analyzer`` names the Pyserini / Anserini configuration that produced ``tokens`` (all are Anserini's
``DefaultEnglishAnalyzer``: StandardTokenizer -> EnglishPossessiveFilter -> LowerCaseFilter -> StopFilter
(Lucene's 33 English stop words) -> PorterStemFilter):

* ``default``        ``get_lucene_analyzer()``: Porter stemming and stop words, the analyzer used to index and search
  in ``pyserini_bm25.py``;
* ``nostem``         ``get_lucene_analyzer(stemming=False)``: stop words removed, no stemming;
* ``nostem_nostop``  ``get_lucene_analyzer(stemming=False, stopwords=False)``: tokenizer, possessive and lowercase only.

``source`` is ``crafted`` (hand-made edge cases), ``query:<dataset>:<id>`` (test queries of the dataset, only those
in ``qrels/test.tsv``) or ``doc:<dataset>:<id>`` (the first documents of the corpus, ``title + " " + text``).
To keep the file small, documents are written for ``default`` only; crafted strings and queries for every variant.

``tokens`` is exactly the term sequence that Lucene indexes for the text (``AnalyzerUtils.analyze``), duplicates
kept, in order.  Usage::

    python make_lucene_golden.py --data /work/shared/data --out tests/data/lucene_english_tokens.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyserini_bm25 import configure_java, read_jsonl, read_qrels

LOG = logging.getLogger("make_lucene_golden")

DATASETS = ("scifact", "cranfield", "cacm", "cosqa")
MAX_BYTES = 2_000_000  # tests/data budget: the file must stay under 2 MB


def crafted_strings() -> list[str]:
    """Hand-made edge cases for tokenizer, possessive filter, lowercasing, stop words and Porter stemming."""
    possessives = [
        "John's book", "JOHN'S BOOK", "John'S book", "the cat’s toy", "the cat＇s toy", "the dogs' bowls",
        "James' car", "it's", "It's raining", "IT'S", "its", "O'Reilly's books", "Jones’", "'s", "’s alone",
        "s'", "the boss's office", "St. John's Wort", "McDonald's", "children's", "a'b's", "x's'y",
        "rock'n'roll", "don't", "Don’t stop", "can't", "won't", "isn't", "I'll", "we're", "they've", "o'clock",
        "l'homme", "'quoted'", "''double''", "'tis", "’twas", "hello'", "'hello", "ma'am",
    ]
    numbers = [
        "3.14", "3,14", "1,000.5", "1.000,5", "1,000,000", "10.5.3", "v1.2.3", "3.x", "x.3", "1e-5", "1.5e10",
        "0x1F", "-5", "+5", "5-7", "5–7 (en dash)", "10%", "$100", "€50", "£3.50", "¥1000", "#1", "No. 5",
        "1st 2nd 3rd 4th", "21st-century", "1990s", "'90s", "24/7", "12:30", "12:30:45", "2023-01-15",
        "15/01/2023", "01.02.2003", "+1-555-123-4567", "(555) 123-4567", "192.168.0.1", "::1", "3½", "½", "x²",
        "H₂O", "١٢٣ arabic-indic digits", "１２３ fullwidth digits", "Ⅻ roman numeral", "007", "0.5mg", "5mg/kg",
        "10kg", "2x2", "3D", "4K", "5G", "COVID-19", "SARS-CoV-2", "IL-6", "p53", "TGF-β1", "CD4+", "β-catenin",
        "α-helix", "mRNA", "miR-21", "Na+/K+-ATPase", "pH 7.4", "37°C", "n=12", "p<0.05", "p < 0.05", "r=0.9",
    ]
    punctuation = [
        "U.S.A.", "U.S.A", "U.S.", "u.s.a.", "e.g.", "i.e.", "etc.", "Ph.D.", "a.m.", "Mr. Smith", "Dr.Who",
        "foo.bar", "foo.bar.baz", "foo..bar", "foo.", ".foo", "node.js", ".NET", "C++", "C#", "F#", "A+",
        "john.doe@example.com", "user+tag@mail.co.uk", "@mention", "#hashtag", "http://example.com/path?q=1&r=2#frag",
        "https://www.example.org/a/b.html", "www.example.com", "ftp://x.y/z", "example.com", "a:b", "a:b:c",
        "key: value", "std::vector", "a/b", "path/to/file.txt", "/usr/local/bin", "C:\\Windows\\System32",
        "and/or", "either-or", "well-known", "state-of-the-art", "e-mail", "x--y", "-leading", "trailing-",
        "a_b", "foo_bar_baz", "__init__", "_private", "snake_case_var", "CONSTANT_NAME", "camelCase",
        "PascalCase", "HTTPServer", "getHTTPResponseCode", "XMLHttpRequest", "iPhone", "eBay", "McDonald",
        "a&b", "AT&T", "R&D", "Q&A", "&amp;", "<html>", "<b>bold</b>", "a=b", "a==b", "a!=b", "x->y", "a|b",
        "a~b", "a^b", "a*b", "(parenthesised)", "[bracketed]", "{braced}", "\"quoted\"", "“smart quotes”",
        "«guillemets»", "hello, world!", "what?!", "wait...", "…", "---", "—", "•bullet", "a·b", "a•b", "x·y·z",
        "semi;colon", "comma,separated,values", "tab\tseparated", "new\nline", "crlf\r\nline", "",
        "   ", "...", "'", "''", "!@#$%^&*()",
    ]
    stop_and_case = [
        "The quick brown fox jumps over the lazy dog", "THE AND OR NOT", "a an and are as at be but by for",
        "if in into is it no not of on or such", "that the their then there these they this to was will with",
        "A An The", "To be or not to be", "this is it", "Will will WILL", "I me my we our you he she him her",
        "ALL CAPS SENTENCE WITH STOPWORDS", "MiXeD CaSe WoRdS", "İstanbul", "ISTANBUL", "ß straße STRASSE",
        "ǅ titlecase digraph", "ﬁle ligature", "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ", "Ω ω", "ΣΊΣΥΦΟΣ σίσυφος",
    ]
    stemming = [
        "caresses ponies ties caress cats", "feed agreed plastered bled motoring sing", "conflated troubled sized",
        "hopping tanned falling hissing fizzed failing filing", "happy sky syzygy dying lying tying",
        "relational conditional rational valenci hesitanci digitizer conformabli radicalli differentli",
        "vileli analogousli vietnamization predication operator feudalism decisiveness hopefulness",
        "callousness formaliti sensitiviti sensibiliti triplicate formative formalize electriciti",
        "electrical hopeful goodness revival allowance inference airliner gyroscopic adjustable defensible",
        "irritant replacement adjustment dependent adoption homologou communism activate angulariti",
        "homologous effective bowdlerize probate rate cease controll roll generalizations oscillators",
        "running runs ran runner", "studies studying studied student", "university universe universal",
        "organization organizing organ", "news new", "data datum", "analysis analyses analyze analyzing",
        "cells cellular", "proteins protein's", "mice mouse", "women woman", "children child",
        "effectiveness effective effect", "generously generous", "abilities ability", "agreement agreeable",
        "ies es s ss sses", "y yy yyy", "eed ed ing", "ational tional enci anci", "izer iser bli alli",
        "entli eli ousli ization ation ator", "alism iveness fulness ousness aliti iviti biliti",
        "icate ative alize iciti ical ful ness", "al ance ence er ic able ible ant ement ment ent",
        "ion ou ism ate iti ous ive ize", "e ll", "abcdefghijklmnopqrstuvwxyz", "qwerty", "rhythms", "crwth",
        "naïve naïvely", "café cafés", "résumé resumes", "façade façades", "über", "jalapeños",
    ]
    scripts = [
        "Ελληνικά κείμενα", "αβγ δεζ", "Москва столица России", "Привет, мир!", "Україна", "日本語のテキスト",
        "中文分词测试", "我爱北京天安门", "ひらがな", "カタカナ", "ｶﾀｶﾅ halfwidth", "ー長音", "한국어 텍스트",
        "안녕하세요 세계", "ภาษาไทย", "สวัสดีครับ", "العربية", "مرحبا بالعالم", "עברית", "שלום עולם", "हिन्दी",
        "नमस्ते दुनिया", "বাংলা", "தமிழ்", "ქართული", "Հայերեն", "ᚠᚢᚦ runes", "ꦗꦮ javanese", "ລາວ lao",
        "မြန်မာ burmese", "ខ្មែរ khmer", "ትግርኛ ethiopic", "ᠮᠣᠩᠭᠣᠯ mongolian", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "𠀀𠀁 ext-B",
        "mixed日本語text", "abc日本def", "tokyo東京2020", "Σ-sigma", "x中y", "漢字かなカナ混じり文",
        "한글English섞기", "ไทยEnglish", "Русский123", "αβγ123", "123αβγ",
    ]
    combining_and_invisible = [
        "e\u0301", "cafe\u0301", "n\u0303o", "a\u0308\u0304", "\u0301leading mark", "Zalgo: h\u0336\u0357e\u0335",
        "zero\u200bwidth", "zero\u200cnonjoiner", "zero\u200djoiner", "word\u2060joiner", "soft\u00adhyphen",
        "non\u00a0breaking", "thin\u2009space", "ideographic\u3000space", "bom\ufefftext",
        "\ufeffleading bom (pyjnius drops it: skipped)",
        "rtl\u200fmark", "ltr\u200emark", "left\u202aembed\u202c", "a\u0000b", "bell\u0007char",
        "line\u2028separator", "para\u2029separator", "vertical\u000btab", "form\u000cfeed", "nel\u0085char",
        "variation ︎selector", "A\u030A vs Å", "ﬀ ﬃ ligatures", "ǆ digraph",
    ]
    emoji = [
        "emoji 😀 smile", "😀😃😄", "thumbs 👍🏽 up", "family 👨‍👩‍👧 here", "flag 🇺🇸 usa", "heart ❤️ love",
        "red ♥ suit", "star ★", "check ✓ ✔", "arrow → ←", "™ ® ©", "©2023 Company", "keycap 1️⃣", "#️⃣",
        "math ∑ ∫ √ ∞", "≤ ≥ ≠", "currency ₿ ₹ ₩", "👩🏽‍💻 coder", "🏳️‍🌈", "text😀text", "123😀456",
    ]
    long_tokens = [
        "x" * 255, "x" * 256, "y" * 300, "ab" * 200, "1" * 300, "a" * 600, "supercalifragilistic" * 15,
        "word " + "z" * 260 + " end", "é" * 300, "日" * 300, "a-" * 150, "abc" * 90 + "_" + "def" * 90,
        "Pneumonoultramicroscopicsilicovolcanoconiosis", "hippopotomonstrosesquippedaliophobia",
    ]
    sentences = [
        "Anti-inflammatory drugs (NSAIDs) reduce IL-6 levels by 50% in vitro; see Fig. 2b.",
        "The patient's T-cell count (CD4+/CD8+) was 1,200 cells/μL at baseline.",
        "def __init__(self, x: int = 0) -> None: self._x = x  # set x",
        "for (int i = 0; i < n; i++) { sum += a[i]; }",
        "import numpy as np; np.array([1, 2, 3]).reshape(-1, 1)",
        "SELECT * FROM users WHERE id = 42;",
        "Email me at first.last@uni.edu or visit https://uni.edu/~first.",
        "It's the U.S. Government's policy, e.g. the DoD's 2021 report.",
        "Mr. O'Neil's co-worker's e-mail wasn't sent.",
        "In 1998-99, GDP grew 3.5% (vs. 2.1% in '97).",
        "Wi-Fi, Bluetooth 5.0 & USB-C ports.",
        "IEEE 802.11ac/ax routers",
        "The Schrödinger equation iħ∂ψ/∂t = Ĥψ",
        "Île-de-France, Zürich, São Paulo, Kraków, Malmö",
        "Cranfield aerodynamics: boundary-layer flows at Mach 2.5.",
        "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft .",
        "How to sort a dict by value in python 3?",
        "python check file is readonly",
        "0-dimensional biomaterials show inductive properties.",
        "β-blockers reduce mortality after myocardial infarction (MI).",
    ]
    groups = [possessives, numbers, punctuation, stop_and_case, stemming, scripts, combining_and_invisible, emoji,
              long_tokens, sentences]
    seen: dict[str, None] = {}
    for group in groups:
        for text in group:
            seen.setdefault(text, None)
    return list(seen)


def dataset_texts(data_dir: Path, name: str, n_docs: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(test queries, first ``n_docs`` documents) of a dataset as (source, text) pairs."""
    folder = data_dir / name
    wanted = set(read_qrels(folder / "qrels" / "test.tsv"))
    queries = [(f"query:{name}:{q['_id']}", str(q.get("text", "")))
               for q in read_jsonl(folder / "queries.jsonl") if str(q["_id"]) in wanted]
    docs: list[tuple[str, str]] = []
    for doc in read_jsonl(folder / "corpus.jsonl"):
        if len(docs) >= n_docs:
            break
        docs.append((f"doc:{name}:{doc['_id']}", f"{doc.get('title') or ''} {doc.get('text') or ''}"))
    return queries, docs


def lines(data_dir: Path, n_docs: int) -> Iterator[tuple[str, str, str]]:
    """(analyzer, source, text) triples in output order."""
    crafted = [("crafted", text) for text in crafted_strings()]
    per_dataset = {name: dataset_texts(data_dir, name, n_docs) for name in DATASETS}
    for variant in ("default", "nostem", "nostem_nostop"):
        for source, text in crafted:
            yield variant, source, text
        if variant == "nostem_nostop":
            continue  # the tokenizer alone is covered well enough by the crafted strings
        for name in DATASETS:
            queries, docs = per_dataset[name]
            for source, text in queries:
                yield variant, source, text
            if variant == "default":
                for source, text in docs:
                    yield variant, source, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding scifact/, cranfield/, cacm/, cosqa/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=200, help="documents per corpus (default analyzer only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)

    configure_java()
    # pyserini must come first: importing it puts the Anserini jar on the classpath before the JVM starts.
    from pyserini.analysis import Analyzer, get_lucene_analyzer  # type: ignore[import-not-found]  # isort: skip

    from jnius import autoclass  # type: ignore[import-not-found]  # isort: skip

    analyzers = {
        "default": Analyzer(get_lucene_analyzer()),
        "nostem": Analyzer(get_lucene_analyzer(stemming=False)),
        "nostem_nostop": Analyzer(get_lucene_analyzer(stemming=False, stopwords=False)),
    }
    string_builder = autoclass("java.lang.StringBuilder")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with args.out.open("w", encoding="utf-8", newline="\n") as out:
        for variant, source, text in lines(args.data, args.docs):
            # Golden data is only worth having if Java saw exactly this string: pyjnius converts through UTF-8 and
            # drops a leading U+FEFF, for one.
            if str(string_builder(text).toString()) != text:
                LOG.warning("skipped: text from %s does not reach Java unchanged: %r", source, text[:60])
                continue
            tokens = analyzers[variant].analyze(text)
            record = {"analyzer": variant, "source": source, "text": text, "tokens": tokens}
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            key = f"{variant}/{source.split(':')[0]}"
            counts[key] = counts.get(key, 0) + 1
    size = args.out.stat().st_size
    LOG.info("wrote %s: %d bytes, %s", args.out, size, counts)
    if size >= MAX_BYTES:
        raise SystemExit(f"{args.out} is {size} bytes, over the {MAX_BYTES}-byte budget; lower --docs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
