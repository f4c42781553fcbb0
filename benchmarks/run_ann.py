"""ANN indexes (HNSW, IVF-Flat, IVF-PQ) against exact search: build time, memory, recall@10, queries/s.

Data: the seeded Gaussian-mixture unit vectors of ``run_dense_exact.py`` (same generator and cached file in
``benchmarks/work/dense_exact/``; ``--n`` below the file's size takes its first rows), and ``--queries`` perturbed
copies of random documents. Ground truth: ``exact_search`` (k=10). Every throughput is measured with one thread
(FAISS OpenMP and BLAS held to 1), as ``single`` (one query per call, ``--single`` calls) and ``batch`` (all
queries in one call); ``speedup_*`` divides by exact search's queries/s measured the same way in the same run.
Builds use ``--build-threads``. The load average is recorded before and after: other processes share the cores,
so absolute times are upper bounds.

    python benchmarks/run_ann.py                 # 1M x 384
    python benchmarks/run_ann.py --n 50000       # smoke run
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
for p in (REPO / "src", REPO / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from run_dense_exact import machine_info, make_queries, make_vectors  # noqa: E402

from retrievekit.index.dense.ann import ANNIndex, HNSWIndex, IVFIndex  # noqa: E402
from retrievekit.index.dense.exact import exact_search  # noqa: E402

K = 10
CACHE_N = 1_000_000


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


def timed(fn: Any, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(index: ANNIndex, queries: np.ndarray, truth: np.ndarray, singles: int) -> dict[str, Any]:
    docs, _ = index.search(queries, K)
    batch_s = timed(lambda: index.search(queries, K), 2)
    one = queries[:singles]
    single_s = timed(lambda: [index.search(q[None], K) for q in one], 2)
    return {"recall_at_10": recall(docs, truth), "batch_qps": len(queries) / batch_s,
            "single_qps": len(one) / single_s}


def _size_name(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, default=200, help="one-query calls timed per setting")
    ap.add_argument("--exact-single", type=int, default=20, help="one-query calls timed for exact search")
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--hnsw-efc", type=int, default=200)
    ap.add_argument("--hnsw-n", type=int, default=None,
                    help="build HNSW on the first rows only (slow builds); its recall is against exact search "
                         "over the same rows")
    ap.add_argument("--nlist", type=int, default=4096)
    ap.add_argument("--ivf-train", type=int, default=None, help="IVF training sample (default 39 * nlist)")
    ap.add_argument("--pq-m", type=int, default=48)
    ap.add_argument("--pq-nlist", type=int, default=None, help="IVF-PQ cells (default --nlist)")
    ap.add_argument("--skip", default="", help="comma list of hnsw,ivf,ivfpq to skip")
    ap.add_argument("--work", default=str(REPO / "benchmarks" / "work" / "dense_exact"))
    ap.add_argument("--out", default=None, help="result file (default benchmarks/results/ann_<n>.json)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads collapse on a shared machine
    import faiss
    from threadpoolctl import threadpool_limits

    skip = set(filter(None, args.skip.split(",")))
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    full = make_vectors(Path(args.work) / f"vectors-n{CACHE_N}-d{args.dim}-s{args.seed}-c{args.clusters}.npy",
                        CACHE_N, args.dim, args.seed, args.clusters) if args.n <= CACHE_N else make_vectors(
        Path(args.work) / f"vectors-n{args.n}-d{args.dim}-s{args.seed}-c{args.clusters}.npy",
        args.n, args.dim, args.seed, args.clusters)
    x = np.ascontiguousarray(full[:args.n])
    del full
    queries = make_queries(x, args.queries, args.seed)
    data_s = time.perf_counter() - t0

    result: dict[str, Any] = {
        "benchmark": "ann", "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "load_average_before": load_before,
        "data": {"n": args.n, "dim": args.dim, "clusters": args.clusters, "seed": args.seed,
                 "queries": args.queries, "generate_or_load_seconds": round(data_s, 1)},
        "settings": {"k": K, "search_threads": 1, "build_threads": args.build_threads, "single_calls": args.single,
                     "exact_single_calls": args.exact_single, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
        "indexes": [],
    }
    out = Path(args.out or REPO / "benchmarks" / "results" / f"ann_{_size_name(args.n)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        result["load_average_after"] = os.getloadavg()
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, out)

    t0 = time.perf_counter()
    truth = exact_search(queries, [x], K, threads=args.build_threads)[0]
    print(f"data {x.shape} ready in {data_s:.1f}s; ground truth in {time.perf_counter() - t0:.1f}s", flush=True)

    def exact_speed(rows: np.ndarray) -> dict[str, float]:
        with threadpool_limits(limits=1):
            batch_s = timed(lambda: exact_search(queries, [rows], K, threads=1))
            one = queries[:args.exact_single]
            single_s = timed(lambda: [exact_search(q[None], [rows], K, threads=1) for q in one], 2)
        return {"batch_qps": len(queries) / batch_s, "single_qps": len(one) / single_s}

    exact = exact_speed(x)
    result["exact"] = exact
    print(f"exact (n={len(x)}): batch {exact['batch_qps']:.1f} q/s, single {exact['single_qps']:.1f} q/s", flush=True)
    save()

    def run_index(label: str, index: ANNIndex, knob: str, values: list[int], rows: np.ndarray,
                  gt: np.ndarray, base: dict[str, float]) -> None:
        t0 = time.perf_counter()
        index.threads = args.build_threads
        index.build(rows)
        build_s = time.perf_counter() - t0
        entry: dict[str, Any] = {"index": label, "n": len(rows), "config": index.config(),
                                 "build_seconds": round(build_s, 1), "memory_bytes": index.memory_bytes(),
                                 "load_average_after_build": os.getloadavg(), "results": []}
        if len(rows) != len(x):
            entry["exact_for_these_rows"] = base
        print(f"{label}: built {len(rows)} in {build_s:.1f}s, {index.memory_bytes() / 2**20:.0f} MiB", flush=True)
        index.threads = 1
        with threadpool_limits(limits=1):
            for v in values:
                setattr(index, knob, v)
                r = {knob: v, **measure(index, queries, gt, args.single)}
                r["speedup_batch"] = r["batch_qps"] / base["batch_qps"]
                r["speedup_single"] = r["single_qps"] / base["single_qps"]
                entry["results"].append(r)
                print(f"  {knob}={v:<4} recall@10 {r['recall_at_10']:.4f}  batch {r['batch_qps']:8.1f} q/s "
                      f"(x{r['speedup_batch']:5.1f})  single {r['single_qps']:8.1f} q/s "
                      f"(x{r['speedup_single']:5.1f})", flush=True)
        result["indexes"].append(entry)
        save()
        del index

    train = args.ivf_train or 39 * args.nlist
    if "ivf" not in skip:
        run_index(f"ivf-flat nlist={args.nlist}", IVFIndex(nlist=args.nlist, train_size=train, seed=args.seed),
                  "nprobe", [8, 16, 32, 64], x, truth, exact)
    if "ivfpq" not in skip:
        nl = args.pq_nlist or args.nlist
        run_index(f"ivf-pq nlist={nl} m={args.pq_m} refine", IVFIndex(nlist=nl, pq_m=args.pq_m, train_size=39 * nl,
                                                                       seed=args.seed),
                  "nprobe", [16, 32, 64], x, truth, exact)
    if "hnsw" not in skip:
        rows, gt, base = x, truth, exact
        if args.hnsw_n and args.hnsw_n < len(x):
            rows = x[:args.hnsw_n]
            gt = exact_search(queries, [rows], K, threads=args.build_threads)[0]
            base = exact_speed(rows)
        run_index(f"hnsw M={args.hnsw_m} efC={args.hnsw_efc}",
                  HNSWIndex(m=args.hnsw_m, ef_construction=args.hnsw_efc), "ef_search", [32, 64, 128, 256],
                  rows, gt, base)
    result["faiss_version"] = faiss.__version__
    save()
    print(f"load average before {load_before}, after {result['load_average_after']}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
