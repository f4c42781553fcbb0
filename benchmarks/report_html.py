"""BENCHMARKS.md section for web-page text extraction: HTMLText against trafilatura and selectolax on saved
documentation sites (``run_html.py``: ``results/html.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report_common import load_result


def html_sections(results: Path) -> list[str]:
    result = load_result(results / "html.json")
    return html_section(result) if result else []


def html_section(result: dict[str, Any]) -> list[str]:
    """The section's lines for one result."""
    sites = result["sites"]
    pages = sum(s["pages"] for s in sites.values())
    lines = ["## Web pages: text extraction and boilerplate (issue 19)", "",
             f"`python benchmarks/run_html.py` ({result['date']}; {result['machine']['cpus']} shared cores, load "
             f"{result['machine']['load_average'][0]}): {pages} saved documentation pages found on the machine — "
             + ", ".join(f"{name} ({s['pages']} pages, {s['bytes'] / 1e6:.1f} MB)" for name, s in sites.items())
             + ". The reference is each page's main-content element (`<main>` in the Rust book, `#apicontent` in "
             "the Node.js docs) read with lxml; word precision (how much of the output is main content) and recall "
             "(how much of the main content is kept), averaged over pages. In the Rust book the reference is the very "
             "`<main>` HTMLText keeps, so its 1.000 there only shows the rule is applied exactly; the Node.js pages "
             "mark their content with no landmark and are the fair comparison. HTMLText is kept for its exact "
             "offsets (no parsing library reports source positions) and because it measures best here; selectolax "
             "is 15x faster but gives no offsets, trafilatura leaves out about a tenth of the main text.", ""]
    header = "| extractor | " + " | ".join(f"{s} P | {s} R" for s in sites) + " | pages/s |"
    lines += [header, "|---|" + "---:|---:|" * len(sites) + "---:|"]
    for name, r in result["systems"].items():
        cells = " | ".join(f"{r['sites'][s]['precision']:.3f} | {r['sites'][s]['recall']:.3f}" for s in sites)
        lines.append(f"| {name} | {cells} | {r['pages_per_s']:,.0f} |")
    return [*lines, ""]
