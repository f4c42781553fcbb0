"""Supervised fine-tuning of MiniLM on SciFact's `train` judgements, scored on its `test` split.

scifact train qrels → `from_qrels` over a collection of the corpus → `mine_negatives` (default: MiniLM itself as the
miner, 3 per query, NV-Retriever's false-negative margin of 5% of the positive's score; examples left with fewer are
dropped unless --keep-short) → `train_encoder("minilm", loss="mnrl", epochs=2, learning_rate=3e-5, max_length=256)` →
`retrievekit eval --mode dense --model FOLDER` on the test split (a fresh dense index of the corpus encoded by the
trained model). Base MiniLM scores nDCG@10 0.6451 there (BENCHMARKS.md).

    python benchmarks/run_train_supervised.py                 # the benchmark: every train query, the whole corpus
    python benchmarks/run_train_supervised.py --limit 50      # a smoke run: 50 train queries, and the test split
                                                              # scored on a small corpus (judged docs + --eval-docs)

Writes benchmarks/results/train_supervised.json (a --limit run: train_supervised_smoke.json, labelled smoke).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "scifact"
RESULTS = HERE / "results"
WORK = HERE / "work" / "train_supervised"
BASE_NDCG10 = 0.6451  # MiniLM (all-MiniLM-L6-v2) on the full SciFact test split


def corpus_collection(path: Path, dense: bool):  # type: ignore[no-untyped-def]
    """The scifact corpus as a collection: BM25, plus a MiniLM dense index when mining needs one (its vectors come
    from the embedding cache once `benchmarks/embed_corpora.py --sets scifact` has run)."""
    from retrievekit import Collection
    from retrievekit.ingest import read_documents

    if path.is_dir():
        collection = Collection(path)
    else:
        collection = Collection.create(path)
        collection.add(read_documents(DATA / "corpus.jsonl"))
    if dense and not collection.has_index("dense"):
        collection.add_dense_index("minilm", progress=True)
    return collection


def small_beir(folder: Path, n_docs: int, seed: int) -> Path:
    """The test split over a smaller corpus: every judged document plus ``n_docs`` others drawn at random."""
    test = [line.split("\t") for line in (DATA / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    judged = {row[1] for row in test}
    lines = (DATA / "corpus.jsonl").read_text().splitlines()
    others = [line for line in lines if json.loads(line)["_id"] not in judged]
    keep = [line for line in lines if json.loads(line)["_id"] in judged] + random.Random(seed).sample(others, n_docs)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("\n".join(keep) + "\n")
    (folder / "queries.jsonl").write_text((DATA / "queries.jsonl").read_text())
    (folder / "qrels" / "test.tsv").write_text((DATA / "qrels" / "test.tsv").read_text())
    return folder


def evaluate(data: Path, model: str) -> dict:
    cmd = [sys.executable, "-m", "retrievekit", "eval", str(data), "--mode", "dense", "--model", model,
           "--no-progress", "--json"]
    started = time.perf_counter()
    # a fresh embedding cache: the cache is keyed by the model's name (here a folder path), not its weights, so a
    # retrained folder at the same path would reuse the vectors of the model it replaced
    with tempfile.TemporaryDirectory(dir=WORK) as cache:
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "RETRIEVEKIT_CACHE": cache})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    return {"ndcg@10": report["ndcg@10"], "recall@100": report["recall@100"],
            "eval_seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="smoke run: only the first N train queries, a small eval corpus")
    parser.add_argument("--eval-docs", type=int, default=500, help="smoke run: unjudged documents in the corpus")
    parser.add_argument("--negatives", type=int, default=3, help="mined negatives per example (default 3)")
    parser.add_argument("--miner", choices=("bm25", "dense", "hybrid"), default="dense",
                        help="the retriever that mines negatives (dense: MiniLM itself; default dense)")
    parser.add_argument("--margin", type=float, default=0.05,
                        help="false-negative margin: drop candidates scoring within this fraction of the positive")
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep-short", action="store_true",
                        help="keep examples with fewer mined negatives than --negatives (the trainer then uses the "
                        "fewest any example has, possibly none)")
    parser.add_argument("--skip-eval", action="store_true", help="train only (timing)")
    args = parser.parse_args()

    from retrievekit.evaluation.datasets import load_beir
    from retrievekit.training.builders import from_qrels
    from retrievekit.training.encoder_training import train_encoder
    from retrievekit.training.mining import mine_negatives

    smoke = args.limit is not None
    load_at_start = round(os.getloadavg()[0], 2)  # other work on the cores slows training: say how much
    collection = corpus_collection(WORK / "bm25", dense=args.miner != "bm25")
    train_split = load_beir(DATA, "train")
    qids = sorted(train_split.qrels)[: args.limit] if smoke else sorted(train_split.qrels)
    started = time.perf_counter()
    data = from_qrels(collection, train_split.queries, {q: train_split.qrels[q] for q in qids})
    mined = mine_negatives(data, collection, mode=args.miner, per_query=args.negatives, margin=args.margin)
    if not args.keep_short:
        # the trainer uses the fewest negatives any example has for every example: one example left without mined
        # negatives (its positive not retrieved, or every candidate within the margin) would turn them all off
        full = [e for e in mined if len(e.negatives) >= args.negatives]
        dropped = len(mined) - len(full)
        mined = type(mined)(full, stats={**mined.stats, "dropped_short_of_negatives": dropped})
    data_seconds = time.perf_counter() - started
    print(f"{len(mined)} examples ({mined.stats}) in {data_seconds:.1f} s", flush=True)

    out = WORK / ("model-smoke" if smoke else "model")
    started = time.perf_counter()
    train_encoder("minilm", mined, out, loss="mnrl", epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, max_length=args.max_length, seed=args.seed,
                  overwrite=True, progress=True)
    train_seconds = time.perf_counter() - started
    card = json.loads((out / "model_card.json").read_text())
    print(f"trained in {train_seconds:.1f} s ({card['global_step']} steps)", flush=True)

    result: dict = {
        "run": "SMOKE RUN (not the benchmark): --limit train queries, test split on a reduced corpus" if smoke
        else "benchmark: every scifact train query, full scifact test split",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_start": load_at_start, "python": platform.python_version(),
                    "device": card["device"]},
        "recipe": {"base": "minilm", "loss": "mnrl", "epochs": args.epochs, "batch_size": args.batch_size,
                   "max_length": args.max_length, "learning_rate": args.learning_rate,
                   "mined_negatives": args.negatives, "miner": args.miner, "margin": args.margin,
                   "seed": args.seed},
        "train_queries": len(qids), "examples": len(mined), "data_stats": mined.stats,
        "hard_negatives_per_example": card["data"]["negatives_per_example"], "data_seconds": round(data_seconds, 1),
        "train_seconds": round(train_seconds, 1), "seconds_per_example": round(train_seconds / len(mined), 3),
        "steps": card["global_step"], "loss_curve": card["loss_curve"],
    }
    if not args.skip_eval:
        if smoke:
            eval_data = small_beir(WORK / "scifact-small", args.eval_docs, args.seed)
            result["eval_corpus_docs"] = len((eval_data / "corpus.jsonl").read_text().splitlines())
            result["base"] = evaluate(eval_data, "minilm")
        else:
            eval_data = DATA
            result["base"] = {"ndcg@10": BASE_NDCG10, "source": "BENCHMARKS.md (MiniLM, scifact test)"}
        result["trained"] = evaluate(eval_data, str(out))
        result["ndcg@10_delta"] = round(result["trained"]["ndcg@10"] - result["base"]["ndcg@10"], 4)
    RESULTS.mkdir(exist_ok=True)
    name = "train_supervised_smoke.json" if smoke else "train_supervised.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result.get(k) for k in ("examples", "train_seconds", "base", "trained")}), flush=True)


if __name__ == "__main__":
    main()
