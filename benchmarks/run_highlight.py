"""Snippet highlighting cost as documents grow (issue 12, D5: it was quadratic in the number of matches).

For texts with 2k/4k/8k matching terms, a 300 KB document of one repeated matching word and a 20 MB one, times
``html_snippet`` (what the HTTP API and the CLI run per hit) — best of 5 — and reports the cost per 1,000 matches,
which stays flat when the work is linear. Results: ``benchmarks/results/highlight.json``.

    python benchmarks/run_highlight.py
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from retrievekit.analysis import get_analyzer
from retrievekit.service.search import html_snippet

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "highlight.json"


def best_of(fn, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def render(doc: dict) -> str:  # type: ignore[type-arg]
    """The BENCHMARKS.md section (benchmarks/report.py calls this)."""
    lines = ["## Snippet highlighting on large documents", "",
             "`python benchmarks/run_highlight.py` — `html_snippet` (one search hit's highlighted snippet, as the HTTP "
             "API and the CLI make it), best of 5. The issue's measurements before the fix: 0.08 / 0.28 / 1.25 s for "
             "2k / 4k / 8k matching terms, 17 s for one hit on a 300 KB document over HTTP. Now only the first "
             "100,000 characters are analysed and the best window is found in one pass.", "",
             "| text | characters | ms |", "|---|---:|---:|"]
    lines += [f"| {r['case']} | {r['characters']:,} | {r['seconds'] * 1000:.1f} |" for r in doc["results"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    analyzer = get_analyzer("lucene-english")
    cases = {f"{n // 1000}k matching terms": " ".join(f"zebrafish embryo{i % 7} growth" for i in range(n // 2))
             for n in (2000, 4000, 8000)}
    cases["300 KB document"] = "zebrafish " * 30_000
    cases["20 MB document"] = "zebrafish " * 2_000_000
    rows = []
    for name, text in cases.items():
        seconds = best_of(lambda text=text: html_snippet(text, "zebrafish growth", analyzer))
        rows.append({"case": name, "characters": len(text), "seconds": round(seconds, 5)})
        print(f"{name:22} {len(text):>12,} chars  {seconds * 1000:8.2f} ms", flush=True)
    OUT.write_text(json.dumps({"benchmark": "highlight", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "machine": {"cpu": platform.processor() or platform.machine(),
                                           "python": platform.python_version()},
                               "results": rows}, indent=1))
    print(f"results: {OUT}")


if __name__ == "__main__":
    main()
