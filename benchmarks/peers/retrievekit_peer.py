"""retrievekit peer: build a persistent collection from a BEIR folder and search it through the Python API.

``Collection.create(path, analyzer="lucene-english")`` + ``col.ingest(data_dir)`` (which reads
``corpus.jsonl`` itself, indexes ``title + " " + text`` and commits to disk), then BM25 search at k=100
(retrievekit's BM25 is Lucene's: k1=0.9, b=0.4 by default).

Measured:
* indexing = ``Collection.create`` + ``ingest`` (file -> committed collection on disk, end to end);
* collection size on disk (everything in the folder: index, stored documents, manifest);
* ``single_thread_loop``: ``col.search([q], k)`` one query at a time;
* ``batch_threads_1``: ``col.search(all_queries, k, threads=1)``;
* ``batch_threads_N``: ``col.search(all_queries, k, threads=N)``;
* peak RSS while indexing and while querying, and the process peak.

Run from the repository root (with ``src`` on ``PYTHONPATH`` or retrievekit installed):
``python -m benchmarks.peers.retrievekit_peer --data DIR --out FILE --work DIR``.
"""

from __future__ import annotations

import functools
import gc
import logging
import shutil
from collections.abc import Sequence
from typing import Any

from benchmarks.peers import (
    Memory,
    Stopwatch,
    base_parser,
    base_result,
    cap_queries,
    count_lines,
    dir_breakdown,
    dir_bytes,
    evaluate_run,
    load_dataset,
    run_from_arrays,
    setup_logging,
    time_queries,
    versions,
    write_result,
)

logger = logging.getLogger("retrievekit_peer")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--analyzer", default="lucene-english", help="collection analyzer name")
    parser.add_argument("--workers", type=int, default=None,
                        help="ingest worker processes (default: retrievekit's own default, CPU count up to 4)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    mem = Memory()

    import retrievekit
    from retrievekit import Collection

    baseline_rss = mem.current()
    # retrievekit reads the corpus itself; only the queries and qrels are loaded here.
    ds = load_dataset(args.data, args.name, args.split, with_corpus=False)
    queries_total = len(ds.query_ids)
    cap_queries(ds, args.max_queries)

    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    col_dir = args.work / "collection"
    mem.reset_peak()
    with Stopwatch() as sw_index:
        col = Collection.create(col_dir, analyzer=args.analyzer, exist_ok=False)
        col.ingest(args.data, progress=False, workers=args.workers)
    peak_index = mem.peak()
    # Worker processes are not in this process's RSS: the largest one's peak, from the kernel's accounting.
    import os
    import resource

    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    workers = args.workers if args.workers is not None else min(os.cpu_count() or 1, 4)
    try:
        n_docs = len(col)
    except TypeError:  # no __len__: count the corpus lines instead
        n_docs = count_lines(args.data / "corpus.jsonl" if args.data.is_dir() else args.data)
    k = min(args.k, n_docs)
    index_bytes = dir_bytes(col_dir)
    logger.info("ingested %d docs in %.1f s, %.1f MB on disk", n_docs, sw_index.seconds, index_bytes / 1e6)

    gc.collect()
    rss_before_queries = mem.current()
    mem.reset_peak()
    texts = ds.query_texts
    notes: list[str] = []

    def single_loop(texts: Sequence[str]) -> tuple[list[Any], list[Any]]:
        id_rows: list[Any] = []
        score_rows: list[Any] = []
        for text in texts:
            res = col.search([text], k=k)
            id_rows.append(res.ids[0])
            score_rows.append(res.scores[0])
        return id_rows, score_rows

    modes: dict[str, dict[str, Any]] = {}
    timing, (loop_ids, loop_scores) = time_queries(single_loop, texts, args.min_seconds)
    modes["single_thread_loop"] = {"label": "col.search([q], k) one query per call", "threads": 1, **timing}
    batch_ids: Any = None
    def batch(texts: Sequence[str], threads: int) -> Any:
        return col.search(list(texts), k=k, threads=threads)

    for threads in dict.fromkeys((1, args.threads)):
        try:
            timing, res = time_queries(functools.partial(batch, threads=threads), texts, args.min_seconds)
        except TypeError as exc:  # an API without the threads argument
            notes.append(f"col.search(..., threads={threads}) failed: {exc}")
            continue
        if batch_ids is None:
            batch_ids = res.ids
        modes[f"batch_threads_{threads}"] = {
            "label": f"col.search(all queries, k, threads={threads})", "threads": threads, **timing}
    peak_query = mem.peak()

    run = run_from_arrays(ds.query_ids, loop_ids, loop_scores)
    metrics = evaluate_run(run, ds.qrels)
    batch_agrees = batch_ids is None or all(
        list(a[:10]) == list(b[:10]) for a, b in zip(loop_ids, batch_ids)
    )

    result = base_result("retrievekit", ds, n_docs, queries_total)
    result["notes"].extend(notes)
    result.update({
        "label": f"retrievekit {getattr(retrievekit, '__version__', None) or versions(['retrievekit'])['retrievekit']}",
        "k": k,
        "config": {"analyzer": args.analyzer, "contents": 'title + " " + text', "api": "Collection.search"},
        "ndcg@10": metrics["ndcg@10"],
        "recall@100": metrics["recall@100"],
        "evaluator": metrics["evaluator"],
        "index_seconds": round(sw_index.seconds, 3),
        "index_docs_per_second": round(n_docs / sw_index.seconds, 1),
        "index": {
            "definition": "index_seconds = Collection.create + ingest (reads corpus.jsonl, indexes, commits)",
            "files": dir_breakdown(col_dir),
        },
        "index_bytes": index_bytes,
        "inverted_index_bytes": sum(dir_bytes(p) for p in col_dir.glob("seg-*/bm25")),
        "ingest_workers": workers,
        "worker_peak_rss_bytes": worker_peak if workers > 1 else None,
        "queries_per_second": modes["single_thread_loop"]["qps"],
        "query_modes": modes,
        "batch_top10_equals_loop": batch_agrees,
        "memory": {
            "baseline_rss_bytes": baseline_rss,
            "peak_index_rss_bytes": peak_index,
            "rss_before_queries_bytes": rss_before_queries,
            "peak_query_rss_bytes": peak_query,
            "peak_rss_bytes": max(mem.overall_peak, peak_query),
        },
        "peak_rss_bytes": max(mem.overall_peak, peak_query),
        "versions": versions(["retrievekit", "numpy", "scipy", "PyStemmer"]),
    })
    result["notes"].append("index_bytes is the whole collection folder (see index.files), which may hold more "
                           "than the inverted index, e.g. stored documents")
    if not batch_agrees:
        result["notes"].append("batched search returned different top-10 ids than the one-query loop")
    write_result(args.out, result)
    logger.info("retrievekit on %s: nDCG@10 %.4f R@100 %.4f, %s QPS (loop)", ds.name, metrics["ndcg@10"],
                metrics["recall@100"], modes["single_thread_loop"]["qps"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
