"""BENCHMARKS.md sections for dense retrieval: hybrid fusion per English set, encoder backends, exact vector search
and learned sparse. Every number is read from the JSON files the benchmark scripts write; absent files are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HYBRID_ORDER = ("scifact", "cosqa", "xquad-r-en-paragraphs", "cranfield", "cacm", "squad-v1.1-dev",
                "nfcorpus-orig-test")


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def hybrid_section(results: Path) -> list[str]:
    reports = {n: _load(results / f"hybrid_{n}.json") for n in HYBRID_ORDER}
    reports = {n: r for n, r in reports.items() if r}
    if not reports:
        return []
    systems = [s["system"] for s in next(iter(reports.values()))["systems"]]
    lines = ["## Dense and hybrid retrieval (all-MiniLM-L6-v2 + BM25)", "",
             "nDCG@10 per English set in `../shared/data`, from `python benchmarks/run_hybrid.py` (each set through "
             "`retrievekit eval --json` with every system below; `*` = significantly different from BM25, paired "
             "t-test, Holm-corrected, p < 0.05). `hybrid` is the library's default fusion; the others are the "
             "standard alternatives, all with untuned, equal weights.", ""]
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
    lines += _table(["set", "docs", "queries", *[s.replace("hybrid:", "") for s in systems],
                     "hybrid beats both"], rows)
    lines += ["", "Recall@100:", ""]
    rrows = []
    for name, r in reports.items():
        by = {s["system"]: s for s in r["systems"]}
        rrows.append([name, *(f"{by[s]['recall@100']:.4f}" for s in systems)])
    lines += _table(["set", *[s.replace("hybrid:", "") for s in systems]], rrows)
    tuned = _load(results / "hybrid_tuned.json")
    if tuned:
        lines += ["", "Fusion tuned on a dev split (`tune_fusion`, grid over weights and normalisation / RRF k), "
                  "then evaluated once on test:", ""]
        trows = []
        for t in tuned:
            for method in ("convex", "rrf"):
                if method in t:
                    trows.append([t["dataset"], t["dev_split"], method, json.dumps(t[method]["tuned"]),
                                  t[method]["dev_ndcg@10"], t[method]["test"].get("ndcg@10")])
        lines += _table(["set", "dev split", "method", "tuned", "dev nDCG@10", "test nDCG@10"], trows)
    lines.append("")
    return lines


def encoders_section(results: Path) -> list[str]:
    doc = _load(results / "encoders.json")
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
    lines += _table(["backend", "model", "docs/s", "vs sentence-transformers", "nDCG@10", "Δ nDCG@10"], rows)
    lines.append("")
    return lines


def exact_section(results: Path) -> list[str]:
    doc = _load(results / "dense_exact.json")
    if not doc:
        return []
    lines = ["## Exact vector search vs FAISS IndexFlatIP", "",
             "`python benchmarks/run_dense_exact.py`: " + str(doc.get("description", "")), ""]
    rows = []
    for r in doc.get("results", []):
        rows.append([r.get("threads"), r.get("batch"), r.get("k"), f"{r.get('retrievekit_qps', 0):,.1f}",
                     f"{r.get('faiss_qps', 0):,.1f}", f"{r.get('ratio', 0):.2f}×", r.get("recall_at_10_vs_faiss")])
    lines += _table(["threads", "queries per call", "k", "retrievekit q/s", "FAISS q/s", "ratio", "recall@10 vs FAISS"],
                    rows)
    lines.append("")
    return lines


def sparse_section(results: Path) -> list[str]:
    doc = _load(results / "sparse_scifact.json")
    if not doc:
        return []
    lines = ["## Learned sparse (SPLADE)", "", "`python benchmarks/run_sparse.py`:", ""]
    keys = [k for k in doc if isinstance(doc[k], (int, float, str)) and k not in ("command",)]
    lines += _table(["field", "value"], [[k, doc[k]] for k in keys])
    lines.append("")
    return lines


def dense_sections(results: Path) -> list[str]:
    return hybrid_section(results) + encoders_section(results) + exact_section(results) + sparse_section(results)
