"""PISA peer (the C++ reference for BM25 query speed) through the ``pyterrier-pisa`` wheel, run in its own
virtualenv (``benchmarks/setup_pisa.sh``; PISA's PyTerrier stack is not a retrievekit dependency).

Indexes a BEIR folder's ``corpus.jsonl`` (``title + " " + text``; Porter2 stemming, Lucene's English stop words:
the closest of PISA's options to Lucene's EnglishAnalyzer), then BM25 (k1=0.9, b=0.4) over the given queries, one
thread, all queries in one call, for each k (best of ``--repeats`` after a warm-up call), with PISA's default query
algorithm (block-max WAND) and every algorithm named in ``--algorithms``. Writes one JSON object: index seconds,
docs/s, index bytes, peak RSS while indexing (this process, which does nothing else first), queries/s per k and
algorithm, and the top-10 document ids of every query (for the caller to compare effectiveness).

    python benchmarks/peers/pisa_peer.py --data DIR --queries FILE --work DIR --out FILE
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def corpus(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            yield {"docno": str(row["_id"]), "text": (row.get("title") or "") + " " + (row.get("text") or "")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR folder with corpus.jsonl")
    parser.add_argument("--queries", type=Path, help="JSON list of [qid, text]; none: index only")
    parser.add_argument("--work", type=Path, required=True, help="folder for the PISA index (reused if complete)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ks", default="10,100,1000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--algorithms", default="block_max_wand,block_max_maxscore,maxscore")
    parser.add_argument("--latency-ks", default="", help="also time every query alone at these k (default algorithm)")
    args = parser.parse_args(argv)

    import pandas as pd
    import pyterrier_pisa
    from pyterrier_pisa import PisaIndex

    index_dir = args.work / "index.pisa"
    done = args.work / "index.done.json"
    if done.exists():
        index_info = json.loads(done.read_text())
    else:
        shutil.rmtree(index_dir, ignore_errors=True)
        args.work.mkdir(parents=True, exist_ok=True)
        index = PisaIndex(str(index_dir), stemmer="porter2", stops="lucene", threads=1)
        started = time.perf_counter()
        index.index(corpus(args.data / "corpus.jsonl"))
        seconds = time.perf_counter() - started
        with open(args.data / "corpus.jsonl", encoding="utf-8") as f:
            n_docs = sum(1 for _ in f)
        index_info = {"index_seconds": round(seconds, 2), "docs": n_docs,
                      "index_docs_per_second": round(n_docs / seconds, 1), "index_bytes": dir_bytes(index_dir),
                      "index_peak_rss_bytes": peak_rss_bytes(), "threads": 1,
                      "load_average_after": [round(x, 2) for x in os.getloadavg()]}
        done.write_text(json.dumps(index_info))
    if args.queries is None:
        args.out.write_text(json.dumps({"system": "pisa", "version": getattr(pyterrier_pisa, "__version__", "?"),
                                        **index_info}))
        return 0
    index = PisaIndex(str(index_dir), stemmer="porter2", stops="lucene", threads=1)
    pairs = json.loads(args.queries.read_text())
    frame = pd.DataFrame({"qid": [q for q, _ in pairs], "query": [t for _, t in pairs]})
    result: dict = {"system": "pisa", "version": getattr(pyterrier_pisa, "__version__", "?"), **index_info,
                    "queries": len(pairs), "k": {}}
    for k in [int(x) for x in args.ks.split(",")]:
        result["k"][str(k)] = {}
        for algorithm in [None, *(a for a in args.algorithms.split(",") if a)]:
            retriever = index.bm25(k1=0.9, b=0.4, num_results=k, threads=1, query_algorithm=algorithm)
            run = retriever(frame)
            best = float("inf")
            for _ in range(args.repeats):
                started = time.perf_counter()
                run = retriever(frame)
                best = min(best, time.perf_counter() - started)
            name = algorithm or "default"
            result["k"][str(k)][name] = {"qps": round(len(pairs) / best, 1), "seconds": round(best, 4)}
            if k == 10 and algorithm is None:
                top = run.sort_values(["qid", "rank"]).groupby("qid")["docno"].apply(list)
                result["top10"] = {str(q): top.get(q, []) for q, _ in pairs}
    if args.latency_ks:
        result["latency"] = {k: latency(index, pairs, int(k)) for k in args.latency_ks.split(",")}
    args.out.write_text(json.dumps(result))
    return 0


def latency(index, pairs: list, k: int) -> dict:
    """Each query alone, PISA's default algorithm, one thread: p50/p99/mean milliseconds after one warm-up pass.

    Calls the extension's ``retrieve`` directly with one query: PyTerrier's per-call DataFrame work (about a
    millisecond) would otherwise be most of what a single query's latency measures.
    """
    import numpy as np
    from pyterrier_pisa import _pisathon

    retriever = index.bm25(k1=0.9, b=0.4, num_results=k, threads=1)
    retriever.reset_retrieval_context()
    buffers = {"result_qidxs": np.empty(k, dtype=np.int32), "result_docnos": np.empty(k, dtype=object),
               "result_ranks": np.empty(k, dtype=np.int32), "result_scores": np.empty(k, dtype=np.float32)}
    algorithm = retriever.query_algorithm.value
    weighted = 1 if retriever.query_weighted else 0
    times = []
    for timed in (False, True):
        for _, text in pairs:
            started = time.perf_counter()
            _pisathon.retrieve(retriever._ctxt, algorithm, [(0, text)], k=k, threads=1, query_weighted=weighted,
                               pretokenised=False, **buffers)
            if timed:
                times.append(time.perf_counter() - started)
    ms = np.asarray(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "mean_ms": round(float(ms.mean()), 4)}


if __name__ == "__main__":
    raise SystemExit(main())
