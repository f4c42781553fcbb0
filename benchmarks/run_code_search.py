"""Code search quality (issue 14): natural-language queries against code, on the stdlib CodeSearchNet-style set
(``benchmarks/code_search_data.py``, test split) and on CoSQA (``/work/shared/data/cosqa``, test split).

Systems, each scored by MRR@10 and nDCG@10 (a query without hits scores 0):

* ``bm25-english``: BM25 with the ``lucene-english`` analyzer (what a text collection uses);
* ``bm25-code``: what ``retrievekit index --code`` makes (``Collection.create_code``): BM25 with the ``code``
  analyzer (identifiers split on camelCase/snake_case/digits, the whole identifier kept, language keywords as stop
  words) over the qualified name, docstring and code as separate fields (multi-field BM25);
* ``dense``: all-MiniLM-L6-v2 (a text model; no code encoder is available offline);
* ``hybrid``: ``bm25-code`` + ``dense``, the collection's default fusion;
* ``adapted-hybrid``: ``bm25-code`` + MiniLM fine-tuned on the code-search set's *train* split: one example per
  docstring -> function pair (``from_qrels`` on ``qrels/train.tsv``), BM25-mined hard negatives
  (``mine_negatives(mode="bm25")``), ``train_encoder(loss="mnrl")``. Training sees only documents of train files
  (the set splits by file): the test queries' functions, and every other function of a test file, are held out —
  as positives and as negatives. CoSQA is scored with the same model (a transfer: it has no train split here).

Paired two-sided randomization tests (``retrievekit.evaluation.significance.permutation_test``, 10,000
permutations) on the per-query values: hybrid vs each component, adapted hybrid vs hybrid. Goals: the code-aware
hybrid beats both components; the adapted hybrid >= hybrid + 3 points MRR@10 (significant). Per-query values are
saved with the results.

    python benchmarks/code_search_data.py                   # builds benchmarks/work/code_search (seconds)
    python benchmarks/run_code_search.py                    # full: ~14k + 6k functions encoded twice, a training
    python benchmarks/run_code_search.py --limit-docs 300 --limit-queries 50 --train-queries 64   # smoke run
    python benchmarks/run_code_search.py --skip-dense       # the two BM25 systems only

Writes ``benchmarks/results/code_search.json`` (``code_search_smoke.json`` when any limit is given).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from code_search_data import DEFAULT_OUT as CODE_SEARCH  # noqa: E402
from code_search_data import split_of  # noqa: E402

RESULTS = HERE / "results"
WORK = HERE / "work" / "code_search_eval"
COSQA = Path("/work/shared/data/cosqa")
SETS = {"code_search": CODE_SEARCH, "cosqa": COSQA}
SYSTEMS = ("bm25-english", "bm25-code", "dense", "hybrid", "adapted-hybrid")
DENSE_SYSTEMS = frozenset({"dense", "hybrid", "adapted-hybrid"})
COMPARISONS = (("hybrid", "bm25-code"), ("hybrid", "dense"), ("adapted-hybrid", "hybrid"))
METRICS = ("mrr@10", "ndcg@10")
ALPHA = 0.05
ADAPT_GOAL = 0.03  # adapted hybrid >= hybrid + 3 points MRR@10
PERMUTATIONS = 10_000


def read_corpus(folder: Path) -> list[dict[str, Any]]:
    """The BEIR corpus as documents for ``Collection.add`` (fields besides _id/title/text go to metadata)."""
    docs = []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            meta = {k: v for k, v in obj.items() if k not in ("_id", "title", "text", "metadata")}
            docs.append({"id": str(obj["_id"]), "title": obj.get("title") or "", "text": obj.get("text") or "",
                         "metadata": {**(obj.get("metadata") or {}), **meta}})
    return docs


def limit(docs: list[dict[str, Any]], needed: set[str], n: int | None) -> list[dict[str, Any]]:
    """The documents in ``needed`` (judged ones) plus the first others in corpus order, ``n`` in all (or every
    document when ``n`` is None); corpus order kept."""
    if n is None:
        return docs
    room = max(n - len(needed), 0)
    out = []
    for doc in docs:
        if doc["id"] in needed:
            out.append(doc)
        elif room:
            out.append(doc)
            room -= 1
    return out


def sample(ids: Sequence[str], n: int | None, seed: int) -> list[str]:
    """``n`` of ``ids`` drawn under ``seed`` (all when None), sorted."""
    ids = sorted(ids)
    return ids if n is None or n >= len(ids) else sorted(random.Random(seed).sample(ids, n))


def build_collection(path: Path, docs: list[dict[str, Any]], analyzer: str, dense: bool, progress: bool) -> Any:
    from retrievekit import Collection

    if path.exists():
        shutil.rmtree(path)
    # the code system is what `index --code` makes: the code analyzer and multi-field BM25 (name, docstring, code)
    col = Collection.create_code(path) if analyzer == "code" else Collection.create(path, analyzer=analyzer)
    col.add(docs)
    if dense:  # vectors come back from the embedding cache on a re-run
        col.add_dense_index("minilm", progress=progress)
    return col


def train_adapted(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any], set[str]]:
    """MiniLM fine-tuned on the code-search train split (train files only); (model folder, stats, the ids of
    every document training saw)."""
    from retrievekit.evaluation import load_beir
    from retrievekit.training.builders import from_qrels
    from retrievekit.training.encoder_training import train_encoder
    from retrievekit.training.mining import mine_negatives

    manifest = json.loads((CODE_SEARCH / "manifest.json").read_text())
    seed, fraction = manifest["seed"], manifest["test_fraction"]
    train = load_beir(CODE_SEARCH, split="train")
    qids = sample(list(train.queries), args.train_queries, args.seed)
    qrels = {q: train.qrels[q] for q in qids}
    docs = [d for d in read_corpus(CODE_SEARCH) if split_of(d["metadata"]["path"], seed, fraction) == "train"]
    needed = {d for q in qids for d in qrels[q]}
    docs = limit(docs, needed, args.limit_docs)
    started = time.perf_counter()
    col = build_collection(work / "train-collection", docs, "code", dense=False, progress=False)
    data = from_qrels(col, train.queries, qrels)
    mined = mine_negatives(data, col, mode="bm25", per_query=args.negatives, margin=args.margin)
    examples = [e for e in mined if e.negatives]
    data_seconds = time.perf_counter() - started
    seen = {d for e in examples for d in (e.positive_id, *e.negative_ids) if d is not None}
    out = work / "adapted-minilm"
    started = time.perf_counter()
    train_encoder("minilm", examples, out, loss="mnrl", epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, max_length=args.max_length, seed=args.seed,
                  short_negatives="drop", overwrite=True, progress=args.progress)
    train_seconds = time.perf_counter() - started
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    card = json.loads((out / "model_card.json").read_text())
    stats = {"train_queries": len(qids), "train_documents": len(docs), "examples": len(examples),
             "data_stats": data.stats, "mining_stats": mined.stats, "data_seconds": round(data_seconds, 1),
             "train_seconds": round(train_seconds, 1), "steps": card.get("global_step"),
             "recipe": {"base": "minilm", "loss": "mnrl", "miner": "bm25", "negatives": args.negatives,
                        "margin": args.margin, "epochs": args.epochs, "batch_size": args.batch_size,
                        "learning_rate": args.learning_rate, "max_length": args.max_length, "seed": args.seed}}
    print(f"adapted model: {len(examples)} examples, {stats['steps']} steps, {train_seconds:.0f} s", flush=True)
    return out, stats, seen


def run_system(retriever: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Mean and per-query MRR@10 / nDCG@10 (queries without hits count as 0)."""
    from retrievekit.evaluation.metrics import evaluate

    qids = sorted(queries)
    started = time.perf_counter()
    run: dict[str, dict[str, float]] = {}
    for start in range(0, len(qids), 256):
        batch = qids[start:start + 256]
        run.update(retriever.search([queries[q] for q in batch], 10).to_run(batch))
    seconds = time.perf_counter() - started
    result = evaluate(run, {q: qrels[q] for q in qids}, METRICS, per_query=True, missing_queries="zero")
    assert result.per_query is not None
    return {**{m: round(result[m], 4) for m in METRICS}, "search_seconds": round(seconds, 2),
            "per_query": {m: {q: round(result.per_query[m][q], 4) for q in qids} for m in METRICS}}


def compare(systems: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired randomization tests of each comparison whose two systems ran."""
    from retrievekit.evaluation.significance import permutation_test

    out = []
    for a, b in COMPARISONS:
        if a not in systems or b not in systems:
            continue
        row: dict[str, Any] = {"a": a, "b": b}
        for m in METRICS:
            qids = sorted(systems[a]["per_query"][m])
            va = [systems[a]["per_query"][m][q] for q in qids]
            vb = [systems[b]["per_query"][m][q] for q in qids]
            test = permutation_test(va, vb, n_permutations=PERMUTATIONS, seed=0)
            delta = systems[a][m] - systems[b][m]
            row[m] = {"delta": round(delta, 4), "p": round(test.p_value, 5),
                      "significant_gain": bool(delta > 0 and test.p_value < ALPHA)}
        out.append(row)
    return out


def run_set(name: str, folder: Path, args: argparse.Namespace, model: Path | None, seen: set[str],
            work: Path) -> dict[str, Any]:
    from retrievekit.evaluation import load_beir

    dataset = load_beir(folder, split="test")
    qids = sample(list(dataset.queries), args.limit_queries, args.seed)
    queries = {q: dataset.queries[q] for q in qids}
    qrels = {q: dataset.qrels[q] for q in qids}
    judged = {d for q in qids for d in qrels[q]}
    held_out = len(judged & seen)
    if held_out:
        raise SystemExit(f"{name}: {held_out} judged test documents were seen in training")
    docs = limit(read_corpus(folder), judged, args.limit_docs)
    dense = not args.skip_dense
    started = time.perf_counter()
    english = build_collection(work / name / "english", docs, "lucene-english", dense=False, progress=False)
    code = build_collection(work / name / "code", docs, "code", dense=dense, progress=args.progress)
    index_seconds = time.perf_counter() - started
    adapt_seconds = None
    if dense and model is not None:
        started = time.perf_counter()
        code.add_dense_index(str(model), name="adapted", progress=args.progress)
        adapt_seconds = round(time.perf_counter() - started, 1)
    retrievers = {"bm25-english": english.retriever("bm25"), "bm25-code": code.retriever("bm25")}
    if dense:
        retrievers |= {"dense": code.retriever("dense"), "hybrid": code.retriever("hybrid")}
        if model is not None:
            retrievers["adapted-hybrid"] = code.retriever("hybrid", index="adapted")
    systems = {}
    for system, retriever in retrievers.items():
        systems[system] = run_system(retriever, queries, qrels)
        print(f"{name:12} {system:15} MRR@10 {systems[system]['mrr@10']:.4f}  nDCG@10 "
              f"{systems[system]['ndcg@10']:.4f}", flush=True)
    tests = compare(systems)
    per_query = {s: r.pop("per_query") for s, r in systems.items()}
    return {"queries": len(qids), "documents": len(docs), "index_seconds": round(index_seconds, 1),
            "adapted_encode_seconds": adapt_seconds, "judged_documents_seen_in_training": held_out,
            "systems": systems, "tests": tests, "per_query": per_query}


def goals(result: dict[str, Any]) -> dict[str, Any]:
    """Per set: does the hybrid beat both components (significantly), is the adapted hybrid >= hybrid + 3 points
    MRR@10 (significantly)?"""
    out = {}
    for name, r in result["sets"].items():
        tests = {(t["a"], t["b"]): t for t in r["tests"]}
        row: dict[str, Any] = {}
        if ("hybrid", "bm25-code") in tests and ("hybrid", "dense") in tests:
            row["hybrid_beats_components"] = all(tests[("hybrid", c)]["mrr@10"]["significant_gain"]
                                                 for c in ("bm25-code", "dense"))
        if ("adapted-hybrid", "hybrid") in tests:
            t = tests[("adapted-hybrid", "hybrid")]["mrr@10"]
            row["adapted_gain_met"] = bool(t["delta"] >= ADAPT_GOAL and t["significant_gain"])
        out[name] = row
    return out


def render(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section (benchmarks/report.py calls this)."""
    adapt = result.get("adaptation") or {}
    lines = ["## Code search: natural language -> code", "",
             "`python benchmarks/run_code_search.py` — queries are docstring first sentences (stdlib set, "
             "`benchmarks/code_search_data.py`: functions without their docstrings, docstring-less functions as "
             "distractors, split by file) or CoSQA's web queries. `bm25-code`: the `code` analyzer; `hybrid`: "
             "bm25-code + MiniLM (default fusion); `adapted-hybrid`: bm25-code + MiniLM fine-tuned (MNRL, BM25-mined "
             "negatives) on the stdlib set's train split, train files only (CoSQA: the same model, a transfer). "
             "p: paired randomization test, 10,000 permutations, two-sided."]
    if adapt:
        lines += ["", f"Adaptation: {adapt['examples']:,} examples from {adapt['train_queries']:,} train queries "
                  f"over {adapt['train_documents']:,} train-file documents, {adapt['steps']} steps, "
                  f"{adapt['train_seconds']:.0f} s."]
    for name, r in result["sets"].items():
        lines += ["", f"### {name} ({r['queries']:,} test queries, {r['documents']:,} documents)", "",
                  "| system | MRR@10 | nDCG@10 |", "|---|---:|---:|"]
        lines += [f"| {s} | {v['mrr@10']:.4f} | {v['ndcg@10']:.4f} |" for s, v in r["systems"].items()]
        if r["tests"]:
            lines += ["", "| comparison | ΔMRR@10 | p | ΔnDCG@10 | p |", "|---|---:|---:|---:|---:|"]
            lines += [f"| {t['a']} vs {t['b']} | {t['mrr@10']['delta']:+.4f} | {t['mrr@10']['p']:.4f} | "
                      f"{t['ndcg@10']['delta']:+.4f} | {t['ndcg@10']['p']:.4f} |" for t in r["tests"]]
        met = result.get("goals", {}).get(name, {})
        if met:
            words = {"hybrid_beats_components": "hybrid beats both components (MRR@10, p < 0.05)",
                     "adapted_gain_met": "adapted hybrid >= hybrid + 3 points MRR@10 (p < 0.05)"}
            lines += ["", "Goals: " + "; ".join(f"{words[k]}: {'met' if v else 'NOT met'}" for k, v in met.items())
                      + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from retrievekit.core.files import atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated: {', '.join(SETS)}")
    parser.add_argument("--limit-docs", type=int, default=None,
                        help="documents per collection (the judged ones plus the first others; smoke runs)")
    parser.add_argument("--limit-queries", type=int, default=None, help="test queries per set, drawn under --seed")
    parser.add_argument("--train-queries", type=int, default=None, help="train queries for the adaptation")
    parser.add_argument("--skip-dense", action="store_true", help="BM25 systems only (no encoding, no training)")
    parser.add_argument("--negatives", type=int, default=1, help="BM25-mined hard negatives per example")
    parser.add_argument("--margin", type=float, default=0.05, help="mining's false-negative margin")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--max-length", type=int, default=256, help="training truncation (MiniLM indexes 256)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    names = [s for s in args.sets.split(",") if s]
    unknown = [s for s in names if s not in SETS]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}")
    for name in names:
        if not (SETS[name] / "corpus.jsonl").is_file():
            hint = " (run python benchmarks/code_search_data.py)" if name == "code_search" else ""
            parser.error(f"{name}: no corpus at {SETS[name]}{hint}")
    smoke = any(v is not None for v in (args.limit_docs, args.limit_queries, args.train_queries))
    tag = "smoke" if smoke else "full"
    work = WORK / tag
    out_path = RESULTS / ("code_search_smoke.json" if smoke else "code_search.json")
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "code_search", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "smoke": smoke,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average": round(os.getloadavg()[0], 2)},
        "options": {k: v for k, v in vars(args).items() if k != "progress"},
        "metrics": list(METRICS), "alpha": ALPHA, "permutations": PERMUTATIONS, "sets": {},
    }
    model: Path | None = None
    seen: set[str] = set()
    if not args.skip_dense:
        model, result["adaptation"], seen = train_adapted(args, work)
    for name in names:
        result["sets"][name] = run_set(name, SETS[name], args, model, seen, work)
        result["goals"] = goals(result)
        result["seconds"] = round(time.perf_counter() - started, 1)
        RESULTS.mkdir(exist_ok=True)
        atomic_write_text(out_path, json.dumps(result, indent=1) + "\n")  # after each set: a partial run counts
    print(render(result))
    print(f"results: {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
