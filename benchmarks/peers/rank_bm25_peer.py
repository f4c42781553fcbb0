"""rank_bm25 peer: ``BM25Okapi`` with the same tokenization as the bm25s peer.

Tokens come from ``bm25s.tokenize`` (lowercase, regex ``\\b\\w\\w+\\b``, English stop words, PyStemmer
English stemmer) so that only the scoring library differs.  ``BM25Okapi(k1=0.9, b=0.4)``; note that
rank_bm25's Okapi idf is ``log((N - df + 0.5) / (df + 0.5))`` with negative values floored at
``epsilon * mean idf``, not Lucene's ``log(1 + (N - df + 0.5) / (df + 0.5))``.

rank_bm25 scores every document for every query term in Python, so it is slow on large corpora: use
``--max-queries`` there (run_bm25.py does), which is recorded in the result's notes.  It has no
persistence, so there is no index size; there is no batched or multi-threaded query API either, so only
the one-query-at-a-time loop is measured (``get_scores`` + top-k selection with ``numpy.argpartition``).

Run from the repository root: ``python -m benchmarks.peers.rank_bm25_peer --data DIR --out FILE --work DIR``.
"""

from __future__ import annotations

import gc
import logging
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
    evaluate_run,
    load_peer_corpus,
    run_from_arrays,
    setup_logging,
    time_queries,
    versions,
    write_result,
)

logger = logging.getLogger("rank_bm25_peer")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first (ties: lower index first)."""
    part = np.arange(len(scores)) if k >= len(scores) else np.argpartition(-scores, k - 1)[:k]
    order = np.lexsort((part, -scores[part]))
    return part[order]


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    mem = Memory()

    block_numba()  # bm25s (used for tokenization) would import it
    import bm25s
    import rank_bm25
    import Stemmer

    baseline_rss = mem.current()
    ds, contents, queries_total, n_docs, k, load_seconds, rss_after_load = load_peer_corpus(args, mem)

    stemmer = Stemmer.Stemmer("english")
    mem.reset_peak()
    with Stopwatch() as sw_tok:
        corpus_tokens = bm25s.tokenize(contents, stopwords="en", stemmer=stemmer, return_ids=False,
                                       show_progress=False)
    with Stopwatch() as sw_index:
        model = rank_bm25.BM25Okapi(corpus_tokens, k1=K1, b=B)
    peak_index = mem.peak()
    del corpus_tokens, contents
    logger.info("indexed %d docs in %.1f s (tokenize %.1f s)", n_docs, sw_tok.seconds + sw_index.seconds,
                sw_tok.seconds)

    doc_ids = np.asarray(ds.doc_ids, dtype=object)
    ds.doc_ids = []
    gc.collect()
    rss_before_queries = mem.current()
    mem.reset_peak()

    def single_loop(texts: Sequence[str]) -> tuple[list[Any], list[Any]]:
        id_rows: list[Any] = []
        score_rows: list[Any] = []
        for text in texts:
            tokens = bm25s.tokenize([text], stopwords="en", stemmer=stemmer, return_ids=False,
                                    show_progress=False)[0]
            scores = model.get_scores(tokens)
            best = top_k(scores, k)
            id_rows.append(doc_ids[best])
            score_rows.append(scores[best])
        return id_rows, score_rows

    timing, (ids, scores) = time_queries(single_loop, ds.query_texts, args.min_seconds, warmup_queries=5)
    peak_query = mem.peak()
    metrics = evaluate_run(run_from_arrays(ds.query_ids, ids, scores), ds.qrels)

    in_memory = sw_tok.seconds + sw_index.seconds
    end_to_end = load_seconds + in_memory
    result = base_result("rank_bm25", ds, n_docs, queries_total)
    result.update({
        "label": f"rank_bm25 {versions(['rank_bm25'])['rank_bm25']} (BM25Okapi)",
        "k": k,
        "config": {
            "class": "BM25Okapi", "k1": K1, "b": B, "epsilon": 0.25,
            "tokenizer": "bm25s.tokenize (lowercase, regex \\b\\w\\w+\\b, stopwords='en')",
            "stemmer": "PyStemmer english (Snowball)", "contents": 'title + " " + text',
        },
        "ndcg@10": metrics["ndcg@10"],
        "recall@100": metrics["recall@100"],
        "evaluator": metrics["evaluator"],
        "index_seconds": round(end_to_end, 3),
        "index_docs_per_second": round(n_docs / end_to_end, 1),
        "index": {
            "definition": "index_seconds = read corpus.jsonl + tokenize + BM25Okapi(...) (no persistence)",
            "load_seconds": round(load_seconds, 3),
            "tokenize_seconds": round(sw_tok.seconds, 3),
            "build_seconds": round(sw_index.seconds, 3),
            "save_seconds": None,
            "in_memory_seconds": round(in_memory, 3),
            "in_memory_docs_per_second": round(n_docs / in_memory, 1),
        },
        "index_bytes": None,
        "queries_per_second": timing["qps"],
        "query_modes": {"single_thread_loop": {
            "label": "one query per call: bm25s.tokenize([q]) + get_scores + argpartition top-k",
            "threads": 1, **timing}},
        "memory": {
            "baseline_rss_bytes": baseline_rss,
            "rss_after_load_bytes": rss_after_load,
            "peak_index_rss_bytes": peak_index,
            "rss_before_queries_bytes": rss_before_queries,
            "peak_query_rss_bytes": peak_query,
            "peak_rss_bytes": max(mem.overall_peak, peak_query),
        },
        "peak_rss_bytes": max(mem.overall_peak, peak_query),
        "versions": versions(["rank_bm25", "bm25s", "PyStemmer", "numpy"]),
    })
    result["notes"].append("rank_bm25 keeps its index in memory only: no index size on disk")
    result["notes"].append("BM25Okapi's idf differs from Lucene's (see the peer's docstring)")
    write_result(args.out, result)
    logger.info("rank_bm25 on %s: nDCG@10 %.4f R@100 %.4f, %s QPS", ds.name, metrics["ndcg@10"],
                metrics["recall@100"], timing["qps"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
