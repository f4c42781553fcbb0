"""BENCHMARKS.md section for BM25 at scale against PISA and tantivy: query speed and pruning
(``run_bm25_pruning.py``: ``results/bm25-pruning.json``), indexing (``run_bm25_indexing.py``:
``results/bm25-indexing.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report_common import load_result, markdown_table


def _qps(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else "–"


def _ratio(value: Any) -> str:
    return f"{value:.2f}x" if isinstance(value, int | float) else "–"


def pruning_sections(results: Path) -> list[str]:
    result = load_result(results / "bm25-pruning.json")
    if not result:
        return []
    machine = result["machine"]
    lines = ["## BM25 at scale: dynamic pruning, PISA and tantivy (issue 17)", "",
             f"`python benchmarks/run_bm25_pruning.py --pisa-python ...` ({result['date']}; {machine['cpus']} cores, "
             f"load {machine['load_average']}): one thread, all queries in one call, best of {result['repeats']} "
             f"after a warm-up, the two systems alternated {result.get('rounds', 1)} times (best kept). "
             "*exhaustive*: retrievekit's accumulator kernel; *retrievekit*: the default, MaxScore where the cost rule "
             "chooses it — identical ids and scores to the exhaustive pass on every query (checked in the run). "
             "*PISA*: pyterrier-pisa with its default algorithm (block-max WAND); *PISA best*: the fastest of its "
             "algorithms at that k. Ratios are retrievekit over PISA.", ""]
    headers = ["dataset", "docs", "query words", "k", "exhaustive q/s", "retrievekit q/s", "pruning",
               "PISA q/s", "PISA best q/s", "vs PISA", "vs PISA best"]
    rows = []
    for run in result["runs"]:
        for k, row in run["k"].items():
            rows.append([run["dataset"], f"{run['docs']:,}", run["mean_query_words"], k, _qps(row["exhaustive_qps"]),
                         _qps(row["retrievekit_qps"]), _ratio(row["pruning_speedup"]), _qps(row.get("pisa_qps")),
                         f"{_qps(row.get('pisa_best_qps'))} ({row.get('pisa_best_algorithm', '–')})",
                         _ratio(row.get("vs_pisa")), _ratio(row.get("vs_pisa_best"))])
    lines += markdown_table(headers, rows)
    quality = [[r["dataset"], r.get("retrievekit_ndcg@10"), r.get("pisa_ndcg@10")] for r in result["runs"]
               if r.get("retrievekit_ndcg@10") is not None]
    if quality:
        lines += ["", "Effectiveness on the same queries (nDCG@10; retrievekit's analyzer is Lucene's English, PISA's "
                  "Porter2 with Lucene's stop words, so rankings differ slightly):", ""]
        lines += markdown_table(["dataset", "retrievekit", "PISA"], quality)
    return lines + [""] + _indexing(results)


def _gib(value: Any) -> str:
    return f"{value / 2**30:.2f}" if isinstance(value, int | float) else "–"


def _indexing(results: Path) -> list[str]:
    result = load_result(results / "bm25-indexing.json")
    if not result:
        return []
    machine = result["machine"]
    lines = ["### Indexing", "",
             f"`python benchmarks/run_bm25_indexing.py --peers-python ...` ({result['date']}; {machine['cpus']} cores, "
             f"load {machine['load_average']}): {result['dataset']}, file to committed index, each system in a fresh "
             "process (peak RSS is its own: retrievekit's main process, and its largest worker process apart); PISA "
             "and tantivy with one indexing thread.", ""]
    rows = []
    for name, s in result["systems"].items():
        rows.append([name, f"{s['index_docs_per_second']:,.0f}", f"{s['index_seconds']:,.1f}",
                     f"{s['index_bytes'] / 1e6:,.0f}", _gib(s.get("index_peak_rss_bytes")),
                     _gib(s.get("worker_peak_rss_bytes"))])
    lines += markdown_table(["system", "docs/s", "seconds", "index MB", "peak RSS GiB", "worker peak RSS GiB"], rows)
    return lines + [""]
