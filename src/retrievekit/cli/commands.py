"""``index``, ``search``, ``info``, ``delete`` and ``optimize``."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrievekit.analysis import available_analyzers
from retrievekit.cli.render import (
    code_location,
    flat_rows,
    print_hits,
    print_json,
    table,
    terminal_safe,
    wrapped_rows,
)
from retrievekit.collection import Collection
from retrievekit.core.errors import RetrievekitError
from retrievekit.core.provenance import document_page_reference
from retrievekit.service.collections import (
    CLUSTER_MANIFEST,
    AnyCollection,
    is_sharded,
    is_sharded_folder,
    open_collection,
)
from retrievekit.service.documents import delete_documents
from retrievekit.service.info import collection_info
from retrievekit.service.search import RERANK_DEPTH, HitFormat, SearchRequest, search_batch
from retrievekit.service.types import MODES, check_filter


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (checked while parsing, before any work)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, got {text!r}")
    return value


def seconds(text: str) -> float:
    """argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds (0 or more), got {text!r}")
    return value


def parse_field_weights(text: str | None, flag: str = "--field-weights") -> dict[str, float] | None:
    """``title=2,signature=2,text=1`` as {field: weight}; ``none`` = {} (the joined index); None when not given."""
    from retrievekit.core.config import check_field_weights

    if text is None:
        return None
    if text.strip().lower() == "none":
        return {}
    weights: dict[str, Any] = {}
    for item in text.split(","):
        name, eq, value = item.partition("=")
        name = name.strip()
        try:
            weight = float(value) if eq else None
        except ValueError:
            weight = None
        if not name or weight is None:
            raise RetrievekitError(f"{flag}: expected FIELD=WEIGHT[,FIELD=WEIGHT...] such as title=2,text=1, "
                                   f"got {item!r}")
        if name in weights:
            raise RetrievekitError(f"{flag}: field {name!r} is given twice")
        weights[name] = weight
    try:
        return check_field_weights(weights, flag)
    except RetrievekitError as exc:
        raise RetrievekitError(str(exc)) from None


FIELD_WEIGHTS_HELP = ("multi-field BM25: each FIELD (title, text or a metadata key such as signature) is indexed on "
                      "its own and a document scores the weighted sum of its fields' BM25, e.g. "
                      "title=2,signature=2,text=1")


def add_lock_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-timeout", type=seconds, default=0.0, metavar="SECONDS",
                   help="when another process is writing the collection, wait up to this long for it to finish "
                   "(default 0: fail at once)")


RAY_HELP = ("for a sharded collection: run its shards as Ray actors, one per shard — 'local' starts a Ray here "
            "bound to 127.0.0.1, HOST:PORT or ray://HOST:10001 joins a cluster whose nodes reach the shard folders "
            "(default: the shards run in this process; needs retrievekit[ray])")


def add_ray_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", metavar="ADDRESS", default=None, help=RAY_HELP)


@contextlib.contextmanager
def opened(args: argparse.Namespace) -> Iterator[AnyCollection]:
    """The collection of a command's COLLECTION argument: a plain one, or a sharded one (a folder holding
    cluster.json) with its shards where ``--ray`` says (closed when the block ends)."""
    ray = getattr(args, "ray", None)
    if ray is not None and not is_sharded_folder(args.collection):
        raise RetrievekitError(f"--ray runs the shards of a sharded collection on Ray; {args.collection} is not one "
                               f"(no {CLUSTER_MANIFEST})")
    col = open_collection(args.collection, ray=ray)
    try:
        yield col
    finally:
        if is_sharded(col):
            col.close()


def add_index(sub: argparse._SubParsersAction) -> None:
    from retrievekit.code_index import CODE_FIELD_WEIGHTS  # here: a cold `search` does not load the code indexer

    p = sub.add_parser(
        "index",
        help="create a collection (or add to one) from documents",
        description="Stream documents into a collection and commit them atomically (all or nothing). Adding a "
        "document whose id exists replaces it.",
    )
    p.add_argument("source", help="a JSONL file, a BEIR folder (with corpus.jsonl), a CSV/TSV file, a folder of "
                   ".txt/.md/.rst/.html and .pdf/.docx/.pptx/.epub/.eml/.mbox files (ids = relative paths; documents "
                   "need retrievekit[documents]) or one such document; with --code, a code repository or folder")
    p.add_argument("collection", help="collection folder (created if missing)")
    p.add_argument("--format", choices=["jsonl", "beir", "csv", "tsv", "files"],
                   help="input format (default: detected from the source)")
    p.add_argument("--code", action="store_true",
                   help="SOURCE is a code repository or folder: index its functions, methods and classes "
                   "(tree-sitter), honouring .gitignore and skipping binary, vendored, generated and huge files; a "
                   "later run re-indexes only what changed (needs retrievekit[code])")
    p.add_argument("--images", action="store_true",
                   help="SOURCE is a folder of images, or a JSONL/BEIR corpus whose rows name images (an 'image' "
                   "field): one document per image with its caption (sidecar NAME.txt/NAME.json or the row's "
                   "text), EXIF metadata and a thumbnail; unreadable images are skipped and listed. With --dense "
                   "clip:MODEL, hf-clip:MODEL (transformers CLIP/SigLIP) or open-clip:MODEL (a hub name or folder) "
                   "the images are embedded for text->image and image search (needs retrievekit[images])")
    p.add_argument("--hash", metavar="KIND", choices=["phash", "dhash", "whash", "ahash"],
                   help="with --images: also index a perceptual hash of every image (phash, dhash, whash, ahash) for "
                   "near-duplicate search (search --image PATH --near-duplicates); no neural model needed")
    p.add_argument("--no-git", action="store_true",
                   help="with --code: walk the folder and read its .gitignore files instead of asking git for the list")
    p.add_argument("--analyzer", default=None, metavar="NAME",
                   help="text analyzer for a new collection (default: lucene-english = Lucene/Anserini's English "
                   "analyzer; with --code: code = identifiers split on camelCase/snake_case/digits keeping the whole "
                   "identifier, operators dropped, language keywords as stop words). An existing collection keeps "
                   f"its analyzer. One of: {', '.join(available_analyzers())}")
    p.add_argument("--fields", default="title,text",
                   help="document parts indexed for BM25, joined by a space (default: title,text)")
    p.add_argument("--field-weights", metavar="FIELD=W,...",
                   help=f"for a new collection: {FIELD_WEIGHTS_HELP}. Searches use these weights unless they pass "
                   "their own (search --field-weights). Default: none (BM25 on --fields joined); with --code: "
                   f"{','.join(f'{f}={w:g}' for f, w in CODE_FIELD_WEIGHTS.items())} (qualified name, docstring, "
                   "code; 'none' for the joined fields)")
    p.add_argument("--incremental", action="store_true",
                   help="SOURCE is a folder indexed before with --incremental: parse only new and changed files "
                   "(content hashes) and remove the documents of files that are gone; other folders' and sources' "
                   "documents are left alone")
    p.add_argument("--no-ocr", action="store_true",
                   help="do not OCR PDF pages without a text layer (scans); by default they are OCR'd when the "
                   "tesseract program is installed (at most 200 pages per document), else reported")
    p.add_argument("--max-pages", type=positive_int, default=None, metavar="N",
                   help="a folder's PDFs and slide decks with more than N pages are skipped (listed with the reason; "
                   "default 2000): bounds the time and memory one huge file takes")
    p.add_argument("--encoding", choices=["utf-8", "auto"], default="utf-8",
                   help="a folder's text files: utf-8 (default; invalid bytes as --encoding-errors says) or auto (a "
                   "file that is not UTF-8 is decoded as charset-normalizer detects, with a warning)")
    p.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict",
                   help="what to do with invalid UTF-8: stop with an error naming file and line (strict, default) "
                   "or replace the bad bytes")
    p.add_argument("--schema", metavar="COLUMN=TYPE,...",
                   help="CSV/TSV: types of metadata columns, e.g. year=int,score=float,flag=bool,zip=str (int, float, "
                   "bool, str). Other columns are inferred: booleans or numbers when every value is one, else text")
    p.add_argument("--dense", metavar="ENCODER", nargs="?", const="minilm",
                   help="also build a dense index with this encoder (default when given without a value: minilm = "
                   "all-MiniLM-L6-v2, offline). Also: onnx-int8:minilm, bge-small-en-v1.5, wordllama, any "
                   "sentence-transformers folder or hub name. Added to an existing collection, it encodes every "
                   "document (resumable)")
    p.add_argument("--chunking", metavar="TOKENS[:OVERLAP[:POOL]]",
                   help="with --dense: encode long documents as pooled windows, e.g. 256:32:mean")
    p.add_argument("--vectors", metavar="TIER",
                   help="with --dense: the search tier — float32 (default, exact), float16, int8, binary, multibit:2, "
                   "pca:D, matryoshka:D, leanvec:D, leanvec-ood:D, pq:M, opq:M, optionally '+rescore[:OVERSAMPLE]' "
                   "(rescore candidates with the float vectors kept on disk), or an ANN index: hnsw, ivf, ivfpq:m=M")
    p.add_argument("--sparse", metavar="ENCODER", nargs="?", const="splade-tiny",
                   help="also build a learned sparse (SPLADE) index (default model: splade-tiny, offline; needs "
                   "retrievekit[sparse])")
    p.add_argument("--passages", metavar="CHUNKER", default=None,
                   help="store and search documents as passages for RAG: sentences[:TOKENS], paragraphs[:TOKENS], "
                   "tokens:SIZE[:OVERLAP], markdown[:TOKENS], html[:TOKENS] or semantic (needs --dense); each passage "
                   "keeps its document id and character span (set when the collection is created)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="processes that analyse and index in parallel (default: CPU count, at most 4; 1 = none)")
    p.add_argument("--shards", type=positive_int, default=None, metavar="N",
                   help="create a sharded collection of N shards (ordinary collections in COLLECTION/shard-NNN, "
                   "documents routed by a hash of their id, searched by scatter-gather with rankings equal to one "
                   "collection's); a folder that holds one already is added to, with or without --shards (which "
                   "must then match its shard count). Not with --code, --field-weights or --workers")
    add_ray_option(p)
    add_lock_timeout(p)
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_index)


def check_index_args(args: argparse.Namespace) -> None:
    """The arguments of ``index`` that can be checked before anything is created or read."""
    from pathlib import Path

    from retrievekit.ingest import detect_format
    from retrievekit.ingest.base import check_exists

    for flag, value in (("--chunking", args.chunking), ("--vectors", args.vectors)):
        if value and not args.dense:
            raise RetrievekitError(f"{flag} sets up the dense index: pass --dense too")
    if args.passages and str(args.passages).split(":")[0] == "semantic" and not args.dense:
        raise RetrievekitError("--passages semantic splits documents with the dense model: pass --dense too")
    check_exists(Path(args.source))
    if args.format is None:
        detect_format(args.source)


@contextlib.contextmanager
def removed_on_failure(folder: Path) -> Iterator[None]:
    """A first ingest that fails leaves nothing behind (a leftover empty collection would answer every search with
    "no match"): what this command created is removed — the collection folder and any parent it made, or, when the
    folder already existed, only the entries made in it. An existing collection is never touched."""
    if ((folder / "manifest.json").exists() or (folder / CLUSTER_MANIFEST).exists()
            or (folder.exists() and not folder.is_dir())):
        yield
        return
    before = set(folder.iterdir()) if folder.exists() else None
    top = folder.absolute()
    while before is None and not top.parent.exists():  # the topmost folder this command will create
        top = top.parent
    try:
        yield
    except BaseException:
        if before is None:
            shutil.rmtree(top, ignore_errors=True)
        else:
            for entry in set(folder.iterdir()) - before:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise


def folder_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--max-pages``, ``--encoding`` and ``--no-ocr`` as the folder reader's options, checked before anything is
    created (they apply to a folder of files only)."""
    if args.max_pages is None and args.encoding == "utf-8" and not args.no_ocr:
        return {}
    from retrievekit.ingest import detect_format

    if (args.format or detect_format(args.source)) != "files":
        raise RetrievekitError("--max-pages, --encoding and --no-ocr apply to a folder of files; "
                               f"{args.source} is not read as one")
    options: dict[str, Any] = {"encoding": args.encoding, "ocr": not args.no_ocr}
    if args.max_pages is not None:
        options["max_pages"] = args.max_pages
    return options


def schema_option(args: argparse.Namespace) -> dict[str, Any]:
    """``--schema`` as the CSV/TSV reader's option, checked before anything is created."""
    if not args.schema:
        return {}
    from retrievekit.ingest import detect_format
    from retrievekit.ingest.delimited import parse_schema

    fmt = args.format or detect_format(args.source)
    if fmt not in ("csv", "tsv"):
        raise RetrievekitError(f"--schema types the columns of CSV/TSV files; {args.source} is read as {fmt} "
                               "(see --format)")
    parse_schema(args.schema)
    return {"schema": args.schema}


def run_index(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.shards is not None or args.ray is not None or is_sharded_folder(args.collection):
        from retrievekit.cli.index_sharded import run_index_sharded

        return run_index_sharded(args)
    if args.code:
        from retrievekit.cli.index_code import run_index_code

        return run_index_code(args)
    if args.images:
        return run_index_images(args)
    args.analyzer = args.analyzer or "lucene-english"
    check_index_args(args)
    reader_options = {**schema_option(args), **folder_options(args)}
    fields = args.fields.split(",")
    field_weights = parse_field_weights(args.field_weights)
    exists = Path(args.collection, "manifest.json").is_file()
    with removed_on_failure(Path(args.collection)):
        col = Collection.create(args.collection, analyzer=args.analyzer, fields=fields, exist_ok=True,
                                dense=None if exists else args.dense, chunking=args.chunking, vectors=args.vectors,
                                passages=args.passages, field_weights=field_weights or None)
        if args.dense and "default" not in (col.config.get("dense") or {}):
            col.add_dense_index(args.dense, chunking=args.chunking, vectors=args.vectors,
                                progress=not args.no_progress, lock_timeout=args.lock_timeout)
        report = col.ingest(args.source, args.format, progress=not args.no_progress, workers=args.workers,
                            encoding_errors=args.encoding_errors, **reader_options, lock_timeout=args.lock_timeout,
                            incremental=args.incremental)
    if args.sparse and "default" not in (col.config.get("sparse") or {}):
        col.add_sparse_index(args.sparse, progress=not args.no_progress, lock_timeout=args.lock_timeout)
    if args.dense and "default" in (col.config.get("dense") or {}):
        from retrievekit.encoders.onnx import ensure_query_twin

        # the ONNX export of a sentence-transformers model, so later searches encode queries without torch
        ensure_query_twin(col.index_config("dense")["encoder"])
    info = col.info()
    summary = {
        "collection": str(col.path),
        "added": report["documents"],
        "seconds": round(report["seconds"], 3),
        "docs_per_second": round(report["documents"] / report["seconds"], 1) if report["seconds"] else None,
        **({"encode_seconds": round(report["encode_seconds"], 3)} if "encode_seconds" in report else {}),
        "documents": info["documents"],
        "segments": info["segments"],
        "disk_bytes": info["disk_bytes"],
        "skipped": report.get("skipped", []),
        "warnings": report.get("warnings", []),
    }
    if "files" in report:  # --incremental
        summary["files"] = report["files"]
    if args.json:
        print_json(summary)
    else:
        print_skipped(summary["skipped"], summary["warnings"])
        if "files" in summary:
            files = summary["files"]
            print(f"files: {files['added']:,} new, {files['updated']:,} changed, {files['unchanged']:,} unchanged "
                  f"(not parsed), {files['deleted']:,} gone")
        print(f"indexed {summary['added']:,} documents in {summary['seconds']:.2f} s "
              f"({summary['docs_per_second'] or 0:,.0f} docs/s); collection {col.path} now holds "
              f"{summary['documents']:,} {'passages' if col.config.get('passages') else 'documents'} in "
              f"{summary['segments']} segment(s), "
              f"{summary['disk_bytes'] / 1e6:.1f} MB on disk"
              + (f"; {len(summary['skipped']):,} files skipped (listed above)" if summary["skipped"] else ""))
    return 0


def print_skipped(skipped: list[list[str]], warnings: list[list[str]], shown: int = 20) -> None:
    """The files a folder ingest left out, with why, and the files indexed with a problem (to stderr)."""
    for rows, what in ((skipped, "skipped"), (warnings, "warning")):
        for path, reason in rows[:shown]:
            print(f"{what}: {terminal_safe(path, newlines=False)}: {terminal_safe(reason, newlines=False)}",
                  file=sys.stderr)
        if len(rows) > shown:
            print(f"{what}: ... and {len(rows) - shown:,} more files", file=sys.stderr)


def add_scoring_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scorer", default="lucene",
                   choices=["lucene", "robertson", "atire", "bm25l", "bm25+", "dirichlet"],
                   help="ranking function (default: lucene = Lucene's BM25)")
    p.add_argument("--k1", type=float, help="BM25 k1 (default 0.9 for lucene, 1.5 for the others)")
    p.add_argument("--b", type=float, help="BM25 b (default 0.4 for lucene, 0.75 for the others)")
    p.add_argument("--mu", type=float, help="Dirichlet prior mu for --scorer dirichlet (default 1000)")
    p.add_argument("--rm3", action="store_true", help="expand queries with RM3 pseudo-relevance feedback "
                   "(10 feedback docs, 10 terms, original query weight 0.5, as Anserini)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="minilm", metavar="ENCODER",
                   help="dense encoder for a new dense index: a known model (minilm = all-MiniLM-L6-v2, offline "
                   "default; bge-small-en-v1.5, e5-small-v2, ...), any sentence-transformers folder or hub name, or "
                   "BACKEND:MODEL (onnx:minilm, onnx-int8:minilm, wordllama, model2vec:PATH)")
    p.add_argument("--chunking", metavar="TOKENS[:OVERLAP[:POOL]]",
                   help="encode documents longer than the model window as pooled windows, e.g. 256:32:mean "
                   "(pool: mean, max, first); default: truncate at the model window")
    p.add_argument("--rerank", metavar="RERANKER",
                   help="rerank the first --rerank-depth results: cross-encoder:MODEL (a local folder or hub name) "
                   "or maxsim (late interaction over the dense model's token embeddings)")
    p.add_argument("--rerank-depth", type=positive_int, default=RERANK_DEPTH,
                   help=f"candidates reranked (default {RERANK_DEPTH})")


def scoring_params(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in ("k1", "b", "mu") if getattr(args, name) is not None}


def add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search a collection",
                       description="Rank the collection's documents for one or more queries.")
    p.add_argument("collection", help="collection folder")
    p.add_argument("queries", nargs="*", metavar="QUERY",
                   help="query text(s); a code snippet works as a query too (operators and all)")
    p.add_argument("--query-file", action="append", metavar="FILE",
                   help="read one query from FILE ('-' = standard input), e.g. a code snippet to find its twins: "
                   f"`retrievekit search COL --query-file snippet.py`; at most {CLI_MAX_QUERY_CHARS:,} characters. "
                   "Repeatable")
    p.add_argument("--image", action="append", metavar="PATH",
                   help="query by image (repeatable) in a collection with an image-text (CLIP) index: similar images "
                   "first; a QUERY text given too composes the query (this image, changed as the text says)")
    p.add_argument("--near-duplicates", action="store_true",
                   help="with --image: near-duplicate search by perceptual hash (a collection indexed with --hash); "
                   "score = matching bits")
    p.add_argument("--image-weight", type=float, default=0.5, metavar="W",
                   help="with --image and a QUERY: the text's weight in the composed query, 0..1 (default 0.5)")
    p.add_argument("-k", type=positive_int, default=10, help="number of results per query (default 10)")
    p.add_argument("--filter", metavar="JSON",
                   help='metadata filter, e.g. \'{"year": {"gte": 2000}, "lang": "en", "tag": {"in": ["a", "b"]}}\', '
                   '\'{"path": {"glob": "src/**/*.py"}}\'')
    code = p.add_argument_group("code collections (retrievekit index --code)",
                                "shorthands for filters on the code metadata; repeat a flag for any of several values")
    code.add_argument("--language", action="append", metavar="NAME",
                      help="only symbols in this language (python, javascript, typescript, go, rust, java, c, cpp, "
                      "ruby, ...)")
    code.add_argument("--kind", action="append", metavar="KIND",
                      help="only this kind of symbol (function, method, class, struct, interface, ...)")
    code.add_argument("--path", action="append", metavar="GLOB",
                      help="only files matching GLOB: * and ? within a folder name, ** across folders, a pattern "
                      "without / at any depth (src/**/*.py, '*_test.go', tests)")
    p.add_argument("--field-weights", metavar="FIELD=W,...",
                   help="BM25 field weights for this search, over the fields the collection indexes on their own "
                   "(default: the collection's own weights, if it has any; 'none': the joined fields)")
    p.add_argument("--mode", choices=MODES,
                   help="bm25, dense, hybrid or sparse (default: hybrid if the collection has a dense index, else "
                   "bm25)")
    p.add_argument("--fusion", choices=["rrf", "convex"],
                   help="how hybrid mode fuses BM25 and dense results: rrf (reciprocal rank fusion, k=60) or convex "
                   "(min-max normalised scores, equal weights). Default: z-scored scores, 0.2 x BM25 + 0.8 x dense")
    p.add_argument("--rerank", metavar="RERANKER",
                   help="rerank the first --rerank-depth results: cross-encoder:MODEL or maxsim")
    p.add_argument("--rerank-depth", type=positive_int, default=RERANK_DEPTH,
                   help=f"candidates reranked (default {RERANK_DEPTH})")
    add_scoring_options(p)
    p.add_argument("--json", action="store_true",
                   help="print results as JSON (per hit: rank, id, score, title, plain-text snippet, metadata)")
    add_ray_option(p)
    p.set_defaults(func=run_search)


CLI_MAX_K = 1_000_000  # the command line has no server to protect: any k a machine can hold
CLI_MAX_QUERY_CHARS = 65_536  # a pasted snippet of a few hundred lines; bounded so a wrong file fails at once
JSON_HITS = HitFormat("plain", 300)  # the MCP server's plain snippets, scores unrounded


def parse_filter(text: str | None) -> Any:
    """The metadata filter of a ``--filter JSON`` option (None when not given)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RetrievekitError(f"--filter is not valid JSON: {exc}") from None
    try:
        check_filter(value)  # a bad filter fails before any collection is opened
    except RetrievekitError as exc:
        message = str(exc)
        raise RetrievekitError("--" + message if message.startswith("filter") else f"--filter: {message}") from None
    return value


def read_query_file(name: str, limit: int = CLI_MAX_QUERY_CHARS) -> str:
    """The query in file ``name`` ('-' = standard input) as UTF-8 text (a BOM dropped); a clear error when it cannot
    be read, is not UTF-8, is empty or holds more than ``limit`` characters (reading stops there)."""
    label = "standard input" if name == "-" else name
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    chars = consumed = 0
    try:
        stream = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    except OSError as exc:
        raise RetrievekitError(f"--query-file {label}: cannot read it ({exc.strerror or exc})") from None
    try:
        while True:
            chunk = stream.read(65_536)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise RetrievekitError(f"--query-file {label}: not UTF-8 text (invalid byte at offset "
                                       f"{consumed + max(exc.start, 0):,}); save the snippet as UTF-8") from None
            consumed += len(chunk)
            parts.append(text)
            chars += len(text)
            if chars > limit:
                raise RetrievekitError(f"--query-file {label}: the query is over {limit:,} characters (the limit); "
                                       "pass the part of the code to look for")
            if not chunk:
                break
    except OSError as exc:
        raise RetrievekitError(f"--query-file {label}: cannot read it ({exc.strerror or exc})") from None
    finally:
        if name != "-":
            stream.close()
    text = "".join(parts).removeprefix("\ufeff")
    if not text.strip():
        raise RetrievekitError(f"--query-file {label}: the file is empty; it should hold the query (e.g. a code "
                               "snippet)")
    return text


def code_filter(args: argparse.Namespace, search_filter: dict[str, Any] | None) -> dict[str, Any] | None:
    """``--filter`` with the ``--language``, ``--kind`` and ``--path`` shorthands added (a field named by both is an
    error: which one was meant is unclear)."""
    extra: dict[str, Any] = {}
    for field in ("language", "kind"):
        values = getattr(args, field, None)
        if values:
            extra[field] = values[0] if len(values) == 1 else {"in": list(dict.fromkeys(values))}
    if getattr(args, "path", None):
        extra["path"] = {"glob": args.path[0] if len(args.path) == 1 else list(dict.fromkeys(args.path))}
    if not extra:
        return search_filter
    both = sorted(set(extra) & set(search_filter or {}))
    if both:
        raise RetrievekitError(f"--filter and --{both[0]} both filter {both[0]!r}: give one of them")
    merged = {**(search_filter or {}), **extra}
    try:
        check_filter(merged)
    except RetrievekitError as exc:
        flag = next((f"--{name}" for name in extra if repr(name) in str(exc)), "--filter")
        raise RetrievekitError(f"{flag}: {exc}") from None
    return merged


def run_index_images(args: argparse.Namespace) -> int:
    """``index --images``: a collection of image documents (created if missing), embedded if it has a CLIP index."""
    from pathlib import Path

    for flag, value in (("--format", args.format), ("--passages", args.passages), ("--schema", args.schema),
                        ("--chunking", args.chunking)):
        if value:
            raise RetrievekitError(f"{flag} does not apply to --images (one document per image)")
    folder = Path(args.collection)
    with removed_on_failure(folder):
        exists = (folder / "manifest.json").is_file()
        col = Collection.create(folder, analyzer=args.analyzer or "lucene-english", fields=args.fields.split(","),
                                exist_ok=True, dense=None if exists else args.dense, vectors=args.vectors)
        if args.dense and "default" not in (col.config.get("dense") or {}):
            col.add_dense_index(args.dense, vectors=args.vectors, progress=not args.no_progress,
                                lock_timeout=args.lock_timeout)
        if args.hash and "default" not in (col.config.get("imagehash") or {}):
            col.add_image_hash_index(args.hash, lock_timeout=args.lock_timeout)
        report = col.ingest_images(args.source, lock_timeout=args.lock_timeout)
    if args.json:
        print_json({"collection": str(col.path), **report})
        return 0
    print(f"indexed {report['documents']:,} images in {report['seconds']:.2f} s; {col.path} now holds {len(col):,} "
          f"documents" + (f"; skipped {len(report['skipped'])}:" if report["skipped"] else ""))
    for path, reason in report["skipped"]:
        print(f"  {path}: {reason}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    if args.k > CLI_MAX_K:
        raise RetrievekitError(f"-k is at most {CLI_MAX_K:,}, got {args.k:,}")
    if args.fusion and args.mode not in (None, "hybrid"):
        raise RetrievekitError(f"--fusion applies to --mode hybrid, not --mode {args.mode}")
    search_filter = code_filter(args, parse_filter(args.filter))
    field_weights = parse_field_weights(args.field_weights)
    if field_weights is not None and args.mode in ("dense", "sparse"):
        raise RetrievekitError(f"--field-weights weights BM25's fields: it applies to bm25 and hybrid, not --mode "
                               f"{args.mode}")
    queries = list(args.queries) + [read_query_file(name) for name in args.query_file or ()]
    if args.image:
        with opened(args) as col:
            return _search_images(args, col, queries, search_filter)
    if not queries:
        raise RetrievekitError("give a query: QUERY text, or --query-file FILE (- for standard input)")
    with opened(args) as col:
        return _search(args, col, queries, search_filter, field_weights)


def _search(args: argparse.Namespace, col: AnyCollection, queries: list[str], search_filter: Any,
            field_weights: dict[str, float] | None) -> int:
    if args.fusion and (args.mode or col.default_mode) != "hybrid":
        raise RetrievekitError(f"--fusion applies to hybrid search, but {args.collection} has no dense index "
                               f"(its default mode is {col.default_mode})")
    options: dict[str, Any] = {"scorer": args.scorer, "rm3": args.rm3, **scoring_params(args)}
    if args.fusion:
        options["fusion"] = args.fusion
    if field_weights is not None:
        options["field_weights"] = field_weights
    request = SearchRequest("", k=args.k, mode=args.mode, filter=search_filter, rerank=args.rerank,
                            rerank_depth=args.rerank_depth if args.rerank else None, options=options,
                            max_k=CLI_MAX_K, max_query_chars=CLI_MAX_QUERY_CHARS)
    responses = search_batch(col, queries, request)
    elapsed = responses[0].took_ms / 1000 if responses else 0.0
    if args.json:
        print_json({
            "results": [{"query": r.request.query,
                         "hits": [_json_hit(h, r.request.query, col) for h in r.hits]}
                        for r in responses],
            "mode": responses[0].mode if responses else args.mode or col.default_mode,
            "seconds": elapsed,
        })
        return 0
    for r in responses:
        print_hits(r.request.query, [(h.document, h.score) for h in r.hits], col.analyzer)
    print(f"\n{len(queries)} quer{'y' if len(queries) == 1 else 'ies'} in {elapsed * 1000:.1f} ms")
    return 0


def _search_images(args: argparse.Namespace, col: AnyCollection, texts: list[str], search_filter: Any) -> int:
    """``search --image PATH``: image -> image, or image + text (the QUERY) composed."""
    import time

    if not isinstance(col, Collection):
        raise RetrievekitError("--image search works on plain collections, not sharded ones (yet)")
    if len(texts) > 1:
        raise RetrievekitError("with --image, give at most one QUERY text: it modifies every query image")
    text = texts[0] if texts else None
    started = time.perf_counter()
    if args.near_duplicates:
        if text is not None:
            raise RetrievekitError("--near-duplicates compares pictures only: leave out the QUERY text")
        results = col.search_near_duplicates(args.image, args.k, filter=search_filter)
    else:
        results = col.search_images(args.image, args.k, text=text, weight=args.image_weight, filter=search_filter)
    elapsed = time.perf_counter() - started
    labels = [f"image {path}" + (f" + {text!r}" if text else "") for path in args.image]
    if args.json:
        print_json({"results": [{"query": label, "hits": [{"id": d.id, "score": s, "metadata": {
            k: v for k, v in d.metadata.items() if k != "thumbnail"}} for d, s in col.hit_documents(results, i)]}
            for i, label in enumerate(labels)], "seconds": elapsed})
        return 0
    for i, label in enumerate(labels):
        print_hits(label, col.hit_documents(results, i), col.analyzer)
    print(f"\n{len(labels)} image quer{'y' if len(labels) == 1 else 'ies'} in {elapsed * 1000:.1f} ms")
    return 0


def _json_hit(hit: Any, query: str, col: AnyCollection) -> dict[str, Any]:
    out: dict[str, Any] = hit.to_json(query, col.analyzer, JSON_HITS)
    location = code_location(hit.document)
    if location is None:  # a PDF's or slide deck's pages
        location = document_page_reference(hit.document.metadata, len(hit.document.text))
    if location is not None:
        out["location"] = location
    return out


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show collection statistics",
                       description="Documents, segments, vocabulary, disk use and settings of a collection.")
    p.add_argument("collection", help="collection folder (plain or sharded: a sharded one lists its shards)")
    p.add_argument("--json", action="store_true", help="print as JSON")
    add_ray_option(p)
    p.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    with opened(args) as col:
        info = collection_info(col).collection
        add_encoder_paths(info, col)
    if args.json:
        print_json(info)
    else:
        print(table(["property", "value"], wrapped_rows(list(flat_rows(info)))))
    return 0


def add_encoder_paths(info: dict[str, Any], col: AnyCollection) -> None:
    """Beside each dense index of a sentence-transformers model: the numeric path encoding runs on with this CPU
    (encoders.auto; the stored spec does not change with it) and why, once a bulk encode has chosen one."""
    from retrievekit.encoders.auto import decision_for_spec

    for name, entry in (info.get("dense") or {}).items():
        if not isinstance(entry, dict) or entry.get("backend", "sentence-transformers") != "sentence-transformers":
            continue
        try:
            spec = col.index_config("dense", name)["encoder"]
        except Exception:  # a sharded collection or an index without a stored spec: nothing to add
            continue
        decision = decision_for_spec(spec)
        entry["encoding_path"] = decision.reason if decision else "not chosen yet on this CPU (fp32 until then)"


def add_delete(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("delete", help="delete documents by id", description="Delete documents by id and commit.")
    p.add_argument("collection", help="collection folder")
    p.add_argument("ids", nargs="+", help="document ids")
    add_lock_timeout(p)
    add_ray_option(p)
    p.set_defaults(func=run_delete)


def run_delete(args: argparse.Namespace) -> int:
    with opened(args) as col, col.writer(lock_timeout=args.lock_timeout) as w:
        deleted = delete_documents(w, args.ids)
    print(f"deleted {deleted} document(s)")
    return 0


def add_optimize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("optimize", help="merge segments and drop deleted documents",
                       description="Merge all segments into one and purge deleted documents.")
    p.add_argument("collection", help="collection folder")
    add_lock_timeout(p)
    p.set_defaults(func=run_optimize)


def run_optimize(args: argparse.Namespace) -> int:
    if is_sharded_folder(args.collection):
        raise RetrievekitError(f"{args.collection} is a sharded collection: optimize merges the segments of a plain "
                               "collection and does not run over the shards of a sharded one yet")
    w = Collection(args.collection).writer(lock_timeout=args.lock_timeout)  # as Collection.optimize, with a wait
    try:
        generation = w.optimize()
    finally:
        w.close()
    print(f"optimized: generation {generation}")
    return 0


