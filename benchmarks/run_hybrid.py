"""BM25 vs dense (all-MiniLM-L6-v2) vs hybrid fusion on every English set in ../shared/data, through the
`retrievekit eval --json` contract, plus fusion weights tuned on a dev split where the set has one.

    python benchmarks/run_hybrid.py [--sets scifact,cosqa] [--model minilm]

Writes benchmarks/results/hybrid_<set>.json (the eval report: every system, significance against BM25) and
benchmarks/results/hybrid_tuned.json. Collections are kept in benchmarks/work/ and embeddings in the embedding
cache, so a second run skips indexing and encoding (run benchmarks/embed_corpora.py first to fill the cache).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from datasets_en import ENGLISH_SETS, VARIANTS

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORK = HERE / "work"

SYSTEMS = [
    "lucene",  # BM25 (Anserini defaults), the base of the significance tests
    "dense",
    "hybrid",  # the library's default fusion
    "hybrid:method=rrf,k=60",
    "hybrid:method=convex,w=0.5,norm=minmax",
    "hybrid:method=convex,w=0.5,norm=zscore",
]
DEV_SPLITS = {"scifact": "train", "cosqa": "dev"}


def run_eval(name: str, model: str, systems: list[str], split: str | None = None) -> dict:
    base, analyzer = VARIANTS.get(name, (name, "lucene-english"))
    folder, test_split, corpus = ENGLISH_SETS[base]
    cmd = [sys.executable, "-m", "retrievekit", "eval", str(folder), "--split", split or test_split,
           "--analyzer", analyzer,
           "--collection", str(WORK / f"hybrid-{name}-{model.replace(':', '_')}"), "--model", model,
           "--no-progress", "--json"]
    if corpus != "corpus.jsonl":
        cmd += ["--corpus", corpus]
    for s in systems:
        cmd += ["--system", s]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    report["command"] = " ".join(["retrievekit", *cmd[3:]])
    return report


def tune_on_dev(name: str, model: str) -> dict:
    """Tune convex weights/normalisation and RRF k on the dev split, then evaluate that choice on test."""
    from retrievekit import Collection
    from retrievekit.evaluation import evaluate, load_beir
    from retrievekit.evaluation.tuning import tune_fusion
    from retrievekit.retrieval.fusion import fuse

    folder, test_split, corpus = ENGLISH_SETS[name]
    col = Collection(WORK / f"hybrid-{name}-{model.replace(':', '_')}")
    bm25, dense = col.retriever("bm25"), col.retriever("dense")
    out: dict = {"dataset": name, "dev_split": DEV_SPLITS[name]}
    dev = load_beir(folder, split=DEV_SPLITS[name], corpus=corpus)
    test = load_beir(folder, split=test_split, corpus=corpus)
    for method in ("convex", "rrf"):
        lists = [r.search(list(dev.queries.values()), 1000) for r in (bm25, dense)]
        best = tune_fusion(lists, list(dev.queries), dev.qrels, method=method)
        params = {k: v for k, v in best.items() if k not in ("method", "score", "metric")}
        lists = [r.search(list(test.queries.values()), 1000) for r in (bm25, dense)]
        fused = fuse(lists, method, **params)
        score = evaluate(fused.to_run(list(test.queries)), test.qrels, ["ndcg@10", "recall@100"]).mean
        out[method] = {"tuned": params, "dev_ndcg@10": round(best["score"], 4),
                       "test": {k: round(float(v), 4) for k, v in score.items()}}
    return out


def select_default(model: str) -> dict:
    """One fusion setting for every collection: the candidate with the best mean dev nDCG@10 over the sets that
    have a dev split (scifact train, cosqa dev). No test qrels are read."""
    from retrievekit import Collection
    from retrievekit.evaluation import evaluate, load_beir
    from retrievekit.retrieval.fusion import fuse

    candidates = [{"method": "convex", "weights": [w / 10, 1 - w / 10], "normalization": norm}
                  for norm in ("minmax", "zscore", "dbsf") for w in range(1, 10)]
    candidates += [{"method": "rrf", "k": k, "weights": [w / 10, 1 - w / 10]} for k in (20, 60) for w in range(1, 10)]
    scores = [[] for _ in candidates]
    for name, split in DEV_SPLITS.items():
        folder, _, corpus = ENGLISH_SETS[name]
        col = Collection(WORK / f"hybrid-{name}-{model.replace(':', '_')}")
        dev = load_beir(folder, split=split, corpus=corpus)
        lists = [col.retriever(m).search(list(dev.queries.values()), 1000) for m in ("bm25", "dense")]
        for i, cand in enumerate(candidates):
            params = {k: v for k, v in cand.items() if k != "method"}
            run = fuse(lists, cand["method"], **params).to_run(list(dev.queries))
            scores[i].append(float(evaluate(run, dev.qrels, ["ndcg@10"]).mean["ndcg@10"]))
    table = [{**c, "dev_ndcg@10": dict(zip(DEV_SPLITS, s)), "mean": round(sum(s) / len(s), 4)}
             for c, s in zip(candidates, scores)]
    table.sort(key=lambda row: -row["mean"])
    return {"selected": table[0], "candidates": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join([*ENGLISH_SETS, *VARIANTS]))
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--no-tuning", action="store_true")
    parser.add_argument("--select-default", action="store_true",
                        help="only choose the library's default fusion on the dev splits (hybrid_default.json)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    WORK.mkdir(exist_ok=True)
    if args.select_default:
        choice = select_default(args.model)
        (RESULTS / "hybrid_default.json").write_text(json.dumps(choice, indent=1))
        print(json.dumps(choice["candidates"][:8], indent=1))
        return
    for name in args.sets.split(","):
        report = run_eval(name, args.model, SYSTEMS)
        report["dataset_name"] = name
        report["analyzer_name"] = VARIANTS.get(name, (name, "lucene-english"))[1]
        (RESULTS / f"hybrid_{name}.json").write_text(json.dumps(report, indent=1))
        row = {s["system"]: round(s["ndcg@10"], 4) for s in report["systems"]}
        print(f"{name}: {row}", flush=True)
    if not args.no_tuning:
        tuned = [tune_on_dev(name, args.model) for name in DEV_SPLITS if name in args.sets.split(",")]
        (RESULTS / "hybrid_tuned.json").write_text(json.dumps(tuned, indent=1))
        print(json.dumps(tuned, indent=1))


if __name__ == "__main__":
    main()
