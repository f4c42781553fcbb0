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
    python benchmarks/run_train_adapt.py --recipe generated --examples 500 --seed 1 --tag generated
        # gemma-3-270m's queries for 500 documents per set (those of run_train_adapter.py --pseudo generated,
        # reused from its state files; generated here otherwise, ~1 query/s on 2 cores)
    python benchmarks/run_train_adapt.py --recipe generated --examples 1000 --seed 1 --tag generated-1000
        # the same for 1000 documents per set: the first 500 are the run above's (a larger sample under the same
        # seed extends a smaller one), their queries taken from its state file; ~9 more minutes of generation per set
    for lr in 1e-5 3e-5; do for e in 1 3; do
        python benchmarks/run_train_adapt.py --sets squad-v1.1-dev --recipe generated --examples 500 --seed 1
            --learning-rate $lr --epochs $e --tag dev-squad-lr$lr-e$e; done; done      # (one command line)
        # the recipe's learning rate and epochs scored on squad-v1.1-dev, none of the four sets (best: 1e-5, 3)
    python benchmarks/run_train_adapt.py --recipe generated --examples 1000 --seed 1 --learning-rate 1e-5
        --epochs 3 --tag generated-1000-chosen      # (one command line) the setting chosen there, on the four sets
    python benchmarks/run_train_adapt.py --recipe generated --examples 1000 --seed 1 --teacher hybrid
        --learning-rate 2e-5 --tag generated-1000-teacher     # (one command line) GPL's shape on the same queries:
        # MarginMSE from the collection's own hybrid, at the teacher recipe's committed rate (teacher-window256)
    python benchmarks/run_train_adapt.py --recipe generated --examples 1000 --seed 1 --tag generated-1000-filtered
    python benchmarks/run_train_adapt.py --recipe generated --examples 1000 --seed 1 --learning-rate 1e-5
        --epochs 3 --tag generated-1000-filtered-chosen      # (one command line)
        # generated-1000 and generated-1000-chosen again on the same outputs, once generate_queries dropped copies of
        # the prompt's example queries and looping ones (the runs above predate that filter)
    python benchmarks/run_train_adapt.py --recipe generated --examples 2000 --seed 1 --tag generated-2000
        # the first recipe (1 epoch, lr 1e-5) on twice the documents (cranfield: all 1,400), the first 1000 the runs
        # above's: the sample size was the one thing that raised every set's gain from 500 to 1000 documents
    python benchmarks/run_train_adapt.py --recipe generated --examples 2000 --seed 1 --negatives 0
        --tag generated-2000-inbatch      # (one command line) the same examples without their mined negative:
        # in-batch negatives only (GPL found mined negatives of generated queries often relevant, without a teacher)
    python benchmarks/run_train_adapt.py --recipe generated --examples 1000 --seed 1 --negatives 0
        --tag generated-1000-inbatch      # (one command line) the same comparison on generated-1000-filtered's data
    python benchmarks/run_train_adapt.py --recipe generated --examples 1000 --seed 1 --negatives 0 --train-seed 2
        --tag generated-1000-inbatch-trainseed2      # (one command line) that run again under another training seed
    python benchmarks/run_train_adapt.py --recipe generated --examples 1000 --seed 2 --negatives 0
        --tag generated-1000-inbatch-seed2      # (one command line) the in-batch recipe on another 1000 documents
        # per set (a fresh gemma sample, ~15 min per set): a replication that shares no generated query with it
    python benchmarks/run_train_adapt.py --recipe generated --examples 1000 --seed 1 --teacher cross-encoder
        --teacher-model DIR --negatives 3 --learning-rate 2e-5 --tag NAME      # (one command line) GPL itself: a
        # cross-encoder's margins on 3 negatives per query. Not run here: the one cross-encoder trained offline
        # (run_train_teacher.py) ranks below MiniLM out of domain; online, DIR may be any hub cross-encoder

Writes benchmarks/results/train_adapt.json (or train_adapt_<tag>.json).
"""

from __future__ import annotations

import argparse
import dataclasses
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


def build_data(collection, recipe: list[str], examples: int, seed: int, name: str = ""):  # type: ignore[no-untyped-def]
    """Self-supervised pairs: each builder of ``recipe`` over every document, then ``examples`` drawn at random
    (an equal share per builder where each has enough). ``generated`` instead: one query per document for
    ``examples`` documents written by the offline gemma-3-270m (few-shot; the run_train_adapter.py outputs of the
    same documents and seed are reused from its state file), each with its source document as the positive."""
    import random

    if recipe == ["generated"]:
        from run_train_adapter import generated_set

        return generated_set(collection, name, examples, seed)

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


def distillation_set(collection, data, *, teacher: str, negatives: int, seed: int, depth: int = 100,  # type: ignore[no-untyped-def]
                     weight: float = 0.5):
    """GPL's recipe: for each pseudo-query, its source document (the whole indexed text) and ``negatives`` negatives
    drawn from hybrid's top 20, one (query, positive, negative) row per negative, each pair scored by a teacher:

    - ``hybrid``: the collection's own hybrid retriever instead of a cross-encoder, ``weight`` z(BM25) + (1 -
      weight) z(MiniLM), each retriever's score z-normalised over that query's top ``depth`` (the zscore convex
      fusion), so the student learns the lexical signal BM25 has on these corpora and MiniLM lacks;
    - a folder: a cross-encoder, as in GPL (``run_train_teacher.py`` trains one offline on a set none of the four).

    Teacher margins are put on the student's cosine scale by ``margin_scale`` (the least-squares factor that
    ``train_encoder(teacher_scale="auto")`` fits) against the untrained student's margins on the same pairs, here
    from the cached vectors the index holds: a cross-encoder's logits are on another scale, and MarginMSE on unit
    vectors cannot reach margins beyond 2."""
    import random

    import numpy as np

    from retrievekit.core.document import index_text
    from retrievekit.encoders.cache import EmbeddingCache, default_cache_root
    from retrievekit.index.dense.embedding import embed_documents, embed_queries
    from retrievekit.training.builders import document_text
    from retrievekit.training.data import TrainingExample, TrainingSet
    from retrievekit.training.encoder_training import margin_scale
    from retrievekit.training.teacher import score_with_teacher

    rng = random.Random(seed)
    encoder = collection.encoder()
    cache = EmbeddingCache(default_cache_root(), encoder.spec())
    queries = list(dict.fromkeys(e.query for e in data))
    hybrid = collection.search(queries, 21, mode="hybrid")
    row = {q: i for i, q in enumerate(queries)}
    qvec = embed_queries(encoder, queries, cache=cache)
    chosen = []
    for e in data:
        pool = [d for d, _ in hybrid.hits(row[e.query]) if d != e.positive_id][:20]
        if pool:  # one draw with choice keeps the single-negative runs' draws as they were
            chosen += [(e, n) for n in ([rng.choice(pool)] if negatives == 1 else
                                        rng.sample(pool, min(negatives, len(pool))))]
    ids = sorted({d for e, n in chosen for d in (e.positive_id, n)})
    docs = dict(zip(ids, collection.get_many(ids)))
    dvec = dict(zip(ids, embed_documents(encoder, [index_text(docs[d], ["title", "text"]) for d in ids],
                                         cache=cache)))
    out = [TrainingExample(query=e.query, positive=document_text(docs[e.positive_id]), positive_id=e.positive_id,
                           negatives=[document_text(docs[n])], negative_ids=[n],
                           source=f"{e.source}+{'hybrid' if teacher == 'hybrid' else 'cross-encoder'}-teacher")
           for e, n in chosen]
    student = [[float(qvec[row[e.query]] @ dvec[d]) for d in (e.positive_id, n)] for e, n in chosen]
    if teacher == "hybrid":
        bm25 = collection.search(queries, 1000, mode="bm25")  # deeper than depth: fewer documents fall off its list
        dense = collection.search(queries, depth, mode="dense")

        def z(value: float, top: np.ndarray) -> float:
            return float((value - top.mean()) / top.std()) if top.std() > 0 else 0.0

        scores = []
        for (e, n), s in zip(chosen, student):
            i = row[e.query]
            b_hits = dict(bm25.hits(i))
            b_top = np.array([v for _, v in bm25.hits(i)][:depth] or [0.0])
            d_top = np.array([v for _, v in dense.hits(i)] or [0.0])
            floor = min(b_hits.values()) if b_hits else 0.0
            scores.append([weight * z(b_hits.get(d, floor), b_top) + (1 - weight) * z(cos, d_top)
                           for d, cos in zip((e.positive_id, n), s)])
    else:
        from retrievekit.retrieval.rerank import get_reranker

        reranker = get_reranker(teacher, blend=None, max_length=256)
        scores = [list(e.teacher_scores or ()) for e in score_with_teacher(out, reranker, progress=True)]
    tm = np.array([a - b for a, b in scores])
    sm = np.array([a - b for a, b in student])
    scale = margin_scale(tm, sm)
    out = [dataclasses.replace(e, teacher_scores=[scale * x for x in t]) for e, t in zip(out, scores)]
    stats = {"examples": len(out), "teacher_scale": round(scale, 5),
             "teacher_student_margin_corr": round(float(np.corrcoef(tm, sm)[0, 1]), 4),
             "teacher_prefers_positive": round(float(np.mean(tm > 0)), 4),
             "student_prefers_positive": round(float(np.mean(sm > 0)), 4)}
    return TrainingSet(out, stats)


def score(collection, dataset, index: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from retrievekit.evaluation import evaluate_retriever

    result = evaluate_retriever(collection.retriever("dense", index=index), dataset, ("ndcg@10", "recall@100"),
                                per_query=True)
    assert result.per_query is not None
    return {"ndcg@10": result["ndcg@10"], "recall@100": result["recall@100"],
            "per_query": result.per_query["ndcg@10"]}


def paired_outcome(adapted: list[float], base: list[float]) -> dict:
    """Mean per-query nDCG@10 change, its paired randomization and t-test p-values, and whether it is a
    significant gain at ``ALPHA``."""
    import numpy as np

    from retrievekit.evaluation.significance import paired_t_test, permutation_test

    delta = float(np.mean(adapted) - np.mean(base))
    perm = permutation_test(adapted, base, n_permutations=10_000, seed=0)
    return {"ndcg@10_delta": round(delta, 4), "p_permutation": perm.p_value,
            "p_t_test": paired_t_test(adapted, base).p_value,
            "significant_gain": bool(delta > 0 and perm.p_value < ALPHA)}


def run_set(name: str, args: argparse.Namespace) -> dict:
    from retrievekit.evaluation import load_beir
    from retrievekit.training.encoder_training import train_encoder
    from retrievekit.training.mining import mine_negatives

    folder, split, corpus = ENGLISH_SETS[name]
    dataset = load_beir(folder, split=split, corpus=corpus)
    collection = collection_for(name)
    started = time.perf_counter()
    data = build_data(collection, args.recipe.split(","), args.examples, args.seed, name)
    if args.teacher != "none":
        mined = distillation_set(collection, data, teacher=args.teacher_model or args.teacher,
                                 negatives=max(args.negatives, 1), seed=args.seed)
        full = list(mined)
    else:
        # --negatives 0: the examples a 1-negative mining keeps (the source document retrieved, a candidate below the
        # margin), trained on in-batch negatives alone (GPL: without a teacher, mined negatives of generated queries
        # are often relevant ones)
        per_query = max(args.negatives, 1)
        mined = mine_negatives(data, collection, mode=args.miner, per_query=per_query, margin=args.margin)
        full = [e for e in mined if len(e.negatives) >= per_query]
    data_seconds = time.perf_counter() - started
    print(f"{name}: {len(full)} examples ({data.stats}, mining {mined.stats}) in {data_seconds:.1f} s", flush=True)

    out = WORK / name / f"model-{args.tag}"
    started = time.perf_counter()
    loss = "margin-mse" if args.teacher != "none" else "mnrl"
    train_encoder("minilm", full, out, loss=loss, epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, max_length=args.max_length, overwrite=True,
                  seed=args.seed if args.train_seed is None else args.train_seed,
                  max_negatives=0 if args.negatives == 0 else None, progress=True,
                  teacher_scale=None)  # distillation_set's scores are on the student's scale already
    train_seconds = time.perf_counter() - started
    card = json.loads((out / "model_card.json").read_text())

    index = f"adapted-{args.tag}"
    if collection.has_index("dense", index):
        collection.drop_dense_index(index)
    started = time.perf_counter()
    collection.add_dense_index(str(out), name=index, progress=True)
    encode_seconds = time.perf_counter() - started
    # the window each index encoded documents with (the adapted model keeps MiniLM's: train_encoder's max_length
    # shortens training only)
    windows = {"base": collection.index_config("dense")["encoder"]["max_length"],
               "adapted": collection.index_config("dense", index)["encoder"]["max_length"]}
    base = score(collection, dataset, "default")
    adapted = score(collection, dataset, index)
    qids = sorted(base["per_query"])
    a = [adapted["per_query"][q] for q in qids]
    b = [base["per_query"][q] for q in qids]
    collection.drop_dense_index(index)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return {
        "queries": len(qids), "documents": collection.info().get("documents"), "examples": len(full),
        "data_stats": data.stats, "mining_stats": mined.stats, "data_seconds": round(data_seconds, 1),
        "train_seconds": round(train_seconds, 1), "steps": card["global_step"],
        "encode_seconds": round(encode_seconds, 1), "index_windows": windows,
        "base": {k: round(v, 4) for k, v in base.items() if k != "per_query"},
        "adapted": {k: round(v, 4) for k, v in adapted.items() if k != "per_query"},
        **paired_outcome(a, b),
        "per_query_ndcg@10": {"base": {q: round(base["per_query"][q], 4) for q in qids},
                              "adapted": {q: round(adapted["per_query"][q], 4) for q in qids}},
    }


def recipe_of(args: argparse.Namespace) -> dict:
    """What a results file records of a run's arguments, and what a rerun on other sets must match to merge into
    it. An unset --teacher-model stays out: the recipes of runs from before it existed compare equal."""
    return ({k: v for k, v in vars(args).items() if k not in ("sets", "tag") and (k, v) != ("teacher_model", None)}
            | {"base": "minilm", "loss": "margin-mse" if args.teacher != "none" else "mnrl"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--recipe", default="title,ict",
                        help="builders to mix: title, ict, crop (default title,ict); or generated (gemma-3-270m)")
    parser.add_argument("--examples", type=int, default=1000, help="training examples per set (default 1000)")
    parser.add_argument("--miner", choices=("bm25", "dense", "hybrid"), default="hybrid")
    parser.add_argument("--negatives", type=int, default=1,
                        help="mined hard negatives per example; 0: in-batch negatives only (default 1)")
    parser.add_argument("--teacher", choices=("none", "hybrid", "cross-encoder"), default="none",
                        help="MarginMSE from a teacher (GPL): hybrid, the collection's own hybrid scores; "
                        "cross-encoder, the folder --teacher-model (e.g. run_train_teacher.py's)")
    parser.add_argument("--teacher-model", help="the cross-encoder folder of --teacher cross-encoder")
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--max-length", type=int, default=128, help="training truncation (indexing keeps 256)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-seed", type=int, default=None,
                        help="training's seed (batch order, hard-negative padding) where it differs from --seed, "
                        "which also draws the documents")
    parser.add_argument("--tag", default="", help="results file suffix and model folder name")
    args = parser.parse_args()
    if (args.teacher == "cross-encoder") != bool(args.teacher_model):
        parser.error("--teacher cross-encoder and --teacher-model FOLDER go together")
    args.tag = args.tag or "main"
    load_at_start = round(os.getloadavg()[0], 2)  # other work on the cores slows training: say how much

    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_start": load_at_start, "python": platform.python_version()},
        "recipe": recipe_of(args),
        "alpha": ALPHA, "sets": {},
    }
    name = "train_adapt.json" if args.tag == "main" else f"train_adapt_{args.tag}.json"
    RESULTS.mkdir(exist_ok=True)
    previous = json.loads((RESULTS / name).read_text()) if (RESULTS / name).is_file() else None
    if previous and previous.get("recipe") == results["recipe"]:
        # the same recipe run earlier on other sets (the sets are independent): keep those results
        results["sets"] = {k: v for k, v in previous["sets"].items() if k not in args.sets.split(",")}
    for set_name in args.sets.split(","):
        results["sets"][set_name] = run_set(set_name, args)
        r = results["sets"][set_name]
        print(f"{set_name}: base {r['base']['ndcg@10']:.4f} adapted {r['adapted']['ndcg@10']:.4f} "
              f"(delta {r['ndcg@10_delta']:+.4f}, p={r['p_permutation']:.4f})", flush=True)
        results["gains_significant"] = sum(s["significant_gain"] for s in results["sets"].values())
        (RESULTS / name).write_text(json.dumps(results, indent=1) + "\n")  # after each set: a partial run counts


if __name__ == "__main__":
    main()
