"""Sharded collections (issue 15): ingest + encode throughput and query latency/throughput with 1, 2 and 4 shards,
in this process and on Ray, against a plain local collection of the same documents; the overhead of the Ray path
at 1 shard; and a capacity model for 100M passages built from the measured per-shard figures.

Corpus: ``benchmarks/synthetic.py`` (MS MARCO-shaped synthetic passages, deterministic), ``--docs`` of them.
Dense: a static encoder (wordllama, offline) so that encoding 1M passages fits on 2 cores; the transformer's
throughput per core is in the encoders benchmark. Queries are searched one at a time (latency p50/p95) and as one
batch (throughput). Every system's top-10 is checked against the plain collection's (ids identical).

    python benchmarks/run_sharding.py                         # 1M documents (long: ~1 h on 2 cores)
    python benchmarks/run_sharding.py --docs 20000 --queries 100   # a quick run
    python benchmarks/run_sharding.py --ray-shards 1               # 1M, Ray at 1 shard only (its overhead)

Writes ``benchmarks/results/sharding_<docs>.json``. On this machine every shard and Ray node shares the same 2
cores: shards add no CPU here, so the figures measure the coordination cost, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from synthetic import SyntheticConfig, generate, is_complete  # noqa: E402

RESULTS = HERE / "results"
WORK = HERE / "work" / "sharding"
TARGET_DOCS = 100_000_000


def corpus(docs: int, queries: int) -> Path:
    folder = WORK / f"synthetic-{docs}"
    cfg = SyntheticConfig(docs=docs, queries=queries)
    if not is_complete(folder, cfg):
        generate(folder, cfg)
    return folder


def read_queries(folder: Path, n: int) -> list[str]:
    with (folder / "queries.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f][:n]


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_queries(col: Any, queries: list[str], mode: str) -> dict[str, Any]:
    col.search(queries[:5], 10, mode=mode)  # warm: encoder loaded, files mapped
    latencies = []
    for q in queries:
        t = time.perf_counter()
        col.search([q], 10, mode=mode)
        latencies.append(time.perf_counter() - t)
    t = time.perf_counter()
    results = col.search(queries, 10, mode=mode)
    batch = time.perf_counter() - t
    latencies.sort()
    return {"p50_ms": round(1000 * statistics.median(latencies), 2),
            "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 2),
            "single_qps": round(len(queries) / sum(latencies), 1), "batch_qps": round(len(queries) / batch, 1),
            "_ids": results.ids}


def run_system(name: str, make: Any, source: Path, queries: list[str], modes: list[str],
               reference: dict[str, Any] | None) -> dict[str, Any]:
    t = time.perf_counter()
    col, ingest = make()
    seconds = time.perf_counter() - t
    docs = len(col)
    out: dict[str, Any] = {"documents": docs, "ingest_seconds": round(seconds, 1),
                           "ingest_docs_per_s": round(docs / seconds, 1), **ingest}
    for mode in modes:
        m = measure_queries(col, queries, mode)
        ids = m.pop("_ids")
        if reference is not None:
            m["top10_identical_to_plain"] = bool((ids == reference[mode]).all())
        else:
            out.setdefault("_ids", {})[mode] = ids
        out[mode] = m
    print(name, {k: v for k, v in out.items() if k != "_ids"}, flush=True)
    return out, col


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--shards", default="1,2,4", help="shard counts for in-process shards")
    parser.add_argument("--ray-shards", default=None, help="shard counts on Ray (default: --shards)")
    parser.add_argument("--cache", action="store_true",
                        help="keep the embedding cache on (off by default: every system really encodes)")
    parser.add_argument("--dense", default="wordllama", help="encoder for the dense index ('none': BM25 only)")
    parser.add_argument("--no-ray", action="store_true", help="in-process shards only")
    args = parser.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")
    if not args.cache:  # set before Ray starts, so the shard actors inherit it
        os.environ["RETRIEVEKIT_EMBEDDING_CACHE"] = "off"
    from retrievekit import Collection
    from retrievekit.sharding import ShardedCollection

    source = corpus(args.docs, args.queries)
    queries = read_queries(source, args.queries)
    dense = None if args.dense == "none" else args.dense
    modes = ["bm25"] + (["dense", "hybrid"] if dense else [])
    options = {"dense": dense} if dense else {}
    work = WORK / f"collections-{args.docs}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    systems: dict[str, Any] = {}

    def plain() -> tuple[Any, dict[str, Any]]:
        col = Collection.create(work / "plain", **options)
        col.ingest(source / "corpus.jsonl", progress=False)
        return col, {"disk_bytes": tree_bytes(work / "plain")}

    systems["plain"], _ = run_system("plain", plain, source, queries, modes, None)
    reference = systems["plain"].pop("_ids")
    counts = {"local": [int(s) for s in args.shards.split(",")],
              "ray": [int(s) for s in (args.ray_shards or args.shards).split(",")]}
    backends = ["local"] + ([] if args.no_ray else ["ray"])
    for backend in backends:
        shard_counts = counts[backend]
        if backend == "ray":
            from retrievekit.sharding.backends.ray import init_ray

            init_ray("local", num_cpus=os.cpu_count())
        for n in shard_counts:
            name = f"{backend}-{n}"
            folder = work / name

            def sharded(folder: Path = folder, n: int = n, backend: str = backend) -> tuple[Any, dict[str, Any]]:
                col = ShardedCollection.create(folder, n, ray="local" if backend == "ray" else None, **options)
                report = col.ingest(source / "corpus.jsonl")
                shards = [tree_bytes(folder / f"shard-{i:03d}") for i in range(n)]
                return col, {"disk_bytes": sum(shards), "disk_bytes_per_shard": shards,
                             "commit_seconds": report["seconds"]}

            systems[name], col = run_system(name, sharded, source, queries, modes, reference)
            col.close()
    plain_r = systems["plain"]
    ratios = {name: {"ingest": round(s["ingest_docs_per_s"] / plain_r["ingest_docs_per_s"], 3),
                     **{f"{m}_p50_latency": round(s[m]["p50_ms"] / plain_r[m]["p50_ms"], 3) for m in modes}}
              for name, s in systems.items() if name != "plain"}
    # Capacity model: per-shard disk per document and per-shard latency scale with documents per shard (postings
    # and vectors are read in proportion); latency at the target = slowest shard + the measured coordination cost.
    per_doc_bytes = plain_r["disk_bytes"] / plain_r["documents"]
    model = {}
    for per_shard in (5_000_000, 10_000_000, 25_000_000):
        shards = -(-TARGET_DOCS // per_shard)
        scale = per_shard / plain_r["documents"]
        entry: dict[str, Any] = {"shards": shards, "disk_gb_per_shard": round(per_doc_bytes * per_shard / 1e9, 1)}
        for m in modes:
            overhead_ms = max(systems.get("ray-1", systems.get("local-1", plain_r))[m]["p50_ms"]
                              - plain_r[m]["p50_ms"], 0.0)
            entry[f"{m}_p50_ms_estimate"] = round(plain_r[m]["p50_ms"] * scale + overhead_ms, 1)
        model[f"{per_shard // 1_000_000}M_per_shard"] = entry
    out = {"benchmark": "sharding", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                       "load_average": round(os.getloadavg()[0], 2)},
           "options": vars(args), "corpus": str(source.relative_to(HERE)), "queries": len(queries),
           "systems": systems, "ratios_vs_plain": ratios, "capacity_model_100M": model,
           "bytes_per_document": round(per_doc_bytes, 1)}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"sharding_{args.docs}.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
