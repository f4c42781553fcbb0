"""Encoding throughput and quality of the encoder backends, side by side in one run.

Throughput: docs/s encoding the same 1,000 SciFact passages (title + " " + text, the model window 256 tokens for
MiniLM) with each backend, after one warm-up batch. Quality: nDCG@10 of each backend's dense retrieval over the
whole SciFact test set through `retrievekit eval --mode dense --model BACKEND --json` (embeddings cached, so a rerun
only re-measures throughput).

    python benchmarks/run_encoders.py [--passages 1000] [--threads 2] [--skip-quality]

Writes benchmarks/results/encoders.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "scifact"
RESULTS = HERE / "results"

BACKENDS = {
    "sentence-transformers": "minilm",
    "onnx": "onnx:minilm",
    "onnx-int8": "onnx-int8:minilm",
    "static (wordllama)": "wordllama",
}


def passages(n: int) -> list[str]:
    from retrievekit.core.document import index_text
    from retrievekit.ingest import read_documents

    out = []
    for doc in read_documents(DATA / "corpus.jsonl"):
        out.append(index_text(doc, ["title", "text"]))
        if len(out) == n:
            break
    return out


def throughput(model: str, texts: list[str], threads: int) -> dict:
    import torch

    from retrievekit.encoders import get_encoder

    torch.set_num_threads(threads)
    started = time.perf_counter()
    encoder = get_encoder(model)
    load_seconds = time.perf_counter() - started
    encoder.encode_documents(texts[:32])  # warm-up (first-call allocations, ONNX graph optimisation)
    started = time.perf_counter()
    encoder.encode_documents(texts, batch_size=32)
    seconds = time.perf_counter() - started
    return {"model": model, "spec": encoder.spec(), "passages": len(texts), "seconds": round(seconds, 3),
            "docs_per_second": round(len(texts) / seconds, 2), "load_seconds": round(load_seconds, 2)}


def quality(model: str) -> dict:
    cmd = [sys.executable, "-m", "retrievekit", "eval", str(DATA), "--mode", "dense", "--model", model,
           "--no-progress", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    return {k: report[k] for k in ("ndcg@10", "recall@100", "queries_per_second", "index_seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    texts = passages(args.passages)
    rows = []
    for name in args.backends.split(","):
        model = BACKENDS[name]
        row = {"backend": name, **throughput(model, texts, args.threads)}
        if not args.skip_quality:
            row.update(quality(model))
        rows.append(row)
        print(json.dumps({k: row.get(k) for k in ("backend", "docs_per_second", "ndcg@10")}), flush=True)
    base = next((r for r in rows if r["backend"] == "sentence-transformers"), None)
    for r in rows:
        if base:
            r["speedup_vs_sentence_transformers"] = round(r["docs_per_second"] / base["docs_per_second"], 2)
            if "ndcg@10" in r and "ndcg@10" in base:
                r["ndcg@10_delta"] = round(r["ndcg@10"] - base["ndcg@10"], 4)
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
           "threads": args.threads, "passages": args.passages, "results": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "encoders.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
