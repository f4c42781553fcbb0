"""BENCHMARKS.md section for BM25 at scale against PISA and tantivy: query speed and pruning
(``run_bm25_pruning.py``: ``results/bm25-pruning.json``), indexing (``run_bm25_indexing.py``:
``results/bm25-indexing.json``) and scaling from 1M to 10M documents (``run_bm25_scaling.py``:
``results/bm25-scaling.json``)."""

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
    return lines + [""] + _indexing(results) + _scaling(results)


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
             "and tantivy with one indexing thread." + (
                 f" {result['repeat']} rounds, every system once per round; each system's fastest run is shown, "
                 "with the seconds of every run." if result.get("repeat", 1) > 1 else ""), ""]
    rows = []
    tantivy = result["systems"].get("tantivy")
    for name, s in result["systems"].items():
        rows.append([name, f"{s['index_docs_per_second']:,.0f}",
                     f"{s['index_docs_per_second'] / tantivy['index_docs_per_second']:.2f}×" if tantivy else "–",
                     f"{s['index_seconds']:,.1f}" + (f" ({', '.join(f'{x:,.1f}' for x in s['runs_index_seconds'])})"
                                                     if len(s.get("runs_index_seconds", [])) > 1 else ""),
                     f"{s['index_bytes'] / 1e6:,.0f}", _gib(s.get("index_peak_rss_bytes_max",
                                                               s.get("index_peak_rss_bytes"))),
                     _gib(s.get("worker_peak_rss_bytes"))])
    lines += markdown_table(["system", "docs/s", "× tantivy", "seconds (every run)", "index MB", "peak RSS GiB",
                             "worker peak RSS GiB"], rows)
    later = [f"{name} ({s['appended']}, load {s['appended_load_average']})" for name, s in result["systems"].items()
             if "appended" in s]
    if later:
        lines += ["", "Measured in a later run of the script (`--append`) on the same machine: " + "; ".join(later)
                  + "."]
    bm25s = result["systems"].get("bm25s")
    if bm25s and bm25s.get("definition"):
        lines += ["", f"bm25s: {bm25s['definition']}; its peak RSS is the peak while indexing."]
    return lines + [""]


def _scaling(results: Path) -> list[str]:
    result = load_result(results / "bm25-scaling.json")
    if not result:
        return []
    machine = result["machine"]
    lines = ["### Scaling: 1M to 10M documents", "",
             f"`python benchmarks/run_bm25_scaling.py --pisa-python ...` ({result['date']}; {machine['cpus']} cores, "
             f"{machine['memory_bytes'] / 2**30:.0f} GiB): synthetic corpora of each size, the same 1,000-query "
             "generator. *q/s*: one thread, all queries in one call, best of "
             f"{result['repeats']}, the systems alternated {result['rounds']} times (retrievekit's rankings checked "
             "identical to its exhaustive kernel at every k). *latency*: each query alone, one call each, after a "
             "warm-up pass (PISA's through its extension's `retrieve`, without PyTerrier's DataFrame). Load averages "
             "are the machine's before and after each size's measurement.", ""]
    rows = []
    for size in result["sizes"]:
        queries, latency = size["queries"], size["latency"]
        for k, row in queries["k"].items():
            ours, peer = latency["retrievekit"].get(k), latency.get("pisa", {}).get(k)
            rows.append([f"{size['docs']:,}", k, _qps(row["retrievekit_qps"]), _qps(row.get("pisa_qps")),
                         _ratio(row.get("vs_pisa")), _ratio(row.get("vs_pisa_best")),
                         f"{ours['p50_ms']:.3f} / {ours['p99_ms']:.2f}" if ours else "–",
                         f"{peer['p50_ms']:.3f} / {peer['p99_ms']:.2f}" if peer else "–",
                         f"{size['load_average_before'][0]} / {size['load_average_after'][0]}"])
    lines += markdown_table(["docs", "k", "retrievekit q/s", "PISA q/s", "vs PISA", "vs PISA best",
                             "retrievekit p50 / p99 ms", "PISA p50 / p99 ms", "load"], rows)
    builds = []
    for size in result["sizes"]:
        for name, b in size["build"].items():
            if b.get("reused") or "load_average_after" not in b:  # built by an earlier benchmark: no like figures
                continue
            builds.append([f"{size['docs']:,}", name, f"{b['index_docs_per_second']:,.0f}",
                           f"{b['index_bytes'] / 1e9:,.2f}", _gib(b.get("index_peak_rss_bytes")),
                           _gib(b.get("worker_peak_rss_bytes")), b.get("load_average_after", ["–"])[0]])
    if builds:
        lines += ["", "Builds (retrievekit: ingest with its default 2 worker processes, then one segment; PISA: one "
                  "thread). Built before the measurement, while other work shared the machine — the load after each "
                  "build is shown (sizes built by earlier benchmarks are left out); `run_bm25_indexing.py` above is "
                  "the like-for-like indexing comparison:", ""]
        lines += markdown_table(["docs", "system", "docs/s", "index GB", "peak RSS GiB", "worker peak RSS GiB",
                                 "load"], builds)
    return lines + [""]
