"""Compressed vector tiers on real embeddings: all-MiniLM-L6-v2 vectors of scifact, cosqa, xquad-r (en paragraphs)
and squad (paragraphs), read from the embedding cache (run benchmarks/embed_corpora.py first).

For every tier: nDCG@10 relative to float32, recall@10 against the exact float32 top-10, bytes per vector of the
candidate tier, and queries/s (batches of all evaluation queries, 1 thread). Queries are split in two halves by
position: LeanVec-OOD learns its projection from the even half (with the documents); every tier is evaluated on the
odd half, so no tier sees an evaluation query.

    python benchmarks/run_tiers.py [--sets scifact,cosqa] [--tiers int8,binary+rescore]

Writes benchmarks/results/tiers_real.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from datasets_en import ENGLISH_SETS
from threadpoolctl import threadpool_limits

from retrievekit import RetrievekitError
from retrievekit.core.document import index_text
from retrievekit.encoders import get_encoder
from retrievekit.encoders.cache import EmbeddingCache, default_cache_root
from retrievekit.evaluation import evaluate, load_beir
from retrievekit.index.dense.compressed import parse_vectors
from retrievekit.index.dense.embedding import embed_documents, embed_queries
from retrievekit.index.dense.exact import exact_search
from retrievekit.index.dense.tiers import get_tier
from retrievekit.index.dense.tiers.rescore import search_compressed
from retrievekit.retrieval.base import SearchResults

RESULTS = Path(__file__).resolve().parent / "results"
SETS = ("scifact", "cosqa", "xquad-r-en-paragraphs", "squad-v1.1-dev")
TIERS = ("float16", "int8", "int8+rescore", "binary", "binary+rescore", "binary+rescore:10", "multibit:2",
         "multibit:2+rescore", "pca:192", "leanvec:192", "leanvec-ood:192", "matryoshka:192", "pca:192+int8",
         "leanvec-ood:192+int8", "pq:48", "pq:48+rescore", "pq:96+rescore")


def as_results(numbers: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> SearchResults:
    out = np.empty(numbers.shape, dtype=object)
    valid = numbers >= 0
    out[valid] = ids[numbers[valid]]
    return SearchResults(out, scores.astype(np.float32))


def faiss_rows(name: str, X: np.ndarray, Qe: np.ndarray, qids: list[str], qrels: dict, ids: np.ndarray,
               ref_n: np.ndarray, base: float, exact_qps: float) -> list[dict]:
    """FAISS's own equivalents of int8, PQ and binary (+ rescoring) on the same vectors, same metrics."""
    import faiss

    faiss.omp_set_num_threads(1)
    d = X.shape[1]
    out = []

    def row(tier: str, n: np.ndarray, s: np.ndarray, seconds: float, bpv: float) -> dict:
        res = as_results(n, s, ids)
        ndcg = evaluate(res.to_run(qids), qrels, ["ndcg@10"]).mean["ndcg@10"]
        recall = float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(n.tolist(), ref_n.tolist())]))
        qps = len(Qe) / seconds
        return {"dataset": name, "tier": tier, "ndcg@10": round(ndcg, 4),
                "relative_ndcg@10": round(ndcg / base, 4) if base else None, "recall@10_vs_float": round(recall, 4),
                "bytes_per_vector": bpv, "queries_per_second": round(qps, 1),
                "speedup_vs_float_exact": round(qps / exact_qps, 2)}

    indexes = {"faiss:int8 (IndexScalarQuantizer QT_8bit)":
               (faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT), d)}
    if len(X) >= 256:
        indexes["faiss:pq:48 (IndexPQ)"] = (faiss.IndexPQ(d, 48, 8, faiss.METRIC_INNER_PRODUCT), 48)
    for tier, (index, bpv) in indexes.items():
        index.train(X)
        index.add(X)
        started = time.perf_counter()
        s, n = index.search(Qe, 100)
        out.append(row(tier, n.astype(np.int64), s, time.perf_counter() - started, bpv))
    codes = np.packbits(X > 0, axis=1)
    binary = faiss.IndexBinaryFlat(d)
    binary.add(codes)
    qcodes = np.packbits(Qe > 0, axis=1)
    for oversample in (None, 4):
        started = time.perf_counter()
        dist, n = binary.search(qcodes, 100 if oversample is None else 100 * oversample)
        if oversample is None:
            s = -dist.astype(np.float32)
        else:  # rescore the candidates with the float vectors, as binary+rescore does
            exact = np.einsum("md,mcd->mc", Qe, X[n])
            order = np.argsort(-exact, axis=1, kind="stable")[:, :100]
            n, s = np.take_along_axis(n, order, 1), np.take_along_axis(exact, order, 1)
        tier = "faiss:binary (IndexBinaryFlat)" + ("" if oversample is None else "+rescore")
        out.append(row(tier, n.astype(np.int64), s, time.perf_counter() - started, d / 8))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--tiers", default=",".join(TIERS))
    parser.add_argument("--no-faiss", dest="faiss", action="store_false",
                        help="skip FAISS's equivalent indexes (int8, PQ, binary)")
    parser.add_argument("--merge", action="store_true",
                        help="update the measured rows in an existing tiers_real.json instead of replacing it")
    args = parser.parse_args()
    encoder = get_encoder("minilm")
    cache = EmbeddingCache(default_cache_root(), encoder.spec())
    rows = []
    for name in args.sets.split(","):
        folder, split, corpus = ENGLISH_SETS[name]
        ds = load_beir(folder, split=split, corpus=corpus)
        docs = list(ds.iter_corpus())
        ids = np.array([d.id for d in docs], dtype=object)
        X = embed_documents(encoder, [index_text(d, ["title", "text"]) for d in docs], cache=cache)
        qids = list(ds.queries)
        Q = embed_queries(encoder, [ds.queries[q] for q in qids], cache=cache)
        fit_q, eval_idx = Q[0::2], np.arange(len(qids))[1::2]
        Qe, eval_qids = Q[eval_idx], [qids[i] for i in eval_idx]
        qrels = {q: ds.qrels[q] for q in eval_qids}
        with threadpool_limits(1):
            started = time.perf_counter()
            ref_n, ref_s = exact_search(Qe, [X], 100)
            exact_qps = len(Qe) / (time.perf_counter() - started)
        ref = as_results(ref_n, ref_s, ids)
        base = evaluate(ref.to_run(eval_qids), qrels, ["ndcg@10"]).mean["ndcg@10"]
        rows.append({"dataset": name, "tier": "float32", "ndcg@10": round(base, 4), "relative_ndcg@10": 1.0,
                     "recall@10_vs_float": 1.0, "bytes_per_vector": 4 * X.shape[1], "queries_per_second": exact_qps,
                     "docs": len(X), "eval_queries": len(Qe)})
        print(rows[-1], flush=True)
        for spec in args.tiers.split(","):
            parsed = parse_vectors(spec)
            assert parsed is not None and "tier" in parsed
            tier = get_tier(parsed["tier"])
            started = time.perf_counter()
            try:
                tier.fit(X, queries=fit_q)
            except RetrievekitError as exc:  # e.g. PQ on a 240-document corpus
                rows.append({"dataset": name, "tier": spec, "skipped": str(exc)})
                print(rows[-1], flush=True)
                continue
            codes = tier.encode(X)
            fit_seconds = time.perf_counter() - started
            with threadpool_limits(1):
                started = time.perf_counter()
                n, s = search_compressed(Qe, tier, codes, 100, oversample=parsed["oversample"],
                                         rescore=X if parsed["rescore"] else None)
                qps = len(Qe) / (time.perf_counter() - started)
            res = as_results(n, s, ids)
            ndcg = evaluate(res.to_run(eval_qids), qrels, ["ndcg@10"]).mean["ndcg@10"]
            recall = float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(n.tolist(), ref_n.tolist())]))
            rows.append({"dataset": name, "tier": spec, "ndcg@10": round(ndcg, 4),
                         "relative_ndcg@10": round(ndcg / base, 4) if base else None,
                         "recall@10_vs_float": round(recall, 4),
                         "bytes_per_vector": round(float(tier.bytes_per_vector(X.shape[1])), 2),
                         "compression": round(4 * X.shape[1] / float(tier.bytes_per_vector(X.shape[1])), 1),
                         "queries_per_second": round(qps, 1), "speedup_vs_float_exact": round(qps / exact_qps, 2),
                         "fit_encode_seconds": round(fit_seconds, 2)})
            print(rows[-1], flush=True)
        if args.faiss:
            for row in faiss_rows(name, X, Qe, eval_qids, qrels, ids, ref_n, base, exact_qps):
                rows.append(row)
                print(row, flush=True)
    out = {"benchmark": "tiers_real", "model": encoder.spec(), "machine": {
        "cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()}, "results": rows}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "tiers_real.json"
    if args.merge and path.is_file():  # replace only the rows measured now
        old = json.loads(path.read_text())
        done = {(r["dataset"], r["tier"]) for r in rows}
        new_rows = {(r["dataset"], r["tier"]): r for r in rows}
        merged = [new_rows.get((r["dataset"], r["tier"]), r) for r in old["results"]]
        merged += [r for r in rows if (r["dataset"], r["tier"]) not in {(m["dataset"], m["tier"]) for m in merged}]
        assert done <= {(m["dataset"], m["tier"]) for m in merged}
        out["results"] = merged
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
