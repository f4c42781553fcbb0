"""Retrieval for RAG on squad-v1.1-dev and xquad-r (English): answer recall against context tokens.

For each chunking (whole paragraphs, or a passage collection built with a chunker) and each context setting
(top-k, score-gap selection, token budget, sentence-level compression) the script retrieves BM25 passages for the
questions (all of xquad-r en, a fixed seeded sample of squad) and measures:

* answer recall: share of questions for which a gold answer string occurs in the selected context (case- and
  whitespace-insensitive) — the context can answer the question;
* context tokens: mean ``count_tokens`` of the selected context (what a generator would read).

Goal (issue 6): score-gap selection + compression keeps answer recall within 2 points of top-10 with >= 40% fewer
context tokens (compared within the same chunking). Besides fixed settings, one "gap + compress (dev-chosen)"
setting is chosen on a disjoint development sample of squad questions (none of them in the evaluation sample or in
xquad-r): among a grid of score-gap and compression parameters, the one with the fewest context tokens whose
answer recall is within 1.5 points of top-10 on that sample (paragraph passages) — once among the settings that
compress ("gap + compress (dev-chosen)") and once among those that do not ("gap (dev-chosen)").

    python benchmarks/run_rag.py                  # ~5 min on 2 cores
    python benchmarks/run_rag.py --squad-sample 500 --chunkers paragraphs
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import random
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "src", REPO / "benchmarks"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from datasets_en import DATA  # noqa: E402
from run_dense_exact import machine_info  # noqa: E402

from retrievekit import Collection  # noqa: E402
from retrievekit.rag.pipeline import RAG  # noqa: E402
from retrievekit.rag.types import count_tokens  # noqa: E402

CHUNKERS = ["paragraphs", "sentences:64", "tokens:128:32"]
SETTINGS = {
    "top:10": {"selector": "top:10"},
    "top:5": {"selector": "top:5"},
    "top:3": {"selector": "top:3"},
    "gap": {"selector": "gap"},
    "budget:256": {"selector": "budget:256"},
    "top:10 + compress lexical:2": {"selector": "top:10", "compress": "lexical:2"},
    "gap + compress lexical:3": {"selector": "gap", "compress": "lexical:3"},
    "gap + compress lexical:2": {"selector": "gap", "compress": "lexical:2"},
    "gap + compress lexical:1": {"selector": "gap", "compress": "lexical:1"},
    "gap + compress lexical:0.7": {"selector": "gap", "compress": "lexical:0.7"},
    "gap + compress lexical:0.5": {"selector": "gap", "compress": "lexical:0.5"},
}


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def load_questions(name: str, sample: int, seed: int, part: str = "test",
                   exclude: frozenset[str] = frozenset()) -> tuple[Path, list[tuple[str, str, list[str]]]]:
    """(corpus file, [(qid, question, gold answers)]); ``part`` "dev" is a second sample, disjoint from "test"."""
    if name == "squad-v1.1-dev":
        folder = DATA / "squad-v1.1-dev"
        answers = {}
        with open(folder / "answers.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                answers[row["_id"]] = row["answers"]
        corpus = folder / "corpus.jsonl"
    else:
        folder = DATA / "xquad-r" / "en"
        answers = {}
        corpus = folder / "paragraphs.jsonl"
    questions = []
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            gold = answers.get(row["_id"]) or (row.get("metadata") or {}).get("answers") or []
            if gold:
                questions.append((row["_id"], row["text"], gold))
    if sample and len(questions) > sample:
        shuffled = random.Random(seed).sample(questions, len(questions))
        if part == "dev":
            shuffled = [q for q in shuffled[sample:] if q[0] not in exclude]
        questions = sorted(shuffled[:sample])
    return corpus, questions


def measure(col: Collection, questions: list[tuple[str, str, list[str]]], options: dict[str, Any],
            depth: int) -> tuple[float, float]:
    """(answer recall, mean context tokens) of one context setting."""
    # safety=False: flags do not change the contexts unless flagged passages are dropped; it only costs time
    rag = RAG(col, mode="bm25", depth=depth, generator=None, cache=False, safety=False, **options)
    hits = tokens = 0
    for _, question, gold in questions:
        contexts = rag.ask(question).contexts
        text = normalize(" ".join(p.text for p in contexts))
        hits += any(normalize(g) in text for g in gold)
        tokens += sum(count_tokens(p.text) for p in contexts)
    return hits / len(questions), tokens / len(questions)


DEV_GRID = [{"selector": f"gap:{drop}:20:ratio={ratio}", **({"compress": c} if c else {})}
            for ratio in (0.1, 0.2, 0.3, 0.4) for drop in (0.5, 1.0)
            for c in (None, "lexical:0.8", "lexical:0.7", "lexical:0.6", "lexical:4", "lexical:3")]


def choose_on_dev(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    xquad_ids = frozenset(q for q, _, _ in load_questions("xquad-r-en", 0, args.seed)[1])
    corpus, dev = load_questions("squad-v1.1-dev", args.squad_sample, args.seed, "dev", xquad_ids)
    col = build(corpus, "paragraphs", work)
    top10, _ = measure(col, dev, {"selector": "top:10"}, args.depth)
    tried = []
    for options in DEV_GRID:
        recall, tokens = measure(col, dev, options, args.depth)
        tried.append({**options, "answer_recall": recall, "context_tokens": tokens})
    chosen = {}
    for label, compressed in (("gap", False), ("gap + compress", True)):
        pool = [t for t in tried if ("compress" in t) == compressed]
        ok = [t for t in pool if t["answer_recall"] >= top10 - 0.015]
        best = min(ok, key=lambda t: t["context_tokens"]) if ok else max(pool, key=lambda t: t["answer_recall"])
        chosen[label] = {k: best[k] for k in ("selector", "compress") if k in best}
        print(json.dumps({"dev_top10_recall": top10, label: chosen[label], "dev_recall": best["answer_recall"],
                          "dev_tokens": best["context_tokens"]}), flush=True)
    return {"questions": len(dev), "top10_recall": top10, "chosen": chosen, "grid": tried}


def build(corpus: Path, chunker: str, work: Path) -> Collection:
    path = work / f"{corpus.parent.name}-{re.sub(r'[^0-9a-z]+', '_', chunker)}"
    if path.exists():
        shutil.rmtree(path)
    col = Collection.create(path, passages=None if chunker == "paragraphs" else chunker)
    col.ingest(corpus, "jsonl", progress=False)
    return col


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    work = Path(args.work)
    dev = choose_on_dev(args, work)
    settings = {**SETTINGS, **{f"{label} (dev-chosen)": options for label, options in dev["chosen"].items()}}
    for dataset in args.datasets.split(","):
        corpus, questions = load_questions(dataset, args.squad_sample if dataset.startswith("squad") else 0,
                                           args.seed)
        for chunker in args.chunkers.split(","):
            started = time.perf_counter()
            col = build(corpus, chunker, work)
            build_s = time.perf_counter() - started
            passages = col.info()["documents"]
            for name, options in settings.items():
                t0 = time.perf_counter()
                recall, tokens = measure(col, questions, options, args.depth)
                seconds = time.perf_counter() - t0
                row = {"dataset": dataset, "chunker": chunker, "passages": passages, "setting": name,
                       "questions": len(questions), "answer_recall": recall,
                       "context_tokens": tokens, "seconds": round(seconds, 2),
                       "build_seconds": round(build_s, 2)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    return {"benchmark": "rag_retrieval", "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "settings": {"mode": "bm25", "depth": args.depth, "seed": args.seed,
                                                    "squad_sample": args.squad_sample, "contexts": settings},
            "dev_selection": dev, "results": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="xquad-r-en,squad-v1.1-dev")
    p.add_argument("--chunkers", default=",".join(CHUNKERS))
    p.add_argument("--squad-sample", type=int, default=1000, help="squad questions (seeded sample; 0 = all 10,570)")
    p.add_argument("--depth", type=int, default=20, help="passages retrieved before selection")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=str(REPO / "benchmarks" / "work" / "rag"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "rag_retrieval.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # a budget smaller than every passage warns once per question
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
