"""`retrievekit generate-queries`: synthetic training queries for a collection's documents, written by a generator
(InPars / Promptagator style), resumable after a failure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retrievekit.cli.commands import positive_int
from retrievekit.collection import Collection
from retrievekit.core.errors import InputFormatError, RetrievekitError
from retrievekit.rag.generators.base import get_generator
from retrievekit.training.data import TrainingDataError, TrainingSet
from retrievekit.training.mining import MODES
from retrievekit.training.synthetic import REJECTIONS, RoundTrip, generate_queries, load_examples


def add_generate_queries(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate-queries", help="write synthetic training queries for a collection's documents with a generator",
        description="Ask a generator for a search query for each of a seeded sample of COLLECTION's documents "
        "(after a few example pairs from --examples, when given) and write them as training data (JSONL) to "
        "--out. Junk outputs are rejected; --round-trip K keeps only queries whose document the collection "
        "ranks in its top K. Generated queries are kept in OUT.partial as they come: after a failure, the "
        "same command goes on from there (with other settings it refuses: delete OUT.partial to start over).")
    p.add_argument("collection", help="collection folder")
    p.add_argument("--generator", required=True, metavar="SPEC",
                   help="local (offline gemma-3-270m base model), local:MODEL, or openai:MODEL[@BASE_URL] (any "
                   "OpenAI-compatible server)")
    p.add_argument("--out", required=True, metavar="FILE", help="the training data JSONL to write")
    p.add_argument("--examples", metavar="FILE",
                   help="few-shot examples: JSONL of {\"document\", \"query\"} or training data (query, positive)")
    p.add_argument("--per-document", type=positive_int, default=1, metavar="N",
                   help="queries per document (default 1)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="at most N documents (default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the document sample (default 0)")
    p.add_argument("--round-trip", type=positive_int, metavar="K",
                   help="keep a query only if searching for it ranks its document in the top K")
    p.add_argument("--round-trip-mode", choices=MODES, default="bm25", help="retriever of --round-trip "
                   "(default bm25)")
    p.add_argument("--max-tokens", type=positive_int, default=48, metavar="N",
                   help="generation limit per query in tokens (default 48)")
    p.add_argument("--temperature", type=float, metavar="T",
                   help="sampling temperature (default 0 for one query per document, 0.8 for several)")
    p.add_argument("--precision", choices=("fp32", "bf16"),
                   help="a local generator's arithmetic: bf16 is faster on CPUs with native bf16 (AMX, "
                        "AVX512_BF16), fp32 (the default) exact")
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="N",
                   help="documents per batch: a local generator runs a batch's prompts together, and the state "
                        "file is written after each (default 16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_generate_queries)


def run_generate_queries(args: argparse.Namespace) -> int:
    # input that can be wrong fails before a generator is loaded (a local model takes a while)
    if not Path(args.collection).is_dir():
        raise InputFormatError("no such collection folder", args.collection)
    options = {}
    if args.precision:
        if args.generator.split(":", 1)[0] != "local":
            raise RetrievekitError(f"--precision applies to local generators only, not {args.generator!r}")
        options["precision"] = args.precision
    collection = Collection(args.collection)
    examples = load_examples(args.examples) if args.examples else None
    round_trip = RoundTrip(args.round_trip, args.round_trip_mode) if args.round_trip else None
    out = Path(args.out)
    state = out.with_name(out.name + ".partial")
    data: TrainingSet | None = None
    try:
        with get_generator(args.generator, **options) as generator:
            data = generate_queries(collection, generator, examples=examples, per_document=args.per_document,
                                    limit=args.limit, seed=args.seed, max_tokens=args.max_tokens,
                                    temperature=args.temperature, round_trip=round_trip, state=state,
                                    batch_size=args.batch_size, progress=not args.no_progress)
    except (TrainingDataError, InputFormatError):
        raise  # bad settings or a damaged state file: nothing was generated
    except BaseException:
        if state.exists():
            print(f"the queries generated so far are kept in {state}: rerun the same command to go on from there",
                  file=sys.stderr)
        raise
    data.save(out)
    state.unlink(missing_ok=True)
    stats = data.stats
    counts = [f"{stats['documents']} documents", f"{stats['generated']} generated"]
    if stats["resumed"]:
        counts.append(f"{stats['resumed']} resumed from {state.name}")
    reasons = ", ".join(f"{r.replace('_', ' ')}: {stats[f'rejected_{r}']}" for r in REJECTIONS
                        if stats[f"rejected_{r}"])
    counts.append(f"{stats['rejected']} rejected" + (f" ({reasons})" if reasons else ""))
    if round_trip is not None:
        counts += [f"round trip: {stats['round_trip_kept']} kept, {stats['round_trip_dropped']} dropped"]
    print(f"wrote {len(data)} queries to {out} ({', '.join(counts)})")
    return 0
