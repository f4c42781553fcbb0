"""End-to-end RAG with the offline generator on a fixed sample of squad-v1.1-dev questions, plus the retrieval cache.

For each context setting: BM25 passages -> selection/compression -> prompt with numbered sources -> the local
gemma-3-270m base model (``--generator``; any spec of ``retrievekit.rag.generators.get_generator``) -> answer.
Reported: SQuAD exact match and token F1 (official normalisation, max over gold answers), how often the gold answer
was in the context, "I don't know" rate, share of answers citing a source, and whether every citation resolves to
a context passage whose document offsets give back its text (the acceptance asks for 100%).

The cache part replays a multi-turn session in which questions repeat or are lightly rephrased, with and without
``RetrievalCache``, and reports hit rate, retrieval time and answer recall.

    python benchmarks/run_rag_e2e.py                 # ~10-20 min on 2 cores (model load + generation)
    python benchmarks/run_rag_e2e.py --questions 10  # smoke run
"""

from __future__ import annotations

import argparse
import collections
import datetime as _dt
import json
import random
import re
import string
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "src", REPO / "benchmarks"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from run_dense_exact import machine_info  # noqa: E402
from run_rag import build, load_questions, normalize  # noqa: E402

from retrievekit import Collection  # noqa: E402
from retrievekit.rag.generators.base import get_generator  # noqa: E402
from retrievekit.rag.pipeline import RAG, RetrievalCache  # noqa: E402


def squad_normalize(text: str) -> str:
    """SQuAD v1.1's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1(prediction: str, gold: str) -> float:
    p, g = squad_normalize(prediction).split(), squad_normalize(gold).split()
    common = sum((collections.Counter(p) & collections.Counter(g)).values())
    if not p or not g or common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def strip_citations(answer: str) -> str:
    return re.sub(r"\[[^\]]*\]", " ", answer)


def run_setting(name: str, rag: RAG, questions: list[tuple[str, str, list[str]]], documents: dict[str, str]
                ) -> dict[str, Any]:
    em = f1_sum = in_context = unknown = cited = 0
    resolved = total_citations = 0
    examples = []
    started = time.perf_counter()
    for qid, question, gold in questions:
        answer = rag.ask(question)
        text = strip_citations(answer.answer)
        em += max(squad_normalize(text) == squad_normalize(g) for g in gold)
        f1_sum += max(f1(text, g) for g in gold)
        context = normalize(" ".join(p.text for p in answer.contexts))
        in_context += any(normalize(g) in context for g in gold)
        unknown += answer.unknown
        cited += bool(answer.citations)
        by_id = {p.id: p for p in answer.contexts}
        for c in answer.citations:
            total_citations += 1
            passage = by_id.get(c.passage_id)
            doc = documents.get(c.doc_id, "")
            pieces = [doc[s:e] for s, e in (c.spans or [(c.start, c.end)])]
            resolved += passage is not None and " ".join(pieces) == passage.text
        if len(examples) < 5:
            examples.append({"id": qid, "question": question, "gold": gold, "answer": answer.answer,
                             "citations": [c.number for c in answer.citations]})
    n = len(questions)
    return {"name": name, "questions": n, "exact_match": em / n, "f1": f1_sum / n, "answer_in_context": in_context / n,
            "unknown_rate": unknown / n, "answers_with_citations": cited / n, "citations": total_citations,
            "citations_resolved": resolved / total_citations if total_citations else 1.0,
            "seconds_per_question": (time.perf_counter() - started) / n, "examples": examples}


def rephrase(question: str, rng: random.Random) -> str:
    """A light rewrite a user might type as a follow-up: case, punctuation, a filler word."""
    choice = rng.randrange(4)
    if choice == 0:
        return question.lower()
    if choice == 1:
        return question.rstrip("?") + " ?"
    if choice == 2:
        return "so " + question
    return question


def cache_replay(cols: dict[str, Any], questions: list[tuple[str, str, list[str]]], seed: int,
                 repeat_share: float) -> dict[str, Any]:
    """Replay a session where ``repeat_share`` of the turns re-ask the previous question, lightly rephrased."""
    rng = random.Random(seed)
    turns: list[tuple[str, list[str]]] = []
    for _, q, gold in questions:
        turns.append((q, gold))
        if rng.random() < repeat_share / (1 - repeat_share):
            turns.append((rephrase(q, rng), gold))
    out: dict[str, Any] = {"turns": len(turns), "repeat_share": (len(turns) - len(questions)) / len(turns),
                           "modes": {}}
    for mode, col in cols.items():
        row: dict[str, Any] = {}
        for label, cache in (("without_cache", False), ("with_cache", RetrievalCache())):
            rag = RAG(col, mode=mode, generator=None, selector="top:5", cache=cache, safety=False)
            rag.ask(turns[0][0])  # warm-up: model, page cache
            hits = 0
            started = time.perf_counter()
            for question, gold in turns:
                context = normalize(" ".join(p.text for p in rag.ask(question).contexts))
                hits += any(normalize(g) in context for g in gold)
            row[f"seconds_{label}"] = time.perf_counter() - started
            row[f"recall_{label}"] = hits / len(turns)
            if cache:
                row["hit_rate"] = (cache.hits - 1) / (cache.hits + cache.misses - 1)  # minus the warm-up
        row["speedup"] = row["seconds_without_cache"] / row["seconds_with_cache"]
        out["modes"][mode] = row
        print(json.dumps({"mode": mode, **row}), flush=True)
    return out


def cache_collections(args: argparse.Namespace, corpus: Path, col: Collection) -> dict[str, Collection]:
    cols = {"bm25": col}
    if args.cache_hybrid:  # query encoding makes each search cost milliseconds: where reuse pays
        dense_col = Path(args.work) / "squad-paragraphs-minilm"
        if not (dense_col / "manifest.json").is_file():
            Collection.create(dense_col, dense="minilm").ingest(corpus, "jsonl", progress=False)
        cols["hybrid"] = Collection(dense_col)
    return cols


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--questions", type=int, default=100)
    p.add_argument("--generator", default="local")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cache-questions", type=int, default=1000, help="distinct questions in the cache replay")
    p.add_argument("--no-cache-hybrid", dest="cache_hybrid", action="store_false",
                   help="replay the cache in bm25 mode only (hybrid needs the MiniLM model)")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--work", default=str(REPO / "benchmarks" / "work" / "rag"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "rag_e2e.json"))
    p.add_argument("--cache-only", action="store_true",
                   help="re-measure only the cache replay, keeping the answer rows of an existing --out file")
    args = p.parse_args(argv)
    corpus, questions = load_questions("squad-v1.1-dev", args.questions, args.seed)
    if args.cache_only:
        doc = json.loads(Path(args.out).read_text())
        col = build(corpus, "paragraphs", Path(args.work))
        doc["cache"] = cache_replay(cache_collections(args, corpus, col), load_questions(
            "squad-v1.1-dev", args.cache_questions, args.seed + 1)[1], args.seed, repeat_share=0.3)
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
        return 0
    col = build(corpus, "paragraphs", Path(args.work))
    documents = {}
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            documents[row["_id"]] = row["text"]
    generator = get_generator(args.generator)
    started = time.perf_counter()
    generator.generate("Warm-up.", max_tokens=1)
    load_s = time.perf_counter() - started
    contexts = {"top:3": {"selector": "top:3"},
                "gap + compress lexical:3, budget 384": {"selector": "gap+budget:384", "compress": "lexical:3"}}
    results = []
    for name, options in contexts.items():
        rag = RAG(col, mode="bm25", depth=args.depth, generator=generator, max_tokens=args.max_tokens,
                  cache=False, **options)
        row = run_setting(name, rag, questions, documents)
        results.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "examples"}), flush=True)
    _, many = load_questions("squad-v1.1-dev", args.cache_questions, args.seed + 1)
    cache = cache_replay(cache_collections(args, corpus, col), many, args.seed, repeat_share=0.3)
    doc = {"benchmark": "rag_e2e", "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine_info(), "generator": generator.config(), "generator_load_seconds": round(load_s, 1),
           "settings": {"questions": len(questions), "chunker": "paragraphs", "max_tokens": args.max_tokens,
                        "context": "; ".join(f"{k} = {json.dumps(v)}" for k, v in contexts.items()),
                        "seed": args.seed},
           "results": results, "cache": cache}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
