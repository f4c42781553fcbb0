"""A reranker built offline: a cross-encoder trained here from the offline MiniLM's weights (no cross-encoder is
downloaded) on SciFact's `train` judgements, reranking the top 100 of hybrid search on the `test` split.

scifact train qrels, less `--dev-fraction` of its queries held out → `from_qrels` → negatives mined from the same
hybrid first stage it will rerank (positives of the query excluded; `--margin` off by default: SciFact's claims have
one or two relevant abstracts, so unjudged positives among the top candidates are rare) → `train_reranker("minilm",
loss=...)` → `tune_blend` on the held-out train queries: the reranker's share of the final score against hybrid's
(z-normalised per query), recorded in the model's card → hybrid (BM25 + MiniLM, retrievekit's default fusion) top
`--depth` reranked on the test split, by the reranker alone and blended as tuned, each scored against hybrid alone
with a paired randomization test. Latency: the reranking stage alone, one query at a time, `--depth` candidates
each, on `--latency-queries` queries.

    python benchmarks/run_train_reranker.py                 # the benchmark
    python benchmarks/run_train_reranker.py --limit 40 --test-queries 30 --tag smoke   # a smoke run

Writes benchmarks/results/train_reranker.json (or train_reranker_<tag>.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import shutil
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "scifact"
RESULTS = HERE / "results"
WORK = HERE / "work" / "train_reranker"


def collection_at(path: Path):  # type: ignore[no-untyped-def]
    """The scifact corpus with BM25 and a MiniLM dense index (vectors from the embedding cache once
    `benchmarks/embed_corpora.py --sets scifact` has run)."""
    from retrievekit import Collection
    from retrievekit.ingest import read_documents

    if path.is_dir():
        collection = Collection(path)
    else:
        collection = Collection.create(path)
        collection.add(read_documents(DATA / "corpus.jsonl"))
    if not collection.has_index("dense"):
        collection.add_dense_index("minilm", progress=True)
    return collection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--negatives", type=int, default=3, help="mined negatives per training query (default 3)")
    parser.add_argument("--margin", type=float, default=None, help="false-negative margin for mining (default off)")
    parser.add_argument("--loss", choices=("bce", "listwise"), default="bce")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--head-learning-rate", type=float, default=None,
                        help="learning rate of the new score head (default: the trainer's for a fresh head)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--depth", type=int, default=100, help="hybrid candidates reranked per query (default 100)")
    parser.add_argument("--limit", type=int, help="smoke run: only the first N train queries")
    parser.add_argument("--test-queries", type=int, help="smoke run: only the first N test queries")
    parser.add_argument("--latency-queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dev-fraction", type=float, default=0.1,
                        help="share of the train queries held out of training to choose the blend on (default 0.1)")
    parser.add_argument("--tag", default="")
    parser.add_argument("--model", help="skip training: rerank with this already trained folder")
    args = parser.parse_args()

    from retrievekit.evaluation import load_beir
    from retrievekit.evaluation.significance import paired_t_test, permutation_test
    from retrievekit.retrieval.rerank import get_reranker
    from retrievekit.training.builders import from_qrels
    from retrievekit.training.mining import mine_negatives
    from retrievekit.training.reranker_training import score_blends, train_reranker, tune_blend

    collection = collection_at(WORK / "collection")
    load_at_start = round(os.getloadavg()[0], 2)  # other work on the cores slows training: say how much
    result: dict = {
        "run": "benchmark" if not (args.limit or args.test_queries) else "SMOKE RUN (not the benchmark)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_start": load_at_start, "python": platform.python_version()},
        "recipe": {k: v for k, v in vars(args).items() if k not in ("tag", "latency_queries")}
        | {"base": "minilm (all-MiniLM-L6-v2 weights, a new one-score head)", "miner": "hybrid"},
    }
    out = Path(args.model) if args.model else WORK / f"reranker-{args.tag or 'main'}"
    train = load_beir(DATA, "train")
    qids = sorted(train.qrels)[: args.limit] if args.limit else sorted(train.qrels)
    # queries held out of training: the blend with hybrid is chosen on them, never on the test split
    dev_qids = sorted(random.Random(args.seed).sample(qids, max(1, round(args.dev_fraction * len(qids)))))
    fit_qids = [q for q in qids if q not in set(dev_qids)]
    if not args.model:
        data = from_qrels(collection, train.queries, {q: train.qrels[q] for q in fit_qids})
        mined = mine_negatives(data, collection, mode="hybrid", per_query=args.negatives, margin=args.margin)
        examples = [e for e in mined if e.negatives]
        print(f"{len(examples)} examples, mining {mined.stats}", flush=True)
        started = time.perf_counter()
        train_reranker("minilm", examples, out, loss=args.loss, epochs=args.epochs, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, head_learning_rate=args.head_learning_rate,
                       max_length=args.max_length, seed=args.seed, overwrite=True, progress=True)
        card = json.loads((out / "model_card.json").read_text())
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        result |= {"train_queries": len(fit_qids), "examples": len(examples), "mining_stats": mined.stats,
                   "train_pairs": card["data"].get("pairs"), "train_seconds": round(time.perf_counter() - started, 1),
                   "steps": card["global_step"], "loss_curve": card.get("loss_curve"),
                   "head_learning_rate": card["recipe"].get("head_learning_rate")}

    hybrid = collection.retriever("hybrid")
    started = time.perf_counter()
    tuning = tune_blend(out, hybrid, train.queries, {q: train.qrels[q] for q in dev_qids}, depth=args.depth,
                        progress=True)
    result |= {"dev_queries": len(dev_qids), "blend_tuning": tuning["blend_tuning"],
               "rerank_blend": tuning["rerank_blend"], "tuning_seconds": round(time.perf_counter() - started, 1)}
    print(f"blend {tuning['rerank_blend']} chosen on {len(dev_qids)} held-out train queries: "
          f"{tuning['blend_tuning']}", flush=True)

    test = load_beir(DATA, "test")
    if args.test_queries:
        keep = sorted(test.qrels)[: args.test_queries]
        test = dataclasses.replace(test, queries={q: test.queries[q] for q in keep},
                                   qrels={q: test.qrels[q] for q in keep})
    started = time.perf_counter()
    blend = tuning["rerank_blend"]
    scored = score_blends(out, hybrid, test.queries, test.qrels, depth=args.depth, metrics=("ndcg@10", "recall@100"),
                          grid=sorted({1.0, blend}), progress=True)
    rerank_seconds = time.perf_counter() - started
    base, alone, mixed = scored["first_stage"], scored["blends"][1.0], scored["blends"][blend]
    assert base.per_query is not None and alone.per_query is not None and mixed.per_query is not None
    qids = sorted(base.per_query["ndcg@10"])
    b = [base.per_query["ndcg@10"][q] for q in qids]

    def versus_hybrid(after) -> dict:  # type: ignore[no-untyped-def]
        a = [after.per_query["ndcg@10"][q] for q in qids]
        return {"ndcg@10": round(after["ndcg@10"], 4), "ndcg@10_delta": round(after["ndcg@10"] - base["ndcg@10"], 4),
                "p_permutation": permutation_test(a, b, n_permutations=10_000, seed=0).p_value,
                "p_t_test": paired_t_test(a, b).p_value}

    # latency of the reranking stage alone: one query, its `depth` hybrid candidates, texts fetched as in search
    from retrievekit.retrieval.pipeline import document_texts

    reranker = get_reranker(str(out), max_length=args.max_length)  # the card's blend, as --rerank FOLDER uses it
    texts = document_texts(collection)
    timings = []
    for qid in qids[: args.latency_queries]:
        query = test.queries[qid]
        candidates = hybrid.search([query], args.depth)
        started = time.perf_counter()
        reranker.rerank([query], candidates, texts, k=10)
        timings.append(time.perf_counter() - started)

    result |= {
        "test_queries": len(qids), "depth": args.depth,
        "hybrid": {"ndcg@10": round(base["ndcg@10"], 4), "recall@100": round(base["recall@100"], 4)},
        "reranker_alone": versus_hybrid(alone),
        "hybrid_reranked": versus_hybrid(mixed) | {"blend": blend},
        "pipeline_seconds_all_queries": round(rerank_seconds, 1),
        "rerank_latency_ms": {"median": round(1000 * statistics.median(timings), 1),
                              "mean": round(1000 * statistics.fmean(timings), 1), "queries": len(timings),
                              "candidates": args.depth},
    }
    RESULTS.mkdir(exist_ok=True)
    name = f"train_reranker_{args.tag}.json" if args.tag else "train_reranker.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result.get(k) for k in ("hybrid", "reranker_alone", "hybrid_reranked", "rerank_latency_ms")}),
          flush=True)


if __name__ == "__main__":
    main()
