"""Turn ``benchmarks/results/bm25_*.json`` into ``BENCHMARKS.md``: machine, quality, speed, memory, disk.

Every number comes from the JSON files written by ``run_bm25.py``; nothing is hard-coded.
Usage: ``python benchmarks/report.py [--results DIR] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from report_dense import dense_sections

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger("report")

SYSTEM_ORDER = ("bm25s", "bm25s-numba", "rank_bm25", "retrievekit", "retrievekit-1proc", "pyserini")
REAL_DATASET_ORDER = ("scifact", "cranfield", "cacm", "cosqa")
BASELINE = "bm25s"
MIB = 2**20


class ReportError(RuntimeError):
    """The results folder is missing, empty or holds an unreadable file."""


# ----------------------------------------------------------------------------- loading


def load_results(folder: Path) -> list[dict[str, Any]]:
    """All ``bm25_*.json`` documents of ``folder``, real datasets first, synthetic ones by size."""
    files = sorted(folder.glob("bm25_*.json"))
    if not files:
        raise ReportError(f"no bm25_*.json in {folder}; run benchmarks/run_bm25.py first")
    docs = []
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ReportError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or "dataset" not in doc:
            raise ReportError(f"{path}: not a run_bm25.py result (no 'dataset' key)")
        doc["_file"] = path.name
        docs.append(doc)

    def key(doc: dict[str, Any]) -> tuple[int, int, str]:
        name = doc["dataset"]
        if name in REAL_DATASET_ORDER:
            return (0, REAL_DATASET_ORDER.index(name), name)
        if doc.get("dataset_info", {}).get("synthetic"):
            return (2, int(doc["dataset_info"].get("docs") or 0), name)
        return (1, 0, name)

    return sorted(docs, key=key)


def systems_in(docs: Iterable[dict[str, Any]]) -> list[str]:
    seen = {s for d in docs for s in d.get("systems", {})}
    return [s for s in SYSTEM_ORDER if s in seen] + sorted(seen - set(SYSTEM_ORDER))


# ----------------------------------------------------------------------------- formatting


def fnum(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, float)) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def fmib(value: Any) -> str:
    return "—" if value is None else f"{value / MIB:,.0f}"


def fratio(value: Any, base: Any) -> str:
    if value is None or not base:
        return "—"
    ratio = value / base
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.0f}×"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str] | None = None) -> list[str]:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def capped(result: dict[str, Any]) -> bool:
    """True when the system searched fewer queries than the dataset has (rank_bm25 on big corpora)."""
    total = result.get("queries_judged_total")
    return total is not None and result.get("queries") is not None and result["queries"] < total


# ----------------------------------------------------------------------------- sections


def machine_section(docs: list[dict[str, Any]]) -> list[str]:
    machines: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for doc in docs:
        m = doc.get("machine") or {}
        fingerprint = json.dumps({k: m.get(k) for k in ("cpu_model", "logical_cores", "ram_bytes", "os", "python",
                                                         "packages")}, sort_keys=True)
        machines.setdefault(fingerprint, (m, []))[1].append(doc["dataset"])
    lines = ["## Machine", ""]
    for m, datasets in machines.values():
        if len(machines) > 1:
            lines += [f"Datasets: {', '.join(datasets)}", ""]
        packages = ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items() if v)
        ram = m.get("ram_bytes")
        lines += table(["", ""], [
            ["CPU", f"{m.get('cpu_model') or '?'} — {m.get('logical_cores')} logical cores "
                    f"({m.get('physical_cores')} physical, {m.get('usable_cores')} usable)"],
            ["Memory", f"{ram / 2**30:.1f} GiB" if ram else "?"],
            ["OS", f"{m.get('os') or '?'} (kernel {m.get('kernel') or '?'})"],
            ["Python", str(m.get("python") or "?")],
            ["Packages", packages or "?"],
        ], align=["l", "l"])
        lines.append("")
    return lines


def datasets_section(docs: list[dict[str, Any]]) -> list[str]:
    rows = []
    for doc in docs:
        info = doc.get("dataset_info") or {}
        syn = info.get("synthetic")
        if syn:
            cfg = syn.get("config", {})
            what = (f"synthetic (benchmarks/synthetic.py, seed {cfg.get('seed')}): Zipf vocabulary of "
                    f"{cfg.get('vocab_size'):,} words (exponent {cfg.get('zipf_exponent')}), "
                    f"{syn.get('mean_tokens_per_doc')} tokens/doc on average; 1 judged doc per query")
        else:
            what = f"`{doc.get('data_dir')}`"
        rows.append([doc["dataset"], fnum(info.get("docs"), 0), fnum(info.get("judged_queries"), 0), what])
    return ["## Datasets", ""] + table(["dataset", "docs", "judged queries", "source"], rows,
                                       align=["l", "r", "r", "l"]) + [""]


def quality_section(docs: list[dict[str, Any]], systems: list[str]) -> list[str]:
    lines = ["## Retrieval quality", "",
             "BM25 with k1=0.9, b=0.4 on `title + \" \" + text`; every judged query of the test split "
             "(a query without results scores 0). † = evaluated on a subset of the queries (see the notes).", ""]
    for metric, title in (("ndcg@10", "nDCG@10"), ("recall@100", "Recall@100")):
        rows = []
        for doc in docs:
            row = [doc["dataset"]]
            for system in systems:
                r = doc.get("systems", {}).get(system)
                row.append("—" if r is None or r.get(metric) is None
                           else f"{r[metric]:.4f}" + (" †" if capped(r) else ""))
            rows.append(row)
        lines += [f"### {title}", ""] + table(["dataset", *systems], rows) + [""]
    return lines


def _mode_qps(result: dict[str, Any], prefix: str, single: bool) -> tuple[str | None, Any]:
    """(mode name, qps) of the first batch mode with 1 thread (single) or more threads (not single)."""
    for name, mode in (result.get("query_modes") or {}).items():
        if not name.startswith(prefix):
            continue
        threads = mode.get("threads") or 1
        if (threads == 1) == single:
            return name, mode.get("qps")
    return None, None


def speed_section(docs: list[dict[str, Any]], systems: list[str]) -> list[str]:
    lines = [
        "## Speed, memory and disk", "",
        "* **index docs/s**: documents / `index_seconds`, end to end from `corpus.jsonl` to a usable index "
        "(bm25s: read JSONL + tokenize + index + save; rank_bm25: read + tokenize + build, in memory only; "
        "retrievekit: `Collection.create` + `ingest`, committed to disk; pyserini: Anserini `IndexCollection`, "
        "1 thread). ×bm25s is the ratio to bm25s on the same dataset (higher is faster).",
        "* **QPS loop**: one query per call, one thread, query tokenization and id lookup included, k=100. "
        "For pyserini this is `LuceneSearcher.search` called from Python.",
        "* **QPS batch 1 / N thr**: all queries in one call (bm25s: one `tokenize` + one `retrieve` with "
        "`n_threads`; retrievekit: `search(queries, threads=…)`; pyserini: Anserini `batch_search` in the "
        "JVM, 1 thread).",
        "* **peak RSS**: resident memory peak while indexing / while querying, measured inside the system's "
        "own process (corpus text held in Python included where the library needs it); pyserini: whole "
        "process (Python + JVM). retrievekit's parallel ingest adds each worker process's peak (an upper "
        "bound: the workers' peaks need not coincide). **disk**: the saved index folder — for retrievekit the "
        "whole collection, stored documents included; **inverted index**: retrievekit's postings, term "
        "dictionary and lengths alone (bm25s and Pyserini folders hold only their index).",
        "* **retrievekit** ingests with worker processes by default (CPU count, at most 4: 2 here); "
        "**retrievekit-1proc** is the same with `workers=1`. Searches are single-process in both.",
        "",
    ]
    for doc in docs:
        info = doc.get("dataset_info") or {}
        res = doc.get("systems", {})
        base = res.get(BASELINE, {})
        base_loop = base.get("queries_per_second")
        base_dps = base.get("index_docs_per_second")
        rows = []
        for system in systems:
            r = res.get(system)
            if r is None:
                continue
            mark = " †" if capped(r) else ""
            _, batch1 = _mode_qps(r, "batch", True)
            if batch1 is None:
                _, batch1 = _mode_qps(r, "jvm_batch", True)
            batch_n_name, batch_n = _mode_qps(r, "batch", False)
            mem = r.get("memory") or {}
            if mem.get("peak_index_rss_bytes") is not None:
                index_rss = mem.get("peak_index_rss_bytes")
                if r.get("worker_peak_rss_bytes"):  # parallel ingest: main process + each worker's peak (bound)
                    index_rss += r["ingest_workers"] * r["worker_peak_rss_bytes"]
                rss = f"{fmib(index_rss)} / {fmib(mem.get('peak_query_rss_bytes'))}"
            else:
                rss = f"{fmib(r.get('peak_rss_bytes'))} (process)"
            threads_n = (r.get("query_modes") or {}).get(batch_n_name or "", {}).get("threads")
            rows.append([
                system,
                fnum(r.get("index_seconds"), 2),
                fnum(r.get("index_docs_per_second"), 0),
                fratio(r.get("index_docs_per_second"), base_dps),
                fnum(r.get("queries_per_second"), 1) + mark,
                fratio(r.get("queries_per_second"), base_loop),
                fnum(batch1, 1),
                fnum(batch_n, 1) + (f" ({threads_n})" if threads_n else ""),
                rss,
                fmib(r.get("index_bytes")) if r.get("index_bytes") is not None else "—",
                fmib(r.get("inverted_index_bytes")) if r.get("inverted_index_bytes") is not None else "—",
            ])
        if not rows:
            continue
        lines += [f"### {doc['dataset']} ({fnum(info.get('docs'), 0)} docs, "
                  f"{fnum(info.get('judged_queries'), 0)} queries)", ""]
        lines += table(["system", "index s", "index docs/s", "×bm25s", "QPS loop", "×bm25s", "QPS batch 1 thr",
                        "QPS batch N thr (N)", "peak RSS MiB index / query", "disk MiB",
                        "inverted index MiB"], rows)
        lines.append("")
    return lines


def notes_section(docs: list[dict[str, Any]], systems: list[str]) -> list[str]:
    lines = ["## Notes", ""]
    for system in systems:
        notes: dict[str, list[str]] = {}
        for doc in docs:
            r = doc.get("systems", {}).get(system)
            for note in (r or {}).get("notes", []):
                notes.setdefault(note, []).append(doc["dataset"])
        for note, where in notes.items():
            scope = "all datasets" if len(where) == len([d for d in docs if system in d.get("systems", {})]) \
                else ", ".join(where)
            lines.append(f"* **{system}** ({scope}): {note}")
    skipped: dict[tuple[str, str], list[str]] = {}
    for doc in docs:
        for system, reason in (doc.get("skipped") or {}).items():
            skipped.setdefault((system, reason), []).append(doc["dataset"])
    for (system, reason), where in skipped.items():
        lines.append(f"* **{system}** not (re-)run on {', '.join(where)}: {reason}")
    lines.append("* Timings are wall-clock on a shared machine; rerun on an idle machine for stable numbers.")
    return lines + [""]


def render(docs: list[dict[str, Any]]) -> str:
    systems = systems_in(docs)
    stamp = max((d.get("updated_at") or "" for d in docs), default="")
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `benchmarks/report.py` from `benchmarks/results/*.json` (latest result: {stamp or '?'}). "
        "Do not edit by hand: re-run the benchmark instead.",
        "",
    ]
    lines += machine_section(docs)
    lines += datasets_section(docs)
    lines += quality_section(docs, systems)
    lines += speed_section(docs, systems)
    lines += notes_section(docs, systems)
    lines += dense_sections(REPO / "benchmarks" / "results")
    from report_rag import rag_sections

    lines += rag_sections(REPO / "benchmarks" / "results")
    from report_training import training_sections

    lines += training_sections(REPO / "benchmarks" / "results")
    from report_sharding import sharding_sections

    lines += sharding_sections(REPO / "benchmarks" / "results")
    from report_images import images_sections

    lines += images_sections(REPO / "benchmarks" / "results")
    from report_pruning import pruning_sections

    lines += pruning_sections(REPO / "benchmarks" / "results")
    from report_sentences import sentences_sections

    lines += sentences_sections(REPO / "benchmarks" / "results")
    from report_html import html_sections

    lines += html_sections(REPO / "benchmarks" / "results")
    load = REPO / "benchmarks" / "results" / "load.json"
    if load.is_file():
        from report_load import render as render_load

        lines += [render_load(json.loads(load.read_text())).rstrip("\n"), ""]
    for name, module in (("ties.json", "run_ties"), ("cold_start.json", "run_cold_start"),
                         ("highlight.json", "run_highlight"), ("code_index.json", "run_code_index"),
                         ("code_search.json", "run_code_search"), ("field_weights.json", "run_field_weights"),
                         ("documents.json", "run_documents"),
                         ("posting-compression.json", "run_posting_compression"),
                         ("encoding-speed.json", "run_encoding_speed"),
                         ("generation-speed.json", "run_generation_speed"),
                         ("papers-walkthrough.json", "run_papers_walkthrough")):
        path = REPO / "benchmarks" / "results" / name
        if path.is_file():
            render_section = __import__(module).render
            lines += [render_section(json.loads(path.read_text())).rstrip("\n"), ""]
            if module == "run_encoding_speed":
                other_cpus = __import__(module).render_other_cpus(path.parent)
                lines += [other_cpus.rstrip("\n"), ""] if other_cpus else []
    lines += [
        "## Re-running",
        "",
        "```sh",
        "pip install -r benchmarks/requirements.txt      # peers: bm25s, rank_bm25, PyStemmer, ...",
        "python benchmarks/run_bm25.py && python benchmarks/report.py",
        "python benchmarks/embed_corpora.py      # fills the embedding cache for the dense runs (resumable)",
        "python benchmarks/run_hybrid.py && python benchmarks/run_encoders.py && python benchmarks/run_dense_exact.py",
        "python benchmarks/run_sparse.py && python benchmarks/run_tiers.py && python benchmarks/plot_tiers.py",
        "python benchmarks/run_binary_1m.py && python benchmarks/run_binary_1m.py --source real",
        "python benchmarks/run_ann.py && python benchmarks/run_load.py",
        "python benchmarks/run_rag.py && python benchmarks/run_rag_e2e.py",
        "python benchmarks/run_ties.py --pyserini-python VENV/bin/python   # Pyserini in its own venv",
        "python benchmarks/run_cold_start.py && python benchmarks/run_highlight.py",
        "python benchmarks/run_code_index.py",
        "python benchmarks/run_documents.py   # 350 PDFs + 200 DOCX generated; pypdfium2 vs pdfminer.six",
        "python benchmarks/run_papers_walkthrough.py   # index + ask on 24 generated PDFs, offline gemma-3-270m",
        "python benchmarks/run_sentences.py   # rule-based splitter vs pysbd on tests/data/sentence_boundaries.jsonl",
        "python benchmarks/run_html.py   # HTMLText vs trafilatura and selectolax on the Rust book and Node.js docs",
        "python benchmarks/run_posting_compression.py   # BM25 postings: FastPFor codecs' size and decode cost",
        "python benchmarks/run_encoding_speed.py   # MiniLM per numeric path: peaks, docs/s, nDCG, indexing, demo",
        "python benchmarks/code_search_data.py && python benchmarks/run_code_search.py",
        "python benchmarks/run_field_weights.py   # after code_search_data.py",
        "python benchmarks/run_train_supervised.py   # MiniLM on scifact train: 3 dense-mined negatives, 2 epochs",
        "python benchmarks/run_train_adapt.py && python benchmarks/run_train_reranker.py",
        "python benchmarks/import_graph.py && python benchmarks/report.py",
        "```",
        "",
        "Options: `--datasets scifact,synthetic`, `--systems bm25s,retrievekit`, `--synthetic-docs 100000`, "
        "`--pyserini-python PATH` (or `PYSERINI_PYTHON`) for the Lucene reference. See `benchmarks/README.md`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        docs = load_results(args.results)
    except ReportError as exc:
        logger.error("%s", exc)
        return 2
    args.out.write_text(render(docs), encoding="utf-8")
    logger.info("wrote %s (%d datasets)", args.out, len(docs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
