"""``retrievekit demo``: index the installed Python standard library's documentation and search it."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from ..demo.stdlib_corpus import iter_stdlib_documents
from ..storage.collection import Collection
from .render import print_hits, print_json

EXAMPLE_QUERIES = [
    "read and write json files",
    "parse command line arguments",
    "compress data with gzip",
    "run a subprocess and capture its output",
    "current date and time in UTC",
]


def default_home() -> Path:
    return Path(os.environ.get("RETRIEVEKIT_HOME") or Path.home() / ".cache" / "retrievekit")


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="index the Python standard library's docs and run example searches",
        description="Build a collection from the docstrings of the installed Python standard library (modules, "
        "classes, functions; a few thousand documents, no download), report the indexing time, and run example "
        "searches with highlighted results. Re-running reuses the collection.",
    )
    p.add_argument("--collection", metavar="PATH",
                   help="where to keep the collection (default: $RETRIEVEKIT_HOME or ~/.cache/retrievekit, "
                   "folder demo-stdlib-<python version>)")
    p.add_argument("--rebuild", action="store_true", help="delete and rebuild the collection")
    p.add_argument("--query", action="append", metavar="TEXT", help="your own query (repeatable)")
    p.add_argument("-k", type=int, default=3, help="results per query (default 3)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON report instead")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    path = Path(args.collection) if args.collection else default_home() / f"demo-stdlib-py{version}"
    stamp = path.with_name(path.name + ".json")
    if args.rebuild and path.exists():
        import shutil

        shutil.rmtree(path)
        stamp.unlink(missing_ok=True)
    report: dict[str, object] = {"collection": str(path), "python": platform.python_version()}
    if (path / "manifest.json").is_file() and stamp.is_file():
        col = Collection(path)
        built = json.loads(stamp.read_text())
        report.update(reused=True, documents=len(col), index_seconds=built["index_seconds"])
        if not args.json:
            print(f"Reusing the collection at {path}: {len(col):,} documents "
                  f"(built earlier in {built['index_seconds']:.2f} s; --rebuild to build it again)")
    else:
        if path.exists():
            import shutil

            shutil.rmtree(path)  # an interrupted earlier build
        if not args.json:
            print(f"Indexing the Python {version} standard library documentation into {path} ...")
        started = time.perf_counter()
        col = Collection.create(path)
        bar = None
        if not args.no_progress and not args.json:
            from tqdm.auto import tqdm

            bar = tqdm(desc="indexing", unit=" docs")
        with col.writer() as w:
            batch = []
            for doc in iter_stdlib_documents():
                batch.append(doc)
                if len(batch) == 1000:
                    w.add(batch)
                    if bar is not None:
                        bar.update(len(batch))
                    batch = []
            w.add(batch)
            if bar is not None:
                bar.update(len(batch))
                bar.close()
        seconds = time.perf_counter() - started
        stamp.write_text(json.dumps({"index_seconds": seconds, "documents": len(col)}))
        report.update(reused=False, documents=len(col), index_seconds=seconds)
        if not args.json:
            print(f"Indexed {len(col):,} documents in {seconds:.2f} s ({len(col) / seconds:,.0f} docs/s, "
                  "docstring parsing included)")
    queries = args.query or EXAMPLE_QUERIES
    started = time.perf_counter()
    results = col.search(queries, k=args.k)
    search_ms = (time.perf_counter() - started) * 1000
    report["search_ms"] = search_ms
    if args.json:
        report["results"] = [{"query": q, "hits": [{"id": d, "score": s} for d, s in results.hits(i)]}
                             for i, q in enumerate(queries)]
        print_json(report)
        return 0
    for i, q in enumerate(queries):
        hits = results.hits(i)
        docs = col.get_many([d for d, _ in hits])
        print_hits(q, [(doc, s) for doc, (_, s) in zip(docs, hits) if doc is not None], col.analyzer, width=160)
    print(f"\n{len(queries)} searches in {search_ms:.1f} ms. Try: retrievekit search {path} \"your query\"")
    return 0
