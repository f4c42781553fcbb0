"""Does multi-field BM25 (symbol name and signature above the body) help code search? Tuned on a training split,
reported on the test split, against the joined single-field index, with the code analyzer.

For each data set the corpus is first rewritten the way ``retrievekit index --code`` stores code: every snippet is
parsed by the code chunker (tree-sitter), giving the documents' ``title`` (qualified name) and ``symbol``,
``signature`` and ``docstring`` metadata; the rewritten BEIR folders go to ``benchmarks/work/code_fields/<set>/``,
so `retrievekit eval` can reproduce each number:

    retrievekit eval benchmarks/work/code_fields/code_search --analyzer code --split test \\
        --field-weights title=W,signature=W,text=1 --metrics mrr@10,ndcg@10

Sets: the stdlib CodeSearchNet-style set (benchmarks/code_search_data.py; tune on ``train``) and CoSQA (shared data;
tune on ``dev``). One collection per set indexes every candidate field; the grid (weights of title, symbol,
signature, docstring with text = 1) is searched on the tuning split by MRR@10; the test split then compares the
joined index, the text field alone, the set's tuned weights and one shared default (the weights with the best mean
tuning-split MRR@10 over both sets: what a code collection could use without tuning), with paired t-tests
(Holm-corrected). Results: benchmarks/results/field_weights.json.

    python benchmarks/run_field_weights.py [--sets code_search,cosqa] [--fresh]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from retrievekit import Collection  # noqa: E402
from retrievekit.chunking.code import chunk_code  # noqa: E402
from retrievekit.evaluation import compare, evaluate, load_beir  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "code_fields"
RESULTS = ROOT / "benchmarks" / "results" / "field_weights.json"
SETS = {
    "code_search": (ROOT / "benchmarks" / "work" / "code_search", "train", "test"),
    "cosqa": (Path("/work/shared/data/cosqa"), "dev", "test"),
}
FIELDS = ("title", "symbol", "signature", "docstring", "text")
GRID = {"title": (0.0, 0.5, 1.0, 2.0, 3.0), "symbol": (0.0, 0.5, 1.0, 2.0), "signature": (0.0, 0.5, 1.0, 2.0),
        "docstring": (0.0, 0.5, 1.0)}
METRICS = ("mrr@10", "ndcg@10")
DEPTH = 100


def convert(source: Path, target: Path) -> dict[str, int]:
    """``source``'s corpus with each snippet's qualified name, symbol, signature and docstring from the chunker."""
    target.mkdir(parents=True, exist_ok=True)
    counts = {"documents": 0, "parsed": 0, "with_signature": 0, "with_docstring": 0}
    tmp = target / "corpus.jsonl.tmp"
    with open(source / "corpus.jsonl", encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as out:
        for line in src:
            doc = json.loads(line)
            chunks = chunk_code(doc["text"], language="python").chunks
            # the snippet's own definition: the first symbol chunk (windows have no symbol)
            unit = next((c for c in chunks if c.symbol), None)
            counts["documents"] += 1
            if unit is not None:
                counts["parsed"] += 1
                counts["with_signature"] += bool(unit.signature)
                counts["with_docstring"] += bool(unit.docstring)
            doc["title"] = doc.get("title") or (unit.qualname if unit else "")
            doc["symbol"] = unit.symbol if unit else ""
            doc["signature"] = unit.signature if unit else ""
            doc["docstring"] = unit.docstring if unit else ""
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
    tmp.replace(target / "corpus.jsonl")
    shutil.copy(source / "queries.jsonl", target / "queries.jsonl")
    shutil.copytree(source / "qrels", target / "qrels", dirs_exist_ok=True)
    return counts


def run(col: Collection, queries: dict[str, str], weights: dict[str, float] | None) -> dict[str, dict[str, float]]:
    qids = list(queries)
    results = col.search([queries[q] for q in qids], DEPTH, field_weights=weights)
    return results.to_run(qids)


def scores(col: Collection, data: Any, weights: dict[str, float] | None) -> tuple[dict[str, float], Any]:
    result = evaluate(run(col, data.queries, weights), data.qrels, list(METRICS), per_query=True)
    return {m: round(result[m], 4) for m in METRICS}, result.per_query


def bench(name: str, source: Path, tune_split: str, test_split: str, fresh: bool) -> dict[str, Any]:
    folder = WORK / name
    if fresh or not (folder / "corpus.jsonl").is_file():
        counts = convert(source, folder)
    else:
        with open(folder / "corpus.jsonl", encoding="utf-8") as f:
            counts = {"documents": sum(1 for _ in f)}
    col_path = WORK / f"{name}.collection"
    if fresh and col_path.exists():
        shutil.rmtree(col_path)
    started = time.perf_counter()
    if not (col_path / "manifest.json").is_file():
        col = Collection.create(col_path, analyzer="code", field_weights=dict.fromkeys(FIELDS, 1.0))
        col.ingest(folder / "corpus.jsonl", "jsonl", progress=False, workers=1)
    col = Collection(col_path)
    index_seconds = time.perf_counter() - started
    tune = load_beir(folder, split=tune_split)
    test = load_beir(folder, split=test_split)

    grid = []
    tune_started = time.perf_counter()
    for values in itertools.product(*GRID.values()):
        weights = {**dict(zip(GRID, values)), "text": 1.0}
        got, _ = scores(col, tune, weights)
        grid.append({"weights": {k: v for k, v in weights.items() if v}, **got})
    tune_seconds = time.perf_counter() - tune_started
    grid.sort(key=lambda r: (-r["mrr@10"], -r["ndcg@10"]))  # stable: ties keep the grid's order (fewer fields first)
    joined_tune, _ = scores(col, tune, {})

    return {
        "source": str(source), "converted": str(folder.relative_to(ROOT)), "counts": counts,
        "tune_split": tune_split, "test_split": test_split, "tune_queries": len(tune.queries),
        "test_queries": len(test.queries), "index_seconds": round(index_seconds, 2),
        "tune_seconds": round(tune_seconds, 2), "grid_size": len(grid),
        "tune": {"joined": joined_tune, "best": grid[0], "top5": grid[:5]},
        "grid": [[r["weights"], r["mrr@10"], r["ndcg@10"]] for r in grid],
    }


def test_systems(name: str, result: dict[str, Any], systems: dict[str, dict[str, float]]) -> None:
    """Test-split scores of ``systems`` on set ``name`` with paired t-tests against the joined index."""
    col = Collection(WORK / f"{name}.collection")
    test = load_beir(WORK / name, split=result["test_split"])
    report: dict[str, Any] = {}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    timing: dict[str, float] = {}
    for label, weights in systems.items():
        started = time.perf_counter()
        report[label], per_query[label] = scores(col, test, weights)
        timing[label] = round(len(test.queries) / (time.perf_counter() - started), 1)
    significance = {}
    for metric in METRICS:
        key = next(k for k in per_query["joined"] if k.lower() == metric)
        tests = compare({s: per_query[s][key] for s in per_query}, "joined")
        significance[metric] = {s: {"delta": round(r.delta, 4), "p_holm": r.p_corrected, "significant": r.significant}
                                for s, r in tests.items() if s != "joined"}
    result.update(test=report, queries_per_second=timing, significance=significance, weights=systems)


def eval_cli(name: str, result: dict[str, Any], systems: dict[str, dict[str, float]]) -> None:
    """The test numbers again through `retrievekit eval` (trec_eval semantics, Anserini tie handling), reusing the
    set's collection: the command lines in BENCHMARKS.md reproduce them."""
    out = {}
    for label, weights in systems.items():
        spec = ",".join(f"{f}={w:g}" for f, w in weights.items()) if weights else "none"
        command = ["retrievekit", "eval", str((WORK / name).relative_to(ROOT)), "--analyzer", "code", "--split",
                   result["test_split"], "--metrics", ",".join(METRICS), "--field-weights", spec]
        proc = subprocess.run([sys.executable, "-m", *command, "--collection", str(WORK / f"{name}.collection"),
                               "--json", "--no-progress"], capture_output=True, text=True, check=True, cwd=ROOT)
        report = json.loads(proc.stdout)
        out[label] = {"weights": weights, **{m: round(report[m], 4) for m in METRICS},
                      "command": " ".join(command)}
    result["eval_cli"] = out


def shared_default(results: dict[str, dict[str, Any]]) -> tuple[dict[str, float], float]:
    """The weights with the best mean tuning-split MRR@10 over the sets (one default for every code collection;
    fields a set lacks contribute nothing there). Ties: fewer fields, then the order of the grid."""
    means: dict[str, list[float]] = {}
    keys: dict[str, dict[str, float]] = {}
    for result in results.values():
        for weights, mrr, _ in result["grid"]:
            key = json.dumps(weights, sort_keys=True)
            means.setdefault(key, []).append(mrr)
            keys[key] = weights
    complete = {k: sum(v) / len(v) for k, v in means.items() if len(v) == len(results)}
    best = max(complete, key=lambda k: (complete[k], -len(keys[k])))
    return keys[best], round(complete[best], 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated sets (default: all)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the converted corpora and the collections")
    parser.add_argument("--eval-only", action="store_true",
                        help="only re-run the `retrievekit eval` checks of the weights already in the results")
    args = parser.parse_args()
    out: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    names = args.sets.split(",")
    if not args.eval_only:
        out["settings"] = {"analyzer": "code", "scorer": "lucene k1=0.9 b=0.4", "grid": GRID, "depth": DEPTH,
                           "selection": "MRR@10 on the tuning split (ties: nDCG@10)"}
        for name in names:
            source, tune_split, test_split = SETS[name]
            out[name] = bench(name, source, tune_split, test_split, args.fresh)
        shared, mean_mrr = shared_default({name: out[name] for name in names})
        out["shared_default"] = {"weights": shared, "mean_tune_mrr@10": mean_mrr, "sets": names}
        for name in names:
            tuned = out[name]["tune"]["best"]["weights"]
            test_systems(name, out[name], {"joined": {}, "text": {"text": 1.0}, "tuned": tuned, "shared": shared})
            print(json.dumps({name: {"tune": out[name]["tune"]["best"], "test": out[name]["test"],
                                     "significance": out[name]["significance"]}}, indent=1))
        print(json.dumps({"shared_default": out["shared_default"]}))
    for name in names:
        eval_cli(name, out[name], {"joined": {}, "tuned": out[name]["tune"]["best"]["weights"],
                                   "shared": out["shared_default"]["weights"]})
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


def render(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md section (benchmarks/report.py calls this with the results file)."""
    shared = results["shared_default"]
    lines = [
        "## Multi-field BM25 for code: name, signature, docstring and body as fields",
        "",
        "`python benchmarks/run_field_weights.py` — BM25 with the code analyzer (Lucene k1=0.9, b=0.4) on code stored "
        "as `retrievekit index --code` stores it (title = qualified name; `symbol`, `signature`, `docstring` from the "
        "tree-sitter chunker), comparing the joined index (title + text in one field) with multi-field BM25 "
        "(sum of weight x each field's own BM25). Weights are chosen on the tuning split only (a grid of "
        f"{results['code_search']['grid_size']} settings of title, symbol, signature, docstring with text = 1, by "
        "MRR@10), then scored once on the test split; p: paired t-test against the joined index, Holm-corrected. "
        f"*shared* is one setting for both sets (best mean tuning MRR@10): {_weights(shared['weights'])}.",
        "",
        "| set | system | weights | MRR@10 | nDCG@10 | Δ MRR@10 | p | queries/s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in shared["sets"]:
        r = results[name]
        for label in ("joined", "text", "tuned", "shared"):
            if label not in r["test"]:
                continue
            sig = r["significance"]["mrr@10"].get(label)
            delta = f"{sig['delta']:+.4f}" if sig else ""
            p_value = f"{sig['p_holm']:.2g}" if sig else ""
            weights = r["weights"][label]
            lines.append(f"| {name} ({r['test_split']}, {r['test_queries']} q) | {label} | "
                         f"{_weights(weights) if weights else 'joined title+text'} | {r['test'][label]['mrr@10']:.4f} "
                         f"| {r['test'][label]['ndcg@10']:.4f} | {delta} | {p_value} | "
                         f"{r['queries_per_second'][label]:,.0f} |")
    lines += ["", "The same test numbers through `retrievekit eval` (trec_eval semantics, Anserini tie handling, "
              "depth 1000):", "", "| set | system | MRR@10 | nDCG@10 | command |", "|---|---|---:|---:|---|"]
    for name in shared["sets"]:
        for label, row in results[name].get("eval_cli", {}).items():
            lines.append(f"| {name} | {label} | {row['mrr@10']:.4f} | {row['ndcg@10']:.4f} | `{row['command']}` |")
    lines += ["", "Code collections (`retrievekit index --code`, `Collection.create_code`) use the *shared* weights by "
              "default (`retrievekit.code_index.CODE_FIELD_WEIGHTS`); `--field-weights none` keeps BM25 on the joined "
              "fields. Multi-field search sums each field's postings with numpy, so it answers fewer queries per "
              "second than the joined index's compiled kernel (the queries/s column, one thread).", ""]
    return "\n".join(lines)


def _weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{f} {w:g}" for f, w in weights.items())


if __name__ == "__main__":
    main()
