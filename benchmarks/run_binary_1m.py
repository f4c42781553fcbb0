"""Binary codes + exact rescoring vs exact float32 search vs FAISS ``IndexBinaryFlat``, 1M × 384, one thread.

``--source synthetic`` (default) reuses the clustered vectors and queries of ``run_dense_exact.py`` (cached in
``benchmarks/work/dense_exact/``). ``--source real`` uses real all-MiniLM-L6-v2 embeddings instead: the document
vectors of the seven English sets (from the embedding cache; run ``embed_corpora.py`` first), each replicated with
Gaussian noise (``--noise``: norm of the noise relative to the unit vector) up to ``--n`` rows, and the sets' real
queries.
A ``BinaryTier`` (sign bits, Hamming scoring) is fitted on a 100k sample and encodes every vector (48 bytes/row).
Measured, each as ``single`` (``--calls`` calls with one query) and ``batch`` (one call with ``--batch`` queries):

* ``exact``: ``exact_search`` over the float32 matrix (the reference for recall);
* ``binary_os<N>``: ``search_compressed(..., oversample=N, rescore=x)``: Hamming top-(10·N) candidates from the
  compiled kernel, then exact inner products of those rows;
* ``faiss_os<N>``: FAISS ``IndexBinaryFlat.search`` on the same packed codes for the candidates (Hamming distance
  does not depend on the bit order within a byte; checked below), then the same numpy rescoring.

Each measurement is repeated ``--repeats`` times, interleaved, and the fastest kept; load averages are recorded.

    python benchmarks/run_binary_1m.py              # ~3-5 min on 2 cores
    python benchmarks/run_binary_1m.py --n 50000    # smoke run
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "src", REPO / "benchmarks"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from run_dense_exact import best_of, machine_info, make_queries, make_vectors  # noqa: E402

from retrievekit.index.dense.exact import exact_search  # noqa: E402
from retrievekit.index.dense.tiers import BinaryTier, hamming_distances, search_compressed  # noqa: E402
from retrievekit.index.dense.tiers.hamming import HAVE_KERNEL  # noqa: E402

K = 10


def rescore_numpy(x: np.ndarray, q: np.ndarray, cand: np.ndarray, k: int) -> np.ndarray:
    """Top-k doc numbers per query by exact inner product over its candidate rows (sorted reads, like ours)."""
    out = np.full((len(q), k), -1, dtype=np.int64)
    for i in range(len(q)):
        rows = np.sort(cand[i][cand[i] >= 0])
        s = x[rows] @ q[i]
        top = np.argsort(-s, kind="stable")[:k]
        out[i, :len(top)] = rows[top]
    return out


def real_vectors(n: int, n_queries: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached MiniLM document vectors of the English sets replicated with noise to n rows, and real queries."""
    from datasets_en import ENGLISH_SETS

    from retrievekit.core.document import index_text
    from retrievekit.encoders.cache import EmbeddingCache, default_cache_root
    from retrievekit.encoders.registry import get_encoder
    from retrievekit.evaluation import load_beir
    from retrievekit.index.dense.embedding import embed_documents, embed_queries

    encoder = get_encoder("minilm")
    cache = EmbeddingCache(default_cache_root(), encoder.spec())
    docs, queries = [], []
    for folder, split, corpus in ENGLISH_SETS.values():
        ds = load_beir(folder, split=split, corpus=corpus)
        docs.append(embed_documents(encoder, [index_text(d, ["title", "text"]) for d in ds.iter_corpus()],
                                    cache=cache))
        queries.append(embed_queries(encoder, list(ds.queries.values()), cache=cache))
    base, q = np.concatenate(docs), np.concatenate(queries)
    rng = np.random.default_rng(seed)
    x = np.empty((n, base.shape[1]), dtype=np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        rows = base[np.arange(lo, hi) % len(base)]  # every real vector once, then noisy copies
        jitter = rng.standard_normal(rows.shape, dtype=np.float32) * np.float32(noise / np.sqrt(base.shape[1]))
        x[lo:hi] = rows + np.where((np.arange(lo, hi) < len(base))[:, None], 0, jitter)
        x[lo:hi] /= np.linalg.norm(x[lo:hi], axis=1, keepdims=True)
    pick = rng.choice(len(q), size=min(n_queries, len(q)), replace=False)
    return x, np.ascontiguousarray(q[pick], dtype=np.float32)


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a[:K]) & set(b[:K])) / K for a, b in zip(got, truth)]))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import faiss
    from threadpoolctl import threadpool_limits

    load_before = os.getloadavg()
    if args.source == "real":
        x, queries = real_vectors(args.n, args.calls + args.batch, args.noise, args.seed)
    else:
        x = make_vectors(Path(args.work) / f"vectors-n{args.n}-d{args.dim}-s{args.seed}-c{args.clusters}.npy",
                         args.n, args.dim, args.seed, args.clusters)
        queries = make_queries(x, args.calls + args.batch, args.seed)
    singles, batch = queries[:args.calls], queries[args.calls:]
    t0 = time.perf_counter()
    tier = BinaryTier()
    tier.fit(x[:100_000])
    codes = tier.encode(x)
    encode_s = time.perf_counter() - t0
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    faiss.omp_set_num_threads(1)

    # Same distances from FAISS and from our packing (bit order inside a byte does not change Hamming distance).
    qcodes = tier.encode(batch[:8])
    fd, fi = index.search(qcodes, 50)
    distances_match = all(np.array_equal(hamming_distances(qcodes[i:i + 1], codes[fi[i]])[0], fd[i])
                          for i in range(len(qcodes)))

    def binary(q: np.ndarray, os_: float) -> np.ndarray:
        return search_compressed(q, tier, codes, K, oversample=os_, rescore=x)[0]

    def faiss_binary(q: np.ndarray, os_: float) -> np.ndarray:
        _, cand = index.search(tier.encode(q), int(np.ceil(K * os_)))
        return rescore_numpy(x, q, cand, K)

    with threadpool_limits(limits=1):
        truth = exact_search(batch, [x], K)[0]
        checks: dict[str, Any] = {"faiss_hamming_distances_match": distances_match, "kernel_built": HAVE_KERNEL}
        for os_ in args.oversample:
            checks[f"recall@10_binary_os{os_:g}"] = recall(binary(batch, os_), truth)
            checks[f"recall@10_faiss_os{os_:g}"] = recall(faiss_binary(batch, os_), truth)
        print(json.dumps(checks), flush=True)

        fns_single: dict[str, Any] = {"exact": lambda: [exact_search(q[None], [x], K) for q in singles]}
        fns_batch: dict[str, Any] = {"exact": lambda: exact_search(batch, [x], K)}
        for os_ in args.oversample:
            fns_single[f"binary_os{os_:g}"] = lambda o=os_: [binary(q[None], o) for q in singles]
            fns_single[f"faiss_os{os_:g}"] = lambda o=os_: [faiss_binary(q[None], o) for q in singles]
            fns_batch[f"binary_os{os_:g}"] = lambda o=os_: binary(batch, o)
            fns_batch[f"faiss_os{os_:g}"] = lambda o=os_: faiss_binary(batch, o)
        one = best_of(fns_single, args.repeats)
        many = best_of(fns_batch, args.repeats)

    rows = []
    for mode, times, count in (("single", one, len(singles)), ("batch", many, len(batch))):
        exact_qps = count / times["exact"][0]
        for name, (wall, cpu) in times.items():
            os_key = name.split("_os")[-1] if "_os" in name else None
            row = {"mode": mode, "queries_per_call": 1 if mode == "single" else count, "method": name,
                   "qps": count / wall, "cpu_s_per_query": cpu / count, "speedup_vs_exact": count / wall / exact_qps}
            if os_key is not None:
                row["recall_at_10"] = checks[f"recall@10_{name}"]
                other = f"faiss_os{os_key}" if name.startswith("binary") else f"binary_os{os_key}"
                row["ratio_vs_other"] = (count / wall) / (count / times[other][0])
            rows.append(row)
    return {
        "benchmark": "binary_1m",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "data": {"source": args.source, "n": args.n, "dim": int(x.shape[1]), "seed": args.seed,
                 **({"noise": args.noise, "queries": "real"} if args.source == "real" else {"clusters": args.clusters}),
                 "code_bytes": int(codes.shape[1]), "fit_encode_seconds": round(encode_s, 2)},
        "settings": {"k": K, "threads": 1, "calls": args.calls, "batch": args.batch, "repeats": args.repeats,
                     "oversample": args.oversample},
        "checks": checks,
        "results": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", choices=["synthetic", "real"], default="synthetic")
    p.add_argument("--noise", type=float, default=0.4, help="--source real: relative norm of the added noise")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--oversample", type=lambda s: [float(v) for v in s.split(",")], default=[4.0, 10.0])
    p.add_argument("--work", default=str(REPO / "benchmarks" / "work" / "dense_exact"))
    p.add_argument("--out", default=None, help="default benchmarks/results/binary_1m.json (binary_1m_real.json with "
                   "--source real)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args.out = args.out or str(REPO / "benchmarks" / "results" / ("binary_1m_real.json" if args.source == "real"
                                                                  else "binary_1m.json"))
    result = run(args)
    print(f"{'mode':>6} {'method':<12} {'q/s':>9} {'x exact':>8} {'recall@10':>9} {'vs other':>9}")
    for r in result["results"]:
        rec = f"{r['recall_at_10']:.3f}" if "recall_at_10" in r else "1.000"
        other = f"{r['ratio_vs_other']:.2f}" if "ratio_vs_other" in r else ""
        print(f"{r['mode']:>6} {r['method']:<12} {r['qps']:9.1f} {r['speedup_vs_exact']:8.2f} {rec:>9} {other:>9}")
    print(f"load average before {result['load_average_before']}, after {result['load_average_after']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
