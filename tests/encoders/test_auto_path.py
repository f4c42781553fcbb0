"""The run-time numeric path of sentence-transformers encoders (encoders.auto) and token-budget batching, with a tiny
random BERT built in the test (never downloaded): which paths a CPU gets, the fastest path that passes the quality
check wins, a broken path falls back to fp32 and says why, the decision is cached, the stored spec never changes,
and token-budget batches give the same vectors as sentence-transformers' own batching."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrievekit.core.cpu import CPUInfo, _parse_cpuinfo
from retrievekit.encoders import auto
from retrievekit.encoders.base import token_budget_batches

needs_st = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("torch", "sentence_transformers")),
                              reason="needs torch and sentence-transformers")

WORDS = ("[PAD] [UNK] [CLS] [SEP] [MASK] the a cat dog sat on mat vaccine immune system cell protein gene market "
         "stock ##s ##ing").split()
TEXTS = ["the cat sat on the mat", "dog", "immune system cell protein gene vaccine immune system cells",
         "stock market", "the dog sat on a mat the cat sat on a mat", "genes", "a", "protein market stocks"]


def _tiny_st(folder: Path) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)})
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    SentenceTransformer(modules=[Transformer(str(folder / "hf"), max_seq_length=32), Pooling(32, "mean"),
                                 Normalize()], device="cpu").save(str(folder / "st"))
    return folder / "st"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("sentence_transformers")
    return _tiny_st(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RETRIEVEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(auto.PATH_ENV, raising=False)
    monkeypatch.setattr(auto, "AUTO_MIN_TEXTS", 4)
    return tmp_path / "cache"


def _cpu(*flags: str) -> CPUInfo:
    return CPUInfo(model="test CPU", flags=frozenset(flags), physical_cores=2, logical_cpus=2)


def _exact_vectors(tiny: Path) -> dict[str, np.ndarray]:
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    return dict(zip(TEXTS, SentenceTransformerEncoder(str(tiny), precision="fp32").encode_on("fp32", TEXTS)))


def _taking(exact: dict[str, np.ndarray], delay: float) -> Any:
    """A path builder whose runs return exact vectors after ``delay`` seconds: the check sees speeds far apart and
    no compute, so a loaded machine cannot reorder the paths."""
    def build(encoder: object) -> auto.PathRunner:
        def run(texts: list[str]) -> np.ndarray:
            time.sleep(delay)
            return np.stack([exact[t] for t in texts])
        return run
    return build


def test_cpuinfo_flags_and_physical_cores() -> None:
    block = ("processor\t: {n}\nmodel name\t: Test Xeon\nphysical id\t: 0\ncore id\t\t: {core}\n"
             "flags\t\t: fpu avx2 avx512f avx512_vnni amx_tile amx_bf16 amx_int8\n\n")
    text = "".join(block.format(n=n, core=n // 2) for n in range(4))  # 4 hyper-threads on 2 cores
    model, flags, cores = _parse_cpuinfo(text)
    assert model == "Test Xeon" and cores == 2
    cpu = CPUInfo(model=model, flags=flags, physical_cores=cores, logical_cpus=4)
    assert cpu.amx and cpu.vnni and cpu.native_bf16


def test_candidate_paths_follow_the_instruction_sets() -> None:
    assert auto.candidate_paths(_cpu("avx2", "avx512f", "avx512_vnni", "avx512_bf16")) == ["onnx-int8", "bf16", "fp32"]
    assert auto.candidate_paths(_cpu("avx2", "amx_tile", "amx_bf16", "amx_int8")) == ["bf16", "onnx-int8", "fp32"]
    assert auto.candidate_paths(_cpu("avx2", "avx512f")) == ["onnx-int8", "fp32"]  # bf16 would be emulated
    assert auto.candidate_paths(_cpu("sse4_2")) == ["fp32"]


def test_token_budget_batches_respect_the_budget() -> None:
    lengths = [5, 30, 1, 12, 12, 7, 64, 3]
    batches = token_budget_batches(lengths, 32)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= 32 or len(batch) == 1  # a text longer than the budget goes alone
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)
    assert len(token_budget_batches([2] * 100, 64)) == 4  # short texts: many to a batch, not a fixed count


@needs_st
def test_token_budget_batching_gives_the_vectors_of_plain_batching(tiny: Path, cache: Path) -> None:
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(str(tiny), precision="fp32")
    plain = encoder.model.encode(TEXTS * 3, batch_size=5, normalize_embeddings=True)
    for budget in (1, 20, 64, 10_000):
        np.testing.assert_allclose(encoder.encode(TEXTS * 3, token_budget=budget), plain, atol=2e-6)


@needs_st
def test_a_broken_path_falls_back_to_fp32_and_says_why(tiny: Path, cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    rng = np.random.default_rng(0)

    def broken(encoder: object) -> auto.PathRunner:
        return lambda texts: rng.normal(size=(len(texts), 32)).astype(np.float32)

    def failing(encoder: object) -> auto.PathRunner:
        raise RuntimeError("no int8 kernels here")

    monkeypatch.setitem(auto.BUILDERS, "bf16", broken)
    monkeypatch.setitem(auto.BUILDERS, "onnx-int8", failing)
    monkeypatch.setattr(auto, "cpu_info", lambda **_: _cpu("avx2", "avx512_vnni", "avx512_bf16"))
    encoder = SentenceTransformerEncoder(str(tiny))
    spec = encoder.spec()
    vectors = encoder.encode(TEXTS)
    decision = encoder.decision
    assert decision is not None and decision.path == "fp32"
    assert "bf16 cosine to fp32 mean" in decision.reason and "< 0.99" in decision.reason
    assert "onnx-int8 failed (RuntimeError: no int8 kernels here)" in decision.reason
    np.testing.assert_allclose(vectors, encoder.model.encode(TEXTS, normalize_embeddings=True), atol=2e-6)
    assert encoder.spec() == spec  # the numeric path never enters the stored spec


@needs_st
def test_the_fastest_passing_path_wins_and_the_choice_is_cached(tiny: Path, cache: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    exact = _exact_vectors(tiny)
    monkeypatch.setitem(auto.BUILDERS, "fp32", _taking(exact, 0.3))
    monkeypatch.setitem(auto.BUILDERS, "bf16", _taking(exact, 0.0))
    monkeypatch.setitem(auto.BUILDERS, "onnx-int8", _taking(exact, 0.6))  # passes the check, but is not faster
    monkeypatch.setattr(auto, "cpu_info", lambda **_: _cpu("avx2", "avx512_vnni", "avx512_bf16"))
    first = SentenceTransformerEncoder(str(tiny))
    first.encode(TEXTS)
    assert first.decision is not None and first.decision.path == "bf16"
    assert first.decision.reason.startswith("bf16: ") and "cosine to fp32 mean 1.0" in first.decision.reason
    files = list((cache / "encoder-paths").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["path"] == "bf16"

    def no_second_check(*args: object, **kwargs: object) -> auto.PathDecision:
        raise AssertionError("the cached decision should have been used")

    monkeypatch.setattr(auto, "decide", no_second_check)
    second = SentenceTransformerEncoder(str(tiny))
    second.encode(TEXTS)
    assert second.decision is not None and second.decision.path == "bf16"
    assert auto.decision_for_spec(second.spec()) is not None  # what `retrievekit info` shows
    # a small encode (queries) before any decision stays fp32 and decides nothing
    third = SentenceTransformerEncoder(str(tiny))
    third.encode(TEXTS[:2])
    assert third.decision is None


@needs_st
def test_on_amx_a_fast_bf16_spares_the_int8_export_unless_it_is_cached(tiny: Path, cache: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(str(tiny))
    exact = _exact_vectors(tiny)

    def taking(delay: float) -> Any:
        return _taking(exact, delay)

    built: list[str] = []

    def int8(encoder: SentenceTransformerEncoder) -> auto.PathRunner:
        built.append("int8")  # stands for the export and quantisation
        return taking(0.0)(encoder)  # type: ignore[no-any-return]

    monkeypatch.setitem(auto.BUILDERS, "fp32", taking(0.6))
    monkeypatch.setitem(auto.BUILDERS, "bf16", taking(0.1))  # ~6x fp32: enough
    monkeypatch.setitem(auto.BUILDERS, "onnx-int8", int8)
    monkeypatch.setattr(auto, "cpu_info", lambda **_: _cpu("avx2", "amx_tile", "amx_bf16", "amx_int8"))
    monkeypatch.setattr(auto, "_int8_export_cached", lambda encoder: False)
    decision = auto.decide(encoder, TEXTS)
    assert decision.path == "bf16" and built == [] and "skipped" in decision.checks["onnx-int8"]
    assert "not tried: onnx-int8 (bf16 on AMX already" in decision.reason
    # with the export cached the trial is cheap, so it runs, and the faster int8 wins
    monkeypatch.setattr(auto, "_int8_export_cached", lambda encoder: True)
    assert auto.decide(encoder, TEXTS).path == "onnx-int8" and built == ["int8"]
    # a bf16 below the bar (~1.3x) leaves int8 its trial too; without AMX nothing is skipped
    monkeypatch.setattr(auto, "_int8_export_cached", lambda encoder: False)
    monkeypatch.setitem(auto.BUILDERS, "bf16", taking(0.45))
    assert auto.decide(encoder, TEXTS).path == "onnx-int8" and len(built) == 2
    monkeypatch.setitem(auto.BUILDERS, "bf16", taking(0.1))
    monkeypatch.setattr(auto, "cpu_info", lambda **_: _cpu("avx2", "avx512_vnni", "avx512_bf16"))
    assert auto.decide(encoder, TEXTS).path == "onnx-int8" and len(built) == 3


@needs_st
def test_forcing_a_path_and_a_bad_name(tiny: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    monkeypatch.setenv(auto.PATH_ENV, "bf16")
    encoder = SentenceTransformerEncoder(str(tiny))
    vectors = encoder.encode(TEXTS)
    assert encoder.decision is not None and encoder.decision.forced and encoder.decision.path == "bf16"
    cosines = np.sum(vectors * encoder.model.encode(TEXTS, normalize_embeddings=True), axis=1)
    assert cosines.min() > 0.99 and not np.array_equal(vectors, encoder.encode_on("fp32", TEXTS))
    monkeypatch.setenv(auto.PATH_ENV, "fp16")
    with pytest.raises(auto.EncoderPathError, match="RETRIEVEKIT_ENCODER_PATH.*auto, fp32, bf16, onnx-int8"):
        SentenceTransformerEncoder(str(tiny))


@needs_st
def test_an_index_built_on_another_path_keeps_its_spec_and_answers_queries(
        tiny: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retrievekit import Collection
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    monkeypatch.setenv(auto.PATH_ENV, "bf16")
    col = Collection.create(tmp_path / "col", dense=str(tiny))
    col.add([{"id": f"d{i}", "text": t} for i, t in enumerate(TEXTS)])
    stored = col.index_config("dense")["encoder"]
    monkeypatch.setenv(auto.PATH_ENV, "fp32")
    assert stored == SentenceTransformerEncoder(str(tiny)).spec()
    reopened = Collection(tmp_path / "col")
    results = reopened.search(["immune system cell protein gene vaccine immune system cells"], k=3, mode="dense")
    assert results.ids[0][0] == "d2"


@needs_st
def test_info_shows_the_path_chosen_for_an_index(tiny: Path, cache: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from retrievekit import Collection
    from retrievekit.cli.main import main

    col = Collection.create(tmp_path / "col", dense=str(tiny))
    col.add([{"id": f"d{i}", "text": t} for i, t in enumerate(TEXTS[:2])])  # too few texts to decide
    assert main(["info", str(tmp_path / "col"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dense"]["default"]["encoding_path"].startswith("not chosen yet")
    spec = col.index_config("dense")["encoder"]
    decision = auto.PathDecision(path="bf16", reason="bf16: 1.9x fp32 (test)", model=spec["model"])
    auto.save_decision(auto.decision_file(str(tiny), spec), decision)
    assert main(["info", str(tmp_path / "col"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dense"]["default"]["encoding_path"] == "bf16: 1.9x fp32 (test)"
    assert main(["components", "--kind", "encoder"]) == 0
    assert "bf16: 1.9x fp32 (test)" in capsys.readouterr().out


@needs_st
def test_the_fused_int8_recipe_runs_quantised_attention(tiny: Path, cache: Path) -> None:
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from retrievekit.encoders.onnx import INT8_FILE, INT8_PLAIN_FILE, ONNXInt8Encoder
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    fused = ONNXInt8Encoder(str(tiny), recipe="fused")
    ops = {node.op_type for node in onnx.load(str(fused.folder / INT8_FILE)).graph.node}
    assert {"QAttention", "MatMulInteger", "SkipLayerNormalization"} <= ops
    plain = ONNXInt8Encoder(str(tiny))  # the default
    assert plain.recipe == "plain"
    plain_ops = {node.op_type for node in onnx.load(str(plain.folder / INT8_PLAIN_FILE)).graph.node}
    assert "QAttention" not in plain_ops and "Softmax" in plain_ops
    reference = SentenceTransformerEncoder(str(tiny), precision="fp32").encode(TEXTS)
    for encoder in (fused, plain):
        assert np.sum(encoder.encode(TEXTS) * reference, axis=1).min() > 0.95
    assert fused.spec() == plain.spec()
    with pytest.raises(Exception, match="unknown int8 recipe 'fast'"):
        ONNXInt8Encoder(str(tiny), recipe="fast")
