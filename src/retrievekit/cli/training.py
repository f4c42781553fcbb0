"""`retrievekit build-data` and `retrievekit mine-negatives`: training data (JSONL of query, positive, negatives)
from a collection's documents and judgements, and hard negatives mined from its own retrievers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from retrievekit.cli.commands import positive_int
from retrievekit.collection import Collection
from retrievekit.core.errors import InputFormatError
from retrievekit.training.builders import from_qrels, inverse_cloze, random_crops, title_body
from retrievekit.training.data import TrainingSet
from retrievekit.training.mining import MODES, mine_negatives

SOURCES = "qrels:PATH | ict | crop | title"
BUILDERS: dict[str, Callable[..., TrainingSet]] = {"ict": inverse_cloze, "crop": random_crops, "title": title_body}


def add_build_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build-data", help="build training data (JSONL) from judgements or the documents themselves",
        description="Write training examples built from COLLECTION to OUT (one JSON object per line). --from "
        "qrels:PATH takes judgements: PATH is a BEIR folder (split --split) or a qrels file (with --queries); "
        "ict (a sentence vs the rest of its document), crop (two random spans of a document) and title (title vs "
        "text) need nothing but the documents.")
    p.add_argument("collection", help="collection folder")
    p.add_argument("--from", dest="source", required=True, metavar="SOURCE", help=SOURCES)
    p.add_argument("--out", required=True, metavar="FILE", help="the JSONL file to write")
    p.add_argument("--split", default="train", help="the BEIR split for qrels:FOLDER (default train)")
    p.add_argument("--queries", metavar="FILE", help="queries for qrels:FILE: BEIR queries.jsonl or 'qid<TAB>text'")
    p.add_argument("--min-grade", type=int, default=1, metavar="N", help="lowest relevance grade kept (default 1)")
    p.add_argument("--skip-missing", action="store_true",
                   help="skip judged documents missing from the collection instead of failing")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="at most N examples (self-supervised sources)")
    p.set_defaults(func=run_build_data)


def add_mine_negatives(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mine-negatives", help="add hard negatives mined from a collection to training data",
        description="Search COLLECTION for each query of --data and append the best-ranked documents that are "
        "not its positives as negatives, skipping candidates scoring within --margin of the positive (likely "
        "unjudged positives). Writes --out atomically.")
    p.add_argument("collection", help="collection folder")
    p.add_argument("--data", required=True, metavar="IN", help="training data JSONL to read")
    p.add_argument("--out", required=True, metavar="OUT", help="training data JSONL to write")
    p.add_argument("--mode", choices=MODES, default="bm25", help="retriever to mine with (default bm25)")
    p.add_argument("--per-query", type=positive_int, default=4, metavar="N",
                   help="negatives added per example (default 4)")
    p.add_argument("-k", type=positive_int, default=100, help="candidates retrieved per query (default 100)")
    p.add_argument("--margin", type=float, default=0.05, metavar="M",
                   help="drop candidates scoring above (1 - M) x the positive's score (default 0.05; a negative "
                   "value turns the rule off)")
    p.set_defaults(func=run_mine_negatives)


def run_build_data(args: argparse.Namespace) -> int:
    collection = Collection(args.collection)
    kind, _, path = args.source.partition(":")
    if kind == "qrels":
        if not path:
            raise InputFormatError(f"--from qrels needs a path: qrels:PATH (sources: {SOURCES})")
        queries, qrels = _judgements(Path(path), args.split, args.queries)
        data = from_qrels(collection, queries, qrels, min_grade=args.min_grade,
                          missing="skip" if args.skip_missing else "error")
    elif kind in BUILDERS and not path:
        data = BUILDERS[kind](collection, seed=args.seed, limit=args.limit)
    else:
        raise InputFormatError(f"unknown --from {args.source!r}; choose one of: {SOURCES}")
    data.save(args.out)
    print(f"wrote {len(data)} examples to {args.out} ({_counts(data)})")
    return 0


def run_mine_negatives(args: argparse.Namespace) -> int:
    collection = Collection(args.collection)
    data = TrainingSet.load(args.data)
    mined = mine_negatives(data, collection, mode=args.mode, k=args.k, per_query=args.per_query,
                           margin=None if args.margin < 0 else args.margin)
    mined.save(args.out)
    print(f"wrote {len(mined)} examples to {args.out} ({_counts(mined)})")
    return 0


def _counts(data: TrainingSet) -> str:
    return ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in data.stats.items())


def _judgements(path: Path, split: str, queries_path: str | None) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    if path.is_dir():
        from retrievekit.evaluation.datasets import load_beir

        dataset = load_beir(path, split)
        return dataset.queries, dataset.qrels
    from retrievekit.evaluation.trec import read_qrels

    if queries_path is None:
        raise InputFormatError("a qrels file needs its queries: pass --queries FILE", path)
    return _read_queries(Path(queries_path)), read_qrels(path)


def _read_queries(path: Path) -> dict[str, str]:
    """BEIR ``queries.jsonl`` ({"_id", "text"} per line) or ``qid<TAB>text`` lines."""
    if not path.is_file():
        raise InputFormatError("no such queries file", path)
    queries = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                try:
                    obj = json.loads(line)
                    queries[str(obj["_id"])] = str(obj.get("text", ""))
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise InputFormatError("expected a JSON object with '_id' and 'text'", path, lineno) from None
            else:
                qid, tab, text = line.rstrip("\r\n").partition("\t")
                if not tab:
                    raise InputFormatError("expected 'qid<TAB>text' or a JSON object", path, lineno)
                queries[qid.strip()] = text
    return queries
