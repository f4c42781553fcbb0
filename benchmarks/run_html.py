"""Web-page text extraction: retrievekit's HTMLText (boilerplate dropped by HTML's own landmarks) against trafilatura
(boilerplate removal by scoring) and selectolax (lexbor; landmark tags stripped, then the body's text), on real saved
documentation sites found on this machine (issue 19).

Pages: the Rust book of the installed Rust toolchain (mdBook: a table-of-contents sidebar, page navigation, the
chapter in ``<main>``) and the Node.js API docs (a header, a navigation column, the API text in ``#apicontent``).
The reference main content of a page is the text of that element (``<main>``, ``#apicontent``), read with lxml.
Per page, word precision and recall (multisets of lower-cased words) of each extractor's text against the reference,
averaged over pages; speed in pages/s (one pass after a warm-up). Results: ``benchmarks/results/html.json``.

    python benchmarks/run_html.py [--limit N]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from retrievekit.chunking import HTMLText

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "html.json"
SITES = {  # name: (glob of pages, XPath of the reference main content)
    "rust-book": (os.path.expanduser("~/.rustup/toolchains/stable-*/share/doc/rust/html/book/ch*.html"),
                  "//main"),
    "nodejs-api": ("/usr/share/doc/nodejs/api/*.html", "//*[@id='apicontent']"),
}
WORD = re.compile(r"\w+")


def words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in WORD.findall(text))


def reference(source: str, xpath: str) -> str | None:
    import lxml.html

    tree = lxml.html.fromstring(source)
    found = tree.xpath(xpath)
    if not found:
        return None
    for bad in found[0].xpath(".//script|.//style|.//noscript|.//template|.//svg"):
        bad.drop_tree()
    return str(found[0].text_content())


def retrievekit_landmarks(source: str) -> str:
    return HTMLText(source, include_title=False, drop_boilerplate=True).text


def retrievekit_everything(source: str) -> str:
    return HTMLText(source, include_title=False).text


def trafilatura_extract(source: str) -> str:
    import trafilatura

    return trafilatura.extract(source, include_tables=True, include_comments=False, include_formatting=False) or ""


def selectolax_landmarks(source: str) -> str:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(source)
    tree.strip_tags(["script", "style", "noscript", "template", "svg", "nav", "aside", "header", "footer", "form"])
    return tree.body.text(separator="\n") if tree.body is not None else ""


EXTRACTORS: dict[str, Callable[[str], str]] = {
    "retrievekit HTMLText, landmarks dropped (used)": retrievekit_landmarks,
    "retrievekit HTMLText, everything": retrievekit_everything,
    f"trafilatura {version('trafilatura')}": trafilatura_extract,
    f"selectolax {version('selectolax')}, landmark tags stripped": selectolax_landmarks,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=200, help="pages per site at most")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    pages: list[tuple[str, str, Counter[str]]] = []
    sites = {}
    for site, (pattern, xpath) in SITES.items():
        paths = sorted(glob.glob(pattern))[: args.limit]
        kept = 0
        for path in paths:
            source = Path(path).read_text(encoding="utf-8", errors="replace")
            ref = reference(source, xpath)
            if ref and words(ref):
                pages.append((site, source, words(ref)))
                kept += 1
        sites[site] = {"pages": kept, "bytes": sum(len(s) for n, s, _ in pages if n == site)}
    if not pages:
        raise SystemExit("no pages found: the Rust toolchain docs and the Node.js docs are looked for on this machine")
    systems: dict[str, Any] = {}
    for name, extract in EXTRACTORS.items():
        extract(pages[0][1])  # warm-up: imports, caches
        per_site: dict[str, list[tuple[float, float]]] = {site: [] for site in sites}
        seconds = 0.0
        for site, source, ref in pages:
            started = time.perf_counter()
            text = extract(source)
            seconds += time.perf_counter() - started
            got = words(text)
            overlap = sum((got & ref).values())
            per_site[site].append((overlap / max(1, sum(got.values())), overlap / sum(ref.values())))
        scores = {}
        for site, pairs in per_site.items():
            p = sum(a for a, _ in pairs) / len(pairs)
            r = sum(b for _, b in pairs) / len(pairs)
            scores[site] = {"precision": round(p, 4), "recall": round(r, 4),
                            "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}
        systems[name] = {"sites": scores, "seconds": round(seconds, 3), "pages_per_s": round(len(pages) / seconds, 1)}
    result = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
              "machine": {"cpu": platform.machine(), "cpus": os.cpu_count(),
                          "load_average": [round(x, 2) for x in os.getloadavg()]},
              "sites": sites, "systems": systems}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    from report_html import html_section

    print("\n".join(html_section(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
