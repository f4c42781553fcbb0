"""Unsupervised domain adaptation: MiniLM fine-tuned on a collection's documents alone (no queries, no judgements),
scored against MiniLM itself on each set's test judgements, with a paired significance test per set.

Per set: the corpus → a collection (BM25 + a MiniLM dense index) → self-supervised pairs from its documents
(`--recipe`, e.g. title→body and inverse cloze; at most `--examples`, drawn under a seed) → hard negatives mined
from the collection itself (`--miner`, false-negative margin on; examples left short are dropped) →
`train_encoder("minilm", loss="mnrl")` → a second dense index encoded by the adapted model → both scored on the
test queries; per-query nDCG@10 differences tested with a paired randomization test (10,000 permutations, two-sided)
and a paired t-test. No test query or judgement is seen before scoring.

    python benchmarks/run_train_adapt.py                        # every set, the committed recipe
    python benchmarks/run_train_adapt.py --sets cranfield --examples 300 --tag pilot   # a quick look

Writes benchmarks/results/train_adapt.json (or train_adapt_<tag>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from datasets_en import ENGLISH_SETS  # noqa: E402

RESULTS = HERE / "results"
WORK = HERE / "work" / "train_adapt"
SETS = ("scifact", "cranfield", "cacm", "nfcorpus-orig-test")
ALPHA = 0.05


def collection_for(name: str):  # type: ignore[no-untyped-def]
    """BM25 + MiniLM dense over the set's corpus, built once and reused (vectors from the embedding cache)."""
    from retrievekit import Collection
    from retrievekit.evaluation import load_beir

    folder, split, corpus = ENGLISH_SETS[name]
    path = WORK / name / "collection"
    if path.is_dir():
        collection = Collection(path)
    else:
        collection = Collection.create(path)
        collection.add(load_beir(folder, split=split, corpus=corpus).iter_corpus())
    if not collection.has_index("dense"):
        collection.add_dense_index("minilm", progress=True)
    return collection


def build_data(collection, recipe: list[str], examples: int, seed: int):  # type: ignore[no-untyped-def]
    """Self-supervised pairs: each builder of ``recipe`` over every document, then ``examples`` drawn at random
    (an equal share per builder where each has enough)."""
    import random

    from retrievekit.training.builders import inverse_cloze, random_crops, title_body
    from retrievekit.training.data import TrainingSet

    builders = {"title": title_body, "ict": inverse_cloze, "crop": random_crops}
    pools = {name: list(builders[name](collection, seed=seed)) for name in recipe}
    rng = random.Random(seed)
    share = examples // len(pools)
    taken: dict[str, set[int]] = {}
    for name, pool in pools.items():
        taken[name] = set(rng.sample(range(len(pool)), min(share, len(pool))))
    rest = [(n, i) for n, pool in pools.items() for i in range(len(pool)) if i not in taken[n]]
    for n, i in rng.sample(rest, min(examples - sum(map(len, taken.values())), len(rest))):
        taken[n].add(i)
    chosen = [pools[n][i] for n in pools for i in sorted(taken[n])]
    rng.shuffle(chosen)
    return TrainingSet(chosen, {f"built_{n}": len(p) for n, p in pools.items()})


def score(collection, dataset, index: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from retrievekit.evaluation import evaluate_retriever

    result = evaluate_retriever(collection.retriever("dense", index=index), dataset, ("ndcg@10", "recall@100"),
                                per_query=True)
    assert result.per_query is not None
    return {"ndcg@10": result["ndcg@10"], "recall@100": result["recall@100"],
            "per_query": result.per_query["ndcg@10"]}


def run_set(name: str, args: argparse.Namespace) -> dict:
    from retrievekit.evaluation import load_beir
    from retrievekit.evaluation.significance import paired_t_test, permutation_test
    from retrievekit.training.encoder_training import train_encoder
    from retrievekit.training.mining import mine_negatives

    folder, split, corpus = ENGLISH_SETS[name]
    dataset = load_beir(folder, split=split, corpus=corpus)
    collection = collection_for(name)
    started = time.perf_counter()
    data = build_data(collection, args.recipe.split(","), args.examples, args.seed)
    mined = mine_negatives(data, collection, mode=args.miner, per_query=args.negatives, margin=args.margin)
    full = [e for e in mined if len(e.negatives) >= args.negatives]
    data_seconds = time.perf_counter() - started
    print(f"{name}: {len(full)} examples ({data.stats}, mining {mined.stats}) in {data_seconds:.1f} s", flush=True)

    out = WORK / name / f"model-{args.tag}"
    started = time.perf_counter()
    train_encoder("minilm", full, out, loss="mnrl", epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, max_length=args.max_length, seed=args.seed, overwrite=True,
                  progress=True)
    train_seconds = time.perf_counter() - started
    card = json.loads((out / "model_card.json").read_text())

    index = f"adapted-{args.tag}"
    if collection.has_index("dense", index):
        collection.drop_dense_index(index)
    started = time.perf_counter()
    collection.add_dense_index(str(out), name=index, progress=True)
    encode_seconds = time.perf_counter() - started
    base = score(collection, dataset, "default")
    adapted = score(collection, dataset, index)
    qids = sorted(base["per_query"])
    a = [adapted["per_query"][q] for q in qids]
    b = [base["per_query"][q] for q in qids]
    perm, t = permutation_test(a, b, n_permutations=10_000, seed=0), paired_t_test(a, b)
    delta = adapted["ndcg@10"] - base["ndcg@10"]
    collection.drop_dense_index(index)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return {
        "queries": len(qids), "documents": collection.info().get("documents"), "examples": len(full),
        "data_stats": data.stats, "mining_stats": mined.stats, "data_seconds": round(data_seconds, 1),
        "train_seconds": round(train_seconds, 1), "steps": card["global_step"],
        "encode_seconds": round(encode_seconds, 1),
        "base": {k: round(v, 4) for k, v in base.items() if k != "per_query"},
        "adapted": {k: round(v, 4) for k, v in adapted.items() if k != "per_query"},
        "ndcg@10_delta": round(delta, 4), "p_permutation": perm.p_value, "p_t_test": t.p_value,
        "significant_gain": bool(delta > 0 and perm.p_value < ALPHA),
        "per_query_ndcg@10": {"base": {q: round(base["per_query"][q], 4) for q in qids},
                              "adapted": {q: round(adapted["per_query"][q], 4) for q in qids}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--recipe", default="title,ict", help="builders to mix: title, ict, crop (default title,ict)")
    parser.add_argument("--examples", type=int, default=1000, help="training examples per set (default 1000)")
    parser.add_argument("--miner", choices=("bm25", "dense", "hybrid"), default="hybrid")
    parser.add_argument("--negatives", type=int, default=1)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--max-length", type=int, default=128, help="training truncation (indexing keeps 256)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tag", default="", help="results file suffix and model folder name")
    args = parser.parse_args()
    args.tag = args.tag or "main"

    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "recipe": {k: v for k, v in vars(args).items() if k not in ("sets", "tag")} | {"base": "minilm",
                                                                                       "loss": "mnrl"},
        "alpha": ALPHA, "sets": {},
    }
    name = "train_adapt.json" if args.tag == "main" else f"train_adapt_{args.tag}.json"
    RESULTS.mkdir(exist_ok=True)
    for set_name in args.sets.split(","):
        results["sets"][set_name] = run_set(set_name, args)
        r = results["sets"][set_name]
        print(f"{set_name}: base {r['base']['ndcg@10']:.4f} adapted {r['adapted']['ndcg@10']:.4f} "
              f"(delta {r['ndcg@10_delta']:+.4f}, p={r['p_permutation']:.4f})", flush=True)
        results["gains_significant"] = sum(s["significant_gain"] for s in results["sets"].values())
        (RESULTS / name).write_text(json.dumps(results, indent=1) + "\n")  # after each set: a partial run counts


if __name__ == "__main__":
    main()
