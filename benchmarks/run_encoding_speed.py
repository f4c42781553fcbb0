"""Dense encoding at the hardware's limit (issue 18): every numeric path of MiniLM-L6 on this CPU, in one run.

1. Matrix-multiply micro-benchmark: the CPU's measured peak for each precision on all cores — torch.matmul fp32 and
   bf16, int8 through onnxruntime's MatMulInteger (u8 x s8, the form VNNI's VPDPBUSD takes) and torch._int_mm (s8 x
   s8) when it runs on CPU — each the best of a square 2048 GEMM and MiniLM's FFN shape (8192 tokens x 384 x 1536).
2. Backends on the same --passages SciFact passages (title + " " + text, 256-token window), after a warm-up batch:
   docs/s, the model's GFLOP/s (counted from each passage's real token count) and that as a fraction of the
   micro-benchmark peak for the path's precision; nDCG@10 and R@100 on the SciFact test queries, the rest of the
   corpus encoded by the same encoder (brute-force cosine). The sentence-transformers fp32 and auto rows take their
   quality from the collections of step 3. Tokenisation's share of the default int8 encode is measured too: it bounds
   what overlapping tokenisation with inference could save.
3. Indexing SciFact (corpus.jsonl -> a committed collection with a dense index, `retrievekit index --dense`) before
   (RETRIEVEKIT_ENCODER_PATH=fp32) and after (the automatic choice, decided in that run), each with an empty cache.
4. The first `retrievekit demo` (empty cache and home) with sentence-transformers fp32 (the demo's encoder when issue
   18 was filed), with the fused int8 recipe (RETRIEVEKIT_INT8_RECIPE=fused) and as it is (the default int8 export).

The "before" measurements (the sentence-transformers fp32 row, indexing and the demo with fp32) run in their own
processes with RETRIEVEKIT_MALLOC=default: glibc's allocator as it was before issue 18 (core/allocator.py). Every
other row runs in this process, whose allocator thresholds are raised first, as retrievekit's encoders do; the
"allocator" rows isolate that step (the same fp32 and bf16 encoders in their own processes, allocator left alone).

The machine's load averages are recorded before and after each step (other work on the machine slows everything).

    python benchmarks/run_encoding_speed.py [--passages 1000] [--skip-quality] [--skip-indexing] [--skip-demo]
        [--out results/encoding-speed.json]

Writes benchmarks/results/encoding-speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "scifact"
RESULTS = HERE / "results"
MODEL = "minilm"
INT8_DEFAULT = "onnx-int8 (default: plain recipe; 512-token batches; one batch per core)"
INT8_IN_TURN = "onnx-int8 (default; batches in turn on all cores)"
FP32_KEPT = "sentence-transformers fp32 (allocator thresholds raised)"
BF16_DEFAULT_MALLOC = "sentence-transformers bf16 (allocator as before)"
#: rows measured in a process of their own with glibc's allocator as it is (RETRIEVEKIT_MALLOC=default)
OWN_PROCESS = ("sentence-transformers fp32", BF16_DEFAULT_MALLOC)
BEFORE_ENV = {"RETRIEVEKIT_MALLOC": "default"}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ----------------------------------------------------------------------------- 1. matmul peak
def _best_rate(fn: Callable[[], Any], ops: float, seconds: float = 1.5) -> float:
    """Giga-operations per second of ``fn``: the best of repeated timed calls within ``seconds``."""
    fn()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        fn()
        best = max(best, ops / (time.perf_counter() - started) / 1e9)
    return best


def matmul_peaks(threads: int) -> dict[str, Any]:
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    torch.set_num_threads(threads)
    shapes = {"square 2048": (2048, 2048, 2048), "MiniLM FFN 8192x384x1536": (8192, 384, 1536)}
    out: dict[str, Any] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rates = {}
        for label, (m, k, n) in shapes.items():
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            rates[label] = round(_best_rate(lambda a=a, b=b: torch.matmul(a, b), 2.0 * m * k * n), 1)
        out[f"torch.matmul {name}"] = {"precision": name, "gops": rates, "peak": max(rates.values())}
    rates = {}
    for label, (m, k, n) in shapes.items():
        weights = np.random.default_rng(0).integers(-127, 127, (k, n), dtype=np.int8)
        graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "W"], ["Y"])], "gemm",
                                  [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, k])],
                                  [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, n])],
                                  [numpy_helper.from_array(weights, "W")])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
                                       .SerializeToString(), options, providers=["CPUExecutionProvider"])
        a8 = np.random.default_rng(1).integers(0, 255, (m, k), dtype=np.uint8)
        rates[label] = round(_best_rate(lambda s=session, a=a8: s.run(None, {"A": a}), 2.0 * m * k * n), 1)
    out["onnxruntime MatMulInteger u8s8"] = {"precision": "int8", "gops": rates, "peak": max(rates.values())}
    try:
        rates = {}
        for label, (m, k, n) in shapes.items():
            a, b = (torch.randint(-127, 127, s, dtype=torch.int8) for s in ((m, k), (k, n)))
            rates[label] = round(_best_rate(lambda a=a, b=b: torch._int_mm(a, b), 2.0 * m * k * n), 1)
        out["torch._int_mm s8s8"] = {"precision": "int8", "gops": rates, "peak": max(rates.values())}
    except (RuntimeError, AttributeError) as exc:
        out["torch._int_mm s8s8"] = {"precision": "int8", "error": str(exc)[:300]}
    return out


def peak_for(peaks: dict[str, Any], precision: str) -> float:
    return max((p.get("peak", 0.0) for p in peaks.values() if p["precision"] == precision), default=0.0)


# ----------------------------------------------------------------------------- 2. backends
def corpus() -> tuple[list[str], list[str]]:
    from retrievekit.core.document import index_text
    from retrievekit.ingest import read_documents

    ids, texts = [], []
    for doc in read_documents(DATA / "corpus.jsonl"):
        ids.append(doc.id)
        texts.append(index_text(doc, ["title", "text"]))
    return ids, texts


def model_flops(texts: list[str]) -> float:
    """Multiply-add FLOPs MiniLM spends on ``texts``: per layer and token 2*(4h^2 + 2*h*ffn) in the projections and
    the FFN, plus 4*n*h for attention scores and the weighted sum over the n tokens of its text (no padding)."""
    from transformers import AutoConfig, AutoTokenizer

    from retrievekit.encoders.registry import model_card
    from retrievekit.encoders.sentence_transformers import resolve_model_path

    location = resolve_model_path(MODEL, model_card(MODEL))
    config = AutoConfig.from_pretrained(location)
    tokenizer = AutoTokenizer.from_pretrained(location)
    lengths = np.array([len(ids) for ids in tokenizer(texts, truncation=True, max_length=256)["input_ids"]],
                       dtype=np.float64)
    h, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return float(layers * (2 * (4 * h * h + 2 * h * ffn) * lengths.sum() + 4 * h * (lengths**2).sum()))


# name -> (how to build the encoder, precision of its matmuls, where its quality comes from)
BACKENDS: dict[str, tuple[Callable[[], Any], str, str]] = {}


def _backends() -> None:
    from retrievekit.encoders import get_encoder
    from retrievekit.encoders.onnx import ONNXInt8Encoder
    from retrievekit.encoders.sentence_transformers import SentenceTransformerEncoder

    BACKENDS.update({
        "sentence-transformers fp32": (lambda: SentenceTransformerEncoder(MODEL, precision="fp32"), "fp32", "index"),
        # the baseline's encoder in this process (allocator thresholds raised): what that step alone gives fp32
        FP32_KEPT: (lambda: SentenceTransformerEncoder(MODEL, precision="fp32"), "fp32", "same as baseline"),
        BF16_DEFAULT_MALLOC: (lambda: SentenceTransformerEncoder(MODEL, precision="bf16"), "bf16",
                              "same as bf16"),
        "sentence-transformers bf16": (lambda: SentenceTransformerEncoder(MODEL, precision="bf16"), "bf16", "here"),
        "onnx fp32": (lambda: get_encoder("onnx:minilm"), "fp32", "here"),
        # as before issue 18: the unfused export, batches of 32 texts of up to 256 tokens
        "onnx-int8 plain (before)": (lambda: ONNXInt8Encoder(MODEL, recipe="plain", token_budget=32 * 256,
                                                             parallel_batches=1), "int8", "here"),
        "onnx-int8 fused": (lambda: ONNXInt8Encoder(MODEL, recipe="fused"), "int8", "here"),
        # the same vectors as the default (checked below), so its quality is not measured again
        INT8_IN_TURN: (lambda: ONNXInt8Encoder(MODEL, parallel_batches=1), "int8", "same as default"),
        INT8_DEFAULT: (lambda: ONNXInt8Encoder(MODEL), "int8", "here"),
        "auto (sentence-transformers default)": (lambda: SentenceTransformerEncoder(MODEL), "auto", "index"),
        "static (wordllama)": (lambda: get_encoder("wordllama"), "fp32", "here"),
        # MiniLM distilled into a static model2vec model here (256-d PCA; distil time in the row)
        "static (model2vec distilled MiniLM)": (_distilled_minilm, "fp32", "here"),
    })


_DISTILLED: dict[str, Any] = {}


def _distilled_minilm() -> Any:
    """A Model2VecEncoder of MiniLM distilled in this run (once; later builds load the saved folder)."""
    from retrievekit.encoders import get_encoder
    from retrievekit.encoders.distill import distill

    if "path" not in _DISTILLED:
        started = time.perf_counter()
        _DISTILLED["path"] = distill(MODEL, Path(tempfile.mkdtemp(prefix="model2vec-minilm-")) / "model")
        _DISTILLED["seconds"] = round(time.perf_counter() - started, 1)
    return get_encoder(f"model2vec:{_DISTILLED['path']}")


def ndcg(doc_ids: list[str], doc_vectors: np.ndarray, query_vectors: np.ndarray, query_ids: list[str],
         qrels: Any) -> dict[str, float]:
    from retrievekit.evaluation import evaluate

    scores = query_vectors @ doc_vectors.T
    top = np.argpartition(-scores, 100, axis=1)[:, :100]
    run = {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(query_ids)}
    result = evaluate(run, qrels, ["ndcg@10", "recall@100"])
    return {"ndcg@10": round(result["ndcg@10"], 6), "recall@100": round(result["recall@100"], 6)}


def measure_backend(name: str, texts: list[str], flops: float, peaks: dict[str, Any]) -> tuple[dict[str, Any],
                                                                                              np.ndarray]:
    """Throughput of one backend on ``texts`` (and its vectors of them, for the quality step)."""
    build, precision, _ = BACKENDS[name]
    row: dict[str, Any] = {"backend": name, "load_before": load()}
    started = time.perf_counter()
    encoder = build()
    row["load_seconds"] = round(time.perf_counter() - started, 2)
    if precision == "auto":  # decide now (in this run, on a sample of these passages), outside the timing
        started = time.perf_counter()
        encoder.path_for(texts, decide=True)
        row["decision_seconds"] = round(time.perf_counter() - started, 2)
        row["decision"] = encoder.decision.to_json()
        precision = {"onnx-int8": "int8"}.get(encoder.decision.path, encoder.decision.path)
    encoder.encode_documents(texts[:32])  # warm-up: first-call allocations, graph initialisation
    started = time.perf_counter()
    vectors = encoder.encode_documents(texts)
    seconds = time.perf_counter() - started
    gflops = flops / seconds / 1e9
    row.update({"spec": encoder.spec(), "precision": precision, "passages": len(texts), "seconds": round(seconds, 3),
                "docs_per_second": round(len(texts) / seconds, 2), "model_gflops_per_second": round(gflops, 1),
                **peak_fields(name, precision, gflops, peaks)})
    if name == INT8_DEFAULT:  # what overlapping tokenisation with inference could save at most
        started = time.perf_counter()
        encoder._tokenize([encoder.document_prompt + t for t in texts])
        row["tokenize_seconds"] = round(time.perf_counter() - started, 3)
        row["tokenize_share"] = round(row["tokenize_seconds"] / seconds, 4)
        row["op_time_share"] = op_profile(encoder, texts[:64])
    if name.startswith("static"):  # what bounds a static model: its Rust tokenizer, on all cores and on one
        row["tokenize_seconds"], row["tokenize_share"] = _static_tokenize(encoder, texts, seconds)
        kept = os.environ.get("TOKENIZERS_PARALLELISM")
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # read by tokenizers at every batch call
        try:
            row["tokenize_seconds_one_thread"] = _static_tokenize(encoder, texts, seconds)[0]
        finally:
            if kept is None:
                os.environ.pop("TOKENIZERS_PARALLELISM")
            else:
                os.environ["TOKENIZERS_PARALLELISM"] = kept
        if getattr(encoder, "_words", None) is not None:
            row["word_cache"] = True
            row["whole_text_tokenize_seconds"] = round(_whole_text_tokenize(encoder, texts), 3)
        if "model2vec" in name:
            row["distil_seconds"] = _DISTILLED.get("seconds")
    if name == INT8_DEFAULT:
        row["token_budget_sweep"] = budget_sweep(encoder, texts[:200], (256, 512, 1024, 2048, 8192), 2)
    if name == "sentence-transformers fp32":  # slow: fewer passages and budgets
        row["token_budget_sweep"] = budget_sweep(encoder, texts[:100], (512, 2048, 8192), 1)
    if name == "sentence-transformers bf16":  # the evidence for BF16_TOKEN_BUDGET
        row["token_budget_sweep"] = budget_sweep(encoder, texts[:300], (2048, 4096, 8192), 2)
    if name == "sentence-transformers fp32":  # the same model through sentence-transformers' own batching
        started = time.perf_counter()
        encoder.model.encode(texts[:200], batch_size=32, normalize_embeddings=True)
        row["plain_batching_docs_per_second"] = round(len(texts[:200]) / (time.perf_counter() - started), 2)
    row["load_after"] = load()
    print(json.dumps({k: row.get(k) for k in ("backend", "docs_per_second", "fraction_of_peak", "load_before")}),
          flush=True)
    return row, vectors


def peak_fields(name: str, precision: str, gflops: float, peaks: dict[str, Any]) -> dict[str, Any]:
    """The micro-benchmark peak for a row's precision and the row's model GFLOP/s as a fraction of it (none for a
    static model, whose work is no matmul)."""
    peak = peak_for(peaks, precision)
    return {"peak_gops_for_precision": peak,
            "fraction_of_peak": round(gflops / peak, 3) if peak and not name.startswith("static") else None}


def measure_in_own_process(name: str, passages: int, peaks: dict[str, Any]) -> dict[str, Any]:
    """``measure_backend`` in a fresh process with glibc's allocator left alone (``--one-row``)."""
    proc = subprocess.run([sys.executable, __file__, "--one-row", name, "--passages", str(passages)],
                          capture_output=True, text=True, env={**os.environ, **BEFORE_ENV}, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"the row {name!r} failed in its own process:\n{proc.stderr[-3000:]}")
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    # the child had no micro-benchmark: the peak is this process's
    row.update({"own_process": True, "allocator_thresholds_raised": False,
                **peak_fields(name, row["precision"], row["model_gflops_per_second"], peaks)})
    return row


def measure_quality(row: dict[str, Any], first: np.ndarray, all_texts: list[str], ids: list[str],
                    dataset: Any) -> None:
    """nDCG@10 and R@100 of a backend: the passages not yet encoded and the queries, by a fresh encoder."""
    started = time.perf_counter()
    encoder = BACKENDS[row["backend"]][0]()
    rest = encoder.encode_documents(all_texts[len(first):], batch_size=32)
    queries = list(dataset.queries)
    row.update(ndcg(ids, np.vstack([first, rest]), encoder.encode_queries([dataset.queries[q] for q in queries]),
                    queries, dataset.qrels))
    row["quality_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps({k: row.get(k) for k in ("backend", "ndcg@10", "quality_seconds")}), flush=True)


def _static_tokenize(encoder: Any, texts: list[str], encode_seconds: float) -> tuple[float, float]:
    """Seconds the static encoder's tokenisation takes alone on ``texts`` and that as a share of its encode: its
    word-by-word path from an empty word cache where it has one (WordLlama), else its whole-text tokenizer."""
    words = getattr(encoder, "_words", None)
    if words is None:
        spent = _whole_text_tokenize(encoder, texts)
    else:
        words._ids.clear()
        started = time.perf_counter()
        encoder._tokenize([encoder.document_prompt + t for t in texts])
        spent = time.perf_counter() - started
    return round(spent, 3), round(spent / encode_seconds, 3)


def _whole_text_tokenize(encoder: Any, texts: list[str]) -> float:
    """Seconds of the tokenizer run over whole texts, as the static encoders did before the word cache."""
    prompted = [encoder.document_prompt + t for t in texts]
    started = time.perf_counter()
    encoder._tokenizer.encode_batch(prompted, add_special_tokens=False)
    return time.perf_counter() - started


def budget_sweep(encoder: Any, texts: list[str], budgets: tuple[int, ...], passes: int) -> dict[str, float]:
    """docs/s at several token budgets (padded tokens per batch), each the best of ``passes`` passes."""
    out = {}
    for budget in budgets:
        best = 0.0
        for _ in range(passes):
            started = time.perf_counter()
            encoder.encode(texts, token_budget=budget)
            best = max(best, len(texts) / (time.perf_counter() - started))
        out[str(budget)] = round(best, 2)
    return out


def op_profile(encoder: Any, texts: list[str]) -> dict[str, float]:
    """Share of ONNX Runtime kernel time per operator type, encoding ``texts`` with the encoder's model file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = encoder.threads
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "encoding-speed-profile")
    session = ort.InferenceSession(str(encoder._ensure_model_file()), options, providers=["CPUExecutionProvider"])
    # batches in turn through the profiled session (in parallel they would run on the single-threaded one)
    kept, encoder._session = encoder._session, session
    parallel, encoder.parallel_batches = encoder.parallel_batches, 1
    try:
        encoder.encode(texts)
    finally:
        encoder._session, encoder.parallel_batches = kept, parallel
    trace = Path(session.end_profiling())
    totals: dict[str, float] = {}
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            op = event["args"]["op_name"]
            totals[op] = totals.get(op, 0.0) + event["dur"]
    trace.unlink(missing_ok=True)
    whole = sum(totals.values()) or 1.0
    return {op: round(t / whole, 3) for op, t in sorted(totals.items(), key=lambda kv: -kv[1]) if t / whole >= 0.005}


# ----------------------------------------------------------------------------- 3./4. processes
def run(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = load()
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "load_before": load_before,
            "load_after": load(), "stdout": proc.stdout}


def fresh_env(work: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RETRIEVEKIT_ENCODER_PATH", "RETRIEVEKIT_INT8_RECIPE", "RETRIEVEKIT_MALLOC")}
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return {**env, "RETRIEVEKIT_CACHE": str(work / "cache"), "RETRIEVEKIT_HOME": str(work / "home"),
            "TQDM_DISABLE": "1", **extra}


def index_run(source: Path, collection: Path, env: dict[str, str]) -> dict[str, Any]:
    """`retrievekit index SOURCE COLLECTION --dense` timed, with the ingest seconds the CLI reports itself."""
    row = run([sys.executable, "-m", "retrievekit", "index", str(source), str(collection), "--dense", "--no-progress",
               "--json"], env)
    report = json.loads(row.pop("stdout"))
    row["ingest_seconds"], row["encode_seconds"] = report["seconds"], report["encode_seconds"]
    return row


def measure_indexing(work: Path, dataset: Any, limit: int | None) -> dict[str, Any]:
    from retrievekit import Collection
    from retrievekit.evaluation import evaluate

    out: dict[str, Any] = {}
    for label, extra in (("before (fp32)", {"RETRIEVEKIT_ENCODER_PATH": "fp32", **BEFORE_ENV}), ("after (auto)", {})):
        folder = work / label.split()[0]
        env = fresh_env(folder, **extra)
        source = DATA / "corpus.jsonl"
        if limit:  # a quick check of this script, not a measurement
            source = folder / "corpus.jsonl"
            lines = (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:limit]
            source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        row = index_run(source, folder / "col", env)
        col = Collection(folder / "col")
        queries = list(dataset.queries)
        results = col.search([dataset.queries[q] for q in queries], k=100, mode="dense")
        scores = evaluate(results.to_run(queries), dataset.qrels, ["ndcg@10", "recall@100"])
        row.update({"encoder_spec": col.index_config("dense")["encoder"],
                    "ndcg@10": round(scores["ndcg@10"], 6), "recall@100": round(scores["recall@100"], 6)})
        decisions = sorted((folder / "cache" / "encoder-paths").glob("*.json"))
        row["decision"] = json.loads(decisions[0].read_text()) if decisions else None
        out[label] = row
        print(json.dumps({"indexing": label, "seconds": row["seconds"], "ndcg@10": row["ndcg@10"],
                          "load_before": row["load_before"]}), flush=True)
    # A second collection on the same machine: the path decision and the ONNX exports are cached (copied
    # from the automatic run), the embedding cache is empty; what is left is the indexing itself.
    decided = work / "decided"
    env = fresh_env(decided)
    for part in ("encoder-paths", "onnx"):
        if (work / "after" / "cache" / part).is_dir():
            shutil.copytree(work / "after" / "cache" / part, decided / "cache" / part)
    row = index_run(source, decided / "col", env)
    out["after (auto, path decided before)"] = row
    print(json.dumps({"indexing": "after (auto, path decided before)", "seconds": row["seconds"],
                      "load_before": row["load_before"]}), flush=True)
    before, after = out["before (fp32)"], out["after (auto)"]
    out["speedup"] = round(before["seconds"] / after["seconds"], 2)
    out["speedup_path_decided_before"] = round(before["seconds"] / row["seconds"], 2)
    # the ingest alone (documents read, BM25 and dense segments written and committed), as the CLI times it: the
    # rest of the run is start-up (imports, model load) and the ONNX export for queries; the decision is inside
    out["ingest_speedup"] = round(before["ingest_seconds"] / after["ingest_seconds"], 2)
    out["spec_unchanged"] = before["encoder_spec"] == after["encoder_spec"]
    out["split"] = split(before, after)
    return out


def measure_demo(work: Path, limit: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, extra, model in (
            # the demo's encoder when issue 18 was filed: sentence-transformers MiniLM in fp32
            ("before (sentence-transformers fp32)", {"RETRIEVEKIT_ENCODER_PATH": "fp32", **BEFORE_ENV},
             ["--model", "minilm"]),
            ("fused int8", {"RETRIEVEKIT_INT8_RECIPE": "fused"}, []),
            ("after (default int8)", {}, [])):
        env = fresh_env(work / label.split("(")[-1].split()[0].strip(")"), **extra)
        row = run([sys.executable, "-m", "retrievekit", "demo", "--no-progress", "--json", *model,
                   *(["--limit", str(limit)] if limit else [])], env)
        report = json.loads(row.pop("stdout"))
        row.update({"documents": report.get("documents"), "index_seconds": round(report.get("index_seconds", 0), 2),
                    "encode_seconds": round(report.get("encode_seconds", 0), 2)})
        out[label] = row
        print(json.dumps({"demo": label, "seconds": row["seconds"], "load_before": row["load_before"]}), flush=True)
    after = out["after (default int8)"]["seconds"]
    out["speedup_vs_fused"] = round(out["fused int8"]["seconds"] / after, 2)
    out["speedup_vs_fp32"] = round(out["before (sentence-transformers fp32)"]["seconds"] / after, 2)
    out["split"] = split(out["before (sentence-transformers fp32)"], out["after (default int8)"])
    return out


def split(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """A run's encoding (the CLI's own encode_seconds: the dense index built at the commit, path decision included)
    against the rest of it (start-up, imports, model load and exports, reading, BM25, the commit's writes), before
    and after: what the encoder alone sped up, and the end-to-end factor the rest allows at that speed-up."""
    rest_before, rest_after = before["seconds"] - before["encode_seconds"], after["seconds"] - after["encode_seconds"]
    return {"encode_speedup": round(before["encode_seconds"] / after["encode_seconds"], 2),
            "other_seconds_before": round(rest_before, 2), "other_seconds_after": round(rest_after, 2),
            "other_share_before": round(rest_before / before["seconds"], 3),
            # the end-to-end factor had the encoding alone sped up as it did here and the rest stayed as it was
            # before: Amdahl's bound for an encoder-only change
            "end_to_end_bound": round(before["seconds"] / (rest_before + after["encode_seconds"]), 2)}


# ----------------------------------------------------------------------------- BENCHMARKS.md
def _f(value: Any, fmt: str = "{:,.2f}") -> str:
    return "—" if value is None else fmt.format(value)


def render_other_cpus(results: Path) -> str:
    """A table of the earlier runs kept as ``encoding-speed-<cpu>.json`` (each measured by the code of its time)."""
    rows = []
    for path in sorted(results.glob("encoding-speed-*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        by_name = {row["backend"]: row for row in r["results"]}
        auto_row = by_name.get("auto (sentence-transformers default)", {})
        int8 = next((row for name, row in by_name.items() if name.startswith("onnx-int8 (default")), {})
        static = by_name.get("static (wordllama)", {})
        fp32 = by_name.get("sentence-transformers fp32", {})
        rows.append(f"| {r['machine']['cpu']['model']} ({', '.join(r['machine']['cpu']['features'])}) | "
                    f"{r['started_at'][:10]} | `{path.name}` | {_f(fp32.get('docs_per_second'))} | "
                    f"{_f(auto_row.get('speedup_vs_sentence_transformers'))}× "
                    f"({(auto_row.get('decision') or {}).get('path', '?')}) | "
                    f"{_f(int8.get('speedup_vs_sentence_transformers'))}× | "
                    f"{_f(static.get('speedup_vs_sentence_transformers'), '{:,.0f}')}× |")
    if not rows:
        return ""
    return "\n".join([
        "Earlier runs on other CPUs (each by the code of its date; see the file's own rows for everything else):",
        "",
        "| CPU | date | result | sentence-transformers fp32 docs/s | automatic choice | ONNX int8 default | "
        "static (wordllama) |",
        "|---|---|---|---|---|---|---|",
        *rows]) + "\n"


def render(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section of a result (report.py calls this)."""
    cpu = result["machine"]["cpu"]
    rows = result["results"]
    by_name = {r["backend"]: r for r in rows}
    lines = [
        "## Dense encoding at the hardware's limit (issue 18)",
        "",
        *([] if result.get("complete", True) else [
            "**This run was cut short: the steps below without numbers did not run.**", ""]),
        f"`python benchmarks/run_encoding_speed.py` ({result['started_at']} to {result['finished_at']}) on "
        f"{cpu['model']} ({cpu['physical_cores']} cores; {', '.join(cpu['features'])}; torch kernels "
        f"{cpu['torch_capability']}), load average {result['load_average_start'][0]} at the start and "
        f"{result['load_average_end'][0]} at the end (per-step loads are in the result file). MiniLM-L6 "
        f"(all-MiniLM-L6-v2, 256-token window) on the first {result['passages']:,} SciFact passages, "
        f"{result['model_gflop_per_passage']} GFLOP per passage (counted from the real token counts); nDCG@10 and "
        "R@100 over the SciFact test queries with the whole corpus encoded by the same path.",
        "",
        "Matrix-multiply peak on all cores (the best of a 2048³ GEMM and MiniLM's 8192×384×1536 FFN shape):",
        "",
        "| kernel | precision | GOP/s, 2048³ | GOP/s, FFN shape |",
        "|---|---|---|---|",
    ]
    for kernel, peak in result["matmul_peaks"].items():
        if "gops" in peak:
            g = list(peak["gops"].values())
            lines.append(f"| {kernel} | {peak['precision']} | {g[0]:,.1f} | {g[1]:,.1f} |")
        else:
            lines.append(f"| {kernel} | {peak['precision']} | does not run: {peak.get('error', '')[:80]} | |")
    lines += [
        "",
        "| backend | precision | docs/s | × sentence-transformers fp32 | model GFLOP/s | of the precision's peak "
        "| nDCG@10 | Δ nDCG@10 | R@100 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        own = " (own process)" if r.get("own_process") else ""
        lines.append(f"| {r['backend']}{own} | {r['precision']} | {r['docs_per_second']:,.2f} | "
                     f"{_f(r.get('speedup_vs_sentence_transformers'))}× | {r['model_gflops_per_second']:,.1f} | "
                     f"{_f(r.get('fraction_of_peak'), '{:.0%}')} | {_f(r.get('ndcg@10'), '{:.4f}')} | "
                     f"{_f(r.get('ndcg@10_delta'), '{:+.4f}')} | {_f(r.get('recall@100'), '{:.3f}')} |")
    auto_row = by_name.get("auto (sentence-transformers default)")
    st = by_name.get("sentence-transformers fp32")
    notes = []
    if auto_row:
        notes.append(f"- The automatic choice, made in this run in {auto_row['decision_seconds']} s (the int8 export "
                     f"already quantised): {auto_row['decision']['reason']}.")
        same = {"onnx-int8": INT8_DEFAULT, "bf16": "sentence-transformers bf16",
                "fp32": "sentence-transformers fp32"}.get(auto_row["decision"]["path"])
        if same in by_name:
            twin = by_name[same]
            notes.append(f"- The automatic choice runs the encoder of the row '{same}' ({twin['docs_per_second']:,.2f} "
                         f"docs/s there, {auto_row['docs_per_second']:,.2f} in its own row); load average "
                         f"{twin['load_before'][0]} → {twin['load_after'][0]} during that row, "
                         f"{auto_row['load_before'][0]} → {auto_row['load_after'][0]} during the automatic one.")
    onnx_fp32 = by_name.get("onnx fp32")
    if onnx_fp32 and st and "ndcg@10" in onnx_fp32 and "ndcg@10" in st:
        notes.append(f"- nDCG of the sentence-transformers fp32 and automatic rows comes from their collections "
                     f"(`Collection.search`), of the others from brute-force cosine over "
                     f"the vectors encoded here: onnx fp32 computes the same function as sentence-transformers fp32, "
                     f"so their difference ({onnx_fp32['ndcg@10'] - st['ndcg@10']:+.4f}) is that of the two "
                     f"measurements, not of the encoders.")
    if onnx_fp32 and (onnx_fp32.get("fraction_of_peak") or 0) > 1:
        notes.append("- ONNX Runtime's fp32 kernels beat the torch.matmul fp32 micro-benchmark, so its fraction "
                     "exceeds 1: the torch figure is not the hardware's fp32 ceiling.")
    if st and "plain_batching_docs_per_second" in st:
        notes.append(f"- sentence-transformers' own `encode` (batches of 32) on the first 200 of them: "
                     f"{st['plain_batching_docs_per_second']:,.2f} docs/s; token-budget batching of the same fp32 "
                     f"model by padded tokens per batch: " + ", ".join(
                         f"{k}: {v:,.2f}" for k, v in st.get("token_budget_sweep", {}).items()) + " docs/s (100 "
                     "passages).")
    bf16 = by_name.get("sentence-transformers bf16")
    kept, bf16_alone = by_name.get(FP32_KEPT), by_name.get(BF16_DEFAULT_MALLOC)
    if st and kept and bf16 and bf16_alone:
        notes.append(f"- glibc's allocator (core/allocator.py): the rows marked \"own process\" ran with its "
                     f"thresholds left alone, as before issue 18; the others in a process where they are raised. "
                     f"fp32 {st['docs_per_second']:,.2f} → {kept['docs_per_second']:,.2f} docs/s "
                     f"({kept['docs_per_second'] / st['docs_per_second']:.2f}×), bf16 "
                     f"{bf16_alone['docs_per_second']:,.2f} → {bf16['docs_per_second']:,.2f} "
                     f"({bf16['docs_per_second'] / bf16_alone['docs_per_second']:.2f}×): the rest of the automatic "
                     f"choice's factor is bf16's own ({bf16_alone['docs_per_second'] / st['docs_per_second']:.2f}× "
                     "with the allocator as before).")
    if bf16 and "token_budget_sweep" in bf16:
        notes.append("- The bf16 model by padded tokens per batch: " + ", ".join(
            f"{k}: {v:,.2f}" for k, v in bf16["token_budget_sweep"].items()) + " docs/s (300 passages; bf16 batches "
            "4,096).")
    int8 = by_name.get(INT8_DEFAULT)
    in_turn = by_name.get(INT8_IN_TURN)
    if int8 and in_turn:
        notes.append(f"- The default int8 encoder runs as many batches at once as there are cores, each on one core "
                     f"(one single-threaded ONNX Runtime session; a lone batch, such as a query, still gets every "
                     f"core): {int8['docs_per_second']:,.2f} docs/s against {in_turn['docs_per_second']:,.2f} with "
                     f"its batches in turn on all cores "
                     f"({int8['docs_per_second'] / in_turn['docs_per_second']:.2f}×), the same vectors (largest "
                     f"difference {in_turn.get('max_abs_difference_to_default', float('nan')):.1g}).")
    if int8:
        notes.append(f"- {int8['backend']} by padded tokens per batch: " + ", ".join(
            f"{k}: {v:,.2f}" for k, v in int8.get("token_budget_sweep", {}).items()) + " docs/s (200 passages; "
            "ONNX encoders batch 512).")
        notes.append(f"- Tokenising the {result['passages']:,} passages takes {int8['tokenize_seconds']} s, "
                     f"{int8['tokenize_share']:.1%} of the default int8 encode: overlapping it with inference could "
                     "save at most that, so it is not done.")
        notes.append("- Where the default int8 model spends its kernel time: " + ", ".join(
            f"{op} {share:.0%}" for op, share in int8.get("op_time_share", {}).items()) + ".")
    indexing, demo = result.get("indexing_scifact"), result.get("first_demo")
    if indexing:
        b, a = indexing["before (fp32)"], indexing["after (auto)"]
        notes.append(f"- `retrievekit index scifact/corpus.jsonl COL --dense` (empty cache each): "
                     f"{b['seconds']:,.1f} s with RETRIEVEKIT_ENCODER_PATH=fp32, {a['seconds']:,.1f} s with the "
                     f"automatic choice ({indexing['speedup']}×; loads {b['load_before'][0]} / "
                     f"{a['load_before'][0]}); nDCG@10 {b['ndcg@10']:.4f} → {a['ndcg@10']:.4f}; stored encoder "
                     f"spec {'unchanged' if indexing['spec_unchanged'] else 'CHANGED'}."
                     + (f" A second collection, the path already decided (the decision and ONNX exports cached, "
                        f"no embeddings): {indexing['after (auto, path decided before)']['seconds']:,.1f} s "
                        f"({indexing['speedup_path_decided_before']}×)."
                        if "speedup_path_decided_before" in indexing else "")
                     + (f" The ingest alone, as the CLI times it (documents read, segments encoded, written and "
                        "committed, the path decision included; not start-up, model load or the ONNX export for "
                        "queries): "
                        f"{b['ingest_seconds']:,.1f} → {a['ingest_seconds']:,.1f} s ({indexing['ingest_speedup']}×), "
                        f"so {b['seconds'] - b['ingest_seconds']:,.1f} and {a['seconds'] - a['ingest_seconds']:,.1f} s "
                        "of the runs are fixed costs that do not shrink with the encoder."
                        if "ingest_speedup" in indexing else ""))
    if demo:
        a, fused_demo = demo["after (default int8)"], demo["fused int8"]
        f32 = demo["before (sentence-transformers fp32)"]
        notes.append(f"- First `retrievekit demo` (empty cache; {a['documents']:,} docstrings; export and "
                     f"quantisation included): {f32['seconds']:,.1f} s with sentence-transformers MiniLM in fp32 "
                     "(`--model minilm`, RETRIEVEKIT_ENCODER_PATH=fp32: the demo's encoder when issue 18 was filed), "
                     f"{a['seconds']:,.1f} s with its default int8 MiniLM ({demo['speedup_vs_fp32']}×), "
                     f"{fused_demo['seconds']:,.1f} s with the fused int8 recipe.")
    for r in rows:
        if r["backend"].startswith("static") and "tokenize_share" in r:
            if r.get("word_cache"):
                notes.append(f"- {r['backend']}: tokenised word by word through a cache (identical ids; a Llama-2 "
                             f"tokenizer runs BPE over the whole text otherwise): {r['tokenize_seconds']} s of the "
                             f"{r['seconds']} s encode ({r['tokenize_share']:.0%}) from an empty cache, against "
                             f"{r['whole_text_tokenize_seconds']} s for whole-text tokenisation on "
                             f"{result['threads']} threads ({r['tokenize_seconds_one_thread']} s word by word on "
                             "one, TOKENIZERS_PARALLELISM=false); the token vectors are summed as one sparse "
                             "count-matrix product.")
                continue
            notes.append(f"- {r['backend']}: its tokenizer alone takes {r['tokenize_seconds']} s of the "
                         f"{r['seconds']} s encode ({r['tokenize_share']:.0%}) on {result['threads']} threads and "
                         f"{r['tokenize_seconds_one_thread']} s on one (TOKENIZERS_PARALLELISM=false): a static "
                         "model is tokenizer-bound, so its docs/s scale with cores and text length, not with the "
                         "CPU's vector units" + (f"; distilled from MiniLM in {r['distil_seconds']} s"
                                                  if r.get("distil_seconds") else "") + ".")
    wordllama = by_name.get("static (wordllama)")
    checks = []
    if auto_row and st:
        checks.append(f"automatic choice {auto_row['speedup_vs_sentence_transformers']}× (target ≥ 3×) at "
                      f"{_f(auto_row.get('ndcg@10_delta'), '{:+.4f}')} nDCG@10 (target ≥ −0.005)")
    if int8:
        checks.append(f"ONNX int8 {int8['speedup_vs_sentence_transformers']}× (target ≥ 2×)")
    if wordllama:
        checks.append(f"static {wordllama['speedup_vs_sentence_transformers']:,.0f}× (target ≥ 100×)")
    if auto_row and indexing and demo:
        checks.append(f"indexing {indexing['speedup']}× "
                      + (f"({indexing['speedup_path_decided_before']}× with the path decided before) "
                         if "speedup_path_decided_before" in indexing else "")
                      + (f"(its ingest {indexing['ingest_speedup']}×) " if "ingest_speedup" in indexing else "")
                      + f"and the first demo {demo['speedup_vs_fp32']}× against the "
                      f"automatic choice's {auto_row['speedup_vs_sentence_transformers']}× in encoding (target: the "
                      "same factor; both include one-time costs: the path decision, the ONNX export for torch-free "
                      "queries, the demo's export)")
    if checks:
        notes.append("- Against issue 18's targets: " + "; ".join(checks) + ".")
    for what, run_result in (("indexing", indexing), ("first demo", demo)):
        part = (run_result or {}).get("split")
        if part:
            notes.append(f"- Where the {what} time goes (the CLI's encode_seconds: the dense index built at the "
                         f"commit, path decision included): the encoding itself sped up {part['encode_speedup']}×; "
                         f"the rest of the run (start-up, imports, model load and exports, reading, BM25, writes) "
                         f"took {part['other_seconds_before']:,.1f} s before ({part['other_share_before']:.0%} of "
                         f"the run) and {part['other_seconds_after']:,.1f} s after. With that rest unchanged, an "
                         f"encoder {part['encode_speedup']}× faster can make the whole run at most "
                         f"{part['end_to_end_bound']}× faster (Amdahl's law).")
    return "\n".join(lines + [""] + notes) + "\n"


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-indexing", action="store_true")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--backends", help="comma-separated subset of the backend names")
    parser.add_argument("--limit", type=int, help="index only this many documents (a quick check of the script)")
    parser.add_argument("--out", type=Path, default=RESULTS / "encoding-speed.json")
    parser.add_argument("--one-row", metavar="BACKEND", help=argparse.SUPPRESS)  # measure_in_own_process's child
    args = parser.parse_args()
    if args.one_row:
        import torch

        from retrievekit.core.cpu import physical_cores

        _backends()
        torch.set_num_threads(physical_cores())
        texts = corpus()[1][: args.passages]
        row, _ = measure_backend(args.one_row, texts, model_flops(texts), {})
        print(json.dumps(row))
        return

    import torch

    from retrievekit.core.cpu import cpu_info
    from retrievekit.evaluation import load_beir

    _backends()
    cpu = cpu_info(with_torch=True)
    threads = cpu.physical_cores
    torch.set_num_threads(threads)
    from retrievekit.core.allocator import keep_freed_memory

    raised = keep_freed_memory()  # what retrievekit's encoders do at their first encode; the matmul peaks gain too
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_start = load()
    print(f"CPU {cpu.model}: {cpu.summary()['features']}, {threads} cores; load {load_start}", flush=True)
    peaks = matmul_peaks(threads)
    print(json.dumps({k: v.get("peak") for k, v in peaks.items()}), flush=True)

    ids, all_texts = corpus()
    texts = all_texts[: args.passages]
    flops = model_flops(texts)
    dataset = load_beir(DATA)
    names = args.backends.split(",") if args.backends else list(BACKENDS)
    out: dict[str, Any] = {
        "started_at": started_at, "finished_at": None, "complete": False,
        "machine": {"cpu": cpu.summary(), "platform": platform.platform(), "python": platform.python_version(),
                    "packages": {p: version(p) for p in ("onnxruntime", "torch", "sentence-transformers",
                                                         "transformers")}},
        "allocator_thresholds_raised": raised,
        "limit": args.limit, "load_average_start": load_start, "load_average_end": None, "threads": threads,
        "passages": len(texts), "model_gflop_per_passage": round(flops / len(texts) / 1e9, 3),
        "matmul_peaks": peaks, "results": [], "indexing_scifact": None, "first_demo": None}

    def save(complete: bool = False) -> None:
        """Write what is measured so far (steps run longest last, so a cut-short run keeps the main numbers)."""
        rows = out["results"]
        indexing = out["indexing_scifact"]
        for row in rows:  # the rows measured through `retrievekit index` take their quality from its collections
            source = {"sentence-transformers fp32": "before (fp32)",
                      "auto (sentence-transformers default)": "after (auto)"}.get(row["backend"])
            if indexing and source:
                row.update({k: indexing[source][k] for k in ("ndcg@10", "recall@100")})
        base = next((r for r in rows if r["backend"] == "sentence-transformers fp32"), None)
        for r in rows:
            if base:
                r["speedup_vs_sentence_transformers"] = round(r["docs_per_second"] / base["docs_per_second"], 2)
                if "ndcg@10" in r and "ndcg@10" in base:
                    r["ndcg@10_delta"] = round(r["ndcg@10"] - base["ndcg@10"], 4)
        out.update({"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "complete": complete,
                    "load_average_end": load()})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")

    # the auto row decides in an empty decision cache, so this run measures the check it makes
    decisions = Path(tempfile.mkdtemp(prefix="encoder-paths-"))
    os.environ["RETRIEVEKIT_CACHE"] = str(decisions)  # the ONNX exports are redone in it too (not timed)
    first_vectors = {}
    for name in names:
        if name in OWN_PROCESS:
            row = measure_in_own_process(name, len(texts), peaks)
        else:
            row, first_vectors[name] = measure_backend(name, texts, flops, peaks)
        out["results"].append(row)
    if INT8_IN_TURN in first_vectors and INT8_DEFAULT in first_vectors:
        in_turn = next(r for r in out["results"] if r["backend"] == INT8_IN_TURN)
        in_turn["max_abs_difference_to_default"] = float(np.abs(first_vectors[INT8_IN_TURN]
                                                                - first_vectors[INT8_DEFAULT]).max())
    save()
    work = Path(tempfile.mkdtemp(prefix="encoding-speed-"))
    if not args.skip_indexing:
        out["indexing_scifact"] = measure_indexing(work / "indexing", dataset, args.limit)
        save()
    if not args.skip_demo:
        out["first_demo"] = measure_demo(work / "demo", args.limit)
        save()
    shutil.rmtree(work, ignore_errors=True)
    if not args.skip_quality:
        for row in out["results"]:
            if BACKENDS[row["backend"]][2] == "here":
                n = args.limit or len(ids)  # --limit: a quick check of the script, not a measurement
                measure_quality(row, first_vectors[row["backend"]], all_texts[:n], ids[:n], dataset)
                save()
    shutil.rmtree(decisions, ignore_errors=True)
    save(complete=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
