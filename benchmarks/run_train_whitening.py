"""Unsupervised domain adaptation from corpus statistics alone: MiniLM's vectors re-centred, stripped of their top
principal directions (all-but-the-top) or partially whitened with the collection's own document covariance. No
query and no judgement is seen before scoring; which transform to apply is chosen on a separate dev set.

Why beside run_train_adapter.py: these transforms need no pseudo queries and no teacher, so they test whether the
documents' own geometry (anisotropy: all vectors sharing a few dominant directions) is what keeps MiniLM below
BM25 and hybrid on these sets.

Per set, with μ and C the mean and covariance of its document vectors (eigenvalues λ, eigenvectors U):
center x → x − μ; abttK: also remove the projection on the top K eigenvectors; whitenβ: (x − μ) U diag((λ +
0.1 λ̄)^−β) Uᵀ; every result L2-normalised, queries and documents alike. Scored against MiniLM with a paired
randomization test.

    python benchmarks/run_train_whitening.py

Writes benchmarks/results/train_whitening.json. Vectors come from the embedding cache (benchmarks/embed_corpora.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run_train_adapt import ALPHA, RESULTS, SETS, paired_outcome  # noqa: E402 — the same sets and test as the other adaptation runs
from run_train_adapter import DEV_SET, SetUp  # noqa: E402

Transform = Callable[[np.ndarray], np.ndarray]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def transforms(docs: np.ndarray) -> dict[str, Transform]:
    """Each candidate transform, fitted on the document vectors only."""
    mean = docs.mean(0)
    centred = docs - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / len(centred))
    values, vectors = values[::-1], vectors[:, ::-1]
    out: dict[str, Transform] = {"center": lambda x: _unit(x - mean)}
    for k in (1, 2, 5, 10):
        top = vectors[:, :k]
        out[f"abtt{k}"] = lambda x, top=top: _unit((x - mean) - (x - mean) @ top @ top.T)
    for beta in (0.1, 0.25, 0.5):
        whitening = vectors @ np.diag((values + 0.1 * values.mean()) ** -beta) @ vectors.T
        out[f"whiten{beta}"] = lambda x, w=whitening: _unit((x - mean) @ w)
    return out


def score(setup: SetUp) -> dict:
    base = setup.per_query_ndcg(setup.queries, setup.docs)
    b = [base[q] for q in setup.qids]
    out: dict = {"queries": len(setup.qids), "documents": len(setup.ids),
                 "base": {"ndcg@10": round(float(np.mean(b)), 4)}, "transforms": {}}
    for name, transform in transforms(setup.docs).items():
        adapted = setup.per_query_ndcg(transform(setup.queries), transform(setup.docs))
        a = [adapted[q] for q in setup.qids]
        row = out["transforms"][name] = {"ndcg@10": round(float(np.mean(a)), 4), **paired_outcome(a, b)}
        print(f"{setup.name} {name}: {out['base']['ndcg@10']:.4f} -> {row['ndcg@10']:.4f} "
              f"({row['ndcg@10_delta']:+.4f}, p={row['p_permutation']:.4f})", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--dev-set", default=DEV_SET)
    args = parser.parse_args()

    from retrievekit.encoders import get_encoder
    from retrievekit.encoders.cache import EmbeddingCache, default_cache_root

    encoder = get_encoder("minilm")
    cache = EmbeddingCache(default_cache_root(), encoder.spec())
    dev = score(SetUp(args.dev_set, encoder, cache))
    chosen = max(dev["transforms"], key=lambda n: dev["transforms"][n]["ndcg@10"])
    print(f"chosen on {args.dev_set}: {chosen}", flush=True)
    sets = {name: score(SetUp(name, encoder, cache)) for name in args.sets.split(",")}
    result = {"machine": {"python": platform.python_version()}, "encoder": encoder.spec(), "alpha": ALPHA,
              "dev": {"set": args.dev_set, **dev}, "chosen": chosen, "sets": sets,
              "gains_significant": sum(s["transforms"][chosen]["significant_gain"] for s in sets.values())}
    path = RESULTS / "train_whitening.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}: significant gains with {chosen} on {result['gains_significant']} of {len(sets)} sets")


if __name__ == "__main__":
    main()
