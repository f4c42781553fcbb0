"""``retrievekit index SOURCE COLLECTION --shards N [--ray ADDRESS]``: documents into a sharded collection.

SOURCE is read as the plain ``index`` reads it (JSONL, BEIR, CSV/TSV, a folder of text and document files;
``--format``, ``--schema``, ``--encoding-errors``, ``--max-pages``, ``--encoding``, ``--no-ocr``) by
``ShardedCollection.ingest``: documents are routed to the shards in batches, all of them in one atomic multi-shard
commit; a folder's files that cannot be read are skipped and listed with their reason, as the plain ``index`` lists
them. A folder that already holds a sharded collection is added to (``--shards`` may be left out, or must match its
shard count)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from retrievekit.cli.commands import (
    check_index_args,
    folder_options,
    print_skipped,
    removed_on_failure,
    schema_option,
)
from retrievekit.cli.render import print_json
from retrievekit.core.errors import RetrievekitError
from retrievekit.service.collections import CLUSTER_MANIFEST, is_sharded_folder
from retrievekit.sharding.collection import ShardedCollection
from retrievekit.storage.manifest import MANIFEST

BATCH_SIZE = 1000  # documents routed and sent to the shards at a time


def check_sharded_args(args: argparse.Namespace) -> None:
    """What a sharded collection cannot do, refused before anything is read or created."""
    exists = is_sharded_folder(args.collection)
    if not exists and args.shards is None:  # run_index sends only --shards, --ray or a sharded folder here
        raise RetrievekitError(f"--ray runs the shards of a sharded collection; {args.collection} is none (no "
                               f"{CLUSTER_MANIFEST}): pass --shards N to create one")
    if args.code:
        if args.shards is None:
            raise RetrievekitError(f"{args.collection} is a sharded collection; --code indexes a repository into a "
                                   "plain collection (multi-field BM25 over symbols, re-indexed file by file), which "
                                   "sharded collections do not support: index the code into another folder")
        raise RetrievekitError("--code indexes a repository into a plain collection (multi-field BM25 over symbols, "
                               "re-indexed file by file), which sharded collections do not support: leave out "
                               "--shards")
    if args.field_weights is not None:
        raise RetrievekitError("--field-weights (multi-field BM25) is not supported on sharded collections yet; leave "
                               "out --field-weights or --shards")
    if args.workers is not None:
        raise RetrievekitError("--workers sets the indexing processes of a plain collection; a sharded collection's "
                               "shards index their documents side by side on their own: leave out --workers")
    if (Path(args.collection) / MANIFEST).is_file():
        raise RetrievekitError(f"{args.collection} is a plain collection; --shards makes a sharded one: index into a "
                               "new folder, or leave out --shards (and --ray) to add to this one")


def _check_settings(col: ShardedCollection, args: argparse.Namespace, fields: list[str]) -> None:
    """An existing sharded collection keeps the settings it was created with; asking for others is an error."""
    from retrievekit.analysis import get_analyzer

    settings = col.settings
    if args.shards is not None and args.shards != col.shards:
        raise RetrievekitError(f"{args.collection} is a sharded collection of {col.shards} shards, not {args.shards}: "
                               f"pass --shards {col.shards} or leave it out to add to it (documents are routed by "
                               "a hash over the shard count, which is fixed when the collection is created)")
    if tuple(fields) != tuple(settings.fields):
        raise RetrievekitError(f"{args.collection} indexes the fields {','.join(settings.fields)}, not "
                               f"{','.join(fields)}: pass --fields {','.join(settings.fields)} or leave it out")
    if args.analyzer is not None and get_analyzer(args.analyzer).config() != settings.bm25.analyzer:
        raise RetrievekitError(f"{args.collection} was created with another analyzer "
                               f"({settings.bm25.analyzer.get('name', settings.bm25.analyzer)}); an existing "
                               "collection keeps its analyzer: leave out --analyzer")
    have = settings.passages.chunker if settings.passages is not None else None
    if args.passages is not None and args.passages != have:
        raise RetrievekitError(f"{args.collection} stores {f'passages ({have})' if have else 'whole documents'}, "
                               f"set when it was created; --passages {args.passages} cannot change that")


def run_index_sharded(args: argparse.Namespace) -> int:
    from retrievekit.core.files import tree_bytes
    from retrievekit.core.progress import progress_bar
    from retrievekit.ingest import estimate_size

    check_sharded_args(args)
    check_index_args(args)
    reader_options: dict[str, Any] = {**schema_option(args), **folder_options(args)}
    fields = args.fields.split(",")
    folder = Path(args.collection)
    exists = is_sharded_folder(folder)
    progress = not args.no_progress
    col: ShardedCollection | None = None
    try:
        with removed_on_failure(folder):
            if exists:
                col = ShardedCollection(folder, ray=args.ray)
                _check_settings(col, args, fields)
                if args.dense and not col.has_index("dense"):
                    col.add_dense_index(args.dense, chunking=args.chunking, vectors=args.vectors,
                                        lock_timeout=args.lock_timeout)
            else:
                col = ShardedCollection.create(folder, args.shards, ray=args.ray,
                                               analyzer=args.analyzer or "lucene-english", fields=fields,
                                               dense=args.dense, chunking=args.chunking, vectors=args.vectors,
                                               passages=args.passages)
            bar = progress_bar(progress, estimate_size(args.source, args.format) if progress else None,
                               f"indexing {Path(args.source).name}", unit="B", unit_scale=True, unit_divisor=1024)
            if progress:
                reader_options["on_bytes"] = bar.update
            started = time.perf_counter()
            try:
                report = col.ingest(args.source, args.format, batch_size=BATCH_SIZE, lock_timeout=args.lock_timeout,
                                    encoding_errors=args.encoding_errors, **reader_options)
            finally:
                bar.close()
            added, seconds = int(report["documents"]), time.perf_counter() - started
            if args.sparse and not col.has_index("sparse"):  # every shard encodes its own documents
                col.add_sparse_index(args.sparse, lock_timeout=args.lock_timeout)
        if args.dense and col.has_index("dense"):
            from retrievekit.encoders.onnx import ensure_query_twin

            # as plain `index --dense`: the ONNX export of a sentence-transformers model, for torch-free queries
            ensure_query_twin(col.config["dense"]["default"]["encoder"])
        info = col.info()
        summary = {
            "collection": str(col.path),
            "added": added,
            "seconds": round(seconds, 3),
            "docs_per_second": round(added / seconds, 1) if seconds else None,
            "documents": info["documents"],
            "shards": len(info["shards"]),
            "segments": sum(int(s.get("segments", 0)) for s in info["shards"]),
            "disk_bytes": tree_bytes(col.path),
            "skipped": report["skipped"],
            "warnings": report["warnings"],
        }
        passages = bool(col.config.get("passages"))
    finally:
        if col is not None:
            col.close()
    if args.json:
        print_json(summary)
    else:
        print_skipped(summary["skipped"], summary["warnings"])
        print(f"indexed {summary['added']:,} documents in {summary['seconds']:.2f} s "
              f"({summary['docs_per_second'] or 0:,.0f} docs/s); sharded collection {summary['collection']} now "
              f"holds {summary['documents']:,} {'passages' if passages else 'documents'} in {summary['shards']} "
              f"shards ({summary['segments']} segment(s)), {summary['disk_bytes'] / 1e6:.1f} MB on disk"
              + (f"; {len(summary['skipped']):,} files skipped (listed above)" if summary["skipped"] else ""))
    return 0
