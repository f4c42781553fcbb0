"""``retrievekit eval``: index a BEIR-format dataset, run one or more configurations, report metrics.

Stable JSON contract (scripts rely on it): with ``--json`` one object is printed with at least ``ndcg@10``,
``recall@100``, ``queries``, ``index_seconds`` and ``queries_per_second`` (single-threaded search including query
analysis) of the first system; with several systems, each one's object is under ``systems`` and paired
significance tests against the first are under ``significance``. With ``--mode image`` (image-text retrieval) the
JSON is the report of ``retrievekit.evaluation.image_text.evaluate_image_text`` instead (``text_to_image`` and
``image_to_text`` with ``recall@1/5/10``, ``rsum``, the counts and timings).
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from retrievekit.cli.commands import (
    FIELD_WEIGHTS_HELP,
    add_model_options,
    add_scoring_options,
    parse_field_weights,
    positive_int,
    scoring_params,
)
from retrievekit.cli.render import print_json, table
from retrievekit.collection import Collection
from retrievekit.core.errors import RetrievekitError
from retrievekit.evaluation import compare, evaluate, load_beir, write_run
from retrievekit.retrieval.base import Retriever
from retrievekit.retrieval.bm25.retriever import BM25Retriever
from retrievekit.service.collections import CLUSTER_MANIFEST, AnyCollection, is_sharded, is_sharded_folder

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
                   "'lucene:k1=1.2,b=0.75', 'lucene+rm3', 'lucene+rm3:fb_docs=10,fb_terms=10,original_weight=0.5', "
                   "'dirichlet:mu=2000'; or dense[+prf][:fb_docs=3,alpha=1,beta=0.5]; or hybrid (as `search`: "
                   "z-scored scores, 0.2 x BM25 + 0.8 x dense), hybrid:method=rrf[,k=60] or "
                   "hybrid:method=convex[,w=0.5,norm=minmax|zscore|dbsf] (w = BM25's weight; options without method= "
                   "adjust the default), each with depth=N (default: the larger of --depth and 100). Default: one "
                   "system from --mode, --scorer and its options")
    p.add_argument("--mode", choices=["bm25", "dense", "hybrid", "image"], default="bm25",
                   help="the system evaluated when no --system is given: bm25 (default), dense (needs --model's "
                   "encoder; embeddings cached, so a second run skips encoding) or hybrid (BM25 and dense fused); "
                   "image: image-text retrieval the Flickr way (DATA a folder whose corpus.jsonl rows name an "
                   "'image' file, captions as queries; --model clip:MODEL, hf-clip:MODEL or open-clip:MODEL): "
                   "text->image and image->text Recall@1/5/10 "
                   "by exact cosine over all items")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="with --mode image: only the first N images and their captions (a quick run)")
    add_model_options(p)
    p.add_argument("--vectors", metavar="TIER",
                   help="dense search tier (default float32 = exact): e.g. int8, binary+rescore, pq:48+rescore, "
                   "leanvec-ood:192+rescore, hnsw, ivf (see `retrievekit index --help`); the JSON adds "
                   "bytes_per_vector")
    add_scoring_options(p)
    p.add_argument("--analyzer", default="lucene-english", help="analyzer preset (default: lucene-english)")
    p.add_argument("--fields", default="title,text", help="document parts indexed (default: title,text)")
    p.add_argument("--field-weights", metavar="FIELD=W,...",
                   help=f"{FIELD_WEIGHTS_HELP}; every BM25 system (hybrid's BM25 too) scores with these weights. A "
                   "reused --collection keeps the fields it indexes on its own; the weights must name some of them")
    p.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                   help=f"comma-separated metrics (default: {','.join(DEFAULT_METRICS)})")
    p.add_argument("--depth", type=positive_int, default=1000, help="documents retrieved per query (default 1000)")
    p.add_argument("--ignore-identical-ids", action="store_true",
                   help="drop retrieved documents whose id equals the query id (BEIR's ArguAna/Quora setting)")
    p.add_argument("--ties", choices=["anserini", "raw"], default="anserini",
                   help="how tied scores are ordered for evaluation: anserini (default; the scores a Pyserini run file "
                   "holds: Anserini's 4-decimal rounding and 1e-6 tie steps in float32, so numbers compare with "
                   "theirs) or raw (raw float32 scores); trec_eval orders equal scores by document id descending")
    p.add_argument("--collection", metavar="PATH",
                   help="keep the index in this folder and reuse it on later runs (default: a temporary folder); an "
                   "existing sharded collection (`retrievekit index --shards N`) is searched as it is")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="with --collection naming a sharded collection: run its shards as Ray actors ('local', "
                   "HOST:PORT or ray://HOST:10001; default: in this process)")
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
SYSTEM_FORMS = ("NAME[+rm3][:key=value,...] with NAME a scoring function (lucene, robertson, atire, bm25l, bm25+, "
                "dirichlet), dense[+prf][:fb_docs=N,alpha=A,beta=B] or hybrid[:method=rrf|convex,k=K,w=W,"
                "norm=NORM,depth=N]")


def _number(spec: str, key: str, value: str, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number < 0:
        what = "an integer" if kind is int else "a number"
        raise RetrievekitError(f"--system {spec!r}: {key} must be {what} of 0 or more, got {value!r}")
    return number


def _options(spec: str, params: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in filter(None, params.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise RetrievekitError(f"--system {spec!r}: expected key=value, got {item!r}")
        values[key.strip()] = value.strip()
    return values


def parse_dense_system(spec: str) -> tuple[str, dict[str, Any]]:
    """'dense', 'dense+prf:fb_docs=5', 'hybrid', 'hybrid:method=convex,w=0.3,norm=zscore' -> (kind, options).
    Hybrid options without ``method`` adjust the search default (z-scored convex, 0.2 BM25 + 0.8 dense)."""
    from retrievekit.collection import HYBRID_FUSION
    from retrievekit.retrieval.fusion import FUSERS, NORMALIZERS

    head, _, params = spec.partition(":")
    kind = head.removesuffix("+prf")
    values = _options(spec, params)
    if kind == "dense":
        prf: dict[str, Any] | bool = False
        if head.endswith("+prf"):
            unknown = sorted(set(values) - {"fb_docs", "alpha", "beta"})
            if unknown:
                raise RetrievekitError(f"--system {spec!r}: unknown dense+prf options {unknown} "
                                       "(use fb_docs, alpha, beta)")
            prf = {k: _number(spec, k, v, int if k == "fb_docs" else float) for k, v in values.items()} or True
        elif values:
            raise RetrievekitError(f"--system {spec!r}: dense options need '+prf' (fb_docs, alpha, beta)")
        return kind, {"prf": prf}
    if head != kind:
        raise RetrievekitError(f"--system {spec!r}: '+prf' applies to dense only")
    fusion: dict[str, Any] = {}
    if "method" in values:
        fusion["method"] = values.pop("method")
        if fusion["method"] not in FUSERS.names():
            raise RetrievekitError(f"--system {spec!r}: unknown method {fusion['method']!r}; choose one of "
                                   f"{', '.join(FUSERS.names())}")
    method = FUSERS.entry(fusion.get("method", HYBRID_FUSION["method"])).name
    if "k" in values:
        if method != "rrf":
            raise RetrievekitError(f"--system {spec!r}: k is RRF's constant; add method=rrf")
        fusion["k"] = _number(spec, "k", values.pop("k"), int)
    if "w" in values:
        w = _number(spec, "w", values.pop("w"), float)
        if w > 1:
            raise RetrievekitError(f"--system {spec!r}: w (BM25's weight) must be from 0 to 1, got {w}")
        fusion["weights"] = [w, 1.0 - w]
    if "norm" in values:
        if method == "rrf":
            raise RetrievekitError(f"--system {spec!r}: norm applies to method=convex, not rrf")
        fusion["normalization"] = values.pop("norm")
        if fusion["normalization"] not in NORMALIZERS.names():
            raise RetrievekitError(f"--system {spec!r}: unknown norm {fusion['normalization']!r}; choose one of "
                                   f"{', '.join(NORMALIZERS.names())}")
    if "depth" in values:
        fusion["depth"] = _number(spec, "depth", values.pop("depth"), int) or 1
    if values:
        raise RetrievekitError(f"--system {spec!r}: unknown hybrid options {sorted(values)} "
                               "(use method, k, w, norm, depth)")
    return kind, {"fusion": fusion if "method" in fusion else {**HYBRID_FUSION, **fusion}}


def parse_system(spec: str) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """'lucene+rm3:k1=1.2,fb_terms=20' -> ('lucene', {'k1': 1.2}, {'fb_terms': 20}); an unknown name or parameter
    fails here, before any indexing."""
    from retrievekit.retrieval.bm25.scoring import SCORERS, get_scorer

    head, _, params = spec.partition(":")
    with_rm3 = head.endswith("+rm3")
    name = head.removesuffix("+rm3")
    if name not in SCORERS.names():
        raise RetrievekitError(f"--system {spec!r}: unknown system {name!r}; valid: "
                               f"{', '.join([*SCORERS.names(), *DENSE_SYSTEMS])} ({SYSTEM_FORMS})")
    scorer: dict[str, Any] = {}
    rm3: dict[str, Any] | None = {} if with_rm3 else None
    for key, value in _options(spec, params).items():
        if key in ("fb_docs", "fb_terms", "original_weight"):
            if rm3 is None:
                raise RetrievekitError(f"--system {spec!r}: {key} needs '+rm3'")
            rm3[key] = _number(spec, key, value, float if key == "original_weight" else int)
        else:
            scorer[key] = float(_number(spec, key, value, float))
    try:
        get_scorer(name, **scorer)
    except RetrievekitError as exc:
        raise RetrievekitError(f"--system {spec!r}: {exc}") from None
    return name, scorer, rm3


def run_eval(args: argparse.Namespace) -> int:
    from retrievekit.analysis import get_analyzer
    from retrievekit.evaluation.metrics import parse_metric
    from retrievekit.retrieval.bm25.scoring import get_scorer

    if args.mode == "image":
        return run_image_eval(args)
    if getattr(args, "limit", None) is not None:
        raise RetrievekitError("--limit applies to --mode image (the first N images and their captions)")
    # Every argument is checked before the dataset is read (or downloaded) and indexed.
    default = args.scorer + ("+rm3" if args.rm3 else "") if args.mode == "bm25" else args.mode
    specs = args.system or [default]
    systems: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = []
    for spec in specs:
        if spec.partition(":")[0].removesuffix("+prf") in DENSE_SYSTEMS:
            systems.append((spec, *parse_dense_system(spec), None))
            continue
        name, params, rm3 = parse_system(spec)
        if not args.system and scoring_params(args):
            params.update(scoring_params(args))
            try:
                get_scorer(name, **params)  # e.g. --mu with a BM25 scorer fails here, not after indexing
            except RetrievekitError as exc:
                raise RetrievekitError(f"--scorer {name}: {exc}") from None
        systems.append((spec, name, params, rm3))
    needs_dense = any(name in DENSE_SYSTEMS for _, name, _, _ in systems)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    for metric in metrics:
        try:
            parse_metric(metric)
        except RetrievekitError as exc:
            raise RetrievekitError(f"--metrics: {exc}") from None
    for required in ("ndcg@10", "recall@100"):
        if required not in metrics:
            metrics.append(required)
    if args.vectors and not needs_dense:
        raise RetrievekitError("--vectors sets the dense search tier: evaluate a dense or hybrid system too "
                               "(--mode dense|hybrid or --system dense|hybrid)")
    get_analyzer(args.analyzer)
    args.field_weights = parse_field_weights(args.field_weights)
    if args.ray is not None and not (args.collection and is_sharded_folder(args.collection)):
        raise RetrievekitError(f"--ray runs the shards of a sharded collection: pass --collection naming one (a "
                               f"folder holding {CLUSTER_MANIFEST})")
    dataset = load_beir(args.data, split=args.split, corpus=args.corpus)

    temp = None
    fields = args.fields.split(",")
    dense = args.model if needs_dense else None
    col: AnyCollection
    if args.collection and is_sharded_folder(args.collection):
        col = _open_sharded(args, fields)
        index_seconds, reused = 0.0, True
        if needs_dense and not col.has_index("dense"):
            started = time.perf_counter()
            col.add_dense_index(dense, chunking=args.chunking, vectors=args.vectors)
            index_seconds, reused = time.perf_counter() - started, False
    elif args.collection and Path(args.collection, "manifest.json").is_file():
        indexed = Collection(args.collection).settings.bm25.field_weights  # weights are chosen per search
        col = Collection.create(args.collection, analyzer=args.analyzer, fields=fields, field_weights=indexed,
                                exist_ok=True)
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
                                vectors=args.vectors if dense else None, field_weights=args.field_weights or None)
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
        # a sharded collection's info has no per-tier sizes (each shard keeps its own)
        dense_info = (info["dense"]["default"] if "dense" in info  # a sharded collection's: the index config
                      else {"dim": col.config["dense"]["default"]["encoder"]["dim"]}) if needs_dense else {}
        tiers = dense_info.get("tiers", {})
        bytes_per_vector = (next(iter(t["bytes_per_vector"] for t in tiers.values() if "bytes_per_vector" in t),
                                 None) if args.vectors else (4.0 * dense_info["dim"] if needs_dense else None))
    finally:
        if is_sharded(col):
            col.close()
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
        "field_weights": args.field_weights,
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


# options of the BEIR modes that an image-text evaluation has no use for: (attribute, flag)
_NOT_FOR_IMAGES = (("system", "--system"), ("vectors", "--vectors"), ("rerank", "--rerank"),
                   ("chunking", "--chunking"), ("collection", "--collection"), ("ray", "--ray"),
                   ("run_dir", "--run-dir"), ("report", "--report"), ("field_weights", "--field-weights"),
                   ("rm3", "--rm3"), ("ignore_identical_ids", "--ignore-identical-ids"), ("k1", "--k1"),
                   ("b", "--b"), ("mu", "--mu"))


def run_image_eval(args: argparse.Namespace) -> int:
    """``retrievekit eval FOLDER --mode image --model clip:MODEL``: image-text Recall@K (text->image, image->text)
    by exact cosine, printed as a table (direction x R@1/5/10) or as the JSON of ``evaluate_image_text``."""
    from retrievekit.encoders import get_encoder
    from retrievekit.evaluation.image_text import evaluate_image_text

    given = [flag for attr, flag in _NOT_FOR_IMAGES if getattr(args, attr, None) not in (None, False)]
    if given:
        raise RetrievekitError(f"--mode image embeds the images and captions and compares them exactly, with no "
                               f"index or retrieval system; these options do not apply to it: {', '.join(given)}")
    if args.corpus != "corpus.jsonl":
        raise RetrievekitError("--mode image reads the folder's corpus.jsonl; --corpus does not apply")
    if not Path(args.data).is_dir():
        raise RetrievekitError(f"--mode image needs a dataset folder (corpus.jsonl naming image files, queries.jsonl "
                               f"with the captions, qrels/{args.split}.tsv); {args.data} is not a folder")
    encoder = get_encoder(args.model)
    out = evaluate_image_text(args.data, encoder, limit=args.limit, split=args.split, progress=not args.no_progress)
    if args.output:
        import json

        Path(args.output).write_text(json.dumps(out, indent=2))
    if args.json:
        print_json(out)
        return 0
    ks = out["ks"]
    print(f"{out['dataset']} ({args.split}): {out['images']:,} images, {out['captions']:,} captions, model "
          f"{out['model']}; embedded in {out['seconds']['encode_images'] + out['seconds']['encode_captions']:.2f} s")
    rows = [[label, *(f"{100 * out[key][f'recall@{k}']:.1f}" for k in ks), f"{out[key]['median_rank']:g}",
             out[key]["queries"]]
            for label, key in (("text->image", "text_to_image"), ("image->text", "image_to_text"))]
    print(table(["direction", *(f"R@{k} %" for k in ks), "MedR", "queries"], rows))
    print(f"RSUM {out['rsum']:.1f} (the sum of the recalls in %; exact cosine over all {out['images']:,} images / "
          f"{out['captions']:,} captions)")
    return 0


def _open_sharded(args: argparse.Namespace, fields: list[str]) -> AnyCollection:
    """The existing sharded collection of ``--collection``, checked to index the same fields with the same analyzer
    as this run asks for (its metrics would otherwise describe another index)."""
    from retrievekit.analysis import get_analyzer
    from retrievekit.sharding.collection import ShardedCollection

    if args.field_weights:
        raise RetrievekitError("--field-weights (multi-field BM25) is not supported on sharded collections yet")
    col = ShardedCollection(args.collection, ray=args.ray)
    settings = col.settings
    if tuple(settings.fields) != tuple(fields) or settings.bm25.analyzer != get_analyzer(args.analyzer).config():
        col.close()
        raise RetrievekitError(f"the sharded collection {args.collection} indexes {','.join(settings.fields)} with "
                               f"the analyzer {settings.bm25.analyzer.get('name', '?')}; this run asks for "
                               f"{','.join(fields)} with {args.analyzer}: pass the same --fields and --analyzer")
    return col


def build_system(col: AnyCollection, name: str, params: dict[str, Any], rm3: dict[str, Any] | None,
                 args: argparse.Namespace) -> Retriever:
    """One evaluated configuration as the collection's retriever (pipeline), reranked if ``--rerank`` is given."""
    rerank: dict[str, Any] = {"rerank": args.rerank, "depth": args.rerank_depth} if args.rerank else {}
    if is_sharded(col):
        if params.get("prf"):
            raise RetrievekitError("dense+prf (pseudo-relevance feedback) is not supported on sharded collections "
                                   "yet")
        if rm3 is not None:
            raise RetrievekitError("RM3 (+rm3) is not supported on sharded collections yet")
        if name == "dense":
            return col.retriever("dense", **rerank)
    if name == "dense":
        return col.retriever("dense", prf=params["prf"], **rerank)
    weights = getattr(args, "field_weights", None)
    if name == "hybrid":
        fusion = {"depth": max(args.depth, 100), **params["fusion"]}
        return col.retriever("hybrid", fusion=fusion, field_weights=weights, **rerank, **scoring_params(args))
    return col.retriever("bm25", scorer=name, rm3=rm3 if rm3 is not None else False, field_weights=weights,
                         **rerank, **params)


def _key(report: dict[str, Any], metric: str) -> str:
    return next((k for k in report if k.lower() == metric.lower()), metric)


def _safe(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)
