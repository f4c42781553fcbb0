"""BENCHMARKS.md sections for dense retrieval: hybrid fusion per English set, encoder backends, exact vector search
and learned sparse. Every number is read from the JSON files the benchmark scripts write; absent files are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from report_common import load_result, markdown_table

HYBRID_ORDER = ("scifact", "cosqa", "xquad-r-en-paragraphs", "cranfield", "cacm", "squad-v1.1-dev",
                "nfcorpus-orig-test")
VARIANT_ORDER = ("cosqa-identifier",)  # the same set with another BM25 analyzer; not part of the mean




def hybrid_section(results: Path) -> list[str]:
    reports = {n: load_result(results / f"hybrid_{n}.json") for n in HYBRID_ORDER}
    reports = {n: r for n, r in reports.items() if r}
    if not reports:
        return []
    systems = [s["system"] for s in next(iter(reports.values()))["systems"]]
    lines = ["## Dense and hybrid retrieval (all-MiniLM-L6-v2 + BM25)", "",
             "nDCG@10 per English set in `../shared/data`, from `python benchmarks/run_hybrid.py` (each set through "
             "`retrievekit eval --json` with every system below; `*` = significantly different from BM25, paired "
             "t-test, Holm-corrected, p < 0.05). `hybrid` is the library's default fusion: convex combination of "
             "z-scored scores, 0.2 BM25 + 0.8 dense, the best mean dev-split nDCG@10 on scifact (train) and cosqa "
             "(dev) among 45 settings (`run_hybrid.py --select-default`, `hybrid_default.json`); the other columns "
             "are the standard alternatives with equal weights. No setting was chosen on a test split.", ""]
    rows, sums = [], {s: 0.0 for s in systems}
    for name, r in reports.items():
        by = {s["system"]: s for s in r["systems"]}
        sig = r.get("significance", {}).get("ndcg@10", {})
        row: list[Any] = [name, r["documents"], r["queries"]]
        for s in systems:
            value = by[s]["ndcg@10"]
            sums[s] += value
            row.append(f"{value:.4f}" + (" *" if sig.get(s, {}).get("significant") else ""))
        best_single = max(by["lucene"]["ndcg@10"], by["dense"]["ndcg@10"])
        row.append("yes" if by["hybrid"]["ndcg@10"] > best_single else "**no**")
        rows.append(row)
    n = len(reports)
    rows.append(["**mean**", "", "", *(f"**{sums[s] / n:.4f}**" for s in systems),
                 "yes" if sums["hybrid"] > max(sums["lucene"], sums["dense"]) else "**no**"])
    for name in VARIANT_ORDER:
        r = load_result(results / f"hybrid_{name}.json")
        if not r:
            continue
        by = {s["system"]: s for s in r["systems"]}
        sig = r.get("significance", {}).get("ndcg@10", {})
        best_single = max(by["lucene"]["ndcg@10"], by["dense"]["ndcg@10"])
        rows.append([f"{name} (analyzer {r.get('analyzer_name')}; not in the mean)", r["documents"], r["queries"],
                     *(f"{by[s]['ndcg@10']:.4f}" + (" *" if sig.get(s, {}).get("significant") else "")
                       for s in systems),
                     "yes" if by["hybrid"]["ndcg@10"] > best_single else "**no**"])
    lines += markdown_table(["set", "docs", "queries", *[s.replace("hybrid:", "") for s in systems],
                     "hybrid beats both"], rows)
    lines += ["", "Recall@100:", ""]
    rrows = []
    for name, r in reports.items():
        by = {s["system"]: s for s in r["systems"]}
        rrows.append([name, *(f"{by[s]['recall@100']:.4f}" for s in systems)])
    lines += markdown_table(["set", *[s.replace("hybrid:", "") for s in systems]], rrows)
    tuned = load_result(results / "hybrid_tuned.json")
    if tuned:
        lines += ["", "Fusion tuned on a dev split (`tune_fusion`, grid over weights and normalisation / RRF k), "
                  "then evaluated once on test:", ""]
        trows = []
        for t in tuned:
            for method in ("convex", "rrf"):
                if method in t:
                    trows.append([t["dataset"], t["dev_split"], method, json.dumps(t[method]["tuned"]),
                                  t[method]["dev_ndcg@10"], t[method]["test"].get("ndcg@10")])
        lines += markdown_table(["set", "dev split", "method", "tuned", "dev nDCG@10", "test nDCG@10"], trows)
    lines.append("")
    return lines


def encoders_section(results: Path) -> list[str]:
    doc = load_result(results / "encoders.json")
    if not doc:
        return []
    lines = ["## Encoder backends", "",
             f"`python benchmarks/run_encoders.py`: the same {doc['passages']:,} SciFact passages encoded by each "
             f"backend in one run ({doc['threads']} threads, window 256 tokens, batch 32); nDCG@10 = dense retrieval "
             "over the whole SciFact test set with that backend's vectors.", ""]
    rows = []
    for r in doc["results"]:
        rows.append([r["backend"], f"`{r['model']}`", f"{r['docs_per_second']:,.1f}",
                     f"{r.get('speedup_vs_sentence_transformers', 1):.2f}×",
                     f"{r['ndcg@10']:.4f}" if "ndcg@10" in r else "–",
                     f"{r['ndcg@10_delta']:+.4f}" if "ndcg@10_delta" in r else "–"])
    lines += markdown_table(["backend", "model", "docs/s", "vs sentence-transformers", "nDCG@10", "Δ nDCG@10"], rows)
    lines.append("")
    return lines


def exact_section(results: Path) -> list[str]:
    doc = load_result(results / "dense_exact.json")
    if not doc:
        return []
    data, settings = doc["data"], doc["settings"]
    lines = ["## Exact vector search vs FAISS IndexFlatIP", "",
             f"`python benchmarks/run_dense_exact.py`: {data['n']:,} × {data['dim']} float32 vectors (Gaussian "
             f"mixture, {data['clusters']} clusters, seed {data['seed']}), queries near the data; best of "
             f"{settings['repeats']} interleaved runs; FAISS {doc['machine']['packages'].get('faiss-cpu')} with its "
             f"faster BLAS setting for batches; 1-minute load average {doc['load_average_before'][0]:.1f} before the "
             "run (a busy 2-core machine, so "
             "2 threads gain little). Ratio > 1 = retrievekit faster.", ""]
    rows = []
    for r in doc["results"]:
        rows.append([r["queries_per_call"], r["k"], r["threads"], f"{r['ours_qps']:,.1f}", f"{r['faiss_qps']:,.1f}",
                     f"{r['ratio']:.2f}×"])
    lines += markdown_table(["queries per call", "k", "threads", "retrievekit q/s", "FAISS q/s", "ratio"], rows)
    agree = doc.get("agreement_with_faiss", {})
    if agree:
        lines += ["", "Agreement: " + "; ".join(
            f"{k}: recall@10 vs FAISS {v['recall_at_10_vs_faiss']:.3f}, identical rankings "
            f"{v['identical_ranking_fraction']:.1%}, max score difference {v['max_abs_score_difference']:.1e}"
            for k, v in agree.items())]
    lines.append("")
    return lines


def sparse_section(results: Path) -> list[str]:
    doc = load_result(results / "sparse_scifact.json")
    if not doc:
        return []
    lines = ["## Learned sparse (SPLADE)", "",
             f"`python benchmarks/run_sparse.py`: {doc['model']} on {doc['dataset']} ({doc['docs']:,} documents, "
             f"{doc['queries']} queries), impact scores quantised ×100 into the inverted index.", ""]
    lines += markdown_table(["system", "nDCG@10", "R@100", "index docs/s", "queries/s", "postings", "index bytes"], [
        [doc["model"], doc["ndcg@10"], doc["recall@100"], doc["index_docs_per_second"], doc["queries_per_second"],
         f"{doc['postings']:,}", f"{doc['sparse_index_bytes']:,}"],
        ["BM25 (same collection)", doc["bm25_ndcg@10"], doc["bm25_recall@100"], "", "", "", ""]])
    lines.append("")
    return lines


def tiers_section(results: Path) -> list[str]:
    doc = load_result(results / "tiers_real.json")
    if not doc:
        return []
    lines = ["## Compressed vector tiers on real embeddings (all-MiniLM-L6-v2)", "",
             "`python benchmarks/run_tiers.py`: every tier fitted on the corpus vectors (LeanVec-OOD also on the even "
             "half of the queries) and evaluated on the odd half of the queries; nDCG@10 relative to float32 exact "
             "search, recall@10 against the float32 top-10, bytes per vector of the in-memory candidate tier, "
             "queries/s in one batch on 1 thread (float32 exact = the `float32` row; small corpora make every "
             "method's time tiny, so read q/s on the larger sets). `+rescore[:N]`: top k×N (default 4) candidates "
             "re-scored with the float vectors. `faiss:` rows are FAISS's own equivalent indexes on the same vectors "
             "(IndexScalarQuantizer QT_8bit, IndexPQ, IndexBinaryFlat; 1 thread); the FAISS binary+rescore row "
             "rescores its candidates with a plain numpy gather + einsum in the benchmark script, so its q/s measures "
             "that script, not FAISS.", ""]
    rows = []
    for r in doc["results"]:
        if "skipped" in r:
            rows.append([r["dataset"], r["tier"], "skipped: " + r["skipped"], "", "", "", ""])
            continue
        rows.append([r["dataset"], r["tier"], f"{r['ndcg@10']:.4f}", f"{r['relative_ndcg@10']:.1%}",
                     f"{r['recall@10_vs_float']:.3f}", f"{r['bytes_per_vector']:g}",
                     f"{r['queries_per_second']:,.0f}"])
    if (results / "tiers_pareto.png").is_file():
        lines += ["![nDCG@10 relative to float32 against bytes per vector](benchmarks/results/tiers_pareto.png)", "",
                  "(`python benchmarks/plot_tiers.py`)", ""]
    by = {(r["dataset"], r["tier"]): r for r in doc["results"] if "skipped" not in r}
    summary = []
    for name in dict.fromkeys(r["dataset"] for r in doc["results"]):
        cells = [name]
        for tier in ("binary+rescore", "int8", "pca:192", "leanvec-ood:192", "pca:192+int8", "leanvec-ood:192+int8"):
            r = by.get((name, tier))
            cells.append(f"{r['relative_ndcg@10']:.1%} (R@10 {r['recall@10_vs_float']:.3f})" if r else "–")
        summary.append(cells)
    lines += ["Goals: binary+rescore ≥ 97% of float nDCG@10 at 32× less memory; int8 ≥ 99%; LeanVec-OOD at half the "
              "dimensions beats PCA at the same size:", ""]
    lines += markdown_table(["set", "binary+rescore (48 B)", "int8 (384 B)", "pca:192", "leanvec-ood:192",
                             "pca:192+int8", "leanvec-ood:192+int8"], summary)
    sets = dict.fromkeys(r["dataset"] for r in doc["results"])
    pairs = [(by[(n, "pca:192")], by[(n, "leanvec-ood:192")]) for n in sets
             if (n, "pca:192") in by and (n, "leanvec-ood:192") in by]
    if pairs:
        fidelity = sum(lv["recall@10_vs_float"] > pca["recall@10_vs_float"] for pca, lv in pairs)
        quality = sum(lv["relative_ndcg@10"] > pca["relative_ndcg@10"] for pca, lv in pairs)
        gap = max(abs(lv["relative_ndcg@10"] - pca["relative_ndcg@10"]) for pca, lv in pairs)
        lines += ["", f"LeanVec-OOD:192 against PCA:192 (same 768 bytes): recall@10 against the float top-10 higher on "
                  f"{fidelity} of {len(pairs)} sets, nDCG@10 higher on {quality} of {len(pairs)} (largest nDCG@10 "
                  f"difference either way: {gap:.1%} of float)."]
    lines += ["", "All rows:", ""]
    lines += markdown_table(["set", "tier", "nDCG@10", "of float32", "recall@10 vs float", "bytes/vector", "q/s"], rows)
    lines.append("")
    return lines


def ann_section(results: Path) -> list[str]:
    files = sorted(results.glob("ann_*.json"))
    lines: list[str] = []
    for path in files:
        doc = load_result(path)
        data, exact = doc["data"], doc["exact"]
        lines += [f"## ANN indexes (FAISS) — {data['n']:,} × {data['dim']} synthetic vectors", "",
                  f"`python benchmarks/run_ann.py --n {data['n']}`: Gaussian mixture ({data['clusters']} clusters), "
                  f"{data['queries']:,} queries near the data, recall@10 against exact search; search on 1 thread. "
                  f"Exact search in the same run: {exact['batch_qps']:,.0f} q/s batched, {exact['single_qps']:,.1f} "
                  "q/s one query per call.", ""]
        rows = []
        for index in doc["indexes"]:
            for r in index["results"]:
                setting = ", ".join(f"{k}={r[k]}" for k in ("nprobe", "ef_search", "ef") if k in r)
                rows.append([index["index"], f"{index['build_seconds']:.1f}", f"{index['memory_bytes'] / 2**20:,.0f}",
                             setting, f"{r['recall_at_10']:.3f}", f"{r['batch_qps']:,.0f} ({r['speedup_batch']:.1f}×)",
                             f"{r['single_qps']:,.0f} ({r['speedup_single']:.1f}×)"])
        lines += markdown_table(["index", "build s", "memory MiB", "setting", "recall@10", "batched q/s (× exact)",
                         "single q/s (× exact)"], rows)
        lines.append("")
    return lines


def binary_section(results: Path) -> list[str]:
    lines: list[str] = []
    for path in (results / "binary_1m.json", results / "binary_1m_real.json"):
        doc = load_result(path)
        if not doc:
            continue
        data = doc["data"]
        real = data.get("source") == "real"
        what = (f"real MiniLM vectors of the 7 English sets, replicated with noise {data['noise']}, real queries"
                if real else "synthetic clustered vectors")
        lines += [f"## Binary + rescore at {data['n']:,} × {data['dim']} ({what}) vs exact float32 and FAISS "
                  "IndexBinaryFlat", "",
                  f"`python benchmarks/run_binary_1m.py{' --source real' if real else ''}`: 384-bit sign codes (48 "
                  "bytes), candidates by Hamming distance (retrievekit's C popcount top-k — AVX-512 VPOPCNTDQ with 8 "
                  "queries per vector where the CPU has it, scalar popcnt otherwise — or FAISS IndexBinaryFlat on the "
                  "same codes), rescored with the float vectors; 1 thread, k=10, oversampling 4 or 10. "
                  + ("Every real document vector appears once and then as noisy copies; recall is against exact "
                     "search over all of them." if real else
                     "Recall is against exact search on the synthetic data of the exact-search benchmark (1,000 tight "
                     "clusters: sign bits cannot separate neighbours inside a cluster, so recall here is far below "
                     "the real-embedding rows)."), ""]
        rows = []
        for r in doc["results"]:
            rows.append([r["mode"], r["queries_per_call"], r["method"], f"{r['qps']:,.1f}",
                         f"{r['speedup_vs_exact']:.1f}×",
                         f"{r['recall_at_10']:.3f}" if "recall_at_10" in r else "1.000",
                         f"{r['ratio_vs_other']:.2f}" if "ratio_vs_other" in r else ""])
        lines += markdown_table(["mode", "queries per call", "method", "q/s", "× exact", "recall@10",
                         "q/s ÷ the other's"], rows)
        lines.append("")
    return lines


def dense_sections(results: Path) -> list[str]:
    return (hybrid_section(results) + encoders_section(results) + exact_section(results) + sparse_section(results)
            + tiers_section(results) + binary_section(results) + ann_section(results))
