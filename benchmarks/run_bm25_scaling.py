"""BM25 scaling (issue 17): retrievekit and PISA from 1M to 10M synthetic documents, in one run per size.

For each size N (``benchmarks/synthetic.py`` corpora, generated into ``benchmarks/work/synthetic-N`` when missing):

* retrievekit's collection is built in a fresh subprocess (``Collection.ingest`` with its default worker processes,
  then ``optimize()`` to one segment, as PISA builds one index): seconds, docs/s, index bytes, peak RSS of the main
  process and of the largest worker. PISA's index is built by ``benchmarks/peers/pisa_peer.py`` (one thread).
  Both are kept under ``benchmarks/work/pruning/`` and ``benchmarks/work/pisa/`` and reused by later runs.
* queries/s, one thread, all of the corpus's 1,000 queries in one call, best of ``--repeats``, for every k, the two
  systems alternated ``--rounds`` times (``run_bm25_pruning.run``: it also checks that MaxScore returns exactly the
  exhaustive kernel's ids and scores for every query, and fails otherwise);
* latency: every query alone (one call each, after a warm-up pass), p50/p99/mean in milliseconds, for both systems.

``--cleanup`` deletes a size's corpus and both indexes after it is measured (not the smallest's or the largest's),
so that the 10M run fits the disk beside the smaller ones. The result file is rewritten after every size.

    python benchmarks/run_bm25_scaling.py --sizes 1000000,3000000,10000000 \
        --pisa-python benchmarks/work/pisa-env/bin/python --cleanup
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work"


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def child(data: Path, folder: Path, out: Path) -> None:
    """Build the collection (this process does nothing else first): ingest, then optimize to one segment."""
    from retrievekit import Collection

    started = time.perf_counter()
    col = Collection.create(folder, analyzer="lucene-english")
    col.ingest(data, progress=False)
    ingest_seconds = time.perf_counter() - started
    segments = len(col.snapshot().segments)
    col.optimize()
    seconds = time.perf_counter() - started
    out.write_text(json.dumps({
        "docs": len(col), "index_seconds": round(seconds, 2), "ingest_seconds": round(ingest_seconds, 2),
        "index_docs_per_second": round(len(col) / seconds, 1), "segments_before_optimize": segments,
        "index_bytes": dir_bytes(folder),
        "index_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "worker_peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))


def subprocess_json(command: list[str], out: Path) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def build(n: int, pisa_python: str | None) -> dict[str, Any]:
    """Corpus, retrievekit collection and PISA index for size ``n`` (each made once); their build figures."""
    sys.path.insert(0, str(REPO))
    from benchmarks.synthetic import SyntheticConfig, generate

    name = f"synthetic-{n}"
    data = WORK / name
    if not (data / "synthetic.json").exists():
        generate(data, SyntheticConfig(docs=n))
    folder, stats = WORK / "pruning" / name, WORK / "pruning" / f"{name}.build.json"
    built: dict[str, Any] = {}
    if not stats.exists() and (folder / "manifest.json").exists():  # built by run_bm25_pruning.py: no figures
        stats.write_text(json.dumps({"docs": n, "index_bytes": dir_bytes(folder), "reused": True}))
    if not stats.exists():
        shutil.rmtree(folder, ignore_errors=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.json"
            figures = subprocess_json(
                [sys.executable, __file__, "--child", str(data), str(folder), "--child-out", str(out)], out)
            figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]  # builds may share the machine
            stats.write_text(json.dumps(figures))
        print(f"{name}: retrievekit built {stats.read_text()}", file=sys.stderr, flush=True)
    built["retrievekit"] = json.loads(stats.read_text())
    if pisa_python:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.json"
            built["pisa"] = subprocess_json(
                [pisa_python, str(REPO / "benchmarks" / "peers" / "pisa_peer.py"), "--data", str(data), "--work",
                 str(WORK / "pisa" / name), "--out", str(out)], out)
        print(f"{name}: PISA built {built['pisa']}", file=sys.stderr, flush=True)
    return built


def our_latency(n: int, ks: list[int]) -> dict[str, dict[str, float]]:
    from benchmarks.run_bm25_pruning import load_queries
    from retrievekit import Collection
    from retrievekit.retrieval.bm25.retriever import BM25Retriever

    col = Collection.open(WORK / "pruning" / f"synthetic-{n}")
    queries = load_queries(WORK / f"synthetic-{n}")
    retriever = BM25Retriever(col)
    out = {}
    for k in ks:
        times = []
        for timed in (False, True):
            for query in queries:
                started = time.perf_counter()
                retriever.search([query], k)
                if timed:
                    times.append(time.perf_counter() - started)
        ms = np.asarray(times) * 1000
        out[str(k)] = {"p50_ms": round(float(np.percentile(ms, 50)), 4),
                       "p99_ms": round(float(np.percentile(ms, 99)), 4), "mean_ms": round(float(ms.mean()), 4)}
    return out


def pisa_latency(n: int, ks: list[int], pisa_python: str) -> dict[str, Any]:
    from benchmarks.run_bm25_pruning import load_query_pairs

    data = WORK / f"synthetic-{n}"
    with tempfile.TemporaryDirectory() as tmp:
        queries, out = Path(tmp) / "queries.json", Path(tmp) / "out.json"
        queries.write_text(json.dumps(load_query_pairs(data)))
        result = subprocess_json(
            [pisa_python, str(REPO / "benchmarks" / "peers" / "pisa_peer.py"), "--data", str(data), "--queries",
             str(queries), "--work", str(WORK / "pisa" / f"synthetic-{n}"), "--out", str(out), "--ks", "10",
             "--repeats", "1", "--algorithms", "", "--latency-ks", ",".join(map(str, ks))], out)
    return dict(result["latency"])


def drop_from_page_cache(path: Path) -> None:
    """Ask the kernel to drop a file's cached pages: the corpora are not read while measuring, and at 10M documents
    (6 GB) they would crowd both systems' indexes out of this machine's 24 GB."""
    if path.exists() and hasattr(os, "posix_fadvise"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cleanup(n: int) -> None:
    for path in (WORK / f"synthetic-{n}", WORK / "pruning" / f"synthetic-{n}", WORK / "pisa" / f"synthetic-{n}"):
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,3000000,10000000")
    parser.add_argument("--ks", default="10,100,1000")
    parser.add_argument("--latency-ks", default="10,100")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pisa-python", help="python of a PISA virtualenv (benchmarks/setup_pisa.sh)")
    parser.add_argument("--cleanup", action="store_true", help="delete each size's files after it is measured")
    parser.add_argument("--append", action="store_true",
                        help="keep the other sizes already in --out (each size's row records its own load)")
    parser.add_argument("--build-only", action="store_true",
                        help="only build what is missing (measure later, on a quiet machine, without this flag)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bm25-scaling.json")
    parser.add_argument("--child", nargs=2, metavar=("DATA", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.child_out)
        return 0
    sys.path.insert(0, str(REPO))
    from benchmarks.run_bm25_pruning import run

    sizes = [int(s) for s in args.sizes.split(",")]
    ks = [int(k) for k in args.ks.split(",")]
    latency_ks = [int(k) for k in args.latency_ks.split(",") if k]
    result: dict[str, Any] = {"benchmark": "bm25_scaling", "date": time.strftime("%Y-%m-%d"),
                              "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                                          "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")},
                              "repeats": args.repeats, "rounds": args.rounds, "threads": 1, "sizes": []}
    if args.append and args.out.exists():
        result["sizes"] = [row for row in json.loads(args.out.read_text())["sizes"] if row["docs"] not in sizes]
    if args.build_only:
        for n in sizes:
            build(n, args.pisa_python)
        return 0
    for n in sizes:
        for m in sizes:
            drop_from_page_cache(WORK / f"synthetic-{m}" / "corpus.jsonl")
        row: dict[str, Any] = {"docs": n, "build": build(n, args.pisa_python),
                               "load_average_before": [round(x, 2) for x in os.getloadavg()]}
        row["queries"] = run(f"synthetic-{n}", REPO.parent / "shared" / "data", ks, args.repeats, args.pisa_python,
                             args.rounds)
        row["latency"] = {"retrievekit": our_latency(n, latency_ks)}
        if args.pisa_python:
            row["latency"]["pisa"] = pisa_latency(n, latency_ks, args.pisa_python)
        row["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        result["sizes"] = sorted([*result["sizes"], row], key=lambda r: r["docs"])
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        for k, times in row["latency"]["retrievekit"].items():
            peer = row["latency"].get("pisa", {}).get(k, {})
            print(f"synthetic-{n} k={k} latency p50/p99 ms: retrievekit {times['p50_ms']}/{times['p99_ms']}, "
                  f"PISA {peer.get('p50_ms')}/{peer.get('p99_ms')}", file=sys.stderr, flush=True)
        if args.cleanup and n not in (min(sizes), max(sizes)):
            cleanup(n)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
