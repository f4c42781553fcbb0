"""BENCHMARKS.md section for sharded collections (``run_sharding.py`` results: ``results/sharding_<docs>.json``,
the largest run shown in full, smaller ones listed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report_common import load_result, markdown_table


def _system_rows(result: dict[str, Any], modes: list[str]) -> list[list[Any]]:
    rows = []
    for name, s in result["systems"].items():
        row: list[Any] = [name, f"{s['ingest_docs_per_s']:,.0f}", f"{s['disk_bytes'] / 1e6:,.0f}"]
        for m in modes:
            q = s[m]
            same = "" if name == "plain" else (" ✓" if q.get("top10_identical_to_plain") else " ✗")
            row += [f"{q['p50_ms']} / {q['p95_ms']}{same}", f"{q['batch_qps']:,.0f}"]
        rows.append(row)
    return rows


def sharding_sections(results: Path) -> list[str]:
    runs = sorted((load_result(p) for p in results.glob("sharding_*.json")), key=lambda r: r["options"]["docs"])
    runs = [r for r in runs if r]
    if not runs:
        return []
    main = runs[-1]
    modes = [m for m in ("bm25", "dense", "hybrid") if m in main["systems"]["plain"]]
    docs = main["options"]["docs"]
    lines = ["## Sharded collections (issue 15)", "",
             f"`python benchmarks/run_sharding.py --docs {docs}` ({main['date']}; {main['machine']['cpus']} cores, "
             f"load {main['machine']['load_average']}): {docs:,} synthetic MS MARCO-shaped passages "
             f"(`benchmarks/synthetic.py`), {main['queries']} queries, dense = {main['options']['dense']}. "
             "`local-N`: N shards in this process; `ray-N`: N Ray actors on a local Ray. Every shard shares the same "
             "2 cores here, so sharding cannot speed anything up on this machine: the table shows what the "
             "coordination costs. ✓: the top 10 of every query is identical to the plain collection's.", ""]
    headers = ["system", "ingest docs/s", "disk MB"]
    for m in modes:
        headers += [f"{m} p50 / p95 ms (one query)", f"{m} q/s (batch)"]
    lines += markdown_table(headers, _system_rows(main, modes)) + [""]
    ratio_rows = [[name, r["ingest"], *[r[f"{m}_p50_latency"] for m in modes]]
                  for name, r in main["ratios_vs_plain"].items()]
    lines += ["Ratios to the plain collection (ingest throughput; p50 latency, >1 = slower):", ""]
    lines += markdown_table(["system", "ingest", *[f"{m} p50" for m in modes]], ratio_rows) + [""]
    model = main["capacity_model_100M"]
    lines += ["**Capacity model for 100M passages** (from this run: disk per document "
              f"{main['bytes_per_document']:,.0f} bytes; a shard's latency grows with its documents — postings "
              "and vectors are scanned in proportion — and the merged answer waits for the slowest shard plus the "
              "coordination cost measured above at 1 shard). Each shard on its own machine (cores and memory for "
              "its index); the estimates are for the exact (brute-force) dense search, which an ANN tier "
              "(`vectors='hnsw'`) replaces at this scale.", ""]
    rows = [[k.replace("_per_shard", " / shard"), v["shards"], v["disk_gb_per_shard"],
             *[v[f"{m}_p50_ms_estimate"] for m in modes]] for k, v in model.items()]
    lines += markdown_table(["documents", "shards", "disk = memory GB / shard",
                             *[f"{m} p50 ms (est.)" for m in modes]], rows) + [""]
    lines += ["Memory: indexes are memory-mapped, so a shard searches at the speeds above when its index files fit "
              "in the page cache (memory ≈ disk per shard); with less, reads go to disk.", ""]
    if len(runs) > 1:
        lines += ["Smaller runs: " + ", ".join(f"`results/sharding_{r['options']['docs']}.json`"
                                                for r in runs[:-1]), ""]
    return lines
