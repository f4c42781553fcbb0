"""``retrievekit eval``: index a BEIR-format dataset, run one or more configurations, report metrics.

Stable JSON contract (scripts rely on it): with ``--json`` one object is printed with at least ``ndcg@10``,
``recall@100``, ``queries``, ``index_seconds`` and ``queries_per_second`` (single-threaded search including query
analysis) of the first system; with several systems, each one's object is under ``systems`` and paired
significance tests against the first are under ``significance``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from retrievekit.cli.commands import add_model_options, add_scoring_options, scoring_params
from retrievekit.cli.render import print_json, table
from retrievekit.collection import Collection
from retrievekit.core.errors import RetrievekitError
from retrievekit.evaluation import compare, evaluate, load_beir, write_run
from retrievekit.retrieval.base import Retriever
from retrievekit.retrieval.bm25.retriever import BM25Retriever

DEFAULT_METRICS = ("ndcg@10", "recall@100", "map", "mrr@10", "p@10", "recall@1000")


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate retrieval configurations on a BEIR-format dataset",
        description="Index DATA (a BEIR folder with corpus.jsonl, queries.jsonl, qrels/<split>.tsv, or a BEIR "
        "dataset name, downloaded once), search the split's judged queries with each system and print metrics "
        "with trec_eval semantics. Defaults: BM25 with Lucene's English analyzer on title + ' ' + text, k1=0.9, "
        "b=0.4, test split.",
    )
    p.add_argument("data", help="BEIR dataset folder or name (e.g. scifact)")
    p.add_argument("--split", default="test", help="qrels split (default: test)")
    p.add_argument("--corpus", default="corpus.jsonl", metavar="FILE",
                   help="corpus file of the dataset folder (default corpus.jsonl; e.g. xquad-r's paragraphs.jsonl "
                   "with --split test_paragraphs)")
    p.add_argument("--system", action="append", metavar="SPEC",
                   help="a configuration to evaluate; repeat to compare several. SPEC is NAME[+rm3][:key=value,...] "
                   "with NAME one of lucene, robertson, atire, bm25l, bm25+, dirichlet, e.g. 'lucene', "
                   "'lucene:k1=1.2,b=0.75', 'lucene+rm3', 'dirichlet:mu=2000'; or dense[+prf][:fb_docs=3,alpha=1,"
                   "beta=0.5], or hybrid[:method=rrf|convex,k=60,w=0.5,norm=minmax|zscore|dbsf,depth=1000] (w = "
                   "BM25's weight). Default: one system from --mode, --scorer and its options")
    p.add_argument("--mode", choices=["bm25", "dense", "hybrid"], default="bm25",
                   help="the system evaluated when no --system is given: bm25 (default), dense (needs --model's "
                   "encoder; embeddings cached, so a second run skips encoding) or hybrid (BM25 and dense fused)")
    add_model_options(p)
    p.add_argument("--vectors", metavar="TIER",
                   help="dense search tier (default float32 = exact): e.g. int8, binary+rescore, pq:48+rescore, "
                   "leanvec-ood:192+rescore, hnsw, ivf (see `retrievekit index --help`); the JSON adds "
                   "bytes_per_vector")
    add_scoring_options(p)
    p.add_argument("--analyzer", default="lucene-english", help="analyzer preset (default: lucene-english)")
    p.add_argument("--fields", default="title,text", help="document parts indexed (default: title,text)")
    p.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                   help=f"comma-separated metrics (default: {','.join(DEFAULT_METRICS)})")
    p.add_argument("--depth", type=int, default=1000, help="documents retrieved per query (default 1000)")
    p.add_argument("--ignore-identical-ids", action="store_true",
                   help="drop retrieved documents whose id equals the query id (BEIR's ArguAna/Quora setting)")
    p.add_argument("--ties", choices=["anserini", "raw"], default="anserini",
                   help="how tied scores are ordered for evaluation: anserini (default; round to 4 decimals, ties by "
                   "document id ascending, as every Pyserini/Anserini run, so numbers compare with theirs) or raw "
                   "(raw float32 scores, trec_eval's own tie order: document id descending)")
    p.add_argument("--collection", metavar="PATH",
                   help="keep the index in this folder and reuse it on later runs (default: a temporary folder)")
    p.add_argument("--significance", choices=["t", "permutation"], default="t",
                   help="paired test used to compare systems with the first one (Holm-corrected; default t)")
    p.add_argument("--run-dir", metavar="DIR", help="write each system's TREC run file here")
    p.add_argument("--output", metavar="FILE", help="also write the JSON report to FILE")
    p.add_argument("--report", metavar="DIR", help="also write DIR/report.json with per-query metrics and plots (the "
                   "evaluate page of `retrievekit serve` shows the newest report under its --reports folder)")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run_eval)


DENSE_SYSTEMS = ("dense", "hybrid")


def parse_dense_system(spec: str) -> tuple[str, dict[str, Any]]:
    """'dense', 'dense+prf:fb_docs=5', 'hybrid', 'hybrid:method=convex,w=0.3,norm=zscore' -> (kind, options)."""
    head, _, params = spec.partition(":")
    kind = head.removesuffix("+prf")
    values: dict[str, Any] = {}
    for item in filter(None, params.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise RetrievekitError(f"bad system {spec!r}: expected key=value, got {item!r}")
        values[key] = value
    if kind == "dense":
        prf: dict[str, Any] | bool = False
        if head.endswith("+prf"):
            prf = {k: (int(v) if k == "fb_docs" else float(v)) for k, v in values.items()}
        elif values:
            raise RetrievekitError(f"bad system {spec!r}: dense options need '+prf' (fb_docs, alpha, beta)")
        return kind, {"prf": prf}
    from retrievekit.collection import HYBRID_FUSION

    if not values:
        return kind, {"fusion": dict(HYBRID_FUSION)}
    fusion: dict[str, Any] = {"method": values.pop("method", "rrf")}
    if "k" in values:
        fusion["k"] = int(values.pop("k"))
    if "w" in values:
        w = float(values.pop("w"))
        fusion["weights"] = [w, 1.0 - w]
    if "norm" in values:
        fusion["normalization"] = values.pop("norm")
    if "depth" in values:
        fusion["depth"] = int(values.pop("depth"))
    if values:
        raise RetrievekitError(f"bad system {spec!r}: unknown hybrid options {sorted(values)} "
                               "(use method, k, w, norm, depth)")
    return kind, {"fusion": fusion}


def parse_system(spec: str) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """'lucene+rm3:k1=1.2,fb_terms=20' -> ('lucene', {'k1': 1.2}, {'fb_terms': 20})."""
    head, _, params = spec.partition(":")
    with_rm3 = head.endswith("+rm3")
    name = head.removesuffix("+rm3")
    scorer: dict[str, Any] = {}
    rm3: dict[str, Any] | None = {} if with_rm3 else None
    for item in filter(None, params.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise RetrievekitError(f"bad system {spec!r}: expected key=value, got {item!r}")
        number: Any = float(value) if any(c in value for c in ".e") else int(value)
        if key in ("fb_docs", "fb_terms", "original_weight"):
            if rm3 is None:
                raise RetrievekitError(f"bad system {spec!r}: {key} needs '+rm3'")
            rm3[key] = number
        else:
            scorer[key] = float(number)
    return name, scorer, rm3


def run_eval(args: argparse.Namespace) -> int:
    dataset = load_beir(args.data, split=args.split, corpus=args.corpus)
    default = args.scorer + ("+rm3" if args.rm3 else "") if args.mode == "bm25" else args.mode
    specs = args.system or [default]
    systems: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = []
    for spec in specs:
        if spec.partition(":")[0].removesuffix("+prf") in DENSE_SYSTEMS:
            systems.append((spec, *parse_dense_system(spec), None))
            continue
        name, params, rm3 = parse_system(spec)
        if not args.system:
            params.update(scoring_params(args))
        systems.append((spec, name, params, rm3))
    needs_dense = any(name in DENSE_SYSTEMS for _, name, _, _ in systems)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    for required in ("ndcg@10", "recall@100"):
        if required not in metrics:
            metrics.append(required)

    temp = None
    fields = args.fields.split(",")
    dense = args.model if needs_dense else None
    if args.collection and Path(args.collection, "manifest.json").is_file():
        col = Collection.create(args.collection, analyzer=args.analyzer, fields=fields, exist_ok=True)
        index_seconds, reused = 0.0, True
        if needs_dense and "default" not in (col.config.get("dense") or {}):
            started = time.perf_counter()
            col.add_dense_index(dense, chunking=args.chunking, vectors=args.vectors, progress=not args.no_progress)
            index_seconds, reused = time.perf_counter() - started, False
    else:
        folder = args.collection or tempfile.mkdtemp(prefix="retrievekit-eval-")
        temp = None if args.collection else folder
        if temp:
            shutil.rmtree(temp)
        started = time.perf_counter()
        col = Collection.create(folder, analyzer=args.analyzer, fields=fields, dense=dense, chunking=args.chunking,
                                vectors=args.vectors if dense else None)
        col.ingest(dataset.corpus_path, "jsonl", progress=not args.no_progress)
        index_seconds, reused = time.perf_counter() - started, False
    try:
        qids = list(dataset.queries)
        texts = [dataset.queries[q] for q in qids]
        reports: list[dict[str, Any]] = []
        per_query: dict[str, dict[str, dict[str, float]]] = {}
        for spec, name, params, rm3 in systems:
            retriever = build_system(col, name, params, rm3, args)
            retriever.search(texts[:5], args.depth)  # warm-up: term dictionaries, norms, page cache, model
            started = time.perf_counter()
            results = retriever.search(texts, args.depth, threads=1)
            search_seconds = time.perf_counter() - started
            run = results.to_run(qids, ties=args.ties)
            scores = evaluate(run, dataset.qrels, metrics, ignore_identical_ids=args.ignore_identical_ids,
                              per_query=True)
            per_query[spec] = scores.per_query or {}
            if args.run_dir:
                Path(args.run_dir).mkdir(parents=True, exist_ok=True)
                write_run(run, Path(args.run_dir) / f"{Path(dataset.path).name}.{_safe(spec)}.run", tag=spec)
            reports.append({
                "system": spec,
                **{m: round(float(v), 6) for m, v in scores.mean.items()},
                "queries": len(qids),
                "queries_per_second": round(len(qids) / search_seconds, 2) if search_seconds else None,
                "search_seconds": round(search_seconds, 4),
                "config": retriever.config(),
                **({"scorer": retriever.scorer.config(), "rm3": rm3} if isinstance(retriever, BM25Retriever) else {}),
            })
        info = col.info()
        model = col.config["dense"]["default"]["encoder"]["model"] if needs_dense else None
        tiers = info["dense"]["default"]["tiers"] if needs_dense else {}
        bytes_per_vector = (next(iter(t["bytes_per_vector"] for t in tiers.values() if "bytes_per_vector" in t),
                                 None) if args.vectors else (4.0 * info["dense"]["default"]["dim"] if needs_dense
                                                             else None))
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
    common = {
        "dataset": str(dataset.path),
        "corpus": args.corpus,
        "split": args.split,
        "documents": info["documents"],
        "index_seconds": round(index_seconds, 3),
        "index_reused": reused,
        "docs_per_second": round(info["documents"] / index_seconds, 1) if index_seconds else None,
        "analyzer": args.analyzer,
        "fields": fields,
        "depth": args.depth,
        "ignore_identical_ids": args.ignore_identical_ids,
        "ties": args.ties,
        "mode": args.mode,
        "model": model,
        "vectors": args.vectors or ("float32" if needs_dense else None),
        "bytes_per_vector": bytes_per_vector,
        "rerank": args.rerank,
    }
    out: dict[str, Any] = {**reports[0], **common}
    if len(reports) > 1:
        out["systems"] = [{**r, **common} for r in reports]
        out["significance"] = {}
        base = reports[0]["system"]
        for metric in ("ndcg@10", "recall@100"):
            key = next(k for k in per_query[base] if k.lower() == metric)
            tests = compare({s: per_query[s][key] for s in per_query}, base, test=args.significance)
            out["significance"][metric] = {
                s: {"delta": r.delta, "p_value": r.p_value, "p_holm": r.p_corrected, "significant": r.significant}
                for s, r in tests.items() if s != base
            }
    if args.output:
        import json

        Path(args.output).write_text(json.dumps(out, indent=2))
    if args.report:
        from retrievekit.evaluation.report import per_query_by_system, write_report

        write_report(args.report, out, per_query_by_system(per_query))
    if args.json:
        print_json(out)
        return 0
    print(f"{dataset.path} ({args.split}): {common['documents']:,} documents, {len(qids)} queries, indexed in "
          f"{index_seconds:.2f} s" + (" (reused)" if reused else ""))
    headers = ["system", *metrics, "q/s"]
    rows = []
    for r in reports:
        mark = ""
        sig = out.get("significance", {}).get("ndcg@10", {}).get(r["system"])
        if sig and sig["significant"]:
            mark = " *"
        rows.append([r["system"] + mark, *(r[_key(r, m)] for m in metrics), r["queries_per_second"]])
    print(table(headers, rows))
    if len(reports) > 1:
        print(f"* nDCG@10 differs from {reports[0]['system']} (paired {args.significance}-test, Holm-corrected, "
              "p < 0.05)")
    return 0


def build_system(col: Collection, name: str, params: dict[str, Any], rm3: dict[str, Any] | None,
                 args: argparse.Namespace) -> Retriever:
    """One evaluated configuration as the collection's retriever (pipeline), reranked if ``--rerank`` is given."""
    rerank: dict[str, Any] = {"rerank": args.rerank, "depth": args.rerank_depth} if args.rerank else {}
    if name == "dense":
        return col.retriever("dense", prf=params["prf"], **rerank)
    if name == "hybrid":
        fusion = {"depth": max(args.depth, 100), **params["fusion"]}
        return col.retriever("hybrid", fusion=fusion, **rerank, **scoring_params(args))
    return col.retriever("bm25", scorer=name, rm3=rm3 if rm3 is not None else False, **rerank, **params)


def _key(report: dict[str, Any], metric: str) -> str:
    return next((k for k in report if k.lower() == metric.lower()), metric)


def _safe(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)
