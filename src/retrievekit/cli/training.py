"""`retrievekit build-data` and `retrievekit mine-negatives`: training data (JSONL of query, positive, negatives)
from a collection's documents and judgements, and hard negatives mined from its own retrievers (a reranker may veto
likely positives). `retrievekit score-teacher`: a reranker's scores for MarginMSE distillation. `retrievekit train`:
a dense encoder or a reranker trained on such data."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from retrievekit.cli.commands import positive_int
from retrievekit.collection import Collection
from retrievekit.core.errors import InputFormatError
from retrievekit.training.builders import docstring_function, from_qrels, inverse_cloze, random_crops, title_body
from retrievekit.training.code_functions import CODE_LANGUAGES
from retrievekit.training.data import TrainingSet
from retrievekit.training.encoder_training import ENCODER_LOSSES, SHORT_NEGATIVES
from retrievekit.training.mining import MODES, mine_negatives
from retrievekit.training.reranker_training import RERANKER_LOSSES

SOURCES = "qrels:PATH | ict | crop | title | docstring"
BUILDERS: dict[str, Callable[..., TrainingSet]] = {"ict": inverse_cloze, "crop": random_crops, "title": title_body,
                                                   "docstring": docstring_function}


def add_build_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build-data", help="build training data (JSONL) from judgements or the documents themselves",
        description="Write training examples built from COLLECTION to OUT (one JSON object per line). --from "
        "qrels:PATH takes judgements: PATH is a BEIR folder (split --split) or a qrels file (with --queries); "
        "ict (a sentence vs the rest of its document), crop (two random spans of a document), title (title vs "
        "text) and docstring (a documented function's docstring vs its code, in source-code documents) need "
        "nothing but the documents.")
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
    p.add_argument("--languages", metavar="LANG,...",
                   help=f"docstring: the languages to read (default all: {','.join(CODE_LANGUAGES)})")
    p.add_argument("--min-doc-words", type=positive_int, default=3, metavar="N",
                   help="docstring: skip docstrings whose first paragraph has fewer words (default 3)")
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
    p.add_argument("--judge", metavar="RERANKER",
                   help="a reranker (folder, cross-encoder:MODEL, ...) that vetoes candidates it scores at or above "
                   "--judge-threshold: likely unjudged positives")
    p.add_argument("--judge-threshold", type=float, metavar="T",
                   help="the --judge score (a cross-encoder's raw logit: 0 is probability one half) from which a "
                   "candidate is dropped")
    p.set_defaults(func=run_mine_negatives)


def add_score_teacher(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score-teacher", help="add a reranker's scores to training data (for train dense --loss margin-mse)",
        description="Score each example's positive and negatives of --data with the reranker --teacher and write "
        "them as teacher_scores to --out (atomically): the scores `train dense --loss margin-mse` distils. Mine "
        "negatives first: margin-mse learns from the score differences between the positive and each negative.")
    p.add_argument("--data", required=True, metavar="IN", help="training data JSONL to read")
    p.add_argument("--teacher", required=True, metavar="RERANKER",
                   help="a reranker: a trained folder, cross-encoder:MODEL, a hub name or an alias")
    p.add_argument("--out", required=True, metavar="OUT", help="training data JSONL to write")
    p.add_argument("--batch-size", type=positive_int, default=256, metavar="N",
                   help="(query, text) pairs per call to the teacher (default 256)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_score_teacher)


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a dense encoder or a reranker on training data (JSONL)",
        description="Fine-tune --base on the training data of --data and save a model folder to --out (with "
        "MODEL_CARD.md): usable wherever a model name is (index --dense FOLDER, search --rerank FOLDER). A share "
        "of the data's queries (--dev-fraction) is held out and scored each epoch.")
    p.add_argument("kind", choices=("dense", "reranker"), help="what to train")
    p.add_argument("collection", help="collection folder the model is trained for (checked before training)")
    p.add_argument("--data", required=True, metavar="FILE[:WEIGHT],...",
                   help="training data JSONL; several files (comma-separated) are mixed, in proportion to their "
                   "weights when given (a missing weight counts 1)")
    p.add_argument("--out", required=True, metavar="DIR", help="model folder to write (replaced atomically)")
    p.add_argument("--base", default="minilm", help="model to start from: alias, folder or hub name (default minilm)")
    p.add_argument("--loss", help=f"dense: {' | '.join(ENCODER_LOSSES)} (default mnrl); reranker: "
                   f"{' | '.join(RERANKER_LOSSES)} (default bce)")
    p.add_argument("--epochs", type=positive_float, default=1.0, metavar="N", help="epochs (default 1)")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="batch size (default 32 dense, 16 reranker)")
    p.add_argument("--learning-rate", type=positive_float, default=2e-5, metavar="LR", help="(default 2e-5)")
    p.add_argument("--head-learning-rate", type=positive_float, metavar="LR",
                   help="reranker: learning rate of the score head (default 1e-3 when the base has no trained head, "
                        "else --learning-rate)")
    p.add_argument("--max-length", type=positive_int, metavar="N", help="truncate texts to N tokens")
    p.add_argument("--max-negatives", type=int, metavar="N",
                   help="use at most N hard negatives per example (default: all; dense rows all get the same number)")
    p.add_argument("--short-negatives", choices=SHORT_NEGATIVES,
                   help="dense: what to do with examples that have fewer negatives than the others: error (default; "
                   "names them), drop (train without them) or pad (fill up with other examples' negatives)")
    p.add_argument("--dev-fraction", type=float, default=0.1, metavar="F",
                   help="share of queries held out for dev metrics (default 0.1; 0 for none)")
    p.add_argument("--tune-blend", metavar="MODE", choices=MODES,
                   help="reranker: after training, rerank the held-out queries' top --tune-depth from the collection's "
                        "MODE retriever and record in the model's card the blend of reranker and MODE scores that "
                        "ranks their positives best; --rerank FOLDER then ranks that way")
    p.add_argument("--tune-depth", type=positive_int, default=100, metavar="N",
                   help="candidates per held-out query for --tune-blend (default 100)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when present)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue from --out's last checkpoint")
    group.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run_train)


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def run_train(args: argparse.Namespace) -> int:
    from retrievekit.training._deps import read_card, require_training

    # everything that can fail on the input fails here, before the (slow) model load and before --out is touched
    if not Path(args.collection).is_dir():
        raise InputFormatError("no such collection folder", args.collection)
    Collection(args.collection)
    losses = ENCODER_LOSSES if args.kind == "dense" else RERANKER_LOSSES
    loss = args.loss or losses[0]
    if loss not in losses:
        raise InputFormatError(f"unknown --loss {loss!r} for {args.kind}; choose one of: {', '.join(losses)}")
    if args.tune_blend and args.kind != "reranker":
        raise InputFormatError("--tune-blend is for reranker training: it weighs a reranker against a first stage")
    if args.head_learning_rate is not None and args.kind != "reranker":
        raise InputFormatError("--head-learning-rate is for reranker training: a dense model has no score head")
    if args.short_negatives and args.kind != "dense":
        raise InputFormatError("--short-negatives is for dense training: a reranker trains on every negative each "
                               "example has, however many")
    if args.max_negatives is not None and args.max_negatives < 0:
        raise InputFormatError(f"--max-negatives must be >= 0, got {args.max_negatives}")
    data = load_data_spec(args.data, seed=args.seed)
    if args.kind == "dense" and (args.short_negatives or "error") == "error":
        _check_negatives(args.data, data, args.max_negatives)
    train, dev = data.split(args.dev_fraction, seed=args.seed)
    if not len(train):
        raise InputFormatError(f"no training examples left after holding out --dev-fraction {args.dev_fraction}",
                               args.data)
    judged = [e for e in dev if e.positive_id is not None]
    if args.tune_blend and not judged:
        raise InputFormatError("--tune-blend needs held-out examples whose positive names its document (positive_id, "
                               "as build-data and mine-negatives write it): none among the --dev-fraction "
                               f"{args.dev_fraction} held out", args.data)
    require_training()
    options = {"loss": loss, "epochs": args.epochs, "learning_rate": args.learning_rate, "seed": args.seed,
               "dev": dev if len(dev) else None, "resume": args.resume, "overwrite": args.overwrite,
               "device": args.device, "progress": True}
    if args.batch_size:
        options["batch_size"] = args.batch_size
    if args.max_length:
        options["max_length"] = args.max_length
    if args.max_negatives is not None:
        options["max_negatives"] = args.max_negatives
    if args.short_negatives:
        options["short_negatives"] = args.short_negatives
    if args.head_learning_rate is not None:
        options["head_learning_rate"] = args.head_learning_rate
    print(f"training a {args.kind} model from {args.base} on {len(train)} examples ({len(dev)} held out for dev)",
          file=sys.stderr)
    if args.kind == "dense":
        from retrievekit.training.encoder_training import train_encoder

        out = train_encoder(args.base, train, args.out, **options)
    else:
        from retrievekit.training.reranker_training import train_reranker

        out = train_reranker(args.base, train, args.out, **options)
        if args.tune_blend:
            from retrievekit.training.reranker_training import tune_blend

            queries: dict[str, str] = {}
            qrels: dict[str, dict[str, int]] = {}
            for e in judged:
                key = e.query_id or e.query
                queries[key] = e.query
                qrels.setdefault(key, {})[str(e.positive_id)] = 1
            first_stage = Collection(args.collection).retriever(args.tune_blend)
            record = tune_blend(out, first_stage, queries, qrels, depth=args.tune_depth, progress=True)
            print(f"blend with {args.tune_blend}: reranker share {record['rerank_blend']:g} (nDCG@10 on "
                  f"{record['blend_tuning']['queries']} held-out queries: {args.tune_blend} alone "
                  f"{record['blend_tuning']['first_stage']:.4f}, by share {record['blend_tuning']['by_blend']})",
                  file=sys.stderr)
    card = read_card(out)
    losses_seen = card.get("loss_curve") or []
    rows = [("model", str(out)), ("steps", str(card["global_step"])), ("seconds", f"{card['train_seconds']:.1f}"),
            ("final loss", f"{losses_seen[-1]:.4f}" if losses_seen else "-")]
    rows += [(f"dev {name}", f"{value:.4f}") for name, value in sorted(card.get("metrics", {}).items())]
    if card.get("rerank_blend") is not None:
        rows.append(("rerank blend", f"{card['rerank_blend']:g} (reranker's share of the final score)"))
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    return 0


def _check_negatives(spec: str, data: TrainingSet, max_negatives: int | None) -> None:
    """Fail like ``train_encoder(short_negatives="error")``, but naming the file and line of the first short
    example (the trainer sees the mixed, split set and can only give its position there)."""
    most = max(len(e.negatives) for e in data)
    k = most if max_negatives is None else min(most, max_negatives)
    short = sum(len(e.negatives) < k for e in data)
    if not short:
        return
    where = ""
    for path, _ in _data_files(spec):
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip() and len(json.loads(line).get("negatives") or []) < k:
                    where = f" (the first: {path}:{lineno})"
                    break
        if where:
            break
    raise InputFormatError(
        f"{short} of {len(data)} examples have fewer than {k} negatives{where}: every dense training row needs the "
        "same number. Pass --short-negatives drop to train without them, --short-negatives pad to fill them up "
        "with other examples' negatives, or --max-negatives N to use at most N per example")


def _data_files(spec: str) -> list[tuple[str, float | None]]:
    """The (file, weight or None) pairs of a ``FILE[:WEIGHT],...`` spec."""
    files: list[tuple[str, float | None]] = []
    for part in spec.split(","):
        path, colon, weight = part.strip().rpartition(":")
        if not colon:
            path, weight = weight, ""
        if not path:
            raise InputFormatError(f"--data {spec!r}: an empty file name (expected FILE[:WEIGHT],...)")
        try:
            value = float(weight) if weight else None
        except ValueError:
            raise InputFormatError(f"--data: weight {weight!r} of {path} is not a number", spec) from None
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise InputFormatError(f"--data: weight {weight!r} of {path} must be a number >= 0", spec)
        files.append((path, value))
    return files


def load_data_spec(spec: str, *, seed: int = 0) -> TrainingSet:
    """``FILE[:WEIGHT][,FILE2[:WEIGHT]]``: one set, or several mixed (weighted if any weight is given)."""
    parsed = _data_files(spec)
    files = [path for path, _ in parsed]
    weights = [weight for _, weight in parsed]
    sets = [TrainingSet.load(path) for path in files]
    for path, data in zip(files, sets):
        if not len(data):
            raise InputFormatError("training data file has no examples", path)
    if len(sets) == 1:
        return sets[0]
    if all(w is None for w in weights):
        return TrainingSet.mix(sets, seed=seed)
    return TrainingSet.mix(sets, [1.0 if w is None else w for w in weights], seed=seed)


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
        options = {}
        if kind == "docstring":
            options["min_doc_words"] = args.min_doc_words
            if args.languages:
                options["languages"] = [name.strip() for name in args.languages.split(",") if name.strip()]
        elif args.languages:
            raise InputFormatError("--languages applies to --from docstring only")
        data = BUILDERS[kind](collection, seed=args.seed, limit=args.limit, **options)
    else:
        raise InputFormatError(f"unknown --from {args.source!r}; choose one of: {SOURCES}")
    data.save(args.out)
    print(f"wrote {len(data)} examples to {args.out} ({_counts(data)})")
    return 0


def run_mine_negatives(args: argparse.Namespace) -> int:
    if (args.judge is None) != (args.judge_threshold is None):
        raise InputFormatError("--judge and --judge-threshold go together: give both or neither")
    if args.judge_threshold is not None and not math.isfinite(args.judge_threshold):
        raise InputFormatError(f"--judge-threshold must be a finite number, got {args.judge_threshold}")
    collection = Collection(args.collection)
    data = TrainingSet.load(args.data)
    judge = None
    if args.judge is not None:
        from retrievekit.training.teacher import reranker_judge

        judge = reranker_judge(args.judge)
    mined = mine_negatives(data, collection, mode=args.mode, k=args.k, per_query=args.per_query,
                           margin=None if args.margin < 0 else args.margin, judge=judge,
                           judge_threshold=args.judge_threshold)
    mined.save(args.out)
    print(f"wrote {len(mined)} examples to {args.out} ({_counts(mined)})")
    return 0


def run_score_teacher(args: argparse.Namespace) -> int:
    from retrievekit.training.teacher import score_with_teacher

    data = TrainingSet.load(args.data)
    if not len(data):
        raise InputFormatError("training data file has no examples", args.data)
    scored = score_with_teacher(data, args.teacher, batch_size=args.batch_size, progress=not args.no_progress)
    scored.save(args.out)
    print(f"wrote {len(scored)} examples to {args.out} ({_counts(scored)})")
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
