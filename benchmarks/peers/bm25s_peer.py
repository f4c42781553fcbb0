"""bm25s peer: index a BEIR dataset with bm25s, time indexing and querying, evaluate, measure memory.

Configuration (the "Lucene-like" setting bm25s documents): ``BM25(method="lucene", k1=0.9, b=0.4)``,
bm25s's own tokenizer (``bm25s.tokenize``: lowercase, regex ``\\b\\w\\w+\\b``, its English stop words)
with the PyStemmer English (Snowball) stemmer; contents = ``title + " " + text``.

Measured:
* indexing = tokenization + ``BM25.index``; reading ``corpus.jsonl`` into Python lists and
  ``BM25.save`` are timed separately and added for the end-to-end (file -> saved index) figure;
* index size = the ``BM25.save`` folder (no corpus copy);
* ``single_thread_loop``: one query at a time (``bm25s.tokenize([q])`` + ``retrieve(k=100)``, no threads);
* ``batch_threads_1``: one ``tokenize`` call for all queries + one ``retrieve`` call, no thread pool;
* ``batch_threads_N``: the same with ``retrieve(n_threads=N)``;
* peak RSS while indexing and while querying, and the process peak.

``--backend numba`` runs bm25s's numba backend (needs numba) instead of the default numpy one.

Run from the repository root: ``python -m benchmarks.peers.bm25s_peer --data DIR --out FILE --work DIR``.
"""

from __future__ import annotations

import gc
import logging
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.peers import (
    K1,
    B,
    Memory,
    Stopwatch,
    base_parser,
    base_result,
    block_numba,
    dir_breakdown,
    dir_bytes,
    evaluate_run,
    load_peer_corpus,
    run_from_arrays,
    setup_logging,
    time_queries,
    versions,
    write_result,
)

logger = logging.getLogger("bm25s_peer")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("numpy", "numba"), default="numpy",
                        help="bm25s scoring backend (numba needs the numba package)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    mem = Memory()

    if args.backend == "numba":
        import numba  # noqa: F401  # fail early, with a clear ImportError, when numba is missing
    else:
        block_numba()
    import bm25s
    import Stemmer

    baseline_rss = mem.current()
    ds, contents, queries_total, n_docs, k, load_seconds, rss_after_load = load_peer_corpus(args, mem)
    logger.info("%s: %d docs, %d queries loaded in %.1f s", ds.name, n_docs, len(ds.query_ids), load_seconds)

    stemmer = Stemmer.Stemmer("english")
    mem.reset_peak()
    with Stopwatch() as sw_tok:
        corpus_tokens = bm25s.tokenize(contents, stopwords="en", stemmer=stemmer, show_progress=False)
    with Stopwatch() as sw_init:  # the numba backend compiles its kernels here (one-off, not counted)
        retriever = bm25s.BM25(method="lucene", k1=K1, b=B, backend=args.backend)
    with Stopwatch() as sw_index:
        retriever.index(corpus_tokens, show_progress=False)
    peak_index = mem.peak()
    vocab_size = len(corpus_tokens.vocab)
    del corpus_tokens, contents

    index_dir = args.work / "bm25s-index"
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    with Stopwatch() as sw_save:
        retriever.save(str(index_dir))
    index_bytes = dir_bytes(index_dir)
    logger.info("indexed in %.1f s (tokenize %.1f s), saved %.1f MB",
                sw_tok.seconds + sw_index.seconds, sw_tok.seconds, index_bytes / 1e6)

    # The corpus text is not needed any more; drop it so the query phase shows the index's footprint.
    doc_ids = np.asarray(ds.doc_ids, dtype=object)
    ds.doc_ids = []
    gc.collect()
    rss_before_queries = mem.current()
    mem.reset_peak()

    texts = ds.query_texts

    def single_loop(texts: Sequence[str]) -> tuple[list[Any], list[Any]]:
        id_rows: list[Any] = []
        score_rows: list[Any] = []
        for text in texts:
            tokens = bm25s.tokenize([text], stopwords="en", stemmer=stemmer, show_progress=False)
            docs, scores = retriever.retrieve(tokens, corpus=doc_ids, k=k, show_progress=False, n_threads=0)
            id_rows.append(docs[0])
            score_rows.append(scores[0])
        return id_rows, score_rows

    def batch(texts: Sequence[str], threads: int) -> tuple[Any, Any]:
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
        return retriever.retrieve(tokens, corpus=doc_ids, k=k, show_progress=False,
                                  n_threads=0 if threads == 1 else threads)

    modes: dict[str, dict[str, Any]] = {}
    timing, (loop_ids, loop_scores) = time_queries(single_loop, texts, args.min_seconds)
    modes["single_thread_loop"] = {
        "label": "one query per call: bm25s.tokenize([q]) + retrieve(k, n_threads=0)",
        "threads": 1, **timing}
    timing, (batch_ids, _) = time_queries(lambda t: batch(t, 1), texts, args.min_seconds)
    modes["batch_threads_1"] = {
        "label": "one bm25s.tokenize call for all queries + one retrieve call, n_threads=0", "threads": 1, **timing}
    if args.threads > 1:
        timing, _ = time_queries(lambda t: batch(t, args.threads), texts, args.min_seconds)
        modes[f"batch_threads_{args.threads}"] = {
            "label": f"one bm25s.tokenize call + one retrieve call, n_threads={args.threads}",
            "threads": args.threads, **timing}
    peak_query = mem.peak()

    run = run_from_arrays(ds.query_ids, loop_ids, loop_scores)
    batch_agrees = all(list(a[:10]) == list(b[:10]) for a, b in zip(loop_ids, batch_ids))
    metrics = evaluate_run(run, ds.qrels)

    system = "bm25s" if args.backend == "numpy" else "bm25s-numba"
    result = base_result(system, ds, n_docs, queries_total)
    end_to_end = load_seconds + sw_tok.seconds + sw_index.seconds + sw_save.seconds
    result.update({
        "label": f"bm25s {bm25s.__version__} ({args.backend} backend)",
        "k": k,
        "config": {
            "method": "lucene", "k1": K1, "b": B, "backend": args.backend,
            "tokenizer": "bm25s.tokenize (lowercase, regex \\b\\w\\w+\\b, stopwords='en')",
            "stemmer": "PyStemmer english (Snowball)", "contents": 'title + " " + text',
        },
        "ndcg@10": metrics["ndcg@10"],
        "recall@100": metrics["recall@100"],
        "evaluator": metrics["evaluator"],
        "index_seconds": round(end_to_end, 3),
        "index_docs_per_second": round(n_docs / end_to_end, 1),
        "index": {
            "definition": "index_seconds = read corpus.jsonl + tokenize + BM25.index + BM25.save",
            "load_seconds": round(load_seconds, 3),
            "tokenize_seconds": round(sw_tok.seconds, 3),
            "build_seconds": round(sw_index.seconds, 3),
            "save_seconds": round(sw_save.seconds, 3),
            "init_seconds_not_counted": round(sw_init.seconds, 3),
            "in_memory_seconds": round(sw_tok.seconds + sw_index.seconds, 3),
            "in_memory_docs_per_second": round(n_docs / (sw_tok.seconds + sw_index.seconds), 1),
            "vocabulary": vocab_size,
            "files": dir_breakdown(index_dir),
        },
        "index_bytes": index_bytes,
        "queries_per_second": modes["single_thread_loop"]["qps"],
        "query_modes": modes,
        "batch_top10_equals_loop": batch_agrees,
        "memory": {
            "baseline_rss_bytes": baseline_rss,
            "rss_after_load_bytes": rss_after_load,
            "peak_index_rss_bytes": peak_index,
            "rss_before_queries_bytes": rss_before_queries,
            "peak_query_rss_bytes": peak_query,
            "peak_rss_bytes": max(mem.overall_peak, peak_query),
        },
        "peak_rss_bytes": max(mem.overall_peak, peak_query),
        "versions": versions(["bm25s", "PyStemmer", "numpy", "scipy", "numba"]),
    })
    result["notes"].append(
        "bm25s's tokenizer drops one-character tokens and uses the Snowball (Porter2) stemmer; "
        "Lucene's EnglishAnalyzer keeps them and uses Porter, so rankings differ slightly from Lucene's"
    )
    if not batch_agrees:
        result["notes"].append("batched retrieve returned different top-10 ids than the one-query loop")
    write_result(args.out, result)
    logger.info("%s on %s: nDCG@10 %.4f R@100 %.4f, %s QPS (loop)", system, ds.name,
                metrics["ndcg@10"], metrics["recall@100"], modes["single_thread_loop"]["qps"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
