"""Render ``benchmarks/results/load.json`` (written by ``run_load.py``) as a Markdown section for BENCHMARKS.md.

    python benchmarks/report_load.py [RESULTS_JSON]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).resolve().parent / "results" / "load.json"


def _ms(value: Any) -> str:
    return "—" if value is None else f"{value:.1f}"


def _verification_line(name: str, v: dict[str, Any]) -> str:
    if v["ok"]:
        return (f"* {name}: all {v['checked_live']:,} acknowledged added/updated ids readable with the acknowledged "
                f"content, {v['checked_search']} of them found by search, {v['checked_deleted']:,} deleted ids "
                f"absent, {v['checked_base']} sampled corpus ids present, {v['documents']:,} live documents"
                + (" (as expected)." if v.get("count_ok") else " (count not checked: some write outcomes unknown)."))
    kinds = ", ".join(f"{k} {v[k]}" for k in ("missing", "stale", "resurrected", "unsearchable", "base_missing")
                      if v.get(k))
    count = "" if v.get("count_ok") is not False else (f"; server reports {v['documents']} documents, expected "
                                                       f"{v['expected_documents']}")
    return f"* {name}: **FAILED** — {kinds or 'count mismatch'}{count}. First problems: {v['problems'][:5]}"


def render(doc: dict[str, Any]) -> str:
    p, m, t = doc["parameters"], doc["machine"], doc["totals"]
    pk = m.get("packages") or {}
    lines = [
        "## HTTP server under load",
        "",
        f"`python benchmarks/run_load.py` — {p['clients']} concurrent clients (threads, httpx) for {p['seconds']:g} s "
        f"against `retrievekit serve` on loopback, over {doc['collection']['documents']:,} scifact documents; "
        f"{p['write_ratio']:.0%} of operations write ({p['write_mix']}; adds are batches of {p['batch']} new "
        f"documents), the rest search real scifact queries (k={p['k']}, modes {', '.join(p['modes'])}). "
        "Latency is client-side, request to response (a write answered 409 writer_busy is retried and its latency "
        "includes the retries). Clients and server share the machine: "
        f"{m.get('cpu_model') or '?'}, {m.get('usable_cores') or m.get('logical_cores')} cores; "
        f"retrievekit {pk.get('retrievekit')}, uvicorn {pk.get('uvicorn')}, fastapi {pk.get('fastapi')}, "
        f"Python {m.get('python')}.",
        "",
        "| operation | completed | per second | p50 ms | p95 ms | p99 ms | max ms | errors | 409 busy (retried) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for op, o in doc["operations"].items():
        lines.append(f"| {op} | {o['ok']:,} | {o['per_second']:.1f} | {_ms(o['p50_ms'])} | {_ms(o['p95_ms'])} | "
                     f"{_ms(o['p99_ms'])} | {_ms(o['max_ms'])} | {o['errors']} | {o['writer_busy']} |")
    lines.append(f"| **all** | {t['ok']:,} | {t['per_second']:.1f} | | | | | {t['errors']} | {t['writer_busy']} |")
    lines.append("")
    cpu = ""
    if t.get("server_cpu_s") is not None:
        cpu = (f" CPU during the run: server {t['server_cpu_s']:.1f} s, load clients {t['client_cpu_s']:.1f} s "
               f"(of {doc['elapsed_s'] * (m.get('usable_cores') or 1):.0f} core-seconds).")
    lines.append(f"Errors (non-2xx other than 409, or exceptions): **{t['errors']}**. "
                 f"Documents added: {t['docs_added']:,}; deleted: {t['deleted']:,}; write outcomes unknown: "
                 f"{t['uncertain']}.{cpu}")
    if doc.get("error_samples"):
        lines.append("")
        lines.append("First errors: " + "; ".join(f"{e['op']}: {e['error']}" for e in doc["error_samples"][:5]))
    lines += ["", "No lost writes — checked after the load:"]
    v = doc["verification"]
    lines.append(_verification_line("on the running server", v["before_restart"]))
    lines.append(_verification_line(f"after killing the server ({v.get('restart', 'restart')}) and starting a new one",
                                    v["after_restart"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Render the load-test results as Markdown.")
    p.add_argument("results", nargs="?", type=Path, default=DEFAULT, help=f"results JSON (default {DEFAULT})")
    args = p.parse_args(argv)
    if not args.results.is_file():
        print(f"no results at {args.results}; run benchmarks/run_load.py first", file=sys.stderr)
        return 2
    print(render(json.loads(args.results.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
