"""Unsupervised domain adaptation in embedding space: a linear map on MiniLM's vectors, distilled from the
collection's own hybrid (BM25 + MiniLM) ranking on pseudo queries built from its documents. No test query or
judgement is seen before scoring; the two hyperparameters are chosen on a separate dev set.

Why this beside run_train_adapt.py: fine-tuning all of MiniLM on a few thousand self-supervised pairs lost
effectiveness on every set tried (train_adapt_*.json). A 384×384 map started at the identity and pulled back towards
it can only re-weight MiniLM's directions, so it cannot forget what MiniLM learnt; and it trains in seconds on cached
vectors, so the whole corpus's pseudo queries fit.

Per set: pseudo queries = inverse-cloze sentences, titles and random crops (Contriever) of its documents, at most
``--examples`` under a seed → the collection's hybrid search, top ``--depth`` each (the teacher: hybrid beats MiniLM
on every set here) → W, b trained with Adam on KL(softmax(teacher z-scores · sharpness) ‖ softmax(20 · cos(f(q),
f(d)))) + ``l2`` · (‖W − I‖² + ‖b‖²), f(x) = normalise(Wx + b), the epoch kept by the KL on 10% held-out pseudo
queries → test queries and documents mapped by f, scored against MiniLM with a paired randomization test.

Hyperparameters: each (sharpness, l2) of the grid is trained on the dev set's documents and scored on its queries;
the best is then applied, unchanged, to every test set.

    python benchmarks/run_train_adapter.py      # the dev grid on squad-v1.1-dev, then the four test sets
    python benchmarks/run_train_adapter.py --pseudo generated --choice 3,0.01 --tag generated
        # pseudo queries written by the offline gemma-3-270m (few-shot, `generate_queries`) for --generated
        # documents per set, with the (sharpness, l2) the self-supervised run chose on the dev set

Writes benchmarks/results/train_adapter.json. Vectors come from the embedding cache (benchmarks/embed_corpora.py).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from datasets_en import ENGLISH_SETS  # noqa: E402
from run_train_adapt import ALPHA, RESULTS, SETS, paired_outcome  # noqa: E402 — the same sets and test as the fine-tuning runs

WORK = HERE / "work" / "train_adapter"
DEV_SET = "squad-v1.1-dev"
GRID = [(s, l2) for s in (1.0, 3.0) for l2 in (0.001, 0.01, 0.1)]
STUDENT_SCALE = 20.0  # MiniLM's training scale (cosine · 20)


class SetUp:
    """A set's documents and test queries as MiniLM vectors, its collection (BM25 + MiniLM) and its qrels."""

    def __init__(self, name: str, encoder, cache) -> None:  # type: ignore[no-untyped-def]
        from retrievekit import Collection
        from retrievekit.core.document import index_text
        from retrievekit.evaluation import load_beir
        from retrievekit.index.dense.embedding import embed_documents, embed_queries

        folder, split, corpus = ENGLISH_SETS[name]
        self.name, self.encoder, self.cache = name, encoder, cache
        self.dataset = load_beir(folder, split=split, corpus=corpus)
        docs = list(self.dataset.iter_corpus())
        self.ids = [d.id for d in docs]
        self.row = {d: i for i, d in enumerate(self.ids)}
        self.docs = np.asarray(embed_documents(encoder, [index_text(d, ["title", "text"]) for d in docs],
                                               cache=cache, progress=True), np.float32)
        self.qids = [q for q in self.dataset.queries if q in self.dataset.qrels]
        self.queries = np.asarray(embed_queries(encoder, [self.dataset.queries[q] for q in self.qids], cache=cache),
                                  np.float32)
        path = WORK / name / "collection"
        if path.is_dir():
            self.collection = Collection(path)
        else:
            self.collection = Collection.create(path)
            self.collection.add(docs)
        if not self.collection.has_index("dense"):
            self.collection.add_dense_index("minilm", progress=True)

    def per_query_ndcg(self, queries: np.ndarray, docs: np.ndarray) -> dict[str, float]:
        from retrievekit.evaluation import evaluate

        scores = queries @ docs.T
        top = np.argsort(-scores, axis=1)[:, :100]
        run = {q: {self.ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(self.qids)}
        result = evaluate(run, self.dataset.qrels, ["ndcg@10"], per_query=True)
        assert result.per_query is not None
        (values,) = result.per_query.values()
        return {q: values.get(q, 0.0) for q in self.qids}


def pseudo_queries(setup: SetUp, examples: int, seed: int) -> tuple[list[str], dict[str, int]]:
    """Inverse-cloze sentences, titles and crops of the set's documents, ``examples`` of them drawn under ``seed``
    (sets without sentence punctuation or titles, like nfcorpus's preprocessed text, fall back on crops)."""
    from retrievekit.training.builders import inverse_cloze, random_crops, title_body

    pools = {"ict": inverse_cloze(setup.collection, seed=seed), "title": title_body(setup.collection, seed=seed),
             "crop": random_crops(setup.collection, seed=seed)}
    texts = [(n, e.query) for n, built in pools.items() for e in built]
    random.Random(seed).shuffle(texts)
    texts = texts[:examples]
    return [t for _, t in texts], {n: sum(1 for m, _ in texts if m == n) for n in pools}


@functools.cache
def local_generator():  # type: ignore[no-untyped-def]
    """The offline generator, loaded once for every set."""
    from retrievekit.rag.generators.local import LocalGenerator

    return LocalGenerator(backend="transformers")


def generated_set(collection, name: str, documents: int, seed: int):  # type: ignore[no-untyped-def]
    """Queries the offline generator writes for ``documents`` of set ``name``'s documents (drawn under ``seed``,
    whatever order ``collection`` stores them in), from three hand-written examples on no evaluation set, each with
    its source document as the positive. The raw outputs are kept in one state file per set and seed under this
    script's work folder: a larger sample under the same seed extends a smaller one, so a rerun, a larger
    ``documents`` or run_train_adapt.py on the same seed resumes from the outputs made so far."""
    from run_generation_speed import EXAMPLES

    from retrievekit.training.synthetic import generate_queries

    return generate_queries(collection, local_generator(), examples=EXAMPLES, limit=documents, seed=seed,
                            max_tokens=24, state=WORK / name / f"generated-{seed}.state.jsonl", batch_size=16,
                            progress=True)


def generated_queries(setup: SetUp, documents: int, seed: int) -> tuple[list[str], dict[str, int]]:
    data = generated_set(setup.collection, setup.name, documents, seed)
    queries = [e.query for e in data]
    return queries, {"generated": data.stats.get("generated", 0) + data.stats.get("resumed", 0),
                     "kept": len(queries)}


def teacher(setup: SetUp, texts: list[str], depth: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The collection's hybrid top ``depth`` per pseudo query: candidate rows, per-query z-scored scores, and which
    pseudo queries they are (those with a full ``depth`` of hits)."""
    results = setup.collection.search(texts, depth, mode="hybrid")
    keep = [i for i in range(len(texts)) if all(d is not None for d in results.ids[i])]
    rows = np.array([[setup.row[d] for d in results.ids[i]] for i in keep], np.int64)
    scores = results.scores[keep].astype(np.float32)
    z = (scores - scores.mean(1, keepdims=True)) / (scores.std(1, keepdims=True) + 1e-6)
    return rows, z, keep


def train_map(pseudo: np.ndarray, docs: np.ndarray, rows: np.ndarray, z: np.ndarray, *, sharpness: float,
              l2: float, epochs: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """W, b of f(x) = normalise(Wx + b), trained as the module docstring says. Hand-written: a two-tensor model on
    cached vectors; sentence-transformers' trainer would run the frozen transformer again on every step."""
    import torch

    torch.manual_seed(seed)
    dim = docs.shape[1]
    eye = torch.eye(dim)
    weight, bias = torch.nn.Parameter(eye.clone()), torch.nn.Parameter(torch.zeros(dim))
    optimiser = torch.optim.Adam([weight, bias], lr=1e-3)
    target = torch.softmax(torch.tensor(z) * sharpness, 1)
    q_all, d_all, cand = torch.tensor(pseudo), torch.tensor(docs), torch.tensor(rows)
    held = max(1, len(pseudo) // 10)
    train_idx, dev_idx = torch.arange(held, len(pseudo)), torch.arange(held)

    def kl(idx: torch.Tensor) -> torch.Tensor:
        q = torch.nn.functional.normalize(q_all[idx] @ weight.T + bias, dim=-1)
        d = torch.nn.functional.normalize(d_all[cand[idx]] @ weight.T + bias, dim=-1)
        logits = torch.einsum("bd,bkd->bk", q, d) * STUDENT_SCALE
        return torch.nn.functional.kl_div(torch.log_softmax(logits, 1), target[idx], reduction="batchmean")

    with torch.no_grad():
        best = (float(kl(dev_idx)), eye.numpy().copy(), np.zeros(dim, np.float32), -1)
    started = best[0]
    for epoch in range(epochs):
        order = train_idx[torch.randperm(len(train_idx))]
        for i in range(0, len(order), 128):
            idx = order[i:i + 128]
            loss = kl(idx) + l2 * (((weight - eye) ** 2).sum() + (bias ** 2).sum())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            held_kl = float(kl(dev_idx))
        if held_kl < best[0]:
            best = (held_kl, weight.detach().numpy().copy(), bias.detach().numpy().copy(), epoch)
    return best[1], best[2], {"held_out_kl_start": round(started, 4), "held_out_kl_best": round(best[0], 4),
                              "best_epoch": best[3] + 1}


def apply(weight: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    y = x @ weight.T + bias
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


def run_set(setup: SetUp, args: argparse.Namespace, grid: list[tuple[float, float]]) -> dict:
    from retrievekit.index.dense.embedding import embed_queries

    started = time.perf_counter()
    if args.pseudo == "generated":
        texts, made = generated_queries(setup, args.generated, args.seed)
    else:
        texts, made = pseudo_queries(setup, args.examples, args.seed)
    if not texts:
        raise SystemExit(f"{setup.name}: no pseudo query could be built from its documents")
    rows, z, keep = teacher(setup, texts, args.depth)
    pseudo = np.asarray(embed_queries(setup.encoder, [texts[i] for i in keep], cache=setup.cache), np.float32)
    data_seconds = time.perf_counter() - started
    base = setup.per_query_ndcg(setup.queries, setup.docs)
    b = [base[q] for q in setup.qids]
    out: dict = {"queries": len(setup.qids), "documents": len(setup.ids), "pseudo_queries": len(keep),
                 "pseudo_query_sources": made, "data_seconds": round(data_seconds, 1),
                 "base": {"ndcg@10": round(float(np.mean(b)), 4)}, "trials": []}
    for sharpness, l2 in grid:
        t0 = time.perf_counter()
        weight, bias, fit = train_map(pseudo, setup.docs, rows, z, sharpness=sharpness, l2=l2, epochs=args.epochs,
                                      seed=args.seed)
        adapted = setup.per_query_ndcg(apply(weight, bias, setup.queries), apply(weight, bias, setup.docs))
        a = [adapted[q] for q in setup.qids]
        trial = {"sharpness": sharpness, "l2": l2, **fit, "train_seconds": round(time.perf_counter() - t0, 1),
                 "adapted": {"ndcg@10": round(float(np.mean(a)), 4)}, **paired_outcome(a, b),
                 "per_query_ndcg@10": {"base": {q: round(v, 4) for q, v in base.items()},
                                       "adapted": {q: round(v, 4) for q, v in adapted.items()}}}
        out["trials"].append(trial)
        print(f"{setup.name} sharpness={sharpness} l2={l2}: {out['base']['ndcg@10']:.4f} -> "
              f"{trial['adapted']['ndcg@10']:.4f} ({trial['ndcg@10_delta']:+.4f}, p={trial['p_permutation']:.4f})",
              flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--dev-set", default=DEV_SET)
    parser.add_argument("--examples", type=int, default=6000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tag", default="")
    parser.add_argument("--pseudo", choices=("self", "generated"), default="self",
                        help="pseudo queries: inverse cloze, titles and crops, or written by the offline generator")
    parser.add_argument("--generated", type=int, default=600, help="documents to generate a query for, per set")
    parser.add_argument("--choice", help="SHARPNESS,L2 to use without the dev grid (e.g. an earlier run's choice)")
    args = parser.parse_args()

    from retrievekit.encoders import get_encoder
    from retrievekit.encoders.cache import EmbeddingCache, default_cache_root

    encoder = get_encoder("minilm")
    cache = EmbeddingCache(default_cache_root(), encoder.spec())
    dev: dict = {"trials": []}
    if args.choice:
        sharpness, l2 = (float(v) for v in args.choice.split(","))
        choice = (sharpness, l2)
    else:
        dev = run_set(SetUp(args.dev_set, encoder, cache), args, GRID)
        chosen = max(dev["trials"], key=lambda t: t["adapted"]["ndcg@10"])
        choice = (chosen["sharpness"], chosen["l2"])
        print(f"chosen on {args.dev_set}: sharpness={choice[0]} l2={choice[1]}", flush=True)
    sets = {}
    for name in args.sets.split(","):
        sets[name] = run_set(SetUp(name, encoder, cache), args, [choice])
    for trial in dev["trials"]:
        trial.pop("per_query_ndcg@10")  # 10k dev queries: the means are what the choice used
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "encoder": encoder.spec(),
        "recipe": {"examples": args.examples, "depth": args.depth, "epochs": args.epochs, "seed": args.seed,
                   "student_scale": STUDENT_SCALE, "grid": [] if args.choice else GRID,
                   "dev_set": None if args.choice else args.dev_set,
                   "chosen": {"sharpness": choice[0], "l2": choice[1]}, "pseudo": args.pseudo,
                   **({"generated_documents": args.generated, "choice_given": args.choice}
                      if args.pseudo == "generated" else {})},
        "alpha": ALPHA,
        "dev": dev,
        "sets": sets,
        "gains_significant": sum(s["trials"][0]["significant_gain"] for s in sets.values()),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"train_adapter{'_' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['gains_significant']} of {len(sets)} sets gained significantly; wrote {path}")


if __name__ == "__main__":
    main()
