"""``retrievekit index --code REPOSITORY COLLECTION``: index a code repository by its symbols, incrementally."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from retrievekit.cli.commands import parse_field_weights, removed_on_failure
from retrievekit.cli.render import print_json
from retrievekit.code_index import CODE_ANALYZER, CodeIngestReport
from retrievekit.collection import Collection
from retrievekit.core.errors import RetrievekitError
from retrievekit.ingest.code import check_root

_NOT_FOR_CODE = (("--format", "format"), ("--passages", "passages"), ("--schema", "schema"))


def run_index_code(args: argparse.Namespace) -> int:
    for flag, dest in _NOT_FOR_CODE:
        if getattr(args, dest, None):
            raise RetrievekitError(f"{flag} is for documents, not --code (code is stored as one document per symbol)")
    for flag, value in (("--chunking", args.chunking), ("--vectors", args.vectors)):
        if value and not args.dense:
            raise RetrievekitError(f"{flag} sets up the dense index: pass --dense too")
    args.field_weights = parse_field_weights(getattr(args, "field_weights", None))
    root = check_root(args.source)
    folder = Path(args.collection)
    progress = not args.no_progress
    walk_logger = logging.getLogger("retrievekit.ingest.code")
    level = walk_logger.level
    if not getattr(args, "verbose", False):  # the report lists the warnings: no second copy on stderr
        walk_logger.setLevel(logging.ERROR)
    try:
        col, report = _index(args, root, folder, progress)
    finally:
        walk_logger.setLevel(level)
    if args.sparse and not col.has_index("sparse"):
        col.add_sparse_index(args.sparse, progress=progress, lock_timeout=args.lock_timeout)
    if args.json:
        print_json({"collection": str(col.path), **report.to_json()})
    else:
        print_report(report, col)
    return 0


def _index(args: argparse.Namespace, root: Path, folder: Path, progress: bool) -> tuple[Collection, CodeIngestReport]:
    with removed_on_failure(folder):
        if (folder / "manifest.json").is_file():
            col = Collection(folder)  # an existing collection keeps its analyzer and field weights
            if args.field_weights is not None and args.field_weights != (col.settings.bm25.field_weights or {}):
                raise RetrievekitError(f"--field-weights is set when a collection is created; {folder} has "
                                       f"{col.settings.bm25.field_weights or 'none'} (searches can pass their own: "
                                       "search --field-weights)")
            if args.dense and not col.has_index("dense"):
                col.add_dense_index(args.dense, chunking=args.chunking, vectors=args.vectors, progress=progress,
                                    lock_timeout=args.lock_timeout)
        else:
            weights = {} if args.field_weights is None else {"field_weights": args.field_weights or None}
            col = Collection.create_code(folder, analyzer=args.analyzer or CODE_ANALYZER,
                                         fields=args.fields.split(","), dense=args.dense, chunking=args.chunking,
                                         vectors=args.vectors, **weights)
        report = col.ingest_code(root, use_git=False if args.no_git else None, workers=args.workers or 1,
                                 progress=progress, lock_timeout=args.lock_timeout)
    return col, report


def print_report(report: CodeIngestReport, col: Collection) -> None:
    r = report
    print(f"indexed {r.root} in {r.seconds:.2f} s: {r.files_seen:,} files ({r.files_added:,} added, "
          f"{r.files_updated:,} updated, {r.files_unchanged:,} unchanged, {r.files_renamed:,} renamed), "
          f"{r.files_deleted:,} deleted")
    print(f"symbols: {r.symbols:,} indexed ({r.symbols_added:,} added, {r.symbols_updated:,} updated, "
          f"{r.symbols_unchanged:,} rewritten unchanged, {r.symbols_moved:,} moved, {r.symbols_deleted:,} deleted)")
    if r.skipped:
        print(f"skipped {sum(r.skipped.values()):,}:")
        for reason, count in sorted(r.skipped.items(), key=lambda item: (-item[1], item[0])):
            examples = r.skipped_examples.get(reason, [])
            more = ", ..." if count > len(examples) else ""
            print(f"  {reason}: {count:,} ({', '.join(examples)}{more})")
    if r.warnings:
        print(f"warnings: {len(r.warnings):,}")
        for warning in r.warnings[:10]:
            print(f"  {warning}")
        if len(r.warnings) > 10:
            print(f"  ... and {len(r.warnings) - 10:,} more (--json lists them all)")
    print(f"collection {col.path} now holds {r.documents:,} documents")
